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
//! The request is authenticated by the secret token in its URL (checked by
//! the server). An empty `tag` or `digest` (an unset CI variable, usually)
//! is an error rather than a default.

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
pub fn parse(request: &Request<'_>, _settings: &Settings) -> Result<Verdict, SourceError> {
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
    Ok(Verdict::events(vec![ImageEvent {
        source: NAME,
        image,
        pusher: None,
        digest,
    }]))
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

    fn parse_body(body: &[u8]) -> Result<Verdict, SourceError> {
        run(parse, &[], body, &Settings::for_tests())
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
