//! The canary demo's application (`examples/canary-demo`): a checkout service whose
//! new code path sits behind the `new-checkout` flag, and a load generator for it.
//!
//! - [`service`]: the HTTP service (`checkout` binary) — `GET /checkout?user=ID`,
//!   `GET /metrics`, `POST /admin/fail-rate`, `GET /healthz`.
//! - [`faults`]: the deterministic failures the new code path injects, so a release's
//!   outcome does not depend on luck.
//! - [`metrics`]: `checkout_requests_total{version, path, outcome}` for Prometheus.
//! - [`load`]: the bounded load generator (`checkout-load` binary) and its tally.

pub mod faults;
pub mod load;
pub mod metrics;
pub mod service;

/// The flag that turns the new checkout on for a user.
pub const FLAG: &str = "new-checkout";

/// The event tracked through the SDK when the new checkout fails a request.
pub const ERROR_EVENT: &str = "checkout_error";

/// Resolves on Ctrl-C or SIGTERM: how both binaries learn to stop.
pub async fn stop_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
