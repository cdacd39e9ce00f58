//! The served-app rig.

use switchyard_testkit::http::serve;
use switchyard_testkit::{eventually, DEADLINE};

#[tokio::test]
async fn an_app_is_served_on_a_free_port_until_dropped() {
    let served = serve(axum::Router::new().fallback(|| async { "hello" })).await;
    assert_eq!(served.url(), format!("http://{}", served.addr()));
    let answer = reqwest::get(format!("{}/anything", served.url()))
        .await
        .expect("served at once");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.expect("body"), "hello");

    let addr = served.addr();
    drop(served);
    eventually(DEADLINE, "the port to close", || async move {
        tokio::net::TcpStream::connect(addr).await.err().map(|_| ())
    })
    .await;
}
