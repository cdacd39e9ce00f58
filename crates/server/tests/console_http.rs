//! The console's session and CSRF rules over plain HTTP (no browser): cookie
//! attributes, expiry, revocation, the CSRF gate, scopes, nothing in URLs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_server::console::session::{SessionSettings, Sessions};
use switchyard_server::Server;
use switchyard_testkit::in_process::{serve, start, TestServer, ADMIN};

/// A client that does not follow redirects, so the answers can be inspected.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn with_flag(server: &TestServer) {
    server.create_env("prod").await;
    server
        .put_flag(
            "prod",
            json!({"key": "checkout", "kind": "boolean", "variants": {"on": true, "off": false},
                   "off_variant": "off", "default": {"variant": "off"}}),
        )
        .await;
}

/// Signs in with `token`; returns the `Set-Cookie` value and the `name=value` pair.
async fn sign_in(server: &TestServer, token: &str) -> (String, String) {
    let response = client()
        .post(server.url("/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 303);
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("text")
        .to_owned();
    let pair = set.split(';').next().expect("pair").to_owned();
    (set, pair)
}

async fn get(server: &TestServer, path: &str, cookie: &str) -> (u16, String, Option<String>) {
    let response = client()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().expect("text").to_owned());
    (status, response.text().await.expect("body"), location)
}

fn csrf_of(page: &str) -> String {
    let start = page
        .find("name=\"csrf-token\" content=\"")
        .expect("csrf meta")
        + 27;
    page[start..start + 64].to_owned()
}

async fn post(server: &TestServer, path: &str, cookie: &str, form: &[(&str, &str)]) -> u16 {
    client()
        .post(server.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

async fn enabled(server: &TestServer) -> serde_json::Value {
    server
        .ok("GET", "/v1/admin/envs/prod/flags/checkout", ADMIN, None)
        .await["enabled"]
        .clone()
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_path_scoped_and_not_secure_by_default() {
    let server = start().await;
    let (set, _) = sign_in(&server, ADMIN).await;
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    let id = attributes[0]
        .strip_prefix("sy_console=")
        .expect("named sy_console");
    assert_eq!(id.len(), 64, "256 random bits in hex");
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(attributes.contains(&wanted), "{wanted} missing in {set}");
    }
    assert!(!attributes.contains(&"Secure"), "{set}");
    // The token goes in the body: neither the redirect nor the cookie carries it.
    assert!(!set.contains(ADMIN));
}

#[tokio::test]
async fn the_secure_option_marks_the_cookie_secure() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::open_embedded(dir.path(), Some(ADMIN))
        .await
        .expect("loads");
    server.state.console = Arc::new(Sessions::new(SessionSettings {
        secure_cookie: true,
        ..SessionSettings::default()
    }));
    let server = serve(server, Some(dir)).await;
    let (set, _) = sign_in(&server, ADMIN).await;
    assert!(
        set.split(';').map(str::trim).any(|a| a == "Secure"),
        "{set}"
    );
}

#[tokio::test]
async fn an_idle_or_too_old_session_is_refused() {
    for settings in [
        SessionSettings {
            idle: Duration::ZERO,
            ..SessionSettings::default()
        },
        SessionSettings {
            absolute: Duration::ZERO,
            ..SessionSettings::default()
        },
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let mut server = Server::open_embedded(dir.path(), Some(ADMIN))
            .await
            .expect("loads");
        server.state.console = Arc::new(Sessions::new(settings.clone()));
        let server = serve(server, Some(dir)).await;
        let (_, cookie) = sign_in(&server, ADMIN).await;
        let (status, _, location) = get(&server, "/console", &cookie).await;
        assert_eq!(
            (status, location.as_deref()),
            (303, Some("/console/login")),
            "{settings:?}"
        );
    }
}

#[tokio::test]
async fn a_live_session_works_and_sign_out_ends_it() {
    let server = start().await;
    with_flag(&server).await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let (status, page, _) = get(&server, "/console/envs/prod/flags", &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("checkout"));
    let csrf = csrf_of(&page);
    assert_eq!(
        post(&server, "/console/logout", &cookie, &[("csrf", &csrf)]).await,
        303
    );
    let (status, _, location) = get(&server, "/console/envs/prod/flags", &cookie).await;
    assert_eq!((status, location.as_deref()), (303, Some("/console/login")));
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let server = start().await;
    with_flag(&server).await;
    let token = server.token("reader", "sdk", Some("prod")).await;
    let (_, cookie) = sign_in(&server, &token).await;
    assert_eq!(get(&server, "/console", &cookie).await.0, 200);
    server
        .ok("DELETE", "/v1/admin/tokens/reader", ADMIN, None)
        .await;
    let (status, _, location) = get(&server, "/console", &cookie).await;
    assert_eq!((status, location.as_deref()), (303, Some("/console/login")));
}

#[tokio::test]
async fn a_post_without_the_csrf_token_or_from_another_site_is_refused_and_writes_nothing() {
    let server = start().await;
    with_flag(&server).await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let (_, page, _) = get(&server, "/console/envs/prod/flags/checkout", &cookie).await;
    let csrf = csrf_of(&page);
    let kill = "/console/envs/prod/flags/checkout/kill";
    let form = [("version", "1"), ("reason", "x")];
    assert_eq!(post(&server, kill, &cookie, &form).await, 403, "no token");
    let wrong = [
        ("csrf", "0".repeat(64)),
        ("version", "1".into()),
        ("reason", "x".into()),
    ];
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        post(&server, kill, &cookie, &wrong).await,
        403,
        "wrong token"
    );
    let cross = client()
        .post(server.url(kill))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("version", "1"), ("reason", "x")])
        .send()
        .await
        .expect("sent");
    assert_eq!(cross.status(), 403, "another site");
    assert_eq!(enabled(&server).await, json!(true), "nothing written");
    let good = [("csrf", csrf.as_str()), ("version", "1"), ("reason", "x")];
    assert_eq!(post(&server, kill, &cookie, &good).await, 303);
    assert_eq!(enabled(&server).await, json!(false));
}

