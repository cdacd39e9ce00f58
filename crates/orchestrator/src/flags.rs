//! Flag control: ramping, killing and watching a release's flags on the flag server.
//!
//! *API Boundary*: the orchestrator reaches the flag server only through the SDK's
//! [`AdminClient`]. The ramp itself ([`ramp`], core's `ramp::raise_to`) is pure.
//!
//! The ramp gives a flag's first variant `weight` % of users by rewriting the ramped
//! serve (the default, or one named rule's) into a rollout whose first split is the
//! first variant at `weight` %, followed by every other variant of the current serve
//! scaled proportionally into the rest — so an A/B split keeps its ratio, and a plain
//! `off` serve becomes `first`/`off`. Switchyard bucketing gives the first split the
//! lowest buckets, so raising its weight only adds users: nobody flips back. It never
//! lowers a share; at 100 % the serve is the first variant alone.
//!
//! The pre-checks record what each flag served before the release ([`PriorServe`]);
//! a rollback kills the flag and then writes that serve back.

use async_trait::async_trait;
use switchyard_core::ramp::{ramped_serve, share, RampError, PER_PERCENT};
use switchyard_core::Flag;
use switchyard_sdk::admin::AdminClient;

use crate::plan::FlagRef;

pub mod prior;

pub use prior::PriorServe;

/// Drives a release's flags.
#[async_trait]
pub trait FlagControl: Send + Sync {
    /// Checks that every flag exists, is not killed, can be ramped and does not give
    /// its first variant more than `first_weight` % already; returns what each ramped
    /// serve is now (its pre-release serve).
    async fn check(
        &self,
        env: &str,
        flags: &[FlagRef],
        first_weight: u32,
    ) -> Result<Vec<PriorServe>, FlagError>;

    /// Gives each flag's first variant at least `weight` % of users; `reason`, when
    /// given (a hotfix's), goes into the flag server's audit log with each change.
    async fn set_weight(
        &self,
        env: &str,
        flags: &[FlagRef],
        weight: u32,
        reason: Option<&str>,
    ) -> Result<(), FlagError>;

    /// Kills the flags (everyone gets the off variant). A flag with a record in
    /// `before` then gets its pre-release serve back (still killed), so reviving it
    /// serves what it served before the release.
    async fn kill(
        &self,
        env: &str,
        flags: &[FlagRef],
        before: &[PriorServe],
        reason: &str,
    ) -> Result<(), FlagError>;

    /// Puts each flag's pre-release serve (its record in `before`) back without
    /// killing the flag: how one region rolls back while the flag, through its other
    /// rules, goes on serving the regions that stay promoted.
    async fn put_back(
        &self,
        env: &str,
        flags: &[FlagRef],
        before: &[PriorServe],
    ) -> Result<(), FlagError>;

    /// Those of `keys` that are killed now, with who killed them and why when known.
    async fn killed(&self, env: &str, keys: &[&str]) -> Result<Vec<Killed>, FlagError>;

    /// Those of `envs` that the flag server does not have.
    async fn missing_environments(&self, envs: &[&str]) -> Result<Vec<String>, FlagError>;

    /// The admin API client, for the server's per-variant metrics (`guard`).
    fn admin(&self) -> Option<&AdminClient> {
        None
    }
}

