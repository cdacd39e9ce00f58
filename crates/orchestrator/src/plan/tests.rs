use std::time::Duration;

use super::*;

const FULL: &str = r#"
name: checkout-v3
environment: production
services:
  - name: auth
    canary: { router: haproxy, address: "127.0.0.1:9999", backend: auth, stable: v2, canary: v3 }
    flags: [enhanced-auth]
  - name: payments
    depends_on: [auth]
    flags: [{ key: new-payment-flow, rule: eu-ramp }]
    health: [ { http: "http://127.0.0.1:9101/healthz" }, { tcp: "127.0.0.1:9102", timeout: 1s } ]
steps:
  - weight: 1
  - weight: 5
    hold: 2m
  - approve: true
  - weight: 100
analysis:
  interval: 10s
  failure_limit: 2
  metrics:
    - name: error-rate
      prometheus: { url: "http://127.0.0.1:9090", query: "sum(rate(errors[1m]))" }
      max: 0.01
      on_no_data: pass
on_failure: pause
"#;

#[test]
fn reads_a_full_plan() {
    let plan = Plan::from_yaml(FULL).unwrap();
    assert_eq!(plan.services.len(), 2);
    assert_eq!(
        plan.services[1].flags[0],
        FlagRef {
            key: "new-payment-flow".into(),
            rule: Some("eu-ramp".into())
        }
    );
    assert_eq!(plan.services[0].flags[0].rule, None);
    assert_eq!(
        plan.step(0, 0),
        Some(StepKind::Weight(1, Duration::from_secs(10)))
    );
    assert_eq!(
        plan.step(0, 1),
        Some(StepKind::Weight(5, Duration::from_secs(120)))
    );
    assert_eq!(plan.step(0, 2), Some(StepKind::Approve));
    assert_eq!(plan.step(0, 4), None);
    assert_eq!(plan.analysis.metrics[0].on_no_data, OnNoData::Pass);
    assert_eq!(plan.on_failure, OnFailure::Pause);
    assert_eq!(
        plan.services[1].health[1],
        HealthCheck {
            target: HealthTarget::Tcp("127.0.0.1:9102".into()),
            timeout: Duration::from_secs(1)
        }
    );
    // What is stored is read back identically.
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
}

/// Both spellings of the environments read into the one list, so nothing can read one
/// spelling and miss the other; a plan is written back the way a person would write it.
#[test]
fn both_spellings_of_the_environments_read_into_one_list() {
    let rest = "name: a\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\n";
    let single = Plan::from_yaml(&format!("{rest}environment: staging")).unwrap();
    let listed = Plan::from_yaml(&format!("{rest}environments: [staging, production]")).unwrap();
    let listed_one = Plan::from_yaml(&format!("{rest}environments: [staging]")).unwrap();
    assert_eq!(single.environments, ["staging"]);
    assert_eq!(listed.environments, ["staging", "production"]);
    assert_eq!(listed_one, single);
    assert_eq!(
        Plan {
            environments: vec!["staging".into(), "production".into()],
            ..single.clone()
        },
        listed
    );

    // Stored and answered by the API as before: one environment as `environment`.
    let json = serde_json::to_value(&single).unwrap();
    assert_eq!(json["environment"], "staging");
    assert!(json.get("environments").is_none(), "{json}");
    let json = serde_json::to_value(&listed).unwrap();
    assert_eq!(
        json["environments"],
        serde_json::json!(["staging", "production"])
    );
    assert!(json.get("environment").is_none(), "{json}");
    for plan in [&single, &listed] {
        let json = serde_json::to_string(plan).unwrap();
        assert_eq!(&serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }
}

#[test]
fn both_spellings_at_once_are_a_plan_problem() {
    let yaml = "name: a\nenvironment: p\nenvironments: [q]\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]";
    assert_eq!(
        problems(yaml),
        ["environments: give either `environment` or `environments`, not both"]
    );
    // Reported with the plan's other problems, not instead of them.
    let found = problems(&yaml.replace("weight: 5", "weight: 500"));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[1].starts_with("steps[0].weight"), "{found:#?}");
    // A stored plan (JSON) with both is refused too, never read as one of them.
    let stored = r#"{"name":"a","environment":"p","environments":["q"],"services":[{"name":"s","flags":["f"]}],"steps":[{"weight":5}]}"#;
    let error = serde_json::from_str::<Plan>(stored).unwrap_err();
    assert!(error.to_string().contains("not both"), "{error}");
    // Neither, or a blank one, names the field to write.
    for yaml in [
        "name: a\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]",
        "name: a\nenvironment: ' '\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]",
    ] {
        assert_eq!(
            problems(yaml),
            ["environment: name the flag server environment (`environment`, or `environments` in order)"]
        );
    }
}

