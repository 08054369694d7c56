//! Clinical commands over the registry's gRPC API: `tfesi episode create|inject|show|watch` and
//! `tfesi followup due|record|amend|history`. Each prints a table for people or, with `--json`,
//! one JSON document for scripts (`episode watch --json` prints one JSON object per event line).
//!
//! Writes carry an idempotency key (a fresh `tfesi-cli-<uuid>` unless `--idempotency-key` is
//! given, and printed either way) so that a script can retry a write whose answer it lost:
//! the same key with the same content returns the first result.

use std::time::Duration;

use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as registry;
use tfesi_proto::registry::v1::registry_client::RegistryClient;

use crate::endpoints::{Endpoints, call_failed, describe};
use crate::records_view::{self as view, Adverse, Analgesic, DueState, Indication, Level, Method, Sex, Side};

/// `tfesi episode ...`
#[derive(Debug, Subcommand)]
pub enum EpisodeCommand {
    /// Registers a treatment episode with its baseline facts (status pending).
    Create(CreateArgs),
    /// Records the injection performed; starts the follow-up window (due on day 60).
    Inject(InjectArgs),
    /// One episode: baseline, injection, window, status, follow-up, labels, predictions.
    Show {
        /// Episode id (UUID).
        #[arg(value_parser = view::parse_uuid)]
        episode_id: String,
    },
    /// Streams the episode's changes (the current state first) until interrupted (Ctrl-C) or
    /// until --for-s seconds have passed.
    Watch {
        /// Episode id (UUID).
        #[arg(value_parser = view::parse_uuid)]
        episode_id: String,
        /// Stop after this many seconds (exit 0); without it, watch until interrupted.
        #[arg(long)]
        for_s: Option<u64>,
        /// Only changes after this revision (resume a watch that stopped).
        #[arg(long, default_value_t = 0)]
        after_revision: i64,
        /// Do not print the current state first.
        #[arg(long)]
        no_initial: bool,
    },
}

/// `tfesi followup ...`
#[derive(Debug, Subcommand)]
pub enum FollowUpCommand {
    /// The follow-up worklist: pending episodes with an injection, by due date.
    Due {
        /// Worklist date (YYYY-MM-DD); default today (local time).
        #[arg(long, value_parser = view::parse_date)]
        as_of: Option<NaiveDate>,
        /// Only these states (repeatable); default in-window, due-today and overdue.
        #[arg(long = "state", value_enum)]
        states: Vec<DueState>,
        /// At most this many entries.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
    /// Records the 2-month follow-up score (sets status completed and recomputes labels).
    Record(RecordArgs),
    /// Corrects the current follow-up: a new version with a reason; fields not given are kept
    /// from the current version.
    Amend(AmendArgs),
    /// Every version of the episode's follow-up, oldest first.
    History {
        /// Episode id (UUID).
        #[arg(value_parser = view::parse_uuid)]
        episode_id: String,
    },
}

fn nrs() -> clap::builder::RangedI64ValueParser<i32> {
    clap::value_parser!(i32).range(0..=10)
}

/// Clap value parser of a steroid dose in milligrams (above 0, at most 100).
fn parse_dose(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(dose) if dose.is_finite() && dose > 0.0 && dose <= 100.0 => Ok(dose),
        _ => Err(format!("'{text}' is not a dose in mg above 0 and at most 100 (dexamethasone: 8 to 12)")),
    }
}

