//! The Gateway API router: moves traffic by setting the `weight`s of two `backendRefs`
//! of a Kubernetes `HTTPRoute` (`gateway.networking.k8s.io/v1`).
//!
//! `set_weight(w)` reads the route, finds every rule whose `backendRefs` name both the
//! stable and the canary Service, and writes `weight: 100 - w` on the stable refs and
//! `weight: w` on the canary refs of those rules with one JSON patch (HTTPRoute is a
//! custom resource, so strategic merge patches do not apply, and a merge patch would
//! replace the whole `rules` list). Rules that name only one of the two are left alone:
//! they do not split traffic, and a weight of 0 there would answer 500s. Other rules,
//! other refs and every other field stay as they were.
//!
//! The patch starts by replacing `metadata.resourceVersion` with the version that was
//! read: the API server compares a patched object's resourceVersion with the stored
//! one and answers 409 Conflict when someone wrote in between (a `test` operation
//! would fail with 422 instead, indistinguishable from a malformed patch). A conflict
//! means the indices in the patch may be stale, so the router reads again and retries,
//! up to [`ATTEMPTS`] times. It then reads the route once more and fails unless the
//! weights are there. A route already at the asked weights is not written at all.
//!
//! `weight()` is the canary's share in the first rule that splits traffic:
//! `canary * 100 / (canary + stable)`, a missing `weight` counting as 1 (the Gateway
//! API's default).
//!
//! Also here, shared with the NGINX ingress router: [`KubeClient`], a Kubernetes client
//! built on first use from the plan's `kubeconfig` (or the usual inference), so building
//! a router never fails and a bad kubeconfig surfaces from `set_weight`.

use std::time::Duration;

use async_trait::async_trait;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use super::{KubeConfigError, RouterError, TrafficRouter};
use crate::plan::GatewayApiCanary;

/// How many read-patch rounds a conflicting writer may cost before `set_weight` gives up.
pub const ATTEMPTS: u32 = 5;

/// The field manager the API server records for the router's writes.
pub(super) const FIELD_MANAGER: &str = "switchyard-orchestrator";

/// How long one API call may take, connecting included. The defaults (a read timeout of
/// almost five minutes, made for watches) would let a wedged API server hang a release.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const GROUP: &str = "gateway.networking.k8s.io";
const VERSION: &str = "v1";
const KIND: &str = "HTTPRoute";
const PLURAL: &str = "httproutes";

/// Sets backendRef weights of an HTTPRoute.
#[derive(Debug)]
pub struct GatewayApi {
    config: GatewayApiCanary,
    client: KubeClient,
    /// `HTTPRoute namespace/name`, as errors name it.
    object: String,
}

impl GatewayApi {
    /// A router for the route `config` names; connects on first use.
    pub fn new(config: GatewayApiCanary) -> Self {
        let object = format!("{KIND} {}/{}", config.namespace, config.route);
        let client = KubeClient::new(config.kubeconfig.clone());
        GatewayApi {
            config,
            client,
            object,
        }
    }

    async fn api(&self) -> Result<Api<DynamicObject>, RouterError> {
        let client = self.client.get().await?;
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL);
        Ok(Api::namespaced_with(
            client,
            &self.config.namespace,
            &resource,
        ))
    }

    async fn read(&self, api: &Api<DynamicObject>) -> Result<DynamicObject, RouterError> {
        api.get(&self.config.route)
            .await
            .map_err(|source| api_error(&self.object, "read", source))
    }

    fn names(&self) -> Names<'_> {
        Names {
            stable: &self.config.stable,
            canary: &self.config.canary,
        }
    }

    fn route_error(&self, problem: RouteProblem) -> RouterError {
        match problem {
            RouteProblem::MissingBackend(backend) => RouterError::MissingBackend {
                route: self.object.clone(),
                backend: backend.to_owned(),
            },
            RouteProblem::NoSplitRule => RouterError::NoSplitRule {
                route: self.object.clone(),
                stable: self.config.stable.clone(),
                canary: self.config.canary.clone(),
            },
            RouteProblem::Malformed { field, value } => RouterError::Malformed {
                object: self.object.clone(),
                field,
                value,
            },
        }
    }
}

