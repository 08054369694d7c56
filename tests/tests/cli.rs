//! The `tfesi` operator commands for episodes, follow-ups, snapshots and model registration,
//! run as the real binary against a running stack (the four real binaries on random ports):
//! an episode goes from creation through injection, follow-up and amendment into a snapshot
//! exported as Parquet, which is read back; a watch sees the changes as they happen. Exit codes
//! are the ones scripts rely on: 0 success, 1 failure with a message, 2 bad command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::time::{Duration, SystemTime};

use arrow::array::{Array as _, Int32Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use tfesi_e2e::process::binary;
use tfesi_e2e::stack::Stack;
use tfesi_synth::calendar::Date;
use tokio::io::AsyncBufReadExt as _;

/// Bound of one short command (process start, connect, one or two calls).
const COMMAND_WITHIN: Duration = Duration::from_secs(60);

/// The `tfesi` binary pointed at `stack`, with an admin token of the stack.
struct Tfesi<'a> {
    stack: &'a Stack,
    token: String,
}

impl<'a> Tfesi<'a> {
    fn new(stack: &'a Stack) -> Self {
        Self { stack, token: stack.token("test-admin", &[tfesi_auth::Role::Admin]) }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let url = |process: &tfesi_e2e::process::ServiceProcess| format!("http://{}", process.address);
        let mut command = tokio::process::Command::new(binary("tfesi"));
        command
            .args(args)
            .args(["--ingest", &url(&self.stack.ingest), "--preprocess", &url(&self.stack.preprocess)])
            .args(["--inference", &url(&self.stack.inference), "--registry", &url(&self.stack.registry)])
            .env_remove("TFESI_CONFIG")
            .env_remove("TFESI_AUTH_SECRET_FILE")
            .env("TFESI_TOKEN", &self.token)
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(COMMAND_WITHIN, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("tfesi {args:?} did not finish within {COMMAND_WITHIN:?}"))
            .expect("tfesi runs")
    }

    /// Runs a command that must succeed with `--json` and returns its document.
    async fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let output = self.run(&with_json).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "tfesi {args:?} failed ({:?}): {}\n{stdout}\nlogs:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr),
            self.stack.logs()
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("tfesi {args:?} printed no JSON ({e}): {stdout}"))
    }
}

/// Today in UTC, as the registry's "not in the future" check sees it.
fn today() -> Date {
    let days = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() / 86_400;
    Date::from_days(i64::try_from(days).unwrap())
}