/// `tfesi episode create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Surrogate patient id (UUID) from ingest (`Ingest.LookupIds`); never an MRN.
    #[arg(long, value_parser = view::parse_uuid)]
    pub patient_id: String,
    /// Surrogate study id (UUID) of the MRI study, when the images have arrived.
    #[arg(long, value_parser = view::parse_uuid)]
    pub study_id: Option<String>,
    /// Indication.
    #[arg(long, value_enum)]
    pub indication: Indication,
    /// Planned foramen; repeat for several (1 to 6 distinct levels).
    #[arg(long = "level", value_enum, ignore_case = true, required = true)]
    pub levels: Vec<Level>,
    /// Planned side.
    #[arg(long, value_enum)]
    pub side: Side,
    /// Pre-treatment leg-pain NRS-11, an integer 0 to 10 (the label's score).
    #[arg(long, value_parser = nrs())]
    pub baseline_leg_nrs: i32,
    /// Pre-treatment back-pain NRS-11, an integer 0 to 10.
    #[arg(long, value_parser = nrs())]
    pub baseline_back_nrs: Option<i32>,
    /// Duration of the radicular pain at baseline, days (0 to 36500).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=36_500))]
    pub symptom_days: i32,
    /// Age at baseline, whole years (18 to 120).
    #[arg(long, value_parser = clap::value_parser!(i32).range(18..=120))]
    pub age: i32,
    /// Sex.
    #[arg(long, value_enum)]
    pub sex: Sex,
    /// Date the baseline scores were recorded (YYYY-MM-DD); default the creation date.
    #[arg(long, value_parser = view::parse_date)]
    pub baseline_date: Option<NaiveDate>,
    /// Idempotency key (1 to 128 characters) to retry safely; default a fresh one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Approach of a transforaminal injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Approach {
    /// Subpedicular ("safe triangle").
    Subpedicular,
    /// Retrodiscal (Kambin's triangle).
    Retrodiscal,
}

/// Imaging guidance of an injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Guidance {
    /// Fluoroscopy (standard).
    Fluoroscopy,
    /// CT.
    Ct,
}

/// `tfesi episode inject`
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Episode id (UUID).
    #[arg(value_parser = view::parse_uuid)]
    pub episode_id: String,
    /// Date of the injection (YYYY-MM-DD), not in the future.
    #[arg(long, value_parser = view::parse_date)]
    pub date: NaiveDate,
    /// Injected foramen; repeat for several.
    #[arg(long = "level", value_enum, ignore_case = true, required = true)]
    pub levels: Vec<Level>,
    /// Injected side.
    #[arg(long, value_enum)]
    pub side: Side,
    /// Approach.
    #[arg(long, value_enum, default_value = "subpedicular")]
    pub approach: Approach,
    /// Guidance.
    #[arg(long, value_enum, default_value = "fluoroscopy")]
    pub guidance: Guidance,
    /// Contrast was used to confirm the spread.
    #[arg(long)]
    pub contrast: bool,
    /// Coded drug (the formulary code), e.g. dexamethasone.
    #[arg(long)]
    pub drug_code: String,
    /// Free-text drug description (no patient identifiers).
    #[arg(long, default_value = "")]
    pub drug_text: String,
    /// Steroid dose in mg (above 0, at most 100).
    #[arg(long, value_parser = parse_dose)]
    pub dose_mg: f64,
    /// Local anaesthetic, e.g. "lidocaine 1% 2 mL"; empty when none.
    #[arg(long, default_value = "")]
    pub local_anaesthetic: String,
    /// Idempotency key (1 to 128 characters) to retry safely; default a fresh one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Optional follow-up facts, shared by `record` and `amend` (in `amend`, each one given
/// replaces the current version's value).
#[derive(Debug, Args)]
pub struct FollowUpExtras {
    /// Back-pain NRS-11 at follow-up, an integer 0 to 10.
    #[arg(long, value_parser = nrs())]
    pub back_nrs: Option<i32>,
    /// Patient Global Impression of Change, 1 (very much improved) to 7 (very much worse).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=7))]
    pub pgic: Option<i32>,
    /// Change in analgesic use since the injection.
    #[arg(long, value_enum)]
    pub analgesic_change: Option<Analgesic>,
    /// A repeat injection since the index injection (true/false; yes/no): true excludes from labels.
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    pub repeat_injection: Option<bool>,
    /// Lumbar surgery since the index injection (true/false; yes/no): true excludes from labels.
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    pub surgery: Option<bool>,
    /// An adverse event (repeatable); in `amend`, the list given replaces the current one.
    #[arg(long = "adverse-event", value_enum)]
    pub adverse_events: Vec<Adverse>,
    /// Note on the adverse events (no identifiers).
    #[arg(long)]
    pub adverse_event_note: Option<String>,
    /// Staff account that obtained the score; default the caller's token subject.
    #[arg(long)]
    pub entered_by: Option<String>,
    /// Acknowledge a date outside the follow-up window (stored, excluded from labels).
    #[arg(long)]
    pub out_of_window: bool,
}

