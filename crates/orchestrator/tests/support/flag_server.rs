//! A real flag server (in-process, embedded store, loopback port) with an environment
//! and flags ready to ramp.

use serde_json::json;
use switchyard_core::Flag;
use switchyard_sdk::admin::AdminClient;
use switchyard_server::Server;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The admin token the test server accepts.
pub const ADMIN: &str = "orchestrator-test-admin-token";
/// The environment releases run in.
pub const ENV: &str = "production";

/// A running flag server; stopped on drop.
pub struct FlagServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// An admin client for it.
    pub admin: AdminClient,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl FlagServer {
    /// Starts a server with environment [`ENV`] holding a boolean flag per key, each
    /// off for everyone (`on` first, `off` its off variant) with a `staff` rule.
    pub async fn start(flags: &[&str]) -> FlagServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::open_embedded(dir.path(), Some(ADMIN))
            .await
            .expect("flag server opens");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        let admin = AdminClient::new(&base, ADMIN).expect("admin client");
        admin.create_env(ENV).await.expect("create env");
        for key in flags {
            admin
                .put_flag(ENV, &boolean_flag(key), None)
                .await
                .expect("create flag");
        }
        FlagServer {
            base,
            admin,
            _stop: stop,
            _dir: dir,
        }
    }

    /// The flag as stored now.
    pub async fn flag(&self, key: &str) -> Flag {
        self.admin
            .flag(ENV, key)
            .await
            .expect("read flag")
            .expect("flag exists")
            .value
    }
}

/// `on`/`off` boolean flag, off by default, on for the `staff` group.
pub fn boolean_flag(key: &str) -> Flag {
    serde_json::from_value(json!({
        "key": key,
        "kind": "boolean",
        "variants": { "on": true, "off": false },
        "off_variant": "off",
        "rules": [ { "id": "staff", "when": { "groups": ["staff"] }, "serve": { "variant": "on" } } ],
        "default": { "variant": "off" },
    }))
    .expect("flag JSON")
}
