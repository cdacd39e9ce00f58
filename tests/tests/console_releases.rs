//! The console's Releases section against the canary demo's real stack (flag server,
//! orchestrator, HAProxy, Prometheus, both checkout versions, the load generator) in
//! a real headless Chromium: an invalid plan pasted starts nothing and shows each
//! problem at its path; a good release is followed to `promoted` in an open page
//! without a reload; an approval step is approved from the browser; abort rolls back
//! (HAProxy weight 0, flag killed); the bad release shows its analysis crossing the
//! threshold and the rollback's reason. Then, over plain HTTP: a read-only token sees
//! no command and is refused one, a command needs the CSRF token, and a server without
//! an orchestrator says how to connect one.

use std::time::Duration;

use serde_json::json;
use support::{DemoStack, ENV, FLAG};
use switchyard_sdk::admin::TokenKind;
use switchyard_testkit::browser::Browser;
use switchyard_testkit::console::ConsoleSession;
use switchyard_testkit::eventually;

mod support;

/// How long a release may take to reach what a test waits for.
const RELEASE_DEADLINE: Duration = Duration::from_secs(90);

/// Puts `plan` into the plan form's text area (as a paste would) and presses `button`.
async fn submit_plan(browser: &Browser, plan: &str, button: &str) {
    browser
        .client
        .execute(
            "document.getElementById('plan-text').value = arguments[0];",
            vec![json!(plan)],
        )
        .await
        .expect("fill the plan");
    browser.click(button).await;
}

