//! Command line and environment configuration (every option is also an env var).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

    /// Use Redis at this URL instead of the embedded store, so several replicas share
    /// one state: `redis://host:port/db` (one server), `redis+cluster://host:port,…`
    /// (a Redis Cluster's seed nodes) or `redis+sentinel://host:26379,…/MASTER` (the
    /// primary the Sentinels name). docs/redis.md.
    #[arg(long, env = "SWITCHYARD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Acknowledge a write only once this many replicas of the Redis primary hold it
    /// (Redis `WAIT`); 0 acknowledges on the primary alone.
    #[arg(long, env = "SWITCHYARD_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// How long a write waits for `--redis-wait-replicas` before it fails with 503.
    #[arg(long, env = "SWITCHYARD_REDIS_WAIT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub redis_wait_timeout: Duration,

    /// Run as a relay of this Switchyard server (or relay), `http(s)://host:port`:
    /// follow its SDK stream, serve every read API from memory, refuse writes
    /// (docs/relay.md). Needs `--upstream-token`.
    #[arg(long, env = "SWITCHYARD_UPSTREAM_URL", conflicts_with_all = ["redis_url", "demo"])]
    pub upstream: Option<String>,

    /// The relay's token at the upstream: an sdk token relays its environment, an
    /// admin token every environment.
    #[arg(long, env = "SWITCHYARD_UPSTREAM_TOKEN", hide_env_values = true)]
    pub upstream_token: Option<String>,

    /// How long a relay trusts its upstream's answer about a token (valid or not).
    #[arg(long, env = "SWITCHYARD_UPSTREAM_TOKEN_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub upstream_token_ttl: Duration,

    /// How often a relay forwards its SDKs' metrics upstream.
    #[arg(long, env = "SWITCHYARD_UPSTREAM_METRICS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_metrics_interval: Duration,

    /// The most metric entries a relay holds for the upstream; more are dropped and
    /// counted (`switchyard_relay_metrics_dropped_entries_total`).
    #[arg(
        long,
        env = "SWITCHYARD_UPSTREAM_METRICS_CAP",
        default_value_t = 100_000
    )]
    pub upstream_metrics_cap: usize,

    /// Directory of the embedded store (created if missing; unused with `--redis-url`;
    /// a relay keeps its last snapshots and token answers in `relay/` inside it).
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
        if self.upstream.is_some() && self.upstream_token.is_none() {
            return Err(
                "--upstream needs --upstream-token (or SWITCHYARD_UPSTREAM_TOKEN): the token the relay reads its upstream with"
                    .to_owned(),
            );
        }
        if self.upstream.is_none() && self.upstream_token.is_some() {
            return Err("--upstream-token is only used with --upstream".to_owned());
        }
        if self.upstream_metrics_interval.is_zero() {
            return Err("--upstream-metrics-interval must be more than 0".to_owned());
        }
        Ok(self)
    }

    /// How writes to Redis are confirmed.
    pub fn durability(&self) -> switchyard_redis::Durability {
        switchyard_redis::Durability {
            replicas: self.redis_wait_replicas,
            timeout: self.redis_wait_timeout,
        }
    }

    /// The relay settings, when `--upstream` is set.
    pub fn relay(&self) -> Option<crate::relay::RelayConfig> {
        Some(crate::relay::RelayConfig {
            upstream: self.upstream.clone()?,
            token: self.upstream_token.clone()?,
            token_ttl: self.upstream_token_ttl,
            metrics_every: self.upstream_metrics_interval,
            metrics_cap: self.upstream_metrics_cap,
            dir: self.data_dir.join("relay"),
        })
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
