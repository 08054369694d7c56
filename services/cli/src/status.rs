//! `tfesi status`: asks each service's `grpc.health.v1` endpoint how it is.

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

/// Prints the table (or JSON); fails (exit 1) unless every service is SERVING.
pub fn run(endpoints: &crate::endpoints::Endpoints, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let services = [
        ("ingest", "tfesi.ingest.v1.Ingest", endpoints.ingest.clone()),
        ("preprocess", "tfesi.preprocess.v1.Preprocess", endpoints.preprocess.clone()),
        ("inference", "tfesi.inference.v1.Inference", endpoints.inference.clone()),
        ("registry", "tfesi.registry.v1.Registry", endpoints.registry.clone()),
    ];
    let report: Vec<ServiceHealth> = runtime.block_on(async {
        let mut report = Vec::new();
        for (service, grpc_name, endpoint) in services {
            let status = check(&endpoint, grpc_name).await;
            report.push(ServiceHealth { service, endpoint, status });
        }
        report
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{:<12} {:<28} STATUS", "SERVICE", "ENDPOINT");
        for row in &report {
            println!("{:<12} {:<28} {}", row.service, row.endpoint, row.status);
        }
    }
    let unhealthy: Vec<&str> =
        report.iter().filter(|row| row.status != "SERVING").map(|row| row.service).collect();
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
