//! Image references: parsing, validation and normalisation.
//!
//! Owns the one canonical form every other module compares: `registry/repository:tag`
//! with Docker Hub's implicit parts made explicit (`site` is
//! `docker.io/library/site:latest`). Pure: no I/O, no Docker calls.
//!
//! The grammar follows the distribution project's reference grammar, a little
//! stricter where a webhook could otherwise smuggle something odd into a pull
//! (upper case in paths, empty components, over-long names).

use std::fmt;

/// The registry host Docker Hub images live on, in canonical form.
pub const DOCKER_HUB: &str = "docker.io";

/// Longest reference we accept; the distribution spec caps names at 255 bytes.
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/site`, `alice/site`).
    pub repository: String,
    /// Tag; `latest` when the reference named none.
    pub tag: String,
    /// Content digest (`sha256:…`) when the reference pins one.
    pub digest: Option<String>,
}

/// Why a string is not a usable image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("invalid registry host {0:?}")]
    Registry(String),
    #[error("invalid repository name {0:?}: use lowercase letters, digits and single separators (. _ -) between path components")]
    Repository(String),
    #[error("invalid tag {0:?}: a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'")]
    Tag(String),
    #[error("invalid digest {0:?}: expected sha256: followed by 64 lowercase hex digits")]
    Digest(String),
}

impl ImageRef {
    /// Parses a reference as `docker run` understands it and normalises it.
    ///
    /// ```
    /// use dockhook::image_ref::ImageRef;
    ///
    /// let image = ImageRef::parse("alice/site").unwrap();
    /// assert_eq!(image.to_string(), "docker.io/alice/site:latest");
    /// assert!(image.same_repository_and_tag(&ImageRef::parse("docker.io/alice/site:latest").unwrap()));
    /// assert!(ImageRef::parse("Alice/site; rm -rf /").is_err());
    /// ```
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        if reference.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if reference.len() > MAX_NAME_LEN + 1 + 128 + 1 + 71 {
            return Err(ImageRefError::TooLong);
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (reference, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if tag == Some("") {
            return Err(ImageRefError::Tag(String::new()));
        }
        let (registry, repository) = split_registry(name);
        let mut image = Self::from_parts(registry, repository, tag)?;
        if let Some(digest) = digest {
            image.digest = Some(validate_digest(digest)?);
        }
        Ok(image)
    }

    /// Builds a reference from the parts a webhook carries: a registry host
    /// (from configuration), a repository path and an optional tag.
    pub fn from_parts(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
    ) -> Result<Self, ImageRefError> {
        let registry = normalise_registry(registry)?;
        let repository = normalise_repository(&registry, repository)?;
        let tag = match tag {
            None | Some("") => "latest".to_string(),
            Some(tag) => validate_tag(tag)?,
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ImageRefError::TooLong);
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest: None,
        })
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether both name the same repository and tag (digests ignored).
    pub fn same_repository_and_tag(&self, other: &Self) -> bool {
        self.registry == other.registry
            && self.repository == other.repository
            && self.tag == other.tag
    }

    /// This reference without its digest.
    pub fn without_digest(&self) -> Self {
        Self {
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)?;
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits `host/rest` at its first '/', for the locations registries put in
/// their payloads (Harbor's `resource_url`, Quay's `docker_url`), whose first
/// component is always their own host: unlike [`ImageRef::parse`], a host
/// without '.' or ':' (`harbor/library/app`) is not taken for a Docker Hub
/// namespace. `None` when there is no '/' or nothing before it.
pub fn split_host(location: &str) -> Option<(&str, &str)> {
    location
        .split_once('/')
        .filter(|(host, _)| !host.is_empty())
}

/// Splits `host/path` into registry and repository the way Docker does: the
/// first component is a registry when it has a '.' or a ':', or is `localhost`.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn normalise_registry(registry: &str) -> Result<String, ImageRefError> {
    let registry = registry.trim_end_matches('/');
    let lower = registry.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    ) {
        return Ok(DOCKER_HUB.to_string());
    }
    let (host, port) = match registry.rsplit_once(':') {
        // An IPv6 literal is bracketed; its colons are not a port separator.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && (host.starts_with('[') && host.ends_with(']')
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    if host_ok && port_ok {
        Ok(registry.to_string())
    } else {
        Err(ImageRefError::Registry(registry.to_string()))
    }
}

