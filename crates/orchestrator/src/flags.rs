//! Flag control: ramping, killing and watching a release's flags on the flag server.
//!
//! *API Boundary*: the orchestrator reaches the flag server only through the SDK's
//! [`AdminClient`]. The ramp itself ([`ramp`]) is pure.
//!
//! The ramp gives a flag's first variant `weight` % of users by setting the ramped serve
//! (the default, or one named rule's) to a rollout of the first variant against the
//! `off_variant`. Switchyard bucketing gives the first split the lowest buckets, so
//! raising its weight only adds users: nobody flips back. It never lowers a share.

use async_trait::async_trait;
use switchyard_core::model::{Hashing, Rollout, Serve, Split};
use switchyard_core::Flag;
use switchyard_sdk::admin::AdminClient;

use crate::plan::FlagRef;

/// Weights in the flag model are in units of 1/100 000; a percent is 1 000.
const PER_PERCENT: u32 = 1_000;

/// Drives a release's flags.
#[async_trait]
pub trait FlagControl: Send + Sync {
    /// Checks that every flag exists, is not killed and can be ramped.
    async fn check(&self, env: &str, flags: &[FlagRef]) -> Result<(), FlagError>;

    /// Gives each flag's first variant at least `weight` % of users.
    async fn set_weight(&self, env: &str, flags: &[FlagRef], weight: u32) -> Result<(), FlagError>;

    /// Kills the flags (everyone gets the off variant).
    async fn kill(&self, env: &str, flags: &[FlagRef], reason: &str) -> Result<(), FlagError>;

    /// Those of `keys` that are killed now.
    async fn killed(&self, env: &str, keys: &[&str]) -> Result<Vec<String>, FlagError>;

    /// Those of `envs` that the flag server does not have.
    async fn missing_environments(&self, envs: &[&str]) -> Result<Vec<String>, FlagError>;

    /// The admin API client, for the server's per-variant metrics (`guard`).
    fn admin(&self) -> Option<&AdminClient> {
        None
    }
}

/// A flag operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The flag server refused or could not be reached.
    #[error("flag server: {context}")]
    Server {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: switchyard_sdk::Error,
    },
    /// The flag does not exist in the environment.
    #[error("flag `{key}` does not exist in `{env}`")]
    NotFound {
        /// The flag.
        key: String,
        /// The environment.
        env: String,
    },
    /// The flag is killed, so ramping it would change nothing.
    #[error("flag `{key}` is killed; revive it before releasing")]
    Killed {
        /// The flag.
        key: String,
    },
    /// The flag cannot be ramped as it is.
    #[error("flag `{key}` cannot be ramped: {why}")]
    NotRampable {
        /// The flag.
        key: String,
        /// Why.
        why: String,
    },
    /// Someone else kept changing the flag while it was ramped.
    #[error("flag `{key}` changed concurrently {attempts} times; giving up")]
    Contended {
        /// The flag.
        key: String,
        /// How many read-modify-write attempts were made.
        attempts: u32,
    },
}

