//! Conversions between the `tfesi.inference.v1` messages and the domain types.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as pb;

use crate::card::{ModelCard, valid_identifier};
use crate::config::ProviderKind;
use crate::error::{Error, Result};
use crate::manager::{ModelInfo, PredictRequest, Prediction, Role, RowOutcome};
use crate::model::{PredictInput, decode_f32_le};
use crate::repository::ModelKey;
use crate::session::SelfTestReport;

/// A `ModelRef` as a [`ModelKey`]; `field` names it in errors.
pub fn model_key(field: &str, model: Option<&common::ModelRef>) -> Result<ModelKey> {
    let model = model.ok_or_else(|| Error::invalid(field, "required"))?;
    if model.name.is_empty() {
        return Err(Error::invalid(format!("{field}.name"), "required"));
    }
    if !valid_identifier(&model.name) {
        return Err(Error::invalid(format!("{field}.name"), "must be 1 to 64 characters of [a-z0-9._-]"));
    }
    if !valid_identifier(&model.version) {
        return Err(Error::invalid(
            format!("{field}.version"),
            "must be 1 to 64 characters of [A-Za-z0-9._-]",
        ));
    }
    Ok(ModelKey::new(model.name.clone(), model.version.clone()))
}

/// A [`ModelKey`] as a `ModelRef`.
pub fn model_ref(key: &ModelKey) -> common::ModelRef {
    common::ModelRef { name: key.name.clone(), version: key.version.clone() }
}

/// Checks an audited reason (1 to 500 characters).
pub fn reason(text: &str) -> Result<()> {
    if (1..=500).contains(&text.chars().count()) {
        Ok(())
    } else {
        Err(Error::invalid("reason", "must be 1 to 500 characters"))
    }
}

fn row_input(index: usize, row: pb::PredictRow) -> Result<PredictInput> {
    let field = |name: &str| format!("rows[{index}].{name}");
    let image = row.image.ok_or_else(|| Error::invalid(field("image"), "required"))?;
    if common::DType::try_from(image.dtype) != Ok(common::DType::Float32) {
        return Err(Error::invalid(field("image.dtype"), "must be D_TYPE_FLOAT32"));
    }
    if image.shape.is_empty() || image.shape.contains(&0) {
        return Err(Error::invalid(field("image.shape"), "every dimension must be at least 1"));
    }
    let image_shape: Vec<usize> = image.shape.iter().map(|dim| *dim as usize).collect();
    let values = decode_f32_le(&field("image.data"), &image.data)?;
    let expected: Option<usize> =
        image_shape.iter().try_fold(1usize, |product, dim| product.checked_mul(*dim));
    if expected != Some(values.len()) {
        return Err(Error::invalid(
            field("image.data"),
            format!("{} float32 values for shape {:?}", values.len(), image.shape),
        ));
    }
    let clinical = row.clinical.into_iter().map(|feature| (feature.name, feature.value)).collect();
    Ok(PredictInput { spec_version: row.spec_version, image_shape, image: Arc::new(values), clinical })
}

/// A `PredictRequest` as the domain request, with the row ids to echo back.
pub fn predict_request(
    request: pb::PredictRequest,
    max_rows: usize,
) -> Result<(PredictRequest, Vec<String>)> {
    if request.rows.is_empty() || request.rows.len() > max_rows {
        return Err(Error::invalid(
            "rows",
            format!("{} rows; 1 to {max_rows} are accepted", request.rows.len()),
        ));
    }
    let model = request.model.as_ref().map(|model| model_key("model", Some(model))).transpose()?;
    let mut row_ids: Vec<String> = Vec::with_capacity(request.rows.len());
    for (index, row) in request.rows.iter().enumerate() {
        if !(1..=128).contains(&row.row_id.chars().count()) {
            return Err(Error::invalid(format!("rows[{index}].row_id"), "must be 1 to 128 characters"));
        }
        if row_ids.contains(&row.row_id) {
            return Err(Error::invalid(format!("rows[{index}].row_id"), "is not unique in the request"));
        }
        row_ids.push(row.row_id.clone());
    }
    let rows = request
        .rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| row_input(index, row))
        .collect::<Result<Vec<_>>>()?;
    Ok((PredictRequest { rows, model, skip_shadow: request.skip_shadow }, row_ids))
}

/// The execution provider enum.
pub fn provider(kind: ProviderKind) -> common::ExecutionProvider {
    match kind {
        ProviderKind::Cpu => common::ExecutionProvider::Cpu,
        ProviderKind::Cuda => common::ExecutionProvider::Cuda,
    }
}

fn role(role: Role) -> common::ModelRole {
    match role {
        Role::Champion => common::ModelRole::Champion,
        Role::Shadow => common::ModelRole::Shadow,
        Role::Explicit => common::ModelRole::Explicit,
    }
}

