//! The Gateway API and NGINX ingress routers through a real `kube` client against the
//! fake API server of `support/fake_kube.rs` (no cluster runs in CI): the objects end up
//! exactly as expected, the requests are exactly the expected ones, and failures come
//! back as the right [`RouterError`].

mod support;

use serde_json::{json, Value};
use support::fake_kube::{FakeKube, Kind, Recorded, TOKEN};
use switchyard_orchestrator::plan::{Canary, GatewayApiCanary, NginxIngressCanary, Strategy};
use switchyard_orchestrator::routers::gateway_api::ATTEMPTS;
use switchyard_orchestrator::routers::nginx_ingress::{CANARY, CANARY_WEIGHT, CANARY_WEIGHT_TOTAL};
use switchyard_orchestrator::routers::{self, KubeConfigError, RouterError, TrafficRouter};

const NS: &str = "shop";
const ROUTE: &str = "payments";
const STABLE: &str = "payments-v2";
const CANARY_SERVICE: &str = "payments-v3";
const INGRESS: &str = "payments-canary";
const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";

fn gateway_api(kube: &FakeKube, route: &str) -> std::sync::Arc<dyn TrafficRouter> {
    routers::build(
        "payments",
        &Canary::GatewayApi(GatewayApiCanary {
            namespace: NS.into(),
            route: route.into(),
            stable: STABLE.into(),
            canary: CANARY_SERVICE.into(),
            kubeconfig: Some(kube.kubeconfig()),
        }),
        &Strategy::Canary,
    )
}

fn nginx_ingress(kube: &FakeKube, ingress: &str) -> std::sync::Arc<dyn TrafficRouter> {
    routers::build(
        "payments",
        &Canary::NginxIngress(NginxIngressCanary {
            namespace: NS.into(),
            ingress: ingress.into(),
            kubeconfig: Some(kube.kubeconfig()),
        }),
        &Strategy::Canary,
    )
}

/// A route with two rules that split between stable and canary (0 and 2), one that only
/// serves stable (1) and one for another service (3).
fn route_spec() -> Value {
    json!({
        "parentRefs": [{ "name": "shop-gateway", "namespace": "infra" }],
        "hostnames": ["shop.example"],
        "rules": [
            {
                "matches": [{ "path": { "type": "PathPrefix", "value": "/pay" } }],
                "backendRefs": [
                    { "name": STABLE, "port": 8080, "weight": 100 },
                    { "name": CANARY_SERVICE, "port": 8080, "weight": 0 },
                ],
                "timeouts": { "request": "10s" },
            },
            {
                "matches": [{ "path": { "type": "PathPrefix", "value": "/refund" } }],
                "backendRefs": [{ "name": STABLE, "port": 8080 }],
            },
            {
                "matches": [{ "headers": [{ "name": "x-beta", "value": "1" }] }],
                "backendRefs": [
                    { "name": CANARY_SERVICE, "port": 8080 },
                    { "name": STABLE, "port": 8080, "weight": 1 },
                ],
            },
            {
                "backendRefs": [{ "name": "catalog", "port": 80, "weight": 7 }],
            },
        ],
    })
}

/// `object` without its resourceVersion, which every write changes.
fn unversioned(mut object: Value) -> Value {
    object["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resourceVersion");
    object
}

fn version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned()
}

/// The route as stored initially, with weights `stable`/`canary` in rules 0 and 2.
fn route_with(initial: &Value, stable: u64, canary: u64) -> Value {
    let mut route = unversioned(initial.clone());
    let rules = &mut route["spec"]["rules"];
    rules[0]["backendRefs"][0]["weight"] = json!(stable);
    rules[0]["backendRefs"][1]["weight"] = json!(canary);
    rules[2]["backendRefs"][0]["weight"] = json!(canary);
    rules[2]["backendRefs"][1]["weight"] = json!(stable);
    route
}

