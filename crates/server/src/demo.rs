//! `--demo`: a `development` environment with example flags, fresh tokens, and
//! `curl` lines that show an evaluation, OFREP, a kill switch and the live stream.

use serde_json::json;
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::Flag;

use crate::auth::generate;
use crate::environments::{now_ms, Change};
use crate::http::AppState;
use crate::store::{AuditEntry, TokenKind};

/// The demo environment.
pub const ENV: &str = "development";

/// The tokens the demo prints.
#[derive(Debug)]
pub struct DemoTokens {
    /// An admin token.
    pub admin: String,
    /// An SDK token for `development`.
    pub sdk: String,
}

fn audit(action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms: now_ms(),
        actor: "demo".to_owned(),
        env: Some(EnvName::new(ENV)),
        action: action.to_owned(),
        target: target.to_owned(),
        before: None,
        after: None,
        reason: Some("--demo".to_owned()),
        revision: None,
        error: None,
    }
}

/// The example flags.
pub fn flags() -> Vec<Flag> {
    let flags = json!([
        {
            "key": "new-checkout", "kind": "boolean",
            "description": "New checkout flow: staff always, 25 % of everyone else",
            "variants": {"on": true, "off": false}, "off_variant": "off",
            "rules": [{"id": "staff", "when": {"groups": ["staff"]}, "serve": {"variant": "on"}}],
            "default": {"rollout": {"split": [{"variant": "on", "weight": 25000}, {"variant": "off", "weight": 75000}]}},
            "tags": ["checkout"]
        },
        {
            "key": "checkout-theme", "kind": "string",
            "description": "Colour experiment, three ways",
            "variants": {"blue": "#1f6feb", "green": "#2da44e", "red": "#cf222e"}, "off_variant": "blue",
            "default": {"rollout": {"split": [
                {"variant": "blue", "weight": 33334}, {"variant": "green", "weight": 33333}, {"variant": "red", "weight": 33333}]}},
            "tags": ["checkout"]
        },
        {
            "key": "beta-dashboard", "kind": "boolean",
            "description": "The new dashboard, for the beta group only",
            "variants": {"on": true, "off": false}, "off_variant": "off",
            "rules": [{"id": "beta", "when": {"groups": ["beta"]}, "serve": {"variant": "on"}}],
            "default": {"variant": "off"}
        }
    ]);
    serde_json::from_value(flags).unwrap_or_default()
}

/// Creates the demo environment and flags (leaving existing flags alone) and
/// issues fresh `demo-admin` and `demo-sdk` tokens.
pub async fn install(state: &AppState) -> anyhow::Result<DemoTokens> {
    let env = EnvName::new(ENV);
    state
        .envs
        .create(&env, "demo")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    state
        .envs
        .apply(ENV, |current| {
            let mut change = Change::default();
            for mut flag in flags() {
                if current.snapshot.flag(flag.key.as_str()).is_none() {
                    flag.version = 1;
                    let mut entry = audit("flag.put", flag.key.as_str());
                    entry.after = Some(json!(flag));
                    change.audit.push(entry);
                    change
                        .flags
                        .push((FlagKey::new(flag.key.as_str()), Some(flag)));
                }
            }
            Ok(change)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = state.envs.store();
    let issue = |name: &'static str, kind: TokenKind, env: Option<EnvName>| {
        let (token, record) = generate(name, kind, env, now_ms());
        (token, record, name)
    };
    let (admin, admin_record, _) = issue("demo-admin", TokenKind::Admin, None);
    let (sdk, sdk_record, _) = issue("demo-sdk", TokenKind::Sdk, Some(env.clone()));
    for record in [admin_record, sdk_record] {
        store
            .delete_token(&record.name, audit("token.delete", &record.name))
            .await?;
        let name = record.name.clone();
        store
            .create_token(record, audit("token.create", &name))
            .await?;
    }
    state.tokens.replace(store.tokens().await?);
    Ok(DemoTokens { admin, sdk })
}

/// What `--demo` prints: tokens and commands to try.
pub fn banner(base: &str, tokens: &DemoTokens) -> String {
    let (admin, sdk) = (&tokens.admin, &tokens.sdk);
    format!(
        r#"
Switchyard demo: environment `{ENV}` with flags new-checkout (25 % rollout), checkout-theme (3 variants), beta-dashboard (group `beta`).

  export SWITCHYARD_ADMIN={admin}
  export SWITCHYARD_SDK={sdk}

Evaluate a flag for a user:
  curl -s -X POST {base}/v1/evaluate/{ENV}/new-checkout -H "Authorization: Bearer $SWITCHYARD_SDK" -d '{{"targetingKey":"user-42"}}'

Everything for a beta user, through OpenFeature's OFREP:
  curl -s -X POST {base}/ofrep/v1/evaluate/flags -H "Authorization: Bearer $SWITCHYARD_SDK" -H 'Content-Type: application/json' -d '{{"context":{{"targetingKey":"user-42","groups":["beta"]}}}}'

Watch changes live (leave it running in another terminal):
  curl -N {base}/v1/sdk/stream -H "Authorization: Bearer $SWITCHYARD_SDK"

Kill a flag, then read the audit log:
  curl -s -X POST {base}/v1/admin/envs/{ENV}/flags/new-checkout/kill -H "Authorization: Bearer $SWITCHYARD_ADMIN" -d '{{"reason":"demo"}}'
  curl -s {base}/v1/admin/audit?env={ENV} -H "Authorization: Bearer $SWITCHYARD_ADMIN"
"#
    )
}
