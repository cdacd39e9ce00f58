//! The command line: clap definitions for every subcommand, and the HTTP client side
//! that talks to a running daemon (`serve` itself lives in the binary).
//!
//! Exit codes (see [`exit`]): 0 done (for `apply --wait`: promoted); 1 the daemon
//! refused or failed, or the release rolled back; 2 a usage error or an invalid plan;
//! 3 the outcome is unknown — the daemon could not be reached (for `apply --wait`: not
//! again within `--reconnect-for`) or `--timeout` ran out while the release runs on.
//!
//! *API Boundary*: the CLI knows the daemon only through its HTTP API; it decodes the
//! daemon's answers into the crate's own types ([`Release`], [`ReleaseSummary`]) and
//! renders them with [`report`], so the terminal and the reports agree.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::analysis::error_chain;
use crate::daemon::{ReleaseSummary, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use crate::machine::{Entry, Millis, Phase};
use crate::plan::{Hotfix, Plan, PlanError, Problem};
use crate::report::{self, name_of};
use crate::store::Release;
use switchyard_core::release::ReleaseReport;

mod client;
mod render;

pub use client::Client;
use render::{outcome_line, timeline_lines};
pub use render::{progress_bar, render_history, render_list, render_release};

/// `switchyard-orchestrator`: runs release plans that ramp a canary's traffic and its
/// feature flags together, analyse metrics between steps and roll back by themselves.
#[derive(Debug, Clone, Parser)]
#[command(name = "switchyard-orchestrator", version, about)]
pub struct Cli {
    /// The orchestrator daemon's URL.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ORCHESTRATOR_URL",
        default_value = "http://127.0.0.1:7070"
    )]
    pub url: String,

    /// The daemon's API token (its `serve --api-token`), when it requires one.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ORCHESTRATOR_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the daemon: the HTTP API and the releases it drives.
    Serve(ServeArgs),
    /// Commands that talk to a running daemon.
    #[command(flatten)]
    Client(ClientCommand),
}

/// How the daemon's logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[value(alias = "pretty")]
    Text,
    /// One JSON object per line.
    Json,
}

/// `serve`'s options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_LISTEN",
        default_value = "127.0.0.1:7070"
    )]
    pub listen: SocketAddr,

    /// Directory of the embedded state store (created if missing).
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_DATA_DIR",
        default_value = "./orchestrator-data"
    )]
    pub data_dir: PathBuf,

    /// The flag server whose flags releases ramp.
    #[arg(
        long,
        env = "SWITCHYARD_SERVER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server_url: String,

    /// For an `https://` flag server: trust only the CA certificates in this PEM file
    /// (default: the system's roots, which `SSL_CERT_FILE` can extend; Prometheus,
    /// webhooks and gates always use the system's roots).
    #[arg(long, env = "SWITCHYARD_SERVER_CA_FILE")]
    pub server_ca_file: Option<PathBuf>,

    /// An admin token of the flag server.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,

    /// Require `Authorization: Bearer <token>` on every API request.
    #[arg(long, env = "SWITCHYARD_ORCHESTRATOR_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// How often running releases are ticked and their flags looked at (`500ms`, `2s`).
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_POLL",
        default_value = "1s",
        value_parser = humantime::parse_duration
    )]
    pub poll_interval: Duration,

    /// A Redis shared by several orchestrators: releases are stored there and each is
    /// driven by the holder of its lease. `redis://host:port/db`, a Cluster's seeds
    /// (`redis+cluster://host:port,…`) or a Sentinel primary
    /// (`redis+sentinel://host:26379,…/MASTER`); docs/redis.md. The embedded store in
    /// `--data-dir` when absent.
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_REDIS_URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,

    /// Acknowledge a save only once this many replicas of the Redis primary hold it
    /// (Redis `WAIT`); 0 acknowledges on the primary alone.
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_REDIS_WAIT_REPLICAS",
        default_value_t = 0
    )]
    pub redis_wait_replicas: u32,

    /// How long a save waits for `--redis-wait-replicas` before it fails.
    #[arg(long, env = "SWITCHYARD_ORCHESTRATOR_REDIS_WAIT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub redis_wait_timeout: std::time::Duration,

    /// How long a release's lease lasts unless its driver renews it: how soon another
    /// orchestrator takes over a release whose driver died.
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_LEASE",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub lease: Duration,

    /// How long after its promotion a release may still be rolled back with
    /// `rollback` (`24h`, `7d`).
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_ROLLBACK_WINDOW",
        default_value = "24h",
        value_parser = humantime::parse_duration
    )]
    pub rollback_window: Duration,

    /// Log format.
    #[arg(
        long,
        env = "SWITCHYARD_ORCHESTRATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