/// A GET of `path`, answered with `status`.
fn get(path: &str, status: u16) -> Recorded {
    Recorded {
        method: "GET".into(),
        path: path.into(),
        query: vec![],
        content_type: None,
        authorization: Some(format!("Bearer {TOKEN}")),
        body: None,
        status,
    }
}

/// A PATCH of `path` by the orchestrator's field manager, answered with `status`.
fn patch(path: &str, content_type: &str, body: Value, status: u16) -> Recorded {
    Recorded {
        method: "PATCH".into(),
        path: path.into(),
        query: vec![("fieldManager".into(), "switchyard-orchestrator".into())],
        content_type: Some(content_type.into()),
        authorization: Some(format!("Bearer {TOKEN}")),
        body: Some(body),
        status,
    }
}

fn weight_op(rule: usize, index: usize, weight: u64) -> Value {
    json!({ "op": "add", "path": format!("/spec/rules/{rule}/backendRefs/{index}/weight"), "value": weight })
}

fn version_op(version: &str) -> Value {
    json!({ "op": "replace", "path": "/metadata/resourceVersion", "value": version })
}

#[tokio::test]
async fn gateway_api_sets_the_backend_weights_and_nothing_else() {
    let kube = FakeKube::start().await;
    let initial = kube.put_http_route(NS, ROUTE, route_spec());
    let router = gateway_api(&kube, ROUTE);
    let path = Kind::HttpRoute.path(NS, ROUTE);

    // The first splitting rule (0) decides: 100/0. Rule 2, at 1/1 (an absent weight
    // counts as 1), is brought in line by the first set_weight.
    assert_eq!(router.weight().await.expect("weight"), 0);

    for weight in [0, 25, 100] {
        kube.clear_requests();
        let before = kube.object(Kind::HttpRoute, NS, ROUTE).expect("route");
        router.set_weight(weight).await.expect("set weight");

        let stored = kube.object(Kind::HttpRoute, NS, ROUTE).expect("route");
        assert_eq!(
            unversioned(stored.clone()),
            route_with(&initial, u64::from(100 - weight), u64::from(weight)),
            "weight {weight}"
        );
        assert_eq!(router.weight().await.expect("weight"), weight);

        let (stable, canary) = (u64::from(100 - weight), u64::from(weight));
        let ops: Vec<Value> = match weight {
            // Rule 0 already holds 100/0; rule 2 gets both weights.
            0 => vec![weight_op(2, 0, canary), weight_op(2, 1, stable)],
            _ => vec![
                weight_op(0, 0, stable),
                weight_op(0, 1, canary),
                weight_op(2, 0, canary),
                weight_op(2, 1, stable),
            ],
        };
        let mut body = vec![version_op(&version(&before))];
        body.extend(ops);
        let expected = [
            get(&path, 200),
            patch(&path, JSON_PATCH, Value::Array(body), 200),
            get(&path, 200),
            get(&path, 200), // weight()
        ];
        assert_eq!(kube.requests(), expected, "weight {weight}");
    }

    // Setting the same weight again reads, finds it in place and writes nothing.
    kube.clear_requests();
    let before = kube.object(Kind::HttpRoute, NS, ROUTE).expect("route");
    router.set_weight(100).await.expect("set weight again");
    assert_eq!(kube.requests(), [get(&path, 200)]);
    assert_eq!(kube.object(Kind::HttpRoute, NS, ROUTE), Some(before));
}

