//! The admin API over a real socket: environments, flags and segments with
//! optimistic concurrency, kill switches, promotion, tokens and the audit log.

use serde_json::{json, Value};
use switchyard_testkit::in_process;
use switchyard_testkit::in_process::{boolean_flag, start, ADMIN};

#[tokio::test]
async fn environments_are_created_once_and_listed() {
    let server = start().await;
    let (status, body) = server
        .call("PUT", "/v1/admin/envs/staging", Some(ADMIN), None)
        .await;
    assert_eq!((status, &body["revision"]), (201, &json!(0)));
    let (status, _) = server
        .call("PUT", "/v1/admin/envs/staging", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "creating again is idempotent");
    let (status, body) = server
        .call("GET", "/v1/admin/envs", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["environments"][0]["name"], "staging");
    server.stop().await;
}

#[tokio::test]
async fn flag_crud_with_if_match() {
    let server = start().await;
    server.create_env("prod").await;
    let response = server
        .http
        .put(server.url("/v1/admin/envs/prod/flags/checkout"))
        .bearer_auth(ADMIN)
        .json(&boolean_flag("checkout"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["etag"], "\"1\"");

    // The key may be left out of the body: the path names it.
    let mut without_key = boolean_flag("checkout");
    without_key.as_object_mut().expect("object").remove("key");
    let stale = server
        .http
        .put(server.url("/v1/admin/envs/prod/flags/checkout"))
        .bearer_auth(ADMIN)
        .header("If-Match", "\"1\"")
        .json(&without_key)
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), 200);
    let body: Value = stale.json().await.expect("json");
    assert_eq!(body["version"], 2);

    let conflict = server
        .http
        .put(server.url("/v1/admin/envs/prod/flags/checkout"))
        .bearer_auth(ADMIN)
        .header("If-Match", "\"1\"")
        .json(&without_key)
        .send()
        .await
        .expect("sent");
    assert_eq!(conflict.status(), 412);
    let body: Value = conflict.json().await.expect("json");
    assert_eq!(body["error"]["code"], "precondition_failed");

    let (status, body) = server
        .call(
            "GET",
            "/v1/admin/envs/prod/flags/checkout",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!((status, &body["version"]), (200, &json!(2)));
    let (status, body) = server
        .call("GET", "/v1/admin/envs/prod/flags", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, body["flags"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    let delete = server
        .http
        .delete(server.url("/v1/admin/envs/prod/flags/checkout"))
        .bearer_auth(ADMIN)
        .header("If-Match", "\"7\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status(), 412);
    let (status, _) = server
        .call(
            "DELETE",
            "/v1/admin/envs/prod/flags/checkout",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .call(
            "GET",
            "/v1/admin/envs/prod/flags/checkout",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_writers_with_the_same_if_match_one_wins() {
    let server = start().await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("race")).await;
    let attempts = (0..8).map(|i| {
        let mut flag = boolean_flag("race");
        flag["description"] = json!(format!("writer {i}"));
        server
            .http
            .put(server.url("/v1/admin/envs/prod/flags/race"))
            .bearer_auth(ADMIN)
            .header("If-Match", "\"1\"")
            .json(&flag)
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("sent").status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 412).count(),
        7,
        "{statuses:?}"
    );
    let (_, audit) = server
        .call("GET", "/v1/admin/audit?flag=race", Some(ADMIN), None)
        .await;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(2),
        "the create and one winner"
    );
    server.stop().await;
}

#[tokio::test]
async fn kill_revive_and_tag_kill_are_audited_and_served() {
    let server = start().await;
    server.create_env("prod").await;
    let mut pay = boolean_flag("pay");
    pay["tags"] = json!(["payments"]);
    pay["default"] = json!({"variant": "on"});
    let mut refunds = pay.clone();
    refunds["key"] = json!("refunds");
    server.put_flag("prod", pay).await;
    server.put_flag("prod", refunds).await;
    server.put_flag("prod", boolean_flag("other")).await;
    let sdk = server.token("sdk", "sdk", Some("prod")).await;

    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/envs/prod/flags/pay/kill",
            Some(ADMIN),
            Some(json!({"reason": "incident 7"})),
        )
        .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(false)));
    let (_, eval) = server
        .call(
            "POST",
            "/v1/evaluate/prod/pay",
            Some(&sdk),
            Some(json!({"targetingKey": "u"})),
        )
        .await;
    assert_eq!(
        (&eval["reason"], &eval["value"]),
        (&json!("DISABLED"), &json!(false))
    );

    let (status, _) = server
        .call(
            "POST",
            "/v1/admin/envs/prod/flags/pay/revive",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200, "revive without a body");
    let (_, eval) = server
        .call(
            "POST",
            "/v1/evaluate/prod/pay",
            Some(&sdk),
            Some(json!({"targetingKey": "u"})),
        )
        .await;
    assert_eq!(eval["value"], true);

    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/envs/prod/kill",
            Some(ADMIN),
            Some(json!({"tag": "payments", "reason": "stop all"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["killed"], json!(["pay", "refunds"]));
    let (_, other) = server
        .call("GET", "/v1/admin/envs/prod/flags/other", Some(ADMIN), None)
        .await;
    assert_eq!(other["enabled"], true, "untagged flags stay on");

    let (_, audit) = server
        .call(
            "GET",
            "/v1/admin/audit?env=prod&flag=pay",
            Some(ADMIN),
            None,
        )
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        ["flag.kill", "flag.revive", "flag.kill", "flag.put"],
        "newest first"
    );
    let first_kill = &audit["entries"][2];
    assert_eq!(first_kill["reason"], "incident 7");
    assert_eq!(first_kill["actor"], "bootstrap-admin");
    assert_eq!(
        (
            &first_kill["before"]["enabled"],
            &first_kill["after"]["enabled"]
        ),
        (&json!(true), &json!(false))
    );
    server.stop().await;
}

#[tokio::test]
async fn segments_are_managed_and_referential_integrity_holds() {
    let server = start().await;
    server.create_env("prod").await;
    let segment =
        json!({"when": {"constraints": [{"attribute": "plan", "op": "in", "values": ["pro"]}]}});
    let (status, body) = server
        .call(
            "PUT",
            "/v1/admin/envs/prod/segments/paying",
            Some(ADMIN),
            Some(segment),
        )
        .await;
    assert_eq!((status, &body["version"]), (201, &json!(1)));
    let mut flag = boolean_flag("perk");
    flag["rules"] =
        json!([{"id": "paying", "when": {"segments": ["paying"]}, "serve": {"variant": "on"}}]);
    server.put_flag("prod", flag).await;
    let sdk = server.token("sdk", "sdk", Some("prod")).await;
    let (_, eval) = server
        .call(
            "POST",
            "/v1/evaluate/prod/perk",
            Some(&sdk),
            Some(json!({"targetingKey": "u", "plan": "pro"})),
        )
        .await;
    assert_eq!(
        (&eval["value"], &eval["rule_id"]),
        (&json!(true), &json!("paying"))
    );

    let (status, body) = server
        .call(
            "DELETE",
            "/v1/admin/envs/prod/segments/paying",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 422, "a segment in use cannot be deleted: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("segment `paying` is used by flag(s) `perk`"));
    let (status, body) = server
        .call("GET", "/v1/admin/envs/prod/segments", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, body["segments"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    let mut ghost = boolean_flag("ghost");
    ghost["rules"] =
        json!([{"id": "r", "when": {"segments": ["nobody"]}, "serve": {"variant": "on"}}]);
    let (status, body) = server
        .call(
            "PUT",
            "/v1/admin/envs/prod/flags/ghost",
            Some(ADMIN),
            Some(ghost),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["details"][0]["path"],
        "flags[ghost].rules[0].when.segments[0]"
    );
    server.stop().await;
}

#[tokio::test]
async fn prerequisite_cycles_are_rejected_when_written() {
    let server = start().await;
    server.create_env("prod").await;
    let mut a = boolean_flag("a");
    a["prerequisites"] = json!([{"flag": "b", "variant": "on"}]);
    server.put_flag("prod", a).await;
    let mut b = boolean_flag("b");
    b["prerequisites"] = json!([{"flag": "a", "variant": "on"}]);
    let (status, body) = server
        .call("PUT", "/v1/admin/envs/prod/flags/b", Some(ADMIN), Some(b))
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("prerequisite cycle"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn promote_copies_flags_between_environments() {
    let server = start().await;
    server.create_env("staging").await;
    server.create_env("production").await;
    server.put_flag("staging", boolean_flag("one")).await;
    server.put_flag("staging", boolean_flag("two")).await;
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/promote",
            Some(ADMIN),
            Some(json!({"from": "staging", "to": "production", "flags": ["one"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, one) = server
        .call(
            "GET",
            "/v1/admin/envs/production/flags/one",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!((status, &one["version"]), (200, &json!(1)));
    let (status, _) = server
        .call(
            "GET",
            "/v1/admin/envs/production/flags/two",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 404, "only the named flag is promoted");
    let (status, _) = server
        .call(
            "POST",
            "/v1/admin/promote",
            Some(ADMIN),
            Some(json!({"from": "staging", "to": "production", "flags": ["nope"]})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, audit) = server
        .call("GET", "/v1/admin/audit?env=production", Some(ADMIN), None)
        .await;
    assert_eq!(audit["entries"][0]["action"], "flag.promote");
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_shown_once_scoped_and_revocable() {
    let server = start().await;
    server.create_env("prod").await;
    server.create_env("dev").await;
    server.put_flag("prod", boolean_flag("f")).await;
    let eval = server.token("frontend", "eval", Some("prod")).await;
    let (status, _) = server
        .call("POST", "/v1/evaluate/prod/f", Some(&eval), Some(json!({})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .call("POST", "/v1/evaluate/dev/f", Some(&eval), Some(json!({})))
        .await;
    assert_eq!(status, 403, "another environment");
    let (status, _) = server
        .call("GET", "/v1/admin/envs", Some(&eval), None)
        .await;
    assert_eq!(status, 403, "not an admin");

    let (status, list) = server
        .call("GET", "/v1/admin/tokens", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);
    let listed = list.to_string();
    assert!(
        listed.contains("frontend") && !listed.contains(&eval) && !listed.contains("hash"),
        "{listed}"
    );

    let (status, _) = server
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(ADMIN),
            Some(json!({"name": "frontend", "kind": "eval", "env": "prod"})),
        )
        .await;
    assert_eq!(status, 409, "names are unique");
    let (status, body) = server
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(ADMIN),
            Some(json!({"name": "x", "kind": "sdk"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(ADMIN),
            Some(json!({"name": "y", "kind": "sdk", "env": "nowhere"})),
        )
        .await;
    assert_eq!(status, 404);

    let (status, _) = server
        .call("DELETE", "/v1/admin/tokens/frontend", Some(ADMIN), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .call("POST", "/v1/evaluate/prod/f", Some(&eval), Some(json!({})))
        .await;
    assert_eq!(status, 401, "revoked");
    let (status, _) = server
        .call("DELETE", "/v1/admin/tokens/frontend", Some(ADMIN), None)
        .await;
    assert_eq!(status, 404);

    let admin2 = server.token("ops", "admin", None).await;
    let (status, _) = server
        .call("GET", "/v1/admin/envs", Some(&admin2), None)
        .await;
    assert_eq!(status, 200);
    let (_, audit) = server
        .call("GET", "/v1/admin/audit?flag=frontend", Some(ADMIN), None)
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["token.delete", "token.create"]);
    server.stop().await;
}

#[tokio::test]
async fn audit_filters_by_time_and_limit() {
    let server = start().await;
    server.create_env("prod").await;
    for i in 0..5 {
        server
            .put_flag("prod", boolean_flag(&format!("f{i}")))
            .await;
    }
    let (status, audit) = server
        .call("GET", "/v1/admin/audit?env=prod&limit=2", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(audit["entries"][0]["target"], "f4");
    let (_, recent) = server
        .call("GET", "/v1/admin/audit?since=1h", Some(ADMIN), None)
        .await;
    assert_eq!(
        recent["entries"].as_array().map(Vec::len),
        Some(6),
        "env.create and five puts"
    );
    let (_, future) = server
        .call(
            "GET",
            "/v1/admin/audit?since=2999-01-01T00:00:00Z",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(future["entries"].as_array().map(Vec::len), Some(0));
    let (status, body) = server
        .call(
            "GET",
            "/v1/admin/audit?since=yesterday-ish",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn bulk_and_single_evaluation() {
    let server = start().await;
    server.create_env("prod").await;
    server.put_flag("prod", boolean_flag("a")).await;
    server.put_flag("prod", boolean_flag("b")).await;
    let sdk = server.token("sdk", "sdk", Some("prod")).await;
    let (status, body) = server
        .call(
            "POST",
            "/v1/evaluate/prod",
            Some(&sdk),
            Some(json!({"targetingKey": "u", "groups": ["beta"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["flags"]["a"]["value"], true);
    assert_eq!(body["flags"]["b"]["reason"], "TARGETING_MATCH");
    assert_eq!(
        (&body["environment"], &body["revision"]),
        (&json!("prod"), &json!(2))
    );
    let keys: Vec<&String> = body["flags"].as_object().expect("flags").keys().collect();
    assert_eq!(keys, ["a", "b"], "in the environment's order");
    let (status, one) = server
        .call(
            "POST",
            "/v1/evaluate/prod/b",
            Some(&sdk),
            Some(json!({"targetingKey": "u", "groups": ["beta"]})),
        )
        .await;
    assert_eq!(status, 200);
    let mut expected = body["flags"]["b"].clone();
    expected["key"] = json!("b");
    assert_eq!(
        one, expected,
        "a single answer is the bulk entry plus its key"
    );
    let (status, body) = server
        .call(
            "POST",
            "/v1/evaluate/prod/missing",
            Some(&sdk),
            Some(json!({})),
        )
        .await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, body) = server
        .call(
            "POST",
            "/v1/evaluate/nowhere/a",
            Some(ADMIN),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn environments_are_deleted_only_when_empty_or_forced_and_audited() {
    let server = start().await;
    server.create_env("staging").await;
    server.put_flag("staging", boolean_flag("checkout")).await;
    let (status, body) = server
        .call(
            "PUT",
            "/v1/admin/envs/staging/segments/staff",
            Some(ADMIN),
            Some(json!({"when": {"groups": ["staff"]}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Refused while it has flags: 409 naming them, and nothing deleted.
    let (status, body) = server
        .call("DELETE", "/v1/admin/envs/staging", Some(ADMIN), None)
        .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`checkout`") && message.contains("?force=true"),
        "{body}"
    );
    let (status, _) = server
        .call(
            "GET",
            "/v1/admin/envs/staging/flags/checkout",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // A stale revision is refused too.
    let stale = server
        .http
        .delete(server.url("/v1/admin/envs/staging?force=true"))
        .bearer_auth(ADMIN)
        .header("If-Match", "\"1\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), 412);
    let (status, body) = server
        .call(
            "DELETE",
            "/v1/admin/envs/staging?force=yes",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Forced: gone, audited with what it held.
    let (status, _) = server
        .call(
            "DELETE",
            "/v1/admin/envs/staging?force=true",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = server
        .call("GET", "/v1/admin/envs/staging/flags", Some(ADMIN), None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (_, body) = server
        .call("GET", "/v1/admin/envs", Some(ADMIN), None)
        .await;
    assert_eq!(body["environments"], json!([]));
    let (status, body) = server
        .call("GET", "/v1/admin/audit?env=staging", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);
    let entry = &body["entries"][0];
    assert_eq!(
        (entry["action"].as_str(), entry["actor"].as_str()),
        (Some("env.delete"), Some("bootstrap-admin"))
    );
    assert_eq!(entry["before"]["flags"][0]["key"], "checkout", "{entry}");
    assert_eq!(entry["before"]["segments"][0]["key"], "staff", "{entry}");
    let (status, _) = server
        .call("DELETE", "/v1/admin/envs/staging", Some(ADMIN), None)
        .await;
    assert_eq!(status, 404);

    // An empty environment needs no force; a new one of the same name starts empty.
    server.create_env("staging").await;
    let (_, body) = server
        .call("GET", "/v1/admin/envs/staging/flags", Some(ADMIN), None)
        .await;
    assert_eq!(body["flags"], json!([]));
    let (status, _) = server
        .call("DELETE", "/v1/admin/envs/staging", Some(ADMIN), None)
        .await;
    assert_eq!(status, 204);

    // The deletion is durable: a restart on the same data does not bring it back.
    let dir = server
        .dir
        .as_ref()
        .map(|d| d.path().to_owned())
        .expect("embedded");
    let (_, body) = server
        .call("GET", "/v1/admin/audit", Some(ADMIN), None)
        .await;
    let audit_before = body["entries"].as_array().map(Vec::len);
    let mut server = server;
    let server_dir = server.dir.take();
    server.stop().await;
    let reopened = in_process::serve(
        switchyard_server::Server::open_embedded(&dir, Some(ADMIN))
            .await
            .expect("reopens"),
        server_dir,
    )
    .await;
    let (_, body) = reopened
        .call("GET", "/v1/admin/envs", Some(ADMIN), None)
        .await;
    assert_eq!(body["environments"], json!([]));
    let (_, body) = reopened
        .call("GET", "/v1/admin/audit", Some(ADMIN), None)
        .await;
    assert_eq!(body["entries"].as_array().map(Vec::len), audit_before);
    reopened.stop().await;
}

#[tokio::test]
async fn a_store_written_before_the_name_rules_still_loads() {
    use switchyard_core::model::{EnvName, FlagKey};
    use switchyard_core::Flag;
    use switchyard_server::store::embedded::EmbeddedStore;
    use switchyard_server::store::{AuditEntry, Commit, Store};

    // Written directly to the store, as an older server accepted it: an environment
    // and a flag whose names are outside the name set, a split listing a variant
    // twice and an `in` without values.
    let dir = tempfile::tempdir().expect("temp dir");
    let env = EnvName::new("old env");
    let mut flag = boolean_flag("old\u{200b}flag");
    flag["rules"] = json!([{ "id": "eu ramp", "serve": { "variant": "on" },
        "when": { "constraints": [{ "attribute": "country", "op": "in" }] } }]);
    flag["default"] = json!({ "rollout": { "split": [
        { "variant": "off", "weight": 50_000 }, { "variant": "off", "weight": 50_000 } ] } });
    let flag: Flag = serde_json::from_value(flag).expect("a flag");
    let audit = |action: &str| AuditEntry {
        at_ms: 1,
        ..AuditEntry::new("older-server", Some(&env), action, "old")
    };
    {
        let store = EmbeddedStore::open(dir.path()).expect("store");
        assert!(store
            .create_env(&env, audit("env.create"))
            .await
            .expect("env"));
        store
            .commit(Commit {
                env: env.clone(),
                expected_revision: 0,
                flags: vec![(FlagKey::new("old\u{200b}flag"), Some(flag))],
                segments: Vec::new(),
                audit: vec![audit("flag.put")],
                event: bytes::Bytes::new(),
                schedule: None,
            })
            .await
            .expect("commit");
    }

    let server = in_process::serve(
        switchyard_server::Server::open_embedded(dir.path(), Some(ADMIN))
            .await
            .expect("a store with old names still loads"),
        Some(dir),
    )
    .await;
    let path = "/v1/admin/envs/old%20env/flags/old%E2%80%8Bflag";
    let (status, body) = server.call("GET", path, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .call("POST", &format!("{path}/kill"), Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "an old flag can still be killed: {body}");
    let (status, body) = server.call("DELETE", path, Some(ADMIN), None).await;
    assert_eq!(status, 204, "and deleted: {body}");
    server.stop().await;
}

#[tokio::test]
async fn a_flag_is_reverted_to_an_earlier_version_from_its_history() {
    let server = start().await;
    server.create_env("prod").await;
    let path = "/v1/admin/envs/prod/flags/checkout";
    let mut flag = boolean_flag("checkout");
    flag["description"] = json!("first");
    server
        .call("PUT", path, Some(ADMIN), Some(flag.clone()))
        .await;
    flag["description"] = json!("second");
    let (status, body) = server.call("PUT", path, Some(ADMIN), Some(flag)).await;
    assert_eq!((status, &body["version"]), (200, &json!(2)));

    // A stale If-Match writes nothing.
    let stale = server
        .http
        .post(server.url(&format!("{path}/revert")))
        .bearer_auth(ADMIN)
        .header("If-Match", "\"1\"")
        .json(&json!({"version": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), 412);

    let reverted = server
        .http
        .post(server.url(&format!("{path}/revert")))
        .bearer_auth(ADMIN)
        .header("If-Match", "\"2\"")
        // JSON Schema's integer: 1.0 is 1.
        .json(&json!({"version": 1.0}))
        .send()
        .await
        .expect("sent");
    assert_eq!(reverted.status(), 200);
    assert_eq!(reverted.headers()["etag"], "\"3\"");
    let body: Value = reverted.json().await.expect("json");
    assert_eq!(
        (&body["version"], &body["description"]),
        (&json!(3), &json!("first"))
    );

    let (_, audit) = server
        .call("GET", "/v1/admin/audit?flag=checkout", Some(ADMIN), None)
        .await;
    let newest = &audit["entries"][0];
    assert_eq!(newest["action"], "flag.revert");
    assert_eq!(newest["reason"], "reverted to version 1");
    assert_eq!(newest["before"]["description"], "second");

    let (status, body) = server
        .call(
            "POST",
            &format!("{path}/revert"),
            Some(ADMIN),
            Some(json!({"version": 9})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("version 9")));
    let (status, body) = server
        .call(
            "POST",
            &format!("{path}/revert"),
            Some(ADMIN),
            Some(json!({"version": 1.5})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("version")));
    server.stop().await;
}