impl ServeArgs {
    /// Checks what clap cannot.
    pub fn validate(mut self) -> Result<Self, String> {
        if self.poll_interval.is_zero() {
            return Err("--poll-interval must be longer than 0s".into());
        }
        if self.lease < Duration::from_millis(300) {
            return Err("--lease must be at least 300ms".into());
        }
        if !(self.server_url.starts_with("http://") || self.server_url.starts_with("https://")) {
            return Err(format!(
                "--server-url `{}` is not an http(s) URL",
                self.server_url
            ));
        }
        if self.admin_token.trim().is_empty() {
            return Err("--admin-token (SWITCHYARD_ADMIN_TOKEN) must not be empty".into());
        }
        self.api_token = self.api_token.filter(|t| !t.is_empty());
        Ok(self)
    }
}

/// Who runs a command, as the timeline, the report and notifications record it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Actor {
    /// Who is acting (recorded with the command); default `$USER`, else `cli`.
    #[arg(long = "by", env = "SWITCHYARD_BY", value_name = "NAME")]
    by: Option<String>,
}

impl Actor {
    fn name(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "cli".to_owned())
    }
}

/// The subcommands that talk to a daemon.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Start a release from a plan file (YAML or JSON).
    Apply {
        /// The release plan.
        file: PathBuf,
        /// Follow the release, printing each decision as it happens (times in UTC), until
        /// it ends: exit 0 when promoted, 1 when rolled back or failed, 2 for an invalid
        /// plan, 3 when it could not be followed to its end (daemon unreachable for
        /// longer than --reconnect-for, or --timeout ran out).
        #[arg(long)]
        wait: bool,
        /// With `--wait`, give up (exit 3; the release keeps running) after this long.
        #[arg(long, value_parser = humantime::parse_duration, requires = "wait")]
        timeout: Option<Duration>,
        /// With `--wait`, how long to keep retrying (with back-off) when the daemon stops
        /// answering, e.g. while it restarts, before giving up with exit 3.
        #[arg(
            long,
            env = "SWITCHYARD_ORCHESTRATOR_RECONNECT_FOR",
            default_value = "60s",
            value_parser = humantime::parse_duration,
            requires = "wait"
        )]
        reconnect_for: Duration,
        /// Release as a hotfix: every service goes to 100 % in one step after the
        /// gates and pre-checks, held and analysed for the plan's `hotfix.bake` (one
        /// analysis interval by default) before promotion; marked as a hotfix in the
        /// timeline, reports and DORA figures. Needs `--reason`.
        #[arg(long, requires = "reason")]
        hotfix: bool,
        /// Why this hotfix skips the ramp (recorded with the release).
        #[arg(long, requires = "hotfix")]
        reason: Option<String>,
    },
    /// Show every release, or one release's services in detail.
    Status {
        /// The release.
        name: Option<String>,
        /// Redraw every second until the release (or every release) is over.
        #[arg(long)]
        watch: bool,
    },
    /// Pass an approval step.
    Approve {
        /// The release.
        name: String,
        #[command(flatten)]
        actor: Actor,
        /// Approve only this service (every awaiting service otherwise).
        #[arg(long)]
        service: Option<String>,
    },
    /// Pause the progressing services.
    Pause {
        /// The release.
        name: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Resume the paused services.
    Resume {
        /// The release.
        name: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Roll the release back: canary weight 0, flags killed.
    Abort {
        /// The release.
        name: String,
        #[command(flatten)]
        actor: Actor,
        /// Why (kept in the timeline and the report).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Roll a promoted release back within the daemon's `--rollback-window`: canary
    /// weight 0 for every service, its flags back to their pre-release serve and
    /// killed; counted as a change failure.
    Rollback {
        /// The release.
        name: String,
        #[command(flatten)]
        actor: Actor,
        /// Why (kept in the timeline and the report).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Skip every remaining step and promote each service to 100 %.
    Promote {
        /// The release.
        name: String,
        #[command(flatten)]
        actor: Actor,
        /// Required: promotion is always full (approval steps are passed with `approve`).
        #[arg(long, required = true)]
        full: bool,
    },
    /// Print a release's report, or with `--dora` the DORA figures over every release.
    Report {
        /// The release (not with `--dora`).
        #[arg(required_unless_present = "dora", conflicts_with = "dora")]
        name: Option<String>,
        /// Markdown for people, JSON for tools.
        #[arg(long, value_enum, default_value = "markdown")]
        format: ReportFormat,
        /// Instead of one release's report: deployment frequency, change failure rate
        /// and time to restore over the releases that finished within `--window`.
        #[arg(long)]
        dora: bool,
        /// With `--dora`: how far back to look, from `1h` to `365d` (default `30d`).
        #[arg(long, value_parser = report::parse_dora_window, conflicts_with = "name")]
        window: Option<Duration>,
        /// Release notes in Markdown instead of the report: services and versions,
        /// flags, approvals, key decisions, outcome and duration.
        #[arg(long, conflicts_with_all = ["dora", "format"])]
        notes: bool,
        /// With `--notes`: a minijinja template of your own instead of the default one
        /// (docs/orchestrator.md lists what it may use).
        #[arg(long, requires = "notes")]
        template: Option<PathBuf>,
    },
    /// Every release ever applied, newest first: outcome, start, duration and why.
    History {
        /// How many releases to show (1 to 1000).
        #[arg(
            long,
            default_value_t = DEFAULT_HISTORY_LIMIT as u32,
            value_parser = clap::value_parser!(u32).range(1..=MAX_HISTORY_LIMIT as i64)
        )]
        limit: u32,
    },
}

/// A report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A Markdown timeline.
    Markdown,
    /// One JSON document.
    Json,
}

