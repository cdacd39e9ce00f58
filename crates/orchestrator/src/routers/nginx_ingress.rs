//! The NGINX ingress router: moves traffic by setting the
//! `nginx.ingress.kubernetes.io/canary-weight` annotation of a canary Ingress
//! (`networking.k8s.io/v1`), which ingress-nginx reads to send that share of the
//! requests matching the main Ingress to the canary Ingress's backend.
//!
//! The canary Ingress — a second Ingress for the same host and path carrying
//! `nginx.ingress.kubernetes.io/canary: "true"` — is the operator's to create: the
//! router refuses an Ingress without that annotation instead of turning an ordinary
//! Ingress into a canary. When `nginx.ingress.kubernetes.io/canary-weight-total` is set,
//! the weight written is scaled to it (25 % of a total of 1000 is `250`), so the plan's
//! weights stay percentages.
//!
//! `set_weight` reads the Ingress, checks the canary annotation, and writes the weight
//! with a JSON merge patch that also carries the `metadata.resourceVersion` it read:
//! the API server answers 409 Conflict if the Ingress changed in between (so the check
//! and the write cannot be split by someone removing the canary annotation), and the
//! router reads again, up to [`ATTEMPTS`] times. It then reads the Ingress back and fails
//! unless the annotation is there. An Ingress already at the weight is not written.
//! `weight()` reads the annotation (absent: 0).
//!
//! Header and cookie canary rules (`canary-by-header`, `canary-by-cookie`) take
//! precedence over the weight in ingress-nginx; they are left as they are.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::gateway_api::{
    api_error, canary_percent, is_conflict, KubeClient, ATTEMPTS, FIELD_MANAGER,
};
use super::{RouterError, TrafficRouter};
use crate::plan::NginxIngressCanary;

/// Marks an Ingress as a canary Ingress; must be `"true"`.
pub const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
/// The canary's share of the traffic, out of [`CANARY_WEIGHT_TOTAL`].
pub const CANARY_WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
/// What [`CANARY_WEIGHT`] is out of; 100 when absent.
pub const CANARY_WEIGHT_TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";

/// Sets the canary-weight annotation of a canary Ingress.
#[derive(Debug)]
pub struct NginxIngress {
    config: NginxIngressCanary,
    client: KubeClient,
    /// `Ingress namespace/name`, as errors name it.
    object: String,
}

impl NginxIngress {
    /// A router for the canary Ingress `config` names; connects on first use.
    pub fn new(config: NginxIngressCanary) -> Self {
        let object = format!("Ingress {}/{}", config.namespace, config.ingress);
        let client = KubeClient::new(config.kubeconfig.clone());
        NginxIngress {
            config,
            client,
            object,
        }
    }

    async fn api(&self) -> Result<Api<Ingress>, RouterError> {
        let client = self.client.get().await?;
        Ok(Api::namespaced(client, &self.config.namespace))
    }

    async fn read(&self, api: &Api<Ingress>) -> Result<Ingress, RouterError> {
        api.get(&self.config.ingress)
            .await
            .map_err(|source| api_error(&self.object, "read", source))
    }

    /// The annotations of a canary Ingress; [`RouterError::NotCanary`] for another one.
    fn canary_annotations<'a>(
        &self,
        ingress: &'a Ingress,
    ) -> Result<&'a BTreeMap<String, String>, RouterError> {
        let annotations = ingress.metadata.annotations.as_ref();
        match (annotations, annotations.and_then(|a| a.get(CANARY))) {
            (Some(annotations), Some(value)) if is_true(value) => Ok(annotations),
            (_, found) => Err(RouterError::NotCanary {
                ingress: self.object.clone(),
                found: found.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}")),
            }),
        }
    }

    /// [`CANARY_WEIGHT_TOTAL`], 100 when absent.
    fn total(&self, annotations: &BTreeMap<String, String>) -> Result<u64, RouterError> {
        match annotations.get(CANARY_WEIGHT_TOTAL) {
            None => Ok(100),
            Some(value) => parse_number(value)
                .filter(|&total| total > 0)
                .ok_or_else(|| self.malformed(CANARY_WEIGHT_TOTAL, value)),
        }
    }

    fn malformed(&self, annotation: &str, value: &str) -> RouterError {
        RouterError::Malformed {
            object: self.object.clone(),
            field: format!("annotation `{annotation}`"),
            value: value.to_owned(),
        }
    }
}