#[test]
fn duplicate_keys_are_refused_naming_the_key_and_where() {
    let base = "environment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 50}]\n";
    let cases = [
            (format!("name: a\nname: b\n{base}"), "plan: duplicate key `name`"),
            (
                "name: a\nenvironment: p\nservices:\n  - name: s\n    name: t\n    flags: [f]\nsteps: [{weight: 50}]\n".to_owned(),
                "services[0]: duplicate key `name`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [{key: f, key: g}]}]\nsteps: [{weight: 50}]\n".to_owned(),
                "services[0].flags[0]: duplicate key `key`",
            ),
            // Inside a flattened part, serde alone would call the second one unknown.
            (
                format!("name: a\n{base}gates:\n  pre:\n    - webhook: http://a\n      webhook: http://b\n"),
                "gates.pre[0]: duplicate key `webhook`",
            ),
            (
                format!("name: a\n{base}gates:\n  pre:\n    - command: \"true\"\n      timeout: 1s\n      timeout: 2s\n"),
                "gates.pre[0]: duplicate key `timeout`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], health: [{http: \"http://a\", http: \"http://b\"}]}]\nsteps: [{weight: 50}]\n".to_owned(),
                "services[0].health[0]: duplicate key `http`",
            ),
            // A JSON plan is read the same way.
            (
                r#"{"name": "a", "environment": "p", "services": [{"name": "s", "flags": ["f"]}], "steps": [{"weight": 50, "weight": 60}]}"#.to_owned(),
                "steps[0]: duplicate key `weight`",
            ),
        ];
    for (yaml, expected) in cases {
        let err = Plan::from_yaml(&yaml).map(|_| ()).expect_err(&yaml);
        assert_eq!(err.to_string(), expected, "{yaml}");
    }
    // The same keys in different mappings are no duplicates.
    Plan::from_yaml(FULL).expect("valid");
}

fn problems(yaml: &str) -> Vec<String> {
    match Plan::from_yaml(yaml) {
        Ok(_) => vec![],
        Err(PlanError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
        Err(e @ PlanError::Syntax { .. }) => vec![e.to_string()],
    }
}

#[test]
fn errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 101}]",
                "steps[0].weight: must be between 1 and 100",
            ),
            // Found by fuzzing: an unknown field named "" had an empty path.
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\n\"\": 1",
                "plan: unknown field ``",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 50}, {weight: 10}]",
                "steps[1].weight: weights never decrease: 10 follows 50",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5, approve: true}]",
                "steps[0]: a step has either `weight`, `ramp` or `approve: true`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], depends_on: [x]}]\nsteps: [{weight: 5}]",
                "services[0].depends_on[0]: unknown service `x`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s}]\nsteps: [{weight: 5}]",
                "services[0].flags: a service without a traffic router must ramp at least one flag",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], canary: {router: nginx}}]\nsteps: [{weight: 5}]",
                "services[0].canary.router: unknown variant `nginx`",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5, hold: soon}]",
                "steps[0].hold: `soon` is not a duration",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\nanalysis: {metrics: [{name: m, prometheus: {url: 'ftp://x', query: q}}]}",
                "analysis.metrics[0].prometheus.url: `ftp://x` is not an http(s) URL",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\nanalysis: {metrics: [{name: m, prometheus: {url: 'http://x', query: q}}]}",
                "analysis.metrics[0]: a metric needs `max`, `min` or both",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f], health: [{tcp: nope}]}]\nsteps: [{weight: 5}]",
                "services[0].health[0].tcp: `nope` is not host:port",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\nsurprise: 1",
                "unknown field `surprise`",
            ),
            (
                "name: Bad Name\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]",
                "name: must be 1-63 characters",
            ),
            (
                "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}, {name: t, flags: [f]}]\nsteps: [{weight: 5}]",
                "services[1].flags[0]: flag `f` is ramped twice in this release",
            ),
        ];
    for (yaml, expected) in cases {
        let found = problems(yaml);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "expected `{expected}` for\n{yaml}\nfound {found:#?}"
        );
    }
}

