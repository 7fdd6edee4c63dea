//! Tag policies: which pushed tags move a container, from its
//! `dockhook.policy` label. Pure.
//!
//! - `exact` (the default): only a push of the tag the container runs;
//! - `semver:patch`, `semver:minor`, `semver:major`: a push of a newer
//!   version within that range moves the container to the pushed tag. Both
//!   tags must be versions of the same shape: the same prefix (`v` or none),
//!   the same number of components, and the same suffix (`-alpine` stays
//!   `-alpine`; a stable tag never moves to `-rc1`);
//! - `glob:PATTERN`: a push of any tag matching the pattern (`*` and `?`)
//!   moves the container to it.

use std::cmp::Ordering;
use std::fmt;

/// Label holding a container's tag policy.
pub const POLICY_LABEL: &str = "dockhook.policy";

/// How far a semantic-version policy may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Patch,
    Minor,
    Major,
}

/// A container's tag policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPolicy {
    Exact,
    Semver(Range),
    Glob(String),
}

impl TagPolicy {
    /// Parses a label value; `None` (no label) is `exact`.
    pub fn parse(label: Option<&str>) -> Result<Self, String> {
        let Some(text) = label.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::Exact);
        };
        match text {
            "exact" => Ok(Self::Exact),
            "semver:patch" => Ok(Self::Semver(Range::Patch)),
            "semver:minor" => Ok(Self::Semver(Range::Minor)),
            "semver:major" => Ok(Self::Semver(Range::Major)),
            _ => match text.strip_prefix("glob:") {
                Some(pattern) if !pattern.is_empty() && pattern.len() <= 128 => {
                    Ok(Self::Glob(pattern.to_string()))
                }
                _ => Err(format!(
                    "{POLICY_LABEL}={text:?} is not a policy: use exact, semver:patch, \
                     semver:minor, semver:major or glob:PATTERN"
                )),
            },
        }
    }

    /// Whether a push of `pushed` moves a container that runs `current`;
    /// `Err` says why not, for the record.
    pub fn decide(&self, current: &str, pushed: &str) -> Result<String, String> {
        match self {
            Self::Exact if current == pushed => Ok(format!("{pushed} is the tag it runs")),
            Self::Exact => Err(format!("it runs tag {current} (policy exact)")),
            Self::Glob(pattern) if glob_matches(pattern, pushed) => {
                Ok(format!("{pushed} matches {pattern} (policy glob)"))
            }
            Self::Glob(pattern) => Err(format!("{pushed} does not match {pattern} (policy glob)")),
            Self::Semver(range) => semver_decision(*range, current, pushed),
        }
    }
}

impl fmt::Display for TagPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact => f.write_str("exact"),
            Self::Semver(Range::Patch) => f.write_str("semver:patch"),
            Self::Semver(Range::Minor) => f.write_str("semver:minor"),
            Self::Semver(Range::Major) => f.write_str("semver:major"),
            Self::Glob(pattern) => write!(f, "glob:{pattern}"),
        }
    }
}

/// `v1.2.3-alpine` as prefix `v`, numbers `[1, 2, 3]`, suffix `-alpine`.
#[derive(Debug, PartialEq, Eq)]
struct Version<'a> {
    prefix: &'a str,
    numbers: Vec<u64>,
    suffix: &'a str,
}

fn version(tag: &str) -> Option<Version<'_>> {
    let (prefix, rest) = match tag.strip_prefix('v') {
        Some(rest) => ("v", rest),
        None => ("", tag),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (core, suffix) = rest.split_at(end);
    if core.ends_with('.') {
        return None;
    }
    let numbers: Option<Vec<u64>> = core.split('.').map(|n| n.parse().ok()).collect();
    let numbers = numbers.filter(|n| (1..=3).contains(&n.len()))?;
    Some(Version {
        prefix,
        numbers,
        suffix,
    })
}

