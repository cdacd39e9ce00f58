//! `--demo`: a `development` environment with example flags, fresh tokens, and
//! `curl` lines that show an evaluation, OFREP, a kill switch and the live stream.

use serde_json::json;
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::Flag;

use crate::auth::{generate, BOOTSTRAP_TOKEN_NAME, INITIAL_ADMIN_TOKEN_NAME};
use crate::environments::{now_ms, Change};
use crate::state::AppState;
use crate::store::{AuditEntry, TokenKind};

/// The demo environment.
pub const ENV: &str = "development";

/// The name of the SDK token the demo issues.
pub const SDK_TOKEN_NAME: &str = "demo-sdk";

/// A token the demo tells the reader to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoToken {
    /// Issued at this start; its secret is shown now and never again.
    New {
        /// The token's name (in the token list and the audit log).
        name: String,
        /// The secret.
        token: String,
    },
    /// Issued at an earlier start and kept: its secret was shown then.
    Existing {
        /// The token's name.
        name: String,
    },
    /// The bootstrap admin token the server was started with (`--admin-token`).
    Configured,
}

/// The demo's two tokens: one admin token for the reader, one SDK token for services.
#[derive(Debug)]
pub struct DemoTokens {
    /// The admin token: the one the server generated at this start, the configured
    /// bootstrap token, or an admin token that already existed.
    pub admin: DemoToken,
    /// The `demo-sdk` token for `development`.
    pub sdk: DemoToken,
}

fn audit(action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        reason: Some("--demo".to_owned()),
        ..AuditEntry::new("demo", Some(&EnvName::new(ENV)), action, target)
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

/// Creates the demo environment and flags (leaving existing flags alone) and picks
/// the demo's tokens without replacing any token already handed out: the admin token
/// is `generated_admin` (the first admin token, generated at this start), else the
/// configured bootstrap token, else an admin token already in the store; the
/// `demo-sdk` token is issued only if it does not exist yet.
pub async fn install(
    state: &AppState,
    generated_admin: Option<&str>,
) -> anyhow::Result<DemoTokens> {
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
    let stored = store.tokens().await?;
    let admin = match generated_admin {
        Some(token) => DemoToken::New {
            name: INITIAL_ADMIN_TOKEN_NAME.to_owned(),
            token: token.to_owned(),
        },
        None if state.tokens.has_bootstrap() => DemoToken::Configured,
        None => {
            let name = stored
                .iter()
                .filter(|r| r.kind == TokenKind::Admin)
                .min_by_key(|r| r.created_ms)
                .map(|r| r.name.clone())
                .ok_or_else(|| anyhow::anyhow!("the store holds no admin token"))?;
            DemoToken::Existing { name }
        }
    };
    let sdk = if stored.iter().any(|r| r.name == SDK_TOKEN_NAME) {
        DemoToken::Existing {
            name: SDK_TOKEN_NAME.to_owned(),
        }
    } else {
        let (token, record) = generate(SDK_TOKEN_NAME, TokenKind::Sdk, Some(env), now_ms());
        store
            .create_token(record, audit("token.create", SDK_TOKEN_NAME))
            .await?;
        state.tokens.replace(store.tokens().await?);
        DemoToken::New {
            name: SDK_TOKEN_NAME.to_owned(),
            token,
        }
    };
    Ok(DemoTokens { admin, sdk })
}

/// How the banner presents one token: the line that sets its shell variable, and a
/// note on where it comes from; `lost` says how to get another when it is `Existing`.
fn token_lines(var: &str, token: &DemoToken, lost: &str) -> String {
    match token {
        DemoToken::New { name, token } => format!(
            "  export {var}={token}\n    (`{name}`, new: shown only now, the server keeps only its hash; store it)"
        ),
        DemoToken::Existing { name } => format!(
            "  {var}: the `{name}` token printed when it was first issued\n    (it already exists and is kept, not replaced; lost it? {})",
            lost.replace("{name}", name)
        ),
        DemoToken::Configured => format!(
            "  export {var}=<the value of --admin-token / SWITCHYARD_ADMIN_TOKEN>\n    (`{BOOTSTRAP_TOKEN_NAME}`, from the server's configuration)"
        ),
    }
}

/// What `--demo` prints: the two tokens, what each is for, the console's URL and
/// commands to try.
pub fn banner(base: &str, tokens: &DemoTokens) -> String {
    let admin = token_lines(
        "SWITCHYARD_ADMIN",
        &tokens.admin,
        "start the server with\n    --admin-token <secret> to get in, then revoke it: DELETE /v1/admin/tokens/{name}",
    );
    let sdk = token_lines(
        "SWITCHYARD_SDK",
        &tokens.sdk,
        "revoke it (DELETE\n    /v1/admin/tokens/{name}) and start with --demo again for a new one",
    );
    format!(
        r#"
Switchyard demo: environment `{ENV}` with flags new-checkout (25 % rollout), checkout-theme (3 variants), beta-dashboard (group `beta`).

Admin token, for you: full control of every environment, flag, token and the audit log.
{admin}
SDK token, for your services: reads `{ENV}` only (snapshot, live stream, evaluation).
{sdk}

Web console: open {base}/console in a browser and paste the admin token; click `{ENV}`,
then `new-checkout`: move the rollout slider and press "Save rollout", or kill it with a reason.

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
