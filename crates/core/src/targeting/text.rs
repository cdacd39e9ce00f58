//! The string comparisons of constraints, written for the short strings contexts hold
//! (names, countries, plans, versions, e-mail addresses): equal-length byte runs of up
//! to 16 bytes are compared as two overlapping words in registers, not through a call
//! to `memcmp`, and a search looks for the needle's first byte before comparing the
//! rest. Long haystacks are searched by `memchr`'s `memmem` (linear time, whatever
//! the input).
//!
//! The case-insensitive forms compare against a value lowercased when the flag was
//! compiled, without allocating: byte-wise for ASCII, by Unicode lowercase otherwise.

/// The string tests of `contains`, `starts_with`, `ends_with` (and literal patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
    Equals,
}

impl TextOp {
    /// Whether `s` holds `value` this way.
    #[inline]
    pub(super) fn holds(self, s: &str, value: &str) -> bool {
        let (s, value) = (s.as_bytes(), value.as_bytes());
        match self {
            TextOp::Contains => contains(s, value),
            TextOp::StartsWith => s.get(..value.len()).is_some_and(|head| same(head, value)),
            TextOp::EndsWith => s
                .len()
                .checked_sub(value.len())
                .and_then(|start| s.get(start..))
                .is_some_and(|tail| same(tail, value)),
            TextOp::Equals => eq(s, value),
        }
    }

    /// Whether `s`, lowercased, holds `lowered` this way.
    #[inline]
    pub(super) fn holds_ignoring_case(self, s: &str, lowered: &str) -> bool {
        match self {
            TextOp::Contains => contains_ignoring_case(s, lowered),
            TextOp::StartsWith => starts_with_ignoring_case(s, lowered),
            TextOp::EndsWith => ends_with_ignoring_case(s, lowered),
            TextOp::Equals => eq_ignoring_case(s, lowered),
        }
    }
}

/// `a == b`.
#[inline(always)]
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && same(a, b)
}

/// `a == b` for slices of equal length.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => word32(a, 0) == word32(b, 0) && word32(a, n - 4) == word32(b, n - 4),
        8..=16 => word64(a, 0) == word64(b, 0) && word64(a, n - 8) == word64(b, n - 8),
        _ => a == b,
    }
}

#[inline(always)]
fn word32(s: &[u8], at: usize) -> Option<u32> {
    s.get(at..at + 4)?.try_into().ok().map(u32::from_ne_bytes)
}

#[inline(always)]
fn word64(s: &[u8], at: usize) -> Option<u64> {
    s.get(at..at + 8)?.try_into().ok().map(u64::from_ne_bytes)
}

/// Haystacks longer than this are searched by `memmem`; shorter ones by their first
/// byte, which costs less than setting up a search.
const SHORT_HAYSTACK: usize = 64;

/// Whether `needle` occurs in `haystack`.
#[inline]
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    if haystack.len() > SHORT_HAYSTACK {
        return memchr::memmem::find(haystack, needle).is_some();
    }
    (0..=last_start).any(|i| {
        haystack[i] == first
            && haystack
                .get(i + 1..i + needle.len())
                .is_some_and(|after| same(after, rest))
    })
}

