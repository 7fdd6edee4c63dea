//! Quay (quay.io and Red Hat Quay) "Push to Repository" notifications.
//!
//! A repository notification with the webhook method POSTs the event data as
//! JSON (`tests/fixtures/quay-*.json`): `repository` (`namespace/name`),
//! `namespace`, `name`, `docker_url` (`host/namespace/name`), `homepage` and
//! `updated_tags`. Current Quay sends `updated_tags` as a list of tag names;
//! early quay.io sent a map from tag to an image ID. A map value is used as
//! the event's digest when it is a manifest digest (`sha256:…`); a bare
//! 64-hex value is a Docker v1 image ID, which no pull can be checked
//! against, so it is dropped.
//!
//! Quay signs nothing and sends no custom headers, so the request is
//! authenticated by the secret token in its URL (checked by the server).
//! Quay's other events (builds, vulnerabilities, mirroring) carry no
//! `updated_tags` and are answered with success and ignored.
//!
//! The registry host is the one `docker_url` names (Quay's
//! `SERVER_HOSTNAME`), else `quay_registry`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{always_on, json, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::event::ImageEvent;
use crate::image_ref::{split_host, validate_digest, ImageRef};

/// Name recorded in history for events from this source.
pub const NAME: &str = "quay";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "Quay",
    auth: Auth::Token { bearer: false },
    help: "token in the URL",
    enabled: always_on,
    parse,
};

#[derive(Debug, Deserialize)]
struct Payload {
    repository: Option<String>,
    namespace: Option<String>,
    docker_url: Option<String>,
    updated_tags: Option<UpdatedTags>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum UpdatedTags {
    List(Vec<String>),
    Map(BTreeMap<String, Option<String>>),
}

/// Parses a repository push into one event per updated tag.
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    let payload: Payload = json(request.body, "Quay notification")?;
    let repository = payload
        .repository
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| SourceError::Malformed("the notification has no `repository`".into()))?;
    if let Some(namespace) = payload.namespace.as_deref().filter(|n| !n.is_empty()) {
        if repository.split('/').next() != Some(namespace) {
            return Err(SourceError::Malformed(format!(
                "`namespace` ({namespace:?}) does not match `repository` ({repository:?})"
            )));
        }
    }
    let host = registry_host(payload.docker_url.as_deref(), repository, settings)?;
    let Some(updated_tags) = payload.updated_tags else {
        return Ok(Verdict::ignored(
            "not a repository push (no `updated_tags`); only Quay's \"Push to Repository\" event triggers updates",
        ));
    };
    let tags: Vec<(String, Option<String>)> = match updated_tags {
        UpdatedTags::List(tags) => tags.into_iter().map(|tag| (tag, None)).collect(),
        UpdatedTags::Map(tags) => tags.into_iter().collect(),
    };
    let mut events = Vec::with_capacity(tags.len());
    for (tag, value) in tags {
        // `from_parts` would take an empty tag for `latest`.
        if tag.is_empty() {
            return Err(SourceError::Malformed(
                "the notification names an empty tag".into(),
            ));
        }
        let image = ImageRef::from_parts(host, repository, Some(&tag)).map_err(|e| {
            SourceError::Malformed(format!("the notification names an invalid image: {e}"))
        })?;
        let event = ImageEvent {
            source: NAME,
            image,
            pusher: None,
            digest: digest(value.as_deref())?,
        };
        if !events.contains(&event) {
            events.push(event);
        }
    }
    if events.is_empty() {
        return Ok(Verdict::ignored("the push updated no tag"));
    }
    Ok(Verdict::events(events))
}

/// The host `docker_url` names, whose path must be the repository; the
/// configured `quay_registry` when the payload has no `docker_url`.
fn registry_host<'a>(
    docker_url: Option<&'a str>,
    repository: &str,
    settings: &'a Settings,
) -> Result<&'a str, SourceError> {
    let Some(location) = docker_url.filter(|u| !u.is_empty()) else {
        return Ok(&settings.quay_registry);
    };
    match split_host(location) {
        Some((host, path)) if path == repository => Ok(host),
        _ => Err(SourceError::Malformed(format!(
            "`docker_url` ({location:?}) is not the registry host followed by `repository` ({repository:?})"
        ))),
    }
}