impl FollowUpExtras {
    /// Puts every given value into `input`.
    fn apply(&self, input: &mut registry::FollowUpInput) {
        if self.back_nrs.is_some() {
            input.back_nrs = self.back_nrs;
        }
        if self.pgic.is_some() {
            input.pgic = self.pgic;
        }
        if let Some(change) = self.analgesic_change {
            input.analgesic_change = registry::AnalgesicChange::from(change) as i32;
        }
        if self.repeat_injection.is_some() {
            input.repeat_injection = self.repeat_injection;
        }
        if self.surgery.is_some() {
            input.surgery = self.surgery;
        }
        if !self.adverse_events.is_empty() {
            input.adverse_events =
                self.adverse_events.iter().map(|&event| registry::AdverseEvent::from(event) as i32).collect();
        }
        if let Some(note) = &self.adverse_event_note {
            input.adverse_event_note.clone_from(note);
        }
        if let Some(entered_by) = &self.entered_by {
            input.entered_by.clone_from(entered_by);
        }
        input.out_of_window |= self.out_of_window;
    }
}

/// `tfesi followup record`
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Episode id (UUID).
    #[arg(value_parser = view::parse_uuid)]
    pub episode_id: String,
    /// Date the score was obtained (YYYY-MM-DD): not before the injection, not in the future.
    #[arg(long, value_parser = view::parse_date)]
    pub date: NaiveDate,
    /// Leg-pain NRS-11 at follow-up, an integer 0 to 10 (the label's score).
    #[arg(long, value_parser = nrs())]
    pub leg_nrs: i32,
    /// How the score was obtained.
    #[arg(long, value_enum)]
    pub method: Method,
    #[command(flatten)]
    pub extras: FollowUpExtras,
    /// Idempotency key (1 to 128 characters) to retry safely; default a fresh one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// `tfesi followup amend`
