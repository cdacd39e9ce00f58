use super::*;
use crate::environments::Change;
use crate::state::AppState;
use crate::Server;
use switchyard_core::{Flag, Segment};

fn flag(value: Value) -> Flag {
    serde_json::from_value(value).expect("flag")
}

fn boolean(key: &str) -> Flag {
    flag(json!({
        "key": key, "kind": "boolean", "variants": {"on": true, "off": false},
        "off_variant": "off", "default": {"variant": "off"}
    }))
}

fn segment(key: &str, group: &str) -> Segment {
    serde_json::from_value(json!({"key": key, "when": {"groups": [group]}})).expect("segment")
}

fn compile(flags: Vec<Flag>, segments: Vec<Segment>) -> Snapshot {
    Snapshot::compile(flags, segments).expect("compiles")
}

#[test]
fn integers_are_whole_numbers_that_fit_64_bits() {
    let cases = [
        (json!(3), Some(3)),
        (json!(-3), Some(-3)),
        (json!(3.0), Some(3)),
        (json!(i64::MAX), Some(i64::MAX)),
        (json!(2.5), None),
        (json!(u64::MAX), None),
        (json!(1e300), None),
        (json!("3"), None),
        (json!(true), None),
    ];
    for (value, expected) in cases {
        assert_eq!(integer(&value), expected, "{value}");
    }
}

#[test]
fn groups_may_be_one_comma_separated_string() {
    let object = convert::json_to_struct(
        json!({"targetingKey": "u", "groups": "beta, staff,,"})
            .as_object()
            .expect("object"),
    );
    let ctx = flagd_context(Some(object)).expect("valid");
    assert_eq!(ctx.groups(), ["beta", "staff"]);
    let object = convert::json_to_struct(json!({"groups": ["a,b"]}).as_object().expect("object"));
    assert_eq!(
        flagd_context(Some(object)).expect("valid").groups(),
        ["a,b"]
    );
    let object = convert::json_to_struct(json!({"groups": 3}).as_object().expect("object"));
    let status = flagd_context(Some(object)).expect_err("not groups");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        flagd_context(None).expect("anonymous").targeting_key(),
        None
    );
}

#[test]
fn error_codes_map_to_flagds_statuses() {
    let env = EnvName::new("prod");
    let cases = [
        (ErrorCode::FlagNotFound, tonic::Code::NotFound),
        (ErrorCode::TypeMismatch, tonic::Code::InvalidArgument),
        (ErrorCode::InvalidContext, tonic::Code::InvalidArgument),
        (ErrorCode::ParseError, tonic::Code::DataLoss),
        (ErrorCode::General, tonic::Code::Unknown),
    ];
    for (code, status) in cases {
        assert_eq!(failure(code, "f", &env).code(), status, "{code:?}");
    }
}