/// Waits until the open release page says `words` as its state (the page refreshes
/// itself; nothing here reloads it).
async fn until_phase(browser: &Browser, words: &str) {
    eventually(
        RELEASE_DEADLINE,
        &format!("the release {words}"),
        || async {
            let text = browser.text("#release-phase").await;
            if text == words {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
}

/// Waits until the open release page shows a service at `phase`.
async fn until_service(browser: &Browser, phase: &str) {
    let css = format!("[data-service-phase=\"{phase}\"]");
    eventually(RELEASE_DEADLINE, &format!("a service {phase}"), || async {
        browser.exists(&css).await.then_some(())
    })
    .await;
}

/// Marks the open page; [`still_same_page`] says whether it was never reloaded.
async fn mark_page(browser: &Browser) {
    browser
        .client
        .execute("window.__notReloaded = true;", vec![])
        .await
        .expect("mark the page");
}

async fn still_same_page(browser: &Browser) -> bool {
    browser
        .client
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .expect("read the mark")
        == json!(true)
}

/// Gives `command` from the open release page: its button, then the confirmation.
async fn command(browser: &Browser, command: &str, reason: Option<&str>) {
    browser
        .click(&format!("#commands [data-command=\"{command}\"]"))
        .await;
    if let Some(reason) = reason {
        browser.fill("#reason", reason).await;
    }
    browser.click("#confirm-command").await;
    browser.wait_text("#notice", "sent").await;
}

/// `release-good.yaml` renamed, with other steps.
fn variant_of_good(stack: &DemoStack, name: &str, steps: &str) -> String {
    let plan = stack.plan("release-good.yaml");
    let from = plan.find("steps:").expect("steps");
    let to = plan.find("analysis:").expect("analysis");
    format!("{}steps:\n{steps}{}", &plan[..from], &plan[to..]).replace("checkout-good", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_are_followed_steered_and_explained_in_the_browser() {
    let stack = DemoStack::start("300s").await;
    let console = |path: &str| format!("{}{path}", stack.server.base);
    let engineer = stack
        .admin
        .create_token("release-engineer", TokenKind::Admin, None)
        .await
        .expect("admin token")
        .token;
    let browser = Browser::start().await;
    browser.goto(&console("/console/login")).await;
    browser.fill("#token", &engineer).await;
    browser.click("#sign-in").await;
    browser.find("#who").await;

    // An invalid plan: every problem at its path, nothing started.
    browser.goto(&console("/console/releases")).await;
    browser.wait_text("#no-releases", "No release").await;
    browser.click("#new-release").await;
    submit_plan(
        &browser,
        "name: broken\nenvironment: production\nservices:\n  - name: web\n    \
         depends_on: [nope]\n    flags: [new-checkout]\nsteps: [{ weight: 150 }]\n",
        "#start-release",
    )
    .await;
    let problems = browser
        .wait_text("#plan-problems", "Nothing was started")
        .await;
    for path in ["services[0].depends_on[0]", "steps[0].weight"] {
        assert!(problems.contains(path), "{problems}");
    }
    assert!(stack.release_names().await.is_empty(), "nothing started");

    // The good release: checked (dry run), started, followed to promoted live.
    submit_plan(&browser, &stack.plan("release-good.yaml"), "#check-plan").await;
    let outline = browser.wait_text("#plan-outline", "checkout-good").await;
    assert!(outline.contains("weight 10 %"), "{outline}");
    assert!(outline.contains("new-checkout"), "{outline}");
    assert!(
        stack.release_names().await.is_empty(),
        "a check starts nothing"
    );
    browser.click("#start-release").await;
    browser.wait_text("h1", "checkout-good").await;
    mark_page(&browser).await;
    until_phase(&browser, "promoted").await;
    assert!(still_same_page(&browser).await, "followed without a reload");
    assert_eq!(stack.weights().await, (100, 0), "(canary, stable)");
    let weights = browser
        .find("#weights-0")
        .await
        .html(false)
        .await
        .expect("svg");
    assert!(
        weights.contains("data-series=\"canary traffic\""),
        "{weights}"
    );
    assert!(
        weights.contains("new-checkout (first variant)"),
        "{weights}"
    );
    assert!(browser.exists("#metric-0").await, "an analysis chart");
    browser.screenshot("console-release-promoted").await;

    // An approval step, approved from the browser; the flag's page links the release.
    stack.reset().await;
    browser.goto(&console("/console/new-release")).await;
    let approval = variant_of_good(
        &stack,
        "checkout-approval",
        "  - weight: 10\n    hold: 2s\n  - approve: true\n  - weight: 100\n",
    );
    submit_plan(&browser, &approval, "#start-release").await;
    until_service(&browser, "awaiting_approval").await;
    browser
        .goto(&console(&format!("/console/envs/{ENV}/flags/{FLAG}")))
        .await;
    browser.wait_text("#ramping", "checkout-approval").await;
    browser.click("#ramping .release-link").await;
    command(&browser, "approve", None).await;
    until_phase(&browser, "promoted").await;
    browser
        .wait_text("#timeline", "approved by release-engineer")
        .await;

    // Abort from the browser: canary back to 0, the flag killed.
    stack.reset().await;
    browser.goto(&console("/console/new-release")).await;
    let long = variant_of_good(
        &stack,
        "checkout-aborted",
        "  - weight: 10\n    hold: 10m\n  - weight: 100\n",
    );
    submit_plan(&browser, &long, "#start-release").await;
    until_service(&browser, "progressing").await;
    eventually(RELEASE_DEADLINE, "canary at 10", || async {
        (stack.weights().await.0 == 10).then_some(())
    })
    .await;
    command(&browser, "abort", Some("checking the abort button")).await;
    until_phase(&browser, "rolled back").await;
    browser
        .wait_text(
            "#reason",
            "aborted by release-engineer: checking the abort button",
        )
        .await;
    assert_eq!(stack.weights().await.0, 0, "canary weight after the abort");
    assert_eq!(stack.read_flag().await["enabled"], false, "flag killed");

    // A hotfix with a blue-green switch: one step at 100, marked as a hotfix.
    stack.reset().await;
    browser.goto(&console("/console/new-release")).await;
    let hotfix = variant_of_good(&stack, "checkout-hotfix", "  - weight: 10\n    hold: 10m\n")
        .replacen(
            "\nservices:",
            "\nstrategy: blue-green\nhotfix: { reason: \"CVE-2026-1234\", bake: 2s }\nservices:",
            1,
        );
    submit_plan(&browser, &hotfix, "#start-release").await;
    until_phase(&browser, "promoted").await;
    browser.wait_text("#hotfix", "CVE-2026-1234").await;
    browser
        .wait_text("#service-groups", "hotfix: one step at 100")
        .await;
    assert_eq!(stack.weights().await, (100, 0), "(canary, stable)");

    // The bad release: its analysis crosses the threshold and it rolls back by itself.
    stack.reset().await;
    stack.fail_rate("0.2").await;
    browser.goto(&console("/console/new-release")).await;
    submit_plan(&browser, &stack.plan("release-bad.yaml"), "#start-release").await;
    until_phase(&browser, "rolled back").await;
    let reason = browser.wait_text("#reason", "failed analyses").await;
    assert!(reason.starts_with("Rolled back"), "{reason}");
    assert!(
        browser.exists("#analyses tr[data-verdict=\"fail\"]").await,
        "a failed measurement in the table"
    );
    let charts = browser
        .find("#release")
        .await
        .html(false)
        .await
        .expect("html");
    assert!(charts.contains("class=\"dot fail\""), "a failing dot");
    assert!(
        charts.contains("class=\"threshold\""),
        "the threshold drawn"
    );
    assert_eq!(
        stack.weights().await.0,
        0,
        "canary weight after the rollback"
    );
    assert_eq!(stack.read_flag().await["enabled"], false, "flag killed");
    browser.screenshot("console-release-rolled-back").await;

    // History and DORA.
    browser.goto(&console("/console/dora")).await;
    let figures = browser.wait_text("#dora-figures", "promoted").await;
    assert!(figures.contains("3 promoted"), "{figures}");
    assert!(figures.contains("1 finished hotfix"), "{figures}");
    assert!(browser.exists("#dora-failure-rate").await);
    browser.screenshot("console-dora").await;

    // Over plain HTTP: a read-only token sees no command and is refused one.
    let watcher = stack
        .admin
        .create_token("watcher", TokenKind::Sdk, Some(ENV))
        .await
        .expect("sdk token")
        .token;
    let read_only = ConsoleSession::sign_in(&stack.server.base, &watcher).await;
    let page = read_only.get("/console/releases/checkout-bad").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("failed analyses"), "{}", page.body);
    assert!(!page.body.contains("id=\"commands\""), "no buttons");
    // The orchestrator's release notes, on the page.
    assert!(page.body.contains("id=\"release-notes\""), "{}", page.body);
    assert!(
        page.body.contains("# Release notes: checkout-bad"),
        "{}",
        page.body
    );
    assert!(page.body.contains("**Rolled back**"), "{}", page.body);
    assert_eq!(read_only.get("/console/new-release").await.status, 403);
    let list = read_only.get("/console/releases").await;
    assert!(!list.body.contains("id=\"new-release\""), "{}", list.body);
    assert_eq!(
        read_only
            .post("/console/releases/checkout-good/abort", &[])
            .await
            .status,
        403
    );

    // A command needs the session's CSRF token; unknown commands and releases are 404.
    let admin = ConsoleSession::sign_in(&stack.server.base, &engineer).await;
    let forged = admin
        .post_exactly("/console/releases/checkout-good/abort", &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(
        admin
            .post("/console/releases/checkout-good/rollback", &[])
            .await
            .status,
        404
    );
    assert_eq!(admin.get("/console/releases/nope").await.status, 404);
    // A command the release's state refuses is a 409 with the orchestrator's words.
    let refused = admin
        .post("/console/releases/checkout-good/approve", &[])
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
}

#[tokio::test]
async fn without_an_orchestrator_the_releases_section_says_how_to_connect_one() {
    let server = switchyard_testkit::in_process::start().await;
    let session =
        ConsoleSession::sign_in(&server.base, switchyard_testkit::in_process::ADMIN).await;
    let page = session.get("/console/releases").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("--orchestrator-url"), "{}", page.body);
    for path in [
        "/console/dora",
        "/console/new-release",
        "/console/releases/x",
    ] {
        let page = session.get(path).await;
        assert_eq!(page.status, 503, "{path}");
        assert!(page.body.contains("--orchestrator-url"), "{}", page.body);
    }
}
