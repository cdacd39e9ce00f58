//! The evaluation context, in OpenFeature's shape: a JSON object whose
//! `targetingKey` (string) identifies the user, whose `groups` (array of strings)
//! are the user's groups, and whose every other property is an attribute.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

use std::hash::BuildHasher;

use chrono::{DateTime, FixedOffset};
use rustc_hash::FxBuildHasher;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::TARGETING_KEY;
use crate::semver::Version;

/// The property holding the user's groups.
pub const GROUPS: &str = "groups";

/// Who or what a flag is evaluated for.
///
/// String attributes are parsed lazily, once, into the typed views comparisons need
/// (number, semantic version, IP address, instant), so evaluating many flags against
/// one context parses each attribute at most once, and never allocates doing so.
///
/// Attributes are found through the snapshot's name table: a compiled snapshot
/// numbers every attribute name its flags read (a slot), and the first evaluation of
/// a context against that snapshot records where each slot's attribute is in the
/// context; later lookups index that array. Without it (a context evaluated against
/// several snapshots, see [`Resolved`]), a lookup scans a compact array of fixed name
/// hashes (contexts hold a handful of attributes, where a scan beats a hash table).
#[derive(Debug, Clone, Default)]
pub struct Context {
    targeting_key: Option<String>,
    targeting_key_parsed: Parsed,
    groups: Vec<String>,
    /// `hashes[i]` is `name_hash(&attributes[i].0)`.
    hashes: Vec<u64>,
    attributes: Vec<Entry>,
    /// Where each slot of one snapshot's name table is among `attributes`: computed
    /// on the first evaluation against a snapshot, dropped when the context changes.
    slots: OnceLock<Slots>,
}

/// A context's attribute positions for one name table.
#[derive(Debug, Clone)]
struct Slots {
    table: u64,
    /// `positions[slot]` indexes `attributes`, or is [`ABSENT`].
    positions: Box<[u16]>,
}

/// A slot whose attribute the context does not have.
const ABSENT: u16 = u16::MAX;

/// The attribute names a compiled snapshot's flags and segments read, numbered.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameTable {
    /// Unique per table, so a context's cached positions are never used with
    /// another table's slots.
    id: u64,
    slots: rustc_hash::FxHashMap<Box<str>, u32>,
}

impl NameTable {
    /// An empty table with a fresh id.
    pub(crate) fn new() -> Self {
        NameTable {
            id: Self::fresh_id(),
            slots: rustc_hash::FxHashMap::default(),
        }
    }

    fn fresh_id() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A copy to extend, with a fresh id: every name keeps its slot, so what was
    /// compiled against this table reads the copy correctly, while contexts resolved
    /// against this table resolve again (the copy may have more slots).
    pub(crate) fn forked(&self) -> Self {
        NameTable {
            id: Self::fresh_id(),
            slots: self.slots.clone(),
        }
    }

    /// Number of names numbered.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Gives a named attribute its slot (the same for the same name).
    pub(crate) fn assign(&mut self, name: &mut AttrName) {
        if let AttrName::Named { name, slot, .. } = name {
            let next = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
            *slot = *self.slots.entry(name.clone()).or_insert(next);
        }
    }
}

/// A context seen through one snapshot's name table: what evaluation reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved<'c> {
    ctx: &'c Context,
    /// Empty when the context's positions are for another table (or it has more
    /// attributes than positions can say): lookups scan instead.
    positions: &'c [u16],
}

type Entry = (String, AttributeValue, Parsed);

