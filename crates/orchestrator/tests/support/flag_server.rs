//! A real flag server (the test kit's, in process) with an environment and flags
//! ready to ramp, and the SDK's admin client for it.

use serde_json::json;
use switchyard_core::Flag;
use switchyard_sdk::admin::AdminClient;
pub use switchyard_testkit::in_process::ADMIN;
use switchyard_testkit::in_process::{self, TestServer};
/// The environment releases run in.
pub const ENV: &str = "production";

/// A running flag server; stopped when dropped.
pub struct FlagServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// An admin client for it.
    pub admin: AdminClient,
    _server: TestServer,
}

impl FlagServer {
    /// Starts a server with environment [`ENV`] holding a boolean flag per key, each
    /// off for everyone (`on` first, `off` its off variant) with a `staff` rule.
    pub async fn start(flags: &[&str]) -> FlagServer {
        let server = in_process::start().await;
        let base = server.base.clone();
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
            _server: server,
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
