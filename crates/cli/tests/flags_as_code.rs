//! The `switchyard` CLI against a real `switchyard-server` process: flags as code
//! (export → plan → edit → plan → apply → apply again, pruning, invalid files writing
//! nothing, a stale revision refused, a write landing between the CLI's read and its
//! batch refused by the server's `If-Match`), the everyday commands, evaluation over
//! HTTPS with `--ca-file`, and scheduled changes.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use support::{cli, cli_at};
use switchyard_core::admin::ApplyBody;
use switchyard_core::model::Serve;
use switchyard_core::{Flag, Segment};
use switchyard_sdk::admin::AdminClient;
use switchyard_testkit::server_process::{ServerProcess, ADMIN};

const ENV: &str = "production";

/// A server with `production` holding two flags and a segment.
async fn seeded() -> (ServerProcess, AdminClient, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(data.path()).await;
    let admin = AdminClient::new(&server.base, ADMIN).expect("admin client");
    admin.create_env(ENV).await.expect("env");
    let segment: Segment = serde_json::from_value(json!({
        "key": "beta-testers",
        "when": { "groups": ["beta"] },
    }))
    .expect("segment JSON");
    admin.put_segment(ENV, &segment).await.expect("segment");
    for key in ["checkout", "search"] {
        let flag: Flag = serde_json::from_value(json!({
            "key": key,
            "kind": "boolean",
            "variants": { "on": true, "off": false },
            "off_variant": "off",
            "rules": [ { "id": "beta", "when": { "segments": ["beta-testers"] }, "serve": { "variant": "on" } } ],
            "default": { "variant": "off" },
        }))
        .expect("flag JSON");
        admin.put_flag(ENV, &flag, None).await.expect("flag");
    }
    (server, admin, data)
}

