//! Series selection: which series of a study is the T2-weighted sagittal one, with a decision and reasons for every series.

use serde::{Deserialize, Serialize};

use crate::instance::ImageInfo;

/// Thresholds of the selection rules.
#[derive(Debug, Clone, Copy)]
pub struct SelectionRules {
    /// Fewest distinct slice positions accepted.
    pub min_slices: usize,
    /// Largest angle between the slice normal and the patient x axis, degrees.
    pub max_sagittal_angle_deg: f64,
    /// T2: repetition time at least this, ms.
    pub t2_min_tr_ms: f64,
    /// T2: echo time at least this, ms.
    pub t2_min_te_ms: f64,
    /// Inversion times up to this are STIR-like (fat nulling), ms.
    pub stir_max_ti_ms: f64,
    /// Largest accepted relative deviation of a slice gap from the median gap.
    pub max_gap_deviation: f64,
}

impl Default for SelectionRules {
    fn default() -> Self {
        Self {
            min_slices: 8,
            max_sagittal_angle_deg: 30.0,
            t2_min_tr_ms: 1500.0,
            t2_min_te_ms: 60.0,
            stir_max_ti_ms: 300.0,
            max_gap_deviation: 0.2,
        }
    }
}

/// Acquisition plane from Image Orientation (Patient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    /// Normal within the angle limit of the patient x axis.
    Sagittal,
    /// Normal closest to the patient z axis.
    Axial,
    /// Normal closest to the patient y axis.
    Coronal,
    /// Normal near x but beyond the angle limit.
    Oblique,
    /// No usable orientation.
    Unknown,
}

/// Contrast weighting from TR/TE (and inversion), description as a secondary signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Long TR, long TE.
    T2,
    /// Short TR, short TE.
    T1,
    /// Short-tau inversion recovery (fat suppressed): not T2.
    Stir,
    /// Anything else (PD, gradient echo localizers, ...).
    Other,
    /// No timing and no description hint.
    Unknown,
}

/// One series as selection sees it: its de-identified UID and the facts of its instances.
#[derive(Debug, Clone)]
pub struct SeriesInput {
    /// De-identified Series Instance UID.
    pub series_uid: String,
    /// Image facts of every accepted instance of the series.
    pub instances: Vec<ImageInfo>,
}

/// The decision for one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesDecision {
    /// De-identified Series Instance UID.
    pub series_uid: String,
    /// Whether the series qualifies as T2 sagittal.
    pub eligible: bool,
    /// Whether it was the one selected.
    pub selected: bool,
    /// Plane from geometry.
    pub plane: Plane,
    /// Weighting from timing.
    pub weighting: Weighting,
    /// Distinct slice positions.
    pub slices: usize,
    /// Ranking score among eligible series (higher is better).
    pub score: f64,
    /// Why, in words.
    pub reasons: Vec<String>,
}

/// The outcome for a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The selected series, or `None`: "no eligible series" is an outcome, not an error.
    pub selected: Option<String>,
    /// A decision for every series, in input order.
    pub decisions: Vec<SeriesDecision>,
}

fn normal(orientation: &[f64; 6]) -> Option<[f64; 3]> {
    let (r, c) = (&orientation[..3], &orientation[3..]);
    let n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    (len > 0.5 && len.is_finite()).then(|| [n[0] / len, n[1] / len, n[2] / len])
}

fn plane_of(normal: Option<[f64; 3]>, rules: &SelectionRules) -> (Plane, f64) {
    let Some(n) = normal else {
        return (Plane::Unknown, 90.0);
    };
    let angle_x = n[0].abs().clamp(0.0, 1.0).acos().to_degrees();
    if angle_x <= rules.max_sagittal_angle_deg {
        return (Plane::Sagittal, angle_x);
    }
    let (ax, ay, az) = (n[0].abs(), n[1].abs(), n[2].abs());
    let plane = if ax >= ay && ax >= az {
        Plane::Oblique
    } else if az >= ay {
        Plane::Axial
    } else {
        Plane::Coronal
    };
    (plane, angle_x)
}