#[test]
fn reads_part_two_fields() {
    let plan = Plan::from_yaml(
            r#"
name: r
environments: [staging, production]
services:
  - name: web
    canary: { router: gateway-api, namespace: shop, route: web, stable: web-v1, canary: web-v2 }
    flags: [f]
  - name: api
    canary: { router: nginx-ingress, namespace: shop, ingress: api-canary }
  - name: edge
    canary: { router: webhook, url: "http://127.0.0.1:9/weights" }
steps:
  - weight: 10
    gates: [ { webhook: "http://127.0.0.1:9/step" } ]
  - weight: 100
analysis:
  metrics:
    - name: checkout-errors
      guard: { flag: f, event: checkout_error, max_relative_increase: 0.1 }
on_failure: { rollback: gradual, step: 20, interval: 10s }
gates:
  pre: [ { webhook: "http://127.0.0.1:9/gate", timeout: 3s }, { command: "test -f /etc/hostname", retries: 0 } ]
notify: [ { webhook: "http://127.0.0.1:9/hook", format: slack, events: [promoted, rolled_back] } ]
"#,
        )
        .unwrap();
    assert_eq!(plan.environments, ["staging", "production"]);
    assert_eq!(
        plan.on_failure,
        OnFailure::Rollback(Rollback::Gradual {
            step: 20,
            interval: Duration::from_secs(10)
        })
    );
    let guard = plan.analysis.metrics[0].guard.as_ref().unwrap();
    assert_eq!((guard.confidence, guard.min_samples), (0.95, 100));
    assert_eq!(
        plan.gates.pre[1].check,
        GateCheck::Command("test -f /etc/hostname".into())
    );
    assert_eq!(plan.gates.pre[0].retries, 2);
    assert_eq!(plan.notify[0].format, NotifyFormat::Slack);
    assert!(matches!(plan.services[1].canary, Canary::NginxIngress(_)));
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    assert_eq!(
        serde_json::to_value(OnFailure::Pause).unwrap(),
        serde_json::json!("pause")
    );
}

#[test]
fn part_two_errors_name_the_field() {
    let base = "name: a\nservices: [{name: s, flags: [f]}]\nsteps: [{weight: 5}]\n";
    let cases: &[(&str, &str)] = &[
            ("environment: p\nenvironments: [q]", "environments: give either `environment` or `environments`, not both"),
            ("environments: [p, p]", "environments[1]: environment `p` is listed twice"),
            ("environment: p\ngates: {pre: [{webhook: nope}]}", "gates.pre[0].webhook: `nope` is not an http(s) URL"),
            ("environment: p\nnotify: [{webhook: 'http://x', format: teams}]", "notify[0].format: unknown variant `teams`"),
            ("environment: p\non_failure: {rollback: gradual, step: 0}", "on_failure.step: must be between 1 and 100"),
            ("environment: p\non_failure: sometimes", "on_failure: unknown variant `sometimes`"),
            ("environment: p\nanalysis: {metrics: [{name: g, guard: {flag: f, event: e, max_relative_increase: 0.1, confidence: 2}}]}", "analysis.metrics[0].guard.confidence: must be between 0.5 and 1"),
            ("environment: p\nanalysis: {metrics: [{name: g, max: 1, guard: {flag: f, event: e, max_relative_increase: 0.1}}]}", "a guard metric's threshold is its `max_relative_increase`"),
        ];
    for (extra, expected) in cases {
        let yaml = format!("{base}{extra}");
        let found = problems(&yaml);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "expected `{expected}` for\n{yaml}\nfound {found:#?}"
        );
    }
}

#[test]
fn a_cycle_is_rejected_naming_its_members() {
    let yaml = "name: a\nenvironment: p\nsteps: [{weight: 5}]\nservices:\n  - {name: a, flags: [f1], depends_on: [c]}\n  - {name: b, flags: [f2], depends_on: [a]}\n  - {name: c, flags: [f3], depends_on: [b]}\n  - {name: d, flags: [f4]}\n";
    let found = problems(yaml);
    assert_eq!(
        found,
        vec!["services: depends_on forms a cycle: a -> c -> b -> a"]
    );
}