/// Edits the YAML file at `path` through `edit`.
fn edit(path: &Path, edit: impl FnOnce(&mut Value)) {
    let text = std::fs::read_to_string(path).expect("read file");
    let mut value: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    edit(&mut value);
    std::fs::write(path, serde_yaml_ng::to_string(&value).expect("YAML")).expect("write file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_plan_edit_apply_and_apply_again() {
    let (server, admin, _data) = seeded().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dir.path().to_str().expect("UTF-8");

    let (code, _, err) = cli(&server, &["export", "--env", ENV, "-f", files]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exported `production`: 3 file(s)"), "{err}");
    let checkout = dir.path().join("flags/checkout.yaml");
    let exported = std::fs::read_to_string(&checkout).expect("flags/checkout.yaml");
    assert!(!exported.contains("version"), "{exported}");
    assert!(dir.path().join("segments/beta-testers.yaml").is_file());

    let (code, out, err) = cli(&server, &["plan", "-f", files, "--env", ENV]).await;
    assert_eq!(code, 0, "nothing to change:\n{out}{err}");
    assert!(out.contains("No changes: `production`"), "{out}");

    // One field changed, one flag added.
    edit(&checkout, |flag| {
        flag["default"] = json!({ "variant": "on" })
    });
    let added = std::fs::read_to_string(dir.path().join("flags/search.yaml"))
        .expect("search")
        .replace("key: search", "key: new-search");
    std::fs::write(dir.path().join("flags/new-search.yaml"), added).expect("write");
    let (code, out, err) = cli(&server, &["plan", "-f", files, "--env", ENV]).await;
    assert_eq!(code, 2, "changes:\n{out}{err}");
    for line in [
        "+ flag new-search (create)",
        "~ flag checkout",
        "    default.variant: \"off\" → \"on\"",
        "1 to create, 1 to change, 0 to delete.",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    assert_eq!(
        out.lines().filter(|l| l.starts_with("    ")).count(),
        1,
        "exactly that field:\n{out}"
    );

    let (code, out, err) = cli(
        &server,
        &["apply", "-f", files, "--env", ENV, "--reason", "PR #12"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(1 created, 1 changed, 0 deleted)"), "{out}");
    let flag = admin.flag(ENV, "checkout").await.unwrap().unwrap().value;
    assert_eq!(flag.default, Serve::Variant("on".into()));
    assert!(admin.flag(ENV, "new-search").await.unwrap().is_some());
    // One audit entry per flag, each naming the batch.
    let batch = out
        .split("as batch ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("the batch id")
        .to_owned();
    let audit = admin.audit(&format!("env={ENV}&limit=5")).await.unwrap();
    let named: Vec<&Value> = audit
        .iter()
        .filter(|e| e["reason"] == json!(format!("batch {batch}: PR #12")))
        .collect();
    assert_eq!(named.len(), 2, "{audit:#?}");

    // Applying the same files again changes nothing.
    let revision = admin.revision(ENV).await.unwrap();
    let (code, out, _) = cli(&server, &["apply", "-f", files, "--env", ENV]).await;
    assert_eq!(code, 0);
    assert!(out.contains("No changes"), "{out}");
    assert_eq!(admin.revision(ENV).await.unwrap(), revision);

    // A file removed: left alone, unless pruned.
    std::fs::remove_file(dir.path().join("flags/new-search.yaml")).expect("rm");
    let (code, out, _) = cli(&server, &["plan", "-f", files, "--env", ENV]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("not in the files, left alone (`--prune` deletes them): flag new-search"),
        "{out}"
    );
    let (code, out, _) = cli(
        &server,
        &["plan", "-f", files, "--env", ENV, "--prune", "-o", "json"],
    )
    .await;
    assert_eq!(code, 2, "{out}");
    let plan: Value = serde_json::from_str(&out).expect("JSON plan");
    assert_eq!(
        plan["deleted"],
        json!([{ "kind": "flag", "key": "new-search" }])
    );
    let (code, out, err) = cli(&server, &["apply", "-f", files, "--env", ENV, "--prune"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(admin.flag(ENV, "new-search").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_set_writes_nothing_and_a_stale_revision_is_refused() {
    let (server, admin, _data) = seeded().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dir.path().to_str().expect("UTF-8");
    let (code, _, err) = cli(&server, &["export", "--env", ENV, "-f", files]).await;
    assert_eq!(code, 0, "{err}");
    let revision = admin.revision(ENV).await.unwrap();

    // A valid change beside an invalid file: refused before anything is sent.
    edit(&dir.path().join("flags/search.yaml"), |f| {
        f["description"] = json!("valid change")
    });
    edit(&dir.path().join("flags/checkout.yaml"), |f| {
        f["default"] = json!({ "variant": "maybe" })
    });
    let (code, out, err) = cli(&server, &["apply", "-f", files, "--env", ENV]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("flags/checkout.yaml: default"), "{err}");
    assert!(err.contains("maybe"), "{err}");
    assert_eq!(
        admin.revision(ENV).await.unwrap(),
        revision,
        "nothing written"
    );

    // Valid on its own, invalid with the rest (a segment nobody has): the server
    // refuses the whole batch, and the CLI names the file.
    edit(&dir.path().join("flags/checkout.yaml"), |f| {
        f["default"] = json!({ "variant": "off" });
        f["rules"][0]["when"]["segments"] = json!(["nobody"]);
    });
    let (code, out, err) = cli(&server, &["apply", "-f", files, "--env", ENV]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("flags/checkout.yaml"), "{err}");
    assert!(err.contains("nobody"), "{err}");
    assert_eq!(
        admin.revision(ENV).await.unwrap(),
        revision,
        "nothing written"
    );
    let search = admin.flag(ENV, "search").await.unwrap().unwrap().value;
    assert_eq!(
        search.description, "",
        "the valid change was not written either"
    );

    // A reviewed plan's revision: someone writes in between, the apply is refused.
    edit(&dir.path().join("flags/checkout.yaml"), |f| {
        f["rules"][0]["when"]["segments"] = json!(["beta-testers"]);
    });
    let (code, out, _) = cli(&server, &["plan", "-f", files, "--env", ENV, "-o", "json"]).await;
    assert_eq!(code, 2, "{out}");
    let reviewed = serde_json::from_str::<Value>(&out).expect("JSON")["revision"].to_string();
    admin
        .kill(ENV, "checkout", "meanwhile")
        .await
        .expect("kill");
    let (code, out, err) = cli(
        &server,
        &["apply", "-f", files, "--env", ENV, "--revision", &reviewed],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("environment `production` changed while this plan was made"),
        "{err}"
    );
    assert_eq!(search.description, "");
    // The server's side of it: a batch at another revision is 412, nothing written.
    let stale = admin
        .apply(ENV, &ApplyBody::default(), Some(revision.unwrap_or(0)))
        .await
        .expect_err("stale revision");
    assert!(
        matches!(stale, switchyard_sdk::Error::Api { status: 412, .. }),
        "{stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_commands_print_tables_and_json() {
    let (server, admin, _data) = seeded().await;

    let revision = admin.revision(ENV).await.unwrap().expect("revision");
    let (code, out, _) = cli(&server, &["envs", "list"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("NAME        REVISION  FLAGS\nproduction  {revision:<8}  2\n")
    );
    let (code, out, _) = cli(&server, &["envs", "list", "-o", "yaml"]).await;
    assert_eq!(code, 0);
    let envs: Value = serde_yaml_ng::from_str(&out).expect("YAML");
    assert_eq!(
        envs,
        json!([{ "name": "production", "revision": revision, "flags": 2 }]),
        "{out}"
    );

    let (code, out, _) = cli(&server, &["flags", "list", "--env", ENV]).await;
    assert_eq!(code, 0);
    assert!(out.contains("checkout  on"), "{out}");

    let (code, out, err) = cli(&server, &["flags", "ramp", "checkout", "25", "--env", ENV]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now serves: on 25% / off 75%"), "{out}");
    let (code, out, _) = cli(
        &server,
        &["flags", "get", "checkout", "--env", ENV, "-o", "json"],
    )
    .await;
    assert_eq!(code, 0);
    let flag: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        flag["default"]["rollout"]["split"][0]["weight"], 25_000,
        "{flag}"
    );
    let (code, out, _) = cli(&server, &["flags", "ramp", "checkout", "0", "--env", ENV]).await;
    assert_eq!(code, 0);
    assert!(out.contains("now serves: off"), "{out}");
    let (code, _, err) = cli(&server, &["flags", "ramp", "checkout", "101", "--env", ENV]).await;
    assert_eq!(code, 3, "{err}");

    let (code, _, err) = cli(
        &server,
        &[
            "flags",
            "kill",
            "checkout",
            "--env",
            ENV,
            "--reason",
            "incident 7",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        !admin
            .flag(ENV, "checkout")
            .await
            .unwrap()
            .unwrap()
            .value
            .enabled
    );
    let (code, out, _) = cli(
        &server,
        &["audit", "--env", ENV, "--limit", "1", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0);
    let audit: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(audit[0]["action"], "flag.kill", "{audit}");
    assert_eq!(audit[0]["reason"], "incident 7", "{audit}");
    let (code, _, _) = cli(&server, &["flags", "revive", "checkout", "--env", ENV]).await;
    assert_eq!(code, 0);

    let (code, out, err) = cli(
        &server,
        &[
            "eval",
            "checkout",
            "--env",
            ENV,
            "--context",
            r#"{"targetingKey": "u-1", "groups": ["beta"]}"#,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    let evaluation = answer.get("evaluation").unwrap_or(&answer);
    assert_eq!(evaluation["variant"], "on", "{answer}");
    assert_eq!(evaluation["rule_id"], "beta", "{answer}");
    assert_eq!(evaluation["reason"], "TARGETING_MATCH", "{answer}");

    let (code, out, _) = cli(
        &server,
        &[
            "tokens",
            "create",
            "ci-reader",
            "--kind",
            "sdk",
            "--env",
            ENV,
            "--expires-in",
            "30d",
        ],
    )
    .await;
    assert_eq!(code, 0);
    let first = out.trim().to_owned();
    assert!(
        first.starts_with("swy_"),
        "the secret is printed once: {out}"
    );
    let (code, out, err) = cli(&server, &["tokens", "rotate", "ci-reader", "--grace", "1h"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.trim().starts_with("swy_") && out.trim() != first,
        "{out}"
    );
    assert!(
        err.contains("the old secret of `ci-reader` works until"),
        "{err}"
    );
    let (code, out, _) = cli(&server, &["tokens", "list"]).await;
    assert_eq!(code, 0);
    let row = out
        .lines()
        .find(|l| l.starts_with("ci-reader"))
        .unwrap_or_default();
    // Expires in 30 days (a date, not "never"); never used.
    assert!(
        !row.contains("never  ") && row.trim_end().ends_with("never"),
        "{out}"
    );
    let (code, _, _) = cli(&server, &["tokens", "revoke", "ci-reader"]).await;
    assert_eq!(code, 0);
    let (_, out, _) = cli(&server, &["tokens", "list"]).await;
    assert!(!out.contains("ci-reader"), "{out}");

    // Errors: a flag that does not exist, a missing token.
    let (code, _, err) = cli(&server, &["flags", "get", "nope", "--env", ENV]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("flag `nope` does not exist in `production`"),
        "{err}"
    );
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["envs", "list"])
        .env("SWITCHYARD_URL", &server.base)
        .env_remove("SWITCHYARD_TOKEN")
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SWITCHYARD_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_scheduled_listed_and_cancelled() {
    let (server, admin, _data) = seeded().await;
    let (code, out, err) = cli(
        &server,
        &[
            "schedule",
            "create",
            "checkout",
            "--env",
            ENV,
            "--at",
            "+1s",
            "--kill",
            "--reason",
            "campaign over",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let kill: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(kill["state"], "pending", "{kill}");
    let (code, out, _) = cli(
        &server,
        &[
            "schedule",
            "create",
            "search",
            "--env",
            ENV,
            "--at",
            "2099-01-01T00:00:00Z",
            "--ramp",
            "50",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let ramp_id = out
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("id")
        .to_owned();
    assert!(
        out.contains("2099-01-01 00:00:00") && out.contains("ramp 50%"),
        "{out}"
    );

    switchyard_testkit::eventually(
        std::time::Duration::from_secs(20),
        "the kill to be done",
        || async {
            let (_, out, _) = cli(&server, &["schedule", "list", "--env", ENV, "-o", "json"]).await;
            let list: Value = serde_json::from_str(&out).ok()?;
            let done = list.as_array()?.iter().find(|s| s["id"] == kill["id"])?["state"] == "done";
            done.then_some(())
        },
    )
    .await;
    assert!(
        !admin
            .flag(ENV, "checkout")
            .await
            .unwrap()
            .unwrap()
            .value
            .enabled
    );

    // Any edit: the flag as a file says, at the time.
    let (code, yaml, _) = cli(&server, &["flags", "get", "search", "--env", ENV]).await;
    assert_eq!(code, 0);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("search.yaml");
    std::fs::write(&file, yaml).expect("write");
    edit(&file, |f| {
        f["description"] = json!("scheduled edit");
        f["default"] = json!({ "variant": "on" });
    });
    let path = file.to_str().expect("UTF-8");
    let (code, out, err) = cli(
        &server,
        &[
            "schedule",
            "create",
            "search",
            "--env",
            ENV,
            "--at",
            "+1s",
            "--flag-file",
            path,
            "--reason",
            "launch",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let put: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(put["change"]["action"], "put", "{put}");
    assert_eq!(
        put["change"]["flag"]["description"], "scheduled edit",
        "{put}"
    );
    let done = switchyard_testkit::eventually(
        std::time::Duration::from_secs(20),
        "the edit to be done",
        || async {
            let list = admin.schedules(ENV).await.ok()?;
            let found = list.into_iter().find(|s| s.id == put["id"])?;
            (serde_json::to_value(&found.state).ok()?["state"] == "done").then_some(found)
        },
    )
    .await;
    let search = admin.flag(ENV, "search").await.unwrap().unwrap().value;
    assert_eq!(search.description, "scheduled edit", "{done:?}");
    assert_eq!(search.default, Serve::Variant("on".into()));
    let audit = admin.audit(&format!("env={ENV}&limit=50")).await.unwrap();
    let created: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "schedule.create")
        .collect();
    assert_eq!(
        created.len(),
        3,
        "kill, ramp and edit scheduled: {audit:#?}"
    );
    assert!(
        audit.iter().any(|e| e["action"] == "flag.put"
            && e["target"] == "search"
            && e["reason"] == json!(format!("scheduled change {}: launch", done.id))),
        "{audit:#?}"
    );
    // A file of another flag, or not a valid flag: refused before anything is sent.
    let (code, _, err) = cli(
        &server,
        &[
            "schedule",
            "create",
            "checkout",
            "--env",
            ENV,
            "--at",
            "+1h",
            "--flag-file",
            path,
        ],
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("its key `search` is not the flag `checkout`"),
        "{err}"
    );
    edit(&file, |f| f["default"] = json!({ "variant": "maybe" }));
    let (code, _, err) = cli(
        &server,
        &[
            "schedule",
            "create",
            "search",
            "--env",
            ENV,
            "--at",
            "+1h",
            "--flag-file",
            path,
        ],
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("{path}: default.variant")) && err.contains("maybe"),
        "{err}"
    );
    assert_eq!(
        admin.schedules(ENV).await.unwrap().len(),
        3,
        "nothing scheduled"
    );

    let (code, out, _) = cli(&server, &["schedule", "cancel", &ramp_id, "--env", ENV]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cancelled"), "{out}");
    let (code, _, err) = cli(&server, &["schedule", "cancel", &ramp_id, "--env", ENV]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no longer pending"), "{err}");
    let (code, _, err) = cli(
        &server,
        &[
            "schedule", "create", "search", "--env", ENV, "--at", "tomorrow", "--kill",
        ],
    )
    .await;
    assert_eq!(code, 3);
    assert!(err.contains("--at `tomorrow`"), "{err}");
    let (code, _, _) = cli(
        &server,
        &["schedule", "create", "search", "--env", ENV, "--at", "+1m"],
    )
    .await;
    assert_eq!(
        code, 3,
        "one of --kill, --revive, --ramp, --flag-file is required"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_follow_prints_every_entry_after_the_last_one_seen() {
    use tokio::io::AsyncReadExt as _;
    let (server, admin, _data) = seeded().await;
    // `--limit 1`: the first page is one entry; what follows must not be cut to it.
    let mut follow = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["audit", "--env", ENV, "--limit", "1", "--follow"])
        .env("SWITCHYARD_URL", &server.base)
        .env("SWITCHYARD_TOKEN", ADMIN)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the CLI runs");
    let printed = Arc::new(Mutex::new(String::new()));
    let mut stdout = follow.stdout.take().expect("stdout");
    let sink = Arc::clone(&printed);
    tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buffer).await {
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            sink.lock().expect("lock").push_str(&text);
        }
    });
    let shown = || printed.lock().expect("lock").clone();
    switchyard_testkit::eventually(
        std::time::Duration::from_secs(20),
        "the first page",
        || async { shown().contains("flag.put").then_some(()) },
    )
    .await;
    assert_eq!(
        shown().lines().count(),
        2,
        "a header and one entry: {}",
        shown()
    );

    // Six writes at once, most likely between two of its polls.
    for n in 0..3 {
        admin
            .kill(ENV, "checkout", &format!("burst {n}a"))
            .await
            .unwrap();
        admin
            .revive(ENV, "checkout", &format!("burst {n}b"))
            .await
            .unwrap();
    }
    let all = ["0a", "0b", "1a", "1b", "2a", "2b"];
    switchyard_testkit::eventually(
        std::time::Duration::from_secs(20),
        "every entry of the burst",
        || async {
            let text = shown();
            all.iter()
                .all(|n| text.contains(&format!("burst {n}")))
                .then_some(())
        },
    )
    .await;
    follow.kill().await.expect("stopped");
    let text = shown();
    for n in all {
        assert_eq!(
            text.matches(&format!("burst {n}\n")).count(),
            1,
            "each entry printed once:\n{text}"
        );
    }
    // In order: oldest first, as they were written.
    let at = |n: &str| text.find(&format!("burst {n}")).expect("printed");
    assert!(all.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
}

/// A proxy in front of the server that, when the CLI posts its batch, first writes to
/// the environment through the admin API (kills `search`) — a write landing between
/// the CLI's read and its POST — then forwards the batch unchanged, recording the
/// `If-Match` the CLI sent and the status the server answered.
#[derive(Clone)]
struct Interloper {
    server: String,
    admin: AdminClient,
    http: reqwest::Client,
    batches: Batches,
}

/// Each batch the CLI posted: the `If-Match` it sent and the status the server answered.
type Batches = Arc<Mutex<Vec<(Option<String>, u16)>>>;

async fn interlope(
    axum::extract::State(proxy): axum::extract::State<Interloper>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let batch = parts.method == axum::http::Method::POST && parts.uri.path().ends_with("/apply");
    if batch {
        proxy
            .admin
            .kill(ENV, "search", "written meanwhile")
            .await
            .expect("the write in between");
    }
    let mut forwarded = proxy.http.request(
        parts.method.clone(),
        format!("{}{}", proxy.server, parts.uri),
    );
    for (name, value) in &parts.headers {
        if name != HOST && name != CONTENT_LENGTH {
            forwarded = forwarded.header(name, value);
        }
    }
    let answer = forwarded.body(body).send().await.expect("forwarded");
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.expect("answer body");
    if batch {
        let if_match = parts
            .headers
            .get("if-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        proxy
            .batches
            .lock()
            .expect("lock")
            .push((if_match, status.as_u16()));
    }
    let mut response = axum::response::Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != TRANSFER_ENCODING && name != CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_the_read_and_the_batch_loses_to_the_servers_if_match() {
    let (server, admin, _data) = seeded().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dir.path().to_str().expect("UTF-8");
    let (code, _, err) = cli(&server, &["export", "--env", ENV, "-f", files]).await;
    assert_eq!(code, 0, "{err}");
    edit(&dir.path().join("flags/checkout.yaml"), |f| {
        f["description"] = json!("reviewed change")
    });
    let (code, out, _) = cli(&server, &["plan", "-f", files, "--env", ENV, "-o", "json"]).await;
    assert_eq!(code, 2, "{out}");
    let reviewed = serde_json::from_str::<Value>(&out).expect("JSON")["revision"]
        .as_u64()
        .expect("the plan's revision");

    let proxy = Interloper {
        server: server.base.clone(),
        admin: admin.clone(),
        http: reqwest::Client::new(),
        batches: Arc::default(),
    };
    let batches = Arc::clone(&proxy.batches);
    let served =
        switchyard_testkit::http::serve(axum::Router::new().fallback(interlope).with_state(proxy))
            .await;
    // The environment is still at the reviewed revision when the CLI reads it, so
    // `--revision` lets it through; the write lands after that read.
    let (code, out, err) = cli_at(
        &served.url(),
        &[
            "apply",
            "-f",
            files,
            "--env",
            ENV,
            "--revision",
            &reviewed.to_string(),
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        err.trim(),
        "switchyard: environment `production` changed while this plan was made (someone \
         else wrote to it); nothing was written — run `switchyard plan` again"
    );
    // The server refused it: the batch carried the revision read, and was answered 412.
    assert_eq!(
        *batches.lock().expect("lock"),
        vec![(Some(format!("\"{reviewed}\"")), 412)],
        "one batch, with If-Match on the reviewed revision, refused by the server"
    );
    // Only the write in between landed.
    assert_eq!(admin.revision(ENV).await.unwrap(), Some(reviewed + 1));
    let checkout = admin.flag(ENV, "checkout").await.unwrap().unwrap().value;
    assert_eq!(checkout.description, "", "the batch wrote nothing");
    let audit = admin.audit(&format!("env={ENV}&limit=10")).await.unwrap();
    assert!(
        !audit.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("batch "))),
        "no batch entry: {audit:#?}"
    );

    // Planned again, the same files apply (and put `search` back as the files say).
    let (code, out, _) = cli(&server, &["plan", "-f", files, "--env", ENV, "-o", "json"]).await;
    assert_eq!(code, 2, "{out}");
    let replanned = serde_json::from_str::<Value>(&out).expect("JSON")["revision"].to_string();
    let (code, out, err) = cli(
        &server,
        &["apply", "-f", files, "--env", ENV, "--revision", &replanned],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(0 created, 2 changed, 0 deleted)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_over_https_trusts_the_ca_file() {
    use switchyard_testkit::server_process::Launch;
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = switchyard_tls::test_pki::TestPki::new(&dir.path().join("pki"), "server");
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    let (cert, key, ca) = (path(&pki.server_cert), path(&pki.server_key), path(&pki.ca));
    let server = ServerProcess::start_with(
        &dir.path().join("data"),
        Launch {
            args: &["--tls-cert", &cert, "--tls-key", &key],
            ..Launch::default()
        },
    )
    .await;
    let base = server.base.replacen("http://", "https://", 1);
    let admin = AdminClient::with_ca(&base, ADMIN, Some(&pki.ca)).expect("admin client");
    admin.create_env(ENV).await.expect("env");
    let flag: Flag = serde_json::from_value(json!({
        "key": "checkout",
        "kind": "boolean",
        "variants": { "on": true, "off": false },
        "off_variant": "off",
        "default": { "variant": "on" },
    }))
    .expect("flag JSON");
    admin.put_flag(ENV, &flag, None).await.expect("flag");

    let eval = ["eval", "checkout", "--env", ENV];
    let (code, out, err) = cli_at(&base, &[&eval[..], &["--ca-file", &ca]].concat()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "FLAG      VALUE  VARIANT  REASON  RULE\ncheckout  true   on       STATIC  -\n"
    );
    // Without it the system's roots do not know the test CA: refused, exit 1.
    let (code, out, err) = cli_at(&base, &eval).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.starts_with("switchyard: "), "{err}");
}