fn normalise_repository(registry: &str, repository: &str) -> Result<String, ImageRefError> {
    let invalid = || ImageRefError::Repository(repository.to_string());
    if repository.is_empty() || !repository.split('/').all(valid_path_component) {
        return Err(invalid());
    }
    if registry == DOCKER_HUB && !repository.contains('/') {
        Ok(format!("library/{repository}"))
    } else {
        Ok(repository.to_string())
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn validate_tag(tag: &str) -> Result<String, ImageRefError> {
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(tag.to_string())
    } else {
        Err(ImageRefError::Tag(tag.to_string()))
    }
}

/// Accepts `sha256:<64 lowercase hex>`, the only algorithm registries emit.
pub fn validate_digest(digest: &str) -> Result<String, ImageRefError> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(digest.to_string())
    } else {
        Err(ImageRefError::Digest(digest.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_short_names_are_made_explicit() {
        assert_eq!(parse("site"), "docker.io/library/site:latest");
        assert_eq!(parse("alice/site"), "docker.io/alice/site:latest");
        assert_eq!(parse("alice/site:v2"), "docker.io/alice/site:v2");
        assert_eq!(parse("docker.io/site"), "docker.io/library/site:latest");
        assert_eq!(
            parse("index.docker.io/alice/site"),
            "docker.io/alice/site:latest"
        );
        assert_eq!(
            parse("registry-1.docker.io/library/site:1"),
            "docker.io/library/site:1"
        );
    }

    #[test]
    fn other_registries_keep_their_paths() {
        assert_eq!(parse("127.0.0.1:5000/site"), "127.0.0.1:5000/site:latest");
        assert_eq!(parse("localhost/a/b:c"), "localhost/a/b:c");
        assert_eq!(
            parse("ghcr.io/org/team/app:1.2.3"),
            "ghcr.io/org/team/app:1.2.3"
        );
        assert_eq!(parse("[::1]:5000/site:x"), "[::1]:5000/site:x");
    }

    #[test]
    fn port_is_not_mistaken_for_tag() {
        let image = ImageRef::parse("127.0.0.1:5000/alice/site").unwrap();
        assert_eq!(image.registry, "127.0.0.1:5000");
        assert_eq!(image.repository, "alice/site");
        assert_eq!(image.tag, "latest");
    }

    #[test]
    fn digests_are_parsed_and_validated() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let image = ImageRef::parse(&format!("alice/site:v1@{digest}")).unwrap();
        assert_eq!(image.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(image.tag, "v1");
        assert_eq!(
            image.without_digest().to_string(),
            "docker.io/alice/site:v1"
        );
        assert!(ImageRef::parse("alice/site@sha256:abc").is_err());
        assert!(ImageRef::parse(&format!("alice/site@md5:{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn hostile_or_malformed_names_are_rejected() {
        for bad in [
            "",
            "Alice/site",
            "alice//site",
            "alice/site/",
            "/site",
            "alice/-site",
            "alice/site:",
            "alice/site:-x",
            "alice/site:.x",
            "alice/site:a b",
            "alice/si te",
            "alice/site;rm -rf /",
            "alice/../site",
            "alice/site\n",
            "bad_host:5000x/site",
            "127.0.0.1:99999/site",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(ImageRef::parse(&format!("a/{}", "b".repeat(300))).is_err());
        assert!(ImageRef::parse(&format!("a:{}", "b".repeat(129))).is_err());
    }

    #[test]
    fn split_host_takes_the_first_component_whatever_it_looks_like() {
        assert_eq!(
            split_host("harbor/library/app:v1"),
            Some(("harbor", "library/app:v1"))
        );
        assert_eq!(
            split_host("quay.example.com:8443/ops/api"),
            Some(("quay.example.com:8443", "ops/api"))
        );
        assert_eq!(split_host("/library/app"), None);
        assert_eq!(split_host("app:v1"), None);
        assert_eq!(split_host(""), None);
    }

    #[test]
    fn separators_follow_the_distribution_grammar() {
        for good in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1/b2"] {
            assert!(
                valid_path_component(good.split('/').next().unwrap()),
                "{good}"
            );
        }
        for bad in ["a..b", "a___b", "a.-b", "-a", "a-", "A"] {
            assert!(!valid_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn from_parts_defaults_the_tag_and_normalises() {
        let image = ImageRef::from_parts("docker.io", "site", None).unwrap();
        assert_eq!(image.to_string(), "docker.io/library/site:latest");
        let image = ImageRef::from_parts("127.0.0.1:5000", "alice/site", Some("")).unwrap();
        assert_eq!(image.to_string(), "127.0.0.1:5000/alice/site:latest");
        assert!(ImageRef::from_parts("docker.io", "alice/site", Some("v 1")).is_err());
        assert!(ImageRef::from_parts("evil host", "alice/site", None).is_err());
    }

    #[test]
    fn matching_ignores_digest_but_not_tag() {
        let a = ImageRef::parse("alice/site:latest").unwrap();
        let b =
            ImageRef::parse(&format!("docker.io/alice/site@sha256:{}", "0".repeat(64))).unwrap();
        assert!(a.same_repository_and_tag(&b));
        assert!(!a.same_repository_and_tag(&ImageRef::parse("alice/site:v2").unwrap()));
        assert!(!a.same_repository_and_tag(&ImageRef::parse("bob/site").unwrap()));
    }
}