/// Why a CLI command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The plan file could not be read.
    #[error("cannot read {}", path.display())]
    ReadPlan {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A release notes template file could not be read.
    #[error("cannot read the release notes template {}", path.display())]
    ReadTemplate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plan is not valid; every problem with its path.
    #[error("invalid release plan")]
    InvalidPlan(Vec<Problem>),
    /// `--url` is not a URL.
    #[error("--url `{url}` is not a valid URL")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `--url` is a URL, but not an http(s) one.
    #[error("--url `{url}` is not an http(s) URL")]
    NotHttpUrl {
        /// What was given.
        url: String,
    },
    /// Nothing answers at the daemon's URL.
    #[error(
        "cannot reach the orchestrator at {url}; is it running? Start it with \
         `switchyard-orchestrator serve` or point --url (SWITCHYARD_ORCHESTRATOR_URL) at it"
    )]
    Unreachable {
        /// The daemon's URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The request failed on the way.
    #[error("request to {url} failed")]
    Http {
        /// The request's URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The daemon answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The daemon's error code.
        code: String,
        /// The daemon's message.
        message: String,
    },
    /// The daemon's answer could not be decoded.
    #[error("{url} answered something that is not what the orchestrator sends")]
    Undecodable {
        /// The request's URL.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The command line is incomplete in a way clap does not catch.
    #[error("{0}")]
    Usage(String),
    /// `apply --wait --timeout` ran out.
    #[error(
        "release `{name}` is still running after {}; it goes on without us \
         (follow it with `status {name} --watch`)",
        humantime::format_duration(*after)
    )]
    Timeout {
        /// The release.
        name: String,
        /// The timeout.
        after: Duration,
    },
    /// `apply --wait` lost the daemon and could not reach it again in time.
    #[error(
        "lost the orchestrator while following release `{name}` and could not reach it \
         again within {}; the release's outcome is unknown (see `status {name}` once \
         the daemon is back)",
        humantime::format_duration(*after)
    )]
    LostDaemon {
        /// The release.
        name: String,
        /// How long it retried.
        after: Duration,
        /// The last failure.
        #[source]
        source: Box<CliError>,
    },
}