fn semver_decision(range: Range, current: &str, pushed: &str) -> Result<String, String> {
    let policy = TagPolicy::Semver(range);
    let (Some(from), Some(to)) = (version(current), version(pushed)) else {
        return Err(format!(
            "{current} → {pushed} is not a version change (policy {policy})"
        ));
    };
    if from.prefix != to.prefix
        || from.suffix != to.suffix
        || from.numbers.len() != to.numbers.len()
    {
        return Err(format!(
            "{pushed} is not a version of the same form as {current} (policy {policy})"
        ));
    }
    if to.numbers.cmp(&from.numbers) != Ordering::Greater {
        return Err(format!(
            "{pushed} is not newer than {current} (policy {policy})"
        ));
    }
    let fixed = match range {
        Range::Patch => 2,
        Range::Minor => 1,
        Range::Major => 0,
    };
    let fixed = fixed.min(to.numbers.len());
    if to.numbers[..fixed] != from.numbers[..fixed] {
        return Err(format!("{pushed} is beyond {policy} of {current}"));
    }
    Ok(format!("{current} → {pushed} (policy {policy})"))
}

/// `*` is any run of characters, `?` any one character.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                backtrack = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    pi = star + 1;
                    ti = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moves(policy: &str, current: &str, pushed: &str) -> bool {
        TagPolicy::parse(Some(policy))
            .unwrap()
            .decide(current, pushed)
            .is_ok()
    }

    #[test]
    fn exact_is_the_default() {
        assert_eq!(TagPolicy::parse(None).unwrap(), TagPolicy::Exact);
        assert!(moves("exact", "latest", "latest"));
        assert!(!moves("exact", "latest", "v2"));
    }

    #[test]
    fn semver_ranges() {
        assert!(moves("semver:patch", "1.2.3", "1.2.4"));
        assert!(!moves("semver:patch", "1.2.3", "1.3.0"));
        assert!(moves("semver:minor", "1.2.3", "1.3.0"));
        assert!(moves("semver:minor", "1.2.3", "1.2.10"));
        assert!(!moves("semver:minor", "1.2.3", "2.0.0"));
        assert!(moves("semver:major", "1.2.3", "2.0.0"));
        assert!(moves("semver:minor", "1.25", "1.26"), "two components");
        assert!(!moves("semver:patch", "1.25", "1.26"));
    }

    #[test]
    fn semver_never_moves_backwards_or_sideways() {
        assert!(!moves("semver:major", "1.2.3", "1.2.3"));
        assert!(!moves("semver:major", "1.2.3", "1.2.2"));
        assert!(
            !moves("semver:major", "1.10.0", "1.9.9"),
            "numeric, not text, order"
        );
        assert!(!moves("semver:major", "latest", "1.0.0"));
        assert!(!moves("semver:major", "1.2.3", "latest"));
    }

    #[test]
    fn prefix_and_suffix_must_stay() {
        assert!(moves("semver:minor", "v1.2.3", "v1.3.0"));
        assert!(!moves("semver:minor", "v1.2.3", "1.3.0"));
        assert!(moves("semver:minor", "1.2.3-alpine", "1.3.0-alpine"));
        assert!(!moves("semver:minor", "1.2.3-alpine", "1.3.0"));
        assert!(
            !moves("semver:minor", "1.2.3", "1.3.0-rc1"),
            "stable never moves to a pre-release"
        );
        assert!(!moves("semver:minor", "1.2.3", "1.3"), "same shape");
    }

    #[test]
    fn globs() {
        assert!(moves("glob:release-*", "release-41", "release-42"));
        assert!(!moves("glob:release-*", "release-41", "nightly-42"));
        assert!(moves("glob:v?.*", "v1.0", "v2.1"));
        assert!(moves("glob:*", "a", "anything"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn bad_policies_are_explained() {
        for bad in ["latest", "semver", "semver:huge", "glob:", "regex:.*"] {
            let error = TagPolicy::parse(Some(bad)).unwrap_err();
            assert!(error.contains("dockhook.policy"), "{error}");
        }
    }

    #[test]
    fn decisions_say_why() {
        let policy = TagPolicy::parse(Some("semver:minor")).unwrap();
        assert_eq!(
            policy.decide("1.2.3", "1.3.0").unwrap(),
            "1.2.3 → 1.3.0 (policy semver:minor)"
        );
        assert!(policy
            .decide("1.2.3", "2.0.0")
            .unwrap_err()
            .contains("beyond semver:minor"));
    }
}
