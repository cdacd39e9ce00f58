//! Conditional writes (RFC 9110 §13): `If-Match` and `If-None-Match` on every write,
//! evaluated against an object's version (the admin API reads them from headers, the
//! console from the version a page was rendered with). An object's entity tag is its version
//! as a strong tag, `"12"`; the `ETag` of every answer that returns an object says so.
//!
//! - `If-Match: *` holds when the object exists; a list holds when one of its tags is
//!   strong and equal to the current one (strong comparison, so `W/"12"` never holds).
//! - `If-None-Match: *` holds when the object does not exist (create-only); a list holds
//!   when none of its tags equals the current one (weak comparison).
//! - A condition that does not hold is 412 and nothing is written; a header that is not a
//!   list of entity tags (`12` without quotes, `"1" junk`) is 400.

use super::EnvError;

/// One side of a condition: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tags {
    Any,
    List(Vec<EntityTag>),
}

/// An entity tag as sent. Ours are versions; any other opaque tag is valid and simply
/// never equals one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    version: Option<u64>,
}

/// The preconditions of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    if_match: Option<Tags>,
    if_none_match: Option<Tags>,
}

/// Which header a malformed condition came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// `If-Match`.
    IfMatch,
    /// `If-None-Match`.
    IfNoneMatch,
}

impl std::fmt::Display for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Header::IfMatch => "If-Match",
            Header::IfNoneMatch => "If-None-Match",
        })
    }
}

/// A condition that is not `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{header} must be `*` or a list of quoted entity tags such as \"12\" (an object's \
     version, as its ETag shows), got `{text}`"
)]
pub struct Malformed {
    /// The header.
    pub header: Header,
    /// What it said (`(not visible ASCII)` when it was not text).
    pub text: String,
}

impl Preconditions {
    /// Parses both fields' values (each may be sent several times; the lists join).
    pub fn parse<'a>(
        if_match: impl IntoIterator<Item = &'a str>,
        if_none_match: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Malformed> {
        Ok(Preconditions {
            if_match: tags(Header::IfMatch, if_match)?,
            if_none_match: tags(Header::IfNoneMatch, if_none_match)?,
        })
    }

    /// Only at this version (`If-Match: "version"`): what a form rendered at `version`
    /// sends, so a concurrent edit is refused instead of lost.
    pub fn at_version(version: u64) -> Self {
        Preconditions {
            if_match: Some(Tags::List(vec![EntityTag {
                weak: false,
                version: Some(version),
            }])),
            if_none_match: None,
        }
    }

    /// Only if it does not exist yet (`If-None-Match: *`).
    pub fn absent() -> Self {
        Preconditions {
            if_match: None,
            if_none_match: Some(Tags::Any),
        }
    }

    /// Whether the request carries any condition.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Evaluates the conditions against the object's current version (`None`: it does
    /// not exist). `what` names the object for the message, e.g. ``flag `checkout` ``.
    pub fn check(&self, what: &str, current: Option<u64>) -> Result<(), EnvError> {
        if let Some(tags) = &self.if_match {
            let holds = match (tags, current) {
                (_, None) => false,
                (Tags::Any, Some(_)) => true,
                (Tags::List(list), Some(version)) => list
                    .iter()
                    .any(|tag| !tag.weak && tag.version == Some(version)),
            };
            if !holds {
                return Err(EnvError::PreconditionFailed {
                    current,
                    message: match current {
                        None => format!("{what} does not exist, so If-Match cannot hold"),
                        Some(version) => format!(
                            "{what} is at version \"{version}\", which If-Match does not \
                             name; reload it and retry"
                        ),
                    },
                });
            }
        }
        if let (Some(tags), Some(version)) = (&self.if_none_match, current) {
            let matches = match tags {
                Tags::Any => true,
                Tags::List(list) => list.iter().any(|tag| tag.version == Some(version)),
            };
            if matches {
                return Err(EnvError::PreconditionFailed {
                    current,
                    message: match tags {
                        Tags::Any => format!(
                            "{what} already exists (version \"{version}\") and \
                             If-None-Match: * only creates"
                        ),
                        Tags::List(_) => {
                            format!("{what} is at version \"{version}\", which If-None-Match names")
                        }
                    },
                });
            }
        }
        Ok(())
    }
}