/// The process's exit codes, which pipelines may rely on.
pub mod exit {
    /// Done; for `apply --wait`: the release was promoted.
    pub const SUCCESS: u8 = 0;
    /// The release rolled back or failed, or the daemon refused the command.
    pub const FAILED: u8 = 1;
    /// A usage error or an invalid plan (nothing was started).
    pub const INVALID: u8 = 2;
    /// The outcome is unknown: the daemon could not be reached, or `--timeout` ran out.
    pub const UNKNOWN: u8 = 3;
}

impl CliError {
    /// [`exit::INVALID`] for usage and plan errors, [`exit::UNKNOWN`] when the daemon
    /// could not be reached or followed, [`exit::FAILED`] for everything else.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::ReadPlan { .. }
            | CliError::ReadTemplate { .. }
            | CliError::InvalidPlan(_)
            | CliError::BadUrl { .. }
            | CliError::NotHttpUrl { .. }
            | CliError::Usage(_) => exit::INVALID,
            CliError::Unreachable { .. }
            | CliError::Http { .. }
            | CliError::Timeout { .. }
            | CliError::LostDaemon { .. } => exit::UNKNOWN,
            CliError::Api { .. } | CliError::Undecodable { .. } => exit::FAILED,
        })
    }

    /// Whether the daemon may answer again if asked later: it could not be reached,
    /// the request broke on the way, or it (or a proxy before it) answered 5xx.
    fn is_transient(&self) -> bool {
        match self {
            CliError::Unreachable { .. } | CliError::Http { .. } => true,
            CliError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Prints the error on stderr: a plan's problems one per line (`path: message`),
    /// anything else as `error: <message with its causes>`.
    pub fn print(&self) {
        match self {
            CliError::InvalidPlan(problems) => {
                for problem in problems {
                    eprintln!("{problem}");
                }
            }
            other => eprintln!("error: {}", error_chain(other)),
        }
    }
}

impl From<PlanError> for CliError {
    fn from(error: PlanError) -> Self {
        match error {
            PlanError::Syntax { path, message } => {
                CliError::InvalidPlan(vec![Problem { path, message }])
            }
            PlanError::Invalid(problems) => CliError::InvalidPlan(problems),
        }
    }
}

/// Runs a client command against the daemon at `url`, printing its output, and says
/// how the process should exit.
pub async fn run(url: &str, token: Option<&str>, command: ClientCommand) -> ExitCode {
    match execute(url, token, command).await {
        Ok(code) => code,
        Err(error) => {
            error.print();
            error.exit_code()
        }
    }
}

async fn execute(
    url: &str,
    token: Option<&str>,
    command: ClientCommand,
) -> Result<ExitCode, CliError> {
    let client = Client::new(url, token)?;
    match command {
        ClientCommand::Apply {
            file,
            wait,
            timeout,
            reconnect_for,
            hotfix,
            reason,
        } => {
            let follow = wait.then_some(Follow {
                timeout,
                reconnect_for,
            });
            let hotfix = reason.filter(|_| hotfix);
            apply(&client, &file, hotfix, follow).await
        }
        ClientCommand::Status { name, watch } => {
            status(&client, name.as_deref(), watch).await?;
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Approve {
            name,
            service,
            actor,
        } => {
            let body = json!({ "service": service, "by": actor.name() });
            print_summary(&client.command(&name, "approve", body).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Pause { name, actor } => {
            let body = json!({ "by": actor.name() });
            print_summary(&client.command(&name, "pause", body).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Resume { name, actor } => {
            let body = json!({ "by": actor.name() });
            print_summary(&client.command(&name, "resume", body).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Abort {
            name,
            reason,
            actor,
        } => {
            let body = json!({ "reason": reason, "by": actor.name() });
            print_summary(&client.command(&name, "abort", body).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Rollback {
            name,
            reason,
            actor,
        } => {
            let body = json!({ "reason": reason, "by": actor.name() });
            print_summary(&client.command(&name, "rollback", body).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Promote { name, full, actor } => {
            let body = json!({ "full": full, "by": actor.name() });
            print_summary(&client.command(&name, "promote", body).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Report {
            dora: true,
            name: None,
            window,
            format,
            ..
        } => {
            let window = window.unwrap_or(report::DEFAULT_DORA_WINDOW);
            match format {
                ReportFormat::Markdown => print!("{}", client.dora_markdown(window).await?),
                ReportFormat::Json => {
                    let document = client.dora_json(window).await?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&document).unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Report {
            dora: true,
            name: Some(_),
            ..
        } => Err(CliError::Usage(
            "give either a release NAME or --dora, not both".into(),
        )),
        ClientCommand::Report { name: None, .. } => Err(CliError::Usage(
            "give a release NAME, or --dora for DORA figures over every release".into(),
        )),
        ClientCommand::History { limit } => {
            print!("{}", render_history(&client.history(limit).await?));
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Report {
            name: Some(name),
            notes: true,
            template,
            ..
        } => {
            let template = match &template {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|source| CliError::ReadTemplate {
                        path: path.clone(),
                        source,
                    })?
                }
                None => report::notes::DEFAULT_TEMPLATE.to_owned(),
            };
            let document: ReleaseReport = serde_json::from_value(client.report_json(&name).await?)
                .map_err(|e| {
                    CliError::Usage(format!("the daemon's report is not readable: {e}"))
                })?;
            let notes = report::notes::render(&document, &template)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            print!("{notes}");
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Report {
            name: Some(name),
            format,
            ..
        } => {
            match format {
                ReportFormat::Markdown => print!("{}", client.report_markdown(&name).await?),
                ReportFormat::Json => {
                    let document = client.report_json(&name).await?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&document).unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Who a command is attributed to: the login name, or `cli`.
fn print_summary(release: &Release) {
    println!("{}", report::summary_line(release));
}

/// How often `apply --wait` looks at the release.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// The longest pause between two attempts to reach a lost daemon.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How `apply --wait` follows a release.
#[derive(Debug, Clone, Copy)]
struct Follow {
    /// Give up after this long (the release runs on).
    timeout: Option<Duration>,
    /// Keep trying to reach a lost daemon for this long.
    reconnect_for: Duration,
}
/// How often `status --watch` redraws.
const WATCH_REFRESH: Duration = Duration::from_secs(1);

/// Applies the plan in `file` (as a hotfix when `hotfix` gives a reason).
async fn apply(
    client: &Client,
    file: &std::path::Path,
    hotfix: Option<String>,
    follow_it: Option<Follow>,
) -> Result<ExitCode, CliError> {
    let mut text = std::fs::read_to_string(file).map_err(|source| CliError::ReadPlan {
        path: file.to_owned(),
        source,
    })?;
    // Checked here too, so a broken plan is reported even when the daemon is down.
    let mut plan = Plan::from_yaml(&text)?;
    if let Some(reason) = hotfix {
        let bake = plan.hotfix.take().and_then(|h| h.bake);
        plan.hotfix = Some(Hotfix { reason, bake });
        plan.expand_steps();
        plan.validate()?;
        text = serde_yaml_ng::to_string(&plan).map_err(|e| {
            CliError::from(PlanError::Syntax {
                path: "hotfix".into(),
                message: e.to_string(),
            })
        })?;
    }
    let (release, created) = client.apply(text).await?;
    let Some(how) = follow_it else {
        let verb = if created {
            "applied"
        } else {
            "already running"
        };
        println!("{verb}: {}", report::summary_line(&release));
        return Ok(ExitCode::SUCCESS);
    };
    if !created {
        println!("release `{}` is already running; following it", plan.name);
    }
    follow(client, &plan.name, how).await
}

/// Reads the release; while the daemon cannot be reached, retries with back-off for up
/// to `reconnect_for` (a daemon restarting resumes its releases from the store).
async fn release_reconnecting(
    client: &Client,
    name: &str,
    reconnect_for: Duration,
) -> Result<Release, CliError> {
    let mut lost_at: Option<tokio::time::Instant> = None;
    let mut backoff = WAIT_POLL;
    loop {
        let error = match client.release(name).await {
            Ok(release) => {
                if lost_at.is_some() {
                    eprintln!("reached the orchestrator again; following release `{name}`");
                }
                return Ok(release);
            }
            Err(error) if error.is_transient() => error,
            Err(error) => return Err(error),
        };
        let lost = *lost_at.get_or_insert_with(|| {
            eprintln!(
                "lost the orchestrator ({}); retrying for up to {}",
                error_chain(&error),
                humantime::format_duration(reconnect_for)
            );
            tokio::time::Instant::now()
        });
        let left = reconnect_for.saturating_sub(lost.elapsed());
        if left.is_zero() {
            return Err(CliError::LostDaemon {
                name: name.to_owned(),
                after: reconnect_for,
                source: Box::new(error),
            });
        }
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

/// Prints each new timeline entry until the release ends.
async fn follow(client: &Client, name: &str, how: Follow) -> Result<ExitCode, CliError> {
    let Follow {
        timeout,
        reconnect_for,
    } = how;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut printed = 0;
    let mut poll = tokio::time::interval(WAIT_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        poll.tick().await;
        let release = release_reconnecting(client, name, reconnect_for).await?;
        let timeline = &release.state.timeline;
        let mut out = std::io::stdout().lock();
        for entry in &timeline[printed.min(timeline.len())..] {
            let _ = write!(out, "{}", timeline_lines(entry));
        }
        let _ = out.flush();
        drop(out);
        printed = timeline.len();
        if release.state.phase.is_terminal() {
            println!("{}", outcome_line(&release));
            return Ok(ExitCode::from(match release.state.phase {
                Phase::Succeeded => exit::SUCCESS,
                _ => exit::FAILED,
            }));
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(CliError::Timeout {
                name: name.to_owned(),
                after: timeout.unwrap_or_default(),
            });
        }
    }
}

async fn status(client: &Client, name: Option<&str>, watch: bool) -> Result<(), CliError> {
    let terminal = std::io::stdout().is_terminal();
    let mut refresh = tokio::time::interval(WATCH_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        refresh.tick().await;
        let (text, over) = match name {
            Some(name) => {
                let release = client.release(name).await?;
                (render_release(&release), release.state.phase.is_terminal())
            }
            None => {
                let releases = client.releases().await?;
                let over = releases.iter().all(|r| r.phase.is_terminal());
                (render_list(&releases), over)
            }
        };
        let mut out = std::io::stdout().lock();
        if watch && terminal {
            // Clear the screen and go home, so the snapshot redraws in place.
            let _ = write!(out, "\x1b[2J\x1b[H");
        } else if !first {
            let _ = writeln!(out);
        }
        let _ = write!(out, "{text}");
        let _ = out.flush();
        first = false;
        if !watch || over {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
