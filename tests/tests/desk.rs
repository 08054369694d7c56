//! The nurse follow-up desk in a real browser: headless Chromium driven through chromedriver
//! against `tfesi-desk` and the real stack. Sign-in (a refused one first), the worklist, an
//! invalid entry (errors next to the fields, nothing stored), a valid entry through the
//! confirmation page, an amendment with its reason, loss to follow-up, sign-out; the registry is
//! checked after each write. Screenshots go to `target/desk-screenshots/`; with
//! `TFESI_UPDATE_DOCS_SCREENSHOTS=1` the worklist's also replaces `docs/desk-worklist.png`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/setup.sh` installs them).
//! Without them the test is skipped with a message, except under CI (`CI` set), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Days, Local};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt as _;
use tfesi_e2e::cohort::{fixed_episode_details, fixed_injection};
use tfesi_e2e::process::binary;
use tfesi_e2e::stack::{AuthChannel, Stack};
use tfesi_proto::common::v1 as common;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const NURSE: &str = "ana.nurse";
const PASSWORD: &str = "correct horse battery staple";
/// Longest wait for a page element after a click.
const PAGE_WITHIN: Duration = Duration::from_secs(20);

/// A child process killed (SIGKILL) by its PID when dropped, with its output in a file.
struct Guard {
    child: Child,
    log: PathBuf,
}

