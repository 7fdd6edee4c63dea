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

impl TagPolicy {
    /// The tag this policy would deploy on a container running `current`,
    /// given every tag of the repository: for `semver`, the newest version
    /// it accepts; for `glob`, the greatest matching tag in natural order
    /// (`release-10` after `release-9`) that sorts after `current`; for
    /// `exact`, or when no tag moves it, `current`.
    pub fn choose<'a>(&self, current: &'a str, tags: &'a [String]) -> &'a str {
        let accepted = tags
            .iter()
            .map(String::as_str)
            .filter(|tag| self.decide(current, tag).is_ok());
        let newest = match self {
            Self::Exact => None,
            Self::Semver(_) => accepted.max_by(|a, b| {
                let numbers = |tag| version(tag).map(|v| v.numbers).unwrap_or_default();
                numbers(a).cmp(&numbers(b))
            }),
            Self::Glob(_) => accepted
                .filter(|tag| natural_cmp(tag, current) == Ordering::Greater)
                .max_by(|a, b| natural_cmp(a, b)),
        };
        newest.unwrap_or(current)
    }
}

/// Compares runs of digits by their value and the rest as text, so
/// `v10` comes after `v9`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn runs(text: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = text;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some((digits, run))
        })
    }
    let (mut left, mut right) = (runs(a), runs(b));
    loop {
        let order = match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((true, x)), Some((true, y))) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (Some((_, x)), Some((_, y))) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
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

    fn choose(policy: &str, current: &str, tags: &[&str]) -> String {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        TagPolicy::parse(Some(policy))
            .unwrap()
            .choose(current, &tags)
            .to_string()
    }

    #[test]
    fn choose_picks_what_the_policy_would_deploy() {
        let tags = [
            "1.2.3",
            "1.2.10",
            "1.3.0",
            "2.0.0",
            "1.4.0-rc1",
            "latest",
            "1.2.9",
        ];
        assert_eq!(choose("semver:patch", "1.2.3", &tags), "1.2.10");
        assert_eq!(choose("semver:minor", "1.2.3", &tags), "1.3.0");
        assert_eq!(choose("semver:major", "1.2.3", &tags), "2.0.0");
        assert_eq!(choose("semver:major", "2.0.0", &tags), "2.0.0", "newest");
        assert_eq!(choose("exact", "1.2.3", &tags), "1.2.3");
        assert_eq!(choose("semver:minor", "1.2.3", &[]), "1.2.3");
        let releases = ["release-9", "release-10", "release-2", "nightly-99"];
        assert_eq!(
            choose("glob:release-*", "release-9", &releases),
            "release-10"
        );
        assert_eq!(
            choose("glob:release-*", "release-10", &releases),
            "release-10",
            "never backwards"
        );
    }

    #[test]
    fn natural_order_reads_numbers() {
        assert_eq!(natural_cmp("v10", "v9"), Ordering::Greater);
        assert_eq!(natural_cmp("a-007", "a-7"), Ordering::Equal);
        assert_eq!(natural_cmp("2026-12-05", "2026-11-30"), Ordering::Greater);
        assert_eq!(natural_cmp("abc", "abd"), Ordering::Less);
        assert_eq!(natural_cmp("r1", "r1b"), Ordering::Less);
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
