//! Series selection on synthetic studies with distractors (T1 and STIR sagittal, T2 axial, localizer).

use std::collections::BTreeMap;

use bytes::Bytes;
use tfesi_ingest::selection::{SelectionRules, SeriesInput, select};
use tfesi_ingest::{ParseLimits, Verdict, parse_instance};
use tfesi_synth::protocol::SeriesKind;

#[test]
fn the_t2_sagittal_series_is_chosen_in_every_synthetic_study() {
    for index in 0..3 {
        let study = tfesi_synth::generate_patient(11, index, &Default::default()).unwrap();
        let mut series: BTreeMap<String, (SeriesKind, SeriesInput)> = BTreeMap::new();
        for file in &study.files {
            let parsed = parse_instance(Bytes::from(file.bytes.clone()), &ParseLimits::default()).unwrap();
            assert_eq!(parsed.verdict, Verdict::Accept);
            let uid = parsed.identity.series_uid.clone();
            let entry = series
                .entry(uid.clone())
                .or_insert_with(|| (file.kind, SeriesInput { series_uid: uid, instances: Vec::new() }));
            entry.1.instances.push(parsed.image);
        }
        let inputs: Vec<SeriesInput> = series.values().map(|(_, s)| s.clone()).collect();
        let selection = select(&inputs, &SelectionRules::default());
        let chosen = selection.selected.clone().expect("a T2 sagittal series is selected");
        assert_eq!(series[&chosen].0, SeriesKind::T2Sagittal, "{:#?}", selection.decisions);
        assert_eq!(selection.decisions.len(), series.len());

        let without_t2: Vec<SeriesInput> = series
            .values()
            .filter(|(kind, _)| *kind != SeriesKind::T2Sagittal)
            .map(|(_, s)| s.clone())
            .collect();
        let none = select(&without_t2, &SelectionRules::default());
        assert_eq!(none.selected, None, "{:#?}", none.decisions);
    }
}