impl Guard {
    fn spawn(command: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log handle")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_port(address: SocketAddr, what: &str, guard: &Guard) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not listen on {address}:\n{}",
            guard.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One seeded patient: the episode id, and the family name the worklist must show.
struct Seeded {
    episode_id: String,
    family_name: &'static str,
}

/// A patient with an identity in ingest's vault, an episode and an injection `days_ago`.
async fn seed(
    ingest: &mut IngestClient<AuthChannel>,
    registry: &mut RegistryClient<AuthChannel>,
    index: u32,
    family_name: &'static str,
    days_ago: u64,
) -> Seeded {
    let today = Local::now().date_naive();
    let patient_id = ingest
        .lookup_ids(ingest::LookupIdsRequest {
            key: Some(ingest::lookup_ids_request::Key::Mrn(format!("DESK-{index:04}"))),
            mrn_issuer: String::new(),
            create_patient_if_missing: true,
            identity: Some(ingest::PatientIdentity {
                mrn: format!("DESK-{index:04}"),
                mrn_issuer: String::new(),
                family_name: family_name.to_owned(),
                given_name: "Synthetic".to_owned(),
                birth_date: Some(common::Date { year: 1961, month: 4, day: 2 }),
                sex: common::Sex::Female as i32,
                phone: Some("+44 20 7946 0000".to_owned()),
            }),
        })
        .await
        .expect("LookupIds creates the patient")
        .into_inner()
        .patient_id;
    let episode = registry
        .create_episode(registry::CreateEpisodeRequest {
            idempotency_key: format!("desk-e2e-{index}"),
            details: Some(fixed_episode_details(patient_id, 64)),
        })
        .await
        .expect("CreateEpisode")
        .into_inner()
        .episode
        .expect("an episode");
    registry
        .record_injection(registry::RecordInjectionRequest {
            idempotency_key: format!("desk-e2e-{index}-injection"),
            episode_id: episode.episode_id.clone(),
            injection: Some(fixed_injection(today.checked_sub_days(Days::new(days_ago)).expect("a date"))),
        })
        .await
        .expect("RecordInjection");
    Seeded { episode_id: episode.episode_id, family_name }
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/desk-screenshots")
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(screenshot_dir()).expect("screenshot directory");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id} on the page: {e}"))
        .click()
        .await
        .expect("click");
}

async fn wait_for(client: &Client, id: &str) -> fantoccini::elements::Element {
    let found = client.wait().at_most(PAGE_WITHIN).for_element(Locator::Id(id)).await;
    match found {
        Ok(element) => element,
        Err(error) => {
            let source = client.source().await.unwrap_or_default();
            panic!("#{id} did not appear ({error}); the page:\n{source}")
        }
    }
}

async fn history(registry: &mut RegistryClient<AuthChannel>, episode_id: &str) -> Vec<registry::FollowUp> {
    registry
        .get_follow_up_history(registry::GetFollowUpHistoryRequest { episode_id: episode_id.to_owned() })
        .await
        .expect("GetFollowUpHistory")
        .into_inner()
        .versions
}

/// Asserts that a page shows nothing of the model's guess.
async fn assert_no_prediction(client: &Client) {
    let source = client.source().await.expect("page source").to_ascii_lowercase();
    for word in ["prediction", "probability"] {
        assert!(!source.contains(word), "the desk must not show '{word}' to the nurse:\n{source}");
    }
}

/// The whole nurse journey; the browser session is open at `desk`.
async fn journey(client: &Client, desk: &str, stack: &Stack, seeded: &[Seeded]) {
    let mut registry = RegistryClient::new(stack.channel(stack.registry.address).await);
    let [overdue, due_today, in_window] = seeded else { panic!("three seeded episodes") };

    // A refused sign-in says only that it failed.
    client.goto(&format!("{desk}/worklist")).await.expect("open the desk");
    wait_for(client, "username").await.send_keys(NURSE).await.expect("type");
    client
        .find(Locator::Id("password"))
        .await
        .expect("password")
        .send_keys("not the password")
        .await
        .expect("type");
    click(client, "sign-in").await;
    let problem = wait_for(client, "problems").await.text().await.expect("text");
    assert!(problem.contains("Sign-in failed"), "{problem}");
    assert!(!problem.to_lowercase().contains("unknown user"), "no hint which part was wrong: {problem}");

    wait_for(client, "password").await.send_keys(PASSWORD).await.expect("type");
    click(client, "sign-in").await;
    let table = wait_for(client, "worklist").await;

    // The worklist: earliest due first, identities from ingest, days since injection.
    let rows = table.find_all(Locator::Css("tr.entry")).await.expect("rows");
    let mut order = Vec::new();
    for row in &rows {
        order.push(row.attr("data-episode").await.expect("attribute").unwrap_or_default());
    }
    let expected: Vec<String> =
        [overdue, due_today, in_window].iter().map(|s| s.episode_id.clone()).collect();
    assert_eq!(order, expected, "sorted by due date: overdue, due today, in window");
    let text = table.text().await.expect("worklist text");
    for patient in seeded {
        assert!(text.contains(patient.family_name), "{} on the worklist:\n{text}", patient.family_name);
    }
    assert!(text.contains("Overdue") && text.contains("Due today") && text.contains("In window"), "{text}");
    assert!(text.contains("L4-L5 left"), "the injected levels and side of each entry:\n{text}");
    assert!(
        text.contains("DESK-0002") && text.contains("60"),
        "MRN and day 60 of the due-today patient:\n{text}"
    );
    assert_no_prediction(client).await;
    screenshot(client, "worklist").await;
    if std::env::var_os("TFESI_UPDATE_DOCS_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/desk-worklist.png");
        std::fs::copy(screenshot_dir().join("worklist.png"), docs)
            .expect("copy the worklist screenshot to docs/");
    }

    // An invalid entry: no leg score, no method. Errors next to the fields; nothing stored.
    click(client, &format!("open-{}", due_today.episode_id)).await;
    wait_for(client, "identity").await;
    assert_no_prediction(client).await;
    click(client, "record").await;
    wait_for(client, "leg_nrs-group").await;
    click(client, "back_nrs-5").await; // 4: the first choice is "not asked"
    click(client, "review").await;
    let leg_error = wait_for(client, "leg_nrs-error").await.text().await.expect("text");
    assert!(leg_error.contains("Choose the leg pain score"), "{leg_error}");
    let method_error =
        client.find(Locator::Id("method-error")).await.expect("method error").text().await.expect("text");
    assert!(method_error.contains("how the score was obtained"), "{method_error}");
    let kept =
        client.find(Locator::Id("back_nrs-5")).await.expect("radio").is_selected().await.expect("state");
    assert!(kept, "the rejected form keeps what the nurse chose");
    screenshot(client, "invalid-entry").await;
    assert!(
        history(&mut registry, &due_today.episode_id).await.is_empty(),
        "an invalid entry stores nothing"
    );