/// A map value: a manifest digest, or a legacy v1 image ID (dropped).
fn digest(value: Option<&str>) -> Result<Option<String>, SourceError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let legacy_image_id = value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if legacy_image_id {
        return Ok(None);
    }
    validate_digest(value).map(Some).map_err(|e| {
        SourceError::Malformed(format!("the notification names an invalid digest: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{fixture, post, run, serve};

    fn parse_body(body: &[u8], settings: &Settings) -> Result<Verdict, SourceError> {
        run(parse, &[], body, settings)
    }

    fn parse_fixture(name: &str) -> Result<Verdict, SourceError> {
        parse_body(&fixture(name), &Settings::for_tests())
    }

    fn images(verdict: &Verdict) -> Vec<String> {
        verdict.events.iter().map(|e| e.image.to_string()).collect()
    }

    #[test]
    fn tag_list_is_one_event_per_tag() {
        let verdict = parse_fixture("quay-push.json").unwrap();
        assert_eq!(
            images(&verdict),
            ["quay.io/alice/site:latest", "quay.io/alice/site:v2"]
        );
        assert!(verdict
            .events
            .iter()
            .all(|e| e.digest.is_none() && e.pusher.is_none() && e.source == "quay"));
        assert_eq!(verdict.delivery, None);
    }

    #[test]
    fn tag_map_gives_the_digests() {
        let verdict = parse_fixture("quay-push-digests.json").unwrap();
        assert_eq!(
            images(&verdict),
            [
                "quay.example.com:8443/ops/api:stable",
                "quay.example.com:8443/ops/api:v3.1"
            ]
        );
        assert_eq!(
            verdict.events[1].digest.as_deref(),
            Some("sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf")
        );
        assert_eq!(verdict.events[0].digest, None, "a null digest");
    }

    #[test]
    fn legacy_image_ids_are_not_digests() {
        let verdict = parse_fixture("quay-push-legacy.json").unwrap();
        assert_eq!(images(&verdict), ["quay.io/devtable/ubuntu:latest"]);
        assert_eq!(verdict.events[0].digest, None);
    }

    #[test]
    fn without_docker_url_the_configured_registry_is_used() {
        let settings = Settings {
            quay_registry: "quay.internal:5000".into(),
            ..Settings::for_tests()
        };
        let body = br#"{"repository":"alice/site","updated_tags":["v1"]}"#;
        let verdict = parse_body(body, &settings).unwrap();
        assert_eq!(images(&verdict), ["quay.internal:5000/alice/site:v1"]);
        let verdict = parse_body(body, &Settings::for_tests()).unwrap();
        assert_eq!(images(&verdict), ["quay.io/alice/site:v1"]);
    }

    #[test]
    fn other_events_and_empty_pushes_are_ignored() {
        let verdict = parse_fixture("quay-build-success.json").unwrap();
        assert!(verdict.events.is_empty());
        assert!(verdict.ignored.unwrap().contains("updated_tags"));
        for body in [
            &br#"{"repository":"alice/site","updated_tags":[]}"#[..],
            br#"{"repository":"alice/site","updated_tags":{}}"#,
        ] {
            let verdict = parse_body(body, &Settings::for_tests()).unwrap();
            assert!(verdict.ignored.unwrap().contains("no tag"));
        }
    }

    #[test]
    fn malformed_notifications_are_rejected() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let push = |repository: &str, docker_url: &str, tags: serde_json::Value| {
            serde_json::json!({
                "repository": repository,
                "docker_url": docker_url,
                "updated_tags": tags,
            })
            .to_string()
        };
        for (body, needle) in [
            ("not json".to_string(), "not a Quay notification"),
            ("[]".to_string(), "not a Quay notification"),
            ("{}".to_string(), "no `repository`"),
            (r#"{"repository":""}"#.to_string(), "no `repository`"),
            (
                r#"{"repository":"alice/site","updated_tags":"latest"}"#.to_string(),
                "not a Quay notification",
            ),
            (
                r#"{"repository":"alice/site","updated_tags":[1]}"#.to_string(),
                "not a Quay notification",
            ),
            (
                r#"{"repository":"alice/site","namespace":"bob","updated_tags":["v1"]}"#
                    .to_string(),
                "does not match",
            ),
            (
                push(
                    "Alice/Site",
                    "quay.io/Alice/Site",
                    serde_json::json!(["v1"]),
                ),
                "invalid image",
            ),
            (
                push(
                    "alice/../etc",
                    "quay.io/alice/../etc",
                    serde_json::json!(["v1"]),
                ),
                "invalid image",
            ),
            (
                push(
                    "alice/my site",
                    "quay.io/alice/my site",
                    serde_json::json!(["v1"]),
                ),
                "invalid image",
            ),
            (
                push(
                    "alice/site",
                    "quay.io/alice/site",
                    serde_json::json!(["v 1"]),
                ),
                "invalid tag",
            ),
            (
                push("alice/site", "quay.io/alice/site", serde_json::json!([""])),
                "empty tag",
            ),
            (
                push(
                    "alice/site",
                    "evil host/alice/site",
                    serde_json::json!(["v1"]),
                ),
                "invalid image",
            ),
            (
                push("alice/site", "quay.io/bob/site", serde_json::json!(["v1"])),
                "is not the registry host",
            ),
            (
                push("alice/site", "alice/site", serde_json::json!(["v1"])),
                "is not the registry host",
            ),
            (
                push(
                    "alice/site",
                    "quay.io/alice/site",
                    serde_json::json!({"v1": "sha256:abc"}),
                ),
                "invalid digest",
            ),
            (
                push(
                    "alice/site",
                    "quay.io/alice/site",
                    serde_json::json!({"v1": "reboot"}),
                ),
                "invalid digest",
            ),
            (
                push(
                    "alice/site",
                    "quay.io/alice/site",
                    serde_json::json!({"v1": digest.to_uppercase()}),
                ),
                "invalid digest",
            ),
        ] {
            crate::sources::testing::assert_malformed(
                parse_body(body.as_bytes(), &Settings::for_tests()),
                needle,
                &body,
            );
        }
    }

    #[tokio::test]
    async fn over_http_a_wrong_path_token_is_refused() {
        let base = serve(Settings::for_tests()).await;
        let url = format!("{base}/hooks/quay/guess");
        let (status, answer) = post(&url, &[], &fixture("quay-push.json")).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized"))
        );
    }
}