/// The hash under which an attribute name is stored in a [`Context`]. A name of at
/// most 7 bytes is its own hash (its bytes, and its length in the top byte), so equal
/// hashes mean equal names and a lookup need not compare them; a longer name's hash
/// has `0xff` in the top byte, so it never equals a short one's.
fn name_hash(name: &str) -> u64 {
    let bytes = name.as_bytes();
    if bytes.len() <= 7 {
        let mut word = [0_u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        word[7] = bytes.len() as u8;
        u64::from_le_bytes(word)
    } else {
        FxBuildHasher.hash_one(name) | (0xff << 56)
    }
}

/// Whether `hash` is a short name's own bytes (see [`name_hash`]).
#[inline]
fn is_exact(hash: u64) -> bool {
    hash >> 56 <= 7
}

/// A property name resolved once, when a flag is compiled: the two special
/// properties by kind, any other by name and precomputed hash.
#[derive(Debug, Clone)]
pub(crate) enum AttrName {
    TargetingKey,
    Groups,
    Named {
        name: Box<str>,
        hash: u64,
        /// Its number in the snapshot's [`NameTable`] (assigned after compiling).
        slot: u32,
    },
}

impl AttrName {
    pub(crate) fn new(name: &str) -> Self {
        match name {
            TARGETING_KEY => AttrName::TargetingKey,
            GROUPS => AttrName::Groups,
            _ => AttrName::Named {
                name: name.into(),
                hash: name_hash(name),
                slot: u32::MAX,
            },
        }
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.targeting_key == other.targeting_key
            && self.groups == other.groups
            && self.attributes.len() == other.attributes.len()
            && self.attributes().all(|(name, value)| {
                other
                    .position(name, name_hash(name))
                    .is_some_and(|i| other.attributes[i].1 == *value)
            })
    }
}

/// Typed views of a string attribute, each computed on first use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    number: OnceLock<Option<f64>>,
    version: OnceLock<Option<VersionParts>>,
    ip: OnceLock<Option<IpAddr>>,
    instant: OnceLock<Option<DateTime<FixedOffset>>>,
}

/// A parsed version whose pre-release tag is a byte range of the attribute.
#[derive(Debug, Clone, Copy)]
struct VersionParts {
    numbers: (u64, u64, u64),
    pre: (usize, usize),
}

/// Caches never make two contexts different.
impl PartialEq for Parsed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A string attribute and its typed views.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'a> {
    pub(crate) raw: &'a str,
    parsed: Option<&'a Parsed>,
}

impl<'a> Text<'a> {
    /// A string with no cache (e.g. an item of a list attribute).
    pub(crate) fn plain(raw: &'a str) -> Self {
        Text { raw, parsed: None }
    }

    fn cached<T: Copy + 'a>(
        &self,
        cell: impl FnOnce(&'a Parsed) -> &'a OnceLock<Option<T>>,
        parse: impl FnOnce(&'a str) -> Option<T>,
    ) -> Option<T> {
        match self.parsed {
            Some(parsed) => *cell(parsed).get_or_init(|| parse(self.raw)),
            None => parse(self.raw),
        }
    }

    /// The string as a finite number.
    #[inline]
    pub(crate) fn number(&self) -> Option<f64> {
        self.cached(
            |p| &p.number,
            |raw| raw.parse::<f64>().ok().filter(|n| n.is_finite()),
        )
    }

    /// The string as a semantic version.
    #[inline]
    pub(crate) fn version(&self) -> Option<Version<'a>> {
        let raw = self.raw;
        let parts = self.cached(
            |p| &p.version,
            |raw| {
                Version::parse(raw).map(|v| {
                    // The tag, when present, ends the string or stops at `+build`.
                    let pre = v.pre();
                    let start = if pre.is_empty() {
                        0
                    } else {
                        raw.find('-').map_or(0, |dash| dash + 1)
                    };
                    VersionParts {
                        numbers: v.numbers(),
                        pre: (start, start + pre.len()),
                    }
                })
            },
        )?;
        Some(Version::from_parts(
            parts.numbers,
            raw.get(parts.pre.0..parts.pre.1)?,
        ))
    }