#[tokio::test]
async fn a_scoped_token_reads_only_its_environment_and_writes_nothing() {
    let server = start().await;
    with_flag(&server).await;
    server.create_env("dev").await;
    let token = server.token("reader", "eval", Some("prod")).await;
    let (_, cookie) = sign_in(&server, &token).await;
    let (status, page, _) = get(&server, "/console/envs/prod/flags/checkout", &cookie).await;
    assert_eq!(status, 200);
    assert!(!page.contains("id=\"kill\""));
    assert_eq!(
        get(&server, "/console/envs/dev/flags", &cookie).await.0,
        403
    );
    assert_eq!(
        get(&server, "/console/envs/prod/new-flag", &cookie).await.0,
        403
    );
    let csrf = csrf_of(&page);
    let form = [
        ("csrf", csrf.as_str()),
        ("key", "sneaky"),
        ("kind", "boolean"),
        ("variants", "{\"on\": true, \"off\": false}"),
        ("off_variant", "off"),
        ("default", "off"),
    ];
    assert_eq!(
        post(&server, "/console/envs/prod/flags", &cookie, &form).await,
        403
    );
    let (status, _) = server
        .call("GET", "/v1/admin/envs/prod/flags/sneaky", Some(ADMIN), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_root_redirects_to_the_console_and_assets_are_cached_by_content_hash() {
    let server = start().await;
    let root = client().get(server.url("/")).send().await.expect("sent");
    assert_eq!(
        root.headers().get("location").expect("location"),
        "/console"
    );
    let login = client()
        .get(server.url("/console/login"))
        .send()
        .await
        .expect("sent");
    let page = login.text().await.expect("body");
    let start = page
        .find("/console/assets/console.")
        .expect("stylesheet link");
    let href: String = page[start..].chars().take_while(|c| *c != '"').collect();
    let css = client().get(server.url(&href)).send().await.expect("sent");
    assert_eq!(css.status(), 200);
    assert_eq!(
        css.headers().get("cache-control").expect("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let stale = client()
        .get(server.url("/console/assets/console.0000.css"))
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), 404);
}

#[tokio::test]
async fn kill_by_tag_previews_the_flags_it_hits_then_kills_them_with_the_reason() {
    let server = start().await;
    with_flag(&server).await;
    for (key, tags) in [
        ("pay-a", json!(["payments"])),
        ("pay-b", json!(["payments"])),
        ("other", json!(["ui"])),
    ] {
        server
            .put_flag(
                "prod",
                json!({"key": key, "kind": "boolean", "variants": {"on": true, "off": false},
                       "off_variant": "off", "default": {"variant": "on"}, "tags": tags}),
            )
            .await;
    }
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let (status, preview, _) =
        get(&server, "/console/envs/prod/kill-tag?tag=payments", &cookie).await;
    assert_eq!(status, 200);
    let hits = &preview[preview.find("id=\"hits\"").expect("a preview list")..];
    let hits = &hits[..hits.find("</ul>").expect("end of list")];
    assert!(
        hits.contains("pay-a") && hits.contains("pay-b") && !hits.contains("other"),
        "{hits}"
    );
    let csrf = csrf_of(&preview);
    let path = "/console/envs/prod/kill-tag";
    assert_eq!(
        post(
            &server,
            path,
            &cookie,
            &[("csrf", &csrf), ("tag", "payments")]
        )
        .await,
        422,
        "no reason"
    );
    let (_, listed) = server
        .call("GET", "/v1/admin/envs/prod/flags/pay-a", Some(ADMIN), None)
        .await;
    assert_eq!(
        listed["enabled"],
        json!(true),
        "nothing killed without a reason"
    );
    let form = [
        ("csrf", csrf.as_str()),
        ("tag", "payments"),
        ("reason", "processor down"),
    ];
    assert_eq!(post(&server, path, &cookie, &form).await, 200);
    for (key, enabled) in [("pay-a", false), ("pay-b", false), ("other", true)] {
        let (_, flag) = server
            .call(
                "GET",
                &format!("/v1/admin/envs/prod/flags/{key}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(flag["enabled"], json!(enabled), "{key}");
    }
    let audit = server
        .ok("GET", "/v1/admin/audit?env=prod&flag=pay-a", ADMIN, None)
        .await;
    assert_eq!(audit["entries"][0]["reason"], "processor down");
}

#[tokio::test]
async fn rules_are_reordered_replaced_and_removed_and_the_json_editor_saves_only_valid_flags() {
    let server = start().await;
    server.create_env("prod").await;
    server
        .put_flag(
            "prod",
            json!({"key": "checkout", "kind": "boolean", "variants": {"on": true, "off": false},
                   "off_variant": "off", "default": {"variant": "off"},
                   "rules": [{"id": "a", "when": {"groups": ["staff"]}, "serve": {"variant": "on"}},
                             {"id": "b", "when": {"users": ["u1"]}, "serve": {"variant": "on"}}]}),
        )
        .await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let page_path = "/console/envs/prod/flags/checkout";
    let rules = format!("{page_path}/rules");
    let stored = || async {
        server
            .ok("GET", "/v1/admin/envs/prod/flags/checkout", ADMIN, None)
            .await
    };
    let ids = |flag: &serde_json::Value| -> Vec<String> {
        flag["rules"].as_array().map_or_else(Vec::new, |rules| {
            rules
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_owned())
                .collect()
        })
    };
    let (_, page, _) = get(&server, page_path, &cookie).await;
    let csrf = csrf_of(&page);
    let form = |pairs: &[(&'static str, &str)]| -> Vec<(String, String)> {
        let mut all = vec![("csrf".to_owned(), csrf.clone())];
        all.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        all
    };
    let send = |pairs: Vec<(String, String)>| {
        let url = server.url(&rules);
        let cookie = cookie.clone();
        async move {
            client()
                .post(url)
                .header("cookie", cookie)
                .form(&pairs)
                .send()
                .await
                .expect("sent")
        }
    };

    let moved = send(form(&[
        ("version", "1"),
        ("index", "0"),
        ("action", "down"),
    ]))
    .await;
    assert_eq!(moved.status(), 303);
    assert_eq!(ids(&stored().await), ["b", "a"]);

    // A rule's JSON editor: a bad regex is reported at that rule and nothing changes.
    let bad = r#"{"id": "b", "when": {"constraints": [{"attribute": "email", "op": "matches", "values": ["(["]}]}, "serve": {"variant": "on"}}"#;
    let refused = send(form(&[
        ("version", "2"),
        ("index", "0"),
        ("action", "replace"),
        ("rule", bad),
    ]))
    .await;
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.expect("body");
    assert!(
        body.contains("id=\"rule-error-0\""),
        "the error is shown at rule 0's editor"
    );
    assert!(body.contains("rules[0].when.constraints[0].values[0]"));
    assert_eq!(stored().await["version"], 2, "nothing saved");

    let removed = send(form(&[
        ("version", "2"),
        ("index", "0"),
        ("action", "remove"),
    ]))
    .await;
    assert_eq!(removed.status(), 303);
    assert_eq!(ids(&stored().await), ["a"]);

    // The whole-flag JSON editor.
    let json_form = |json: &str| {
        vec![
            ("csrf".to_owned(), csrf.clone()),
            ("version".to_owned(), "3".to_owned()),
            ("json".to_owned(), json.to_owned()),
        ]
    };
    let post_json = |pairs: Vec<(String, String)>| {
        let url = server.url(page_path);
        let cookie = cookie.clone();
        async move {
            client()
                .post(url)
                .header("cookie", cookie)
                .form(&pairs)
                .send()
                .await
                .expect("sent")
        }
    };
    let typo = r#"{"kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": {"variant": "of"}}"#;
    let refused = post_json(json_form(typo)).await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("<code>default"),
        "names the field"
    );
    let good = r#"{"kind": "boolean", "variants": {"on": true, "off": false}, "off_variant": "off", "default": {"variant": "on"}, "tags": ["edited"]}"#;
    assert_eq!(post_json(json_form(good)).await.status(), 303);
    let flag = stored().await;
    assert_eq!(
        (&flag["version"], &flag["tags"], flag.get("rules")),
        (&json!(4), &json!(["edited"]), None)
    );
}

/// Posts a form; returns the status, the `Cache-Control` header and the page.
async fn post_page(
    server: &TestServer,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let response = client()
        .post(server.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|c| c.to_str().expect("text").to_owned());
    (status, cache, response.text().await.expect("body"))
}

/// How many times `needle` occurs in `page`.
fn count(page: &str, needle: &str) -> usize {
    page.matches(needle).count()
}

#[tokio::test]
async fn the_playground_answers_like_the_api_and_names_the_field_of_bad_input() {
    let server = start().await;
    with_flag(&server).await;
    server.create_env("dev").await;
    server
        .put_flag(
            "prod",
            json!({"key": "banner", "kind": "string",
                   "variants": {"blue": "#00f", "red": "#f00"}, "off_variant": "blue",
                   "default": {"variant": "blue"},
                   "rules": [{"id": "italians",
                              "when": {"constraints": [{"attribute": "country", "op": "in", "values": ["IT"]}]},
                              "serve": {"variant": "red"}}]}),
        )
        .await;
    let reader = server.token("reader", "eval", Some("prod")).await;
    let (_, cookie) = sign_in(&server, &reader).await;
    let path = "/console/envs/prod/playground";
    let (status, page, _) = get(&server, path, &cookie).await;
    assert_eq!(status, 200, "a read-only token may use it");
    let csrf = csrf_of(&page);

    let (status, _, answer) = post_page(
        &server,
        path,
        &cookie,
        &[
            ("csrf", &csrf),
            ("targeting_key", "u-1"),
            ("attributes", "country=IT"),
            ("flag", "banner"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, api) = server
        .call(
            "POST",
            "/v1/evaluate/prod/banner",
            Some(&reader),
            Some(json!({"targetingKey": "u-1", "country": "IT"})),
        )
        .await;
    assert_eq!(
        (&api["variant"], &api["reason"], &api["rule_id"]),
        (&json!("red"), &json!("TARGETING_MATCH"), &json!("italians"))
    );
    let row = &answer[answer
        .find("data-flag=\"banner\"")
        .expect("a row for banner")..];
    let row = &row[..row.find("</tr>").expect("end of row")];
    for shown in ["red", "#f00", "TARGETING_MATCH", "italians"] {
        assert!(row.contains(shown), "{shown} missing in {row}");
    }
    assert_eq!(count(&answer, "<tr data-flag="), 1, "one flag asked for");

    let (status, _, all) = post_page(&server, path, &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert_eq!(count(&all, "<tr data-flag="), 2, "every flag of prod");

    for (attributes, flag, field, words) in [
        (r#"{"country": "IT""#, "", "attributes", "not a JSON object"),
        (
            r#"{"nested": {"a": 1}}"#,
            "",
            "attributes",
            "attribute `nested`",
        ),
        ("country IT", "", "attributes", "name=value"),
        ("", "no-such-flag", "flag", "does not exist"),
    ] {
        let (status, _, page) = post_page(
            &server,
            path,
            &cookie,
            &[("csrf", &csrf), ("attributes", attributes), ("flag", flag)],
        )
        .await;
        assert_eq!(status, 400, "{attributes} {flag}");
        let error = &page[page
            .find(&format!("id=\"{field}-error\">"))
            .unwrap_or_else(|| panic!("no error at `{field}`: {page}"))..];
        let error = &error[..error.find("</p>").expect("end")];
        assert!(
            error.contains(&words.replace('`', "&#96;")) || error.contains(words),
            "{error}"
        );
        assert!(page.contains("aria-invalid=\"true\""));
        assert!(!page.contains("id=\"answers\""));
    }

    // Another environment: refused, for the form and for an evaluation.
    assert_eq!(
        get(&server, "/console/envs/dev/playground", &cookie)
            .await
            .0,
        403
    );
    let (status, _, _) = post_page(
        &server,
        "/console/envs/dev/playground",
        &cookie,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn audit_filters_narrow_the_list_and_a_scoped_token_sees_only_its_environment() {
    let server = start().await;
    with_flag(&server).await;
    server.create_env("dev").await;
    let ops = server.token("ops", "admin", None).await;
    for n in 0..60 {
        server
            .put_flag(
                "dev",
                switchyard_testkit::in_process::boolean_flag(&format!("f{n}")),
            )
            .await;
    }
    server
        .ok(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/kill",
            &ops,
            Some(json!({"reason": "card errors"})),
        )
        .await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let audit = |query: &'static str| {
        let cookie = cookie.clone();
        let server = &server;
        async move { get(server, &format!("/console/audit{query}"), &cookie).await }
    };

    let (status, first, _) = audit("").await;
    assert_eq!(status, 200);
    assert_eq!(count(&first, "<tr data-action="), 50, "a page holds 50");
    assert!(
        first.find("data-action=\"flag.kill\"") < first.find("data-action=\"flag.put\""),
        "newest first"
    );
    assert!(first.contains("id=\"older\""), "a link to older entries");
    let (_, second, _) = audit("?page=2").await;
    // Two environments, the ops token, 61 flags and the kill: 65 entries.
    assert_eq!(count(&second, "<tr data-action="), 15);
    assert!(second.contains("id=\"newer\"") && !second.contains("id=\"older\""));

    let (_, kills, _) = audit("?action=flag.kill").await;
    assert_eq!(count(&kills, "<tr data-action="), 1);
    assert!(kills.contains("card errors"));
    assert!(
        kills.contains("href=\"/console/envs/prod/flags/checkout/history\""),
        "a link to the flag's history"
    );
    let (_, by_ops, _) = audit("?actor=ops").await;
    assert_eq!(count(&by_ops, "<tr data-action="), 1);
    let (_, by_admin, _) = audit("?actor=bootstrap-admin&env=prod").await;
    assert_eq!(
        count(&by_admin, "<tr data-action="),
        2,
        "prod's creation and checkout's put: {by_admin}"
    );
    let (_, by_key, _) = audit("?key=f7").await;
    assert_eq!(count(&by_key, "<tr data-action="), 1);
    let (_, future, _) = audit("?since=2999-01-01T00:00").await;
    assert_eq!(count(&future, "<tr data-action="), 0);
    assert!(future.contains("id=\"no-entries\""));
    let (_, past, _) = audit("?until=2000-01-01T00:00").await;
    assert_eq!(count(&past, "<tr data-action="), 0);

    for (query, field) in [
        ("?since=yesterday", "since"),
        ("?action=flag.explode", "action"),
        ("?since=2025-02-01T00:00&until=2025-01-01T00:00", "until"),
        ("?page=0", "page"),
        ("?page=21", "page"),
    ] {
        let (status, page, _) = audit(query).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            page.contains(&format!("id=\"{field}-error\"")),
            "{query}: {page}"
        );
    }

    // A token scoped to prod sees prod's entries only, whatever it asks.
    let reader = server.token("reader", "sdk", Some("prod")).await;
    let (_, scoped) = sign_in(&server, &reader).await;
    let (status, page, _) = get(&server, "/console/audit", &scoped).await;
    assert_eq!(status, 200);
    assert!(count(&page, "<tr data-action=") >= 3, "{page}");
    assert_eq!(count(&page, "data-env=\"dev\""), 0);
    assert_eq!(
        count(&page, "<tr data-action="),
        count(&page, "data-env=\"prod\""),
        "every entry is prod's"
    );
    let (status, _, _) = get(&server, "/console/audit?env=dev", &scoped).await;
    assert_eq!(status, 403);
}

/// The secret on the page that issued a token.
fn secret_of(page: &str) -> String {
    let start = page.find("id=\"secret\"").expect("the secret shown");
    let value = &page[start..];
    let value = &value[value.find("value=\"").expect("its value") + 7..];
    value[..value.find('"').expect("end")].to_owned()
}

#[tokio::test]
async fn an_issued_token_is_shown_once_works_and_revoking_it_fails_it_and_ends_its_sessions() {
    let server = start().await;
    with_flag(&server).await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let (status, page, _) = get(&server, "/console/tokens", &cookie).await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "ci"),
        ("kind", "eval"),
        ("env", "prod"),
    ];
    let (status, cache, issued) = post_page(&server, "/console/tokens", &cookie, &form).await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    let secret = secret_of(&issued);
    assert!(secret.starts_with("swy_"), "{secret}");
    assert_eq!(count(&issued, &secret), 1, "shown once on the page");

    let (status, answer) = server
        .call(
            "POST",
            "/v1/evaluate/prod/checkout",
            Some(&secret),
            Some(json!({"targetingKey": "u-1"})),
        )
        .await;
    assert_eq!(
        (status, &answer["variant"]),
        (200, &json!("off")),
        "{answer}"
    );

    let (_, list, _) = get(&server, "/console/tokens", &cookie).await;
    assert!(list.contains("data-token=\"ci\""));
    assert!(!list.contains(&secret), "never shown again");
    let listed = server.ok("GET", "/v1/admin/tokens", ADMIN, None).await;
    assert!(!listed.to_string().contains(&secret));

    // Input the domain refuses is shown at its field, and nothing is issued.
    for (name, kind, env, status, field) in [
        ("ci", "eval", "prod", 409, "token-name"),
        ("bad name", "eval", "prod", 400, "token-name"),
        ("ops", "admin", "prod", 400, "token-env"),
        ("ops", "sdk", "", 400, "token-env"),
        ("ops", "root", "", 400, "token-kind"),
    ] {
        let form = [
            ("csrf", csrf.as_str()),
            ("name", name),
            ("kind", kind),
            ("env", env),
        ];
        let (got, _, page) = post_page(&server, "/console/tokens", &cookie, &form).await;
        assert_eq!(got, status, "{name} {kind} {env}: {page}");
        assert!(
            page.contains(&format!("id=\"{field}-error\"")),
            "{name} {kind} {env}"
        );
        assert!(!page.contains("id=\"secret\""));
    }

    // Its console session ends with it.
    let (_, ci_cookie) = sign_in(&server, &secret).await;
    assert_eq!(get(&server, "/console", &ci_cookie).await.0, 200);
    let (status, confirm, _) = get(&server, "/console/tokens/ci/revoke", &cookie).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("id=\"confirm-revoke\""));
    let (status, _, revoked) = post_page(
        &server,
        "/console/tokens/ci/revoke",
        &cookie,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 200);
    assert!(revoked.contains("id=\"notice\"") && !revoked.contains("data-token=\"ci\""));
    let (status, _) = server
        .call("POST", "/v1/evaluate/prod/checkout", Some(&secret), None)
        .await;
    assert_eq!(status, 401);
    let (status, _, location) = get(&server, "/console", &ci_cookie).await;
    assert_eq!((status, location.as_deref()), (303, Some("/console/login")));
    // The configured bootstrap token is not revocable here either.
    let (status, _, _) = post_page(
        &server,
        "/console/tokens/bootstrap-admin/revoke",
        &cookie,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn only_admins_reach_the_tokens_page_and_a_post_without_csrf_or_by_a_reader_is_refused() {
    let server = start().await;
    with_flag(&server).await;
    let token = server.token("reader", "sdk", Some("prod")).await;
    let (_, reader) = sign_in(&server, &token).await;
    let (status, _, _) = get(&server, "/console/tokens", &reader).await;
    assert_eq!(status, 403);
    let (_, page, _) = get(&server, "/console", &reader).await;
    assert!(!page.contains("href=\"/console/tokens\""), "no link to it");
    let csrf = csrf_of(&page);
    let issue = [
        ("csrf", csrf.as_str()),
        ("name", "sneaky"),
        ("kind", "admin"),
        ("env", ""),
    ];
    assert_eq!(post(&server, "/console/tokens", &reader, &issue).await, 403);
    assert_eq!(
        post(
            &server,
            "/console/tokens/reader/revoke",
            &reader,
            &[("csrf", &csrf)]
        )
        .await,
        403
    );
    assert_eq!(
        get(&server, "/console/tokens/reader/revoke", &reader)
            .await
            .0,
        403
    );

    let (_, admin) = sign_in(&server, ADMIN).await;
    let no_csrf = [("name", "sneaky"), ("kind", "admin"), ("env", "")];
    assert_eq!(
        post(&server, "/console/tokens", &admin, &no_csrf).await,
        403
    );
    assert_eq!(
        post(&server, "/console/tokens/reader/revoke", &admin, &[]).await,
        403
    );
    let tokens = server.ok("GET", "/v1/admin/tokens", ADMIN, None).await;
    let names: Vec<&str> = tokens["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["bootstrap-admin", "reader"],
        "nothing issued or revoked"
    );
}