#[test]
fn every_schema_problem_is_reported_with_the_rule_problems() {
    let yaml = "name: a\nenvironment: p\nsurprise: 1\n\
                    services: [{name: s, flags: [f], colour: red, health: [{tcp: nope}]}]\n\
                    steps: [{weight: 5, hold: soon}, {weight: 1}]\n\
                    analysis: {interval: 1s, extra: true}";
    let found = problems(yaml);
    let expected = [
        "surprise: unknown field `surprise`, expected one of `name`, `environment`, \
             `environments`, `strategy`, `hotfix`, `services`, `steps`, `analysis`, `on_failure`, \
             `gates`, `notify`, `regions`, `waves`, `region_failure`",
        "services[0].colour: unknown field `colour`, expected one of `name`, \
             `depends_on`, `canary`, `flags`, `health`, `strategy`",
        "steps[0].hold: `soon` is not a duration",
        "analysis.extra: unknown field `extra`, expected one of `interval`, \
             `failure_limit`, `metrics`",
        // Rule problems, after the schema's.
        "services[0].health[0].tcp: `nope` is not host:port",
        "steps[1].weight: weights never decrease: 1 follows 5",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for want in expected {
        assert!(
            found.iter().any(|p| p.starts_with(want)),
            "no `{want}` in {found:#?}"
        );
    }
    assert!(
        found[4..].iter().all(|p| !p.contains("unknown field")),
        "{found:#?}"
    );
    // A required field that is wrong is reported once, not also as missing.
    let found = problems("name: a\nenvironment: p\nservices: 3\nsteps: [{weight: 5}]\nx: 1");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("services: invalid type: integer `3`"),
        "{found:#?}"
    );
    assert!(found[1].starts_with("x: unknown field `x`"), "{found:#?}");
}

#[test]
fn a_mistyped_health_check_or_gate_names_the_accepted_forms() {
    let base = "name: a\nenvironment: p\nsteps: [{weight: 5}]\n";
    let cases: &[(&str, &str)] = &[
            (
                "services: [{name: s, flags: [f], health: [{htp: 'http://x'}]}]",
                "services[0].health[0].htp: unknown field `htp`, expected one of `http`, `tcp`, `grpc`, `timeout`",
            ),
            (
                "services: [{name: s, flags: [f], health: [{timeout: 1s}]}]",
                "services[0].health[0]: a health check has exactly one of `http: URL`, `tcp: HOST:PORT` or `grpc: HOST:PORT` (and an optional `timeout`)",
            ),
            (
                "services: [{name: s, flags: [f], health: [{http: 'http://x', tcp: 'x:1'}]}]",
                "services[0].health[0]: a health check has exactly one of",
            ),
            (
                "services: [{name: s, flags: [f], health: ['http://x']}]",
                "services[0].health[0]: invalid type: string \"http://x\", expected a health check: `http: URL`, `tcp: HOST:PORT` or `grpc: HOST:PORT`",
            ),
            (
                "services: [{name: s, flags: [f]}]\ngates: {pre: [{webhok: 'http://x'}]}",
                "gates.pre[0].webhok: unknown field `webhok`, expected one of `webhook`, `command`, `timeout`, `retries`",
            ),
            (
                "services: [{name: s, flags: [f]}]\ngates: {pre: [{retries: 1}]}",
                "gates.pre[0]: a gate has exactly one of `webhook: URL` or `command: COMMAND`",
            ),
        ];
    for (extra, expected) in cases {
        let yaml = format!("{base}{extra}");
        let found = problems(&yaml);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "expected `{expected}` for\n{yaml}\nfound {found:#?}"
        );
        assert!(!found.iter().any(|p| p.contains("flattened")), "{found:#?}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let yaml = "name: a\nenvironment: ''\nservices: []\nsteps: []";
    assert_eq!(problems(yaml).len(), 3);
}

#[test]
fn a_time_based_ramp_expands_into_evenly_rising_weight_steps() {
    let yaml = "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps:\n  \
                - weight: 10\n  \
                - ramp: { to: 100, over: 30m, every: 5m }\n    gates: [{ webhook: 'http://127.0.0.1:1/ok' }]\n  \
                - approve: true\n";
    let plan = Plan::from_yaml(yaml).unwrap();
    let weights: Vec<Option<StepKind>> = (0..plan.steps.len()).map(|i| plan.step(0, i)).collect();
    let five = Duration::from_secs(300);
    assert_eq!(
        weights,
        [
            Some(StepKind::Weight(10, Duration::from_secs(30))),
            Some(StepKind::Weight(25, five)),
            Some(StepKind::Weight(40, five)),
            Some(StepKind::Weight(55, five)),
            Some(StepKind::Weight(70, five)),
            Some(StepKind::Weight(85, five)),
            Some(StepKind::Weight(100, five)),
            Some(StepKind::Approve),
        ]
    );
    // The written step's gates guard the first step of the ramp only.
    assert_eq!(plan.steps[1].gates.len(), 1);
    assert!(plan.steps[2..].iter().all(|s| s.gates.is_empty()));
    // Stored as the expansion: read back, the same plan.
    let stored = serde_json::to_string(&plan).unwrap();
    assert!(!stored.contains("ramp"), "{stored}");
    assert_eq!(serde_json::from_str::<Plan>(&stored).unwrap(), plan);
    // Uneven: 7 points over 3 steps round up, and the last is `to`.
    let plan = Plan::from_yaml(
        "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: [{ramp: {to: 7, over: 25s, every: 10s}}]",
    )
    .unwrap();
    let weights: Vec<_> = plan.steps.iter().map(|s| s.weight).collect();
    assert_eq!(weights, [Some(3), Some(5), Some(7)]);
}

#[test]
fn ramp_errors_name_the_written_step() {
    let base = "name: a\nenvironment: p\nservices: [{name: s, flags: [f]}]\nsteps: ";
    for (steps, expected) in [
        (
            "[{weight: 50}, {ramp: {to: 40, over: 10m, every: 1m}}]",
            "steps[1].ramp.to: a ramp rises: 40 does not exceed the weight before it, 50",
        ),
        (
            "[{ramp: {to: 101, over: 10m, every: 1m}}]",
            "steps[0].ramp.to: must be between 1 and 100",
        ),
        (
            "[{ramp: {to: 50, over: 10m, every: 0s}}]",
            "steps[0].ramp.every: must be longer than 0s",
        ),
        (
            "[{ramp: {to: 50, over: 1m, every: 2m}}]",
            "steps[0].ramp.every: must not be longer than `over`",
        ),
        (
            "[{ramp: {to: 50, over: 10h, every: 1s}}]",
            "steps[0].ramp.every: 36000 steps; a ramp has at most 1000",
        ),
        (
            "[{ramp: {to: 50, over: 10m, every: 1m}, weight: 5}]",
            "steps[0]: a `ramp` step has no `weight`",
        ),
        (
            "[{ramp: {to: 50, over: 10m, every: 1m}}, {weight: 20}]",
            "steps[1].weight: weights never decrease: 20 follows 50",
        ),
        ("[{ramp: {to: 50, over: 10m}}]", "missing field `every`"),
    ] {
        let found = problems(&format!("{base}{steps}"));
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "expected `{expected}` for {steps}; found {found:#?}"
        );
    }
}

