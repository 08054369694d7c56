//! The audit log against the real binaries: re-identification and lookups are recorded with
//! the caller the token names and the purpose given, a call refused to a valid token is
//! recorded as `permission_denied`, `tfesi audit verify` accepts the chain,
//! the table refuses edits, and an edit made around the refusal is found by `verify`.

use tfesi_auth::Role;
use tfesi_e2e::process::binary;
use tfesi_e2e::stack::Stack;
use tfesi_proto::ingest::v1 as pb;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tonic::Code;
use tonic::metadata::MetadataValue;

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token");
    request.metadata_mut().insert("authorization", value);
    request
}

async fn tfesi_audit(stack: &Stack, args: &[&str]) -> std::process::Output {
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", stack.database);
    tokio::process::Command::new(binary("tfesi"))
        .arg("audit")
        .args(args)
        .args(["--database-url", &url])
        .output()
        .await
        .expect("tfesi audit runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reidentification_is_audited_under_the_callers_name_and_tampering_is_detected() {
    let stack = Stack::start(&[]).await;
    let mut ingest = IngestClient::new(Stack::plain_channel(stack.ingest.address).await);
    let app = stack.token("ward-app", &[Role::App]);
    let nurse = stack.token("nurse-ann", &[Role::Nurse]);

    let lookup = pb::LookupIdsRequest {
        key: Some(pb::lookup_ids_request::Key::Mrn("SYNTH-AUDIT-1".to_owned())),
        create_patient_if_missing: true,
        identity: Some(pb::PatientIdentity {
            mrn: "SYNTH-AUDIT-1".to_owned(),
            family_name: "Synthetic".to_owned(),
            given_name: "Audit".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let patient_id =
        ingest.lookup_ids(with_token(lookup, &app)).await.expect("lookup").into_inner().patient_id;

    let resolve = |purpose: &str| pb::ResolvePatientRequest {
        patient_id: patient_id.clone(),
        purpose: purpose.to_owned(),
    };
    let refused =
        ingest.resolve_patient(with_token(resolve("curiosity"), &app)).await.expect_err("app may not");
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    let identity = ingest
        .resolve_patient(with_token(resolve("2-month follow-up call"), &nurse))
        .await
        .expect("a nurse may re-identify")
        .into_inner()
        .identity
        .expect("identity");
    assert_eq!(identity.given_name, "Audit");

    // Records are chained after their commit; verify chains what is committed, then checks.
    let verified = tfesi_audit(&stack, &["verify"]).await;
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{out}{}", String::from_utf8_lossy(&verified.stderr));
    assert!(out.contains("records  3") && out.contains("intact"), "{out}");

    let listed = tfesi_audit(&stack, &["list", "--json"]).await;
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let records: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let records = records.as_array().expect("array");
    assert_eq!(records.len(), 3, "a lookup, a refused and a done re-identification: {records:#?}");
    let resolved = &records[0];
    assert_eq!(resolved["action"], "resolve_patient");
    assert_eq!(resolved["actor"], "nurse-ann");
    assert_eq!(resolved["role"], "nurse");
    assert_eq!(resolved["purpose"], "2-month follow-up call");
    assert_eq!(resolved["target"], format!("patient:{patient_id}"));
    // The refusal is written by the auth layer before PERMISSION_DENIED is answered.
    let denied = &records[1];
    assert_eq!(denied["action"], "resolve_patient");
    assert_eq!(denied["actor"], "ward-app");
    assert_eq!(denied["role"], "none");
    assert_eq!(denied["outcome"], "permission_denied");
    assert_eq!(denied["target"], "rpc:tfesi.ingest.v1.Ingest/ResolvePatient");
    assert_eq!(denied["purpose"], "token roles [app]");
    assert_eq!(records[2]["actor"], "ward-app");
    assert_eq!(records[2]["role"], "app");
    assert!(resolved["hash"].is_string() && records[2]["prev_hash"].is_string(), "chained: {records:#?}");
    assert_eq!(resolved["prev_hash"], denied["hash"], "chained");
    assert_eq!(denied["prev_hash"], records[2]["hash"], "chained");

    // The table refuses edits; a superuser who switches the refusal off is caught by verify.
    let pool = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{}", stack.database))
        .await
        .expect("database");
    let edit = "UPDATE audit.log SET actor = 'someone-else' WHERE action = 'resolve_patient' AND actor = 'nurse-ann'";
    let refused = sqlx::query(edit).execute(&pool).await.expect_err("append-only");
    assert!(refused.to_string().contains("append-only"), "{refused}");
    assert!(sqlx::query("DELETE FROM audit.log").execute(&pool).await.is_err(), "no deletes");
    assert!(sqlx::query("TRUNCATE audit.log").execute(&pool).await.is_err(), "no truncation");
    sqlx::raw_sql(
        "ALTER TABLE audit.log DISABLE TRIGGER log_no_update;
         UPDATE audit.log SET actor = 'someone-else' WHERE action = 'resolve_patient' AND actor = 'nurse-ann';
         ALTER TABLE audit.log ENABLE TRIGGER log_no_update;",
    )
    .execute(&pool)
    .await
    .expect("superuser edit");
    pool.close().await;
    let broken = tfesi_audit(&stack, &["verify"]).await;
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "verify must fail: {stderr}");
    let id = resolved["id"].as_i64().expect("id");
    assert!(stderr.contains(&format!("broken at record {id}")) && stderr.contains("altered"), "{stderr}");
    stack.finish().await;
}

/// Records are chained by the services themselves shortly after they commit (not only by
/// `tfesi audit verify`), and concurrent writers produce one unbroken chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_chain_concurrent_records_after_commit() {
    const LOOKUPS: usize = 40;
    let stack = Stack::start(&[]).await;
    let channel = Stack::plain_channel(stack.ingest.address).await;
    let app = stack.token("ward-app", &[Role::App]);
    let lookups = (0..LOOKUPS).map(|index| {
        let mut ingest = IngestClient::new(channel.clone());
        let request = pb::LookupIdsRequest {
            key: Some(pb::lookup_ids_request::Key::Mrn(format!("SYNTH-CHAIN-{index}"))),
            create_patient_if_missing: true,
            ..Default::default()
        };
        let request = with_token(request, &app);
        async move { ingest.lookup_ids(request).await.map(|_| ()) }
    });
    for answered in futures::future::join_all(lookups).await {
        answered.expect("lookup");
    }

    let pool = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{}", stack.database))
        .await
        .expect("database");
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.expect("count") }
    };
    // The chainer takes a record once every transaction older than it has ended, in any database
    // of the server: other tests running beside this one can hold it back for a while.
    let started = std::time::Instant::now();
    while count(tfesi_platform::audit::UNCHAINED_COUNT).await > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the services left records unchained for 30 s (chainer interval {:?})",
            tfesi_platform::audit::CHAIN_INTERVAL
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let records = count("SELECT count(*) FROM audit.log").await;
    assert!(records >= LOOKUPS as i64, "one record per lookup at least: {records}");
    assert_eq!(count("SELECT max(seq) FROM audit.chain").await, records, "seq is 1..n without gaps");
    pool.close().await;

    let verified = tfesi_audit(&stack, &["verify"]).await;
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{out}{}", String::from_utf8_lossy(&verified.stderr));
    assert!(out.contains(&format!("records  {records}")) && out.contains("intact"), "{out}");
    assert!(!out.contains("pending"), "{out}");
    stack.finish().await;
}