/// A flag found killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    /// The flag.
    pub key: String,
    /// `by NAME: REASON` from the flag server's audit log, when it has the kill.
    pub why: Option<String>,
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
    /// The flag already gives its first variant more than the first step would, so
    /// the first steps would change nothing while claiming a weight.
    #[error(
        "flag `{key}` already serves `{variant}` to {share} %, above the first step's {weight} %"
    )]
    AlreadyAbove {
        /// The flag.
        key: String,
        /// Its first variant.
        variant: String,
        /// The share it serves now, in percent.
        share: f64,
        /// The first step's weight.
        weight: u32,
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

/// Sets the ramped serve of `flag` so its first variant gets at least `weight` %, the
/// other variants keeping their relative shares of the rest. Returns whether the flag
/// changed.
pub fn ramp(flag: &mut Flag, rule: Option<&str>, weight: u32) -> Result<bool, FlagError> {
    Ok(switchyard_core::ramp::raise_to(flag, rule, weight)?)
}

impl From<RampError> for FlagError {
    fn from(error: RampError) -> Self {
        FlagError::NotRampable {
            key: error.key,
            why: error.why,
        }
    }
}

/// Whether a release whose first step is `first_weight` % can ramp `flag`; returns its
/// ramped serve as it is now.
pub fn check(
    flag: &Flag,
    env: &str,
    rule: Option<&str>,
    first_weight: u32,
) -> Result<PriorServe, FlagError> {
    let mut copy = flag.clone();
    let (first, serve) = ramped_serve(&mut copy, rule)?;
    let now = share(serve, &first);
    if now > first_weight.min(100) * PER_PERCENT {
        return Err(FlagError::AlreadyAbove {
            key: flag.key.as_str().to_owned(),
            variant: first,
            share: f64::from(now) / f64::from(PER_PERCENT),
            weight: first_weight,
        });
    }
    Ok(PriorServe {
        environment: env.to_owned(),
        flag: flag.key.as_str().to_owned(),
        rule: rule.map(str::to_owned),
        serve: serve.clone(),
        enabled: flag.enabled,
    })
}

/// Kills `flag` and puts `before`'s serve back. Returns whether the flag changed; a
/// rule that no longer exists is left alone (the kill still applies).
pub fn restore(flag: &mut Flag, before: &PriorServe) -> bool {
    let killed = flag.enabled;
    flag.enabled = false;
    put_back(flag, before) || killed
}

/// Puts `before`'s serve back, leaving the flag enabled or killed as it is. Returns
/// whether the flag changed; a rule that no longer exists is left alone.
pub fn put_back(flag: &mut Flag, before: &PriorServe) -> bool {
    let serve = match &before.rule {
        None => Some(&mut flag.default),
        Some(id) => flag
            .rules
            .iter_mut()
            .find(|r| &r.id == id)
            .map(|r| &mut r.serve),
    };
    match serve {
        Some(serve) if *serve != before.serve => {
            *serve = before.serve.clone();
            true
        }
        _ => false,
    }
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

impl AdminFlags {
    /// `by NAME: REASON` of the latest audit entry of `key` in `env`, if it is a kill.
    async fn kill_reason(&self, env: &str, key: &str) -> Option<String> {
        let query = format!("env={env}&flag={key}&limit=1");
        let entries = self.admin.audit(&query).await.ok()?;
        let entry = entries.first()?;
        if entry["action"] != "flag.kill" {
            return None;
        }
        let by = entry["actor"].as_str().unwrap_or("someone");
        Some(
            match entry["reason"].as_str().filter(|r| !r.trim().is_empty()) {
                Some(reason) => format!("by {by}: {reason}"),
                None => format!("by {by}, no reason given"),
            },
        )
    }
}

/// Read-modify-write attempts before a ramp gives up on a flag others keep changing.
const ATTEMPTS: u32 = 5;

impl AdminFlags {
    /// Reads `key`, lets `change` edit it and writes it back if it changed, with
    /// If-Match; a write in between (412) makes it read and change again. `None` when
    /// the flag does not exist.
    async fn update(
        &self,
        env: &str,
        key: &str,
        doing: &str,
        change: impl FnMut(&mut Flag) -> Result<bool, FlagError>,
    ) -> Result<Option<()>, FlagError> {
        self.update_with_reason(env, key, doing, None, change).await
    }

    /// [`Self::update`], the write carrying `reason` into the flag server's audit log
    /// when given. A plain flag write has no reason, so that one goes through the
    /// batch endpoint (`apply`, a batch of one flag), If-Match on the environment's
    /// revision read before the flag.
    async fn update_with_reason(
        &self,
        env: &str,
        key: &str,
        doing: &str,
        reason: Option<&str>,
        mut change: impl FnMut(&mut Flag) -> Result<bool, FlagError>,
    ) -> Result<Option<()>, FlagError> {
        let server = |source| FlagError::Server {
            context: doing.to_owned(),
            source,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let revision = match reason {
                Some(_) => match self.admin.revision(env).await.map_err(server)? {
                    Some(revision) => Some(revision),
                    None => return Ok(None),
                },
                None => None,
            };
            let current = match self.get(env, key).await {
                Ok(current) => current,
                Err(FlagError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut flag = current.value;
            if !change(&mut flag)? {
                return Ok(Some(()));
            }
            let written = match reason {
                Some(reason) => {
                    let batch = switchyard_core::admin::ApplyBody {
                        flags: vec![flag],
                        reason: Some(reason.to_owned()),
                        ..Default::default()
                    };
                    self.admin.apply(env, &batch, revision).await.map(|_| ())
                }
                None => self
                    .admin
                    .put_flag(env, &flag, Some(current.version))
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(()) => return Ok(Some(())),
                // Someone wrote in between: read again and re-apply.
                Err(switchyard_sdk::Error::Api { status: 412, .. }) if attempt < ATTEMPTS => {}
                Err(switchyard_sdk::Error::Api { status: 412, .. }) => {
                    return Err(FlagError::Contended {
                        key: key.to_owned(),
                        attempts: attempt,
                    })
                }
                Err(source) => return Err(server(source)),
            }
        }
    }
}

#[async_trait]
impl FlagControl for AdminFlags {
    async fn check(
        &self,
        env: &str,
        flags: &[FlagRef],
        first_weight: u32,
    ) -> Result<Vec<PriorServe>, FlagError> {
        let mut before = Vec::with_capacity(flags.len());
        for f in flags {
            let flag = self.get(env, &f.key).await?.value;
            if !flag.enabled {
                return Err(FlagError::Killed { key: f.key.clone() });
            }
            before.push(check(&flag, env, f.rule.as_deref(), first_weight)?);
        }
        Ok(before)
    }

    async fn set_weight(
        &self,
        env: &str,
        flags: &[FlagRef],
        weight: u32,
        reason: Option<&str>,
    ) -> Result<(), FlagError> {
        for f in flags {
            let doing = format!("ramping flag `{}` to {weight} %", f.key);
            self.update_with_reason(env, &f.key, &doing, reason, |flag| {
                ramp(flag, f.rule.as_deref(), weight)
            })
            .await?
            .ok_or_else(|| FlagError::NotFound {
                key: f.key.clone(),
                env: env.to_owned(),
            })?;
        }
        Ok(())
    }

    async fn kill(
        &self,
        env: &str,
        flags: &[FlagRef],
        before: &[PriorServe],
        reason: &str,
    ) -> Result<(), FlagError> {
        for f in flags {
            // Through the kill switch, so the audit log carries the release's reason.
            match self.admin.kill(env, &f.key, reason).await {
                Ok(_) => {}
                // A deleted flag serves nobody: as good as killed.
                Err(switchyard_sdk::Error::Api { status: 404, .. }) => continue,
                Err(source) => {
                    return Err(FlagError::Server {
                        context: format!("killing flag `{}` in `{env}`", f.key),
                        source,
                    })
                }
            }
            // Then, while it is killed (nobody is served the ramp meanwhile), its
            // pre-release serve goes back.
            if let Some(prior) = before.iter().find(|p| p.is_of(env, f)) {
                let doing = format!("restoring flag `{}` in `{env}`", f.key);
                self.update(env, &f.key, &doing, |flag| Ok(restore(flag, prior)))
                    .await?;
            }
        }
        Ok(())
    }

    async fn put_back(
        &self,
        env: &str,
        flags: &[FlagRef],
        before: &[PriorServe],
    ) -> Result<(), FlagError> {
        for f in flags {
            if let Some(prior) = before.iter().find(|p| p.is_of(env, f)) {
                let doing = format!("restoring flag `{}` in `{env}`", f.key);
                self.update(env, &f.key, &doing, |flag| Ok(put_back(flag, prior)))
                    .await?;
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

    async fn killed(&self, env: &str, keys: &[&str]) -> Result<Vec<Killed>, FlagError> {
        let flags = self
            .admin
            .flags(env)
            .await
            .map_err(|source| FlagError::Server {
                context: format!("listing flags in `{env}`"),
                source,
            })?;
        let mut killed = Vec::new();
        for flag in flags {
            if flag.enabled || !keys.contains(&flag.key.as_str()) {
                continue;
            }
            let key = flag.key.as_str().to_owned();
            // The reason is a courtesy: a kill is acted on even if the audit log is unreadable.
            let why = self.kill_reason(env, &key).await;
            killed.push(Killed { key, why });
        }
        Ok(killed)
    }
}

#[cfg(test)]
mod tests;
