//! `tfesi model`: `register` (Inference.RegisterModel, here) beside the serving commands of
//! [`crate::ops::ModelCommand`] (list, promote, shadow, rollback, performance), which this enum
//! flattens so that both appear as `tfesi model <command>`.
//!
//! `register` uploads a model directory as the model repository lays it out (`model.json`, the
//! card, and `model.onnx`): a header with the card, size and SHA-256, then the file in 1 MiB
//! chunks. The server self-tests the model before storing it; a model that fails is not stored.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as inference;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tokio::io::AsyncReadExt as _;

use crate::endpoints::{Endpoints, call_failed};
use crate::ops;
use crate::records_view as view;

/// Bytes per upload message (well under gRPC's default 4 MiB message limit).
const CHUNK_BYTES: usize = 1 << 20;

/// `tfesi model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Registers a model version from a directory holding model.json (the card) and
    /// model.onnx; the server self-tests it first. Large files may need a larger --timeout-s.
    Register(RegisterArgs),
    #[command(flatten)]
    Serving(ops::ModelCommand),
}

/// `tfesi model register`
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Model directory (as in the model repository: `<name>/<version>/`).
    pub dir: PathBuf,
    /// Also make it the shadow once its self-test passed.
    #[arg(long)]
    pub shadow: bool,
}

/// Runs a `model` command.
pub async fn run(endpoints: &Endpoints, json_output: bool, command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Register(args) => register(endpoints, json_output, &args).await,
        ModelCommand::Serving(command) => ops::model(endpoints, json_output, command).await,
    }
}

/// The card's name and version, read from `model.json`.
fn card_identity(card_path: &Path, card_json: &str) -> anyhow::Result<common::ModelRef> {
    let card: serde_json::Value = serde_json::from_str(card_json)
        .with_context(|| format!("{} is not JSON: is it a tfesi model card?", card_path.display()))?;
    let field = |key: &str| {
        card[key].as_str().filter(|text| !text.is_empty()).map(str::to_owned).with_context(|| {
            format!(
                "{} has no \"{key}\" string: a tfesi model card names the model and its version",
                card_path.display()
            )
        })
    };
    Ok(common::ModelRef { name: field("name")?, version: field("version")? })
}

/// SHA-256 (hex) and size of a file, read in chunks.
async fn digest(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file =
        tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let (mut hasher, mut buffer, mut size) = (Sha256::new(), vec![0_u8; CHUNK_BYTES], 0_u64);
    loop {
        let read = file.read(&mut buffer).await.with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            return Ok((hex::encode(hasher.finalize()), size));
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
}

async fn register(endpoints: &Endpoints, json_output: bool, args: &RegisterArgs) -> anyhow::Result<()> {
    let card_path = args.dir.join("model.json");
    let onnx_path = args.dir.join("model.onnx");
    let card_json = tokio::fs::read_to_string(&card_path).await.with_context(|| {
        format!("cannot read {}: a model directory holds model.json and model.onnx", card_path.display())
    })?;
    let model = card_identity(&card_path, &card_json)?;
    let (sha256, size_bytes) = digest(&onnx_path).await?;
    if size_bytes == 0 {
        anyhow::bail!("{} is empty: export the model to ONNX first", onnx_path.display());
    }
    let file = tokio::fs::File::open(&onnx_path)
        .await
        .with_context(|| format!("cannot open {}", onnx_path.display()))?;
    // A read error ends the upload early; it is kept here to report it instead of the
    // server's size mismatch.
    let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let header = inference::RegisterModelRequest {
        part: Some(inference::register_model_request::Part::Header(inference::RegisterModelHeader {
            model: Some(model.clone()),
            card_json,
            sha256: sha256.clone(),
            size_bytes,
            set_as_shadow: args.shadow,
        })),
    };
    let errors = Arc::clone(&read_error);
    let chunks = futures::stream::unfold(Some(file), move |file| {
        let errors = Arc::clone(&errors);
        async move {
            let mut file = file?;
            let mut buffer = vec![0_u8; CHUNK_BYTES];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(read) => {
                    buffer.truncate(read);
                    let part = inference::register_model_request::Part::Chunk(buffer);
                    Some((inference::RegisterModelRequest { part: Some(part) }, Some(file)))
                }
                Err(error) => {
                    if let Ok(mut slot) = errors.lock() {
                        *slot = Some(error);
                    }
                    None
                }
            }
        }
    });
    let upload = futures::StreamExt::chain(futures::stream::iter([header]), chunks);
    let mut client = InferenceClient::new(endpoints.connect("inference", &endpoints.inference).await?);
    let answer = client.register_model(upload).await;
    if let Some(error) = read_error.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(anyhow::Error::from(error)
            .context(format!("cannot read {} while uploading it", onnx_path.display())));
    }
    let response = answer
        .map_err(|status| {
            let hint = match status.code() {
                tonic::Code::AlreadyExists => "; give the changed model a new version in model.json",
                tonic::Code::FailedPrecondition => {
                    "; the model was not stored: fix it or its card's self-test vectors"
                }
                tonic::Code::DeadlineExceeded => "; allow more time with --timeout-s",
                _ => "",
            };
            anyhow::anyhow!("{}{hint}", call_failed("Inference.RegisterModel")(status))
        })?
        .into_inner();
    let info = response.model.unwrap_or_default();
    let test = response.self_test.unwrap_or_default();
    let state = inference::ServingState::try_from(info.serving_state).map_or_else(
        |_| "unknown".to_owned(),
        |s| s.as_str_name().trim_start_matches("SERVING_STATE_").to_ascii_lowercase(),
    );
    let provider = view::provider_name(test.execution_provider);
    let value = json!({
        "model": view::model_text(Some(&model)),
        "created": response.created,
        "state": state,
        "sha256": sha256,
        "size_bytes": size_bytes,
        "self_test": {
            "passed": test.passed, "vectors": test.vectors, "max_abs_error": test.max_abs_error,
            "tolerance": test.tolerance, "execution_provider": provider, "message": test.message,
        },
    });
    if json_output {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{} {} ({} bytes, sha256 {}); state {state}",
            view::model_text(Some(&model)),
            if response.created { "registered" } else { "was already registered identically" },
            size_bytes,
            sha256
        );
        println!(
            "self-test {}: {} vectors, max error {:.2e} (tolerance {:.1e}) on {provider}",
            if test.passed { "passed" } else { "FAILED" },
            test.vectors,
            test.max_abs_error,
            test.tolerance
        );
        if info.serving_state == inference::ServingState::Idle as i32 {
            let name = view::model_text(Some(&model));
            println!(
                "next: `tfesi model shadow {name} --reason ...` or `tfesi model promote {name} --reason ...`"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_names_the_model() {
        let path = Path::new("model.json");
        let model = card_identity(path, r#"{"name": "tfesi-test", "version": "2"}"#).unwrap();
        assert_eq!((model.name.as_str(), model.version.as_str()), ("tfesi-test", "2"));
        let error = card_identity(path, r#"{"name": "tfesi-test"}"#).unwrap_err().to_string();
        assert!(error.contains("\"version\""), "{error}");
        assert!(card_identity(path, "not json").is_err());
    }
}
