//! A fake Kubernetes API server for the Gateway API and NGINX ingress routers: no
//! cluster runs in CI, so the routers talk to this instead, through a real `kube`
//! client configured by a real kubeconfig (plain HTTP on a loopback port, a bearer
//! token user).
//!
//! It serves exactly what the routers use — `GET`, `PATCH` and `PUT` of one HTTPRoute
//! (`/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{name}`) and `GET`
//! and `PATCH` of one Ingress (`/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}`)
//! — and behaves like the API server where the routers depend on it:
//!
//! - objects live in memory; every write bumps `metadata.resourceVersion` (one counter
//!   for all objects, as etcd's revision);
//! - `PATCH` applies JSON patches (`application/json-patch+json`) and JSON merge patches
//!   (`application/merge-patch+json`) for real, with the `json-patch` crate; other patch
//!   types answer 415 (HTTPRoute is a custom resource: no strategic merge);
//! - a patched or replaced object whose resourceVersion differs from the stored one
//!   answers 409 Conflict (how the API server treats a resourceVersion in a write), a
//!   `PUT` without one 422, a patch that cannot be applied (a failed `test`, a missing
//!   path) 422;
//! - an unknown object answers 404, errors carry a `Status` body as Kubernetes sends it;
//! - every request (method, path, query, content type, authorization, body) is
//!   recorded, so tests check the exact calls; anything else answers 404 and is
//!   recorded too.
//!
//! [`FakeKube::interfere_once`] simulates another writer: it changes the object right
//! before the next write arrives, so that write's resourceVersion is stale.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use switchyard_testkit::http::{serve, Served};

/// The bearer token of the kubeconfig's user.
pub const TOKEN: &str = "fake-kube-token";

/// A throwaway self-signed CA (its key was discarded). The fake speaks plain HTTP, but
/// the `kube` client builds its TLS configuration anyway and, without a CA in the
/// kubeconfig, loads the host's CA store — and fails where there is none. Naming this
/// one keeps the tests independent of the machine.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUZr6UVtMKFtJsJswNQyk58k1lLoYwCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXc3dpdGNoeWFyZCBmYWtlIGt1YmUgQ0EwIBcNMjYxMTIyMDUy
NjE4WhgPMjEyNjEwMjkwNTI2MThaMCIxIDAeBgNVBAMMF3N3aXRjaHlhcmQgZmFr
ZSBrdWJlIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/su1b6n/VXiuQPdf
tbVYdIU7bldTMnf9qqHspr3k99eQNApkEuk2StjcuKZz5X8NnTrFASLObStqEVDG
x6N/SqNTMFEwHQYDVR0OBBYEFPnFIVsxueXWMezWVDpPiFVuEyVDMB8GA1UdIwQY
MBaAFPnFIVsxueXWMezWVDpPiFVuEyVDMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDRwAwRAIgP/se8lN9w+fZQSmeVcXn/sXXZ/RYyVsk93CvEc5BW5sCIH0I
4g9SyApFIm7CJSwZo48njVtO5UqAP488TN4FAFUu
-----END CERTIFICATE-----
";

/// The kinds of object the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `gateway.networking.k8s.io/v1` `HTTPRoute`.
    HttpRoute,
    /// `networking.k8s.io/v1` `Ingress`.
    Ingress,
}

impl Kind {
    fn group(self) -> &'static str {
        match self {
            Kind::HttpRoute => "gateway.networking.k8s.io",
            Kind::Ingress => "networking.k8s.io",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::HttpRoute => "httproutes",
            Kind::Ingress => "ingresses",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::HttpRoute => "HTTPRoute",
            Kind::Ingress => "Ingress",
        }
    }

    /// The object's path: `/apis/<group>/v1/namespaces/<ns>/<plural>/<name>`.
    pub fn path(self, namespace: &str, name: &str) -> String {
        format!(
            "/apis/{}/v1/namespaces/{namespace}/{}/{name}",
            self.group(),
            self.plural()
        )
    }

    fn methods(self) -> &'static [Method] {
        match self {
            Kind::HttpRoute => &[Method::GET, Method::PATCH, Method::PUT],
            Kind::Ingress => &[Method::GET, Method::PATCH],
        }
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's `name=value` pairs in order (empty ones, as `?&a=b` has, dropped;
    /// not percent-decoded).
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The body as JSON (`None` when empty; a string when not JSON).
    pub body: Option<Value>,
    /// The status answered.
    pub status: u16,
}