fn weighting_of(first: &ImageInfo, rules: &SelectionRules, reasons: &mut Vec<String>) -> Weighting {
    let inversion = first.inversion_time.filter(|ti| *ti > 0.0);
    let is_ir = first.scanning_sequence.iter().any(|s| s == "IR");
    if inversion.is_some_and(|ti| ti <= rules.stir_max_ti_ms) || (is_ir && first.hint.stir) {
        reasons.push("short-tau inversion recovery (STIR): fat suppressed, not T2".into());
        return Weighting::Stir;
    }
    if first.hint.stir {
        reasons.push("description names STIR/TIRM: not T2".into());
        return Weighting::Stir;
    }
    match (first.repetition_time, first.echo_time) {
        (Some(tr), Some(te)) => {
            let weighting = if tr >= rules.t2_min_tr_ms && te >= rules.t2_min_te_ms {
                Weighting::T2
            } else if tr <= 1000.0 && te <= 30.0 {
                Weighting::T1
            } else {
                Weighting::Other
            };
            reasons.push(format!("TR {tr} ms, TE {te} ms: {weighting:?}"));
            if weighting == Weighting::T2 && first.hint.t1 && !first.hint.t2 {
                reasons.push("description suggests T1, timing says T2: timing wins".into());
            }
            weighting
        }
        _ if first.hint.t2 && !first.hint.t1 => {
            reasons.push("no TR/TE: weighting from the description (T2)".into());
            Weighting::T2
        }
        _ if first.hint.t1 => {
            reasons.push("no TR/TE: weighting from the description (T1)".into());
            Weighting::T1
        }
        _ => {
            reasons.push("no TR/TE and no usable description".into());
            Weighting::Unknown
        }
    }
}

/// Distinct slice positions along the normal, sorted; `None` if positions are missing.
fn slice_offsets(instances: &[ImageInfo], normal: [f64; 3]) -> Option<Vec<f64>> {
    let mut offsets = Vec::new();
    for info in instances {
        if info.positions.is_empty() {
            return None;
        }
        for p in &info.positions {
            offsets.push(p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]);
        }
    }
    offsets.sort_by(f64::total_cmp);
    offsets.dedup_by(|a, b| (*a - *b).abs() < 0.01);
    Some(offsets)
}

fn geometry_problems(instances: &[ImageInfo], offsets: &[f64], rules: &SelectionRules) -> Vec<String> {
    let mut problems = Vec::new();
    let first = &instances[0];
    let same_orientation = instances.iter().all(|i| match (i.orientation, first.orientation) {
        (Some(a), Some(b)) => a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() < 1e-3),
        _ => false,
    });
    if !same_orientation {
        problems.push("orientation differs between instances".into());
    }
    if instances.iter().any(|i| i.rows != first.rows || i.columns != first.columns) {
        problems.push("matrix size differs between instances".into());
    }
    let total_frames: usize = instances.iter().map(|i| i.positions.len()).sum();
    if total_frames != offsets.len() {
        problems.push(format!(
            "{} frames at {} distinct positions (duplicates)",
            total_frames,
            offsets.len()
        ));
    }
    let mut gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    if !gaps.is_empty() {
        gaps.sort_by(f64::total_cmp);
        let median = gaps[gaps.len() / 2];
        let worst = gaps.iter().map(|g| (g - median).abs() / median.max(1e-6)).fold(0.0, f64::max);
        if worst > rules.max_gap_deviation {
            problems.push(format!(
                "slice spacing is irregular (median {median:.2} mm, worst deviation {:.0}%)",
                worst * 100.0
            ));
        }
    }
    problems
}

