//! The web console driven the way a person uses it: a real headless Chromium over
//! WebDriver (testkit `browser`), asserting what the page shows and what the API then
//! returns. Screenshots land in `<target>/console-screenshots/`.

use serde_json::{json, Value};
use switchyard_testkit::browser::Browser;
use switchyard_testkit::in_process::{start, TestServer, ADMIN};
use switchyard_testkit::{eventually, DEADLINE};

/// A server with environment `prod` holding the boolean flag `checkout`.
async fn server_with_flag() -> TestServer {
    let server = start().await;
    server.create_env("prod").await;
    server
        .put_flag(
            "prod",
            json!({"key": "checkout", "kind": "boolean", "description": "New checkout",
                   "variants": {"on": true, "off": false}, "off_variant": "off",
                   "default": {"variant": "off"}, "tags": ["payments"]}),
        )
        .await;
    server
}

async fn sign_in(browser: &Browser, server: &TestServer, token: &str) {
    browser.goto(&server.url("/console/login")).await;
    browser.fill("#token", token).await;
    browser.click("#sign-in").await;
    browser.find("#who").await;
}

async fn flag(server: &TestServer, key: &str) -> Value {
    server
        .ok(
            "GET",
            &format!("/v1/admin/envs/prod/flags/{key}"),
            ADMIN,
            None,
        )
        .await
}

#[tokio::test]
async fn sign_in_shows_the_environments_and_sign_out_ends_the_session() {
    let server = server_with_flag().await;
    let browser = Browser::start().await;
    browser.goto(&server.url("/console")).await;
    assert_eq!(
        browser.path().await,
        "/console/login",
        "no session: sign in first"
    );
    browser.screenshot("console-sign-in").await;
    browser.fill("#token", "not-a-token").await;
    browser.click("#sign-in").await;
    browser.wait_text("#token-error", "not valid").await;

    sign_in(&browser, &server, ADMIN).await;
    assert_eq!(browser.text("#who").await, "bootstrap-admin");
    assert!(browser.text("#envs").await.contains("prod"));
    browser.screenshot("console-environments").await;
    browser.click("#envs a").await;
    browser.wait_text("#flags", "checkout").await;
    browser.screenshot("console-flag-list").await;

    browser.click("#sign-out").await;
    eventually(DEADLINE, "the sign-in page", || async {
        (browser.path().await == "/console/login").then_some(())
    })
    .await;
    browser.goto(&server.url("/console/envs/prod/flags")).await;
    assert_eq!(
        browser.path().await,
        "/console/login",
        "the session is gone"
    );
    assert!(server.state.console.is_empty());
}

#[tokio::test]
async fn a_flag_is_created_and_an_invalid_regex_is_shown_at_its_field_and_saves_nothing() {
    let server = start().await;
    server.create_env("prod").await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser.goto(&server.url("/console/envs/prod/flags")).await;
    browser.click("#new-flag").await;
    browser.fill("#key", "new-search").await;
    browser.fill("#description", "Search v2").await;
    browser.fill("#tags", "search, beta").await;
    browser.click("#create-flag").await;
    browser.wait_text("#flag-key", "new-search").await;
    let created = flag(&server, "new-search").await;
    assert_eq!(
        (&created["version"], &created["tags"]),
        (&json!(1), &json!(["search", "beta"]))
    );

    browser.click("#add-rule summary").await;
    browser.fill("#new-id", "beta-emails").await;
    browser.fill("#c0-attribute", "email").await;
    let op = browser.find("#c0-op").await;
    op.select_by_value("matches")
        .await
        .expect("operator chosen");
    browser.fill("#c0-values", "([a-z]+@example\\.com").await;
    browser.click("#add-rule-submit").await;
    let error = browser.text("#c0-values-error").await;
    assert!(
        error.contains("regex") || error.contains("regular"),
        "{error}"
    );
    assert_eq!(
        browser
            .find("#c0-values")
            .await
            .attr("aria-invalid")
            .await
            .expect("attr"),
        Some("true".to_owned())
    );
    browser.screenshot("console-invalid-regex").await;
    let after = flag(&server, "new-search").await;
    assert_eq!(
        (&after["version"], after.get("rules")),
        (&json!(1), None),
        "nothing saved"
    );

    // Fixed, the same form saves.
    browser.fill("#c0-values", "@example\\.com$").await;
    browser.click("#add-rule-submit").await;
    browser.wait_text("#rules", "beta-emails").await;
    assert_eq!(
        flag(&server, "new-search").await["rules"][0]["id"],
        "beta-emails"
    );
}