/// Another writer: how many more writes it precedes, and what it changes.
type Interference = (usize, Box<dyn FnMut(&mut Value) + Send>);

#[derive(Default)]
struct Store {
    objects: HashMap<(Kind, String, String), Value>,
    revision: u64,
    requests: Vec<Recorded>,
    interference: Option<Interference>,
}

impl Store {
    /// The next resourceVersion.
    fn next_version(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }
}

type Shared = Arc<Mutex<Store>>;

fn lock(store: &Shared) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake API server and a kubeconfig pointing at it; stopped on drop.
pub struct FakeKube {
    addr: SocketAddr,
    store: Shared,
    kubeconfig: PathBuf,
    _served: Served,
    _dir: tempfile::TempDir,
}

impl FakeKube {
    /// Starts the fake on a free loopback port, with no objects, and writes a
    /// kubeconfig for it.
    pub async fn start() -> FakeKube {
        let store = Shared::default();
        lock(&store).revision = 100;
        let mut app = Router::new();
        for kind in [Kind::HttpRoute, Kind::Ingress] {
            let path = format!(
                "/apis/{}/v1/namespaces/{{namespace}}/{}/{{name}}",
                kind.group(),
                kind.plural()
            );
            app = app.route(
                &path,
                any(
                    move |state: State<Shared>,
                          path: Path<(String, String)>,
                          method: Method,
                          uri: Uri,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        handle(kind, state, path, method, uri, headers, body)
                    },
                ),
            );
        }
        let app = app
            .fallback(
                |State(store): State<Shared>,
                 method: Method,
                 uri: Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let (code, response) = status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("the fake serves no {method} {}", uri.path()),
                    );
                    record(&store, &method, &uri, &headers, &body, code);
                    (code, Json(response))
                },
            )
            .with_state(store.clone());
        let served = serve(app).await;
        let addr = served.addr();
        let dir = tempfile::tempdir().expect("temp dir for the kubeconfig");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, CA_PEM).expect("write ca.pem");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        std::fs::write(&kubeconfig, render_kubeconfig(addr, &ca)).expect("write kubeconfig");
        FakeKube {
            addr,
            store,
            kubeconfig,
            _served: served,
            _dir: dir,
        }
    }

    /// The kubeconfig's path, as a plan's `kubeconfig` field takes it.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig.to_string_lossy().into_owned()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stores an HTTPRoute with `spec` (and a fresh resourceVersion); returns it.
    pub fn put_http_route(&self, namespace: &str, name: &str, spec: Value) -> Value {
        self.put(Kind::HttpRoute, namespace, name, json!({}), spec)
    }

    /// Stores an Ingress with `annotations` and `spec`; returns it.
    pub fn put_ingress(
        &self,
        namespace: &str,
        name: &str,
        annotations: Value,
        spec: Value,
    ) -> Value {
        self.put(
            Kind::Ingress,
            namespace,
            name,
            json!({ "annotations": annotations }),
            spec,
        )
    }

    fn put(&self, kind: Kind, namespace: &str, name: &str, metadata: Value, spec: Value) -> Value {
        let mut store = lock(&self.store);
        let mut object = json!({
            "apiVersion": format!("{}/v1", kind.group()),
            "kind": kind.name(),
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": format!("uid-{name}"),
                "generation": 1,
                "resourceVersion": store.next_version(),
                "labels": { "app": name },
            },
            "spec": spec,
        });
        json_patch::merge(&mut object["metadata"], &metadata);
        store.objects.insert(
            (kind, namespace.to_owned(), name.to_owned()),
            object.clone(),
        );
        object
    }

    /// The object as stored now.
    pub fn object(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.store)
            .objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.store).requests.clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.store).requests.clear();
    }

    /// Right before the next `PATCH` or `PUT` of an existing object is handled, `change`
    /// is applied to that object and its resourceVersion bumped — as if someone else had
    /// written it between the router's read and its write.
    pub fn interfere_once(&self, change: impl FnMut(&mut Value) + Send + 'static) {
        self.interfere(1, change);
    }

    /// Like [`FakeKube::interfere_once`], before each of the next `writes` writes.
    pub fn interfere(&self, writes: usize, change: impl FnMut(&mut Value) + Send + 'static) {
        lock(&self.store).interference = Some((writes, Box::new(change)));
    }
}

