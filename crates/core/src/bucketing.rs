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

use crate::model::Hashing;

/// The size of Switchyard's bucket space: weights are in units of 1/100 000.
pub const BUCKETS: u32 = 100_000;

/// The seed Unleash uses when hashing for variants.
pub const UNLEASH_VARIANT_SEED: u32 = 86_028_157;

/// murmur3 x86_32 fed in pieces (the `mur3` crate's streaming hasher cannot be
/// copied, which [`Salted`] needs): 4-byte blocks are mixed as they complete, up to
/// three bytes wait for the next piece or for [`Murmur3::finish`].
#[derive(Debug, Clone, Copy)]
struct Murmur3 {
    h: u32,
    /// Bytes of an incomplete block, little-endian.
    tail: u32,
    tail_len: u32,
    /// Bytes fed so far (murmur3 mixes the length in modulo 2^32).
    len: u32,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

impl Murmur3 {
    fn new(seed: u32) -> Self {
        Murmur3 {
            h: seed,
            tail: 0,
            tail_len: 0,
            len: 0,
        }
    }

    #[inline]
    fn scramble(k: u32) -> u32 {
        k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
    }

    #[inline]
    fn block(&mut self, k: u32) {
        self.h = (self.h ^ Self::scramble(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        // Truncation is murmur3's own: the length enters the hash modulo 2^32.
        #[allow(clippy::cast_possible_truncation)]
        let added = bytes.len() as u32;
        self.len = self.len.wrapping_add(added);
        while self.tail_len > 0 {
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            self.tail |= u32::from(byte) << (8 * self.tail_len);
            bytes = rest;
            if self.tail_len == 3 {
                self.block(self.tail);
                (self.tail, self.tail_len) = (0, 0);
            } else {
                self.tail_len += 1;
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in &mut blocks {
            self.block(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        for &byte in blocks.remainder() {
            self.tail |= u32::from(byte) << (8 * self.tail_len);
            self.tail_len += 1;
        }
    }

    #[inline]
    fn finish(mut self) -> u32 {
        if self.tail_len > 0 {
            self.h ^= Self::scramble(self.tail);
        }
        let mut h = self.h ^ self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

/// murmur3 of a salt followed by a value, with the salt fed once — when a flag is
/// compiled — so that an evaluation hashes only the context's value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Salted {
    state: Murmur3,
    /// flagd's scheme: the value is preceded by its CBOR text head.
    cbor: bool,
}

impl Salted {
    /// What a percentage (`split: false`) or a rollout's split (`split: true`) under
    /// `hashing` hashes a value with.
    pub(crate) fn new(hashing: Hashing, salt: &str, split: bool) -> Self {
        match hashing {
            Hashing::Switchyard => Self::joined(salt, b'/', 0),
            Hashing::Flagd => Self::flagd(salt),
            Hashing::Unleash if split => Self::joined(salt, b':', UNLEASH_VARIANT_SEED),
            Hashing::Unleash => Self::joined(salt, b':', 0),
        }
    }

    /// For hashing `prefix + separator + value` with `seed`.
    pub(crate) fn joined(prefix: &str, separator: u8, seed: u32) -> Self {
        let mut state = Murmur3::new(seed);
        state.write(prefix.as_bytes());
        state.write(&[separator]);
        Salted { state, cbor: false }
    }

    /// For hashing the canonical CBOR array `[key, value]` (flagd's `fractional`).
    pub(crate) fn flagd(key: &str) -> Self {
        let mut state = Murmur3::new(0);
        // A two-element array.
        state.write(&[0x82]);
        let mut head = [0_u8; 9];
        let used = cbor_text_head(key.len(), &mut head);
        state.write(&head[..used]);
        state.write(key.as_bytes());
        Salted { state, cbor: true }
    }

    /// The hash of the salt and `value`.
    #[inline]
    pub(crate) fn hash(&self, value: &str) -> u32 {
        let mut state = self.state;
        if self.cbor {
            let mut head = [0_u8; 9];
            let used = cbor_text_head(value.len(), &mut head);
            state.write(&head[..used]);
        }
        state.write(value.as_bytes());
        state.finish()
    }
}

/// A hash scaled to a bucket in `0..100_000`.
#[inline]
pub(crate) fn scaled(h: u32) -> u32 {
    // (h * 100 000) >> 32 < 100 000, so the cast back cannot truncate.
    ((u64::from(h) * u64::from(BUCKETS)) >> 32) as u32
}

/// murmur3 x86_32 of `prefix + separator + value`, without building the string.
pub fn murmur3_joined(prefix: &str, separator: u8, value: &str, seed: u32) -> u32 {
    Salted::joined(prefix, separator, seed).hash(value)
}

/// Switchyard's bucket of `value` under `salt`, in `0..100_000`.
pub fn bucket(salt: &str, value: &str) -> u32 {
    scaled(murmur3_joined(salt, b'/', value, 0))
}

/// The canonical CBOR head of a text string of `len` bytes (RFC 8949: major type 3,
/// the shortest length encoding), in `buf`; returns the bytes used.
#[inline]
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
    scaled(Salted::flagd(key).hash(value))
}

/// Unleash's normalised percentage of `value` in `group`, in `1..=100`.
pub fn unleash_percentage(group: &str, value: &str) -> u32 {
    percentage_of(murmur3_joined(group, b':', value, 0))
}

/// Unleash's variant target of `value` in `group`, in `1..=total` (`total > 0`).
pub fn unleash_variant_target(group: &str, value: &str, total: u32) -> u32 {
    variant_target_of(
        murmur3_joined(group, b':', value, UNLEASH_VARIANT_SEED),
        total,
    )
}

/// Unleash's percentage for a hash, in `1..=100`.
#[inline]
pub(crate) fn percentage_of(h: u32) -> u32 {
    h % 100 + 1
}

/// Unleash's variant target for a hash, in `1..=total`.
#[inline]
pub(crate) fn variant_target_of(h: u32, total: u32) -> u32 {
    h % total.max(1) + 1
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
    fn murmur3_fed_in_any_pieces_is_murmur3_of_the_whole() {
        let data: Vec<u8> = (0..23_u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for len in 0..data.len() {
            let whole = murmur3::murmur3_32(&mut &data[..len], 7).expect("hashes");
            for a in 0..=len {
                for b in a..=len {
                    let mut state = Murmur3::new(7);
                    state.write(&data[..a]);
                    state.write(&data[a..b]);
                    state.write(&data[b..len]);
                    assert_eq!(state.finish(), whole, "len {len}, pieces at {a} and {b}");
                }
            }
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
