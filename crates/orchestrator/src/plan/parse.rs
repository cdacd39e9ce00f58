//! Reading a YAML plan: duplicate keys refused, serde with field paths, and on a schema
//! problem every problem found by re-reading without the failing field.

use switchyard_core::duplicate_keys;

use super::{Plan, PlanError, PlanWritten, Problem};

impl Plan {
    /// Parses and validates a YAML (or JSON) release plan.
    ///
    /// A key written twice in one mapping is refused. The typed fields would refuse
    /// most duplicates anyway (`duplicate field`), but a gate's or a health check's
    /// `webhook`/`http`/… written twice read as an unknown field, and a duplicate
    /// must never silently mean the last one.
    pub fn from_yaml(text: &str) -> Result<Plan, PlanError> {
        if let Some(duplicate) = duplicate_keys::find(serde_yaml_ng::Deserializer::from_str(text)) {
            return Err(PlanError::Syntax {
                path: match duplicate.path.as_str() {
                    "" => "plan".to_owned(),
                    path => path.to_owned(),
                },
                message: format!("duplicate key `{}`", duplicate.key.escape_debug()),
            });
        }
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let written: PlanWritten = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| every_schema_problem(text, schema_problem(e)))?;
        let (plan, problems) = read(written);
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(PlanError::Invalid(problems))
        }
    }
}

/// The plan as written, with environments as one list, and every rule it breaks.
fn read(written: PlanWritten) -> (Plan, Vec<Problem>) {
    let (plan, mut problems) = written.into_plan();
    if let Err(PlanError::Invalid(rules)) = plan.validate() {
        problems.extend(rules);
    }
    (plan, problems)
}

/// One problem serde found, with its path (`plan` for the document itself).
fn schema_problem(error: serde_path_to_error::Error<serde_yaml_ng::Error>) -> Problem {
    // (An unknown field with an empty name at the top level has an empty path:
    // found by fuzzing, tests/plan_fuzz.rs.)
    let path = match error.path().to_string() {
        p if p == "." || p.is_empty() => "plan".to_owned(),
        p => p,
    };
    // serde_yaml_ng prefixes some messages with (part of) the path.
    let message = error.into_inner().to_string();
    let message = match message.split_once(": ") {
        Some((head, rest)) if path.starts_with(head) => rest.to_owned(),
        _ => message,
    };
    Problem { path, message }
}

/// The most schema problems collected from one document.
const MAX_SCHEMA_PROBLEMS: usize = 50;

/// Every problem in a plan whose first schema problem is `first`, not only that one.
///
/// Serde stops at the first problem, so the document is read as a YAML value and read
/// into a [`PlanWritten`] again and again, each time without the field that failed (an
/// unknown field, a value of the wrong type), until it reads; then its rule problems
/// ([`read`]) are added, except those about a removed field. It stops early where
/// removing would make problems up: a list item (later indexes would shift) or a
/// required field (it would be reported missing).
fn every_schema_problem(text: &str, first: Problem) -> PlanError {
    let Ok(mut document) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return first.into();
    };
    if document.apply_merge().is_err() {
        return first.into();
    }
    let mut problems = vec![first];
    let mut removed: Vec<String> = Vec::new();
    while problems.len() < MAX_SCHEMA_PROBLEMS {
        match serde_path_to_error::deserialize::<_, PlanWritten>(document.clone()) {
            Ok(written) => {
                let (_, rules) = read(written);
                problems.extend(rules.into_iter().filter(|rule| {
                    !removed.iter().any(|gone| {
                        rule.path == *gone
                            || rule.path.starts_with(&format!("{gone}."))
                            || rule.path.starts_with(&format!("{gone}["))
                    })
                }));
                break;
            }
            Err(error) => {
                let segments: Vec<serde_path_to_error::Segment> =
                    error.path().iter().cloned().collect();
                let problem = schema_problem(error);
                if removed.iter().any(|gone| caused_by_removal(&problem, gone)) {
                    break;
                }
                if !problems.iter().any(|p| p.path == problem.path) {
                    problems.push(problem.clone());
                }
                if !remove_field(&mut document, &segments) {
                    break;
                }
                removed.push(problem.path);
            }
        }
    }
    if problems.len() == 1 {
        problems.remove(0).into()
    } else {
        PlanError::Invalid(problems)
    }
}

/// Whether `problem` says that the field at `gone`, removed by us, is missing.
fn caused_by_removal(problem: &Problem, gone: &str) -> bool {
    let Some(field) = problem
        .message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    else {
        return false;
    };
    let missing = if problem.path == "plan" {
        field.to_owned()
    } else {
        format!("{}.{field}", problem.path)
    };
    missing == gone
}

/// Removes the mapping entry at `path`; false when `path` does not end in a field of a
/// mapping that is there.
fn remove_field(
    document: &mut serde_yaml_ng::Value,
    path: &[serde_path_to_error::Segment],
) -> bool {
    use serde_path_to_error::Segment;
    let Some((Segment::Map { key }, parents)) = path.split_last() else {
        return false;
    };
    let mut node = document;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => node.get_mut(key.as_str()),
            Segment::Seq { index } => node.get_mut(*index),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    node.as_mapping_mut()
        .and_then(|mapping| mapping.remove(key.as_str()))
        .is_some()
}