/// Sets the ramped serve of `flag` so its first variant gets at least `weight` %.
/// Returns whether the flag changed.
pub fn ramp(flag: &mut Flag, rule: Option<&str>, weight: u32) -> Result<bool, FlagError> {
    let key = flag.key.as_str().to_owned();
    let not_rampable = |why: String| FlagError::NotRampable {
        key: key.clone(),
        why,
    };
    let first = flag
        .variants
        .keys()
        .next()
        .cloned()
        .ok_or_else(|| not_rampable("it has no variants".into()))?;
    let off = flag.off_variant.clone();
    if first == off {
        return Err(not_rampable(format!(
            "its first variant `{first}` is also its off_variant"
        )));
    }
    let serve = match rule {
        None => &mut flag.default,
        Some(id) => {
            &mut flag
                .rules
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| not_rampable(format!("it has no rule `{id}`")))?
                .serve
        }
    };
    let current = match &*serve {
        Serve::Variant(v) if *v == first => 100 * PER_PERCENT,
        Serve::Variant(_) => 0,
        Serve::Rollout(r) if r.hashing != Hashing::Switchyard => {
            return Err(not_rampable(
                "its rollout uses Unleash hashing; ramps need Switchyard bucketing".into(),
            ))
        }
        Serve::Rollout(r) => r
            .split
            .iter()
            .take_while(|s| s.variant == first)
            .map(|s| s.weight)
            .sum(),
    };
    let target = weight.min(100) * PER_PERCENT;
    if current >= target {
        return Ok(false);
    }
    *serve = if target == 100 * PER_PERCENT {
        Serve::Variant(first)
    } else {
        let (by, salt) = match &*serve {
            Serve::Rollout(r) => (r.by.clone(), r.salt.clone()),
            Serve::Variant(_) => (Default::default(), None),
        };
        Serve::Rollout(Rollout {
            by,
            salt,
            split: vec![
                Split {
                    variant: first,
                    weight: target,
                },
                Split {
                    variant: off,
                    weight: 100 * PER_PERCENT - target,
                },
            ],
            hashing: Hashing::Switchyard,
        })
    };
    Ok(true)
}

/// [`FlagControl`] over the flag server's admin API.
#[derive(Debug, Clone)]
pub struct AdminFlags {
    admin: AdminClient,
}

impl AdminFlags {
    /// Drives flags through `admin`.
    pub fn new(admin: AdminClient) -> Self {
        AdminFlags { admin }
    }

    async fn get(
        &self,
        env: &str,
        key: &str,
    ) -> Result<switchyard_sdk::admin::Versioned<Flag>, FlagError> {
        self.admin
            .flag(env, key)
            .await
            .map_err(|source| FlagError::Server {
                context: format!("reading flag `{key}` in `{env}`"),
                source,
            })?
            .ok_or_else(|| FlagError::NotFound {
                key: key.to_owned(),
                env: env.to_owned(),
            })
    }
}

/// Read-modify-write attempts before a ramp gives up on a flag others keep changing.
const ATTEMPTS: u32 = 5;

#[async_trait]
impl FlagControl for AdminFlags {
    async fn check(&self, env: &str, flags: &[FlagRef]) -> Result<(), FlagError> {
        for f in flags {
            let mut flag = self.get(env, &f.key).await?.value;
            if !flag.enabled {
                return Err(FlagError::Killed { key: f.key.clone() });
            }
            ramp(&mut flag, f.rule.as_deref(), 0)?;
        }
        Ok(())
    }

