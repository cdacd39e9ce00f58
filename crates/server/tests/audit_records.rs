//! Audit reads never answer 500: a stored entry that cannot be decoded (here, one
//! whose `before` is nested past serde_json's recursion limit, as an older version
//! could write, and one that is not JSON at all) comes back degraded with an `error`
//! field, on the embedded store (also after a restart) and on Redis.

use serde_json::Value;
use switchyard_server::Server;
use switchyard_testkit::in_process;
use switchyard_testkit::in_process::{boolean_flag, start_redis, TestServer, ADMIN};
use switchyard_testkit::redis::{RedisProcess, Reply};

/// An audit record as stored, whose `before` is 200 levels deep.
fn too_deep_record(id: u64) -> String {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    format!(
        r#"{{"id":{id},"at_ms":1700000000000,"actor":"ci","env":"prod","action":"flag.delete","target":"deep","before":{{"variants":{{"big":{deep}}}}},"revision":9}}"#
    )
}

async fn audit(server: &TestServer, query: &str) -> Vec<Value> {
    let (status, body) = server
        .call("GET", &format!("/v1/admin/audit{query}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "audit{query}: {body}");
    body["entries"].as_array().expect("entries").clone()
}

/// The degraded entry for `too_deep_record(id)`: everything but `before`, and why.
fn assert_degraded_deep(entry: &Value, id: u64) {
    assert_eq!(entry["id"], id, "{entry}");
    assert_eq!(entry["actor"], "ci", "{entry}");
    assert_eq!(entry["env"], "prod", "{entry}");
    assert_eq!(entry["action"], "flag.delete", "{entry}");
    assert_eq!(entry["target"], "deep", "{entry}");
    assert_eq!(entry["at_ms"], 1_700_000_000_000_u64, "{entry}");
    assert_eq!(entry["revision"], 9, "{entry}");
    assert!(entry.get("before").is_none(), "{entry}");
    let error = entry["error"].as_str().expect("an error field");
    assert!(
        error.contains("cannot be decoded") && error.contains("recursion limit exceeded"),
        "{error}"
    );
}

#[tokio::test]
async fn undecodable_embedded_records_come_back_degraded_also_after_restarts() {
    let mut server = in_process::start().await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("checkout")).await;
    let dir = server.dir.take().expect("embedded data dir");
    server.stop().await;

    // Two records the current version cannot decode, written behind its back.
    {
        let db = redb::Database::create(dir.path().join("switchyard.redb")).expect("open redb");
        let txn = db.begin_write().expect("write txn");
        {
            let table: redb::TableDefinition<u64, &str> = redb::TableDefinition::new("audit");
            let mut table = txn.open_table(table).expect("audit table");
            table
                .insert(1000, too_deep_record(1000).as_str())
                .expect("insert");
            table.insert(1001, "not json at all").expect("insert");
        }
        txn.commit().expect("commit");
    }

    for _restart in 0..2 {
        let server = in_process::serve(
            Server::open_embedded(dir.path(), Some(ADMIN))
                .await
                .expect("server loads"),
            None,
        )
        .await;
        let entries = audit(&server, "").await;
        let garbage = &entries[0];
        assert_eq!(garbage["id"], 1001, "{garbage}");
        assert!(
            garbage["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot be decoded")),
            "{garbage}"
        );
        assert_eq!(
            garbage.as_object().map(|o| o.len()),
            Some(2),
            "only id and error: {garbage}"
        );
        assert_degraded_deep(&entries[1], 1000);
        // The readable entries are still there, and filters still work.
        assert!(
            entries
                .iter()
                .any(|e| e["target"] == "checkout" && e["error"].is_null()),
            "{entries:?}"
        );
        let deep = audit(&server, "?flag=deep").await;
        assert_eq!(deep.len(), 1, "{deep:?}");
        assert_degraded_deep(&deep[0], 1000);
        let since = audit(&server, "?since=1699999999999&env=prod").await;
        assert!(since.iter().any(|e| e["id"] == 1000), "{since:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn undecodable_redis_records_come_back_degraded() {
    let redis = RedisProcess::start();
    let server = start_redis(&redis.url()).await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("checkout")).await;

    let list = switchyard_server::store::redis::env_key("prod", "audit");
    let line = format!("1000\t{}", too_deep_record(1000));
    for value in [line.as_str(), "1001\tnot json at all"] {
        let reply = redis.command(&["RPUSH", &list, value]);
        assert!(matches!(reply, Reply::Integer(_)), "{reply:?}");
    }

    let entries = audit(&server, "?env=prod").await;
    let deep = entries
        .iter()
        .find(|e| e["id"] == 1000)
        .expect("the deep record");
    assert_degraded_deep(deep, 1000);
    let garbage = entries
        .iter()
        .find(|e| e["id"] == 1001)
        .expect("the garbage record");
    assert!(garbage["error"].is_string(), "{garbage}");
    // Its environment is the list's.
    assert_eq!(garbage["env"], "prod", "{garbage}");
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == "checkout" && e["error"].is_null()),
        "{entries:?}"
    );
    // The global query (every list) answers too.
    let all = audit(&server, "").await;
    assert!(all.iter().any(|e| e["id"] == 1000), "{all:?}");
    server.stop().await;
}
