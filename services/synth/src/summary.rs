//! The cohort summary printed by `tfesi synth` and written to `summary.json`.

use std::fmt;

use serde::Serialize;

use crate::auc::auc;
use crate::cohort::CohortRow;
use crate::outcome::FollowUpStatus;

/// Figures of one generated cohort.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortSummary {
    /// Always `true`: the data is synthetic.
    pub synthetic: bool,
    /// Cohort seed.
    pub seed: u64,
    /// Patients generated.
    pub patients: u32,
    /// Patients with a label (completed follow-up).
    pub labeled: u32,
    /// Patients lost to follow-up.
    pub lost_to_follow_up: u32,
    /// Patients excluded (repeat injection or surgery in the window).
    pub excluded: u32,
    /// Share of good outcomes among labeled patients.
    pub base_rate: f64,
    /// Share of good outcomes drawn, all patients.
    pub outcome_rate_all: f64,
    /// AUC of the true probability against the drawn outcome, all patients.
    pub bayes_auc: Option<f64>,
    /// AUC of the true probability against the labels, labeled patients.
    pub bayes_auc_labeled: Option<f64>,
    /// AUC of the best clinical-only probability against the drawn outcome, all patients.
    pub clinical_only_auc: Option<f64>,
    /// DICOM files written.
    pub files: u64,
    /// Bytes of DICOM written.
    pub dicom_bytes: u64,
    /// Wall time of generation and writing, seconds.
    pub elapsed_s: f64,
    /// Patients per second.
    pub patients_per_s: f64,
    /// Worker threads.
    pub threads: usize,
}

impl CohortSummary {
    /// Computes the outcome figures of a cohort; counts and timings are filled by the caller.
    pub fn from_rows(seed: u64, rows: &[CohortRow]) -> Self {
        let drawn: Vec<bool> = rows.iter().map(|r| r.outcome_drawn).collect();
        let p_true: Vec<f64> = rows.iter().map(|r| r.p_true).collect();
        let p_clinical: Vec<f64> = rows.iter().map(|r| r.p_clinical).collect();
        let labeled: Vec<(f64, bool)> =
            rows.iter().filter_map(|r| r.label().map(|l| (r.p_true, l))).collect();
        let labels: Vec<bool> = labeled.iter().map(|x| x.1).collect();
        let labeled_p: Vec<f64> = labeled.iter().map(|x| x.0).collect();
        let count = |status| rows.iter().filter(|r| r.followup.status == status).count() as u32;
        let share = |values: &[bool]| {
            if values.is_empty() {
                0.0
            } else {
                values.iter().filter(|&&v| v).count() as f64 / values.len() as f64
            }
        };
        Self {
            synthetic: true,
            seed,
            patients: rows.len() as u32,
            labeled: labels.len() as u32,
            lost_to_follow_up: count(FollowUpStatus::LostToFollowUp),
            excluded: count(FollowUpStatus::Excluded),
            base_rate: share(&labels),
            outcome_rate_all: share(&drawn),
            bayes_auc: auc(&p_true, &drawn),
            bayes_auc_labeled: auc(&labeled_p, &labels),
            clinical_only_auc: auc(&p_clinical, &drawn),
            files: 0,
            dicom_bytes: 0,
            elapsed_s: 0.0,
            patients_per_s: 0.0,
            threads: 0,
        }
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

impl fmt::Display for CohortSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "synthetic cohort (SYNTHETIC DATA - not patients), seed {}", self.seed)?;
        writeln!(
            f,
            "patients {}: labeled {}, lost to follow-up {}, excluded {}",
            self.patients, self.labeled, self.lost_to_follow_up, self.excluded
        )?;
        writeln!(
            f,
            "base rate (labeled) {:.3}, drawn outcome rate (all) {:.3}",
            self.base_rate, self.outcome_rate_all
        )?;
        writeln!(
            f,
            "Bayes AUC {} (labeled {}), clinical-only AUC {}",
            opt(self.bayes_auc),
            opt(self.bayes_auc_labeled),
            opt(self.clinical_only_auc)
        )?;
        write!(
            f,
            "files {} ({:.1} MB) in {:.1} s on {} threads: {:.2} patients/s",
            self.files,
            self.dicom_bytes as f64 / 1e6,
            self.elapsed_s,
            self.threads,
            self.patients_per_s
        )
    }
}