fn weights_of(plan: &Plan, service: &str) -> Vec<u32> {
    plan.steps_of_service(service)
        .iter()
        .filter_map(|s| s.weight)
        .collect()
}

const HAPROXY_FOUR: &str = r#"{ router: haproxy, address: "127.0.0.1:9999", backend: web, stable: [o1, o2, o3, o4], canary: [n1, n2, n3, n4] }"#;

#[test]
fn strategies_expand_into_each_services_steps() {
    let yaml = format!(
        "name: s\nenvironment: p\nstrategy: {{ type: blue-green, preview: 1m, bake: 5m }}\n\
         services:\n  - name: web\n    canary: {HAPROXY_FOUR}\n    strategy: {{ type: rolling, batch: 25% }}\n\
         \x20 - name: api\n    flags: [f]\n  - name: ui\n    flags: [g]\n    strategy: canary\n\
         steps: [{{ weight: 10 }}, {{ weight: 50 }}]\n"
    );
    let plan = Plan::from_yaml(&yaml).unwrap();
    assert_eq!(weights_of(&plan, "web"), [25, 50, 75, 100]);
    assert_eq!(weights_of(&plan, "api"), [0, 100]);
    assert_eq!(
        plan.step(1, 1),
        Some(StepKind::Weight(100, Duration::from_secs(300)))
    );
    assert_eq!(weights_of(&plan, "ui"), [10, 50]);
    let outline = plan.outline();
    assert_eq!(
        outline.services[0].strategy,
        "rolling: batch 25%, max unavailable 0"
    );
    assert_eq!(
        outline.services[1].strategy,
        "blue-green: preview 1m, bake 5m"
    );
    assert_eq!(outline.services[0].steps.len(), 4);
    // Stored as written: the expansion is made again when it is read back.
    let again = Plan::from_yaml(&serde_yaml_ng::to_string(&plan).unwrap()).unwrap();
    assert_eq!(again, plan);

    // A plan whose every service has another strategy needs no steps.
    let no_steps =
        "name: s\nenvironment: p\nstrategy: blue-green\nservices: [{name: a, flags: [f]}]\n";
    assert_eq!(weights_of(&Plan::from_yaml(no_steps).unwrap(), "a"), [100]);
}