#[tokio::test]
async fn the_slider_at_30_percent_gives_the_variant_to_about_30_percent_of_users() {
    let server = server_with_flag().await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser
        .goto(&server.url("/console/envs/prod/flags/checkout"))
        .await;
    let slider = browser.find("#rollout-percent").await;
    browser
        .client
        .execute(
            "arguments[0].value = 30; arguments[0].dispatchEvent(new Event('input'));",
            vec![serde_json::to_value(&slider).expect("element")],
        )
        .await
        .expect("slider moved");
    browser
        .wait_text("#rollout-meaning", "30 % of users get on")
        .await;
    browser.screenshot("console-rollout-slider").await;
    browser.click("#save-rollout").await;
    browser.wait_text("#flag-state", "ramping 30 %").await;

    let sdk = server.token("eval-prod", "eval", Some("prod")).await;
    let mut on = 0;
    for n in 0..1000 {
        let (status, answer) = server
            .call(
                "POST",
                "/v1/evaluate/prod/checkout",
                Some(&sdk),
                Some(json!({"targetingKey": format!("user-{n}")})),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        if answer["value"] == json!(true) {
            on += 1;
        }
    }
    assert!((250..=350).contains(&on), "{on} of 1000 users get `on`");
}

#[tokio::test]
async fn a_kill_with_a_reason_is_in_the_history_and_one_click_reverts_it() {
    let server = server_with_flag().await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser
        .goto(&server.url("/console/envs/prod/flags/checkout"))
        .await;
    browser.click("#kill").await;
    // `required`: the browser does not send the form without a reason.
    assert_eq!(flag(&server, "checkout").await["enabled"], json!(true));
    browser.fill("#reason", "card errors spiking").await;
    browser.click("#kill").await;
    browser.wait_text("#flag-state", "killed").await;
    assert_eq!(flag(&server, "checkout").await["enabled"], json!(false));
    let audit = server
        .ok("GET", "/v1/admin/audit?env=prod&flag=checkout", ADMIN, None)
        .await;
    assert_eq!(
        (
            &audit["entries"][0]["action"],
            &audit["entries"][0]["reason"]
        ),
        (&json!("flag.kill"), &json!("card errors spiking"))
    );

    browser.click("#history-link").await;
    browser.wait_text("#history", "card errors spiking").await;
    browser.screenshot("console-history").await;
    browser.click("button[data-revert-to='1']").await;
    browser.wait_text("#flag-state", "serves off").await;
    let reverted = flag(&server, "checkout").await;
    assert_eq!(
        (&reverted["enabled"], &reverted["version"]),
        (&json!(true), &json!(3))
    );
}

#[tokio::test]
async fn a_change_made_through_the_api_appears_in_an_open_page_without_reload() {
    let server = server_with_flag().await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser
        .goto(&server.url("/console/envs/prod/flags/checkout"))
        .await;
    eventually(DEADLINE, "the live stream to connect", || async {
        let live = browser
            .client
            .execute("return document.body.dataset.live || ''", vec![])
            .await;
        (live.ok() == Some(json!("connected"))).then_some(())
    })
    .await;
    browser
        .client
        .execute("window.__same_page = true;", vec![])
        .await
        .expect("marked");
    server
        .ok(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/kill",
            ADMIN,
            Some(json!({"reason": "api"})),
        )
        .await;
    browser.wait_text("#flag-state", "killed").await;
    let same = browser
        .client
        .execute("return window.__same_page === true", vec![])
        .await;
    assert_eq!(
        same.expect("script"),
        json!(true),
        "updated in place, not reloaded"
    );
    assert!(browser
        .find("#stale")
        .await
        .is_displayed()
        .await
        .expect("displayed"));
    browser.screenshot("console-live-update").await;
}

#[tokio::test]
async fn two_browsers_editing_the_same_flag_the_second_sees_a_conflict() {
    let server = server_with_flag().await;
    let first = Browser::start().await;
    let second = Browser::start().await;
    for browser in [&first, &second] {
        sign_in(browser, &server, ADMIN).await;
        browser
            .goto(&server.url("/console/envs/prod/flags/checkout"))
            .await;
        browser.find("#rollout-percent").await;
    }
    first.fill("#reason", "first").await;
    first.click("#kill").await;
    first.wait_text("#flag-state", "killed").await;

    // The second page was rendered at version 1.
    second.click("#save-rollout").await;
    let conflict = second.wait_text("#conflict", "version 1").await;
    assert!(conflict.contains("version 2"), "{conflict}");
    assert!(
        !second.exists("#conflict-yours").await,
        "no mix of their change and ours"
    );
    second.screenshot("console-conflict").await;
    let stored = flag(&server, "checkout").await;
    assert_eq!(
        (&stored["version"], &stored["default"]),
        (&json!(2), &json!({"variant": "off"}))
    );
}

#[tokio::test]
async fn a_read_only_token_sees_no_write_control_and_its_forged_post_is_refused() {
    let server = server_with_flag().await;
    server.create_env("dev").await;
    let token = server.token("prod-reader", "sdk", Some("prod")).await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, &token).await;
    assert!(browser.text(".who").await.contains("read-only"));
    assert!(
        !browser.text("#envs").await.contains("dev"),
        "only its own environment"
    );
    browser
        .goto(&server.url("/console/envs/prod/flags/checkout"))
        .await;
    browser.find("#flag-state").await;
    for control in [
        "#kill",
        "#save-rollout",
        "#add-rule-form",
        "#save-json",
        "#new-flag",
    ] {
        assert!(
            !browser.exists(control).await,
            "{control} shown to a read-only token"
        );
    }
    browser.screenshot("console-read-only").await;

    // The same session's cookie and CSRF token, replayed outside the browser.
    let cookie = browser
        .client
        .get_named_cookie("sy_console")
        .await
        .expect("session cookie");
    let csrf = browser
        .find("meta[name=csrf-token]")
        .await
        .attr("content")
        .await
        .expect("attr")
        .expect("csrf token");
    let forged = server
        .http
        .post(server.url("/console/envs/prod/flags/checkout/kill"))
        .header("cookie", format!("sy_console={}", cookie.value()))
        .form(&[
            ("csrf", csrf.as_str()),
            ("version", "1"),
            ("reason", "forged"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 403);
    assert_eq!(flag(&server, "checkout").await["enabled"], json!(true));
}

#[tokio::test]
async fn at_phone_width_pages_fit_and_every_control_has_a_label() {
    let server = server_with_flag().await;
    let browser = Browser::phone(390, 844).await;
    sign_in(&browser, &server, ADMIN).await;
    let width = browser
        .client
        .execute("return window.innerWidth", vec![])
        .await
        .expect("script");
    assert_eq!(width, json!(390), "a phone-sized viewport");
    for path in [
        "/console",
        "/console/envs/prod/flags",
        "/console/envs/prod/flags/checkout",
        "/console/envs/prod/new-flag",
        "/console/envs/prod/flags/checkout/history",
        "/console/envs/prod/segments",
        "/console/envs/prod/new-segment",
        "/console/envs/prod/flags/checkout/exposures",
        "/console/promote",
        "/console/envs/prod/playground",
        "/console/audit",
        "/console/tokens",
    ] {
        browser.goto(&server.url(path)).await;
        browser.find("main").await;
        let fits = browser
            .client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(fits, json!(true), "{path} scrolls sideways at phone width");
        // Every visible form control is named by a label (or aria-label) for screen
        // readers, and can take the keyboard's focus.
        let unlabelled = browser
            .client
            .execute(
                "return [...document.querySelectorAll('input, select, textarea, button')]
                   .filter(e => e.type !== 'hidden')
                   .filter(e => e.tagName === 'BUTTON'
                      ? !e.textContent.trim()
                      : !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                   .map(e => e.id || e.name)",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(unlabelled, json!([]), "unlabelled controls on {path}");
        let unfocusable = browser
            .client
            .execute(
                "return [...document.querySelectorAll('a[href], input, select, textarea, button')]
                   .filter(e => e.type !== 'hidden' && e.tabIndex < 0).length",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(
            unfocusable,
            json!(0),
            "controls out of the tab order on {path}"
        );
    }
    browser.goto(&server.url("/console/envs/prod/flags")).await;
    browser.screenshot("console-phone-flag-list").await;
}

#[tokio::test]
async fn a_segment_created_in_the_browser_matches_once_a_flag_uses_it() {
    let server = server_with_flag().await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser
        .goto(&server.url("/console/envs/prod/segments"))
        .await;
    browser.click("#new-segment").await;
    browser.fill("#segment-key-input", "italy-beta").await;
    browser
        .fill("#segment-description", "Beta testers in Italy")
        .await;
    browser.fill("#segment-groups", "beta").await;
    browser.fill("#c0-attribute", "country").await;
    browser
        .find("#c0-op")
        .await
        .select_by_value("in")
        .await
        .expect("operator chosen");
    browser.fill("#c0-values", "IT").await;
    browser.click("#save-segment").await;
    browser.wait_text("#segment-key", "italy-beta").await;
    browser.screenshot("console-segment").await;

    let mut flag = flag(&server, "checkout").await;
    flag["rules"] = json!([{"id": "italy", "when": {"segments": ["italy-beta"]},
                            "serve": {"variant": "on"}}]);
    server.put_flag("prod", flag).await;
    browser
        .goto(&server.url("/console/envs/prod/segments"))
        .await;
    browser.wait_text("#segments", "checkout").await;

    let eval = server.token("eval-prod", "eval", Some("prod")).await;
    for (context, expected) in [
        // A segment's parts must all hold: in group `beta` and in Italy.
        (
            json!({"targetingKey": "u1", "groups": ["beta"], "country": "IT"}),
            true,
        ),
        (
            json!({"targetingKey": "u2", "groups": ["beta"], "country": "FR"}),
            false,
        ),
        (json!({"targetingKey": "u3", "country": "IT"}), false),
    ] {
        let answer = server
            .ok(
                "POST",
                "/v1/evaluate/prod/checkout",
                &eval,
                Some(context.clone()),
            )
            .await;
        assert_eq!(answer["value"], json!(expected), "{context}: {answer}");
    }
}

#[tokio::test]
async fn the_exposures_chart_draws_a_line_per_variant_and_marks_the_flag_s_changes() {
    let server = server_with_flag().await;
    let sdk = server.token("web", "sdk", Some("prod")).await;
    server
        .ok(
            "POST",
            "/v1/sdk/metrics",
            &sdk,
            Some(json!({
                "exposures": [{"flag": "checkout", "variant": "on", "count": 40},
                              {"flag": "checkout", "variant": "off", "count": 60}],
                "events": [{"event": "purchase", "flag": "checkout", "variant": "on", "count": 9}]})),
        )
        .await;
    server
        .ok(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/kill",
            ADMIN,
            Some(json!({"reason": "too many errors"})),
        )
        .await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser
        .goto(&server.url("/console/envs/prod/flags/checkout"))
        .await;
    browser.click("#exposures-link").await;
    browser.find("#exposure-chart").await;
    let drawn = browser
        .client
        .execute(
            "return [document.querySelectorAll('#exposure-chart polyline.series').length,
                     document.querySelectorAll('#exposure-chart .marker').length]",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        drawn,
        json!([3, 2]),
        "three series; markers for the creation and the kill"
    );
    let changes = browser.text("#changes").await;
    assert!(
        changes.contains("flag.put → version 1") && changes.contains("flag.kill → version 2"),
        "{changes}"
    );
    assert!(changes.contains("too many errors"), "{changes}");
    assert!(browser.text("#exposure-table").await.contains("60"));
    browser.screenshot("console-exposures").await;
}

#[tokio::test]
async fn promote_shows_the_diff_first_and_applies_it_on_confirm() {
    let server = server_with_flag().await;
    server.create_env("staging").await;
    server
        .put_flag(
            "staging",
            json!({"key": "checkout", "kind": "boolean", "description": "New checkout",
                   "variants": {"on": true, "off": false}, "off_variant": "off",
                   "default": {"variant": "on"}, "tags": ["payments"]}),
        )
        .await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser.goto(&server.url("/console/promote")).await;
    for (select, value) in [("#promote-from", "staging"), ("#promote-to", "prod")] {
        browser
            .find(select)
            .await
            .select_by_value(value)
            .await
            .expect("environment chosen");
    }
    browser.click("#preview").await;
    browser
        .wait_text("#preview-summary", "1 of 1 flag(s) would change")
        .await;
    browser.screenshot("console-promote").await;
    browser.fill("#promote-reason", "release 7").await;
    browser.click("#confirm").await;
    browser.wait_text("#promoted", "Promoted 1 flag(s)").await;
    assert_eq!(
        flag(&server, "checkout").await["default"],
        json!({"variant": "on"})
    );
}

/// The answer shown in the playground's row for `flag`, as the API writes it:
/// `{variant, value, reason, rule_id}`.
async fn shown(browser: &Browser, flag: &str) -> Value {
    let cell = |class: &'static str| {
        let css = format!("#answers tr[data-flag='{flag}'] .{class}");
        async move { browser.text(&css).await }
    };
    // A dash stands for "none".
    let optional = |text: String| {
        if text == "—" {
            Value::Null
        } else {
            Value::String(text)
        }
    };
    let variant = optional(cell("variant").await);
    let value: Value = serde_json::from_str(&cell("value").await).expect("the value is JSON");
    let reason = cell("reason").await;
    let rule_id = optional(cell("rule").await);
    json!({"variant": variant, "value": value, "reason": reason, "rule_id": rule_id})
}

/// The same fields of an evaluation API answer.
fn answered(evaluation: &Value) -> Value {
    json!({
        "variant": evaluation["variant"],
        "value": evaluation["value"],
        "reason": evaluation["reason"],
        "rule_id": evaluation.get("rule_id").cloned().unwrap_or(Value::Null),
    })
}

#[tokio::test]
async fn the_playground_answers_what_the_evaluation_api_answers() {
    let server = server_with_flag().await;
    server
        .put_flag(
            "prod",
            json!({"key": "banner", "kind": "string",
                   "variants": {"blue": "#00f", "green": "#0f0", "red": "#f00"},
                   "off_variant": "blue", "default": {"variant": "blue"},
                   "rules": [
                       {"id": "staff", "when": {"groups": ["staff"]}, "serve": {"variant": "green"}},
                       {"id": "italians",
                        "when": {"constraints": [{"attribute": "country", "op": "in", "values": ["IT"]}]},
                        "serve": {"variant": "red"}}]}),
        )
        .await;
    let eval = server.token("eval-prod", "eval", Some("prod")).await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    let contexts = [
        (
            "u-1",
            "beta",
            "country=IT\nplan=pro",
            json!({"targetingKey": "u-1", "groups": ["beta"], "country": "IT", "plan": "pro"}),
        ),
        (
            "u-2",
            "beta, staff",
            "{\"country\": \"IT\", \"age\": 42}",
            json!({"targetingKey": "u-2", "groups": ["beta", "staff"], "country": "IT", "age": 42}),
        ),
        ("u-3", "", "", json!({"targetingKey": "u-3"})),
    ];
    for (key, groups, attributes, context) in &contexts {
        for flag in ["banner", ""] {
            browser
                .goto(&server.url("/console/envs/prod/playground"))
                .await;
            browser.fill("#targeting_key", key).await;
            browser.fill("#groups", groups).await;
            browser.fill("#attributes", attributes).await;
            browser
                .find("#flag")
                .await
                .select_by_value(flag)
                .await
                .expect("flag chosen");
            browser.click("#evaluate").await;
            browser.find("#answers").await;
            if flag.is_empty() {
                let bulk = server
                    .ok("POST", "/v1/evaluate/prod", &eval, Some(context.clone()))
                    .await;
                let flags = bulk["flags"].as_object().expect("every flag");
                assert_eq!(flags.len(), 2);
                for (flag, evaluation) in flags {
                    assert_eq!(
                        shown(&browser, flag).await,
                        answered(evaluation),
                        "{flag} for {context}"
                    );
                }
            } else {
                let one = server
                    .ok(
                        "POST",
                        "/v1/evaluate/prod/banner",
                        &eval,
                        Some(context.clone()),
                    )
                    .await;
                assert_eq!(shown(&browser, "banner").await, answered(&one), "{context}");
            }
        }
    }
    // The first context matched the attribute rule, the second the group rule.
    browser
        .goto(&server.url("/console/envs/prod/playground"))
        .await;
    browser.fill("#targeting_key", "u-1").await;
    browser.fill("#groups", "beta").await;
    browser.fill("#attributes", "country=IT\nplan=pro").await;
    browser.click("#evaluate").await;
    browser
        .wait_text("#answers tr[data-flag='banner'] .rule", "italians")
        .await;
    browser.screenshot("console-playground").await;

    // Malformed attributes: the form again with the error at the field.
    browser.fill("#attributes", "{\"country\": ").await;
    browser.click("#evaluate").await;
    let error = browser.text("#attributes-error").await;
    assert!(error.contains("not a JSON object"), "{error}");
    assert!(!browser.exists("#answers").await);
}

#[tokio::test]
async fn kill_with_a_reason_and_see_it_in_the_audit_log() {
    let server = server_with_flag().await;
    let ops = server.token("ops", "admin", None).await;
    // Noise the filters must remove: another actor's and another action's entries.
    server
        .ok(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/kill",
            ADMIN,
            Some(json!({"reason": "earlier test kill"})),
        )
        .await;
    server
        .ok(
            "POST",
            "/v1/admin/envs/prod/flags/checkout/revive",
            ADMIN,
            Some(json!({"reason": "back"})),
        )
        .await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, &ops).await;
    browser
        .goto(&server.url("/console/envs/prod/flags/checkout"))
        .await;
    browser.fill("#reason", "payment provider outage").await;
    browser.click("#kill").await;
    browser.wait_text("#flag-state", "killed").await;

    browser.click("nav.sections a[href='/console/audit']").await;
    browser.find("#audit").await;
    browser
        .find("#action")
        .await
        .select_by_value("flag.kill")
        .await
        .expect("action chosen");
    browser.fill("#actor", "ops").await;
    browser.click("#filter").await;
    eventually(DEADLINE, "the filtered audit log", || async {
        let rows = browser
            .client
            .execute(
                "return document.querySelectorAll('#audit tbody tr').length",
                vec![],
            )
            .await
            .ok()?;
        (browser.path().await == "/console/audit" && rows == json!(1)).then_some(())
    })
    .await;
    let row = browser.text("#audit tbody tr").await;
    for wanted in [
        "ops",
        "flag.kill",
        "prod",
        "checkout",
        "payment provider outage",
    ] {
        assert!(row.contains(wanted), "{wanted} missing in {row}");
    }
    assert!(!row.contains("earlier test kill"));
    browser.screenshot("console-audit-log").await;
    browser.click("#audit tbody tr a").await;
    browser
        .wait_text("#history", "payment provider outage")
        .await;
}

#[tokio::test]
async fn the_tokens_page_issues_a_token_shown_once() {
    let server = server_with_flag().await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, ADMIN).await;
    browser.goto(&server.url("/console/tokens")).await;
    browser.fill("#token-name", "checkout-service").await;
    browser
        .find("#token-kind")
        .await
        .select_by_value("sdk")
        .await
        .expect("kind chosen");
    browser
        .find("#token-env")
        .await
        .select_by_value("prod")
        .await
        .expect("environment chosen");
    browser.click("#issue-token").await;
    let secret = browser
        .find("#secret")
        .await
        .attr("value")
        .await
        .expect("prop")
        .expect("the secret");
    assert!(
        browser.text("#tokens").await.contains("checkout-service"),
        "listed"
    );
    let (status, _) = server
        .call("GET", "/v1/sdk/snapshot", Some(&secret), None)
        .await;
    assert_eq!(status, 200, "the secret works");
    browser.screenshot("console-tokens").await;
    browser.goto(&server.url("/console/tokens")).await;
    browser.find("#tokens").await;
    assert!(!browser.exists("#secret").await, "shown once");
}
