//! The command line: global options and every subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The Switchyard admin CLI.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Args {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An admin token.
    #[arg(long, global = true, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// For an `https://` server: trust only the CA certificates in this PEM file
    /// (default: the system's roots, which `SSL_CERT_FILE` can extend).
    #[arg(long, global = true, env = "SWITCHYARD_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// How answers are printed: tables for people, JSON or YAML for scripts.
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Environments.
    #[command(subcommand)]
    Envs(Envs),
    /// Flags of an environment.
    #[command(subcommand)]
    Flags(Flags),
    /// Segments of an environment.
    #[command(subcommand)]
    Segments(Segments),
    /// API tokens.
    #[command(subcommand)]
    Tokens(Tokens),
    /// Changes to flags scheduled for a time, carried out by the server.
    #[command(subcommand)]
    Schedule(Schedules),
    /// The audit log, newest first (`--follow`: then every new entry as it comes).
    Audit {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only this flag.
        #[arg(long)]
        flag: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep printing new entries until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Evaluate a flag for a context: value, variant, reason and the rule that served.
    Eval {
        /// The flag.
        flag: String,
        /// The environment.
        #[arg(long)]
        env: String,
        /// The context as JSON, e.g. `{"targetingKey": "u-1", "country": "de"}`.
        #[arg(long, default_value = "{}")]
        context: String,
    },
    /// Write every flag and segment of an environment as files: `DIR/flags/KEY.yaml`
    /// and `DIR/segments/KEY.yaml`.
    Export {
        /// The environment.
        #[arg(long)]
        env: String,
        /// The directory (created if missing).
        #[arg(long, short = 'f', default_value = "flags")]
        dir: PathBuf,
    },
    /// Show what `apply` would change; exit 2 when there are changes, 0 when none.
    Plan(Sync),
    /// Make the environment what the files say, in one atomic write.
    Apply {
        /// The files and environment.
        #[command(flatten)]
        sync: Sync,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// Apply only if the environment is still at this revision (the one a
        /// reviewed `plan` printed); otherwise nothing is written.
        #[arg(long)]
        revision: Option<u64>,
    },
}

/// Where `plan` and `apply` read from and what they compare against.
#[derive(Debug, clap::Args)]
pub struct Sync {
    /// The directory `export` wrote (`flags/` and `segments/` in it).
    #[arg(long, short = 'f', default_value = "flags")]
    pub dir: PathBuf,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Delete the flags and segments the files do not have.
    #[arg(long)]
    pub prune: bool,
}

/// `envs …`
#[derive(Debug, Subcommand)]
pub enum Envs {
    /// Every environment with its revision and flag count.
    List,
}

/// `flags …`
#[derive(Debug, Subcommand)]
pub enum Flags {
    /// Every flag of the environment.
    List {
        /// The environment.
        #[arg(long)]
        env: String,
    },
    /// One flag, whole.
    Get {
        /// The flag.
        key: String,
        /// The environment.
        #[arg(long)]
        env: String,
    },
    /// Kill switch: everyone gets the flag's off variant.
    Kill {
        /// The flag.
        key: String,
        /// The environment.
        #[arg(long)]
        env: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Undo a kill.
    Revive {
        /// The flag.
        key: String,
        /// The environment.
        #[arg(long)]
        env: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Flags unused or serving one variant to everyone for `--days` (or `--after`), and
    /// flags past their `expires` date.
    Stale {
        /// The environment.
        #[arg(long)]
        env: String,
        /// How many days count as stale.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Instead of `--days`: a duration such as `12h` or `90d`.
        #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "days")]
        after: Option<std::time::Duration>,
    },
    /// Keys evaluated in the environment that it does not have.
    Unknown {
        /// The environment.
        #[arg(long)]
        env: String,
    },
    /// Serve the flag's first variant to PERCENT % (up or down) of its default serve or
    /// of one rule's.
    Ramp {
        /// The flag.
        key: String,
        /// 0 to 100.
        #[arg(value_parser = clap::value_parser!(u32).range(0..=100))]
        percent: u32,
        /// The environment.
        #[arg(long)]
        env: String,
        /// The rule whose serve is ramped; the default serve when absent.
        #[arg(long)]
        rule: Option<String>,
    },
}

/// `segments …`
#[derive(Debug, Subcommand)]
pub enum Segments {
    /// Every segment of the environment.
    List {
        /// The environment.
        #[arg(long)]
        env: String,
    },
    /// One segment, whole.
    Get {
        /// The segment.
        key: String,
        /// The environment.
        #[arg(long)]
        env: String,
    },
}

/// `tokens …`
#[derive(Debug, Subcommand)]
pub enum Tokens {
    /// Issue a token; its secret is printed once.
    Create {
        /// A unique name.
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The environment an `sdk` or `eval` token is limited to.
        #[arg(long)]
        env: Option<String>,
        /// Stop accepting it after this long (`90d`, `12h`); default: never.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Every token (no secrets): expiry and last use.
    List,
    /// Give a token a new secret (printed once); the old one keeps working for the
    /// grace period.
    Rotate {
        /// Its name.
        name: String,
        /// How long the old secret stays accepted (at most `30d`; `0s` ends it, and
        /// the streams it opened, at once).
        #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
    },
    /// Revoke a token.
    Revoke {
        /// Its name.
        name: String,
    },
}

/// A token's kind.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Everything.
    Admin,
    /// One environment: snapshot, stream, evaluation, metrics.
    Sdk,
    /// One environment: evaluation only.
    Eval,
}

/// `schedule …`
#[derive(Debug, Subcommand)]
pub enum Schedules {
    /// Schedule a kill, a revive, a ramp or any edit (`--flag-file`) of a flag.
    #[command(group(clap::ArgGroup::new("change").required(true).args(["kill", "revive", "ramp", "flag_file"])))]
    Create {
        /// The flag.
        flag: String,
        /// The environment.
        #[arg(long)]
        env: String,
        /// When: RFC 3339 (`2026-12-24T09:00:00Z`) or from now (`+30m`, `+2h`).
        #[arg(long)]
        at: String,
        /// Kill the flag.
        #[arg(long)]
        kill: bool,
        /// Revive the flag.
        #[arg(long)]
        revive: bool,
        /// Ramp the first variant to this percentage (0 to 100).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
        ramp: Option<u32>,
        /// With `--ramp`: the rule whose serve is ramped.
        #[arg(long, requires = "ramp")]
        rule: Option<String>,
        /// Any edit: replace the flag with the one in this file (YAML as `export`
        /// writes it; checked now, written at the time).
        #[arg(long, value_name = "PATH")]
        flag_file: Option<PathBuf>,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// The scheduled changes of an environment, by due time.
    List {
        /// The environment.
        #[arg(long)]
        env: String,
    },
    /// Cancel a pending scheduled change.
    Cancel {
        /// Its id.
        id: String,
        /// The environment.
        #[arg(long)]
        env: String,
    },
}
