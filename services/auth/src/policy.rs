//! The one table of which roles may call which RPC. Nothing is allowed by default: an RPC
//! missing from [`POLICY`] is PERMISSION_DENIED for everyone, and a test checks that every RPC
//! of every tfesi service appears here exactly once.
//!
//! Role meanings: `app` internal applications (episodes, studies, predictions to show),
//! `nurse` follow-up nurses (follow-ups, re-identification to call the patient), `mlops`
//! retraining jobs (snapshots, tensors, models), `admin` operators, `service` the platform's
//! own services calling each other (the pipeline worker).

use crate::Role::{self, Admin, App, Mlops, Nurse, Service};

/// `(full gRPC method path, roles allowed)`.
pub const POLICY: &[(&str, &[Role])] = &[
    // Ingest. Upload and completion: apps, the DICOM-less import path of operators, the demo.
    ("/tfesi.ingest.v1.Ingest/Upload", &[App, Admin, Service]),
    ("/tfesi.ingest.v1.Ingest/CompleteStudy", &[App, Admin, Service]),
    ("/tfesi.ingest.v1.Ingest/GetStudy", &[App, Nurse, Mlops, Admin, Service]),
    ("/tfesi.ingest.v1.Ingest/ListStudies", &[App, Mlops, Admin]),
    ("/tfesi.ingest.v1.Ingest/LookupIds", &[App, Nurse, Admin, Service]),
    ("/tfesi.ingest.v1.Ingest/ResolvePatient", &[Nurse, Admin]),
    ("/tfesi.ingest.v1.Ingest/ListQuarantine", &[Admin]),
    ("/tfesi.ingest.v1.Ingest/GetSeries", &[Service, Mlops, Admin]),
    ("/tfesi.ingest.v1.Ingest/ReportJobStatus", &[Service]),
    // Preprocess.
    ("/tfesi.preprocess.v1.Preprocess/Prepare", &[Service, Mlops, Admin]),
    ("/tfesi.preprocess.v1.Preprocess/GetSpec", &[App, Mlops, Admin, Service]),
    ("/tfesi.preprocess.v1.Preprocess/GetPipelineStatus", &[Admin, Service]),
    ("/tfesi.preprocess.v1.Preprocess/ListDeadLetters", &[Admin]),
    ("/tfesi.preprocess.v1.Preprocess/RetryDeadLetter", &[Admin]),
    // Inference.
    ("/tfesi.inference.v1.Inference/Predict", &[Service, Mlops, Admin]),
    ("/tfesi.inference.v1.Inference/ListModels", &[App, Mlops, Admin, Service]),
    ("/tfesi.inference.v1.Inference/GetModel", &[App, Mlops, Admin, Service]),
    ("/tfesi.inference.v1.Inference/RegisterModel", &[Mlops, Admin]),
    ("/tfesi.inference.v1.Inference/Promote", &[Mlops, Admin]),
    ("/tfesi.inference.v1.Inference/SetShadow", &[Mlops, Admin]),
    ("/tfesi.inference.v1.Inference/Rollback", &[Mlops, Admin]),
    // Registry. Nurses never need predictions; GetEpisode returns them, so nurses use the
    // follow-up RPCs (the desk shows no prediction, see CLINICAL.md).
    ("/tfesi.registry.v1.Registry/CreateEpisode", &[App, Admin]),
    ("/tfesi.registry.v1.Registry/LinkStudy", &[App, Admin]),
    ("/tfesi.registry.v1.Registry/RecordInjection", &[App, Admin]),
    ("/tfesi.registry.v1.Registry/GetEpisode", &[App, Admin, Service]),
    ("/tfesi.registry.v1.Registry/ListEpisodes", &[App, Admin, Service]),
    ("/tfesi.registry.v1.Registry/RecordPrediction", &[Service]),
    ("/tfesi.registry.v1.Registry/WatchEpisode", &[App, Admin]),
    ("/tfesi.registry.v1.Registry/ListDueFollowUps", &[Nurse, App, Admin]),
    ("/tfesi.registry.v1.Registry/RecordFollowUp", &[Nurse, App, Admin]),
    ("/tfesi.registry.v1.Registry/AmendFollowUp", &[Nurse, Admin]),
    ("/tfesi.registry.v1.Registry/GetFollowUpHistory", &[Nurse, App, Admin]),
    ("/tfesi.registry.v1.Registry/SetOutcomeStatus", &[Nurse, App, Admin]),
    ("/tfesi.registry.v1.Registry/CreateSnapshot", &[Mlops, Admin]),
    ("/tfesi.registry.v1.Registry/GetSnapshot", &[Mlops, Admin]),
    ("/tfesi.registry.v1.Registry/ExportSnapshot", &[Mlops, Admin]),
    ("/tfesi.registry.v1.Registry/GetModelPerformance", &[Mlops, Admin]),
    ("/tfesi.registry.v1.Registry/WatchLabels", &[Mlops, Admin]),
    ("/tfesi.registry.v1.Registry/ListLabelRules", &[Mlops, Admin, App]),
];

/// Paths every caller may use without a token: health checks (probes) and reflection
/// (tooling). They expose no PHI and no clinical data.
pub const PUBLIC_PREFIXES: &[&str] =
    &["/grpc.health.v1.Health/", "/grpc.reflection.v1.", "/grpc.reflection.v1alpha."];

/// The roles allowed to call `path`, `None` when the method is not in the table.
pub fn allowed_roles(path: &str) -> Option<&'static [Role]> {
    POLICY.iter().find(|(method, _)| *method == path).map(|(_, roles)| *roles)
}

/// Whether `path` needs no token.
pub fn is_public(path: &str) -> bool {
    PUBLIC_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}