#[derive(Debug, Args)]
pub struct AmendArgs {
    /// Episode id (UUID).
    #[arg(value_parser = view::parse_uuid)]
    pub episode_id: String,
    /// Why the follow-up is corrected, 1 to 500 characters, no identifiers (recorded).
    #[arg(long)]
    pub reason: String,
    /// The version being corrected; default the current one as read just before. Give it to
    /// fail (rather than overwrite) when someone else amended it meanwhile.
    #[arg(long)]
    pub expected_version: Option<i32>,
    /// Corrected date (YYYY-MM-DD).
    #[arg(long, value_parser = view::parse_date)]
    pub date: Option<NaiveDate>,
    /// Corrected leg-pain NRS-11, an integer 0 to 10.
    #[arg(long, value_parser = nrs())]
    pub leg_nrs: Option<i32>,
    /// Corrected method.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    #[command(flatten)]
    pub extras: FollowUpExtras,
    /// Idempotency key (1 to 128 characters) to retry safely; default a fresh one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

fn key_or_fresh(key: Option<String>) -> String {
    key.unwrap_or_else(|| format!("tfesi-cli-{}", uuid::Uuid::new_v4()))
}

/// Turns a failed registry call into an error naming the call and, for the statuses a person
/// can act on, what to do.
fn failed<'a>(call: &'static str, episode_id: &'a str) -> impl FnOnce(tonic::Status) -> anyhow::Error + 'a {
    move |status| {
        let hint = match (call, status.code()) {
            (call, tonic::Code::NotFound) if !episode_id.is_empty() && call != "Registry.GetEpisode" => {
                format!("; check the episode id {episode_id} (`tfesi episode show {episode_id}`)")
            }
            ("Registry.RecordFollowUp", tonic::Code::AlreadyExists) => format!(
                "; correct the recorded score with `tfesi followup amend {episode_id} --reason ... --leg-nrs ...`"
            ),
            ("Registry.AmendFollowUp", tonic::Code::Aborted) => format!(
                "; the current version is not the one expected: read `tfesi followup history {episode_id}` \
                 and amend that version"
            ),
            (_, tonic::Code::InvalidArgument) if status.message().contains("entered_by") => {
                "; give --entered-by with the staff account that obtained the score".to_owned()
            }
            (_, tonic::Code::FailedPrecondition) if status.message().contains("window") => {
                "; a date outside the follow-up window needs --out-of-window".to_owned()
            }
            (_, tonic::Code::FailedPrecondition) if status.message().contains("injection") => {
                format!("; record the injection first (`tfesi episode inject {episode_id} ...`)")
            }
            _ => String::new(),
        };
        anyhow::anyhow!("{}{hint}", call_failed(call)(status))
    }
}

fn print(json_output: bool, value: &Value, table: impl FnOnce()) -> anyhow::Result<()> {
    if json_output {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table();
    }
    Ok(())
}

/// Runs an `episode` command.
pub async fn episode(
    endpoints: &Endpoints,
    json_output: bool,
    command: EpisodeCommand,
) -> anyhow::Result<()> {
    let mut client = RegistryClient::new(endpoints.connect("registry", &endpoints.registry).await?);
    match command {
        EpisodeCommand::Create(args) => {
            let key = key_or_fresh(args.idempotency_key);
            let details = registry::EpisodeDetails {
                patient_id: args.patient_id,
                study_id: args.study_id.unwrap_or_default(),
                indication: common::Indication::from(args.indication) as i32,
                planned_levels: view::level_numbers(&args.levels),
                planned_side: common::Side::from(args.side) as i32,
                baseline_leg_nrs: args.baseline_leg_nrs,
                baseline_back_nrs: args.baseline_back_nrs,
                symptom_duration_days: args.symptom_days,
                age_years: args.age,
                sex: common::Sex::from(args.sex) as i32,
                baseline_date: args.baseline_date.map(view::proto_date),
            };
            let episode = client
                .create_episode(registry::CreateEpisodeRequest {
                    idempotency_key: key.clone(),
                    details: Some(details),
                })
                .await
                .map_err(failed("Registry.CreateEpisode", ""))?
                .into_inner()
                .episode
                .ok_or_else(|| anyhow::anyhow!("Registry.CreateEpisode answered without the episode"))?;
            let value = json!({"idempotency_key": key, "episode": view::episode_json(&episode)});
            print(json_output, &value, || {
                println!("episode {} created (idempotency key {key})", episode.episode_id);
                println!(
                    "next: `tfesi episode inject {} --date YYYY-MM-DD ...` once injected",
                    episode.episode_id
                );
            })
        }
        EpisodeCommand::Inject(args) => {
            let key = key_or_fresh(args.idempotency_key);
            let injection = registry::InjectionDetails {
                injection_date: Some(view::proto_date(args.date)),
                levels: view::level_numbers(&args.levels),
                side: common::Side::from(args.side) as i32,
                approach: match args.approach {
                    Approach::Subpedicular => registry::Approach::Subpedicular,
                    Approach::Retrodiscal => registry::Approach::Retrodiscal,
                } as i32,
                guidance: match args.guidance {
                    Guidance::Fluoroscopy => registry::Guidance::Fluoroscopy,
                    Guidance::Ct => registry::Guidance::Ct,
                } as i32,
                contrast_used: args.contrast,
                drug_code: args.drug_code,
                drug_text: args.drug_text,
                dose_mg: args.dose_mg,
                local_anaesthetic: args.local_anaesthetic,
            };
            let episode = client
                .record_injection(registry::RecordInjectionRequest {
                    idempotency_key: key.clone(),
                    episode_id: args.episode_id.clone(),
                    injection: Some(injection),
                })
                .await
                .map_err(failed("Registry.RecordInjection", &args.episode_id))?
                .into_inner()
                .episode
                .ok_or_else(|| anyhow::anyhow!("Registry.RecordInjection answered without the episode"))?;
            let value = json!({"idempotency_key": key, "episode": view::episode_json(&episode)});
            print(json_output, &value, || {
                let window = episode.window.unwrap_or_default();
                println!(
                    "injection recorded for episode {}: follow-up due {}, accepted {} to {}",
                    episode.episode_id,
                    view::date_text(window.due_date.as_ref()).unwrap_or_default(),
                    view::date_text(window.window_start.as_ref()).unwrap_or_default(),
                    view::date_text(window.window_end.as_ref()).unwrap_or_default()
                );
            })
        }
        EpisodeCommand::Show { episode_id } => {
            let episode = client
                .get_episode(registry::GetEpisodeRequest { episode_id: episode_id.clone() })
                .await
                .map_err(failed("Registry.GetEpisode", &episode_id))?
                .into_inner()
                .episode
                .ok_or_else(|| anyhow::anyhow!("Registry.GetEpisode answered without the episode"))?;
            print(json_output, &view::episode_json(&episode), || view::print_episode(&episode))
        }
        EpisodeCommand::Watch { episode_id, for_s, after_revision, no_initial } => {
            let mut stream = client
                .watch_episode(registry::WatchEpisodeRequest {
                    episode_id: episode_id.clone(),
                    send_initial: !no_initial,
                    after_revision,
                })
                .await
                .map_err(failed("Registry.WatchEpisode", &episode_id))?
                .into_inner();
            let deadline = async {
                match for_s {
                    Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(deadline);
            let interrupted = tokio::signal::ctrl_c();
            tokio::pin!(interrupted);
            let (mut events, mut last) = (0_u64, after_revision);
            loop {
                let message = tokio::select! {
                    message = stream.message() => message,
                    _ = &mut deadline => break,
                    _ = &mut interrupted => break,
                };
                match message {
                    Ok(Some(event)) => {
                        if json_output {
                            println!("{}", serde_json::to_string(&view::event_json(&event))?);
                        } else {
                            println!("{}", view::event_line(&event));
                        }
                        events += 1;
                        last = last.max(event.revision);
                    }
                    Ok(None) => anyhow::bail!(
                        "the registry ended the watch of episode {episode_id} after revision {last} (is it \
                         shutting down?); resume with `tfesi episode watch {episode_id} --after-revision {last}`"
                    ),
                    Err(status) => anyhow::bail!(
                        "Registry.WatchEpisode failed after revision {last}: {}; resume with \
                         `tfesi episode watch {episode_id} --after-revision {last}`",
                        describe(&status)
                    ),
                }
            }
            eprintln!("watched {events} events of episode {episode_id}; last revision {last}");
            Ok(())
        }
    }
}

/// Runs a `followup` command.
pub async fn follow_up(
    endpoints: &Endpoints,
    json_output: bool,
    command: FollowUpCommand,
) -> anyhow::Result<()> {
    let mut client = RegistryClient::new(endpoints.connect("registry", &endpoints.registry).await?);
    match command {
        FollowUpCommand::Due { as_of, states, limit } => {
            let as_of = as_of.unwrap_or_else(|| chrono::Local::now().date_naive());
            let states: Vec<i32> =
                states.iter().map(|&state| registry::DueState::from(state) as i32).collect();
            let (mut entries, mut token, mut more) = (Vec::new(), String::new(), false);
            loop {
                let page_size = i32::try_from((limit as usize - entries.len()).min(500)).unwrap_or(500);
                let response = client
                    .list_due_follow_ups(registry::ListDueFollowUpsRequest {
                        as_of: Some(view::proto_date(as_of)),
                        states: states.clone(),
                        page: Some(common::PageRequest { page_size, page_token: token }),
                    })
                    .await
                    .map_err(failed("Registry.ListDueFollowUps", ""))?
                    .into_inner();
                entries.extend(response.entries);
                token = response.page.unwrap_or_default().next_page_token;
                if token.is_empty() {
                    break;
                }
                if entries.len() >= limit as usize {
                    more = true;
                    break;
                }
            }
            entries.truncate(limit as usize);
            let rows: Vec<Value> = entries
                .iter()
                .map(|entry| {
                    let window = entry.window.unwrap_or_default();
                    json!({
                        "episode_id": entry.episode_id,
                        "patient_id": entry.patient_id,
                        "state": view::due_state_name(entry.state),
                        "days_since_injection": entry.days_since_injection,
                        "window": view::window_json(&window),
                        "levels": entry.levels.iter().map(|&l| view::level_name(l)).collect::<Vec<_>>(),
                        "side": view::side_name(entry.side),
                    })
                })
                .collect();
            let value = json!({"as_of": as_of.to_string(), "entries": rows, "more": more});
            print(json_output, &value, || {
                println!(
                    "{:<36}  {:<36}  {:<9}  {:>4}  {:<10}  {:<23}  LEVELS",
                    "EPISODE", "PATIENT", "STATE", "DAY", "DUE", "WINDOW"
                );
                for entry in &entries {
                    let window = entry.window.unwrap_or_default();
                    let date =
                        |d: Option<&common::Date>| view::date_text(d).unwrap_or_else(|| "-".to_owned());
                    println!(
                        "{:<36}  {:<36}  {:<9}  {:>4}  {:<10}  {:<23}  {} {}",
                        entry.episode_id,
                        entry.patient_id,
                        view::due_state_name(entry.state),
                        entry.days_since_injection,
                        date(window.due_date.as_ref()),
                        format!(
                            "{} to {}",
                            date(window.window_start.as_ref()),
                            date(window.window_end.as_ref())
                        ),
                        view::levels_text(&entry.levels),
                        if entry.side == common::Side::Unspecified as i32 {
                            String::new()
                        } else {
                            view::side_name(entry.side)
                        }
                    );
                }
                println!(
                    "{} follow-ups as of {as_of}{}",
                    entries.len(),
                    if more { format!(" (more: raise --limit above {limit})") } else { String::new() }
                );
            })
        }
        FollowUpCommand::Record(args) => {
            let key = key_or_fresh(args.idempotency_key);
            let mut input = registry::FollowUpInput {
                follow_up_date: Some(view::proto_date(args.date)),
                leg_nrs: args.leg_nrs,
                method: registry::FollowUpMethod::from(args.method) as i32,
                ..Default::default()
            };
            args.extras.apply(&mut input);
            let response = client
                .record_follow_up(registry::RecordFollowUpRequest {
                    idempotency_key: key.clone(),
                    episode_id: args.episode_id.clone(),
                    follow_up: Some(input),
                })
                .await
                .map_err(failed("Registry.RecordFollowUp", &args.episode_id))?
                .into_inner();
            let follow_up = response.follow_up.unwrap_or_default();
            print_written(json_output, "recorded", &key, &follow_up, &response.labels)
        }
        FollowUpCommand::Amend(args) => {
            let episode = client
                .get_episode(registry::GetEpisodeRequest { episode_id: args.episode_id.clone() })
                .await
                .map_err(failed("Registry.GetEpisode", &args.episode_id))?
                .into_inner()
                .episode
                .unwrap_or_default();
            let Some(current) = episode.follow_up else {
                anyhow::bail!(
                    "episode {} has no follow-up to amend: record one with `tfesi followup record {} ...`",
                    args.episode_id,
                    args.episode_id
                );
            };
            let before = current.input.clone().unwrap_or_default();
            let mut input = before.clone();
            if let Some(date) = args.date {
                input.follow_up_date = Some(view::proto_date(date));
            }
            if let Some(leg_nrs) = args.leg_nrs {
                input.leg_nrs = leg_nrs;
            }
            if let Some(method) = args.method {
                input.method = registry::FollowUpMethod::from(method) as i32;
            }
            args.extras.apply(&mut input);
            if input == before {
                anyhow::bail!(
                    "nothing to amend: version {} of episode {} already says that; give the corrected \
                     field(s), e.g. --leg-nrs 3",
                    current.version,
                    args.episode_id
                );
            }
            let key = key_or_fresh(args.idempotency_key);
            let response = client
                .amend_follow_up(registry::AmendFollowUpRequest {
                    idempotency_key: key.clone(),
                    episode_id: args.episode_id.clone(),
                    expected_version: args.expected_version.unwrap_or(current.version),
                    reason: args.reason,
                    follow_up: Some(input),
                })
                .await
                .map_err(failed("Registry.AmendFollowUp", &args.episode_id))?
                .into_inner();
            let follow_up = response.follow_up.unwrap_or_default();
            print_written(json_output, "amended", &key, &follow_up, &response.labels)
        }
        FollowUpCommand::History { episode_id } => {
            let versions = client
                .get_follow_up_history(registry::GetFollowUpHistoryRequest { episode_id: episode_id.clone() })
                .await
                .map_err(failed("Registry.GetFollowUpHistory", &episode_id))?
                .into_inner()
                .versions;
            let value = Value::Array(versions.iter().map(view::follow_up_json).collect());
            print(json_output, &value, || {
                if versions.is_empty() {
                    println!("episode {episode_id} has no follow-up recorded");
                }
                for version in &versions {
                    println!(
                        "{}{}  (recorded {} by {})",
                        if version.current { "* " } else { "  " },
                        view::follow_up_line(version),
                        view::time_text(version.recorded_at.as_ref()).unwrap_or_default(),
                        version.recorded_by
                    );
                }
            })
        }
    }
}

/// The answer of a follow-up write: the stored version and the labels it produced.
fn print_written(
    json_output: bool,
    verb: &str,
    key: &str,
    follow_up: &registry::FollowUp,
    labels: &[registry::Label],
) -> anyhow::Result<()> {
    let value = json!({
        "idempotency_key": key,
        "follow_up": view::follow_up_json(follow_up),
        "labels": labels.iter().map(view::label_json).collect::<Vec<_>>(),
    });
    print(json_output, &value, || {
        println!(
            "follow-up {verb} for episode {}: {}",
            follow_up.episode_id,
            view::follow_up_line(follow_up)
        );
        for label in labels {
            println!("label  {}", view::label_line(label));
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: FollowUpCommand,
    }

    const EPISODE: &str = "0f8e2b6a-3c1d-4e5f-9a7b-1c2d3e4f5a6b";

    #[test]
    fn scores_outside_nrs_are_command_line_errors() {
        for bad in ["11", "-1", "7.5", "x"] {
            let parsed = Cli::try_parse_from([
                "t",
                "record",
                EPISODE,
                "--date",
                "2025-03-07",
                "--method",
                "phone",
                "--leg-nrs",
                bad,
            ]);
            assert!(parsed.is_err(), "--leg-nrs {bad} must be refused");
        }
        let parsed = Cli::try_parse_from([
            "t",
            "record",
            EPISODE,
            "--date",
            "2025-03-07",
            "--method",
            "phone",
            "--leg-nrs",
            "10",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn amend_keeps_what_is_not_given() {
        let Ok(Cli { command: FollowUpCommand::Amend(args) }) = Cli::try_parse_from([
            "t",
            "amend",
            EPISODE,
            "--reason",
            "typo",
            "--back-nrs",
            "2",
            "--surgery",
            "no",
        ]) else {
            panic!("amend parses");
        };
        let mut input = registry::FollowUpInput {
            leg_nrs: 4,
            back_nrs: Some(6),
            method: registry::FollowUpMethod::Phone as i32,
            entered_by: "nurse-7".to_owned(),
            ..Default::default()
        };
        args.extras.apply(&mut input);
        assert_eq!(input.leg_nrs, 4);
        assert_eq!(input.back_nrs, Some(2));
        assert_eq!(input.surgery, Some(false));
        assert_eq!(input.entered_by, "nurse-7");
        assert_eq!(input.method, registry::FollowUpMethod::Phone as i32);
    }

    #[test]
    fn ids_and_dates_are_checked_before_any_call() {
        assert!(Cli::try_parse_from(["t", "history", "not-a-uuid"]).is_err());
        assert!(Cli::try_parse_from(["t", "due", "--as-of", "2025-13-01"]).is_err());
        assert!(Cli::try_parse_from(["t", "due", "--as-of", "2025-12-01", "--state", "due-today"]).is_ok());
    }
}