    // A valid entry through the confirmation page.
    click(client, "leg_nrs-3").await;
    click(client, "method-0").await; // by telephone
    click(client, "adverse_events-1").await; // headache
    click(client, "review").await;
    let summary = wait_for(client, "review-summary").await.text().await.expect("text");
    assert!(summary.contains("Leg pain (0 to 10)\n3") || summary.contains("3"), "{summary}");
    assert!(summary.contains("By telephone") && summary.contains("Headache"), "{summary}");
    assert!(
        history(&mut registry, &due_today.episode_id).await.is_empty(),
        "nothing is stored before saving"
    );
    screenshot(client, "confirmation").await;
    click(client, "save").await;
    let notice = wait_for(client, "notice").await.text().await.expect("text");
    assert!(notice.contains("saved"), "{notice}");
    let versions = history(&mut registry, &due_today.episode_id).await;
    assert_eq!(versions.len(), 1, "one version stored");
    let input = versions[0].input.clone().expect("input");
    assert_eq!(input.leg_nrs, 3);
    assert_eq!(input.back_nrs, Some(4));
    assert_eq!(input.method, registry::FollowUpMethod::Phone as i32);
    assert_eq!(input.adverse_events, vec![registry::AdverseEvent::Headache as i32]);
    assert_eq!(versions[0].recorded_by, NURSE, "the registry records the signed-in nurse");
    assert_eq!(versions[0].days_since_injection, 60);

    // An amendment needs a reason.
    click(client, "amend").await;
    wait_for(client, "reason").await;
    click(client, "leg_nrs-4").await;
    click(client, "review").await;
    let reason_error = wait_for(client, "reason-error").await.text().await.expect("text");
    assert!(reason_error.contains("Say why"), "{reason_error}");
    assert_eq!(history(&mut registry, &due_today.episode_id).await.len(), 1, "no amendment without a reason");
    client
        .find(Locator::Id("reason"))
        .await
        .expect("reason")
        .send_keys("patient corrected the leg score on a call-back")
        .await
        .expect("type");
    click(client, "review").await;
    wait_for(client, "review-summary").await;
    click(client, "save").await;
    let notice = wait_for(client, "notice").await.text().await.expect("text");
    assert!(notice.contains("amendment"), "{notice}");
    screenshot(client, "amended").await;
    let versions = history(&mut registry, &due_today.episode_id).await;
    assert_eq!(versions.len(), 2, "the history keeps both versions");
    let current = versions.iter().find(|v| v.current).expect("a current version");
    assert_eq!(current.version, 2);
    assert_eq!(current.input.as_ref().map(|i| i.leg_nrs), Some(4));
    assert_eq!(current.amendment_reason, "patient corrected the leg score on a call-back");

    // Lost to follow-up.
    client.goto(&format!("{desk}/episodes/{}", in_window.episode_id)).await.expect("open");
    click(client, "lost").await;
    wait_for(client, "confirm-lost").await.click().await.expect("click");
    let notice = wait_for(client, "notice").await.text().await.expect("text");
    assert!(notice.contains("lost to follow-up"), "{notice}");
    let episode = registry
        .get_episode(registry::GetEpisodeRequest { episode_id: in_window.episode_id.clone() })
        .await
        .expect("GetEpisode")
        .into_inner()
        .episode
        .expect("episode");
    let status = episode.status.expect("status");
    assert_eq!(status.status, registry::OutcomeStatus::LostToFollowUp as i32);
    assert_eq!(status.changed_by, NURSE);

    // The worklist now holds only the overdue patient.
    client.goto(&format!("{desk}/worklist")).await.expect("worklist");
    let rows = wait_for(client, "worklist").await.find_all(Locator::Css("tr.entry")).await.expect("rows");
    assert_eq!(rows.len(), 1, "completed and lost episodes leave the worklist");
    assert_eq!(
        rows[0].attr("data-episode").await.expect("attr").as_deref(),
        Some(overdue.episode_id.as_str())
    );