fn tags<'a>(
    header: Header,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Option<Tags>, Malformed> {
    let malformed = |text: &str| Malformed {
        header,
        text: text.to_owned(),
    };
    let mut found: Option<Tags> = None;
    for text in values {
        let parsed = parse(text).ok_or_else(|| malformed(text))?;
        found = Some(match (found, parsed) {
            (None, parsed) => parsed,
            (Some(Tags::List(mut a)), Tags::List(b)) => {
                a.extend(b);
                Tags::List(a)
            }
            // `*` must be the field's only member.
            _ => return Err(malformed(text)),
        });
    }
    Ok(found)
}

/// `*`, or `1#entity-tag` (RFC 9110 §8.8.3): `"opaque"` or `W/"opaque"`, separated by
/// commas and optional whitespace. An opaque tag may itself hold commas.
fn parse(text: &str) -> Option<Tags> {
    let text = text.trim_matches(is_ows);
    if text == "*" {
        return Some(Tags::Any);
    }
    let mut list = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c| is_ows(c) || c == ',');
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let opaque_and_rest = quoted.strip_prefix('"')?;
        let end = opaque_and_rest.find('"')?;
        let opaque = &opaque_and_rest[..end];
        // etagc: visible ASCII but `"`, or obs-text.
        if opaque.bytes().any(|b| b < 0x21 || b == 0x7f) {
            return None;
        }
        let version = if opaque.bytes().all(|b| b.is_ascii_digit()) {
            opaque.parse().ok()
        } else {
            None
        };
        list.push(EntityTag { weak, version });
        rest = opaque_and_rest[end + 1..].trim_start_matches(is_ows);
        // Between two tags: a comma (empty list elements are allowed).
        if !(rest.is_empty() || rest.starts_with(',')) {
            return None;
        }
    }
    (!list.is_empty()).then_some(Tags::List(list))
}

/// Optional whitespace (RFC 9110 §5.6.3).
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    /// If-Match, If-None-Match, the current version, and the expected status (0: holds).
    type Case<'a> = (&'a [&'a str], &'a [&'a str], Option<u64>, u16);

    #[test]
    fn rfc_9110_evaluation() {
        let cases: &[Case] = &[
            (&[], &[], None, 0),
            (&[], &[], Some(3), 0),
            (&["\"3\""], &[], Some(3), 0),
            (&["\"3\""], &[], Some(4), 412),
            (&["\"3\""], &[], None, 412),
            (&["\"0\""], &[], None, 412),
            (&["W/\"3\""], &[], Some(3), 412),
            (&["\"1\", \"3\""], &[], Some(3), 0),
            (&["\"a,b\" ,  W/\"c\"\t, \"3\""], &[], Some(3), 0),
            (&["\"a,3\""], &[], Some(3), 412),
            (&[", \"3\","], &[], Some(3), 0),
            (&["\"1\"", "\"3\""], &[], Some(3), 0),
            (&["\"abc\""], &[], Some(3), 412),
            (&["\"\""], &[], Some(3), 412),
            (&["\"99999999999999999999999\""], &[], Some(3), 412),
            (&["*"], &[], Some(3), 0),
            (&["*"], &[], None, 412),
            (&[], &["*"], None, 0),
            (&[], &["*"], Some(1), 412),
            (&[], &["\"1\""], Some(1), 412),
            (&[], &["W/\"1\""], Some(1), 412),
            (&[], &["\"2\""], Some(1), 0),
            (&[], &["\"2\""], None, 0),
            (&["\"1\""], &["\"1\""], Some(1), 412),
            (&["7"], &[], Some(7), 400),
            (&["abc"], &[], Some(7), 400),
            (&["-1"], &[], Some(7), 400),
            (&["1.5"], &[], Some(7), 400),
            (&["\"1\" junk"], &[], Some(1), 400),
            (&["\"1\"\"2\""], &[], Some(1), 400),
            (&["\"1"], &[], Some(1), 400),
            (&["\"a b\""], &[], Some(1), 400),
            (&["*, \"1\""], &[], Some(1), 400),
            (&["*", "\"1\""], &[], Some(1), 400),
            (&[""], &[], Some(1), 400),
            (&[], &["nope"], Some(1), 400),
        ];
        for (if_match, if_none_match, current, expected) in cases {
            let status =
                match Preconditions::parse(if_match.iter().copied(), if_none_match.iter().copied())
                {
                    Err(_) => 400,
                    Ok(c) => match c.check("flag `f`", *current) {
                        Ok(()) => 0,
                        Err(EnvError::PreconditionFailed { .. }) => 412,
                        Err(other) => panic!("unexpected {other}"),
                    },
                };
            assert_eq!(
                status, *expected,
                "If-Match {if_match:?} If-None-Match {if_none_match:?} at {current:?}"
            );
        }
    }
}
