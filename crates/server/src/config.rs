//! Command line and environment configuration (every option is also an env var).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `switchyard-server`: feature flags over REST and OFREP, with an admin API and live
/// SDK streams.
#[derive(Debug, Clone, Parser)]
#[command(name = "switchyard-server", version, about)]
pub struct Args {
    /// Address the HTTP API listens on.
    #[arg(long, env = "SWITCHYARD_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Address the gRPC API listens on.
    #[arg(long, env = "SWITCHYARD_GRPC_ADDR", default_value = "127.0.0.1:8081")]
    pub grpc_addr: SocketAddr,

    /// Serve the flagd-compatible gRPC service WITHOUT a token for this environment
    /// (flagd clients send no credentials). Only on a network you trust; requests that
    /// carry a token still use the token's environment.
    #[arg(long, env = "SWITCHYARD_FLAGD_ENV")]
    pub flagd_env: Option<String>,

    /// Use Redis at this URL (`redis://host:port/db`) instead of the embedded store,
    /// so several replicas share one state.
    #[arg(long, env = "SWITCHYARD_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Directory of the embedded store (created if missing; unused with `--redis-url`).
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    pub data_dir: PathBuf,

    /// Log format.
    #[arg(
        long,
        env = "SWITCHYARD_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,

    /// Load example flags into a `development` environment and print tokens and
    /// `curl` lines to try them.
    #[arg(long, env = "SWITCHYARD_DEMO")]
    pub demo: bool,

    /// The first admin token (any string). Without it, and with no admin token in
    /// the store, one is generated and printed once.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Mark the web console's session cookie `Secure`: set it when browsers reach the
    /// console over HTTPS (a TLS proxy in front), since the server itself speaks HTTP.
    #[arg(long, env = "SWITCHYARD_CONSOLE_SECURE_COOKIE")]
    pub console_secure_cookie: bool,

    /// The release orchestrator's HTTP API (`http://host:port`), which the console's
    /// Releases section shows and steers on the signed-in user's behalf.
    #[arg(long, env = "SWITCHYARD_ORCHESTRATOR_URL")]
    pub orchestrator_url: Option<String>,

    /// The orchestrator's API token (its `serve --api-token`), sent by the server only:
    /// browsers never see it.
    #[arg(long, env = "SWITCHYARD_ORCHESTRATOR_TOKEN", hide_env_values = true)]
    pub orchestrator_token: Option<String>,
}

impl Args {
    /// Checks what clap cannot.
    pub fn validate(self) -> Result<Self, String> {
        if self
            .admin_token
            .as_deref()
            .is_some_and(|t| t.trim().len() < 16)
        {
            return Err(
                "the admin token (--admin-token or SWITCHYARD_ADMIN_TOKEN) must be at least 16 characters"
                    .to_owned(),
            );
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_admin_token_is_refused_naming_the_flag_and_the_env_var() {
        let args = Args::try_parse_from(["switchyard-server", "--admin-token", "too-short"])
            .expect("parses");
        let error = args.validate().expect_err("shorter than 16 characters");
        assert!(
            error.contains("--admin-token") && error.contains("SWITCHYARD_ADMIN_TOKEN"),
            "{error}"
        );
        let args = Args::try_parse_from([
            "switchyard-server",
            "--admin-token",
            "long-enough-0123456789",
        ])
        .expect("parses");
        assert!(args.validate().is_ok());
    }
}