#[test]
fn strategy_problems_name_the_field() {
    let base = "name: s\nenvironment: p\n";
    let cases: &[(&str, &str)] = &[
        (
            "services: [{name: a, flags: [f]}]\n",
            "steps: a canary release needs at least one step",
        ),
        (
            "services: [{name: a, flags: [f], strategy: {type: rolling, batch: 1}}]\n",
            "services[0].canary: a rolling update needs `router: haproxy`",
        ),
        (
            "services: [{name: a, canary: { router: haproxy, address: \"h:1\", backend: b, stable: [o1, o2], canary: [n1] }, strategy: {type: rolling, batch: 1}}]\n",
            "services[0].canary.canary: a rolling update replaces each old server by a new one: 2 stable servers, 1 canary servers",
        ),
        (
            &format!("services: [{{name: a, canary: {HAPROXY_FOUR}}}]\nsteps: [{{weight: 5}}]\n"),
            "services[0].canary.stable: lists of servers are for `strategy: rolling`",
        ),
        (
            "strategy: { type: blue-green, bake: 0s }\nservices: [{name: a, flags: [f]}]\n",
            "services[0].strategy.bake: must be longer than 0s",
        ),
        (
            "strategy: { type: rolling, batch: 2, preview: 1m }\nservices: [{name: a, flags: [f]}]\n",
            "strategy: `preview` is not a setting of `rolling`",
        ),
        (
            "strategy: { type: rolling, batch: 1, max_unavailable: \"x\" }\nservices: [{name: a, flags: [f]}]\n",
            "strategy: `max_unavailable` is a server count or a share like \"25%\", not `x`",
        ),
        (
            "hotfix: { reason: \" \" }\nservices: [{name: a, flags: [f]}]\nsteps: [{weight: 5}]\n",
            "hotfix.reason: a hotfix says why it skips the ramp",
        ),
        (
            "waves: parallel\nservices: [{name: a, flags: [f]}]\nsteps: [{weight: 5}]\n",
            "regions: `waves` and `region_failure` belong to a plan with `regions`",
        ),
    ];
    for (extra, expected) in cases {
        let yaml = format!("{base}{extra}");
        let found = problems(&yaml);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "expected `{expected}` for\n{yaml}\nfound {found:#?}"
        );
    }
}

#[test]
fn a_hotfix_collapses_every_strategy_into_one_step_at_100() {
    let yaml = format!(
        "name: s\nenvironment: p\nhotfix: {{ reason: CVE-2026-1234, bake: 2m }}\n\
         services:\n  - name: web\n    canary: {HAPROXY_FOUR}\n    strategy: {{ type: rolling, batch: 1 }}\n\
         \x20 - name: api\n    flags: [f]\nsteps: [{{ weight: 10 }}, {{ approve: true }}, {{ weight: 50 }}]\n"
    );
    let plan = Plan::from_yaml(&yaml).unwrap();
    for (i, name) in ["web", "api"].into_iter().enumerate() {
        assert_eq!(weights_of(&plan, name), [100]);
        assert_eq!(
            plan.step(i, 0),
            Some(StepKind::Weight(100, Duration::from_secs(120)))
        );
    }
    assert_eq!(plan.outline().hotfix.as_deref(), Some("CVE-2026-1234"));
    assert_eq!(
        plan.outline().services[0].strategy,
        "hotfix: one step at 100"
    );
    // The written ramp is kept for the record.
    assert_eq!(plan.steps.len(), 3);
}

const REGIONS: &str = r#"
name: global
environment: production
services:
  - name: auth
    flags: [new-login]
  - name: payment
    depends_on: [auth]
    flags: [new-pay]
  - name: search
    flags: [new-search]