#[tokio::test]
async fn gateway_api_names_a_missing_backend() {
    let kube = FakeKube::start().await;
    let mut spec = route_spec();
    // Rule 0 loses its canary ref, rule 2 is renamed: payments-v3 is nowhere.
    spec["rules"][0]["backendRefs"]
        .as_array_mut()
        .expect("refs")
        .pop();
    spec["rules"][2]["backendRefs"][0]["name"] = json!("payments-v4");
    let stored = kube.put_http_route(NS, ROUTE, spec);
    let router = gateway_api(&kube, ROUTE);

    let error = router.set_weight(25).await.expect_err("no canary backend");
    let RouterError::MissingBackend { route, backend } = &error else {
        panic!("expected MissingBackend, got {error:?}");
    };
    assert_eq!(
        (route.as_str(), backend.as_str()),
        ("HTTPRoute shop/payments", "payments-v3")
    );
    assert_eq!(
        error.to_string(),
        "HTTPRoute shop/payments has no backendRef named `payments-v3` in any rule"
    );
    assert!(matches!(
        router.weight().await,
        Err(RouterError::MissingBackend { .. })
    ));
    // Read, refused, nothing written.
    let path = Kind::HttpRoute.path(NS, ROUTE);
    assert_eq!(kube.requests(), [get(&path, 200), get(&path, 200)]);
    assert_eq!(kube.object(Kind::HttpRoute, NS, ROUTE), Some(stored));
}

#[tokio::test]
async fn gateway_api_refuses_a_route_whose_rules_never_split() {
    let kube = FakeKube::start().await;
    kube.put_http_route(
        NS,
        ROUTE,
        json!({ "rules": [
            { "backendRefs": [{ "name": STABLE }] },
            { "backendRefs": [{ "name": CANARY_SERVICE }] },
        ] }),
    );
    let error = gateway_api(&kube, ROUTE)
        .set_weight(25)
        .await
        .expect_err("no rule splits");
    assert!(
        matches!(error, RouterError::NoSplitRule { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "HTTPRoute shop/payments has no rule whose backendRefs include both `payments-v2` and `payments-v3`"
    );
}

#[tokio::test]
async fn gateway_api_retries_after_a_concurrent_modification() {
    let kube = FakeKube::start().await;
    let initial = kube.put_http_route(NS, ROUTE, route_spec());
    let router = gateway_api(&kube, ROUTE);
    let path = Kind::HttpRoute.path(NS, ROUTE);
    // Someone else changes rule 1's timeout between the router's read and its patch.
    kube.interfere_once(|route| {
        route["spec"]["rules"][1]["timeouts"] = json!({ "request": "30s" });
    });

    router
        .set_weight(25)
        .await
        .expect("set weight after a retry");

    let mut expected = route_with(&initial, 75, 25);
    expected["spec"]["rules"][1]["timeouts"] = json!({ "request": "30s" });
    let stored = kube.object(Kind::HttpRoute, NS, ROUTE).expect("route");
    assert_eq!(unversioned(stored), expected);

    let requests = kube.requests();
    let shape: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.status))
        .collect();
    assert_eq!(
        shape,
        [
            ("GET", 200),
            ("PATCH", 409),
            ("GET", 200),
            ("PATCH", 200),
            ("GET", 200)
        ]
    );
    assert!(requests.iter().all(|r| r.path == path));
    // The first patch carried the version first read, the second the one read again.
    let sent_version = |r: &Recorded| r.body.as_ref().expect("body")[0].clone();
    assert_eq!(sent_version(&requests[1]), version_op(&version(&initial)));
    assert_ne!(sent_version(&requests[3]), sent_version(&requests[1]));
}

#[tokio::test]
async fn gateway_api_gives_up_when_every_write_conflicts() {
    let kube = FakeKube::start().await;
    kube.put_http_route(NS, ROUTE, route_spec());
    let router = gateway_api(&kube, ROUTE);
    kube.interfere(usize::MAX, |route| {
        route["metadata"]["labels"]["busy"] = json!("yes");
    });

    let error = router.set_weight(25).await.expect_err("conflicts");
    let RouterError::Conflict {
        object, attempts, ..
    } = &error
    else {
        panic!("expected Conflict, got {error:?}");
    };
    assert_eq!(
        (object.as_str(), *attempts),
        ("HTTPRoute shop/payments", ATTEMPTS)
    );
    let patches: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.status)
        .collect();
    assert_eq!(patches, vec![409; ATTEMPTS as usize]);
}

