//! Finding a key written twice in one object of a JSON or YAML document.
//!
//! serde keeps the last of two equal keys in a map or a `serde_json::Value` without
//! a word, so `{"variants": {"on": true, "on": false}}` would silently mean
//! `{"on": false}`. Flag, segment and plan documents are read strictly instead: a
//! pass over the document, before it is deserialised, names the first duplicate
//! key and where it is. The pass builds nothing: keys are compared borrowed from the
//! input where the format allows, and each object keeps only its own key set.

use std::borrow::Cow;
use std::fmt;

use rustc_hash::FxHashSet;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// A key written twice in one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct DuplicateKey {
    /// Where the object is (`variants`, `rules[0].when`); empty for the top level.
    pub path: String,
    /// The key written twice.
    pub key: String,
}

impl fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "duplicate key `{}`", self.key.escape_debug())?;
        if !self.path.is_empty() {
            write!(f, " at `{}`", self.path.escape_debug())?;
        }
        Ok(())
    }
}

/// The first key written twice in one object of the document `deserializer`
/// reads, if any. A syntax error before it ends the search with `None`: reporting
/// it is left to the parser that reads the document for real.
pub fn find<'de, D: Deserializer<'de>>(deserializer: D) -> Option<DuplicateKey> {
    let mut found = None;
    let _ = Walk {
        at: &Path::Top,
        found: &mut found,
    }
    .deserialize(deserializer);
    found
}

/// Like [`find`], but a document the pass cannot read to its end (a number out of
/// range such as `1e400`, nesting past the parser's limit, a syntax error) is the
/// reader's error: such a value may sit in a field the typed parse then skips
/// without looking, and a duplicate key after it would go unnoticed.
pub fn check<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DuplicateKey>, D::Error> {
    let mut found = None;
    let walked = Walk {
        at: &Path::Top,
        found: &mut found,
    }
    .deserialize(deserializer);
    match (found, walked) {
        (Some(duplicate), _) => Ok(Some(duplicate)),
        (None, Ok(())) => Ok(None),
        (None, Err(error)) => Err(error),
    }
}

/// Where a value is, written out only when a duplicate is found.
enum Path<'a> {
    Top,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Top => Ok(()),
            Path::Key(Path::Top, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Visits one value and everything inside it.
struct Walk<'p, 'f> {
    at: &'p Path<'p>,
    found: &'f mut Option<DuplicateKey>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let at = Path::Index(self.at, index);
            let walk = Walk {
                at: &at,
                found: &mut *self.found,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Room for a typical object's keys from the start (growing to 11 keys, a
        // context's, allocated three times).
        let mut seen: FxHashSet<Cow<'de, str>> =
            FxHashSet::with_capacity_and_hasher(16, Default::default());
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some(key) = key else {
                // A key that is not a scalar (YAML allows them): only its contents.
                map.next_value_seed(Walk {
                    at: self.at,
                    found: &mut *self.found,
                })?;
                continue;
            };
            if seen.contains(&key) {
                *self.found = Some(DuplicateKey {
                    path: self.at.to_string(),
                    key: key.into_owned(),
                });
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Walk {
                at: &Path::Key(self.at, &key),
                found: &mut *self.found,
            })?;
            seen.insert(key);
        }
        Ok(())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (YAML's `!tag value`): the value is what counts.
        let (IgnoredAny, variant) = data.variant()?;
        variant.newtype_variant_seed(self)
    }
}

/// Reads an object key as text, borrowed from the input when possible; `None` for
/// a key that is not a scalar.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(key)))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E>(self, key: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(key)))
    }

    fn visit_bool<E>(self, key: bool) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(key.to_string())))
    }

    fn visit_i64<E>(self, key: i64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(key.to_string())))
    }

    fn visit_u64<E>(self, key: u64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(key.to_string())))
    }

    fn visit_f64<E>(self, key: f64) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(key.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed("null")))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed("null")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_json(text: &str) -> Option<String> {
        find(&mut serde_json::Deserializer::from_str(text)).map(|d| d.to_string())
    }

    #[test]
    fn the_first_duplicate_is_named_with_its_path() {
        let cases = [
            (r#"{"a": 1, "b": 2}"#, None),
            (r#"{"a": {"x": 1}, "b": {"x": 1}}"#, None),
            (r#"[{"a": 1}, {"a": 1}]"#, None),
            (r#"{"a": 1, "a": 2}"#, Some("duplicate key `a`")),
            (
                r#"{"key": "f", "variants": {"on": true, "off": false, "on": 1}}"#,
                Some("duplicate key `on` at `variants`"),
            ),
            (
                r#"{"rules": [{"id": "r"}, {"id": "s", "when": {"users": [], "users": []}}]}"#,
                Some("duplicate key `users` at `rules[1].when`"),
            ),
            // Escapes are compared by what they mean.
            (r#"{"on": 1, "\u006fn": 2}"#, Some("duplicate key `on`")),
            (
                r#"{"x": [[{"k\n": 1, "k\n": 2}]]}"#,
                Some("duplicate key `k\\n` at `x[0][0]`"),
            ),
            // Not this pass's to report: the parser says what is wrong.
            (r#"{"a": 1, "b""#, None),
            (r#"{"a": 1, "b": ]"#, None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(in_json(text).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn deep_documents_end_at_the_parsers_limit_without_overflowing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(in_json(&deep), None);
    }
}