#[async_trait]
impl TrafficRouter for GatewayApi {
    async fn set_weight(&self, weight: u32) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(RouterError::InvalidWeight { weight });
        }
        let want = Weights {
            stable: u64::from(100 - weight),
            canary: u64::from(weight),
        };
        let api = self.api().await?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let route = self.read(&api).await?;
            let changes = weight_changes(&route.data, self.names(), want)
                .map_err(|problem| self.route_error(problem))?;
            if changes.is_empty() {
                // Already there: the read was the confirmation.
                return Ok(());
            }
            let patch = weight_patch(route.metadata.resource_version.as_deref(), &changes);
            match api
                .patch(&self.config.route, &params, &Patch::Json::<()>(patch))
                .await
            {
                Ok(_) => break,
                Err(ref conflict) if is_conflict(conflict) && attempt < ATTEMPTS => {
                    tracing::debug!(route = %self.object, attempt, "conflict; reading again");
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
        }
        // "Returns once confirmed": an admission webhook or a controller may have
        // rewritten the weights on the way in.
        let route = self.read(&api).await?;
        let changes = weight_changes(&route.data, self.names(), want)
            .map_err(|problem| self.route_error(problem))?;
        if changes.is_empty() {
            Ok(())
        } else {
            let found = route_weights(&route.data, self.names())
                .map_err(|problem| self.route_error(problem))?;
            Err(RouterError::NotApplied {
                object: self.object.clone(),
                expected: want.to_string(),
                found: found.to_string(),
            })
        }
    }

    async fn weight(&self) -> Result<u32, RouterError> {
        let api = self.api().await?;
        let route = self.read(&api).await?;
        let weights = route_weights(&route.data, self.names())
            .map_err(|problem| self.route_error(problem))?;
        Ok(weights.canary_percent())
    }
}

/// A Kubernetes client built on first use and kept; a failed construction is not kept,
/// so the next call tries again (the kubeconfig may have been fixed meanwhile).
pub(super) struct KubeClient {
    kubeconfig: Option<String>,
    client: tokio::sync::OnceCell<kube::Client>,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // kube::Client is not Debug.
        f.debug_struct("KubeClient")
            .field("kubeconfig", &self.kubeconfig)
            .field("connected", &self.client.initialized())
            .finish()
    }
}

impl KubeClient {
    /// A client for the kubeconfig at `kubeconfig`, or the inferred configuration.
    pub(super) fn new(kubeconfig: Option<String>) -> Self {
        KubeClient {
            kubeconfig,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// The client, built now if this is the first call (or the earlier ones failed).
    pub(super) async fn get(&self) -> Result<kube::Client, RouterError> {
        self.client
            .get_or_try_init(|| connect(self.kubeconfig.as_deref()))
            .await
            .cloned()
    }
}

async fn connect(kubeconfig: Option<&str>) -> Result<kube::Client, RouterError> {
    let fail = |source| RouterError::KubeConfig {
        kubeconfig: kubeconfig
            .map_or_else(|| "the environment".to_owned(), |path| format!("`{path}`")),
        source: Box::new(source),
    };
    let mut config = match kubeconfig {
        Some(path) => {
            let file =
                Kubeconfig::read_from(path).map_err(|e| fail(KubeConfigError::Kubeconfig(e)))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| fail(KubeConfigError::Kubeconfig(e)))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| fail(KubeConfigError::Infer(e)))?,
    };
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    kube::Client::try_from(config).map_err(|e| fail(KubeConfigError::Client(e)))
}

/// Whether the API server answered 409 Conflict.
pub(super) fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(answer) if answer.code == 409)
}

/// A failed call on `object`: 404 becomes [`RouterError::NotFound`].
pub(super) fn api_error(object: &str, action: &'static str, source: kube::Error) -> RouterError {
    match &source {
        kube::Error::Api(answer) if answer.code == 404 => RouterError::NotFound {
            object: object.to_owned(),
            source: Box::new(source),
        },
        _ => RouterError::Kube {
            object: object.to_owned(),
            action,
            source: Box::new(source),
        },
    }
}

/// The canary's share in percent, rounded half up; 0 when neither side gets traffic.
pub(super) fn canary_percent(canary: u64, stable: u64) -> u32 {
    let total = u128::from(canary) + u128::from(stable);
    if total == 0 {
        return 0;
    }
    let percent = (u128::from(canary) * 100 + total / 2) / total;
    // percent <= 100 because canary <= total.
    percent as u32
}

