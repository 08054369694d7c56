//! Roles against the real binaries: every RPC of the four services, called with no token,
//! with a token of each role, with an expired token and with a token signed by another key.
//! The expected answer of each comes from the one policy table (`tfesi_auth::policy::POLICY`),
//! and a test checks that the table covers exactly the RPCs the services serve.

use std::time::Duration;

use tfesi_auth::Role;
use tfesi_auth::policy::{POLICY, allowed_roles};
use tfesi_e2e::stack::Stack;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// Calls `path` with one empty message, as a stream (valid for unary and streaming RPCs
/// alike), and returns the status code (`Ok` when the call was let through and answered).
async fn call(channel: Channel, path: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let mut request = tonic::Request::new(tokio_stream::once(()));
    request.set_timeout(Duration::from_secs(10));
    if let Some(token) = token {
        let value = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token");
        request.metadata_mut().insert("authorization", value);
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::try_from(path.to_owned()).expect("method path");
    match grpc.streaming(request, path, codec).await {
        Ok(mut response) => match response.get_mut().message().await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        },
        Err(status) => status.code(),
    }
}

fn service_of(path: &str) -> &'static str {
    match path.split('/').nth(1) {
        Some("tfesi.ingest.v1.Ingest") => "ingest",
        Some("tfesi.preprocess.v1.Preprocess") => "preprocess",
        Some("tfesi.inference.v1.Inference") => "inference",
        Some("tfesi.registry.v1.Registry") => "registry",
        other => panic!("unknown service in {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_each_role_as_the_policy_table_says() {
    let stack = Stack::start(&[]).await;
    let mut channels = std::collections::HashMap::new();
    for (process, name) in stack.services() {
        channels.insert(name, Stack::plain_channel(process.address).await);
    }
    let tokens: Vec<(Role, String)> =
        Role::ALL.iter().map(|role| (*role, stack.token(&format!("roles-{role}"), &[*role]))).collect();
    let other_key = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(other_key.path(), "a-different-secret-of-at-least-thirty-two-bytes").expect("write");
    let forged = tfesi_auth::mint_hs256(
        &std::fs::read(other_key.path()).expect("read"),
        &tfesi_auth::AuthConfig::default(),
        "forger",
        &[Role::Admin],
        600,
    )
    .expect("mint");

    let mut mismatches = Vec::new();
    // Refusals of valid tokens by the services that keep an audit log (inference has none).
    let mut audited_refusals = 0_i64;
    for (path, _) in POLICY {
        let channel = channels[service_of(path)].clone();
        let anonymous = call(channel.clone(), path, None).await;
        if anonymous != Code::Unauthenticated {
            mismatches.push(format!("{path} without a token: {anonymous:?}"));
        }
        let forged_answer = call(channel.clone(), path, Some(&forged)).await;
        if forged_answer != Code::Unauthenticated {
            mismatches.push(format!("{path} with a forged token: {forged_answer:?}"));
        }
        let allowed = allowed_roles(path).expect("in the table");
        for (role, token) in &tokens {
            let code = call(channel.clone(), path, Some(token)).await;
            let let_through = !matches!(code, Code::Unauthenticated | Code::PermissionDenied);
            if code == Code::PermissionDenied && service_of(path) != "inference" {
                audited_refusals += 1;
            }
            if allowed.contains(role) != let_through {
                mismatches.push(format!("{path} as {role}: {code:?} (allowed: {})", allowed.contains(role)));
            }
        }
    }
    // Health and reflection stay public (probes, tooling).
    let health = call(channels["registry"].clone(), "/grpc.health.v1.Health/Check", None).await;
    assert_eq!(health, Code::Ok, "health needs no token");
    let pool = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{}", stack.database))
        .await
        .expect("database");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE outcome = 'permission_denied' AND role = 'none'",
    )
    .fetch_one(&pool)
    .await
    .expect("count refusals");
    pool.close().await;
    stack.finish().await;
    assert!(audited_refusals > 0, "no valid token was refused");
    assert_eq!(recorded, audited_refusals, "every refusal of a valid token is in the audit log");
    assert!(
        mismatches.is_empty(),
        "{} answers differ from the policy:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_with_a_reason() {
    let stack = Stack::start(&[]).await;
    let secret = std::fs::read(stack.auth_secret_file()).expect("secret");
    let config = tfesi_auth::AuthConfig { leeway_s: 0, ..tfesi_auth::AuthConfig::default() };
    // Issued long ago: expired well beyond the services' leeway.
    let expired = {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let claims = tfesi_auth::Claims {
            sub: "late-nurse".to_owned(),
            roles: vec!["nurse".to_owned()],
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
            exp: now - 3600,
            iat: now - 7200,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.trim_ascii()),
        )
        .expect("encode")
    };
    let channel = Stack::plain_channel(stack.registry.address).await;
    let mut client = tfesi_proto::registry::v1::registry_client::RegistryClient::new(channel);
    let mut request = tonic::Request::new(tfesi_proto::registry::v1::ListDueFollowUpsRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {expired}").parse().expect("ascii"));
    let status = client.list_due_follow_ups(request).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());
    stack.finish().await;
}