#[async_trait]
impl TrafficRouter for NginxIngress {
    async fn set_weight(&self, weight: u32) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(RouterError::InvalidWeight { weight });
        }
        let api = self.api().await?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let mut attempt = 0;
        let wanted = loop {
            attempt += 1;
            let ingress = self.read(&api).await?;
            let annotations = self.canary_annotations(&ingress)?;
            let wanted = scaled(weight, self.total(annotations)?).to_string();
            if annotations.get(CANARY_WEIGHT) == Some(&wanted) {
                // Already there: the read was the confirmation.
                return Ok(());
            }
            let patch = json!({
                "metadata": {
                    "resourceVersion": ingress.metadata.resource_version,
                    "annotations": { CANARY_WEIGHT: wanted },
                }
            });
            match api
                .patch(&self.config.ingress, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => break wanted,
                Err(ref conflict) if is_conflict(conflict) && attempt < ATTEMPTS => {
                    tracing::debug!(ingress = %self.object, attempt, "conflict; reading again");
                }
                Err(source) if is_conflict(&source) => {
                    return Err(RouterError::Conflict {
                        object: self.object.clone(),
                        attempts: attempt,
                        source: Box::new(source),
                    });
                }
                Err(source) => return Err(api_error(&self.object, "patch", source)),
            }
        };
        let ingress = self.read(&api).await?;
        let annotations = self.canary_annotations(&ingress)?;
        match annotations.get(CANARY_WEIGHT) {
            Some(found) if *found == wanted => Ok(()),
            found => Err(RouterError::NotApplied {
                object: self.object.clone(),
                expected: format!("{CANARY_WEIGHT}: {wanted:?}"),
                found: found.map_or_else(
                    || format!("no {CANARY_WEIGHT}"),
                    |v| format!("{CANARY_WEIGHT}: {v:?}"),
                ),
            }),
        }
    }

    async fn weight(&self) -> Result<u32, RouterError> {
        let api = self.api().await?;
        let ingress = self.read(&api).await?;
        let annotations = self.canary_annotations(&ingress)?;
        let total = self.total(annotations)?;
        let canary = match annotations.get(CANARY_WEIGHT) {
            None => 0,
            Some(value) => {
                parse_number(value).ok_or_else(|| self.malformed(CANARY_WEIGHT, value))?
            }
        };
        // ingress-nginx sends everything to the canary when the weight exceeds the total.
        let canary = canary.min(total);
        Ok(canary_percent(canary, total - canary))
    }
}

/// What ingress-nginx reads as true (Go's `strconv.ParseBool`).
fn is_true(value: &str) -> bool {
    matches!(value, "true" | "True" | "TRUE" | "t" | "T" | "1")
}

/// A plain decimal number, as ingress-nginx parses weights.
fn parse_number(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `weight` percent of `total`, rounded half up.
fn scaled(weight: u32, total: u64) -> u64 {
    let scaled = (u128::from(weight) * u128::from(total) + 50) / 100;
    // weight <= 100, so scaled <= total.
    scaled as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_percentages_to_the_total() {
        let cases: &[(u32, u64, u64)] = &[
            (0, 100, 0),
            (25, 100, 25),
            (100, 100, 100),
            (25, 1000, 250),
            (1, 10, 0),
            (5, 10, 1),
            (33, 3, 1),
            (100, u64::MAX, u64::MAX),
        ];
        for &(weight, total, expected) in cases {
            assert_eq!(scaled(weight, total), expected, "{weight}% of {total}");
        }
    }

    #[test]
    fn parses_annotation_values() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("25", Some(25)),
            ("", None),
            ("+5", None),
            ("-5", None),
            ("2.5", None),
            (" 5", None),
            ("99999999999999999999999", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_number(value), *expected, "{value:?}");
        }
        assert!(is_true("true") && is_true("True") && is_true("1"));
        assert!(!is_true("false") && !is_true("yes") && !is_true(""));
    }
}
