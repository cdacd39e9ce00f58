//! Validation errors: every rejected flag or segment is reported with the path of
//! the offending field and what is wrong with it, e.g.
//! `rules[2].serve.rollout.split: weights sum to 99000, expected 100000`.
//!
//! The checks themselves run while compiling ([`crate::Snapshot::compile`],
//! [`validate_flag`]), so a value is parsed exactly once whether it is being
//! validated or loaded.

use std::fmt;

use serde_json::Value;

use crate::model::{Flag, FlagKey, Segment};
use crate::snapshot::{compile_flag, compile_segment};

mod names;

pub use names::{check_name, MAX_NAME_LEN, NAME_PATTERN};

/// One problem found in a flag or segment.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {problem}")]
#[non_exhaustive]
pub struct ValidationError {
    /// Where, e.g. `rules[2].serve.rollout.split`.
    pub path: String,
    /// What is wrong.
    #[source]
    pub problem: Problem,
}

/// Everything wrong with a flag, a segment or a whole set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// The individual problems.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }
}

/// At most the first 60 characters of an echoed value, so a message stays readable.
fn shortened(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &value[..end]).into(),
        None => value.into(),
    }
}

/// Why a regex was refused, in one line (the regex crate's syntax errors draw the
/// pattern with a caret over several lines).
fn regex_reason(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => {
            format!("it compiles to more than the {limit}-byte limit; use a simpler pattern")
        }
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text)
            .to_owned(),
        other => other.to_string(),
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required string or list is empty.
    #[error("must not be empty")]
    Empty,
    /// A key or name is too long.
    #[error("is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Actual length.
        len: usize,
        /// Allowed length.
        max: usize,
    },
    /// A key contains a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// A name with a character outside [`NAME_PATTERN`].
    #[error("{}", names::name_character_text(*.character, *.position))]
    NameCharacter {
        /// The first character not allowed.
        character: char,
        /// Its byte offset in the name.
        position: usize,
    },
    /// A variant name that the flag does not define.
    #[error("unknown variant `{0}`")]
    UnknownVariant(String),
    /// A variant value that does not have the flag's kind.
    #[error("a {kind} flag cannot have a {found} value")]
    KindMismatch {
        /// The flag's kind.
        kind: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// Boolean flags have exactly `on: true` and `off: false`.
    #[error("a boolean flag has exactly the variants `on: true` and `off: false`")]
    BooleanVariants,
    /// Split weights with the wrong total.
    #[error("weights sum to {sum}, expected {expected}")]
    WeightSum {
        /// Actual total.
        sum: u64,
        /// Required total.
        expected: u32,
    },
    /// Split weights that are all zero.
    #[error("weights sum to 0; at least one must be positive")]
    ZeroWeights,
    /// A percentage above the whole.
    #[error("weight {weight} is above 100000 (100 %)")]
    WeightAboveWhole {
        /// The weight given.
        weight: u32,
    },
    /// Unleash percentages are whole percents.
    #[error(
        "weight {weight} is not a whole percent (a multiple of 1000), as Unleash hashing needs"
    )]
    FractionalPercent {
        /// The weight given.
        weight: u32,
    },
    /// A rollout lists a variant twice.
    #[error("variant `{0}` is listed twice; give it one share")]
    DuplicateSplitVariant(String),
    /// Two rules share an id.
    #[error("duplicate rule id `{0}`")]
    DuplicateRuleId(String),
    /// Two flags or segments share a key.
    #[error("duplicate key `{0}`")]
    DuplicateKey(String),
    /// An operator that needs operands has none.
    #[error("`{op}` needs at least one value")]
    MissingValues {
        /// The operator.
        op: &'static str,
    },
    /// `exists` takes no operands.
    #[error("`exists` takes no values")]
    UnexpectedValues,
    /// A regular expression that does not compile.
    #[error("invalid regular expression `{}`: {}", shortened(.value), regex_reason(.source))]
    BadRegex {
        /// The pattern.
        value: String,
        /// Why.
        #[source]
        source: regex::Error,
    },
    /// Not a semantic version.
    #[error("`{0}` is not a semantic version (MAJOR.MINOR.PATCH[-PRE][+BUILD])")]
    BadSemver(String),
    /// Not a number.
    #[error("`{0}` is not a finite number")]
    BadNumber(String),
    /// Not an RFC 3339 instant.
    #[error("`{value}` is not an RFC 3339 instant")]
    BadInstant {
        /// The text.
        value: String,
        /// Why.
        #[source]
        source: chrono::ParseError,
    },
    /// Not a CIDR block or IP address.
    #[error("`{0}` is not an IP address or CIDR block")]
    BadCidr(String),
    /// A segment used by a rule does not exist.
    #[error("unknown segment `{0}`")]
    UnknownSegment(String),
    /// Segments cannot nest.
    #[error("a segment's condition cannot name other segments")]
    NestedSegment,
    /// A prerequisite names a variant its flag does not have.
    #[error("flag `{flag}` has no variant `{variant}`")]
    UnknownPrerequisiteVariant {
        /// The prerequisite flag.
        flag: String,
        /// The variant named.
        variant: String,
    },
    /// A variant value nested deeper than [`MAX_VALUE_DEPTH`].
    #[error("nested {depth} levels deep; at most {max} are allowed")]
    TooDeep {
        /// Levels of arrays and objects found.
        depth: usize,
        /// Levels allowed.
        max: usize,
    },
    /// A variant value larger than [`MAX_VALUE_BYTES`] as compact JSON.
    #[error("is {size} bytes as JSON; at most {max} are allowed")]
    TooLarge {
        /// Its size as compact JSON.
        size: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// A flag that cannot be written as JSON (a value serde cannot write).
    #[error("cannot be written as JSON: {0}")]
    Unencodable(String),
    /// A flag requires itself, directly or through others.
    #[error("prerequisite cycle: {}", cycle_text(.0))]
    PrerequisiteCycle(Vec<FlagKey>),
}

