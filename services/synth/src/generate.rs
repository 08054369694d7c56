//! One synthetic patient end to end: latents, outcome, follow-up, anatomy, series plans,
//! rendered images and encoded DICOM files, all in memory.

use rand::Rng;
use rayon::prelude::*;

use crate::anatomy::Anatomy;
use crate::calendar::Date;
use crate::cohort::CohortRow;
use crate::dicom_out::{StudyHeader, build_instance, encode_file};
use crate::error::Result;
use crate::latent::{ImageLatents, sample_clinical, sample_image_latents};
use crate::outcome::{OutcomeModel, draw_follow_up, root_compression_mm};
use crate::phi::Identity;
use crate::protocol::{SeriesKind, SeriesPlan, TransferSyntaxKind, Vendor, plan_study};
use crate::render::{Quantisation, TissueMap, render, tissue_map};
use crate::rng::{stream, uid};

/// Options of one patient's generation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientOptions {
    /// Put `PHIC-<patient>-<code>` canaries in every identifying attribute.
    pub phi_canaries: bool,
    /// Share of patients lost to follow-up, 0 to 1.
    pub lost_rate: f64,
    /// Monte Carlo draws for the clinical-only probability.
    pub clinical_draws: u32,
    /// The outcome model.
    pub model: OutcomeModel,
    /// Force every series to this transfer syntax (tests); `None` rotates through all.
    pub transfer_syntax: Option<TransferSyntaxKind>,
}

impl Default for PatientOptions {
    fn default() -> Self {
        Self {
            phi_canaries: false,
            lost_rate: 0.10,
            clinical_draws: 48,
            model: OutcomeModel::default(),
            transfer_syntax: None,
        }
    }
}

/// One encoded DICOM instance.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomFile {
    /// SeriesNumber.
    pub series_number: u32,
    /// InstanceNumber (1-based).
    pub instance_number: u32,
    /// Role of the series (ground truth, not in the file).
    pub kind: SeriesKind,
    /// Transfer syntax of the file.
    pub transfer_syntax: TransferSyntaxKind,
    /// Stored pixel values, row-major (what a decoder must return).
    pub pixels: Vec<u16>,
    /// The Part 10 file.
    pub bytes: Vec<u8>,
}

impl DicomFile {
    /// Path of the file relative to the cohort folder.
    pub fn relative_path(&self, patient_index: u32) -> String {
        format!("studies/{patient_index:04}/{}/{:03}.dcm", self.series_number, self.instance_number)
    }
}

/// One patient's study and cohort row.
#[derive(Debug, Clone)]
pub struct PatientStudy {
    /// The cohort row.
    pub row: CohortRow,
    /// The series plans (geometry, timing), in series order.
    pub series: Vec<SeriesPlan>,
    /// Every instance, in series then instance order.
    pub files: Vec<DicomFile>,
}

struct Drawn {
    row: CohortRow,
    vendor: Vendor,
    field_t: f64,
}

fn draw_row(seed: u64, index: u32, options: &PatientOptions) -> Drawn {
    let mut rng = stream(seed, index, "latent");
    let clinical = sample_clinical(&mut rng);
    let latents: ImageLatents = sample_image_latents(&mut rng, &clinical);
    let p_true = options.model.probability(&clinical, &latents);
    let mut mc = stream(seed, index, "clinical-mc");
    let p_clinical = options.model.clinical_probability(&clinical, &mut mc, options.clinical_draws);
    let mut outcome_rng = stream(seed, index, "outcome");
    let outcome_drawn = outcome_rng.random::<f64>() < p_true;
    let followup = draw_follow_up(&mut outcome_rng, &clinical, outcome_drawn, options.lost_rate);
    let mut admin = stream(seed, index, "admin");
    let study_date = Date::from_ymd(2025, 1, 6).plus_days(admin.random_range(0..600));
    let injection = study_date.plus_days(admin.random_range(3..40));
    let vendor = [Vendor::Siemens, Vendor::Ge, Vendor::Philips, Vendor::Canon][match admin.random::<f64>() {
        x if x < 0.3 => 0,
        x if x < 0.6 => 1,
        x if x < 0.85 => 2,
        _ => 3,
    }];
    let models = vendor.models();
    let (model, field_t) = models[admin.random_range(0..models.len())];
    let identity = Identity::new(seed, index, options.phi_canaries);
    let row = CohortRow {
        patient_index: index,
        patient_id: identity.patient_id.clone(),
        patient_name: identity.patient_name.clone(),
        accession_number: identity.accession.clone(),
        study_instance_uid: uid(seed, &format!("study/{index}")),
        t2_series_instance_uid: String::new(),
        t2_series_number: 0,
        vendor: vendor.as_str(),
        model,
        root_compression_mm: root_compression_mm(&clinical, &latents),
        clinical,
        latents,
        study_date: study_date.iso(),
        injection_date: injection.iso(),
        followup_date: followup.day.map(|d| injection.plus_days(i64::from(d)).iso()),
        followup,
        outcome_drawn,
        p_true,
        p_clinical,
    };
    Drawn { row, vendor, field_t }
}

