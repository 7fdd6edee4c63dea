//! Fuzz checks: one function per fuzz target, shared by the `cargo-fuzz`
//! targets under `fuzz/` and by `tests/fuzz_corpus.rs`, which replays the
//! committed corpus on stable so that an input that once failed fails CI.
//!
//! Each check feeds arbitrary bytes to a parser and panics when a property
//! that must hold for every input does not: beyond "no panic", what a
//! parser accepts must be valid and normalised. Not part of the API: no
//! product code calls it.
//!
//! A source's input is a request written as header lines (`name: value`),
//! an empty line, then the body. `{hmac}` in a header value stands for the
//! HMAC-SHA256 of the body under [`SECRET`], in hex, so that a seed signed
//! once stays signed while the fuzzer changes its body; every secret in
//! [`settings`] is [`SECRET`], so the sources that authenticate themselves
//! get past their checks and their payload parsers are reached.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::image_ref::{validate_digest, ImageRef};
use crate::settings::Secret;
use crate::sources::{self, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::tags::TagPolicy;

/// Every secret the sources are given while fuzzed.
pub const SECRET: &str = "fuzz-secret";

/// What is replaced by the body's signature in a header value.
const SIGNATURE: &str = "{hmac}";

/// The settings sources are fuzzed with: owner `alice`, the default
/// registries, and every secret set to [`SECRET`].
pub fn settings() -> Settings {
    let secret = || Some(Secret::new(SECRET));
    Settings {
        owners: vec!["alice".into()],
        dockerhub_registry: "docker.io".into(),
        registry_host: None,
        github_secret: secret(),
        github_registry: "ghcr.io".into(),
        gitea_secret: secret(),
        gitea_registry: None,
        gitlab_token: secret(),
        gitlab_registry: "registry.gitlab.com".into(),
        harbor_auth: secret(),
        quay_registry: "quay.io".into(),
        generic_images: Some(
            [
                "alice/*",
                "registry.example.com:5000/team/*",
                "ghcr.io/*/site",
            ]
            .into_iter()
            .map(|p| sources::generic::ImagePattern::parse(p).expect("valid"))
            .collect(),
        ),
    }
}

/// Parses `data` as a request to the source called `name` (see the module
/// docs for the format) and checks what it made of it.
///
/// # Panics
/// When there is no such source, or a property does not hold: a source
/// that authenticates itself accepts only what its header check accepts;
/// a verdict either has events or says why not; every event is the
/// source's, names a valid, normalised image and carries a valid digest;
/// a Docker Hub event is in an allowed owner's namespace, a generic one
/// matches a `generic_images` pattern; parsing is
/// deterministic. Returns the verdict, for the corpus replay to tell
/// what the inputs reach.
pub fn source(name: &str, data: &[u8]) -> Result<Verdict, SourceError> {
    let source = sources::ALL
        .iter()
        .find(|source| source.name == name)
        .unwrap_or_else(|| panic!("no source is called {name:?}"));
    let (headers, body) = request(data);
    let request = Request {
        headers: &headers,
        body,
    };
    let settings = settings();
    let result = (source.parse)(&request, &settings);
    assert_eq!(
        format!("{result:?}"),
        format!("{:?}", (source.parse)(&request, &settings)),
        "the same request gave two answers"
    );
    if let Auth::Own { headers: check } = source.auth {
        if check(&headers, &settings).is_err() {
            assert!(
                matches!(result, Err(SourceError::Unauthorized)),
                "{name} accepted a request its header check refuses: {result:?}"
            );
        }
    }
    if let Ok(verdict) = &result {
        check_verdict(source, &settings, verdict);
    }
    result
}

fn check_verdict(source: &Source, settings: &Settings, verdict: &Verdict) {
    assert_eq!(
        verdict.events.is_empty(),
        verdict.ignored.is_some(),
        "a verdict has events or a reason why not, never both nor neither: {verdict:?}"
    );
    for event in &verdict.events {
        assert_eq!(event.source, source.name, "{event:?}");
        let image = &event.image;
        let rebuilt = ImageRef::from_parts(&image.registry, &image.repository, Some(&image.tag));
        assert_eq!(
            rebuilt.as_ref(),
            Ok(&image.without_digest()),
            "{} made an image that is not valid and normalised",
            source.name
        );
        for digest in [&event.digest, &image.digest].into_iter().flatten() {
            assert_eq!(validate_digest(digest).as_ref(), Ok(digest), "{event:?}");
        }
        if source.name == sources::generic::NAME {
            let name = format!("{}/{}", image.registry, image.repository);
            let patterns = settings.generic_images.as_deref().unwrap_or_default();
            assert!(
                patterns.iter().any(|pattern| pattern.matches(&name)),
                "the generic hook took an image no pattern allows: {event:?}"
            );
        }
        if source.name == sources::dockerhub::NAME {
            let namespace = image.repository.split('/').next().unwrap_or_default();
            assert!(
                settings.owners.iter().any(|owner| owner == namespace),
                "a Docker Hub push outside the owners was accepted: {event:?}"
            );
        }
    }
}

/// Splits `data` into headers and body at the first empty line; without
/// one, it is all body. Lines that are not a valid header are left out, as
/// no HTTP server would pass them on.
fn request(data: &[u8]) -> (HeaderMap, &[u8]) {
    let Some(split) = data.windows(2).position(|w| w == b"\n\n") else {
        return (HeaderMap::new(), data);
    };
    let body = &data[split + 2..];
    let signature = hmac_hex(SECRET, body);
    let mut headers = HeaderMap::new();
    for line in data[..split].split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii_start();
        let value = String::from_utf8_lossy(value).replace(SIGNATURE, &signature);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    (headers, body)
}

/// The HMAC-SHA256 of `body` under `secret`, in lowercase hex, as GitHub
/// and Gitea sign their deliveries.
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses `data` as an image reference, and its lines as the registry,
/// repository and tag of [`ImageRef::from_parts`].
///
/// # Panics
/// When what `parse` accepts does not print as a reference that parses
/// back to itself, or `from_parts` does not give the same image again from
/// the parts of one it made (normalising twice changes nothing).
pub fn image_ref(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(image) = ImageRef::parse(text) {
        assert_eq!(
            ImageRef::parse(&image.to_string()).as_ref(),
            Ok(&image),
            "{text:?} does not print as itself"
        );
        let name = ImageRef::parse(&image.name()).expect("a parsed image's name parses");
        assert_eq!(
            (&name.registry, &name.repository),
            (&image.registry, &image.repository)
        );
    }
    let mut parts = text.splitn(3, '\n');
    let (registry, repository) = (parts.next().unwrap_or_default(), parts.next());
    let tag = parts.next();
    if let Ok(image) = ImageRef::from_parts(registry, repository.unwrap_or_default(), tag) {
        assert_eq!(
            ImageRef::from_parts(&image.registry, &image.repository, Some(&image.tag)).as_ref(),
            Ok(&image),
            "{text:?}: from_parts is not idempotent"
        );
    }
}

/// Parses the first line of `data` as a tag policy, and decides, for a
/// container running the tag on the second line, on each further line as
/// a pushed tag, then chooses among them.
///
/// # Panics
/// When a policy does not print as itself, `exact` moves to another tag,
/// `semver` moves both ways between two tags, or `choose` picks a tag that
/// is neither the current one nor one `decide` accepts.
pub fn tag_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let label = lines.next();
    let Ok(policy) = TagPolicy::parse(label) else {
        return;
    };
    assert_eq!(
        TagPolicy::parse(Some(&policy.to_string())).as_ref(),
        Ok(&policy),
        "{label:?} does not print as itself"
    );
    let current = lines.next().unwrap_or_default();
    let tags: Vec<String> = lines.map(String::from).collect();
    for pushed in &tags {
        let moves = policy.decide(current, pushed).is_ok();
        match policy {
            TagPolicy::Exact => assert_eq!(moves, current == pushed, "{current} → {pushed}"),
            TagPolicy::Semver(_) if moves => assert!(
                policy.decide(pushed, current).is_err(),
                "{policy} moves both ways between {current} and {pushed}"
            ),
            _ => {}
        }
    }
    let chosen = policy.choose(current, &tags);
    assert!(
        chosen == current || policy.decide(current, chosen).is_ok(),
        "{policy} chose {chosen} for {current}, which it would not deploy"
    );
}