    /// The string as an IP address.
    #[inline]
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.cached(|p| &p.ip, |raw| raw.parse().ok())
    }

    /// The string as an RFC 3339 instant.
    #[inline]
    pub(crate) fn instant(&self) -> Option<DateTime<FixedOffset>> {
        self.cached(|p| &p.instant, |raw| DateTime::parse_from_rfc3339(raw).ok())
    }
}

/// A context property as the targeting code sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attr<'a> {
    Text(Text<'a>),
    Number(f64),
    Bool(bool),
    List(&'a [String]),
}

/// The value of a context attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// A string.
    String(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(Vec<String>),
}

/// A borrowed view of a context property, as evaluation sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Property<'a> {
    /// A string.
    String(&'a str),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(&'a [String]),
}

impl Context {
    /// A context for the user with this targeting key.
    pub fn new(targeting_key: impl Into<String>) -> Self {
        Self {
            targeting_key: Some(targeting_key.into()),
            ..Self::default()
        }
    }

    /// A context with no targeting key (an anonymous caller).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// An anonymous context with room for `attributes` attributes.
    pub fn with_capacity(attributes: usize) -> Self {
        Self {
            hashes: Vec::with_capacity(attributes),
            attributes: Vec::with_capacity(attributes),
            ..Self::default()
        }
    }

    /// Adds a group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Sets an attribute. `targetingKey` and `groups` set those properties instead.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<AttributeValue>) -> Self {
        self.set(name.into(), value.into());
        self
    }

    /// Sets an attribute in place (see [`Context::attr`]).
    pub fn set(&mut self, name: String, value: AttributeValue) {
        match (name.as_str(), value) {
            (TARGETING_KEY, AttributeValue::String(key)) => self.targeting_key = Some(key),
            (GROUPS, AttributeValue::List(groups)) => self.groups = groups,
            (_, value) => self.insert(name, value),
        }
    }

    fn insert(&mut self, name: String, value: AttributeValue) {
        self.slots = OnceLock::new();
        let hash = name_hash(&name);
        match self.position(&name, hash) {
            Some(i) => self.attributes[i] = (name, value, Parsed::default()),
            None => {
                self.hashes.push(hash);
                self.attributes.push((name, value, Parsed::default()));
            }
        }
    }

    /// Where the attribute `name` (whose hash is `hash`) is stored. Out of line: a
    /// lookup resolved against the snapshot's name table does not scan.
    #[inline(never)]
    fn position(&self, name: &str, hash: u64) -> Option<usize> {
        // One pass over the compact hash array; names are compared only on a hit.
        self.hashes
            .iter()
            .zip(&self.attributes)
            .position(|(&h, entry)| h == hash && (is_exact(hash) || entry.0 == name))
    }

    /// The targeting key, if any.
    pub fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    /// The user's groups.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Looks up a property by name; `targetingKey` and `groups` included.
    pub fn get(&self, name: &str) -> Option<Property<'_>> {
        match name {
            TARGETING_KEY => self.targeting_key.as_deref().map(Property::String),
            GROUPS if !self.groups.is_empty() => Some(Property::List(&self.groups)),
            _ => self
                .position(name, name_hash(name))
                .and_then(|i| self.attributes.get(i))
                .map(|e| e.1.as_property()),
        }
    }

    /// This context as evaluation against a snapshot with `table` reads it: the
    /// positions of the table's slots, computed on the first call for that table (one
    /// allocation per context and snapshot; none after).
    #[inline]
    pub(crate) fn resolve(&self, table: &NameTable) -> Resolved<'_> {
        let slots = self.slots.get_or_init(|| self.positions(table));
        Resolved {
            ctx: self,
            positions: if slots.table == table.id {
                &slots.positions
            } else {
                &[]
            },
        }
    }

    fn positions(&self, table: &NameTable) -> Slots {
        let mut positions = vec![ABSENT; table.slots.len()].into_boxed_slice();
        let attributes = self.attributes.iter().take(usize::from(ABSENT));
        for ((name, ..), i) in attributes.zip(0..ABSENT) {
            if let Some(position) = table
                .slots
                .get(name.as_str())
                .and_then(|&slot| positions.get_mut(slot as usize))
            {
                *position = i;
            }
        }
        // Positions cannot say where an attribute beyond the first 65 534 is.
        let table = if self.attributes.len() < usize::from(ABSENT) {
            table.id
        } else {
            0
        };
        Slots { table, positions }
    }

    #[inline(always)]
    fn attribute_at(&self, i: usize) -> Option<Attr<'_>> {
        self.attributes
            .get(i)
            .map(|(_, value, parsed)| match value {
                AttributeValue::String(raw) => Attr::Text(Text {
                    raw,
                    parsed: Some(parsed),
                }),
                AttributeValue::Number(n) => Attr::Number(*n),
                AttributeValue::Bool(b) => Attr::Bool(*b),
                AttributeValue::List(l) => Attr::List(l),
            })
    }

    /// Iterates over the attributes other than `targetingKey` and `groups`.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.attributes.iter().map(|(k, v, _)| (k.as_str(), v))
    }
}