/// The cohort row of a patient without rendering anything (fast: for outcome statistics).
/// Identical to the row of [`generate_patient`] except for the T2 series UID and number.
pub fn patient_row(seed: u64, index: u32, options: &PatientOptions) -> CohortRow {
    draw_row(seed, index, options).row
}

fn quantisation(vendor: Vendor, rng: &mut impl Rng) -> (Quantisation, f64) {
    let (low, high) = match vendor {
        Vendor::Siemens => (700.0, 1300.0),
        Vendor::Ge => (1800.0, 3200.0),
        Vendor::Philips => (1500.0, 2600.0),
        Vendor::Canon => (1000.0, 2000.0),
    };
    let slope = if vendor == Vendor::Philips {
        (rng.random_range(1.2..2.5_f64) * 1000.0).round() / 1000.0
    } else {
        1.0
    };
    (
        Quantisation {
            full_scale: rng.random_range(low..high),
            noise_fraction: rng.random_range(0.018..0.035),
        },
        slope,
    )
}

/// Generates one patient's study entirely in memory.
pub fn generate_patient(seed: u64, index: u32, options: &PatientOptions) -> Result<PatientStudy> {
    let Drawn { mut row, vendor, field_t } = draw_row(seed, index, options);
    let mut anatomy_rng = stream(seed, index, "anatomy");
    let anatomy = Anatomy::new(&row.latents, &mut anatomy_rng);
    let mut protocol_rng = stream(seed, index, "protocol");
    let with_stir = protocol_rng.random::<f64>() < 0.25;
    let mut series =
        plan_study(vendor, &anatomy, &mut protocol_rng, index as usize + (seed % 4) as usize, with_stir);
    if let Some(ts) = options.transfer_syntax {
        for plan in &mut series {
            plan.transfer_syntax = ts;
        }
    }
    let mut admin = stream(seed, index, "header");
    let age = row.clinical.age_years;
    let study = Date::from_ymd(2025, 1, 6);
    let study_date = parse_iso(&row.study_date).unwrap_or(study);
    let birth = study_date.plus_days(-(i64::from(age) * 365 + admin.random_range(0..365)));
    let header = StudyHeader {
        identity: Identity::new(seed, index, options.phi_canaries),
        vendor,
        model: row.model,
        field_t,
        study_uid: row.study_instance_uid.clone(),
        frame_uid: uid(seed, &format!("frame/{index}")),
        study_date: study_date.dicom(),
        study_time: format!(
            "{:02}{:02}{:02}",
            admin.random_range(7..20),
            admin.random_range(0..60),
            admin.random_range(0..60)
        ),
        birth_date: birth.dicom(),
        sex: if row.clinical.female { "F" } else { "M" },
        age: format!("{age:03}Y"),
        weight_kg: admin.random_range(55.0..110.0_f64).round(),
        height_m: (admin.random_range(1.55..1.95_f64) * 100.0).round() / 100.0,
    };
    let implementation_uid = uid(0, "tfesi-synth/implementation");
    let mut sagittal_maps: Option<Vec<TissueMap>> = None;
    let mut files = Vec::new();
    for plan in &series {
        let sagittal =
            matches!(plan.kind, SeriesKind::T2Sagittal | SeriesKind::T1Sagittal | SeriesKind::StirSagittal);
        let classify = || -> Vec<TissueMap> {
            plan.planes
                .par_iter()
                .map(|plane| tissue_map(&anatomy, plane, plan.matrix as usize, plan.pixel_mm, plan.thickness))
                .collect()
        };
        // T1, T2 and STIR share the sagittal stack: classified once, borrowed (not copied) by each.
        let own;
        let maps: &[TissueMap] = if sagittal {
            sagittal_maps.get_or_insert_with(classify)
        } else {
            own = classify();
            &own
        };
        let series_uid = uid(seed, &format!("series/{index}/{}", plan.number));
        if plan.kind == SeriesKind::T2Sagittal {
            row.t2_series_instance_uid = series_uid.clone();
            row.t2_series_number = plan.number;
        }
        let mut quant_rng = stream(seed, index, &format!("quant/{}", plan.number));
        let (quant, slope) = quantisation(vendor, &mut quant_rng);
        let encoded: Vec<Result<DicomFile>> = maps
            .par_iter()
            .enumerate()
            .map(|(instance, map)| {
                let mut noise = stream(seed, index, &format!("noise/{}/{instance}", plan.number));
                let pixels = render(map, &plan.contrast, quant, &mut noise);
                let sop_uid = uid(seed, &format!("sop/{index}/{}/{instance}", plan.number));
                let obj = build_instance(&header, plan, &series_uid, &sop_uid, instance, &pixels, slope);
                let bytes = encode_file(&obj, &sop_uid, &implementation_uid, plan.transfer_syntax)?;
                Ok(DicomFile {
                    series_number: plan.number,
                    instance_number: instance as u32 + 1,
                    kind: plan.kind,
                    transfer_syntax: plan.transfer_syntax,
                    pixels,
                    bytes,
                })
            })
            .collect();
        for file in encoded {
            files.push(file?);
        }
    }
    Ok(PatientStudy { row, series, files })
}

fn parse_iso(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    Some(Date::from_ymd(year, month, day))
}