fn lower(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

pub(super) fn eq_ignoring_case(s: &str, lowered: &str) -> bool {
    if s.is_ascii() {
        return s.len() == lowered.len() && ascii_lower_eq(s.as_bytes(), lowered.as_bytes());
    }
    lower(s).eq(lowered.chars())
}

/// `haystack` lowercased equals `lowered`, both ASCII and of equal length: a byte of
/// `lowered` that is a lowercase letter accepts that letter in either case (`h | 0x20`),
/// any other byte only itself. Eight bytes at a time.
#[inline]
fn ascii_lower_eq(haystack: &[u8], lowered: &[u8]) -> bool {
    let n = lowered.len();
    if haystack.len() != n {
        return false;
    }
    if n < 8 {
        return haystack
            .iter()
            .zip(lowered)
            .all(|(&h, &l)| h | (u8::from(l.is_ascii_lowercase()) << 5) == l);
    }
    let folded_at = |at: usize| match (word64(haystack, at), word64(lowered, at)) {
        (Some(h), Some(l)) => h | letters(l) == l,
        _ => false,
    };
    (0..n / 8).all(|i| folded_at(i * 8)) && (n % 8 == 0 || folded_at(n - 8))
}

/// `0x20` in each byte of `word` that is an ASCII lowercase letter, `0` elsewhere.
#[inline(always)]
fn letters(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    // Per byte, its low seven bits plus a constant set the byte's top bit exactly when
    // it is at least `a` (resp. past `z`); the sums stay under 0x100, so no carry
    // crosses into the next byte.
    let low = word & !HIGH;
    let from_a = low + ONES * u64::from(0x80 - b'a');
    let past_z = low + ONES * u64::from(0x80 - b'z' - 1);
    (from_a & !past_z & !word & HIGH) >> 2
}

// Only the part of `s` that can match is checked for ASCII: ASCII bytes are whole
// characters that lowercase to one ASCII byte, so when the head (tail) of `s` as long
// as `lowered` is ASCII, lowercasing `s` begins (ends) with exactly those bytes
// folded. Anything else takes the character-wise path.

pub(super) fn starts_with_ignoring_case(s: &str, lowered: &str) -> bool {
    if let Some(head) = s.as_bytes().get(..lowered.len()) {
        if head.is_ascii() && lowered.is_ascii() {
            return ascii_lower_eq(head, lowered.as_bytes());
        }
    }
    let mut haystack = lower(s);
    lowered.chars().all(|c| haystack.next() == Some(c))
}

pub(super) fn ends_with_ignoring_case(s: &str, lowered: &str) -> bool {
    if let Some(tail) = s
        .len()
        .checked_sub(lowered.len())
        .and_then(|start| s.as_bytes().get(start..))
    {
        if tail.is_ascii() && lowered.is_ascii() {
            return ascii_lower_eq(tail, lowered.as_bytes());
        }
    }
    let mut haystack = s.chars().rev().flat_map(|c| c.to_lowercase().rev());
    lowered.chars().rev().all(|c| haystack.next() == Some(c))
}

pub(super) fn contains_ignoring_case(s: &str, lowered: &str) -> bool {
    if s.is_ascii() && lowered.is_ascii() {
        return lowered.is_empty()
            || s.as_bytes()
                .windows(lowered.len())
                .any(|w| ascii_lower_eq(w, lowered.as_bytes()));
    }
    lowered.is_empty()
        || s.char_indices()
            .any(|(i, _)| starts_with_ignoring_case(&s[i..], lowered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_comparisons_agree_with_the_standard_ones() {
        let words = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abcde",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "xbcd",
            "abcx",
            "abcdefgx",
            "xbcdefghijklmnop",
            "abcdefghijklmnox",
            "bc",
            "eu-",
            "eu-north-1",
            "north",
        ];
        for a in words {
            for b in words {
                assert_eq!(eq(a.as_bytes(), b.as_bytes()), a == b, "{a:?} == {b:?}");
                assert_eq!(
                    TextOp::Contains.holds(a, b),
                    a.contains(b),
                    "{a:?} contains {b:?}"
                );
                assert_eq!(
                    TextOp::StartsWith.holds(a, b),
                    a.starts_with(b),
                    "{a:?} starts {b:?}"
                );
                assert_eq!(
                    TextOp::EndsWith.holds(a, b),
                    a.ends_with(b),
                    "{a:?} ends {b:?}"
                );
                assert_eq!(TextOp::Equals.holds(a, b), a == b, "{a:?} equals {b:?}");
            }
        }
        // Every byte's letter bit, as the word-wise folding reads it.
        for byte in 0..=0x7f_u8 {
            let word = u64::from_ne_bytes([byte; 8]);
            let expected = if byte.is_ascii_lowercase() { 0x20 } else { 0 };
            assert_eq!(
                letters(word),
                u64::from_ne_bytes([expected; 8]),
                "{byte:#x}"
            );
        }
        // A long haystack goes through `memmem`.
        let long = format!("{}needle{}", "x".repeat(100), "y".repeat(100));
        assert!(TextOp::Contains.holds(&long, "needle"));
        assert!(!TextOp::Contains.holds(&long, "needles"));
    }

    #[test]
    fn case_folding_without_allocation() {
        assert!(eq_ignoring_case("HeLLo", "hello"));
        assert!(!eq_ignoring_case("HeLLo!", "hello"));
        assert!(starts_with_ignoring_case("ÄBC", "äb"));
        assert!(ends_with_ignoring_case("xxÄBC", "äbc"));
        assert!(!ends_with_ignoring_case("bc", "abc"));
        assert!(contains_ignoring_case("a-SOME-string", "some"));
        assert!(!contains_ignoring_case("a-SOM-string", "some"));
        assert!(contains_ignoring_case("ÜBER-SOME", "some"));
        assert!(eq_ignoring_case("ÜBER", "über"));
        assert!(!starts_with_ignoring_case("a", "ab"));
    }

    /// The folding shortcuts agree with lowercasing the whole string, including where
    /// only part of it is ASCII and where lowercasing changes a character's length
    /// (`İ` → `i̇`, the Kelvin sign → `k`).
    #[test]
    fn case_folding_agrees_with_lowercasing() {
        let texts = [
            "",
            "a",
            "AB",
            "Someone@Example.com",
            "xxÄBC",
            "ÄBC",
            "İx",
            "xİ",
            "\u{212a}ey",
            "KEY",
            "ke\u{212a}",
            "straße",
            "STRASSE",
            "@EXAMPLE.COM",
            "é@example.com",
            "@[`{",
            "Ada.Lovelace@Example.COM",
            "EU-NORTH-1",
            "eu-north-1",
            "EU-SOUTH-1",
        ];
        for s in texts {
            for pattern in texts {
                let lowered = pattern.to_lowercase();
                let whole = s.to_lowercase();
                assert_eq!(
                    starts_with_ignoring_case(s, &lowered),
                    whole.starts_with(&lowered),
                    "{s:?} starts with {lowered:?}"
                );
                assert_eq!(
                    ends_with_ignoring_case(s, &lowered),
                    whole.ends_with(&lowered),
                    "{s:?} ends with {lowered:?}"
                );
                assert_eq!(
                    eq_ignoring_case(s, &lowered),
                    whole == lowered,
                    "{s:?} = {lowered:?}"
                );
                // Word by word (eight bytes and more) and byte by byte.
                if s.is_ascii() && lowered.is_ascii() {
                    assert_eq!(
                        ascii_lower_eq(s.as_bytes(), lowered.as_bytes()),
                        whole == lowered,
                        "{s:?} folds to {lowered:?}"
                    );
                }
            }
        }
    }
}
