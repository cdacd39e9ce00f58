//! What `apply` would change: the files against the environment, item by item and
//! field by field (`rules[0].serve.variant: "off" → "on"`).

use serde::Serialize;
use serde_json::Value;
use switchyard_core::{Flag, Segment};

use crate::files::Files;

/// A flag or a segment, by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `flag` or `segment`.
    pub kind: &'static str,
    /// Its key.
    pub key: String,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// Where, e.g. `rules[0].serve`.
    pub path: String,
    /// What the environment has (absent: nothing).
    pub before: Option<Value>,
    /// What the files say (absent: nothing).
    pub after: Option<Value>,
}

/// An item whose fields differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    /// `flag` or `segment`.
    pub kind: &'static str,
    /// Its key.
    pub key: String,
    /// Every field that differs.
    pub fields: Vec<Field>,
}

/// What `apply` would do.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// The environment.
    pub env: String,
    /// Its revision the plan was made against.
    pub revision: u64,
    /// In the files, not in the environment.
    pub created: Vec<Item>,
    /// In both, different.
    pub changed: Vec<Changed>,
    /// In the environment, not in the files, with `--prune`.
    pub deleted: Vec<Item>,
    /// In the environment, not in the files, without `--prune` (left alone).
    pub kept: Vec<Item>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.changed.is_empty() && self.deleted.is_empty()
    }
}

/// The plan making the environment (`flags`, `segments` at `revision`) what `files`
/// say; items only in the environment are deleted with `prune`, kept without.
pub fn plan(
    env: &str,
    revision: u64,
    files: &Files,
    (flags, segments): (&[Flag], &[Segment]),
    prune: bool,
) -> Plan {
    let mut plan = Plan {
        env: env.to_owned(),
        revision,
        ..Plan::default()
    };
    let desired_flags: Vec<&Flag> = files.flags.iter().map(|(_, f)| f).collect();
    let desired_segments: Vec<&Segment> = files.segments.iter().map(|(_, s)| s).collect();
    compare(
        &mut plan,
        "flag",
        &desired_flags,
        &flags.iter().collect::<Vec<_>>(),
        |f| f.key.as_str(),
        prune,
    );
    compare(
        &mut plan,
        "segment",
        &desired_segments,
        &segments.iter().collect::<Vec<_>>(),
        |s| s.key.as_str(),
        prune,
    );
    plan
}

fn compare<T: Serialize>(
    plan: &mut Plan,
    kind: &'static str,
    desired: &[&T],
    current: &[&T],
    key: impl Fn(&T) -> &str,
    prune: bool,
) {
    for item in desired {
        let name = key(item).to_owned();
        match current.iter().find(|c| key(c) == name) {
            None => plan.created.push(Item { kind, key: name }),
            Some(now) => {
                let mut fields = Vec::new();
                diff(
                    &comparable(now),
                    &comparable(item),
                    String::new(),
                    &mut fields,
                );
                if !fields.is_empty() {
                    plan.changed.push(Changed {
                        kind,
                        key: name,
                        fields,
                    });
                }
            }
        }
    }
    for item in current {
        let name = key(item).to_owned();
        if !desired.iter().any(|d| key(d) == name) {
            let list = if prune {
                &mut plan.deleted
            } else {
                &mut plan.kept
            };
            list.push(Item { kind, key: name });
        }
    }
}

/// The item as JSON without the server-kept `version`.
fn comparable(item: &impl Serialize) -> Value {
    let mut value = serde_json::to_value(item).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("version");
    }
    value
}

/// Every field where `before` and `after` differ, at its path under `at`: objects
/// field by field, lists of the same length item by item, anything else whole.
fn diff(before: &Value, after: &Value, at: String, out: &mut Vec<Field>) {
    if before == after {
        return;
    }
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, value) in b {
                match a.get(key) {
                    Some(other) => diff(value, other, join(key), out),
                    None => out.push(Field {
                        path: join(key),
                        before: Some(value.clone()),
                        after: None,
                    }),
                }
            }
            for (key, value) in a.iter().filter(|(k, _)| !b.contains_key(*k)) {
                out.push(Field {
                    path: join(key),
                    before: None,
                    after: Some(value.clone()),
                });
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                diff(x, y, format!("{at}[{i}]"), out);
            }
        }
        _ => out.push(Field {
            path: at,
            before: Some(before.clone()),
            after: Some(after.clone()),
        }),
    }
}

/// The plan for people: one line per item, one indented line per field.
pub fn words(plan: &Plan) -> String {
    let mut text = String::new();
    let compact = |v: &Option<Value>| match v {
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
        None => "(none)".to_owned(),
    };
    for item in &plan.created {
        text.push_str(&format!("+ {} {} (create)\n", item.kind, item.key));
    }
    for item in &plan.changed {
        text.push_str(&format!("~ {} {}\n", item.kind, item.key));
        for field in &item.fields {
            text.push_str(&format!(
                "    {}: {} → {}\n",
                field.path,
                compact(&field.before),
                compact(&field.after)
            ));
        }
    }
    for item in &plan.deleted {
        text.push_str(&format!("- {} {} (delete)\n", item.kind, item.key));
    }
    if !plan.kept.is_empty() {
        let names: Vec<String> = plan
            .kept
            .iter()
            .map(|i| format!("{} {}", i.kind, i.key))
            .collect();
        text.push_str(&format!(
            "not in the files, left alone (`--prune` deletes them): {}\n",
            names.join(", ")
        ));
    }
    text.push_str(&if plan.is_empty() {
        format!(
            "No changes: `{}` (revision {}) is what the files say.\n",
            plan.env, plan.revision
        )
    } else {
        format!(
            "Plan for `{}` (revision {}): {} to create, {} to change, {} to delete.\n",
            plan.env,
            plan.revision,
            plan.created.len(),
            plan.changed.len(),
            plan.deleted.len()
        )
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_compared_one_by_one() {
        let mut out = Vec::new();
        diff(
            &json!({"a": 1, "rules": [{"id": "x", "serve": "off"}], "gone": true}),
            &json!({"a": 1, "rules": [{"id": "x", "serve": "on"}], "new": [1]}),
            String::new(),
            &mut out,
        );
        let paths: Vec<&str> = out.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["rules[0].serve", "gone", "new"]);
        assert_eq!(out[0].after, Some(json!("on")));
        assert_eq!(out[1].after, None);
        let mut out = Vec::new();
        diff(
            &json!({"l": [1]}),
            &json!({"l": [1, 2]}),
            String::new(),
            &mut out,
        );
        assert_eq!(out[0].path, "l", "lists of another length differ whole");
    }
}
