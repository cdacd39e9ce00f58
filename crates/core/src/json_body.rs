//! Strict reading of a JSON request body, for every HTTP API: a key written twice is
//! refused (serde would keep the last one silently), and every problem names where it
//! is — the field path for a wrong shape (`at rules[0].when: unknown field `usres``),
//! the line and column for a body that is not JSON at all.

use serde::de::DeserializeOwned;

use crate::duplicate_keys::{self, DuplicateKey};

/// The deepest nesting of arrays and objects serde_json parses: its recursion limit
/// of 128 stops at the 128th level.
pub const JSON_DEPTH: usize = 127;

/// Why a request body was not read. The words are what an API answers (a 400).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonBodyError {
    /// A key is written twice in one object.
    #[error("invalid JSON body: {0}")]
    DuplicateKey(DuplicateKey),
    /// Arrays and objects nested deeper than [`JSON_DEPTH`].
    #[error("invalid JSON body: nested more than {JSON_DEPTH} levels deep at line {line}, column {column}")]
    TooDeep {
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// The body is not JSON (its position says where; the path of a half-read
    /// document would say nothing).
    #[error("the body is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// The document is JSON but not of the expected shape at its top level.
    #[error("invalid JSON body: {0}")]
    Shape(#[source] serde_json::Error),
    /// The document is JSON but not of the expected shape at `path`.
    #[error("invalid JSON body at `{path}`: {source}")]
    ShapeAt {
        /// The field path, e.g. `rules[0].when`.
        path: String,
        /// What is wrong there.
        #[source]
        source: serde_json::Error,
    },
}

/// Parses `bytes` as `T`, naming the path of the first problem. A key written twice
/// in one object is refused.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonBodyError> {
    // Read to the end first: a value the typed parse would skip (an unknown field)
    // must not hide a duplicate key after it.
    match duplicate_keys::check(&mut serde_json::Deserializer::from_slice(bytes)) {
        Ok(None) => {}
        Ok(Some(duplicate)) => return Err(JsonBodyError::DuplicateKey(duplicate)),
        Err(unreadable) => return Err(syntax(unreadable)),
    }
    // The path of a shape error is tracked only when there is one: reading again
    // with `serde_path_to_error` costs nothing on the bodies that are fine.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if let Ok(value) = T::deserialize(&mut de) {
        de.end().map_err(without_path)?;
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(at_path)?;
    de.end().map_err(without_path)?;
    Ok(value)
}

/// Reads `T` from an already parsed JSON value, naming the path of the first problem.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, JsonBodyError> {
    serde_path_to_error::deserialize(value).map_err(at_path)
}

/// A document that is not readable JSON: too deep, or what serde_json says.
fn syntax(error: serde_json::Error) -> JsonBodyError {
    // serde_json's own message would come with a path 128 fields long.
    if error.is_syntax() && error.to_string().starts_with("recursion limit exceeded") {
        return JsonBodyError::TooDeep {
            line: error.line(),
            column: error.column(),
        };
    }
    without_path(error)
}

fn at_path(error: serde_path_to_error::Error<serde_json::Error>) -> JsonBodyError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() || path == "." || path.is_empty() {
        return syntax(inner);
    }
    JsonBodyError::ShapeAt {
        path,
        source: inner,
    }
}

fn without_path(error: serde_json::Error) -> JsonBodyError {
    if error.is_syntax() || error.is_eof() {
        JsonBodyError::Syntax(error)
    } else {
        JsonBodyError::Shape(error)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        by: Option<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn every_problem_says_where() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: &[(&str, &str)] = &[
            (r#"{"by": "a", "by": "b"}"#, "invalid JSON body: duplicate key `by`"),
            (r#"{"inner": {"n": "x"}}"#, "invalid JSON body at `inner.n`: invalid type: string \"x\", expected u32 at line 1 column 19"),
            (r#"{"surprise": 1}"#, "invalid JSON body at `surprise`: unknown field `surprise`, expected `by` or `inner` at line 1 column 11"),
            (r#"{"by": "a"} x"#, "the body is not valid JSON: trailing characters at line 1 column 13"),
            (r#"{"by": "#, "the body is not valid JSON: EOF while parsing a value at line 1 column 7"),
        ];
        for (body, said) in cases {
            let error = parse::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(error.to_string(), *said, "{body}");
        }
        assert_eq!(
            parse::<serde_json::Value>(deep.as_bytes())
                .unwrap_err()
                .to_string(),
            "invalid JSON body: nested more than 127 levels deep at line 1, column 128"
        );
        assert_eq!(
            parse::<Body>(br#"{"by": "a"}"#).unwrap().by.as_deref(),
            Some("a")
        );
    }

    /// Found by fuzzing (`tests/fuzz.rs`): an unknown field a lenient document skips
    /// used to stop the duplicate-key pass, so a duplicate after it went unnoticed.
    #[test]
    fn a_skipped_field_that_is_not_readable_json_hides_no_duplicate_key() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Lenient {
            by: Option<String>,
        }
        let error = parse::<Lenient>(br#"{"x": 1e400, "by": "a", "by": "b"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the body is not valid JSON: number out of range at line 1 column 11"
        );
        let deep = format!(
            r#"{{"x": {}{}, "by": "a"}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let error = parse::<Lenient>(deep.as_bytes()).unwrap_err();
        assert!(matches!(error, JsonBodyError::TooDeep { .. }), "{error}");
    }
}
