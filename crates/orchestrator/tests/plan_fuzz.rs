//! Input fuzzing of release plans (issue 25, part 4): every complete plan in
//! docs/orchestrator.md and the canary demo's, mutated near its shape by the test
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

/// Every fenced YAML block of docs/orchestrator.md that is a whole valid plan, and the
/// canary demo's plans (with their placeholders filled), as JSON values.
fn seeds() -> Vec<Value> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let docs = std::fs::read_to_string(format!("{root}/docs/orchestrator.md")).expect("docs");
    let mut texts: Vec<String> = docs
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(str::to_owned)
        .collect();
    for demo in ["release-good.yaml", "release-bad.yaml"] {
        let text = std::fs::read_to_string(format!("{root}/examples/canary-demo/{demo}"))
            .expect("demo plan");
        texts.push(
            text.replace("{{HAPROXY_ADMIN_PORT}}", "9999")
                .replace("{{PROMETHEUS_PORT}}", "9090"),
        );
    }
    texts
        .iter()
        .filter(|text| Plan::from_yaml(text).is_ok())
        .map(|text| {
            let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("YAML");
            serde_json::to_value(yaml).expect("a plan is JSON too")
        })
        .collect()
}

#[test]
fn the_documented_plans_are_the_seeds() {
    let seeds = seeds();
    assert!(
        seeds.len() >= 6,
        "only {} documented plans are valid",
        seeds.len()
    );
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
