//! Health checks: an HTTP URL answering 2xx, a TCP port accepting connections, or a gRPC
//! server reporting SERVING through `grpc.health.v1.Health/Check`.
//!
//! A check either passes or fails with the reason ([`HealthError`]); [`Health`] turns a
//! service's checks into a [`MetricSource`] measuring 1 (all pass) or 0 (one fails).

use std::time::Duration;

use async_trait::async_trait;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::{judge_health, Measurement, MetricRequest, MetricSource};
use crate::plan::{HealthCheck, HealthTarget};

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The URL answered, but not with 2xx.
    #[error("GET {url} answered {status}")]
    HttpStatus {
        /// The checked URL.
        url: String,
        /// What it answered.
        status: reqwest::StatusCode,
    },
    /// The URL could not be fetched (refused, reset, bad TLS, …).
    #[error("GET {url} failed")]
    Http {
        /// The checked URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The TCP port did not accept a connection.
    #[error("cannot connect to {address}")]
    Tcp {
        /// The checked `host:port`.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No gRPC connection could be made.
    #[error("cannot connect to the gRPC server at {address}")]
    GrpcConnect {
        /// The checked `host:port`.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server answered the health RPC with an error (e.g. UNIMPLEMENTED: it has no
    /// health service).
    #[error("grpc.health.v1.Health/Check at {address} failed")]
    GrpcCall {
        /// The checked `host:port`.
        address: String,
        /// The gRPC status.
        #[source]
        source: tonic::Status,
    },
    /// The server's health service reports something other than SERVING.
    #[error("the gRPC server at {address} reports {}", status.as_str_name())]
    NotServing {
        /// The checked `host:port`.
        address: String,
        /// What it reports.
        status: ServingStatus,
    },
    /// The check took longer than its timeout.
    #[error("{target} did not answer within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// What was checked, e.g. `GET http://…` or `tcp 127.0.0.1:80`.
        target: String,
        /// The check's timeout.
        timeout: Duration,
    },
}

/// Runs one check; `Ok` when it passes within its timeout.
pub async fn check(check: &HealthCheck, client: &reqwest::Client) -> Result<(), HealthError> {
    let timeout = check.timeout;
    // One deadline for the whole check (connecting included), so every kind of check
    // fails the same way when the target hangs.
    let outcome = tokio::time::timeout(timeout, async {
        match &check.target {
            HealthTarget::Http(url) => http(url, client).await,
            HealthTarget::Tcp(address) => tcp(address).await,
            HealthTarget::Grpc(address) => grpc(address, timeout).await,
        }
    })
    .await;
    outcome.unwrap_or_else(|_elapsed| {
        let target = match &check.target {
            HealthTarget::Http(url) => format!("GET {url}"),
            HealthTarget::Tcp(address) => format!("tcp {address}"),
            HealthTarget::Grpc(address) => format!("grpc {address}"),
        };
        Err(HealthError::Timeout { target, timeout })
    })
}

async fn http(url: &str, client: &reqwest::Client) -> Result<(), HealthError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|source| HealthError::Http {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(HealthError::HttpStatus {
            url: url.to_owned(),
            status,
        })
    }
}

async fn tcp(address: &str) -> Result<(), HealthError> {
    tokio::net::TcpStream::connect(address)
        .await
        .map(drop)
        .map_err(|source| HealthError::Tcp {
            address: address.to_owned(),
            source,
        })
}

async fn grpc(address: &str, timeout: Duration) -> Result<(), HealthError> {
    let connect_error = |source| HealthError::GrpcConnect {
        address: address.to_owned(),
        source,
    };
    // tonic drives a channel's connection on a background task, which the outer deadline
    // does not cancel; the endpoint's own timeouts bound that task too.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(connect_error)?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(connect_error)?;
    let response = HealthClient::new(channel)
        // The empty service name asks for the server's overall health.
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|source| HealthError::GrpcCall {
            address: address.to_owned(),
            source,
        })?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        status => Err(HealthError::NotServing {
            address: address.to_owned(),
            status,
        }),
    }
}

/// A service's health checks as a metric: 1 when all pass, 0 when one fails.
#[derive(Debug, Clone)]
pub struct Health {
    checks: Vec<HealthCheck>,
    client: reqwest::Client,
}

impl Health {
    /// Checks `checks` with `client` for the HTTP ones.
    pub fn new(checks: Vec<HealthCheck>, client: reqwest::Client) -> Self {
        Health { checks, client }
    }

    /// Runs the checks in order; the first failure is the answer.
    pub async fn check_all(&self) -> Result<(), HealthError> {
        for c in &self.checks {
            check(c, &self.client).await?;
        }
        Ok(())
    }
}

/// The source of the `health` measurement: the service's own health checks.
#[derive(Debug, Clone)]
pub struct HealthSource {
    client: reqwest::Client,
}

impl HealthSource {
    /// Checks HTTP targets with `client`.
    pub fn new(client: reqwest::Client) -> Self {
        HealthSource { client }
    }
}

#[async_trait]
impl MetricSource for HealthSource {
    async fn measure(&self, request: MetricRequest<'_>) -> Measurement {
        let health = Health::new(request.service.health.clone(), self.client.clone());
        judge_health(health.check_all().await)
    }
}
