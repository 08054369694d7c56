//! `tfesi status`: asks each service's `grpc.health.v1` endpoint how it is, then (with the
//! command's token) which models serve and on which execution provider, and how the pipeline's
//! queue stands. Parts that cannot be read are reported as such; only health decides the exit
//! code.

use std::time::Duration;

use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Serialize)]
struct ServiceHealth {
    service: &'static str,
    endpoint: String,
    status: String,
}

/// A serving model: name:version, its role and the provider its self-test ran on.
#[derive(Debug, Serialize)]
struct ServingModel {
    model: String,
    role: &'static str,
    execution_provider: String,
    self_test_passed: bool,
}

/// The pipeline's queue, from preprocess.
#[derive(Debug, Serialize)]
struct Pipeline {
    queue_depth: u64,
    in_flight: u64,
    pending: u64,
    dead_letters: u64,
    consumers: u32,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    services: Vec<ServiceHealth>,
    models: Result<Vec<ServingModel>, String>,
    pipeline: Result<Pipeline, String>,
}

async fn serving_models(endpoints: &crate::endpoints::Endpoints) -> anyhow::Result<Vec<ServingModel>> {
    use tfesi_proto::inference::v1 as pb;
    let channel = endpoints.connect("inference", &endpoints.inference).await?;
    let listing = pb::inference_client::InferenceClient::new(channel)
        .list_models(pb::ListModelsRequest::default())
        .await
        .map_err(crate::endpoints::call_failed("Inference.ListModels"))?
        .into_inner();
    let mut models = Vec::new();
    for (role, wanted) in [("champion", &listing.champion), ("shadow", &listing.shadow)] {
        let Some(wanted) = wanted else { continue };
        let info = listing.models.iter().find(|info| {
            info.card.as_ref().and_then(|card| card.model.as_ref()).is_some_and(|model| model == wanted)
        });
        let self_test = info.and_then(|info| info.self_test.as_ref());
        let provider = self_test
            .and_then(|test| {
                tfesi_proto::common::v1::ExecutionProvider::try_from(test.execution_provider).ok()
            })
            .map_or("unknown".to_owned(), |provider| {
                provider.as_str_name().trim_start_matches("EXECUTION_PROVIDER_").to_ascii_lowercase()
            });
        models.push(ServingModel {
            model: format!("{}:{}", wanted.name, wanted.version),
            role,
            execution_provider: provider,
            self_test_passed: self_test.is_some_and(|test| test.passed),
        });
    }
    Ok(models)
}

async fn pipeline(endpoints: &crate::endpoints::Endpoints) -> anyhow::Result<Pipeline> {
    use tfesi_proto::preprocess::v1 as pb;
    let channel = endpoints.connect("preprocess", &endpoints.preprocess).await?;
    let status = pb::preprocess_client::PreprocessClient::new(channel)
        .get_pipeline_status(pb::GetPipelineStatusRequest::default())
        .await
        .map_err(crate::endpoints::call_failed("Preprocess.GetPipelineStatus"))?
        .into_inner();
    Ok(Pipeline {
        queue_depth: status.queue_depth,
        in_flight: status.in_flight,
        pending: status.pending,
        dead_letters: status.dead_letter_count,
        consumers: status.consumer_count,
    })
}

/// Prints the table (or JSON); fails (exit 1) unless every service is SERVING.
pub fn run(endpoints: &crate::endpoints::Endpoints, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let services = [
        ("ingest", "tfesi.ingest.v1.Ingest", endpoints.ingest.clone()),
        ("preprocess", "tfesi.preprocess.v1.Preprocess", endpoints.preprocess.clone()),
        ("inference", "tfesi.inference.v1.Inference", endpoints.inference.clone()),
        ("registry", "tfesi.registry.v1.Registry", endpoints.registry.clone()),
    ];
    let report: StatusReport = runtime.block_on(async {
        let mut health = Vec::new();
        for (service, grpc_name, endpoint) in services {
            let status = check(&endpoint, grpc_name).await;
            health.push(ServiceHealth { service, endpoint, status });
        }
        let describe = |error: anyhow::Error| format!("{error:#}");
        StatusReport {
            services: health,
            models: serving_models(endpoints).await.map_err(describe),
            pipeline: pipeline(endpoints).await.map_err(describe),
        }
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{:<12} {:<28} STATUS", "SERVICE", "ENDPOINT");
        for row in &report.services {
            println!("{:<12} {:<28} {}", row.service, row.endpoint, row.status);
        }
        println!();
        match &report.models {
            Ok(models) if models.is_empty() => {
                println!("models      no champion: promote one (tfesi model promote)")
            }
            Ok(models) => {
                for model in models {
                    let test = if model.self_test_passed { "self-test passed" } else { "SELF-TEST FAILED" };
                    println!("{:<11} {} on {} ({test})", model.role, model.model, model.execution_provider);
                }
            }
            Err(error) => println!("models      unknown: {error}"),
        }
        match &report.pipeline {
            Ok(pipeline) => println!(
                "pipeline    {} queued, {} in flight, {} pending, {} dead letters, {} consumers",
                pipeline.queue_depth,
                pipeline.in_flight,
                pipeline.pending,
                pipeline.dead_letters,
                pipeline.consumers
            ),
            Err(error) => println!("pipeline    unknown: {error}"),
        }
    }
    let unhealthy: Vec<&str> =
        report.services.iter().filter(|row| row.status != "SERVING").map(|row| row.service).collect();
    if unhealthy.is_empty() { Ok(()) } else { anyhow::bail!("not serving: {}", unhealthy.join(", ")) }
}

/// The health of `grpc_name` at `endpoint` as one word (`SERVING`, `UNREACHABLE`, ...).
pub(crate) async fn check(endpoint: &str, grpc_name: &str) -> String {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(endpoint.to_owned()) else {
        return "INVALID_ENDPOINT".to_owned();
    };
    let Ok(channel) =
        endpoint.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(2)).connect().await
    else {
        return "UNREACHABLE".to_owned();
    };
    match HealthClient::new(channel).check(HealthCheckRequest { service: grpc_name.to_owned() }).await {
        Ok(response) => ServingStatus::try_from(response.into_inner().status)
            .map(|status| status.as_str_name().to_owned())
            .unwrap_or_else(|_| "UNKNOWN".to_owned()),
        Err(status) => format!("ERROR ({})", status.code()),
    }
}
