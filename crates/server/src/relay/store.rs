//! The relay's [`Store`]: reads come from the upstream (snapshots), or from disk
//! when it is down at start; everything the upstream owns — writes, tokens, the audit
//! log, schedules, metric queries — is refused naming it; SDK metric batches are
//! handed to the forwarder.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::sync::SnapshotDocument;

use super::cache::{self, age};
use super::upstream::UpstreamError;
use super::Relay;
use crate::environments::now_ms;
use crate::store::{
    AuditEntry, AuditQuery, Commit, EnvRecord, MetricsBatch, Schedule, Store, StoreError,
    TokenRecord, UnitsRecord, UsageOf, VariantCounts,
};

/// A store that is another server.
pub struct UpstreamStore {
    relay: Arc<Relay>,
}

impl UpstreamStore {
    /// The store of `relay`.
    pub fn new(relay: Arc<Relay>) -> Self {
        UpstreamStore { relay }
    }

    fn read_only(&self) -> StoreError {
        StoreError::ReadOnly {
            upstream: self.relay.upstream.url().to_owned(),
        }
    }

    /// `env` as the upstream has it now, written to disk; `None` when it has no such
    /// environment (then removed from disk).
    async fn fetch(&self, env: &EnvName) -> Result<Option<EnvRecord>, UpstreamError> {
        let relay = &self.relay;
        let Some(bytes) = relay.upstream.snapshot(env).await? else {
            relay.cache.remove(env);
            relay.links.remove(env);
            return Ok(None);
        };
        let document: SnapshotDocument =
            serde_json::from_slice(&bytes).map_err(|e| UpstreamError::Unreadable {
                url: relay.upstream.url().to_owned(),
                message: format!("snapshot of `{env}`: {e}"),
            })?;
        relay.links.heard(env, Some(document.revision));
        relay.telemetry.snapshots_received.inc();
        if let Err(error) = relay.cache.write(env, &bytes) {
            tracing::warn!(%env, %error, "could not keep the snapshot on disk");
        }
        Ok(Some(cache::record(document)))
    }

    async fn load_online(&self) -> Result<Vec<EnvRecord>, UpstreamError> {
        let envs = self.relay.upstream.environments().await?;
        let mut records = Vec::with_capacity(envs.len());
        for env in &envs {
            records.extend(self.fetch(env).await?);
        }
        self.relay.links.set_listed(true);
        Ok(records)
    }
}

/// Whether `error` means the upstream could not be asked (rather than it refusing).
fn unreachable(error: &UpstreamError) -> bool {
    match error {
        UpstreamError::Unreachable { .. } => true,
        UpstreamError::Refused { status, .. } => *status >= 500,
        UpstreamError::Unreadable { .. } => false,
    }
}

#[async_trait]
impl Store for UpstreamStore {
    async fn load(&self) -> Result<Vec<EnvRecord>, StoreError> {
        match self.load_online().await {
            Ok(records) => Ok(records),
            Err(error) if unreachable(&error) => {
                let cached = self.relay.cache.read_all();
                tracing::warn!(
                    %error,
                    environments = cached.len(),
                    "upstream unreachable at start: serving the snapshots kept on disk until it is back"
                );
                let now = now_ms();
                Ok(cached
                    .into_iter()
                    .map(|one| {
                        let written = now.saturating_sub(age(one.written).as_millis() as u64);
                        self.relay
                            .links
                            .offline(&one.record.name, one.record.revision, written);
                        one.record
                    })
                    .collect())
            }
            Err(error) => Err(StoreError::Unavailable(Box::new(error))),
        }
    }

    async fn load_env(&self, env: &EnvName) -> Result<Option<EnvRecord>, StoreError> {
        self.fetch(env)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))
    }

    async fn create_env(&self, _: &EnvName, _: AuditEntry) -> Result<bool, StoreError> {
        Err(self.read_only())
    }

    async fn commit(&self, _: Commit) -> Result<u64, StoreError> {
        Err(self.read_only())
    }

    async fn delete_env(&self, _: &EnvName, _: u64, _: AuditEntry) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    /// None here: tokens are checked with the upstream ([`super::tokens`]).
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn create_token(&self, _: TokenRecord, _: AuditEntry) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    async fn delete_token(
        &self,
        _: &str,
        _: AuditEntry,
    ) -> Result<Option<TokenRecord>, StoreError> {
        Err(self.read_only())
    }

    async fn audit(&self, _: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        Err(self.read_only())
    }

    /// Not kept: evaluations on a relay are not counted as flag use upstream
    /// (exposures its SDKs report are, through the forwarded metrics).
    async fn replace_token(
        &self,
        _: &str,
        _: TokenRecord,
        _: AuditEntry,
    ) -> Result<bool, StoreError> {
        Err(self.read_only())
    }

    async fn record_usage(&self, _: UsageOf<'_>, _: &[(String, u64)]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn usage(&self, _: UsageOf<'_>) -> Result<Vec<(String, u64)>, StoreError> {
        Err(self.read_only())
    }

    async fn put_schedule(&self, _: &Schedule, _: AuditEntry) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    /// None: the upstream carries out its schedules.
    async fn schedules(&self, _: Option<&EnvName>) -> Result<Vec<Schedule>, StoreError> {
        Ok(Vec::new())
    }

    async fn settle_schedule(&self, _: &Schedule, _: AuditEntry) -> Result<bool, StoreError> {
        Err(self.read_only())
    }

    async fn record_metrics(
        &self,
        env: &EnvName,
        _minute: u64,
        batch: &MetricsBatch,
    ) -> Result<(), StoreError> {
        self.relay.forwarder.add(env, batch, now_ms());
        Ok(())
    }

    async fn flag_units(
        &self,
        _: &EnvName,
        _: &FlagKey,
        _: u64,
    ) -> Result<Vec<UnitsRecord>, StoreError> {
        Err(self.read_only())
    }

    async fn flag_metrics(
        &self,
        _: &EnvName,
        _: &FlagKey,
        _: u64,
        _: u64,
    ) -> Result<BTreeMap<String, VariantCounts>, StoreError> {
        Err(self.read_only())
    }
}