    async fn set_weight(&self, env: &str, flags: &[FlagRef], weight: u32) -> Result<(), FlagError> {
        for f in flags {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let current = self.get(env, &f.key).await?;
                let mut flag = current.value;
                if !ramp(&mut flag, f.rule.as_deref(), weight)? {
                    break;
                }
                match self.admin.put_flag(env, &flag, Some(current.version)).await {
                    Ok(_) => break,
                    // Someone wrote in between: read again and re-apply.
                    Err(switchyard_sdk::Error::Api { status: 412, .. }) if attempt < ATTEMPTS => {}
                    Err(switchyard_sdk::Error::Api { status: 412, .. }) => {
                        return Err(FlagError::Contended {
                            key: f.key.clone(),
                            attempts: attempt,
                        })
                    }
                    Err(source) => {
                        return Err(FlagError::Server {
                            context: format!("ramping flag `{}` to {weight} %", f.key),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    async fn kill(&self, env: &str, flags: &[FlagRef], reason: &str) -> Result<(), FlagError> {
        for f in flags {
            match self.admin.kill(env, &f.key, reason).await {
                // A deleted flag serves nobody: as good as killed.
                Ok(_) | Err(switchyard_sdk::Error::Api { status: 404, .. }) => {}
                Err(source) => {
                    return Err(FlagError::Server {
                        context: format!("killing flag `{}` in `{env}`", f.key),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn admin(&self) -> Option<&AdminClient> {
        Some(&self.admin)
    }

    async fn missing_environments(&self, envs: &[&str]) -> Result<Vec<String>, FlagError> {
        let known = self
            .admin
            .environments()
            .await
            .map_err(|source| FlagError::Server {
                context: "listing the environments".into(),
                source,
            })?;
        Ok(envs
            .iter()
            .filter(|env| !known.iter().any(|k| k == *env))
            .map(|env| (*env).to_owned())
            .collect())
    }

    async fn killed(&self, env: &str, keys: &[&str]) -> Result<Vec<String>, FlagError> {
        let flags = self
            .admin
            .flags(env)
            .await
            .map_err(|source| FlagError::Server {
                context: format!("listing flags in `{env}`"),
                source,
            })?;
        Ok(flags
            .into_iter()
            .filter(|f| !f.enabled && keys.contains(&f.key.as_str()))
            .map(|f| f.key.as_str().to_owned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(default: serde_json::Value) -> Flag {
        serde_json::from_value(serde_json::json!({
            "key": "new-checkout",
            "kind": "boolean",
            "variants": { "on": true, "off": false },
            "off_variant": "off",
            "rules": [
                { "id": "staff", "when": { "groups": ["staff"] }, "serve": { "variant": "on" } },
                { "id": "eu", "when": { "constraints": [{ "attribute": "region", "op": "in", "values": ["eu"] }] }, "serve": { "variant": "off" } }
            ],
            "default": default,
        }))
        .unwrap()
    }

    fn share(serve: &Serve) -> u32 {
        match serve {
            Serve::Variant(v) if v == "on" => 100,
            Serve::Variant(_) => 0,
            Serve::Rollout(r) => r.split[0].weight / PER_PERCENT,
        }
    }

    #[test]
    fn ramps_the_default_monotonically_and_keeps_targeted_rules() {
        let mut f = flag(serde_json::json!({ "variant": "off" }));
        let rules = f.rules.clone();
        for (weight, changed, expected) in [
            (5, true, 5),
            (25, true, 25),
            (10, false, 25),
            (25, false, 25),
            (100, true, 100),
            (50, false, 100),
        ] {
            assert_eq!(
                ramp(&mut f, None, weight).unwrap(),
                changed,
                "weight {weight}"
            );
            assert_eq!(share(&f.default), expected, "weight {weight}");
        }
        assert_eq!(f.default, Serve::Variant("on".into()));
        assert_eq!(f.rules, rules);
    }

    #[test]
    fn a_ramp_keeps_the_rollouts_salt_and_splits_against_the_off_variant() {
        let mut f = flag(
            serde_json::json!({ "rollout": { "by": "userId", "salt": "s1",
            "split": [ { "variant": "on", "weight": 10000 }, { "variant": "off", "weight": 90000 } ] } }),
        );
        assert!(ramp(&mut f, None, 30).unwrap());
        let Serve::Rollout(r) = &f.default else {
            panic!()
        };
        assert_eq!(r.salt.as_deref(), Some("s1"));
        assert_eq!(r.by.properties(), ["userId".to_owned()]);
        assert_eq!(
            r.split,
            vec![
                Split {
                    variant: "on".into(),
                    weight: 30_000
                },
                Split {
                    variant: "off".into(),
                    weight: 70_000
                }
            ]
        );
        // The result is a valid flag.
        switchyard_core::Snapshot::compile(vec![f], vec![]).unwrap();
    }

    #[test]
    fn ramps_a_named_rule_only() {
        let mut f = flag(serde_json::json!({ "variant": "off" }));
        assert!(ramp(&mut f, Some("eu"), 20).unwrap());
        assert_eq!(share(&f.rules[1].serve), 20);
        assert_eq!(share(&f.default), 0);
        let err = ramp(&mut f, Some("nope"), 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "flag `new-checkout` cannot be ramped: it has no rule `nope`"
        );
    }

    #[test]
    fn refuses_flags_that_cannot_be_ramped() {
        let mut f = flag(serde_json::json!({ "variant": "off" }));
        f.off_variant = "on".into();
        assert!(ramp(&mut f, None, 5)
            .unwrap_err()
            .to_string()
            .contains("first variant `on` is also its off_variant"));
    }
}
