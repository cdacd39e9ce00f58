//! Input fuzzing of release plans (issue 25, part 4): every plan in
//! docs/orchestrator.md (each required to be valid, a fragment once added to a plan of
//! one service) and the canary demo's, mutated near its shape by the test
//! kit's JSON mutations (`switchyard_testkit::fuzz`) and read as `apply` reads a plan
//! (`Plan::from_yaml`; JSON is YAML). 256 cases per CI run.
//!
//! Properties: nothing panics; every refusal names a path and says what is wrong; a
//! key written twice is never accepted; an accepted plan validates and outlines.

use proptest::prelude::*;
use serde_json::Value;
use switchyard_orchestrator::plan::{Plan, PlanError};
use switchyard_testkit::fuzz::{mutants, Vocabulary};

/// Plan field names and strings that mean something in a plan.
const VOCABULARY: Vocabulary = Vocabulary {
    fields: "name|environment|environments|services|depends_on|flags|canary|router|address|\
        backend|stable|steps|weight|hold|approve|ramp|to|over|every|analysis|interval|\
        metrics|prometheus|url|query|max|min|on_no_data|on_invalid|guard|flag|event|value|\
        max_relative_increase|min_samples|confidence|on_failure|strategy|batch|\
        max_unavailable|keep_previous|preview|bake|regions|primary|max_weight|routers|\
        flag_rule|waves|region_failure|hotfix|reason|gates|health|webhook|http|command|\
        notifications|slack|approvals|rollback|gradual|namespace|route|ingress|servers|new",
    words: "production|staging|rollback|pause|pass|fail|ignore|haproxy|gateway-api|nginx|\
        webhook|none|canary|blue-green|rolling|parallel|in_order|region|all|30s|1m|0s|-1s|\
        1ms|100000h|25%|0%|101%|10|100|101|-5|web|api|checkout|new-checkout|us-east-1|\
        eu-central-1|{{service}}|{{region}}|http://127.0.0.1:1|not a url|rate(x[5m])|..",
};

/// A plan of one service that a documented fragment (a section's own fields) is added
/// to.
const BASE: &str = "name: fragment\nenvironment: production\nservices:\n  - name: checkout\n    \
    flags: [new-payment-flow]\nsteps: [{ weight: 10 }]\n";

/// Every fenced YAML block of docs/orchestrator.md — a whole plan (```` ```yaml ````),
/// or a fragment (```` ```yaml fragment ````) added to [`BASE`] — and the canary demo's
/// plans (with their placeholders filled), each with where it is written.
fn documented() -> Vec<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let docs = std::fs::read_to_string(format!("{root}/docs/orchestrator.md")).expect("docs");
    let mut plans = Vec::new();
    let mut lines = docs.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let fragment = match line.trim_end() {
            "```yaml" => false,
            "```yaml fragment" => true,
            _ => continue,
        };
        let block: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let text = block.join("\n") + "\n";
        let at = format!("docs/orchestrator.md, the block at line {}", n + 1);
        plans.push(if fragment {
            (
                format!("{at} (added to a plan of one service)"),
                complete(&text),
            )
        } else {
            (at, text)
        });
    }
    for demo in ["release-good.yaml", "release-bad.yaml"] {
        let text = std::fs::read_to_string(format!("{root}/examples/canary-demo/{demo}"))
            .expect("demo plan");
        plans.push((
            format!("examples/canary-demo/{demo}"),
            text.replace("{{HAPROXY_ADMIN_PORT}}", "9999")
                .replace("{{PROMETHEUS_PORT}}", "9090"),
        ));
    }
    plans
}

/// `fragment`'s fields over [`BASE`]'s (`environments` replacing `environment`).
fn complete(fragment: &str) -> String {
    let serde_yaml_ng::Value::Mapping(mut plan) = serde_yaml_ng::from_str(BASE).expect("base")
    else {
        unreachable!("the base is a map")
    };
    let serde_yaml_ng::Value::Mapping(fields) =
        serde_yaml_ng::from_str(fragment).expect("a fragment is YAML")
    else {
        panic!("a fragment is a map of plan fields:\n{fragment}")
    };
    if fields.contains_key("environments") {
        plan.remove("environment");
    }
    plan.extend(fields);
    serde_yaml_ng::to_string(&plan).expect("YAML")
}

/// The documented plans as JSON values.
fn seeds() -> Vec<Value> {
    documented()
        .iter()
        .filter(|(_, text)| Plan::from_yaml(text).is_ok())
        .map(|(_, text)| {
            let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("YAML");
            serde_json::to_value(yaml).expect("a plan is JSON too")
        })
        .collect()
}

#[test]
fn every_documented_plan_is_a_valid_plan_and_a_seed() {
    let documented = documented();
    // The demo's two, and the document's (whole plans and fragments).
    assert!(
        documented.len() >= 10,
        "only {} plans found",
        documented.len()
    );
    let refused: Vec<String> = documented
        .iter()
        .filter_map(|(at, text)| {
            Plan::from_yaml(text)
                .err()
                .map(|e| format!("{at} is refused:\n{e}\n{text}"))
        })
        .collect();
    assert!(refused.is_empty(), "{}", refused.join("\n\n"));
    let seeds = seeds();
    assert_eq!(seeds.len(), documented.len());
    for seed in &seeds {
        let text = seed.to_string();
        assert!(Plan::from_yaml(&text).is_ok(), "{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn plans_never_panic_and_every_refusal_says_where(mutant in mutants(seeds(), VOCABULARY)) {
        match Plan::from_yaml(&mutant.text) {
            Ok(plan) => {
                prop_assert!(
                    mutant.duplicated.is_empty(),
                    "keys written twice were accepted: {:?}",
                    mutant.duplicated
                );
                prop_assert!(plan.validate().is_ok());
                let _ = plan.outline();
            }
            Err(PlanError::Syntax { path, message }) => {
                prop_assert!(!path.is_empty() && !message.is_empty(), "{}: {}", path, message);
            }
            Err(PlanError::Invalid(problems)) => {
                prop_assert!(!problems.is_empty());
                for problem in problems {
                    prop_assert!(
                        !problem.path.is_empty() && !problem.message.is_empty(),
                        "{:?}",
                        problem
                    );
                }
            }
        }
    }
}