steps: [{ weight: 3 }, { weight: 5 }, { weight: 10 }, { weight: 50 }]
waves: parallel
region_failure: region
regions:
  - name: us-west-2
    max_weight: 5
  - name: us-east-1
    primary: true
    max_weight: 10
    routers:
      auth: { router: haproxy, address: "127.0.0.1:9999", backend: auth, stable: v1, canary: v2 }
  - name: eu-central-1
    max_weight: 5
    services: [auth, payment]
    flag_rule: eu
  - name: ap-southeast-1
    max_weight: 3
    services: [auth]
"#;

#[test]
fn regions_expand_into_one_service_per_region_primary_first() {
    let plan = Plan::from_yaml(REGIONS).unwrap();
    let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "auth@us-east-1",
            "payment@us-east-1",
            "search@us-east-1",
            "auth@us-west-2",
            "payment@us-west-2",
            "search@us-west-2",
            "auth@eu-central-1",
            "payment@eu-central-1",
            "auth@ap-southeast-1",
        ]
    );
    // Its own dependencies in its region, then the primary region (parallel waves).
    let primary = ["auth@us-east-1", "payment@us-east-1", "search@us-east-1"];
    assert_eq!(plan.services[1].depends_on, ["auth@us-east-1"]);
    let eu_payment = plan.service("payment@eu-central-1").unwrap();
    let mut expected = vec!["auth@eu-central-1"];
    expected.extend(primary);
    assert_eq!(eu_payment.depends_on, expected);
    assert_eq!(eu_payment.written_name(), "payment");
    assert_eq!(eu_payment.region.as_deref(), Some("eu-central-1"));
    // Flags are ramped through the region's rule.
    assert_eq!(eu_payment.flags[0].rule.as_deref(), Some("eu"));
    assert_eq!(
        plan.service("search@us-west-2").unwrap().flags[0]
            .rule
            .as_deref(),
        Some("us-west-2")
    );
    // The region's router, else the service's own.
    assert!(matches!(plan.services[0].canary, Canary::Haproxy(_)));
    assert!(matches!(plan.services[3].canary, Canary::None));
    // Each region's ramp stops at its cap.
    assert_eq!(weights_of(&plan, "auth@us-east-1"), [3, 5, 10]);
    assert_eq!(weights_of(&plan, "auth@us-west-2"), [3, 5]);
    assert_eq!(weights_of(&plan, "auth@ap-southeast-1"), [3]);
    let outline = plan.outline();
    assert_eq!(outline.regions[0].name, "us-east-1");
    assert_eq!(outline.regions[2].services, ["auth", "payment"]);
    assert_eq!(outline.services[6].region.as_deref(), Some("eu-central-1"));
    // Stored as written.
    let written = serde_yaml_ng::to_string(&plan).unwrap();
    assert!(!written.contains("@"), "{written}");
    assert_eq!(Plan::from_yaml(&written).unwrap(), plan);

    // In order: each region waits for the one before it.
    let in_order = Plan::from_yaml(&REGIONS.replace("waves: parallel", "waves: in-order")).unwrap();
    assert_eq!(
        in_order.service("auth@ap-southeast-1").unwrap().depends_on,
        ["auth@eu-central-1", "payment@eu-central-1"]
    );
}

#[test]
fn region_problems_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    primary: true\n    max_weight: 10\n",
            "    max_weight: 10\n",
            "regions: exactly one region is `primary: true` (0 are)",
        ),
        (
            "services: [auth, payment]\n    flag_rule: eu",
            "services: [auth, billing]\n    flag_rule: eu",
            "regions[2].services[1]: unknown service `billing`",
        ),
        (
            "  - name: us-west-2\n",
            "  - name: US West\n",
            "regions[0].name: must be 1-63 characters",
        ),
        (
            "max_weight: 3\n",
            "max_weight: 0\n",
            "regions[3].max_weight: must be between 1 and 100",
        ),
        (
            "    services: [auth]\n",
            "    services: [auth]\n    routers: { search: { router: none } }\n",
            "regions[3].routers.search: service `search` is not released in this region",
        ),
        (
            "backend: auth, stable: v1, canary: v2 }",
            "backend: auth, stable: v1, canary: v1 }",
            "regions[1].routers.auth.canary: server `v1` is both stable and canary",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(REGIONS.contains(from), "{from}");
        let yaml = REGIONS.replacen(from, to, 1);
        let found = problems(&yaml);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "expected `{expected}` for\n{yaml}\nfound {found:#?}"
        );
    }
}
