//! A rig whose binary is not on `PATH` fails the test saying what to install; it never
//! skips. (Every test of this binary empties `PATH`, so none needs the real one.)

use switchyard_testkit::haproxy::HaproxyProcess;
use switchyard_testkit::prometheus::PrometheusProcess;
use switchyard_testkit::redis::RedisProcess;

fn without_path() {
    std::env::set_var("PATH", "");
}

#[test]
#[should_panic(expected = "redis-server not found: install the Debian package redis-server")]
fn redis_without_its_binary_fails_loudly() {
    without_path();
    RedisProcess::start();
}

#[tokio::test]
#[should_panic(expected = "haproxy not found: install the Debian package `haproxy`")]
async fn haproxy_without_its_binary_fails_loudly() {
    without_path();
    HaproxyProcess::start("web", &[]).await;
}

#[tokio::test]
#[should_panic(expected = "prometheus not found: install the Debian package `prometheus`")]
async fn prometheus_without_its_binary_fails_loudly() {
    without_path();
    PrometheusProcess::start(&[]).await;
}