/// A random surrogate patient id (UUID v4 form).
fn patient_id() -> String {
    let bits: u128 = rand::random();
    let hex = format!("{:032x}", (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62));
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn due_episode_ids(due: &Value) -> Vec<String> {
    due["entries"].as_array().unwrap().iter().map(|e| e["episode_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_episode_goes_from_creation_to_an_exported_snapshot() {
    let stack = Stack::start(&[]).await;
    let tfesi = Tfesi::new(&stack);
    let (today, injected, scored) =
        (today().iso(), today().plus_days(-60).iso(), today().plus_days(-1).iso());

    let created = tfesi
        .json(&[
            "episode",
            "create",
            "--patient-id",
            &patient_id(),
            "--indication",
            "herniated-disc",
            "--level",
            "L4-L5",
            "--level",
            "l5-s1",
            "--side",
            "left",
            "--baseline-leg-nrs",
            "8",
            "--baseline-back-nrs",
            "5",
            "--symptom-days",
            "40",
            "--age",
            "54",
            "--sex",
            "female",
        ])
        .await;
    let episode_id = created["episode"]["episode_id"].as_str().unwrap().to_owned();
    assert_eq!(created["episode"]["status"]["status"], "pending", "{created:#}");
    assert_eq!(created["episode"]["details"]["planned_levels"], serde_json::json!(["L4-L5", "L5-S1"]));
    let injection = tfesi
        .json(&[
            "episode",
            "inject",
            &episode_id,
            "--date",
            &injected,
            "--level",
            "L4-L5",
            "--side",
            "left",
            "--contrast",
            "--drug-code",
            "dexamethasone",
            "--dose-mg",
            "10",
        ])
        .await;
    assert_eq!(injection["episode"]["window"]["due_date"], today.as_str(), "due on day 60: {injection:#}");

    let due = tfesi.json(&["followup", "due", "--as-of", &today]).await;
    let entry = due["entries"].as_array().unwrap().iter().find(|e| e["episode_id"] == episode_id.as_str());
    let entry = entry.unwrap_or_else(|| panic!("the injected episode is on the worklist: {due:#}"));
    assert_eq!(entry["state"], "due_today");
    assert_eq!(entry["days_since_injection"], 60);

    // A watch started now sees the recording and the amendment until it is interrupted.
    let mut watch = tfesi.command(&["episode", "watch", &episode_id, "--json"]);
    let mut watch = watch.stdout(std::process::Stdio::piped()).spawn().expect("tfesi episode watch starts");
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(COMMAND_WITHIN, lines.next_line()).await.unwrap().unwrap().unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["kind"], "snapshot", "the current episode comes first: {first:#}");

    let recorded = tfesi
        .json(&[
            "followup",
            "record",
            &episode_id,
            "--date",
            &scored,
            "--leg-nrs",
            "5",
            "--back-nrs",
            "4",
            "--method",
            "phone",
            "--entered-by",
            "nurse-e2e",
        ])
        .await;
    assert_eq!(recorded["follow_up"]["version"], 1, "{recorded:#}");
    assert_eq!(recorded["follow_up"]["in_window"], true);
    assert_eq!(recorded["labels"][0]["label"], "poor", "8 -> 5 is a 37.5% reduction: {recorded:#}");

    // Recording twice is a failure a script can see, and the message says what to do instead.
    let again = tfesi
        .run(&[
            "followup",
            "record",
            &episode_id,
            "--date",
            &scored,
            "--leg-nrs",
            "5",
            "--method",
            "phone",
            "--entered-by",
            "nurse-e2e",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AlreadyExists") && stderr.contains("tfesi followup amend"), "{stderr}");

    let amended = tfesi
        .json(&["followup", "amend", &episode_id, "--reason", "transcription error", "--leg-nrs", "3"])
        .await;
    assert_eq!(amended["follow_up"]["version"], 2, "{amended:#}");
    assert_eq!(amended["follow_up"]["back_nrs"], 4, "fields not given are kept: {amended:#}");
    assert_eq!(amended["follow_up"]["entered_by"], "nurse-e2e");
    assert_eq!(amended["labels"][0]["label"], "good", "8 -> 3 is a 62.5% reduction: {amended:#}");

    let mut kinds = vec![first["kind"].as_str().unwrap().to_owned()];
    while !kinds.iter().any(|kind| kind == "follow_up_amended") {
        let line = tokio::time::timeout(COMMAND_WITHIN, lines.next_line()).await.unwrap().unwrap();
        let Some(line) = line else { break };
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["episode_id"], episode_id.as_str());
        kinds.push(event["kind"].as_str().unwrap().to_owned());
    }
    for kind in ["follow_up_recorded", "follow_up_amended"] {
        assert!(kinds.iter().any(|seen| seen == kind), "the watch saw {kind}: {kinds:?}");
    }
    let pid = watch.id().expect("the watch is running").to_string();
    let interrupted = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(interrupted.success(), "kill -INT {pid}");
    let status = tokio::time::timeout(COMMAND_WITHIN, watch.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "an interrupted watch ends with success");

    // A bounded watch stops on its own, even past the per-call deadline (--timeout-s).
    let bounded =
        tfesi.run(&["episode", "watch", &episode_id, "--for-s", "4", "--timeout-s", "2", "--json"]).await;
    let stdout = String::from_utf8_lossy(&bounded.stdout);
    assert_eq!(bounded.status.code(), Some(0), "{}", String::from_utf8_lossy(&bounded.stderr));
    let current: Value = serde_json::from_str(stdout.lines().next().unwrap_or_default()).unwrap();
    assert_eq!(current["episode"]["follow_up"]["version"], 2, "{current:#}");

    let shown = tfesi.json(&["episode", "show", &episode_id]).await;
    assert_eq!(shown["status"]["status"], "completed", "{shown:#}");
    assert_eq!(shown["follow_up"]["version"], 2);
    assert_eq!(shown["follow_up"]["leg_nrs"], 3);
    assert_eq!(shown["follow_up"]["amendment_reason"], "transcription error");
    assert_eq!(shown["injection"]["levels"], serde_json::json!(["L4-L5"]));
    assert_eq!(shown["labels"][0]["label"], "good");
    let history = tfesi.json(&["followup", "history", &episode_id]).await;
    let versions: Vec<&Value> = history.as_array().unwrap().iter().map(|v| &v["version"]).collect();
    assert_eq!(versions, [1, 2], "{history:#}");
    let due = tfesi.json(&["followup", "due", "--as-of", &today]).await;
    assert!(!due_episode_ids(&due).contains(&episode_id), "a completed episode leaves the worklist: {due:#}");

    // Snapshot: the one labeled episode, reproducible from its as-of instant.
    let snapshot = tfesi.json(&["snapshot", "create", "--seed", "7", "--description", "cli e2e"]).await;
    let snapshot_id = snapshot["snapshot_id"].as_str().unwrap().to_owned();
    assert_eq!(snapshot_id.len(), 64, "{snapshot:#}");
    assert_eq!((snapshot["rows"].as_u64(), snapshot["good"].as_u64()), (Some(1), Some(1)), "{snapshot:#}");
    assert_eq!(snapshot["created"], true);
    let as_of = snapshot["as_of"].as_str().unwrap();
    let again = tfesi.json(&["snapshot", "create", "--seed", "7", "--as-of", as_of]).await;
    assert_eq!(again["snapshot_id"], snapshot_id.as_str(), "same inputs, same data: same snapshot");
    assert_eq!(again["created"], false);
    let shown = tfesi.json(&["snapshot", "show", &snapshot_id]).await;
    assert_eq!(shown["rows"], 1);

    let parquet_path = stack.dir.path().join("snapshot.parquet");
    let jsonl_path = stack.dir.path().join("snapshot.jsonl");
    let exported = tfesi
        .json(&[
            "snapshot",
            "export",
            &snapshot_id,
            "--parquet",
            parquet_path.to_str().unwrap(),
            "--jsonl",
            jsonl_path.to_str().unwrap(),
        ])
        .await;
    assert_eq!(exported["rows"], 1, "{exported:#}");
    assert_eq!(exported["content_hash"], snapshot_id.as_str());
    assert_eq!(exported["files"].as_array().unwrap().len(), 2);
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&parquet_path).unwrap()).unwrap();
    let metadata = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    assert!(
        metadata.iter().any(|kv| kv.key == "tfesi.snapshot_id" && kv.value.as_deref() == Some(&snapshot_id)),
        "{metadata:?}"
    );
    let batches: Vec<_> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|batch| batch.num_rows()).sum::<usize>(), 1, "one row read back");
    let batch = &batches[0];
    let text = |name: &str| {
        let column = batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
        column.as_any().downcast_ref::<StringArray>().unwrap().value(0).to_owned()
    };
    assert_eq!(text("episode_id"), episode_id);
    assert_eq!(text("label"), "good");
    let leg = batch.column_by_name("follow_up_leg_nrs").unwrap();
    let leg = leg.as_any().downcast_ref::<Int32Array>().unwrap();
    assert!(!leg.is_null(0));
    assert_eq!(leg.value(0), 3, "the amended score is the one exported");
    let lines = std::fs::read_to_string(&jsonl_path).unwrap();
    let row: Value = serde_json::from_str(lines.trim()).unwrap();
    assert_eq!(row["episode_id"], episode_id.as_str());
    assert_eq!(row["follow_up_leg_nrs"], 3);

    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_directory_is_registered_after_its_self_test() {
    let stack = Stack::start(&[]).await;
    let tfesi = Tfesi::new(&stack);
    // The bundled test model under a new version: same graph and self-test vectors.
    let dir = stack.dir.path().join("register/tfesi-test/2");
    tfesi_e2e::stack::copy_tree(&tfesi_e2e::stack::bundled_models().join("tfesi-test/1"), &dir);
    let card = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let mut card: Value = serde_json::from_str(&card).unwrap();
    card["version"] = Value::from("2");
    std::fs::write(dir.join("model.json"), serde_json::to_string_pretty(&card).unwrap()).unwrap();

    let registered = tfesi.json(&["model", "register", dir.to_str().unwrap()]).await;
    assert_eq!(registered["model"], "tfesi-test:2", "{registered:#}");
    assert_eq!(registered["created"], true);
    assert_eq!(registered["state"], "idle");
    assert_eq!(registered["self_test"]["passed"], true);
    let again = tfesi.json(&["model", "register", dir.to_str().unwrap()]).await;
    assert_eq!(again["created"], false, "registering the same file again changes nothing: {again:#}");
    let listed = tfesi.json(&["model", "list"]).await;
    let models: Vec<&str> = listed.as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert!(models.contains(&"tfesi-test:2") && models.contains(&"tfesi-test:1"), "{models:?}");

    // A missing card is the caller's to fix: exit 1, naming the file.
    let missing = tfesi.run(&["model", "register", stack.dir.path().to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("model.json"), "{stderr}");
    stack.finish().await;
}

#[test]
fn bad_command_lines_exit_2_and_unreachable_services_exit_1() {
    let run = |args: &[&str]| {
        std::process::Command::new(binary("tfesi"))
            .args(args)
            .env_remove("TFESI_CONFIG")
            .env_remove("TFESI_TOKEN")
            .output()
            .expect("tfesi runs")
    };
    let episode = "0f8e2b6a-3c1d-4e5f-9a7b-1c2d3e4f5a6b";
    for args in [
        vec!["followup", "record", episode, "--date", "2025-03-07", "--leg-nrs", "11", "--method", "phone"],
        vec!["followup", "record", episode, "--date", "2025-02-30", "--leg-nrs", "4", "--method", "phone"],
        vec!["followup", "amend", episode, "--reason", "x", "--pgic", "8"],
        vec!["episode", "show", "not-a-uuid"],
        vec!["snapshot", "export", "abc"],
        vec!["snapshot", "create", "--train", "0.8"],
    ] {
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "tfesi {args:?}: {stderr}");
        assert!(!stderr.is_empty(), "tfesi {args:?} says what is wrong");
    }
    let output = run(&["episode", "show", episode, "--registry", "http://127.0.0.1:1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach registry"), "{stderr}");
}
