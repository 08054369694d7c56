//! Checks that the embedded descriptor set carries every tfesi service with its RPCs.

use prost::Message;
use prost_types::{FileDescriptorSet, ServiceDescriptorProto};

/// RPC names each service must expose, as declared in the `.proto` files.
const EXPECTED: [(&str, &[&str]); 4] = [
    (
        "tfesi.ingest.v1.Ingest",
        &[
            "Upload",
            "CompleteStudy",
            "GetStudy",
            "ListStudies",
            "LookupIds",
            "ResolvePatient",
            "ListQuarantine",
            "GetSeries",
            "ReportJobStatus",
        ],
    ),
    (
        "tfesi.preprocess.v1.Preprocess",
        &["Prepare", "GetSpec", "GetPipelineStatus", "ListDeadLetters", "RetryDeadLetter"],
    ),
    (
        "tfesi.inference.v1.Inference",
        &["Predict", "ListModels", "GetModel", "RegisterModel", "Promote", "SetShadow", "Rollback"],
    ),
    (
        "tfesi.registry.v1.Registry",
        &[
            "CreateEpisode",
            "LinkStudy",
            "RecordInjection",
            "GetEpisode",
            "ListEpisodes",
            "RecordPrediction",
            "WatchEpisode",
            "ListDueFollowUps",
            "RecordFollowUp",
            "AmendFollowUp",
            "GetFollowUpHistory",
            "SetOutcomeStatus",
            "CreateSnapshot",
            "GetSnapshot",
            "ExportSnapshot",
            "GetModelPerformance",
            "WatchLabels",
            "ListLabelRules",
        ],
    ),
];

fn decode_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

/// All services of the set, with their fully qualified names.
fn services(set: &FileDescriptorSet) -> Vec<(String, &ServiceDescriptorProto)> {
    set.file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| (format!("{}.{}", file.package(), service.name()), service))
        })
        .collect()
}

#[test]
fn descriptor_set_lists_the_four_services_with_their_rpcs() {
    let set = decode_set();
    let found = services(&set);
    for (service_name, rpcs) in EXPECTED {
        let (_, service) = found
            .iter()
            .find(|(name, _)| name == service_name)
            .unwrap_or_else(|| panic!("service {service_name} missing"));
        let mut actual: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        let mut expected: Vec<&str> = rpcs.to_vec();
        actual.sort_unstable();
        expected.sort_unstable();
        assert_eq!(actual, expected, "rpcs of {service_name}");
    }
    let tfesi_services = found.iter().filter(|(name, _)| name.starts_with("tfesi.")).count();
    assert_eq!(tfesi_services, crate::SERVICE_NAMES.len());
    for name in crate::SERVICE_NAMES {
        assert!(found.iter().any(|(found_name, _)| found_name == name));
    }
}

#[test]
fn streaming_rpcs_are_declared_as_streams() {
    let set = decode_set();
    let found = services(&set);
    let method = |service: &str, rpc: &str| {
        let (_, descriptor) = found
            .iter()
            .find(|(name, _)| name == service)
            .unwrap_or_else(|| panic!("service {service} missing"));
        descriptor
            .method
            .iter()
            .find(|m| m.name() == rpc)
            .cloned()
            .unwrap_or_else(|| panic!("rpc {service}/{rpc} missing"))
    };
    let client_streaming =
        [("tfesi.ingest.v1.Ingest", "Upload"), ("tfesi.inference.v1.Inference", "RegisterModel")];
    for (service, rpc) in client_streaming {
        let descriptor = method(service, rpc);
        assert!(descriptor.client_streaming(), "{rpc} client-streaming");
        assert!(!descriptor.server_streaming(), "{rpc} unary response");
    }
    let server_streaming = [
        ("tfesi.preprocess.v1.Preprocess", "Prepare"),
        ("tfesi.registry.v1.Registry", "WatchEpisode"),
        ("tfesi.registry.v1.Registry", "ExportSnapshot"),
        ("tfesi.registry.v1.Registry", "WatchLabels"),
    ];
    for (service, rpc) in server_streaming {
        let descriptor = method(service, rpc);
        assert!(descriptor.server_streaming(), "{rpc} server-streaming");
        assert!(!descriptor.client_streaming(), "{rpc} unary request");
    }
    assert!(!method("tfesi.registry.v1.Registry", "RecordFollowUp").server_streaming());
}

#[test]
fn descriptor_set_includes_imported_well_known_types() {
    let set = decode_set();
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert!(names.contains(&"google/protobuf/timestamp.proto"), "{names:?}");
    assert!(names.contains(&"tfesi/common/v1/common.proto"), "{names:?}");
}

#[test]
fn every_enum_starts_with_an_unspecified_zero_value() {
    let set = decode_set();
    let tfesi_files = set.file.iter().filter(|f| f.package().starts_with("tfesi."));
    let mut checked = 0_usize;
    for file in tfesi_files {
        let nested = file.message_type.iter().flat_map(|m| m.enum_type.iter());
        for enumeration in file.enum_type.iter().chain(nested) {
            let first = enumeration.value.first().expect("enum has values");
            assert_eq!(first.number(), 0, "{}", enumeration.name());
            assert!(
                first.name().ends_with("_UNSPECIFIED"),
                "{} zero value is {}",
                enumeration.name(),
                first.name()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} enums checked");
}

#[test]
fn generated_messages_round_trip() {
    use crate::common::v1::{Date, SpinalLevel};
    use crate::registry::v1::{EpisodeDetails, FollowUpInput, FollowUpMethod};

    let details = EpisodeDetails {
        patient_id: "5b6f7d1e-3c2a-4e8b-9f10-2a3b4c5d6e7f".to_owned(),
        planned_levels: vec![SpinalLevel::L4L5 as i32, SpinalLevel::S1 as i32],
        baseline_leg_nrs: 7,
        baseline_back_nrs: Some(4),
        ..Default::default()
    };
    let decoded = EpisodeDetails::decode(details.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded, details);

    let follow_up = FollowUpInput {
        follow_up_date: Some(Date { year: 2026, month: 3, day: 1 }),
        leg_nrs: 2,
        method: FollowUpMethod::Phone as i32,
        ..Default::default()
    };
    let decoded = FollowUpInput::decode(follow_up.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded.method(), FollowUpMethod::Phone);
    assert_eq!(decoded.back_nrs, None);
}