    // Sign-out ends the session.
    click(client, "sign-out").await;
    wait_for(client, "username").await;
    client.goto(&format!("{desk}/worklist")).await.expect("worklist");
    wait_for(client, "username").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_records_and_amends_a_follow_up_in_a_real_browser() {
    if !Path::new(CHROMIUM).exists() && std::env::var_os("CI").is_none() {
        eprintln!("skipped: {CHROMIUM} is missing (scripts/setup.sh installs chromium and chromium-driver)");
        return;
    }
    assert!(
        Path::new(CHROMEDRIVER).exists(),
        "{CHROMEDRIVER} is missing: scripts/setup.sh installs chromium-driver"
    );
    let stack = Stack::start(&[]).await;
    let work = tempfile::tempdir().expect("work directory");

    // The accounts file, written by the desk's own hash-password command.
    let mut hashing = Command::new(binary("tfesi-desk"))
        .args(["hash-password", "--username", NURSE, "--display-name", "Ana Nurse"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tfesi-desk hash-password");
    std::io::Write::write_all(&mut hashing.stdin.take().expect("stdin"), format!("{PASSWORD}\n").as_bytes())
        .expect("write the password");
    let output = hashing.wait_with_output().expect("hash-password output");
    assert!(output.status.success(), "hash-password failed");
    let accounts = work.path().join("accounts");
    std::fs::write(&accounts, &output.stdout).expect("accounts file");

    let mut ingest_client = IngestClient::new(stack.channel(stack.ingest.address).await);
    let mut registry_client = RegistryClient::new(stack.channel(stack.registry.address).await);
    let seeded = vec![
        seed(&mut ingest_client, &mut registry_client, 1, "Overdueson", 80).await,
        seed(&mut ingest_client, &mut registry_client, 2, "Duetodayer", 60).await,
        seed(&mut ingest_client, &mut registry_client, 3, "Windowford", 50).await,
    ];
    let desk_address: SocketAddr = format!("127.0.0.1:{}", tfesi_e2e::free_port()).parse().expect("address");
    let desk = Guard::spawn(
        Command::new(binary("tfesi-desk"))
            .env_remove("TFESI_CONFIG")
            .env("TFESI_DESK__DESK__LISTEN", desk_address.to_string())
            .env("TFESI_DESK__DESK__ACCOUNTS_FILE", &accounts)
            .env("TFESI_DESK__DESK__SECURE_COOKIES", "false")
            .env("TFESI_DESK__UPSTREAM__REGISTRY", format!("http://{}", stack.registry.address))
            .env("TFESI_DESK__UPSTREAM__INGEST", format!("http://{}", stack.ingest.address))
            .env("TFESI_DESK__AUTH__HS256_SECRET_FILE", stack.auth_secret_file())
            .env("TFESI_DESK__TELEMETRY__LOG_FORMAT", "json"),
        work.path().join("desk.log"),
    );
    wait_for_port(desk_address, "tfesi-desk", &desk).await;

    let driver_address: SocketAddr =
        format!("127.0.0.1:{}", tfesi_e2e::free_port()).parse().expect("address");
    let driver = Guard::spawn(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={}", driver_address.port()))
            .arg("--allowed-ips=127.0.0.1"),
        work.path().join("chromedriver.log"),
    );
    wait_for_port(driver_address, "chromedriver", &driver).await;
    let profile = work.path().join("chromium-profile");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1024,1366",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://{driver_address}"))
        .await
        .unwrap_or_else(|e| panic!("chromedriver session: {e}\n{}", driver.log()));

    let outcome =
        std::panic::AssertUnwindSafe(journey(&client, &format!("http://{desk_address}"), &stack, &seeded))
            .catch_unwind()
            .await;
    let _ = client.close().await;
    drop(driver);
    drop(desk);
    if let Err(panic) = outcome {
        eprintln!("desk log:\n{}", std::fs::read_to_string(work.path().join("desk.log")).unwrap_or_default());
        eprintln!("stack logs:\n{}", stack.logs());
        std::panic::resume_unwind(panic);
    }
    stack.finish().await;
}
