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
    /// Parses `input`, or `None` when it is not a semantic version.
    pub fn parse(input: &'a str) -> Option<Self> {
        let (input, build) = match input.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (input, None),
        };
        if let Some(build) = build {
            if !build.split('.').all(is_identifier) {
                return None;
            }
        }
        let (core, pre) = match input.split_once('-') {
            Some((core, pre)) => (core, pre),
            None => (input, ""),
        };
        if !pre.is_empty() || input.len() != core.len() {
            let valid = pre
                .split('.')
                .all(|id| is_identifier(id) && !(is_numeric(id) && has_leading_zero(id)));
            if !valid {
                return None;
            }
        }
        let mut parts = core.split('.');
        let major = numeric(parts.next()?)?;
        let minor = numeric(parts.next()?)?;
        let patch = numeric(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
            pre,
        })
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

fn is_identifier(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_numeric(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

fn has_leading_zero(id: &str) -> bool {
    id.len() > 1 && id.starts_with('0')
}

fn numeric(part: &str) -> Option<u64> {
    if !is_numeric(part) || has_leading_zero(part) {
        return None;
    }
    part.parse().ok()
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
            "", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "a.b.c",
            "1.2.3-rc..1", "1.2.3-rc#1", "v1.2.3", " 1.2.3",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }
}
