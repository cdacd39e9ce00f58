//! Semantic Versioning 2.0.0 precedence over borrowed strings.
//!
//! Written here rather than taken from the `semver` crate because evaluation must not
//! allocate, and `semver::Version::parse` allocates for longer pre-release tags. The
//! grammar is the strict one of semver.org: no leading `v`, no surrounding spaces
//! (the Unleash client specification expects `v2.0.0` to be rejected too).

use std::cmp::Ordering;

/// A parsed version borrowing its pre-release tag from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    major: u64,
    minor: u64,
    patch: u64,
    /// Dot-separated pre-release identifiers; empty for a release.
    pre: &'a str,
}

impl<'a> Version<'a> {
    /// Parses `input`, or `None` when it is not a semantic version. One pass over
    /// the bytes: this runs on every semver comparison of a context attribute.
    pub fn parse(input: &'a str) -> Option<Self> {
        let bytes = input.as_bytes();
        let mut at = 0;
        let major = numeric(bytes, &mut at)?;
        expect(bytes, &mut at, b'.')?;
        let minor = numeric(bytes, &mut at)?;
        expect(bytes, &mut at, b'.')?;
        let patch = numeric(bytes, &mut at)?;
        let mut pre = "";
        if bytes.get(at) == Some(&b'-') {
            let start = at + 1;
            at = identifiers(bytes, start, true)?;
            pre = input.get(start..at)?;
        }
        if bytes.get(at) == Some(&b'+') {
            at = identifiers(bytes, at + 1, false)?;
        }
        (at == bytes.len()).then_some(Version {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl<'a> Version<'a> {
    /// `(major, minor, patch)`.
    pub fn numbers(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }

    /// The pre-release tag, empty for a release.
    pub fn pre(&self) -> &'a str {
        self.pre
    }

    /// Reassembles a version from [`Version::numbers`] and [`Version::pre`].
    pub fn from_parts((major, minor, patch): (u64, u64, u64), pre: &'a str) -> Self {
        Version {
            major,
            minor,
            patch,
            pre,
        }
    }
}

fn expect(bytes: &[u8], at: &mut usize, byte: u8) -> Option<()> {
    (bytes.get(*at) == Some(&byte)).then(|| *at += 1)
}

/// A numeric version part without leading zeros.
fn numeric(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let start = *at;
    let mut value: u64 = 0;
    while let Some(&b) = bytes.get(*at).filter(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        *at += 1;
    }
    let len = *at - start;
    (len == 1 || (len > 1 && bytes[start] != b'0')).then_some(value)
}

/// Dot-separated identifiers from `at` up to `+` or the end; returns where they stop.
/// Pre-release numeric identifiers may not have leading zeros; build ones may.
fn identifiers(bytes: &[u8], mut at: usize, pre_release: bool) -> Option<usize> {
    loop {
        let start = at;
        let mut all_digits = true;
        while let Some(&b) = bytes.get(at) {
            if !(b.is_ascii_alphanumeric() || b == b'-') {
                break;
            }
            all_digits &= b.is_ascii_digit();
            at += 1;
        }
        let len = at - start;
        if len == 0 || (pre_release && all_digits && len > 1 && bytes[start] == b'0') {
            return None;
        }
        match bytes.get(at) {
            Some(b'.') => at += 1,
            Some(b'+') if pre_release => return Some(at),
            None => return Some(at),
            Some(_) => return None,
        }
    }
}

/// An owned [`Version`], kept in compiled flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionBuf {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Box<str>,
}

impl From<Version<'_>> for VersionBuf {
    fn from(v: Version<'_>) -> Self {
        VersionBuf {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            pre: v.pre.into(),
        }
    }
}

impl VersionBuf {
    /// Borrows it as a [`Version`] for comparison.
    pub fn as_version(&self) -> Version<'_> {
        Version {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            pre: &self.pre,
        }
    }
}

fn is_numeric(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(self.pre, other.pre))
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (is_numeric(x), is_numeric(y)) {
                    (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_semver_org() {
        // The example chain from semver.org §11.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
        ];
        for pair in chain.windows(2) {
            let a = Version::parse(pair[0]).expect("valid");
            let b = Version::parse(pair[1]).expect("valid");
            assert!(a < b, "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(
            Version::parse("1.2.3+build.5"),
            Version::parse("1.2.3"),
            "build metadata does not count"
        );
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3+",
            "a.b.c",
            "1.2.3-rc..1",
            "1.2.3-rc#1",
            "v1.2.3",
            " 1.2.3",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }
}
