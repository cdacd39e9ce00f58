//! The one character set for names: flag and segment keys, rule ids, the keys other
//! objects refer to them by, environment names and token names.
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes matching [`NAME_PATTERN`]: ASCII letters,
//! digits and `_`, then also `.`, `:`, `~` and `-`. So `.`, `..`, spaces, `/`, `\`,
//! `?`, `%`, control, zero-width and bidirectional characters are all out, and a name
//! is safe as it is in a URL path segment, a Redis key and a log line.

use super::Problem;

/// The pattern every name matches (also the OpenAPI parameter pattern).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_][A-Za-z0-9_.:~-]*$";

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Checks that `name` is a name: 1 to [`MAX_NAME_LEN`] bytes matching
/// [`NAME_PATTERN`]. The error says which character is not allowed and where.
pub fn check_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        return Err(Problem::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Problem::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    for (position, character) in name.char_indices() {
        let allowed = character.is_ascii_alphanumeric()
            || character == '_'
            || (position > 0 && matches!(character, '.' | ':' | '~' | '-'));
        if !allowed {
            return Err(Problem::NameCharacter {
                character,
                position,
            });
        }
    }
    Ok(())
}

/// The message of [`Problem::NameCharacter`]. A character that is not printable
/// ASCII is shown only by its code point, so an invisible or direction-changing
/// character cannot hide in, or reorder, the message itself.
pub(super) fn name_character_text(character: char, position: usize) -> String {
    let code = format!("U+{:04X}", u32::from(character));
    let shown = if character.is_ascii_graphic() {
        format!("`{character}` ({code})")
    } else if character == ' ' {
        format!("a space ({code})")
    } else {
        code
    };
    let what = if position == 0 && matches!(character, '.' | ':' | '~' | '-') {
        format!("a name cannot start with {shown}")
    } else {
        format!("{shown} at byte {position} is not allowed in a name")
    };
    format!(
        "{what}; names are 1 to {MAX_NAME_LEN} bytes of ASCII letters, digits, `_`, `.`, `:`, \
         `~` and `-`, starting with a letter, digit or `_` ({NAME_PATTERN})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_inside_and_outside_the_set() {
        let long = "a".repeat(MAX_NAME_LEN);
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        let accepted = [
            "a",
            "0",
            "_",
            "new-checkout",
            "payments.v3",
            "team:checkout",
            "a~b",
            "A_Z-0.9:~",
            "_.",
            long.as_str(),
        ];
        for name in accepted {
            assert_eq!(check_name(name), Ok(()), "{name:?}");
        }
        let refused = [
            ("", Problem::Empty),
            (too_long.as_str(), Problem::TooLong { len: 257, max: 256 }),
            ("..", bad('.', 0)),
            (".", bad('.', 0)),
            (" ", bad(' ', 0)),
            ("a b", bad(' ', 1)),
            ("a/b", bad('/', 1)),
            ("a\\b", bad('\\', 1)),
            ("a?b", bad('?', 1)),
            ("a%2Fb", bad('%', 1)),
            ("a\u{200b}b", bad('\u{200b}', 1)),
            ("a\u{202e}b", bad('\u{202e}', 1)),
            ("a\nb", bad('\n', 1)),
            ("-a", bad('-', 0)),
            ("~a", bad('~', 0)),
            (":a", bad(':', 0)),
            ("é", bad('é', 0)),
            ("ab\u{0}", bad('\u{0}', 2)),
        ];
        for (name, problem) in refused {
            assert_eq!(check_name(name), Err(problem), "{name:?}");
        }
    }

    fn bad(character: char, position: usize) -> Problem {
        Problem::NameCharacter {
            character,
            position,
        }
    }

    #[test]
    fn messages_name_the_character_its_place_and_the_rule() {
        let text = |name: &str| check_name(name).map_err(|p| p.to_string()).unwrap_err();
        let slash = text("a/b");
        assert!(
            slash.starts_with(
                "`/` (U+002F) at byte 1 is not allowed in a name; names are 1 to 256 bytes"
            ),
            "{slash}"
        );
        assert!(slash.ends_with(&format!("({NAME_PATTERN})")), "{slash}");
        assert!(
            text("..").starts_with("a name cannot start with `.` (U+002E);"),
            "{}",
            text("..")
        );
        // Invisible and direction-changing characters are shown by code point only.
        let hidden = text("a\u{202e}b");
        assert!(
            hidden.starts_with("U+202E at byte 1 is not allowed"),
            "{hidden}"
        );
        assert!(!hidden.contains('\u{202e}'), "{hidden}");
        assert!(text("a\u{200b}b").starts_with("U+200B at byte 1"));
    }

    #[test]
    fn the_pattern_and_the_check_agree() {
        let pattern = regex::Regex::new(NAME_PATTERN).expect("compiles");
        for name in [
            "a",
            "..",
            "a.b",
            "-a",
            "a-",
            "a b",
            "a\u{200b}",
            "_:~",
            "x/y",
            "Z9",
        ] {
            assert_eq!(pattern.is_match(name), check_name(name).is_ok(), "{name:?}");
        }
    }
}
