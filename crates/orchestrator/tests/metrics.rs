//! Metric sources against real servers: a `prometheus` scraping an [`Exporter`] whose
//! gauges the tests set, and HTTP, TCP and gRPC health endpoints started here.

mod support;

use std::time::Duration;

use switchyard_orchestrator::analysis::health::{self, Health, HealthError, HealthSource};
use switchyard_orchestrator::analysis::prometheus::Prometheus;
use switchyard_orchestrator::analysis::{
    MetricError, MetricRequest, MetricSource, MetricSources, Verdict,
};
use switchyard_orchestrator::plan::{HealthCheck, HealthTarget, PrometheusQuery, Service};
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

use switchyard_testkit::http::{serve, Served};
use switchyard_testkit::prometheus::{
    wait_for_value, Exporter, PrometheusProcess, SCRAPE_DEADLINE,
};
use switchyard_testkit::unused_addr;

fn source(url: &str, query: &str) -> Prometheus {
    Prometheus::new(
        PrometheusQuery {
            url: url.to_owned(),
            query: query.to_owned(),
        },
        reqwest::Client::new(),
    )
}

#[tokio::test]
async fn a_scraped_gauge_is_measured_for_the_service() {
    let exporter = Exporter::start().await;
    let checkout = [("service", "checkout"), ("version", "canary")];
    exporter.set("canary_error_ratio", &checkout, 0.2);
    exporter.set(
        "canary_error_ratio",
        &[("service", "payments"), ("version", "canary")],
        0.7,
    );
    let prometheus = PrometheusProcess::start(&[exporter.addr()]).await;
    wait_for_value(
        &prometheus.url(),
        r#"canary_error_ratio{service="checkout"}"#,
        |v| v == 0.2,
        SCRAPE_DEADLINE,
    )
    .await;

    // A trailing slash on the URL is how people paste it.
    let source = source(
        &format!("{}/", prometheus.url()),
        r#"canary_error_ratio{service="{{service}}"}"#,
    );
    assert_eq!(source.measure("checkout").await.unwrap(), Some(0.2));
    assert_eq!(source.measure("payments").await.unwrap(), Some(0.7));

    // A new value is measured once scraped.
    exporter.set("canary_error_ratio", &checkout, 0.05);
    wait_for_value(
        &prometheus.url(),
        r#"canary_error_ratio{service="checkout"}"#,
        |v| v == 0.05,
        SCRAPE_DEADLINE,
    )
    .await;
    assert_eq!(source.measure("checkout").await.unwrap(), Some(0.05));
}

#[tokio::test]
async fn an_empty_or_nan_result_is_no_data() {
    let prometheus = PrometheusProcess::start(&[]).await;
    for query in [
        r#"canary_error_ratio{service="{{service}}"}"#,
        "0/0",
        "vector(0)/0",
    ] {
        let measured = source(&prometheus.url(), query).measure("checkout").await;
        assert!(
            matches!(measured, Ok(None)),
            "`{query}` measured {measured:?}"
        );
    }
}

#[tokio::test]
async fn invalid_promql_is_a_bad_answer_with_prometheus_parse_error() {
    let prometheus = PrometheusProcess::start(&[]).await;
    let measured = source(&prometheus.url(), "sum(canary_error_ratio")
        .measure("checkout")
        .await;
    match measured {
        Err(MetricError::BadAnswer { detail, .. }) if detail.contains("parse error") => {}
        other => panic!("expected a bad answer naming the parse error, got {other:?}"),
    }
}

