//! Identifying attributes of a synthetic patient: obviously synthetic values, or with
//! `--phi-canaries` a unique marker `PHIC-<patient>-<code>` in every one of them.

/// Prefix of every canary; a privacy test searches de-identified output for it.
pub const CANARY_PREFIX: &str = "PHIC-";

/// The canary of one attribute of one patient, e.g. `PHIC-17-MRN` (at most 16 characters for
/// patients below 1,000,000, so it fits SH attributes).
pub fn canary(patient: u32, code: &str) -> String {
    format!("{CANARY_PREFIX}{patient}-{code}")
}

/// Codes of the canaried attributes and where they are written (documented in docs/synth.md).
pub const CANARY_ATTRIBUTES: [(&str, &str); 22] = [
    ("NAME", "(0010,0010) PatientName"),
    ("MRN", "(0010,0020) PatientID"),
    ("OID", "(0010,1000) OtherPatientIDs"),
    ("ADR", "(0010,1040) PatientAddress"),
    ("TEL", "(0010,2154) PatientTelephoneNumbers"),
    ("CMT", "(0010,4000) PatientComments"),
    ("ACC", "(0008,0050) AccessionNumber"),
    ("INS", "(0008,0080) InstitutionName"),
    ("IAD", "(0008,0081) InstitutionAddress"),
    ("DEP", "(0008,1040) InstitutionalDepartmentName"),
    ("REF", "(0008,0090) ReferringPhysicianName"),
    ("OPR", "(0008,1070) OperatorsName"),
    ("PRF", "(0008,1050) PerformingPhysicianName"),
    ("STN", "(0008,1010) StationName"),
    ("SID", "(0020,0010) StudyID"),
    ("REQ", "(0032,1032) RequestingPhysician"),
    ("PRV", "(0009,1001) private tag, creator TFESI SYNTH PHI"),
    ("RPI", "(0040,0275)[0] > (0040,1001) RequestedProcedureID"),
    ("RQA", "(0040,0275)[0] > (0008,0050) AccessionNumber"),
    ("SPD", "(0040,0275)[0] > (0040,0007) ScheduledProcedureStepDescription"),
    ("CMN", "(0040,0275)[0] > (0040,0008)[0] > (0008,0104) CodeMeaning"),
    ("IMC", "(0020,4000) ImageComments (after the SYNTHETIC notice)"),
];

/// Identifying values written into every instance of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// (0010,0010)
    pub patient_name: String,
    /// (0010,0020), the synthetic MRN.
    pub patient_id: String,
    /// (0010,1000)
    pub other_patient_ids: String,
    /// (0010,1040)
    pub patient_address: String,
    /// (0010,2154)
    pub telephone: String,
    /// (0010,4000)
    pub patient_comments: String,
    /// (0008,0050)
    pub accession: String,
    /// (0008,0080)
    pub institution: String,
    /// (0008,0081)
    pub institution_address: String,
    /// (0008,1040)
    pub department: String,
    /// (0008,0090)
    pub referring: String,
    /// (0008,1070)
    pub operators: String,
    /// (0008,1050)
    pub performing: String,
    /// (0008,1010)
    pub station: String,
    /// (0020,0010)
    pub study_id: String,
    /// (0032,1032)
    pub requesting: String,
    /// (0009,1001)
    pub private_phi: String,
    /// Nested (0040,1001)
    pub requested_procedure_id: String,
    /// Nested (0008,0050)
    pub nested_accession: String,
    /// Nested (0040,0007)
    pub step_description: String,
    /// Doubly nested (0008,0104)
    pub code_meaning: String,
    /// (0020,4000)
    pub image_comments: String,
}

/// The notice in every ImageComments.
pub const SYNTHETIC_NOTICE: &str = "SYNTHETIC DATA - not a patient";

impl Identity {
    /// Identifying values of patient `index` (0-based) for cohort `seed`.
    pub fn new(seed: u64, index: u32, canaries: bool) -> Self {
        let number = index + 1;
        let tag = seed % 1000;
        if canaries {
            let c = |code: &str| canary(number, code);
            return Self {
                patient_name: c("NAME"),
                patient_id: c("MRN"),
                other_patient_ids: c("OID"),
                patient_address: c("ADR"),
                telephone: c("TEL"),
                patient_comments: c("CMT"),
                accession: c("ACC"),
                institution: c("INS"),
                institution_address: c("IAD"),
                department: c("DEP"),
                referring: c("REF"),
                operators: c("OPR"),
                performing: c("PRF"),
                station: c("STN"),
                study_id: c("SID"),
                requesting: c("REQ"),
                private_phi: c("PRV"),
                requested_procedure_id: c("RPI"),
                nested_accession: c("RQA"),
                step_description: c("SPD"),
                code_meaning: c("CMN"),
                image_comments: format!("{SYNTHETIC_NOTICE} {}", c("IMC")),
            };
        }
        Self {
            patient_name: format!("SYNTHETIC^PATIENT{number:04}"),
            patient_id: format!("SYN{tag:03}{number:06}"),
            other_patient_ids: format!("SYNALT{number:06}"),
            patient_address: "1 Synthetic Street^^Nowhere".to_string(),
            telephone: "000-000-0000".to_string(),
            patient_comments: "SYNTHETIC".to_string(),
            accession: format!("SA{tag:03}{number:06}"),
            institution: "SYNTHETIC GENERAL HOSPITAL".to_string(),
            institution_address: "1 Synthetic Way, Nowhere".to_string(),
            department: "SYNTHETIC RADIOLOGY".to_string(),
            referring: "SYNTHETIC^REFERRER".to_string(),
            operators: "SYNTHETIC^TECHNOLOGIST".to_string(),
            performing: "SYNTHETIC^RADIOLOGIST".to_string(),
            station: "SYNMR01".to_string(),
            study_id: format!("{number}"),
            requesting: "SYNTHETIC^REQUESTER".to_string(),
            private_phi: format!("SYNTHETIC^PATIENT{number:04}"),
            requested_procedure_id: format!("RP{tag:03}{number:06}"),
            nested_accession: format!("SA{tag:03}{number:06}"),
            step_description: "MRI LUMBAR SPINE".to_string(),
            code_meaning: "MRI LUMBAR SPINE WO CONTRAST".to_string(),
            image_comments: SYNTHETIC_NOTICE.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_are_unique_and_fit_short_string_attributes() {
        let identity = Identity::new(1, 999_998, true);
        assert!(identity.accession.len() <= 16);
        assert!(identity.station.len() <= 16);
        let a = Identity::new(1, 3, true);
        let b = Identity::new(1, 4, true);
        assert_ne!(a.patient_id, b.patient_id);
        assert!(a.patient_name.starts_with(CANARY_PREFIX));
    }

    #[test]
    fn plain_identities_say_synthetic() {
        let identity = Identity::new(1, 0, false);
        assert_eq!(identity.patient_name, "SYNTHETIC^PATIENT0001");
        assert!(!identity.patient_id.contains(CANARY_PREFIX));
    }
}