#[tokio::test]
async fn gateway_api_names_a_route_that_does_not_exist() {
    let kube = FakeKube::start().await;
    let error = gateway_api(&kube, "nope")
        .set_weight(25)
        .await
        .expect_err("no route");
    assert!(matches!(error, RouterError::NotFound { .. }), "{error:?}");
    assert_eq!(error.to_string(), "HTTPRoute shop/nope does not exist");
    assert_eq!(
        kube.requests(),
        [get(&Kind::HttpRoute.path(NS, "nope"), 404)]
    );
}

#[tokio::test]
async fn a_bad_kubeconfig_surfaces_from_set_weight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir
        .path()
        .join("missing.yaml")
        .to_string_lossy()
        .into_owned();
    // Building never fails ...
    let router = routers::build(
        "payments",
        &Canary::GatewayApi(GatewayApiCanary {
            namespace: NS.into(),
            route: ROUTE.into(),
            stable: STABLE.into(),
            canary: CANARY_SERVICE.into(),
            kubeconfig: Some(missing.clone()),
        }),
        &Strategy::Canary,
    );
    // ... the first call says what is wrong.
    let error = router.set_weight(25).await.expect_err("no kubeconfig");
    let RouterError::KubeConfig { kubeconfig, source } = &error else {
        panic!("expected KubeConfig, got {error:?}");
    };
    assert_eq!(*kubeconfig, format!("`{missing}`"));
    assert!(
        matches!(**source, KubeConfigError::Kubeconfig(_)),
        "{source:?}"
    );
}

fn ingress_spec() -> Value {
    json!({
        "ingressClassName": "nginx",
        "rules": [{
            "host": "shop.example",
            "http": { "paths": [{
                "path": "/pay",
                "pathType": "Prefix",
                "backend": { "service": { "name": CANARY_SERVICE, "port": { "number": 8080 } } },
            }] },
        }],
    })
}