fn render_kubeconfig(addr: SocketAddr, ca: &std::path::Path) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: http://{addr}
      certificate-authority: {ca}
contexts:
  - name: fake
    context:
      cluster: fake
      user: switchyard-test
      namespace: default
current-context: fake
users:
  - name: switchyard-test
    user:
      token: {TOKEN}
",
        ca = ca.display()
    )
}

fn handle(
    kind: Kind,
    State(store): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (code, response) = answer(kind, &store, &namespace, &name, &method, &headers, &body);
    record(&store, &method, &uri, &headers, &body, code);
    (code, Json(response)).into_response()
}

fn record(
    store: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    code: StatusCode,
) {
    let text = |name| {
        headers
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    };
    let body = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
        )
    };
    lock(store).requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        content_type: text(header::CONTENT_TYPE),
        authorization: text(header::AUTHORIZATION),
        body,
        status: code.as_u16(),
    });
}

/// The status and body for one request to `kind` `namespace/name`.
fn answer(
    kind: Kind,
    store: &Shared,
    namespace: &str,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> (StatusCode, Value) {
    let resource = format!("{}.{}", kind.plural(), kind.group());
    if !kind.methods().contains(method) {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the fake serves no {method} of {resource}"),
        );
    }
    let mut store = lock(store);
    let key = (kind, namespace.to_owned(), name.to_owned());
    if !store.objects.contains_key(&key) {
        let (code, mut body) = status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
        );
        body["details"] = json!({ "name": name, "group": kind.group(), "kind": kind.plural() });
        return (code, body);
    }
    if *method == Method::GET {
        return (StatusCode::OK, store.objects[&key].clone());
    }
    // A write: first let the interfering writer in, if a test asked for one.
    if let Some((writes, mut change)) = store.interference.take() {
        let version = store.next_version();
        let object = store.objects.get_mut(&key).expect("checked above");
        change(object);
        object["metadata"]["resourceVersion"] = Value::from(version);
        if writes > 1 {
            store.interference = Some((writes - 1, change));
        }
    }
    let stored = store.objects[&key].clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let Ok(sent) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON".into(),
        );
    };
    let updated = if *method == Method::PUT {
        if sent.pointer("/metadata/resourceVersion").is_none() {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("{resource} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"),
            );
        }
        sent
    } else {
        let mut patched = stored.clone();
        match content_type.as_str() {
            "application/json-patch+json" => {
                let patch: json_patch::Patch = match serde_json::from_value(sent) {
                    Ok(patch) => patch,
                    Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
                };
                if let Err(e) = json_patch::patch(&mut patched, &patch) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string());
                }
            }
            "application/merge-patch+json" => json_patch::merge(&mut patched, &sent),
            other => {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!("the fake applies no patch of type `{other}`"),
                )
            }
        }
        patched
    };
    if updated.pointer("/metadata/resourceVersion") != stored.pointer("/metadata/resourceVersion") {
        let (code, mut body) = status(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        );
        body["details"] = json!({ "name": name, "group": kind.group(), "kind": kind.plural() });
        return (code, body);
    }
    let mut updated = updated;
    updated["metadata"]["resourceVersion"] = Value::from(store.next_version());
    store.objects.insert(key, updated.clone());
    (StatusCode::OK, updated)
}

/// A `Status` body as the API server sends with an error.
fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, Value) {
    (
        code,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}