/// The backendRef names the plan gives.
#[derive(Debug, Clone, Copy)]
struct Names<'a> {
    stable: &'a str,
    canary: &'a str,
}

/// The two sides' weights (as the route holds them: any non-negative integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Weights {
    stable: u64,
    canary: u64,
}

impl Weights {
    fn canary_percent(self) -> u32 {
        canary_percent(self.canary, self.stable)
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stable {} / canary {}", self.stable, self.canary)
    }
}

/// Why a route cannot be split as the plan says.
#[derive(Debug, PartialEq, Eq)]
enum RouteProblem {
    MissingBackend(String),
    NoSplitRule,
    Malformed { field: String, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Stable,
    Canary,
}

/// One backendRef of a rule that splits traffic.
#[derive(Debug)]
struct SplitRef {
    rule: usize,
    index: usize,
    side: Side,
    /// Its `weight`, 1 when absent.
    weight: u64,
}

/// Every stable or canary backendRef in the rules that name both, in order; an error
/// naming what is missing when no rule does.
fn split_refs(route: &Value, names: Names<'_>) -> Result<Vec<SplitRef>, RouteProblem> {
    let empty = Vec::new();
    let rules = route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let (mut seen_stable, mut seen_canary) = (false, false);
    let mut split = Vec::new();
    for (rule, body) in rules.iter().enumerate() {
        let refs = body
            .get("backendRefs")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let mut here = Vec::new();
        for (index, backend) in refs.iter().enumerate() {
            let side = match backend.get("name").and_then(Value::as_str) {
                Some(name) if name == names.stable => Side::Stable,
                Some(name) if name == names.canary => Side::Canary,
                _ => continue,
            };
            let weight = match backend.get("weight") {
                None | Some(Value::Null) => 1,
                Some(value) => value.as_u64().ok_or_else(|| RouteProblem::Malformed {
                    field: format!("spec.rules[{rule}].backendRefs[{index}].weight"),
                    value: value.to_string(),
                })?,
            };
            here.push(SplitRef {
                rule,
                index,
                side,
                weight,
            });
        }
        let has_stable = here.iter().any(|r| r.side == Side::Stable);
        let has_canary = here.iter().any(|r| r.side == Side::Canary);
        seen_stable |= has_stable;
        seen_canary |= has_canary;
        if has_stable && has_canary {
            split.extend(here);
        }
    }
    if !seen_stable {
        return Err(RouteProblem::MissingBackend(names.stable.to_owned()));
    }
    if !seen_canary {
        return Err(RouteProblem::MissingBackend(names.canary.to_owned()));
    }
    if split.is_empty() {
        return Err(RouteProblem::NoSplitRule);
    }
    Ok(split)
}

/// The refs whose weight differs from `want`, with the weight they need.
fn weight_changes(
    route: &Value,
    names: Names<'_>,
    want: Weights,
) -> Result<Vec<(usize, usize, u64)>, RouteProblem> {
    Ok(split_refs(route, names)?
        .into_iter()
        .filter_map(|r| {
            let target = match r.side {
                Side::Stable => want.stable,
                Side::Canary => want.canary,
            };
            (r.weight != target).then_some((r.rule, r.index, target))
        })
        .collect())
}

/// The weights of the first rule that splits traffic (refs of one side summed).
fn route_weights(route: &Value, names: Names<'_>) -> Result<Weights, RouteProblem> {
    let refs = split_refs(route, names)?;
    let first = refs.first().map_or(0, |r| r.rule);
    let mut weights = Weights {
        stable: 0,
        canary: 0,
    };
    for r in refs.iter().filter(|r| r.rule == first) {
        match r.side {
            Side::Stable => weights.stable = weights.stable.saturating_add(r.weight),
            Side::Canary => weights.canary = weights.canary.saturating_add(r.weight),
        }
    }
    Ok(weights)
}

/// The JSON patch: the resourceVersion read (a precondition, see the module docs), then
/// one `add` per weight (`add` replaces a member that exists and creates one that does
/// not, since `weight` is optional).
fn weight_patch(
    resource_version: Option<&str>,
    changes: &[(usize, usize, u64)],
) -> json_patch::Patch {
    let precondition = resource_version.map(|version| {
        PatchOperation::Replace(ReplaceOperation {
            path: PointerBuf::from_tokens(["metadata", "resourceVersion"]),
            value: Value::from(version),
        })
    });
    let weights = changes.iter().map(|&(rule, index, weight)| {
        PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens([
                "spec".to_owned(),
                "rules".to_owned(),
                rule.to_string(),
                "backendRefs".to_owned(),
                index.to_string(),
                "weight".to_owned(),
            ]),
            value: Value::from(weight),
        })
    });
    json_patch::Patch(precondition.into_iter().chain(weights).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NAMES: Names<'static> = Names {
        stable: "v2",
        canary: "v3",
    };

    fn route(rules: Value) -> Value {
        json!({ "spec": { "parentRefs": [{ "name": "gw" }], "rules": rules } })
    }

    #[test]
    fn finds_the_refs_of_splitting_rules_only() {
        let route = route(json!([
            { "backendRefs": [{ "name": "v2", "weight": 90 }, { "name": "v3", "weight": 10 }] },
            { "backendRefs": [{ "name": "v2" }] },
            { "matches": [], "backendRefs": [{ "name": "other" }, { "name": "v3" }, { "name": "v2", "weight": 0 }] },
            { "filters": [] },
        ]));
        let refs: Vec<_> = split_refs(&route, NAMES)
            .unwrap()
            .into_iter()
            .map(|r| (r.rule, r.index, r.side, r.weight))
            .collect();
        assert_eq!(
            refs,
            [
                (0, 0, Side::Stable, 90),
                (0, 1, Side::Canary, 10),
                (2, 1, Side::Canary, 1),
                (2, 2, Side::Stable, 0),
            ]
        );
        assert_eq!(
            route_weights(&route, NAMES).unwrap(),
            Weights {
                stable: 90,
                canary: 10
            }
        );
    }

    #[test]
    fn names_what_is_missing() {
        let cases: &[(Value, RouteProblem)] = &[
            (json!({}), RouteProblem::MissingBackend("v2".into())),
            (route(json!([])), RouteProblem::MissingBackend("v2".into())),
            (
                route(json!([{ "backendRefs": [{ "name": "v2" }] }])),
                RouteProblem::MissingBackend("v3".into()),
            ),
            (
                route(json!([{ "backendRefs": [{ "name": "v3" }, { "name": "x" }] }])),
                RouteProblem::MissingBackend("v2".into()),
            ),
            (
                route(json!([
                    { "backendRefs": [{ "name": "v2" }] },
                    { "backendRefs": [{ "name": "v3" }] },
                ])),
                RouteProblem::NoSplitRule,
            ),
            (
                route(
                    json!([{ "backendRefs": [{ "name": "v2", "weight": "5" }, { "name": "v3" }] }]),
                ),
                RouteProblem::Malformed {
                    field: "spec.rules[0].backendRefs[0].weight".into(),
                    value: "\"5\"".into(),
                },
            ),
        ];
        for (route, expected) in cases {
            assert_eq!(
                split_refs(route, NAMES).unwrap_err(),
                *expected,
                "route {route}"
            );
        }
    }

    #[test]
    fn patches_only_the_weights_that_differ() {
        let route = route(json!([
            { "backendRefs": [{ "name": "v2", "weight": 75 }, { "name": "v3" }] },
        ]));
        let want = Weights {
            stable: 75,
            canary: 25,
        };
        let changes = weight_changes(&route, NAMES, want).unwrap();
        assert_eq!(changes, [(0, 1, 25)]);
        assert_eq!(
            serde_json::to_value(weight_patch(Some("41"), &changes)).unwrap(),
            json!([
                { "op": "replace", "path": "/metadata/resourceVersion", "value": "41" },
                { "op": "add", "path": "/spec/rules/0/backendRefs/1/weight", "value": 25 },
            ])
        );
        let mut patched = route.clone();
        json_patch::patch(&mut patched, &weight_patch(None, &changes)).unwrap();
        assert!(weight_changes(&patched, NAMES, want).unwrap().is_empty());
    }

    #[test]
    fn computes_the_canary_share() {
        let cases: &[(u64, u64, u32)] = &[
            (0, 0, 0),
            (0, 100, 0),
            (100, 0, 100),
            (25, 75, 25),
            (1, 2, 33),
            (2, 1, 67),
            (1, 1, 50),
            (u64::MAX, u64::MAX, 50),
        ];
        for &(canary, stable, expected) in cases {
            assert_eq!(
                canary_percent(canary, stable),
                expected,
                "{canary}/{stable}"
            );
        }
    }
}