impl<'c> Resolved<'c> {
    /// The targeting key, if any.
    #[inline]
    pub(crate) fn targeting_key(&self) -> Option<&'c str> {
        self.ctx.targeting_key()
    }

    /// The user's groups.
    #[inline]
    pub(crate) fn groups(&self) -> &'c [String] {
        self.ctx.groups()
    }

    /// Looks up a property, resolved when the flag was compiled, with its cached
    /// typed views.
    #[inline(always)]
    pub(crate) fn lookup(&self, name: &AttrName) -> Option<Attr<'c>> {
        let ctx = self.ctx;
        match name {
            AttrName::TargetingKey => ctx.targeting_key.as_deref().map(|raw| {
                Attr::Text(Text {
                    raw,
                    parsed: Some(&ctx.targeting_key_parsed),
                })
            }),
            AttrName::Groups if ctx.groups.is_empty() => None,
            AttrName::Groups => Some(Attr::List(&ctx.groups)),
            AttrName::Named { name, hash, slot } => {
                let position = match self.positions.get(*slot as usize) {
                    Some(&ABSENT) => return None,
                    Some(&i) => Some(usize::from(i)),
                    None => ctx.position(name, *hash),
                };
                ctx.attribute_at(position?)
            }
        }
    }
}

impl AttributeValue {
    fn as_property(&self) -> Property<'_> {
        match self {
            AttributeValue::String(s) => Property::String(s),
            AttributeValue::Number(n) => Property::Number(*n),
            AttributeValue::Bool(b) => Property::Bool(*b),
            AttributeValue::List(l) => Property::List(l),
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        AttributeValue::String(value.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        AttributeValue::String(value)
    }
}

impl From<f64> for AttributeValue {
    fn from(value: f64) -> Self {
        AttributeValue::Number(value)
    }
}

impl From<i64> for AttributeValue {
    #[allow(clippy::cast_precision_loss)]
    fn from(value: i64) -> Self {
        AttributeValue::Number(value as f64)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        AttributeValue::Bool(value)
    }
}

impl From<Vec<String>> for AttributeValue {
    fn from(value: Vec<String>) -> Self {
        AttributeValue::List(value)
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AttributeValue::String(s) => serializer.serialize_str(s),
            AttributeValue::Number(n) => serializer.serialize_f64(*n),
            AttributeValue::Bool(b) => serializer.serialize_bool(*b),
            AttributeValue::List(l) => l.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    /// Read straight from the JSON token (an untagged enum would first copy every
    /// value into serde's buffered `Content` and then try each shape in turn); any
    /// other shape, a list item included, is the one error below.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = AttributeValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or array of strings")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<AttributeValue, E> {
                Ok(AttributeValue::String(s.to_owned()))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<AttributeValue, E> {
                Ok(AttributeValue::String(s))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Number(n))
            }