fn cycle_text(cycle: &[FlagKey]) -> String {
    let mut text = String::new();
    for key in cycle {
        text.push_str(key.as_str());
        text.push_str(" → ");
    }
    if let Some(first) = cycle.first() {
        text.push_str(first.as_str());
    }
    text
}

/// Where a value is in the input (`flags[checkout].rules[0].when`), written out only
/// when a problem is reported there: compiling a valid flag set formats no path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At<'a> {
    /// The value being checked itself.
    Top,
    /// `parent.field` (just `field` at the top).
    Field(&'a At<'a>, &'a str),
    /// `parent[index]`.
    Index(&'a At<'a>, usize),
    /// `parent[key]` (`key` at the top: `flags[checkout]`).
    Key(&'a At<'a>, &'a str, &'a str),
}

impl<'a> At<'a> {
    pub(crate) fn field(&'a self, field: &'a str) -> At<'a> {
        At::Field(self, field)
    }

    pub(crate) fn index(&'a self, index: usize) -> At<'a> {
        At::Index(self, index)
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Top => Ok(()),
            At::Field(At::Top, field) => f.write_str(field),
            At::Field(parent, field) => write!(f, "{parent}.{field}"),
            At::Index(parent, index) => write!(f, "{parent}[{index}]"),
            At::Key(At::Top, list, key) => write!(f, "{list}[{key}]"),
            At::Key(parent, list, key) => write!(f, "{parent}.{list}[{key}]"),
        }
    }
}

/// Which rules a check applies: what is written now must meet every rule; what was
/// stored before a rule existed must still load (and evaluate as it always did).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Loading stored or received flags ([`crate::Snapshot::compile`]).
    #[default]
    Load,
    /// Writing a flag or segment ([`validate_flag`], [`validate_segment`]): also
    /// names in the name set ([`check_name`]), no split listing a variant twice and
    /// no `in`/`not_in` without values.
    Write,
}

/// Collects problems while walking a value, tracking the current field path.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) errors: Vec<ValidationError>,
    pub(crate) gate: Gate,
}

impl Problems {
    pub(crate) fn for_write() -> Self {
        Problems {
            errors: Vec::new(),
            gate: Gate::Write,
        }
    }

    /// Whether the rules for new writes apply.
    pub(crate) fn writing(&self) -> bool {
        self.gate == Gate::Write
    }

