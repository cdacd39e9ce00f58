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
    /// console over HTTPS through a TLS proxy in front (with `--tls-cert` the server
    /// speaks HTTPS itself and marks it `Secure` anyway).
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

    /// Serve HTTPS and gRPC over TLS with this certificate chain (PEM, leaf first);
    /// reloaded on SIGHUP and when the file changes. Needs `--tls-key`.
    #[arg(long, env = "SWITCHYARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SWITCHYARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Ask HTTPS clients for a certificate signed by a CA in this PEM file (optional
    /// for everyone, required for admin tokens with
    /// `--admin-needs-client-certificate`).
    #[arg(long, env = "SWITCHYARD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Accept admin tokens only over HTTPS connections that presented a client
    /// certificate signed by `--tls-client-ca` (gRPC then refuses admin tokens).
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_NEEDS_CLIENT_CERTIFICATE",
        requires = "tls_client_ca"
    )]
    pub admin_needs_client_certificate: bool,

    /// Let browser front ends on this origin (`https://app.example.com`) call the
    /// evaluation, OFREP and SDK APIs (CORS); repeat or separate with commas. Default:
    /// none, CORS off. Never the admin API or the console.
    #[arg(long, env = "SWITCHYARD_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,

    /// Put `/metrics` and `/openapi.json` behind this bearer token (an admin token
    /// passes too). Default: open, as health and readiness always are.
    #[arg(long, env = "SWITCHYARD_OPS_TOKEN", hide_env_values = true)]
    pub ops_token: Option<String>,

    /// Rate limits.
    #[command(flatten)]
    pub limits: RateLimitArgs,
}

/// Rate limits per second (docs/server.md#rate-limits); 0 turns one off. Over a limit
/// a request gets 429 with `Retry-After`.
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitArgs {
    /// Reads (evaluations, snapshots, SDK metrics, admin reads) per second per token.
    /// Off by default: one sdk token often serves a whole fleet.
    #[arg(long, env = "SWITCHYARD_RATE_LIMIT_READS", default_value_t = 0)]
    pub rate_limit_reads: u32,

    /// Reads per second per client address (the TCP peer: behind a proxy, the proxy).
    #[arg(
        long,
        env = "SWITCHYARD_RATE_LIMIT_READS_PER_ADDRESS",
        default_value_t = 0
    )]
    pub rate_limit_reads_per_address: u32,

    /// Admin writes per second per token.
    #[arg(long, env = "SWITCHYARD_RATE_LIMIT_WRITES", default_value_t = 100)]
    pub rate_limit_writes: u32,

    /// Admin writes per second per client address (the TCP peer), whatever the token.
    /// Off by default: behind a proxy every client shares the proxy's address.
    #[arg(
        long,
        env = "SWITCHYARD_RATE_LIMIT_WRITES_PER_ADDRESS",
        default_value_t = 0
    )]
    pub rate_limit_writes_per_address: u32,

    /// New streams (SSE, gRPC Sync, flagd streams) per second per token.
    #[arg(long, env = "SWITCHYARD_RATE_LIMIT_STREAM_OPENS", default_value_t = 0)]
    pub rate_limit_stream_opens: u32,

    /// New streams per second per client address (the TCP peer), whatever the token.
    /// Off by default: a fleet behind one NAT or proxy reconnects all at once.
    #[arg(
        long,
        env = "SWITCHYARD_RATE_LIMIT_STREAM_OPENS_PER_ADDRESS",
        default_value_t = 0
    )]
    pub rate_limit_stream_opens_per_address: u32,

    /// Streams one token may hold open at once (SSE, gRPC Sync, OFREP events).
    #[arg(long, env = "SWITCHYARD_MAX_STREAMS_PER_TOKEN", default_value_t = 0)]
    pub max_streams_per_token: u32,

    /// Failed authentications per second per client address; past it the address
    /// gets 429 for every request with a token until the budget refills.
    #[arg(
        long,
        env = "SWITCHYARD_RATE_LIMIT_AUTH_FAILURES",
        default_value_t = 10
    )]
    pub rate_limit_auth_failures: u32,
}

impl RateLimitArgs {
    /// The settings for [`crate::limits::Limits`].
    pub fn settings(&self) -> crate::limits::LimitSettings {
        crate::limits::LimitSettings {
            reads_per_token: self.rate_limit_reads,
            reads_per_address: self.rate_limit_reads_per_address,
            stream_opens_per_token: self.rate_limit_stream_opens,
            stream_opens_per_address: self.rate_limit_stream_opens_per_address,
            open_streams_per_token: self.max_streams_per_token,
            writes_per_token: self.rate_limit_writes,
            writes_per_address: self.rate_limit_writes_per_address,
            auth_failures_per_address: self.rate_limit_auth_failures,
        }
    }
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

    /// The TLS settings, when `--tls-cert` is set; an unreadable file or a key that
    /// does not fit the certificate is an error naming the file.
    pub fn tls(&self) -> Result<Option<crate::tls::TlsSettings>, switchyard_tls::TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        crate::tls::TlsSettings::load(
            cert,
            key,
            self.tls_client_ca.clone(),
            self.admin_needs_client_certificate,
        )
        .map(Some)
    }

    /// The CORS origins as header values; an origin that is not `scheme://host[:port]`
    /// is an error naming it.
    pub fn cors_origins(&self) -> Result<Vec<axum::http::HeaderValue>, String> {
        self.cors_origin
            .iter()
            .map(|origin| {
                let origin = origin.trim();
                let (scheme, rest) = origin.split_once("://").unwrap_or(("", ""));
                let valid = matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', ' ']);
                valid
                    .then(|| axum::http::HeaderValue::from_str(origin).ok())
                    .flatten()
                    .ok_or_else(|| {
                        format!(
                            "--cors-origin `{origin}` is not an origin like https://app.example.com (scheme, host and optional port; no path)"
                        )
                    })
            })
            .collect()
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
    fn the_default_rate_limits_are_the_libraries_defaults() {
        let args = Args::try_parse_from(["switchyard-server"]).expect("parses");
        assert_eq!(
            args.limits.settings(),
            crate::limits::LimitSettings::default()
        );
    }

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