            // JSON integers become doubles, as `f64`'s own deserializer makes them.
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Number(n as f64))
            }

            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Number(n as f64))
            }

            fn visit_bool<E: de::Error>(self, b: bool) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Bool(b))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AttributeValue, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(AttributeValue::List(items))
            }
        }

        deserializer.deserialize_any(ValueVisitor).map_err(|_| {
            de::Error::custom("expected a string, number, boolean or array of strings")
        })
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.attributes.len()
            + usize::from(self.targeting_key.is_some())
            + usize::from(!self.groups.is_empty());
        let mut map = serializer.serialize_map(Some(len))?;
        if let Some(key) = &self.targeting_key {
            map.serialize_entry(TARGETING_KEY, key)?;
        }
        if !self.groups.is_empty() {
            map.serialize_entry(GROUPS, &self.groups)?;
        }
        let mut attributes: Vec<_> = self.attributes().collect();
        attributes.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in attributes {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContextVisitor;

        impl<'de> Visitor<'de> for ContextVisitor {
            type Value = Context;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a context object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Context, A::Error> {
                let mut context = Context::default();
                while let Some(name) = map.next_key::<String>()? {
                    match name.as_str() {
                        TARGETING_KEY => {
                            let key: String = map.next_value().map_err(|_| {
                                de::Error::custom("`targetingKey` must be a string")
                            })?;
                            context.targeting_key = Some(key);
                        }
                        GROUPS => {
                            context.groups = map.next_value().map_err(|_| {
                                de::Error::custom("`groups` must be an array of strings")
                            })?;
                        }
                        _ => {
                            let value: AttributeValue = map.next_value().map_err(|e| {
                                de::Error::custom(format_args!("attribute `{name}`: {e}"))
                            })?;
                            context.insert(name, value);
                        }
                    }
                }
                Ok(context)
            }
        }

        deserializer.deserialize_map(ContextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_their_own_hash_and_lookups_find_exactly_them() {
        let names = [
            "",
            "a",
            "a\0",
            "ab",
            "abcdefg",
            "abcdefgh",
            "über",
            "plan",
            "pla",
            "longer-name",
        ];
        let mut ctx = Context::anonymous();
        for (i, name) in names.iter().enumerate() {
            ctx.set((*name).to_owned(), AttributeValue::Number(i as f64));
        }
        for (i, name) in names.iter().enumerate() {
            assert_eq!(is_exact(name_hash(name)), name.len() <= 7, "{name:?}");
            assert_eq!(ctx.get(name), Some(Property::Number(i as f64)), "{name:?}");
            let Some(Attr::Number(n)) = ctx.resolve(&NameTable::new()).lookup(&AttrName::new(name))
            else {
                panic!("{name:?} not found");
            };
            assert_eq!(n, i as f64, "{name:?}");
        }
        for missing in ["b", "a\0\0", "abcdefgi", "PLAN", "longer-namf"] {
            assert_eq!(ctx.get(missing), None, "{missing:?}");
        }
    }

    #[test]
    fn slots_find_what_a_scan_finds_and_follow_changes() {
        let mut table = NameTable::new();
        let mut names: Vec<AttrName> = ["plan", "country", "longer-name", "missing", "plan"]
            .into_iter()
            .map(AttrName::new)
            .collect();
        names.iter_mut().for_each(|name| table.assign(name));
        let number = |ctx: &Context, table: &NameTable, name: &AttrName| match ctx
            .resolve(table)
            .lookup(name)
        {
            Some(Attr::Number(n)) => Some(n),
            Some(other) => panic!("{other:?}"),
            None => None,
        };
        let mut ctx = Context::new("u")
            .attr("country", 2_i64)
            .attr("longer-name", 3_i64)
            .attr("plan", 1_i64);
        let found: Vec<_> = names.iter().map(|n| number(&ctx, &table, n)).collect();
        assert_eq!(found, [Some(1.0), Some(2.0), Some(3.0), None, Some(1.0)]);
        assert!(
            !ctx.resolve(&table).positions.is_empty(),
            "positions are used"
        );

        // A change drops the positions; the next evaluation computes them again.
        ctx.set("missing".into(), AttributeValue::Number(4.0));
        ctx.set("plan".into(), AttributeValue::Number(5.0));
        let found: Vec<_> = names.iter().map(|n| number(&ctx, &table, n)).collect();
        assert_eq!(
            found,
            [Some(5.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)]
        );

        // Another table's slots never index this table's positions: lookups scan.
        let mut other = NameTable::new();
        let mut swapped: Vec<AttrName> = ["longer-name", "plan"]
            .into_iter()
            .map(AttrName::new)
            .collect();
        swapped.iter_mut().for_each(|name| other.assign(name));
        assert!(ctx.resolve(&other).positions.is_empty());
        let found: Vec<_> = swapped.iter().map(|n| number(&ctx, &other, n)).collect();
        assert_eq!(found, [Some(3.0), Some(5.0)]);
    }

    #[test]
    fn builder_and_json_agree() {
        let built = Context::new("user-42")
            .group("beta")
            .attr("country", "IT")
            .attr("age", 42_i64)
            .attr("admin", true);
        let parsed: Context = serde_json::from_str(
            r#"{"targetingKey":"user-42","groups":["beta"],"country":"IT","age":42,"admin":true}"#,
        )
        .expect("parses");
        assert_eq!(built, parsed);
        let back: Context =
            serde_json::from_value(serde_json::to_value(&built).expect("serialises"))
                .expect("parses");
        assert_eq!(back, built);
        assert_eq!(built.get("targetingKey"), Some(Property::String("user-42")));
        assert_eq!(built.get("age"), Some(Property::Number(42.0)));
        assert_eq!(built.get("missing"), None);
        // Every JSON shape an attribute may have, integers of either sign included.
        let parsed: Context = serde_json::from_str(
            r#"{"s": "text", "i": -3, "u": 18446744073709551615, "f": 2.5, "b": false,
                "l": ["x", "y"], "e": []}"#,
        )
        .expect("parses");
        assert_eq!(parsed.get("s"), Some(Property::String("text")));
        assert_eq!(parsed.get("i"), Some(Property::Number(-3.0)));
        assert_eq!(parsed.get("u"), Some(Property::Number(u64::MAX as f64)));
        assert_eq!(parsed.get("f"), Some(Property::Number(2.5)));
        assert_eq!(parsed.get("b"), Some(Property::Bool(false)));
        let list = ["x".to_owned(), "y".to_owned()];
        assert_eq!(parsed.get("l"), Some(Property::List(&list)));
        assert_eq!(parsed.get("e"), Some(Property::List(&[])));
    }

    #[test]
    fn bad_shapes_are_named() {
        let cases = [
            (r#"{"targetingKey": 5}"#, "`targetingKey` must be a string"),
            (
                r#"{"groups": "beta"}"#,
                "`groups` must be an array of strings",
            ),
            (r#"{"nested": {"a": 1}}"#, "attribute `nested`"),
            (r#"[1]"#, "a context object"),
        ];
        for value in [r#"{"a": 1}"#, "null", r#"["a", 1]"#, "[null]", "[[]]"] {
            let input = format!(r#"{{"x": {value}}}"#);
            let err = serde_json::from_str::<Context>(&input).expect_err(&input);
            assert!(
                err.to_string().starts_with(
                    "attribute `x`: expected a string, number, boolean or array of strings"
                ),
                "{input}: {err}"
            );
        }
        for (input, expected) in cases {
            let err = serde_json::from_str::<Context>(input).expect_err(input);
            assert!(err.to_string().contains(expected), "{input}: {err}");
        }
    }
}