fn annotation(kube: &FakeKube, ingress: &str, name: &str) -> Option<String> {
    let stored = kube.object(Kind::Ingress, NS, ingress).expect("ingress");
    stored["metadata"]["annotations"][name]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn nginx_ingress_sets_the_canary_weight_annotation() {
    let kube = FakeKube::start().await;
    let initial = kube.put_ingress(
        NS,
        INGRESS,
        json!({ CANARY: "true", "nginx.ingress.kubernetes.io/proxy-body-size": "8m" }),
        ingress_spec(),
    );
    let router = nginx_ingress(&kube, INGRESS);
    let path = Kind::Ingress.path(NS, INGRESS);

    // No canary-weight annotation yet: no traffic.
    assert_eq!(router.weight().await.expect("weight"), 0);

    for weight in [25, 0, 100] {
        kube.clear_requests();
        let before = kube.object(Kind::Ingress, NS, INGRESS).expect("ingress");
        router.set_weight(weight).await.expect("set weight");

        let mut expected = unversioned(initial.clone());
        expected["metadata"]["annotations"][CANARY_WEIGHT] = json!(weight.to_string());
        let stored = kube.object(Kind::Ingress, NS, INGRESS).expect("ingress");
        assert_eq!(unversioned(stored), expected, "weight {weight}");
        assert_eq!(router.weight().await.expect("weight"), weight);

        let body = json!({ "metadata": {
            "resourceVersion": version(&before),
            "annotations": { CANARY_WEIGHT: weight.to_string() },
        } });
        assert_eq!(
            kube.requests(),
            [
                get(&path, 200),
                patch(&path, MERGE_PATCH, body, 200),
                get(&path, 200),
                get(&path, 200), // weight()
            ],
            "weight {weight}"
        );
    }

    kube.clear_requests();
    router.set_weight(100).await.expect("set weight again");
    assert_eq!(kube.requests(), [get(&path, 200)]);
}

#[tokio::test]
async fn nginx_ingress_scales_to_the_weight_total() {
    let kube = FakeKube::start().await;
    kube.put_ingress(
        NS,
        INGRESS,
        json!({ CANARY: "true", CANARY_WEIGHT_TOTAL: "1000" }),
        ingress_spec(),
    );
    let router = nginx_ingress(&kube, INGRESS);
    router.set_weight(25).await.expect("set weight");
    assert_eq!(
        annotation(&kube, INGRESS, CANARY_WEIGHT).as_deref(),
        Some("250")
    );
    assert_eq!(router.weight().await.expect("weight"), 25);
}

#[tokio::test]
async fn nginx_ingress_refuses_an_ingress_that_is_not_a_canary() {
    let kube = FakeKube::start().await;
    kube.put_ingress(NS, "payments", json!({}), ingress_spec());
    kube.put_ingress(
        NS,
        "payments-off",
        json!({ CANARY: "false" }),
        ingress_spec(),
    );

    let error = nginx_ingress(&kube, "payments")
        .set_weight(25)
        .await
        .expect_err("not a canary");
    let RouterError::NotCanary { ingress, found } = &error else {
        panic!("expected NotCanary, got {error:?}");
    };
    assert_eq!(
        (ingress.as_str(), found.as_str()),
        ("Ingress shop/payments", "absent")
    );
    assert_eq!(
        error.to_string(),
        "Ingress shop/payments is not a canary Ingress: its annotation \
         `nginx.ingress.kubernetes.io/canary` is absent, not \"true\" \
         (creating the canary Ingress is the operator's job)"
    );

    let error = nginx_ingress(&kube, "payments-off")
        .set_weight(25)
        .await
        .expect_err("not a canary");
    assert!(
        matches!(&error, RouterError::NotCanary { found, .. } if found == "\"false\""),
        "{error:?}"
    );
    // Read, refused, nothing written.
    assert!(kube.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(annotation(&kube, "payments", CANARY_WEIGHT), None);
    assert_eq!(annotation(&kube, "payments-off", CANARY_WEIGHT), None);
}

#[tokio::test]
async fn nginx_ingress_checks_the_canary_again_after_a_conflict() {
    let kube = FakeKube::start().await;
    kube.put_ingress(NS, INGRESS, json!({ CANARY: "true" }), ingress_spec());
    // Between the router's read and its patch, someone turns the canary off: the
    // patch conflicts, and the second read sees it is no canary any more.
    kube.interfere_once(|ingress| {
        ingress["metadata"]["annotations"][CANARY] = json!("false");
    });
    let error = nginx_ingress(&kube, INGRESS)
        .set_weight(25)
        .await
        .expect_err("not a canary any more");
    assert!(matches!(error, RouterError::NotCanary { .. }), "{error:?}");
    let shape: Vec<_> = kube
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        shape,
        [
            ("GET".into(), 200),
            ("PATCH".into(), 409),
            ("GET".into(), 200)
        ]
    );
    assert_eq!(annotation(&kube, INGRESS, CANARY_WEIGHT), None);
}

#[tokio::test]
async fn nginx_ingress_names_an_ingress_that_does_not_exist() {
    let kube = FakeKube::start().await;
    let router = nginx_ingress(&kube, "nope");
    let error = router.set_weight(25).await.expect_err("no ingress");
    assert!(matches!(error, RouterError::NotFound { .. }), "{error:?}");
    assert_eq!(error.to_string(), "Ingress shop/nope does not exist");
    let error = router.weight().await.expect_err("no ingress");
    assert_eq!(error.to_string(), "Ingress shop/nope does not exist");
    assert_eq!(
        kube.requests(),
        [
            get(&Kind::Ingress.path(NS, "nope"), 404),
            get(&Kind::Ingress.path(NS, "nope"), 404)
        ]
    );
}
