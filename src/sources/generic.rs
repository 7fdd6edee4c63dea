//! The generic webhook, for CI pipelines and scripts.
//!
//! The body names one image:
//!
//! ```json
//! {"image": "registry.example.com/team/app:v2", "digest": "sha256:…"}
//! ```
//!
//! - `image` (required): a reference as `docker pull` takes it, parsed and
//!   normalised like any other (`alice/site` is
//!   `docker.io/alice/site:latest`). It may carry a tag and a digest.
//! - `tag` (optional): the tag, for pipelines that keep it apart from the
//!   name. If `image` has a tag too, they must agree. Without either, the
//!   tag is `latest`.
//! - `digest` (optional): the manifest digest the pull must bring. If
//!   `image` has a digest too, they must agree.
//!
//! Other fields are ignored, so a pipeline can send its own metadata along;
//! a misspelt field is therefore ignored as well, not an error.
//!
//! The request is authenticated by the generic hook's token in its URL
//! (checked by the server). An empty `tag` or `digest` (an unset CI
//! variable, usually) is an error rather than a default.
//!
//! Since the body names the image, the hook's token alone must not open
//! every image on the host: the image must match one of the
//! `generic_images` patterns ([`ImagePattern`]), by default the owners'
//! Docker Hub namespaces, as a Docker Hub webhook would be held to `OWNER`.
//! Any other image is refused (403) and nothing is queued.

use serde::Deserialize;

use super::{always_on, json, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::event::ImageEvent;
use crate::image_ref::{validate_digest, ImageRef};

/// Name recorded in history for events from this source.
pub const NAME: &str = "generic";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "generic (CI)",
    auth: Auth::Token { bearer: false },
    help: "token in the URL",
    enabled: always_on,
    parse,
};

#[derive(Debug, Deserialize)]
struct Payload {
    image: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

/// Parses a generic webhook into its one event.
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    let payload: Payload = json(request.body, "generic webhook")?;
    let malformed = |message: String| SourceError::Malformed(message);
    let reference = payload
        .image
        .as_deref()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| malformed("the body has no `image`".into()))?;
    let parsed = ImageRef::parse(reference)
        .map_err(|e| malformed(format!("`image` is not a valid image reference: {e}")))?;
    let image = match payload.tag.as_deref() {
        None => parsed.without_digest(),
        Some("") => {
            return Err(malformed(
                "`tag` is empty; leave it out to use the tag in `image`, or `latest`".into(),
            ))
        }
        Some(tag) => {
            if has_tag(reference) && parsed.tag != tag {
                return Err(malformed(format!(
                    "`image` has tag {:?} but `tag` is {tag:?}; give one tag",
                    parsed.tag
                )));
            }
            ImageRef::from_parts(&parsed.registry, &parsed.repository, Some(tag))
                .map_err(|e| malformed(format!("`tag` is not a valid tag: {e}")))?
        }
    };
    let digest = match (payload.digest.as_deref(), parsed.digest) {
        (None, pinned) => pinned,
        (Some(given), pinned) => {
            let given = validate_digest(given)
                .map_err(|e| malformed(format!("`digest` is not a valid digest: {e}")))?;
            if pinned.as_ref().is_some_and(|pinned| *pinned != given) {
                return Err(malformed(
                    "`image` has a digest that is not `digest`; give one digest".into(),
                ));
            }
            Some(given)
        }
    };
    if !allowed(settings, &image) {
        return Err(SourceError::Forbidden(format!(
            "the generic hook may not name {}: it matches no pattern of generic_images ({}); \
             add one for it",
            image.name(),
            shown_patterns(settings)
        )));
    }
    Ok(Verdict::events(vec![ImageEvent {
        source: NAME,
        image,
        pusher: None,
        digest,
    }]))
}

