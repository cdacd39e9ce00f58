//! JSON documents mutated near their shape, for property-based fuzzing of everything
//! that reads them (core's documents, release plans): from valid seeds, up to three
//! edits — a field dropped; a value replaced by one of another type (null, booleans,
//! huge / negative / fractional numbers, empty / unicode / very long strings, arrays,
//! objects) or by a wrong one of its type; unknown fields; a key written twice in the
//! raw text; another part of the document grafted in; deep nesting; raw literals a
//! `Value` cannot hold (`1e400`, `"\ud800"`, `NaN`, `[1,]`). [`mutants`] gives the text
//! and the keys it writes twice.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

/// JSON text put in place of a value: literals a `Value` cannot hold (out of range,
/// lone surrogates) and broken JSON.
const RAW: &str =
    "1e400|-1e400|123456789012345678901234567890|-0|1E5|25000.000|1e-400|\"\\ud800\"|\
    \"\\u0000\"|NaN|01|tru|[1,]|{\"a\" 1}";

fn split(list: &'static str) -> Vec<&'static str> {
    list.split('|').collect()
}

/// Numbers at the edges: weights' bounds, `u32`'s, whole floats, negative zero.
const NUMBERS: &str = "0|-1|100000|100001|25000.0|0.5|-0.0|4294967295|4294967296|\
    18446744073709551615|-9223372036854775808|1e300";

fn number() -> impl Strategy<Value = Value> {
    let edges: Vec<Value> = split(NUMBERS)
        .into_iter()
        .map(|n| serde_json::from_str(n).expect("a JSON number"))
        .collect();
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(edges),
    ]
}

fn text(words: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,12}",
        "[A-Za-z0-9_.:~-]{1,10}",
        prop::sample::select(split(words)).prop_map(str::to_owned),
        (1_usize..4).prop_map(|k| "x".repeat(k * 100)),
        Just("é".repeat(40_000)),
    ]
}

fn junk(vocabulary: Vocabulary) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text(vocabulary.words).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((field(vocabulary.fields), inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn field(fields: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(split(fields)).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// One change at the place a path of child indices leads to.
#[derive(Debug, Clone)]
enum Edit {
    /// Removes the field or item.
    Drop,
    /// Puts this value there, whatever type it has.
    Replace(Value),
    /// Replaces a value by another of its type: this string or number, the other
    /// boolean, an empty array or object.
    Alike(String, Value),
    /// Adds a field to the object there (or to its container; an item to an array).
    Add(String, Value),
    /// Writes a key of the object there twice (an item of an array: twice).
    Duplicate(Index, Value),
    /// Puts a copy of another subtree of the document there.
    Graft(Index),
    /// Wraps the value in this many arrays (`true`) or objects.
    Nest(usize, bool),
    /// Puts this JSON text there, as it is (see [`RAW`]).
    Raw(&'static str),
}

fn edit(vocabulary: Vocabulary) -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => junk(vocabulary).prop_map(Edit::Replace),
        4 => (text(vocabulary.words), number()).prop_map(|(s, n)| Edit::Alike(s, n)),
        3 => Just(Edit::Drop),
        2 => (field(vocabulary.fields), junk(vocabulary)).prop_map(|(k, v)| Edit::Add(k, v)),
        2 => (any::<Index>(), junk(vocabulary)).prop_map(|(i, v)| Edit::Duplicate(i, v)),
        2 => any::<Index>().prop_map(Edit::Graft),
        1 => (prop_oneof![1_usize..=24, 124_usize..=132], any::<bool>())
            .prop_map(|(n, array)| Edit::Nest(n, array)),
        1 => prop::sample::select(split(RAW)).prop_map(Edit::Raw),
    ]
}

/// A mutated document as text, and the keys it writes twice.
#[derive(Debug, Clone)]
pub struct Mutant {
    /// The document as JSON text (which may no longer be JSON).
    pub text: String,
    /// Keys an object of it writes twice.
    pub duplicated: Vec<String>,
}

/// The names a document kind uses, `|`-separated: its field names (added, and as
/// keys of generated objects) and strings that mean something in it (names, kinds,
/// operators, operands good and bad).
#[derive(Debug, Clone, Copy)]
pub struct Vocabulary {
    /// Field names.
    pub fields: &'static str,
    /// Meaningful strings.
    pub words: &'static str,
}

/// Valid documents (`seeds`) with up to three edits each (none: the document itself).
pub fn mutants(seeds: Vec<Value>, vocabulary: Vocabulary) -> impl Strategy<Value = Mutant> {
    let mutation = (
        prop::collection::vec(any::<Index>(), 1..=8),
        edit(vocabulary),
    );
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation, 0..=3),
    )
        .prop_map(|(seed, mutations)| {
            // The document is the only item of a list, so that the root itself can
            // be replaced, dropped (empty text) or followed by a second value.
            let mut root = Value::Array(vec![seed]);
            let mut markers = Vec::new();
            for (path, edit) in mutations {
                let graft = match &edit {
                    Edit::Graft(i) => Some(subtree(&root, *i)),
                    _ => None,
                };
                apply(&mut root, &path, edit, graft, &mut markers);
            }
            let items = root.as_array().cloned().unwrap_or_default();
            let mut text = items
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            let mut duplicated = Vec::new();
            written_twice(&root, &markers, &mut duplicated);
            for marker in markers {
                text = text.replace(&Value::String(marker.name).to_string(), &marker.text);
            }
            Mutant { text, duplicated }
        })
}

