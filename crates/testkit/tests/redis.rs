//! The Redis rig's self-test.

use std::net::TcpStream;

use switchyard_testkit::redis::{RedisProcess, Reply};

/// The rig's self-test: start, PING, write, stop (port closed), restart on the
/// same port, the write is still there.
#[test]
fn redis_process_survives_stop_and_restart_with_its_data() {
    let mut redis = RedisProcess::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(redis.command(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(
        redis.command(&["SET", "k", "v"]),
        Reply::Simple("OK".into())
    );

    redis.stop();
    assert!(!redis.is_running());
    let refused = TcpStream::connect(("127.0.0.1", port));
    assert!(
        refused.is_err(),
        "port {port} still accepts connections after stop"
    );
    redis.stop(); // stopping twice is harmless

    redis.restart();
    assert!(redis.is_running());
    assert_eq!(redis.port(), port);
    assert_eq!(
        redis.command(&["GET", "k"]),
        Reply::Bulk(Some(b"v".to_vec())),
        "a write acknowledged before the stop is lost; redis-server output:\n{}",
        redis.output()
    );
    assert_eq!(redis.command(&["GET", "missing"]), Reply::Bulk(None));
}