    pub(crate) fn push(&mut self, path: impl fmt::Display, problem: Problem) {
        self.errors.push(ValidationError {
            path: path.to_string(),
            problem,
        });
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

/// The longest key accepted for flags, segments and environments.
pub const MAX_KEY_LEN: usize = MAX_NAME_LEN;

/// A flag or segment key, or a reference to one: a name ([`check_name`]) when
/// writing; when loading, only what was checked before names had a character set.
pub(crate) fn check_name_at(problems: &mut Problems, path: &At<'_>, name: &str) {
    if problems.writing() {
        if let Err(problem) = check_name(name) {
            problems.push(path, problem);
        }
    } else {
        check_key(problems, path, name);
    }
}

/// A tag, or a key being loaded: 1 to [`MAX_KEY_LEN`] bytes without control
/// characters.
pub(crate) fn check_key(problems: &mut Problems, path: &At<'_>, key: &str) {
    if key.is_empty() {
        problems.push(path, Problem::Empty);
    } else if key.len() > MAX_KEY_LEN {
        problems.push(
            path,
            Problem::TooLong {
                len: key.len(),
                max: MAX_KEY_LEN,
            },
        );
    } else if key.chars().any(char::is_control) {
        problems.push(path, Problem::ControlCharacter);
    }
}

/// The deepest nesting of arrays and objects allowed in a variant value (`{"a": 1}`
/// is 1 level deep, a scalar 0). Every consumer wraps a value a few levels deeper (a
/// flag, an SDK snapshot or change event, an audit entry, an OFREP or flagd answer)
/// and some count more than one level per JSON level (a protobuf `Struct` costs three
/// message levels per object), so this leaves ample room under serde_json's 128 and
/// protobuf decoders' 100 levels. See docs/flags.md.
pub const MAX_VALUE_DEPTH: usize = 20;

/// The largest variant value allowed, in bytes of compact JSON (64 KiB).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Checks a free-form JSON value against [`MAX_VALUE_DEPTH`] and [`MAX_VALUE_BYTES`].
pub(crate) fn check_value(problems: &mut Problems, path: impl fmt::Display, value: &Value) {
    let depth = depth(value);
    if depth > MAX_VALUE_DEPTH {
        problems.push(
            path,
            Problem::TooDeep {
                depth,
                max: MAX_VALUE_DEPTH,
            },
        );
        return;
    }
    let size = json_size(value);
    if size > MAX_VALUE_BYTES {
        problems.push(
            path,
            Problem::TooLarge {
                size,
                max: MAX_VALUE_BYTES,
            },
        );
    }
}

/// Levels of arrays and objects in `value`, level by level rather than by recursion
/// (a value built in code may be nested deeper than any stack allows).
fn depth(value: &Value) -> usize {
    fn is_container(value: &&Value) -> bool {
        value.is_array() || value.is_object()
    }
    let mut level: Vec<&Value> = std::iter::once(value).filter(is_container).collect();
    let mut depth = 0;
    while !level.is_empty() {
        depth += 1;
        let mut next = Vec::new();
        for value in level {
            match value {
                Value::Array(items) => next.extend(items.iter().filter(is_container)),
                Value::Object(fields) => next.extend(fields.values().filter(is_container)),
                _ => {}
            }
        }
        level = next;
    }
    depth
}

/// The length of `value` as compact JSON, counted without building the text.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` cannot fail, and `Count` never does.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Checks one flag on its own. Segments it names and its prerequisites are checked
/// when the flag joins a set ([`crate::Snapshot::compile`]).
///
/// This is the check for a flag being written, so it also applies the rules that
/// stored flags predating them need not meet (names in the name set, no variant
/// listed twice in a split, no `in`/`not_in` without values).
pub fn validate_flag(flag: &Flag) -> Result<(), ValidationErrors> {
    let mut problems = Problems::for_write();
    let _ = compile_flag(flag.clone(), &At::Top, &mut problems);
    problems.into_result(())
}

/// Checks one segment on its own, as it is being written (see [`validate_flag`]).
pub fn validate_segment(segment: &Segment) -> Result<(), ValidationErrors> {
    let mut problems = Problems::for_write();
    let _ = compile_segment(segment, &At::Top, &mut problems);
    problems.into_result(())
}