fn decide(series: &SeriesInput, rules: &SelectionRules) -> SeriesDecision {
    let mut reasons = Vec::new();
    let mut decision = SeriesDecision {
        series_uid: series.series_uid.clone(),
        eligible: false,
        selected: false,
        plane: Plane::Unknown,
        weighting: Weighting::Unknown,
        slices: 0,
        score: 0.0,
        reasons: Vec::new(),
    };
    let Some(first) = series.instances.first() else {
        decision.reasons.push("no usable instances".into());
        return decision;
    };
    let normal = first.orientation.as_ref().and_then(normal);
    let (plane, angle) = plane_of(normal, rules);
    decision.plane = plane;
    reasons.push(match plane {
        Plane::Unknown => "no usable image orientation (0020,0037)".to_string(),
        _ => format!("{plane:?} (normal {angle:.1} degrees from the patient x axis)"),
    });
    decision.weighting = weighting_of(first, rules, &mut reasons);
    if first.hint.localizer {
        reasons.push("description names a localizer".into());
    }
    let offsets = normal.and_then(|n| slice_offsets(&series.instances, n));
    decision.slices = offsets.as_ref().map_or(0, Vec::len);
    let mut eligible =
        plane == Plane::Sagittal && decision.weighting == Weighting::T2 && !first.hint.localizer;
    match &offsets {
        None => {
            reasons.push("image position (0020,0032) missing".into());
            eligible = false;
        }
        Some(offsets) => {
            if offsets.len() < rules.min_slices {
                reasons.push(format!("{} slices, fewer than {}", offsets.len(), rules.min_slices));
                eligible = false;
            } else {
                reasons.push(format!("{} slices", offsets.len()));
            }
            let problems = geometry_problems(&series.instances, offsets, rules);
            if !problems.is_empty() {
                eligible = false;
            }
            reasons.extend(problems);
        }
    }
    decision.eligible = eligible;
    if eligible {
        let slice_fit = if (11..=20).contains(&decision.slices) { 1.0 } else { 0.5 };
        let te_fit = first.echo_time.map_or(0.5, |te| 1.0 - ((te - 100.0).abs() / 100.0).min(1.0));
        let resolution = f64::from(first.rows.min(first.columns)).min(512.0) / 512.0;
        decision.score = (1.0 - angle / 90.0) + slice_fit + te_fit + resolution;
        reasons.push(format!("eligible T2 sagittal, score {:.3}", decision.score));
    }
    decision.reasons = reasons;
    decision
}

/// Decides every series and selects the best eligible T2 sagittal one.
pub fn select(series: &[SeriesInput], rules: &SelectionRules) -> Selection {
    let mut decisions: Vec<SeriesDecision> = series.iter().map(|s| decide(s, rules)).collect();
    let best = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.eligible)
        .max_by(|(_, a), (_, b)| a.score.total_cmp(&b.score).then_with(|| b.series_uid.cmp(&a.series_uid)))
        .map(|(index, _)| index);
    let selected = best.map(|index| {
        decisions[index].selected = true;
        decisions[index].reasons.push("selected".into());
        decisions[index].series_uid.clone()
    });
    Selection { selected, decisions }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(uid: &str, orientation: [f64; 6], tr: f64, te: f64, slices: usize) -> SeriesInput {
        let n = normal(&orientation).unwrap_or([1.0, 0.0, 0.0]);
        let instances = (0..slices)
            .map(|i| ImageInfo {
                rows: 384,
                columns: 384,
                frames: 1,
                orientation: Some(orientation),
                positions: vec![[n[0] * 4.0 * i as f64, n[1] * 4.0 * i as f64, n[2] * 4.0 * i as f64]],
                repetition_time: Some(tr),
                echo_time: Some(te),
                ..ImageInfo::default()
            })
            .collect();
        SeriesInput { series_uid: uid.into(), instances }
    }

    const SAG: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    const AX: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    #[test]
    fn the_t2_sagittal_is_chosen_among_distractors() {
        let study = [
            series("t1sag", SAG, 550.0, 10.0, 15),
            series("t2ax", AX, 4000.0, 100.0, 20),
            series("t2sag", SAG, 3500.0, 105.0, 15),
            series("loc", SAG, 8.0, 3.0, 3),
        ];
        let selection = select(&study, &SelectionRules::default());
        assert_eq!(selection.selected.as_deref(), Some("t2sag"));
        assert_eq!(selection.decisions.len(), 4);
        assert!(selection.decisions.iter().all(|d| !d.reasons.is_empty()));
    }

    #[test]
    fn stir_is_not_t2_and_no_eligible_series_is_an_outcome() {
        let mut stir = series("stir", SAG, 4000.0, 70.0, 15);
        for info in &mut stir.instances {
            info.inversion_time = Some(160.0);
            info.scanning_sequence = vec!["IR".into()];
        }
        let selection = select(&[stir], &SelectionRules::default());
        assert_eq!(selection.selected, None);
        assert_eq!(selection.decisions[0].weighting, Weighting::Stir);
    }

    #[test]
    fn irregular_geometry_makes_a_series_ineligible() {
        let mut broken = series("gap", SAG, 3500.0, 100.0, 12);
        broken.instances[5].positions[0][0] += 9.0;
        let selection = select(&[broken], &SelectionRules::default());
        assert_eq!(selection.selected, None);
    }
}