fn prediction(prediction: &Prediction) -> pb::Prediction {
    let label = if prediction.probability >= prediction.threshold {
        common::OutcomeLabel::Good
    } else {
        common::OutcomeLabel::Poor
    };
    pb::Prediction {
        probability: f64::from(prediction.probability),
        threshold: f64::from(prediction.threshold),
        predicted_label: label.into(),
        model: Some(model_ref(&prediction.model)),
        execution_provider: provider(prediction.provider.kind).into(),
        role: role(prediction.role).into(),
        spec_version: prediction.spec_version.clone(),
        batch_size: u32::try_from(prediction.batch_size).unwrap_or(u32::MAX),
        latency: prost_types::Duration::try_from(prediction.latency).ok(),
    }
}

/// Domain outcomes as a `PredictResponse`.
pub fn predict_response(outcomes: &[RowOutcome], row_ids: Vec<String>) -> pb::PredictResponse {
    let results = outcomes
        .iter()
        .zip(row_ids)
        .map(|(outcome, row_id)| pb::RowResult {
            row_id,
            prediction: Some(prediction(&outcome.prediction)),
            shadow: outcome.shadow.as_ref().map(prediction),
            shadow_error: outcome.shadow_error.clone(),
        })
        .collect();
    pb::PredictResponse { results }
}

/// A self-test report as a `SelfTestResult`.
pub fn self_test(report: &SelfTestReport) -> pb::SelfTestResult {
    pb::SelfTestResult {
        passed: report.passed,
        vectors: u32::try_from(report.vectors).unwrap_or(u32::MAX),
        max_abs_error: f64::from(report.max_abs_error),
        tolerance: f64::from(report.tolerance),
        execution_provider: provider(report.provider).into(),
        message: report.message.clone(),
    }
}

fn card(card: &ModelCard, card_json: &str) -> pb::ModelCard {
    let inputs = card
        .inputs
        .iter()
        .map(|input| pb::InputSpec {
            name: input.name.clone(),
            dtype: common::DType::Float32.into(),
            shape: input
                .shape
                .iter()
                .map(|dim| dim.map_or(-1, |size| i64::try_from(size).unwrap_or(-1)))
                .collect(),
        })
        .collect();
    pb::ModelCard {
        model: Some(model_ref(&ModelKey::new(card.name.clone(), card.version.clone()))),
        description: card.description.clone(),
        spec_version: card.spec_version.clone(),
        inputs,
        clinical_features: card.clinical_features.iter().map(|feature| feature.name.clone()).collect(),
        output_description: card.output.meaning.clone(),
        threshold: f64::from(card.threshold),
        training_snapshot_id: card.training_snapshot_id.clone().unwrap_or_default(),
        metrics: card.validation_metrics.clone().into_iter().collect(),
        intended_use: card.intended_use.clone(),
        limitations: card.limitations.clone(),
        synthetic: card.synthetic,
        card_json: card_json.to_owned(),
    }
}

/// A domain [`ModelInfo`] as the message.
pub fn model_info(info: &ModelInfo, size_bytes: u64) -> pb::ModelInfo {
    let serving_state = match info.role {
        Some(Role::Champion) => pb::ServingState::Champion,
        Some(Role::Shadow) => pb::ServingState::Shadow,
        Some(Role::Explicit) | None => pb::ServingState::Idle,
    };
    let report = info
        .registration
        .as_ref()
        .map(|record| &record.self_test)
        .or_else(|| info.live.as_ref().map(|model| model.self_test()));
    pb::ModelInfo {
        card: Some(card(&info.card, &info.card_json)),
        serving_state: serving_state.into(),
        sha256: info.card.model_sha256.clone(),
        size_bytes,
        registered_at: Some(prost_types::Timestamp::from(info.registered_at)),
        registered_by: info
            .registration
            .as_ref()
            .map(|record| record.registered_by.clone())
            .unwrap_or_default(),
        self_test: report.map(self_test),
    }
}

/// The caller's deadline from the `grpc-timeout` header, a little early (a tenth of the timeout,
/// at most 10 ms): the transport's own timer started when the request arrived, before its body
/// was decoded, and when it fires first the caller sees CANCELLED instead of DEADLINE_EXCEEDED.
pub fn deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Instant> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let split = text.len().checked_sub(1)?;
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    let margin = (timeout / 10).min(Duration::from_millis(10));
    Instant::now().checked_add(timeout.saturating_sub(margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_becomes_a_deadline_slightly_before_it() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("grpc-timeout", "200m".parse().expect("ascii"));
        let before = Instant::now();
        let deadline = deadline(&metadata).expect("deadline");
        let remaining = deadline.duration_since(before);
        assert!(
            remaining <= Duration::from_millis(191) && remaining >= Duration::from_millis(185),
            "{remaining:?}"
        );
        metadata.insert("grpc-timeout", "soon".parse().expect("ascii"));
        assert!(super::deadline(&metadata).is_none());
    }

    #[test]
    fn duplicate_row_ids_are_refused() {
        let row = pb::PredictRow { row_id: "a".to_owned(), ..Default::default() };
        let request = pb::PredictRequest { rows: vec![row.clone(), row], ..Default::default() };
        let error = predict_request(request, 64).expect_err("refused");
        assert!(
            matches!(error, Error::InvalidArgument { ref field, .. } if field == "rows[1].row_id"),
            "{error}"
        );
    }
}