#[test]
fn changes_list_writes_updates_deletes_and_dependents() {
    let mut uses_segment = boolean("uses-segment");
    uses_segment.rules = serde_json::from_value(json!([
        {"id": "r", "when": {"segments": ["staff"]}, "serve": {"variant": "on"}}
    ]))
    .expect("rules");
    let mut child = boolean("child");
    child.prerequisites = serde_json::from_value(json!([{"flag": "parent", "variant": "on"}]))
        .expect("prerequisites");
    let mut grandchild = boolean("grandchild");
    grandchild.prerequisites =
        serde_json::from_value(json!([{"flag": "child", "variant": "on"}])).expect("prerequisites");
    let old = compile(
        vec![
            boolean("same"),
            boolean("gone"),
            boolean("parent"),
            child.clone(),
            grandchild.clone(),
            uses_segment.clone(),
        ],
        vec![segment("staff", "staff")],
    );

    let mut killed = boolean("parent");
    killed.enabled = false;
    let new = compile(
        vec![
            boolean("same"),
            killed,
            child,
            grandchild,
            uses_segment.clone(),
            boolean("fresh"),
        ],
        vec![segment("staff", "staff")],
    );
    let expected: BTreeMap<String, &str> = [
        ("child", UPDATE),
        ("fresh", WRITE),
        ("gone", DELETE),
        ("grandchild", UPDATE),
        ("parent", UPDATE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(changed_flags(&old, &new), expected);

    // A segment change touches the flags that use it, and nothing else.
    let resegmented = compile(
        vec![boolean("same"), uses_segment],
        vec![segment("staff", "employees")],
    );
    let before = compile(
        vec![
            boolean("same"),
            resegmented.flag("uses-segment").cloned().expect("flag"),
        ],
        vec![segment("staff", "staff")],
    );
    let expected: BTreeMap<String, &str> =
        [("uses-segment".to_owned(), UPDATE)].into_iter().collect();
    assert_eq!(changed_flags(&before, &resegmented), expected);
    assert!(changed_flags(&before, &before).is_empty());
}

/// A server state with an empty `prod` and `dev`.
async fn state(dir: &std::path::Path) -> AppState {
    let server = Server::open_embedded(dir, Some("admin"))
        .await
        .expect("server loads");
    let state = server.state.clone();
    for env in ["prod", "dev"] {
        state
            .envs
            .create(&EnvName::new(env), "test")
            .await
            .expect("env created");
    }
    state
}

async fn put(state: &AppState, env: &str, flag: Flag) {
    state
        .envs
        .apply(env, |_| {
            Ok(Change {
                flags: vec![(flag.key.clone(), Some(flag.clone()))],
                ..Change::default()
            })
        })
        .await
        .expect("write");
}

async fn next(events: &mut Events) -> Option<(String, Option<Value>)> {
    let next = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event in time");
    next.map(|e| {
        let data = e.data.map(|d| Value::Object(convert::struct_to_json(&d)));
        (e.kind.to_owned(), data)
    })
}

fn events(
    state: &AppState,
    changes: broadcast::Receiver<Arc<ChangeEvent>>,
    shutdown: watch::Receiver<bool>,
    keep_alive: Duration,
) -> Events {
    let known = state.envs.get("prod").expect("prod");
    Events::new(
        Arc::clone(&state.envs),
        known,
        changes,
        shutdown,
        None,
        keep_alive,
    )
}

#[tokio::test]
async fn stream_reports_its_environments_changes_and_catches_up_after_lagging() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state(dir.path()).await;
    let (_stop, shutdown) = watch::channel(false);
    let long = Duration::from_secs(3600);
    let mut stream = events(&state, state.envs.subscribe(), shutdown.clone(), long);
    assert_eq!(
        next(&mut stream).await,
        Some((PROVIDER_READY.to_owned(), None))
    );
    put(&state, "dev", boolean("elsewhere")).await;
    put(&state, "prod", boolean("here")).await;
    assert_eq!(
        next(&mut stream).await,
        Some((
            CONFIGURATION_CHANGE.to_owned(),
            Some(json!({"flags": {"here": {"type": "write"}}}))
        ))
    );

    // A receiver that lagged learns everything from the state at once.
    let (tx, rx) = broadcast::channel(1);
    let mut lagging = events(&state, rx, shutdown, long);
    assert_eq!(
        next(&mut lagging).await.map(|e| e.0),
        Some(PROVIDER_READY.to_owned())
    );
    put(&state, "prod", boolean("one")).await;
    put(&state, "prod", boolean("two")).await;
    let current = state.envs.get("prod").expect("prod");
    for revision in [current.revision - 1, current.revision] {
        let _ = tx.send(Arc::new(ChangeEvent {
            env: EnvName::new("prod"),
            revision,
            document: bytes::Bytes::new(),
        }));
    }
    assert_eq!(
        next(&mut lagging).await,
        Some((
            CONFIGURATION_CHANGE.to_owned(),
            Some(json!({"flags": {"one": {"type": "write"}, "two": {"type": "write"}}}))
        ))
    );
    drop(tx);
    assert_eq!(next(&mut lagging).await, None, "a closed channel ends it");
}

#[tokio::test]
async fn an_idle_stream_keeps_alive_and_shutdown_ends_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = state(dir.path()).await;
    let (stop, shutdown) = watch::channel(false);
    let mut stream = events(
        &state,
        state.envs.subscribe(),
        shutdown,
        Duration::from_millis(1),
    );
    assert_eq!(
        next(&mut stream).await.map(|e| e.0),
        Some(PROVIDER_READY.to_owned())
    );
    assert_eq!(
        next(&mut stream).await,
        Some((KEEP_ALIVE_EVENT.to_owned(), None))
    );
    stop.send(true).expect("sent");
    assert_eq!(
        next(&mut stream).await,
        Some((PROVIDER_SHUTDOWN.to_owned(), Some(json!({}))))
    );
    assert_eq!(next(&mut stream).await, None);
}
