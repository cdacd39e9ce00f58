//! End-to-end tests across the server, SDK and orchestrator live in `tests/`; this
//! library holds what only they share: flag fixtures, the SDK's admin client for a
//! test server, and a proxy whose connections can be cut. Servers, Redis and waiting
//! with a deadline come from `switchyard-testkit`.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use switchyard_sdk::admin::{AdminClient, TokenKind};
use switchyard_sdk::{Client, Context};
use switchyard_testkit::in_process::ADMIN;
use switchyard_testkit::{wait_until, DEADLINE};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The SDK's admin client for the test server at `base` (its bootstrap admin token).
pub fn admin(base: &str) -> AdminClient {
    AdminClient::new(base, ADMIN).expect("admin client")
}

/// Writes a flag fixture at the server at `base`, failing the test on an error.
pub async fn put_flag(base: &str, env: &str, flag: Value) {
    admin(base)
        .put_flag(env, &typed(flag), None)
        .await
        .expect("put flag");
}

/// Writes a segment fixture, failing the test on an error.
pub async fn put_segment(base: &str, env: &str, segment: Value) {
    admin(base)
        .put_segment(env, &typed(segment))
        .await
        .expect("put segment");
}

/// Kills a flag, failing the test on an error.
pub async fn kill(base: &str, env: &str, key: &str, reason: &str) {
    admin(base).kill(env, key, reason).await.expect("kill");
}

/// Revives a flag, failing the test on an error.
pub async fn revive(base: &str, env: &str, key: &str, reason: &str) {
    admin(base).revive(env, key, reason).await.expect("revive");
}

/// Deletes a flag, failing the test on an error.
pub async fn delete_flag(base: &str, env: &str, key: &str) {
    admin(base)
        .delete_flag(env, key, None)
        .await
        .expect("delete flag");
}

/// Creates `prod` with the flag `checkout` ([`beta_flag`]) and an `sdk` token for it
/// (`prod-sdk`), through the admin API at `base`; returns the token. The environment
/// most SDK tests start from.
pub async fn prod_with_checkout(base: &str) -> String {
    let token = env_with_sdk_token(&admin(base), "prod").await;
    put_flag(base, "prod", beta_flag("checkout")).await;
    token
}

/// Creates `env` and an `sdk` token named `<env>-sdk` for it; returns the token.
pub async fn env_with_sdk_token(admin: &AdminClient, env: &str) -> String {
    admin.create_env(env).await.expect("create env");
    admin
        .create_token(&format!("{env}-sdk"), TokenKind::Sdk, Some(env))
        .await
        .expect("sdk token")
        .token
}

/// The environment's current revision.
pub async fn env_revision(admin: &AdminClient, env: &str) -> u64 {
    admin
        .revision(env)
        .await
        .expect("list environments")
        .unwrap_or_else(|| panic!("no environment {env}"))
}

/// The server's REST evaluation of `flag` for `context` (with the admin token).
pub async fn evaluate(base: &str, env: &str, flag: &str, context: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/evaluate/{env}/{flag}"))
        .bearer_auth(ADMIN)
        .json(&context)
        .send()
        .await
        .expect("evaluation request sent");
    let status = response.status();
    let text = response.text().await.expect("evaluation answer");
    assert!(
        status.is_success(),
        "evaluate {env}/{flag}: {status} {text}"
    );
    serde_json::from_str(&text).expect("evaluation JSON")
}

/// A JSON fixture as the SDK's type (`Flag`, `Segment`).
pub fn typed<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("fixture matches the model")
}

/// A boolean flag: `on` for group `beta`, `off` otherwise.
pub fn beta_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off",
        "rules": [{"id": "beta", "when": {"groups": ["beta"]}, "serve": {"variant": "on"}}],
        "default": {"variant": "off"}
    })
}

/// A boolean flag on for everyone.
pub fn on_flag(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": {"variant": "on"}
    })
}

/// A TCP proxy in front of a server, whose connections can be cut while the server
/// keeps running (so a stream ends without the server losing its history).
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    open: Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        Proxy::launch(target, false).await
    }

    /// Forwards to `target` but answers every request for the SSE stream with 404,
    /// as a proxy that does not pass event streams might.
    pub async fn refusing_streams(target: SocketAddr) -> Proxy {
        Proxy::launch(target, true).await
    }

    async fn launch(target: SocketAddr, refuse_streams: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (open, _) = tokio::sync::watch::channel(true);
        let open = Arc::new(open);
        let state = Arc::clone(&open);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    continue; // cut: refuse by closing at once
                }
                let mut closed = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    if refuse_streams {
                        tokio::select! {
                            () = forward_refusing_streams(inbound, outbound) => {}
                            _ = closed.wait_for(|open| !*open) => {}
                        }
                        return;
                    }
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Proxy { addr, open, task }
    }

    /// `http://ADDR`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways, except that a request for `/v1/sdk/stream` gets a 404 and the
/// connection is closed. (Requests are recognised by the start of a read, which is
/// where a client's request line lands.)
async fn forward_refusing_streams(inbound: tokio::net::TcpStream, outbound: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let (refuse, refused) = oneshot::channel::<()>();
    let upstream = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let Ok(n) = client_read.read(&mut buffer).await else {
                return;
            };
            let chunk = &buffer[..n];
            if n == 0 {
                return;
            }
            if chunk.starts_with(b"GET /v1/sdk/stream") {
                let _ = refuse.send(());
                return;
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        tokio::select! {
            _ = refused => {
                let _ = client_write
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
            () = async {
                while let Ok(n) = server_read.read(&mut buffer).await {
                    if n == 0 || client_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            } => {}
        }
    };
    tokio::join!(upstream, downstream);
}

/// A user in the `beta` group: [`beta_flag`] serves it `on`.
pub fn beta() -> Context {
    Context::new("user-1").group("beta")
}

/// Kills `checkout` in `prod` through the admin API at `base`, then adds the flag
/// `added` ([`on_flag`]), waiting after each until `client` serves the change to
/// [`beta`]; `how` ends the wait messages (e.g. `", by polling"`).
pub async fn kill_checkout_then_add_a_flag(base: &str, client: &Client, how: &str) {
    let ctx = beta();
    kill(base, "prod", "checkout", "e2e").await;
    wait_until(DEADLINE, &format!("the kill{how}"), || {
        !client.is_enabled("checkout", &ctx)
    })
    .await;
    put_flag(base, "prod", on_flag("added")).await;
    wait_until(DEADLINE, &format!("the new flag{how}"), || {
        client.is_enabled("added", &ctx)
    })
    .await;
}

/// Listens on `addr` and drops every connection at once: the port of a server that is
/// down but whose address is taken (as while it restarts). Stops when aborted.
pub async fn hold(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.expect("the old port is free");
    tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            drop(connection);
        }
    })
}