#[tokio::test]
async fn several_series_are_a_bad_answer_suggesting_an_aggregation() {
    let exporter = Exporter::start().await;
    exporter.set("canary_error_ratio", &[("version", "stable")], 0.01);
    exporter.set("canary_error_ratio", &[("version", "canary")], 0.2);
    let prometheus = PrometheusProcess::start(&[exporter.addr()]).await;
    wait_for_value(
        &prometheus.url(),
        "count(canary_error_ratio)",
        |n| n == 2.0,
        SCRAPE_DEADLINE,
    )
    .await;

    let measured = source(&prometheus.url(), "canary_error_ratio")
        .measure("checkout")
        .await;
    match measured {
        Err(MetricError::BadAnswer { detail, .. })
            if detail.contains("2 series") && detail.contains("sum(") => {}
        other => panic!("expected a bad answer about 2 series, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_cannot_answer_queries_is_unreachable() {
    // Nothing listening, and an HTTP server without the query API (404).
    let exporter = Exporter::start().await;
    for url in [
        format!("http://{}", unused_addr()),
        format!("http://{}", exporter.addr()),
    ] {
        let measured = source(&url, "up").measure("checkout").await;
        assert!(
            matches!(measured, Err(MetricError::Unreachable { .. })),
            "{url} measured {measured:?}"
        );
    }
}

/// Serves `/ok` (200) and `/broken` (500).
async fn http_endpoint() -> Served {
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/broken",
            axum::routing::get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
        );
    serve(app).await
}

fn health_check(target: HealthTarget) -> HealthCheck {
    HealthCheck {
        target,
        timeout: Duration::from_secs(2),
    }
}

async fn run(target: HealthTarget) -> Result<(), HealthError> {
    health::check(&health_check(target), &reqwest::Client::new()).await
}

#[tokio::test]
async fn http_checks_need_a_2xx_answer() {
    let endpoint = http_endpoint().await;
    let addr = endpoint.addr();
    run(HealthTarget::Http(format!("http://{addr}/ok")))
        .await
        .expect("/ok passes");

    let broken = format!("http://{addr}/broken");
    let error = run(HealthTarget::Http(broken.clone())).await.unwrap_err();
    assert!(matches!(error, HealthError::HttpStatus { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("GET {broken} answered 500 Internal Server Error")
    );

    let error = run(HealthTarget::Http(format!("http://{}/ok", unused_addr())))
        .await
        .unwrap_err();
    assert!(matches!(error, HealthError::Http { .. }), "{error:?}");
}

#[tokio::test]
async fn a_check_that_hangs_fails_naming_its_timeout() {
    // Connections complete in the kernel's backlog, but nothing ever answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}/", silent.local_addr().expect("local address"));
    let check = HealthCheck {
        target: HealthTarget::Http(url.clone()),
        timeout: Duration::from_millis(300),
    };
    let error = health::check(&check, &reqwest::Client::new())
        .await
        .unwrap_err();
    assert!(matches!(error, HealthError::Timeout { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("GET {url} did not answer within 300ms")
    );
}

#[tokio::test]
async fn tcp_checks_need_an_accepting_port() {
    let open = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = open.local_addr().expect("local address");
    run(HealthTarget::Tcp(addr.to_string()))
        .await
        .expect("an open port passes");

    let closed = unused_addr().to_string();
    let error = run(HealthTarget::Tcp(closed.clone())).await.unwrap_err();
    assert!(matches!(error, HealthError::Tcp { .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("cannot connect to {closed}"));
}

#[tokio::test]
async fn grpc_checks_need_serving() {
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    // "" is the server's overall health.
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    run(HealthTarget::Grpc(addr.to_string()))
        .await
        .expect("SERVING passes");

    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let error = run(HealthTarget::Grpc(addr.to_string())).await.unwrap_err();
    assert!(matches!(error, HealthError::NotServing { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("the gRPC server at {addr} reports NOT_SERVING")
    );

    let error = run(HealthTarget::Grpc(unused_addr().to_string()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, HealthError::GrpcConnect { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn health_measures_one_when_every_check_passes_and_zero_otherwise() {
    let endpoint = http_endpoint().await;
    let addr = endpoint.addr();
    let passing = health_check(HealthTarget::Http(format!("http://{addr}/ok")));
    let failing = health_check(HealthTarget::Tcp(unused_addr().to_string()));

    let measure = |checks: Vec<HealthCheck>| async move {
        let service = Service {
            name: "checkout".into(),
            depends_on: vec![],
            canary: Default::default(),
            flags: vec![],
            health: checks,
            strategy: None,
            steps: vec![],
            region: None,
        };
        let request = MetricRequest {
            metric: None,
            service: &service,
            environment: "production",
            weight: None,
        };
        let source = HealthSource::new(reqwest::Client::new());
        let standard = MetricSources::standard(&reqwest::Client::new(), None);
        let measured = source.measure(request).await;
        assert_eq!(standard.measure(request).await, measured);
        measured
    };

    let healthy = measure(vec![passing.clone()]).await;
    assert_eq!(
        (healthy.metric.as_str(), healthy.value, healthy.verdict),
        ("health", Some(1.0), Verdict::Pass)
    );
    let unhealthy = measure(vec![passing.clone(), failing.clone()]).await;
    assert_eq!(
        (unhealthy.value, unhealthy.verdict),
        (Some(0.0), Verdict::Fail)
    );
    assert!(
        unhealthy
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cannot connect to")),
        "{unhealthy:?}"
    );
    let error = Health::new(vec![passing, failing], reqwest::Client::new())
        .check_all()
        .await
        .unwrap_err();
    assert!(matches!(error, HealthError::Tcp { .. }), "{error:?}");
}
