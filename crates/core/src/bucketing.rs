//! Bucketing: how a context value lands in a rollout. Specified, with test vectors,
//! in `docs/bucketing.md` so SDKs in other languages can match it byte for byte.
//!
//! Switchyard's scheme: `h = murmur3_x86_32(utf8(salt + "/" + value), seed 0)`,
//! `bucket = (h * 100_000) >> 32` in `0..100_000`. Because the bucket only depends on
//! salt and value, and a split serves the first variant whose cumulative weight
//! exceeds the bucket, raising the first variant's weight never moves anyone off it.
//!
//! Unleash's scheme is kept for imported flags: murmur3 of `group + ":" + value`, seed
//! 0 modulo 100 plus one for percentages, seed 86 028 157 modulo the total weight plus
//! one for variants. flagd's (its `fractional`) hashes the canonical CBOR array
//! `[flag key, value]` instead of `salt/value`, scaled the same way: flags that use it
//! evaluate identically in flagd's in-process providers (docs/openfeature.md).

use std::hash::Hasher;

/// The size of Switchyard's bucket space: weights are in units of 1/100 000.
pub const BUCKETS: u32 = 100_000;

/// The seed Unleash uses when hashing for variants.
pub const UNLEASH_VARIANT_SEED: u32 = 86_028_157;

/// murmur3 x86_32 of `prefix + separator + value`, without building the string.
pub fn murmur3_joined(prefix: &str, separator: u8, value: &str, seed: u32) -> u32 {
    // Short inputs (the usual case) are joined on the stack and hashed in one pass.
    let len = prefix.len() + 1 + value.len();
    let mut joined = [0_u8; 256];
    if let Some(buf) = joined.get_mut(..len) {
        let (head, tail) = buf.split_at_mut(prefix.len());
        head.copy_from_slice(prefix.as_bytes());
        tail[0] = separator;
        tail[1..].copy_from_slice(value.as_bytes());
        return mur3::murmurhash3_x86_32(buf, seed);
    }
    let mut hasher = mur3::Hasher32::with_seed(seed);
    hasher.write(prefix.as_bytes());
    hasher.write(&[separator]);
    hasher.write(value.as_bytes());
    hasher.finish32()
}

/// Switchyard's bucket of `value` under `salt`, in `0..100_000`.
pub fn bucket(salt: &str, value: &str) -> u32 {
    let h = murmur3_joined(salt, b'/', value, 0);
    // (h * 100 000) >> 32 < 100 000, so the cast back cannot truncate.
    ((u64::from(h) * u64::from(BUCKETS)) >> 32) as u32
}

/// The canonical CBOR head of a text string of `len` bytes (RFC 8949: major type 3,
/// the shortest length encoding), in `buf`; returns the bytes used.
fn cbor_text_head(len: usize, buf: &mut [u8; 9]) -> usize {
    const TEXT: u8 = 0x60;
    // Each arm's range check makes its cast lossless.
    #[allow(clippy::cast_possible_truncation)]
    match len {
        0..=23 => {
            buf[0] = TEXT | len as u8;
            1
        }
        24..=0xff => {
            buf[..2].copy_from_slice(&[TEXT | 24, len as u8]);
            2
        }
        0x100..=0xffff => {
            buf[0] = TEXT | 25;
            buf[1..3].copy_from_slice(&(len as u16).to_be_bytes());
            3
        }
        0x1_0000..=0xffff_ffff => {
            buf[0] = TEXT | 26;
            buf[1..5].copy_from_slice(&(len as u32).to_be_bytes());
            5
        }
        _ => {
            buf[0] = TEXT | 27;
            buf[1..9].copy_from_slice(&(len as u64).to_be_bytes());
            9
        }
    }
}

/// flagd's bucket of `value` for `key` (its `fractional` operator, which
/// `Hashing::Flagd` reproduces), in `0..100_000`: murmur3 x86_32, seed 0, of the
/// canonical CBOR encoding of the array `[key, value]`, scaled as [`bucket`] is.
/// Hashed as a stream: nothing is allocated.
pub fn flagd_bucket(key: &str, value: &str) -> u32 {
    let mut hasher = mur3::Hasher32::with_seed(0);
    // A two-element array.
    hasher.write(&[0x82]);
    let mut head = [0_u8; 9];
    for text in [key, value] {
        let used = cbor_text_head(text.len(), &mut head);
        hasher.write(&head[..used]);
        hasher.write(text.as_bytes());
    }
    ((u64::from(hasher.finish32()) * u64::from(BUCKETS)) >> 32) as u32
}

/// Unleash's normalised percentage of `value` in `group`, in `1..=100`.
pub fn unleash_percentage(group: &str, value: &str) -> u32 {
    murmur3_joined(group, b':', value, 0) % 100 + 1
}

/// Unleash's variant target of `value` in `group`, in `1..=total` (`total > 0`).
pub fn unleash_variant_target(group: &str, value: &str, total: u32) -> u32 {
    murmur3_joined(group, b':', value, UNLEASH_VARIANT_SEED) % total.max(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_murmur3_of_the_joined_string() {
        let long = "x".repeat(37);
        let huge = "z".repeat(300);
        for (salt, value) in [
            ("flag", "user-1"),
            ("", ""),
            ("ü", "日本"),
            ("abc", "defgh"),
            (long.as_str(), "y"),
            (huge.as_str(), "w"),
        ] {
            let joined = format!("{salt}/{value}");
            let whole = murmur3::murmur3_32(&mut joined.as_bytes(), 0).expect("hashes");
            assert_eq!(murmur3_joined(salt, b'/', value, 0), whole, "{joined}");
        }
    }

    /// Computed independently with Python: `mmh3.hash(cbor2.dumps([key, value],
    /// canonical=True), signed=False) * 100000 >> 32` (the packages flagd's Python
    /// provider evaluates `fractional` with).
    #[test]
    fn flagd_buckets_match_pythons_cbor_and_murmur3() {
        for (key, value, expected) in [
            ("checkout", "user-1".to_owned(), 72_508),
            ("ramp", "u-42".to_owned(), 19_880),
            ("", String::new(), 55_027),
            ("aaaaaaaaaaaaaaaaaaaaaaa", "b".repeat(24), 46_669),
            ("flag", "x".repeat(300), 23_913),
            ("é-flag", "ünïcode".to_owned(), 14_901),
        ] {
            assert_eq!(flagd_bucket(key, &value), expected, "{key:?} {value:?}");
        }
    }

    #[test]
    fn known_values() {
        // murmur3_x86_32("", 0) is 0 and ("hello", 0) is 0x248bfa47 in every
        // reference implementation.
        assert_eq!(murmur3::murmur3_32(&mut &b""[..], 0).expect("hashes"), 0);
        assert_eq!(murmur3_joined("hel", b'l', "o", 0), 0x248b_fa47);
        assert!(bucket("flag", "user") < BUCKETS);
        assert_eq!(bucket("", ""), bucket("", ""));
        assert!((1..=100).contains(&unleash_percentage("g", "u")));
        assert!((1..=7).contains(&unleash_variant_target("g", "u", 7)));
    }
}
