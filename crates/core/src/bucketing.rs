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
//! one for variants.

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