fn subtree(root: &Value, i: Index) -> Value {
    let mut all = vec![root];
    let mut next = 0;
    while next < all.len() && all.len() < 512 {
        match all[next] {
            Value::Array(items) => all.extend(items),
            Value::Object(fields) => all.extend(fields.values()),
            _ => {}
        }
        next += 1;
    }
    (*i.get(&all)).clone()
}

/// A string in the document that becomes other text once it is written out: raw
/// JSON in place of a value, or a key that is then written twice.
struct Marker {
    name: String,
    text: String,
    key: Option<String>,
}

/// The keys that end up written twice: an object where a key and its markers, once
/// written out, make two or more (later edits may have dropped some).
fn written_twice(value: &Value, markers: &[Marker], found: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            // Two markers for one key write it twice too, without the key itself.
            for key in markers.iter().filter_map(|m| m.key.as_ref()) {
                let markers = markers.iter().filter(|m| m.key.as_ref() == Some(key));
                let written = markers.filter(|m| fields.contains_key(&m.name)).count()
                    + usize::from(fields.contains_key(key));
                if written > 1 {
                    found.push(key.clone());
                }
            }
            fields
                .values()
                .for_each(|v| written_twice(v, markers, found));
        }
        Value::Array(items) => items.iter().for_each(|v| written_twice(v, markers, found)),
        _ => {}
    }
}

fn apply(
    at: &mut Value,
    path: &[Index],
    edit: Edit,
    graft: Option<Value>,
    markers: &mut Vec<Marker>,
) {
    let len = match at {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields.len(),
        _ => 0,
    };
    if len == 0 {
        match (at, edit) {
            (Value::Array(items), Edit::Add(_, v) | Edit::Replace(v)) => items.push(v),
            (Value::Object(fields), Edit::Add(k, v)) => drop(fields.insert(k, v)),
            _ => {}
        }
        return;
    }
    let i = path[0].index(len);
    let key = at
        .as_object()
        .and_then(|fields| fields.keys().nth(i).cloned());
    let Some(child) = nth_mut(at, i) else { return };
    if path.len() > 1 && (child.is_array() || child.is_object()) {
        return apply(child, &path[1..], edit, graft, markers);
    }
    let marker = format!("\u{1}fuzz{}\u{1}", markers.len());
    match edit {
        Edit::Drop => match at {
            Value::Array(items) => drop(items.remove(i)),
            Value::Object(fields) => drop(key.and_then(|k| fields.shift_remove(&k))),
            _ => {}
        },
        Edit::Replace(v) => *child = v,
        Edit::Alike(s, n) => match child {
            Value::String(old) => *old = s,
            Value::Number(_) => *child = n,
            Value::Bool(b) => *b = !*b,
            Value::Array(items) => items.clear(),
            Value::Object(fields) => fields.clear(),
            Value::Null => {}
        },
        Edit::Graft(_) => *child = graft.unwrap_or_default(),
        Edit::Nest(n, array) => {
            for _ in 0..n {
                let inner = child.take();
                *child = if array {
                    json!([inner])
                } else {
                    json!({"n": inner})
                };
            }
        }
        Edit::Raw(raw) => {
            *child = Value::String(marker.clone());
            markers.push(Marker {
                name: marker,
                text: raw.to_owned(),
                key: None,
            });
        }
        Edit::Add(k, v) => {
            if let Value::Object(fields) = child {
                fields.insert(k, v);
            } else {
                match at {
                    Value::Object(fields) => drop(fields.insert(k, v)),
                    Value::Array(items) => items.push(v),
                    _ => {}
                }
            }
        }
        Edit::Duplicate(which, v) => {
            // Markers start with U+0001, which no generated key does.
            let real = |k: &String| !k.starts_with('\u{1}');
            let twice = match child {
                Value::Object(fields) if fields.keys().any(real) => {
                    let keys: Vec<String> = fields.keys().filter(|k| real(k)).cloned().collect();
                    fields.insert(marker.clone(), v);
                    Some(which.get(&keys).clone())
                }
                _ => match at {
                    Value::Object(fields) if key.as_ref().is_some_and(real) => {
                        fields.insert(marker.clone(), v);
                        key
                    }
                    Value::Array(items) => {
                        items.push(items[i].clone());
                        None
                    }
                    _ => None,
                },
            };
            if let Some(k) = twice {
                markers.push(Marker {
                    name: marker,
                    text: Value::String(k.clone()).to_string(),
                    key: Some(k),
                });
            }
        }
    }
}

fn nth_mut(at: &mut Value, i: usize) -> Option<&mut Value> {
    match at {
        Value::Array(items) => items.get_mut(i),
        Value::Object(fields) => fields.values_mut().nth(i),
        _ => None,
    }
}
