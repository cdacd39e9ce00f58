//! The console's session and CSRF rules over plain HTTP (no browser): cookie
//! attributes, expiry, revocation, the CSRF gate, scopes, nothing in URLs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_server::console::session::{SessionSettings, Sessions};
use switchyard_server::Server;
use switchyard_testkit::in_process::{deferring_flag, serve, start, TestServer, ADMIN};

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

/// Posts a form (the session's CSRF token added); returns the status and the page.
async fn submit(
    server: &TestServer,
    path: &str,
    cookie: &str,
    csrf: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let mut fields = vec![("csrf", csrf)];
    fields.extend_from_slice(form);
    let response = client()
        .post(server.url(path))
        .header("cookie", cookie)
        .form(&fields)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn segments_are_created_edited_refused_on_a_stale_version_and_deleted_only_when_unused() {
    let server = start().await;
    with_flag(&server).await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let (status, page, _) = get(&server, "/console/envs/prod/segments", &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("No segments in prod yet"), "{page}");
    let csrf = csrf_of(&page);
    let stored = || async {
        server
            .ok("GET", "/v1/admin/envs/prod/segments/staff", ADMIN, None)
            .await
    };

    // Created from the structured form: users, groups and a condition.
    let (status, _) = submit(
        &server,
        "/console/envs/prod/segments",
        &cookie,
        &csrf,
        &[
            ("rows", "2"),
            ("key", "staff"),
            ("description", "Our people"),
            ("users", "u1, u2"),
            ("groups", "employees"),
            ("c0_attribute", "email"),
            ("c0_op", "ends_with"),
            ("c0_values", "@example.com"),
            ("c1_attribute", ""),
            ("c1_op", "in"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let segment = stored().await;
    assert_eq!(
        (&segment["version"], &segment["when"]),
        (
            &json!(1),
            &json!({"users": ["u1", "u2"], "groups": ["employees"], "constraints": [
                {"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]})
        )
    );

    // An invalid condition is shown at its field and nothing is saved.
    let path = "/console/envs/prod/segments/staff";
    let (status, page) = submit(
        &server,
        path,
        &cookie,
        &csrf,
        &[
            ("version", "1"),
            ("action", "form"),
            ("rows", "1"),
            ("users", "u1"),
            ("c0_attribute", "email"),
            ("c0_op", "matches"),
            ("c0_values", "(["),
        ],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("id=\"c0-values-error\""),
        "shown at the field"
    );
    assert!(page.contains("when.constraints[0].values[0]"), "{page}");
    assert_eq!(stored().await["version"], 1, "nothing saved");

    // The JSON editor saves the whole segment.
    let (status, _) = submit(
        &server,
        path,
        &cookie,
        &csrf,
        &[
            ("version", "1"),
            ("action", "json"),
            (
                "json",
                r#"{"description": "Staff", "when": {"groups": ["staff"]}}"#,
            ),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        (&stored().await["version"], &stored().await["when"]),
        (&json!(2), &json!({"groups": ["staff"]}))
    );

    // A form rendered at version 1 is now stale: a conflict showing version 2.
    let (status, page) = submit(
        &server,
        path,
        &cookie,
        &csrf,
        &[
            ("version", "1"),
            ("action", "form"),
            ("rows", "0"),
            ("users", "u9"),
        ],
    )
    .await;
    assert_eq!(status, 409);
    assert!(page.contains("id=\"conflict\""));
    assert!(page.contains("it is now at version 2"), "{page}");
    let theirs = &page[page.find("id=\"conflict-theirs\"").expect("their version")..];
    let theirs = &theirs[..theirs.find("</pre>").expect("end")];
    assert!(
        theirs.contains("Staff") && !theirs.contains("u9"),
        "the stored version, not ours: {theirs}"
    );
    assert_eq!(stored().await["version"], 2, "nothing overwritten");

    // Used by a flag: the delete is refused, naming the flag.
    let mut flag = server
        .ok("GET", "/v1/admin/envs/prod/flags/checkout", ADMIN, None)
        .await;
    flag["rules"] =
        json!([{"id": "staff", "when": {"segments": ["staff"]}, "serve": {"variant": "on"}}]);
    server.put_flag("prod", flag).await;
    let (_, list, _) = get(&server, "/console/envs/prod/segments", &cookie).await;
    assert!(
        list.contains("/console/envs/prod/flags/checkout\">checkout</a>"),
        "used by shown"
    );
    let delete = "/console/envs/prod/segments/staff/delete";
    let (status, page) = submit(&server, delete, &cookie, &csrf, &[("version", "2")]).await;
    assert_eq!(status, 409);
    assert!(page.contains("used by flag(s) `checkout`"), "{page}");
    assert_eq!(stored().await["version"], 2);

    // Unused again: deleted.
    let mut flag = server
        .ok("GET", "/v1/admin/envs/prod/flags/checkout", ADMIN, None)
        .await;
    flag["rules"] = json!([]);
    server.put_flag("prod", flag).await;
    let (status, _) = submit(&server, delete, &cookie, &csrf, &[("version", "2")]).await;
    assert_eq!(status, 303);
    let (status, _) = server
        .call(
            "GET",
            "/v1/admin/envs/prod/segments/staff",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn readers_see_no_segment_or_promote_controls_and_their_posts_are_refused() {
    let server = start().await;
    with_flag(&server).await;
    server.create_env("dev").await;
    server
        .ok(
            "PUT",
            "/v1/admin/envs/prod/segments/staff",
            ADMIN,
            Some(json!({"key": "staff", "when": {"groups": ["staff"]}})),
        )
        .await;
    let token = server.token("reader", "sdk", Some("prod")).await;
    let (_, cookie) = sign_in(&server, &token).await;
    let (status, list, _) = get(&server, "/console/envs/prod/segments", &cookie).await;
    assert_eq!(status, 200);
    assert!(list.contains("staff") && !list.contains("id=\"new-segment\""));
    let (status, page, _) = get(&server, "/console/envs/prod/segments/staff", &cookie).await;
    assert_eq!(status, 200);
    for control in ["segment-form", "save-json", "delete-segment"] {
        assert!(
            !page.contains(&format!("id=\"{control}\"")),
            "{control} shown"
        );
    }
    let csrf = csrf_of(&page);
    for (path, form) in [
        (
            "/console/envs/prod/segments/staff",
            vec![
                ("version", "1"),
                ("action", "form"),
                ("rows", "0"),
                ("users", "x"),
            ],
        ),
        (
            "/console/envs/prod/segments/staff/delete",
            vec![("version", "1")],
        ),
        (
            "/console/envs/prod/segments",
            vec![("key", "forged"), ("rows", "0")],
        ),
        (
            "/console/promote",
            vec![("from", "prod"), ("to", "dev"), ("seen", "checkout 1 -")],
        ),
    ] {
        let (status, _) = submit(&server, path, &cookie, &csrf, &form).await;
        assert_eq!(status, 403, "POST {path}");
    }
    let (status, _, _) = get(&server, "/console/promote", &cookie).await;
    assert_eq!(status, 403, "promote is for admins");
    let segment = server
        .ok("GET", "/v1/admin/envs/prod/segments/staff", ADMIN, None)
        .await;
    assert_eq!(segment["version"], 1);
    let (status, _) = server
        .call(
            "GET",
            "/v1/admin/envs/dev/flags/checkout",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing promoted");
}

#[tokio::test]
async fn promote_previews_exactly_the_changed_flags_applies_them_and_refuses_a_stale_preview() {
    let server = start().await;
    server.create_env("staging").await;
    server.create_env("prod").await;
    let flag = |key: &str, default: &str| {
        json!({"key": key, "kind": "boolean", "variants": {"on": true, "off": false},
               "off_variant": "off", "default": {"variant": default}})
    };
    for (key, default) in [("added", "on"), ("changed", "on"), ("same", "off")] {
        server.put_flag("staging", flag(key, default)).await;
    }
    server.put_flag("prod", flag("changed", "off")).await;
    server.put_flag("prod", flag("same", "off")).await;
    server.put_flag("prod", flag("prod-only", "off")).await;
    let (_, cookie) = sign_in(&server, ADMIN).await;

    let preview_path = "/console/promote?from=staging&to=prod";
    let (status, page, _) = get(&server, preview_path, &cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("2 of 3 flag(s) would change"), "{page}");
    for (key, change) in [("added", "added"), ("changed", "changed"), ("same", "same")] {
        assert!(
            page.contains(&format!("data-flag=\"{key}\" data-change=\"{change}\"")),
            "{key} is {change}"
        );
    }
    let item = |key: &str| {
        let start = page.find(&format!("data-flag=\"{key}\"")).expect("listed");
        let rest = &page[start..];
        rest[..rest.find("</li>").expect("end")].to_owned()
    };
    let changed = item("changed");
    let (removed, added): (Vec<&str>, Vec<&str>) = (
        changed.split("<span class=\"del\">").skip(1).collect(),
        changed.split("<span class=\"add\">").skip(1).collect(),
    );
    assert!(
        removed.len() == 1
            && removed[0].contains("off")
            && added.len() == 1
            && added[0].contains("on"),
        "the changed flag's diff: its default goes from off to on: {changed}"
    );
    assert!(
        !item("same").contains("<pre"),
        "no diff for an unchanged flag"
    );
    assert!(page.contains("id=\"only-in-target\""), "prod-only is kept");
    let csrf = csrf_of(&page);
    let seen: Vec<String> = page
        .match_indices("name=\"seen\" value=\"")
        .map(|(at, m)| {
            let rest = &page[at + m.len()..];
            rest[..rest.find('"').expect("end")].to_owned()
        })
        .collect();
    assert_eq!(seen, ["added 1 -", "changed 1 1", "same 1 1"]);
    let mut form: Vec<(&str, &str)> =
        vec![("from", "staging"), ("to", "prod"), ("reason", "release 7")];
    form.extend(seen.iter().map(|s| ("seen", s.as_str())));

    // The target changes after the preview: the confirm is refused, nothing applied.
    server.put_flag("prod", flag("changed", "on")).await;
    let (status, page) = submit(&server, "/console/promote", &cookie, &csrf, &form).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("changed since the preview"), "{page}");
    let (status, _) = server
        .call("GET", "/v1/admin/envs/prod/flags/added", Some(ADMIN), None)
        .await;
    assert_eq!(status, 404, "nothing promoted");

    // A fresh preview, confirmed: applied through the admin path (audited).
    let (_, page, _) = get(&server, preview_path, &cookie).await;
    assert!(page.contains("1 of 3 flag(s) would change"), "{page}");
    let seen: Vec<String> = page
        .match_indices("name=\"seen\" value=\"")
        .map(|(at, m)| {
            let rest = &page[at + m.len()..];
            rest[..rest.find('"').expect("end")].to_owned()
        })
        .collect();
    let mut form: Vec<(&str, &str)> =
        vec![("from", "staging"), ("to", "prod"), ("reason", "release 7")];
    form.extend(seen.iter().map(|s| ("seen", s.as_str())));
    let (status, page) = submit(&server, "/console/promote", &cookie, &csrf, &form).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"promoted\""), "{page}");
    assert!(page.contains("0 of 3 flag(s) would change"), "{page}");
    let added = server
        .ok("GET", "/v1/admin/envs/prod/flags/added", ADMIN, None)
        .await;
    assert_eq!(added["default"], json!({"variant": "on"}));
    let audit = server
        .ok("GET", "/v1/admin/audit?env=prod&flag=added", ADMIN, None)
        .await;
    assert_eq!(
        (
            &audit["entries"][0]["action"],
            &audit["entries"][0]["reason"]
        ),
        (&json!("flag.promote"), &json!("release 7"))
    );

    // The source changes after a preview (of `same`, now edited in staging): refused too.
    server.put_flag("staging", flag("same", "on")).await;
    let (_, page, _) = get(&server, &format!("{preview_path}&flags=same"), &cookie).await;
    assert!(page.contains("1 of 1 flag(s) would change"), "{page}");
    assert!(
        page.contains("name=\"seen\" value=\"same 2 1\""),
        "staging at 2, prod at 1"
    );
    server.put_flag("staging", flag("same", "off")).await;
    let (status, page) = submit(
        &server,
        "/console/promote",
        &cookie,
        &csrf,
        &[("from", "staging"), ("to", "prod"), ("seen", "same 2 1")],
    )
    .await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("flag `same` in `staging` changed since the preview"),
        "{page}"
    );
    let same = server
        .ok("GET", "/v1/admin/envs/prod/flags/same", ADMIN, None)
        .await;
    assert_eq!(same["version"], 1, "nothing promoted");

    // Bad input is a clear 4xx page.
    let (status, page, _) = get(&server, "/console/promote?from=staging&to=staging", &cookie).await;
    assert_eq!(status, 400);
    assert!(page.contains("two different environments"));
    let (status, page, _) = get(&server, "/console/promote?from=staging&to=nope", &cookie).await;
    assert_eq!(status, 404);
    assert!(page.contains("`nope` does not exist"));
}

#[tokio::test]
async fn exposures_show_counts_per_variant_and_a_marker_for_each_change() {
    let server = start().await;
    with_flag(&server).await;
    server.create_env("dev").await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let path = "/console/envs/prod/flags/checkout/exposures";

    let (status, page, _) = get(&server, path, &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"no-metrics\""), "empty state: {page}");
    assert!(!page.contains("<svg"));

    let sdk = server.token("web", "sdk", Some("prod")).await;
    let (status, body) = server
        .call(
            "POST",
            "/v1/sdk/metrics",
            Some(&sdk),
            Some(json!({
                "exposures": [{"flag": "checkout", "variant": "on", "count": 7},
                              {"flag": "checkout", "variant": "off", "count": 3}],
                "events": [{"event": "purchase", "flag": "checkout", "variant": "on", "count": 2}]})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mut flag = server
        .ok("GET", "/v1/admin/envs/prod/flags/checkout", ADMIN, None)
        .await;
    flag["default"] = json!({"variant": "on"});
    server.put_flag("prod", flag).await;

    for window in ["hour", "day", "week"] {
        let (status, page, _) = get(&server, &format!("{path}?window={window}"), &cookie).await;
        assert_eq!(status, 200, "{window}");
        assert!(page.contains("<svg id=\"exposure-chart\""), "{window}");
        for (series, total) in [
            ("exposures of off", 3),
            ("exposures of on", 7),
            ("event purchase (on)", 2),
        ] {
            assert!(
                page.contains(&format!(
                    "<td class=\"total\" data-series=\"{series}\">{total}</td>"
                )),
                "{window}: {series} = {total} in the table"
            );
            assert!(page.contains("<polyline class=\"series"), "{window}");
        }
        assert!(
            page.contains("data-marker=\"1\"")
                && page.contains("flag.put → version 2 by bootstrap-admin"),
            "{window}: a marker for the change: {page}"
        );
    }
    let (status, page, _) = get(&server, &format!("{path}?window=year"), &cookie).await;
    assert_eq!(status, 400);
    assert!(page.contains("`window` must be"));

    // The flag page links here.
    let (_, page, _) = get(&server, "/console/envs/prod/flags/checkout", &cookie).await;
    assert!(page.contains(&format!("id=\"exposures-link\" href=\"{path}\"")));

    // A token scoped to another environment may not look.
    let reader = server.token("dev-reader", "eval", Some("dev")).await;
    let (_, reader_cookie) = sign_in(&server, &reader).await;
    let (status, _, _) = get(&server, path, &reader_cookie).await;
    assert_eq!(status, 403);
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

#[tokio::test]
async fn a_flag_that_defers_says_so_and_its_rollout_splits_against_its_last_variant() {
    let server = start().await;
    server.create_env("prod").await;
    server.put_flag("prod", deferring_flag("legacy")).await;
    let (_, cookie) = sign_in(&server, ADMIN).await;
    let (status, page, _) = get(&server, "/console/envs/prod/flags/legacy", &cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("none: callers get their code default"),
        "{page}"
    );
    assert!(
        page.contains("Revive"),
        "a killed flag offers revival: {page}"
    );
    // Live, it offers the kill in those words, and its rollout slider names the last
    // variant as what the rest get.
    let mut live = deferring_flag("soft");
    live["enabled"] = json!(true);
    server.put_flag("prod", live).await;
    let (status, page, _) = get(&server, "/console/envs/prod/flags/soft", &cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Kill: everyone gets their code default"),
        "{page}"
    );
    assert!(page.contains(r#"data-off="b""#), "{page}");
}