/// Whether the generic hook may name `image`: it matches a configured
/// pattern, or, with none configured, it is in an owner's Docker Hub
/// namespace.
fn allowed(settings: &Settings, image: &ImageRef) -> bool {
    let name = format!("{}/{}", image.registry, image.repository);
    match &settings.generic_images {
        Some(patterns) => patterns.iter().any(|pattern| pattern.matches(&name)),
        None => settings.owners.iter().any(|owner| {
            image.registry == settings.dockerhub_registry
                && image
                    .repository
                    .strip_prefix(owner.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }),
    }
}

fn shown_patterns(settings: &Settings) -> String {
    match &settings.generic_images {
        Some(patterns) => patterns
            .iter()
            .map(|p| p.0.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        None => settings
            .owners
            .iter()
            .map(|owner| format!("{}/{owner}/*", settings.dockerhub_registry))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// An image name the generic hook may deploy: `registry/repository`, with
/// `*` for any run of characters (`/` included). Written as `docker pull`
/// takes names, so `alice/*` is `docker.io/alice/*` and `site` is
/// `docker.io/library/site`; a lone `*` allows every image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern(String);

impl ImagePattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let valid = !text.is_empty()
            && text.len() <= 255
            && text.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:*".contains(&b)
            });
        if !valid {
            return Err(format!(
                "{text:?} is not an image pattern: use lowercase image names as `docker pull` \
                 takes them, with * for any characters (registry.example.com/team/*, alice/*)"
            ));
        }
        if text == "*" {
            return Ok(Self(text.into()));
        }
        let normalised = match text.split_once('/') {
            None => format!("{}/library/{text}", crate::image_ref::DOCKER_HUB),
            Some((first, _))
                if first.contains(['.', ':', '*']) || first == "localhost" =>
            {
                text.to_string()
            }
            Some(_) => format!("{}/{text}", crate::image_ref::DOCKER_HUB),
        };
        Ok(Self(normalised))
    }

    /// Whether `name` (`registry/repository`) matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

impl std::fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*`-only wildcard matching, in linear time: on a mismatch, the last `*`
/// takes one more character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether a reference names a tag: a ':' in its last path component, before
/// any digest (a ':' earlier is a registry port).
fn has_tag(reference: &str) -> bool {
    let name = reference.split('@').next().unwrap_or_default();
    name.rsplit('/').next().unwrap_or_default().contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{fixture, post, run, serve};

    const DIGEST: &str = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";

    /// Parsed with every image allowed: these tests are about the format.
    fn parse_body(body: &[u8]) -> Result<Verdict, SourceError> {
        run(parse, &[], body, &allowing(&["*"]))
    }

    fn allowing(patterns: &[&str]) -> Settings {
        Settings {
            generic_images: Some(
                patterns
                    .iter()
                    .map(|p| ImagePattern::parse(p).unwrap())
                    .collect(),
            ),
            ..Settings::for_tests()
        }
    }

    fn verdict(settings: &Settings, image: &str) -> Result<Verdict, SourceError> {
        let body = format!(r#"{{"image": "{image}"}}"#);
        run(parse, &[], body.as_bytes(), settings)
    }

    #[test]
    fn by_default_only_the_owners_docker_hub_images_are_taken() {
        let settings = Settings::for_tests();
        for image in ["alice/site", "docker.io/alice/api:v2", "alice/team/app"] {
            assert!(verdict(&settings, image).is_ok(), "{image}");
        }
        for image in [
            "nginx",
            "bob/site",
            "alicex/site",
            "ghcr.io/alice/site",
            "registry.example.com/alice/site",
        ] {
            match verdict(&settings, image) {
                Err(SourceError::Forbidden(message)) => {
                    assert!(message.contains("generic_images"), "{message}");
                    assert!(message.contains("docker.io/alice/*"), "{message}");
                }
                other => panic!("{image}: {other:?}"),
            }
        }
    }

    #[test]
    fn configured_patterns_decide_which_images_are_taken() {
        let settings = allowing(&["registry.example.com/team/*", "ghcr.io/*/site", "nginx"]);
        for image in [
            "registry.example.com/team/app",
            "registry.example.com/team/sub/app:v1",
            "ghcr.io/alice/site",
            "ghcr.io/a/b/site",
            "nginx:1.27",
        ] {
            assert!(verdict(&settings, image).is_ok(), "{image}");
        }
        for image in [
            "registry.example.com/other/app",
            "registry.example.com:5000/team/app",
            "ghcr.io/alice/site-two",
            "alice/site",
            "docker.io/library/nginx-evil",
        ] {
            assert!(
                matches!(verdict(&settings, image), Err(SourceError::Forbidden(_))),
                "{image}"
            );
        }
    }

    #[test]
    fn patterns_are_normalised_and_checked() {
        let shown = |text: &str| ImagePattern::parse(text).map(|p| p.to_string());
        assert_eq!(shown("alice/*").unwrap(), "docker.io/alice/*");
        assert_eq!(shown("site").unwrap(), "docker.io/library/site");
        assert_eq!(shown("localhost/x").unwrap(), "localhost/x");
        assert_eq!(shown("127.0.0.1:5000/*").unwrap(), "127.0.0.1:5000/*");
        assert_eq!(shown("*").unwrap(), "*");
        for bad in ["", "Alice/site", "a b", "a;rm", "x?"] {
            assert!(shown(bad).is_err(), "{bad:?}");
        }
        assert!(glob(b"a*b*c", b"axxbyyc") && !glob(b"a*b*c", b"axxbyy"));
        assert!(glob(b"*", b"") && glob(b"**", b"x") && !glob(b"", b"x"));
    }

    fn event(body: &str) -> ImageEvent {
        let verdict = parse_body(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(verdict.events.len(), 1);
        assert_eq!((verdict.ignored, verdict.delivery), (None, None));
        verdict.events.into_iter().next().unwrap()
    }

    fn fixture_text(name: &str) -> String {
        String::from_utf8(fixture(name)).expect("fixtures are UTF-8")
    }

    #[test]
    fn full_payload_is_an_event_with_its_digest() {
        let event = event(&fixture_text("generic-full.json"));
        assert_eq!(
            event.image.to_string(),
            "registry.example.com:5000/team/app:v2"
        );
        assert_eq!(event.image.digest, None, "the digest is the event's");
        assert_eq!(event.digest.as_deref(), Some(DIGEST));
        assert_eq!(event.source, "generic");
        assert_eq!(event.pusher, None);
    }

    #[test]
    fn minimal_payload_means_latest_and_unknown_fields_are_ignored() {
        let event = event(&fixture_text("generic-minimal.json"));
        assert_eq!(event.image.to_string(), "ghcr.io/alice/site:latest");
        assert_eq!(event.digest, None);
    }

    #[test]
    fn image_is_normalised_like_docker_does() {
        assert_eq!(
            event(r#"{"image":"alice/site"}"#).image.to_string(),
            "docker.io/alice/site:latest"
        );
        assert_eq!(
            event(r#"{"image":"nginx:1.27"}"#).image.to_string(),
            "docker.io/library/nginx:1.27"
        );
    }

    #[test]
    fn tag_field_names_or_confirms_the_tag() {
        let image = |body: &str| event(body).image.to_string();
        assert_eq!(
            image(r#"{"image":"127.0.0.1:5000/site","tag":"v3"}"#),
            "127.0.0.1:5000/site:v3"
        );
        assert_eq!(
            image(r#"{"image":"127.0.0.1:5000/site:v3","tag":"v3"}"#),
            "127.0.0.1:5000/site:v3"
        );
        // `latest` named explicitly in `image` is a tag too.
        assert!(parse_body(br#"{"image":"alice/site:latest","tag":"v3"}"#).is_err());
        assert_eq!(
            image(r#"{"image":"alice/site","tag":null}"#),
            "docker.io/alice/site:latest"
        );
    }

    #[test]
    fn digest_comes_from_the_field_or_the_image() {
        let pinned = format!(r#"{{"image":"ghcr.io/alice/site:v1@{DIGEST}"}}"#);
        let event1 = event(&pinned);
        assert_eq!(event1.digest.as_deref(), Some(DIGEST));
        assert_eq!(event1.image.to_string(), "ghcr.io/alice/site:v1");
        let both = format!(r#"{{"image":"ghcr.io/alice/site@{DIGEST}","digest":"{DIGEST}"}}"#);
        assert_eq!(event(&both).digest.as_deref(), Some(DIGEST));
        assert_eq!(event(&both).image.to_string(), "ghcr.io/alice/site:latest");
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        let other = format!("sha256:{}", "0".repeat(64));
        for (body, needle) in [
            ("not json".to_string(), "not a generic webhook"),
            ("[]".to_string(), "not a generic webhook"),
            ("{}".to_string(), "no `image`"),
            (r#"{"image":""}"#.to_string(), "no `image`"),
            (r#"{"image":42}"#.to_string(), "not a generic webhook"),
            (
                r#"{"image":"ghcr.io/a/b","tag":1}"#.to_string(),
                "not a generic webhook",
            ),
            (
                r#"{"image":"Alice/Site"}"#.to_string(),
                "not a valid image reference",
            ),
            (
                r#"{"image":"alice/../site"}"#.to_string(),
                "not a valid image reference",
            ),
            (
                r#"{"image":"alice/my site"}"#.to_string(),
                "not a valid image reference",
            ),
            (
                r#"{"image":"evil host/a/b"}"#.to_string(),
                "not a valid image reference",
            ),
            (
                r#"{"image":"a/b:"}"#.to_string(),
                "not a valid image reference",
            ),
            (
                r#"{"image":"a/b@sha256:abc"}"#.to_string(),
                "not a valid image reference",
            ),
            (r#"{"image":"a/b","tag":""}"#.to_string(), "`tag` is empty"),
            (
                r#"{"image":"a/b","tag":"v 1"}"#.to_string(),
                "not a valid tag",
            ),
            (
                r#"{"image":"a/b","tag":"-v1"}"#.to_string(),
                "not a valid tag",
            ),
            (
                r#"{"image":"a/b:v1","tag":"v2"}"#.to_string(),
                "give one tag",
            ),
            (
                r#"{"image":"a/b","digest":""}"#.to_string(),
                "not a valid digest",
            ),
            (
                r#"{"image":"a/b","digest":"sha256:abc"}"#.to_string(),
                "not a valid digest",
            ),
            (
                format!(r#"{{"image":"a/b","digest":"{}"}}"#, DIGEST.to_uppercase()),
                "not a valid digest",
            ),
            (
                format!(r#"{{"image":"a/b@{DIGEST}","digest":"{other}"}}"#),
                "give one digest",
            ),
        ] {
            crate::sources::testing::assert_malformed(parse_body(body.as_bytes()), needle, &body);
        }
    }

    #[tokio::test]
    async fn over_http_a_wrong_path_token_is_refused() {
        let base = serve(Settings::for_tests()).await;
        let url = format!("{base}/hooks/generic/guess");
        let (status, answer) = post(&url, &[], &fixture("generic-full.json")).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized"))
        );
    }
}
