//! Notifications of the distribution registry (`registry:2`, Debian's
//! `docker-registry`, and the registries built on it).
//!
//! The registry POSTs an envelope `{"events": [...]}` for every push and
//! pull, of manifests and of blobs, with content type
//! `application/vnd.docker.distribution.events.v1+json` (or `v2`, or plain
//! JSON). Only a manifest push with a tag says "REPO:TAG changed"; every
//! other event is answered with success and ignored, since a registry whose
//! deliveries fail retries them and its queue backs up.
//!
//! Requests are authenticated by the secret token, in the path or as
//! `Authorization: Bearer <token>` (the registry's endpoint configuration
//! can send static headers); the server checks it before this runs.

use serde::Deserialize;

use super::{always_on, json, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::event::ImageEvent;
use crate::image_ref::{validate_digest, ImageRef};

/// Name recorded in history for events from this source.
pub const NAME: &str = "registry";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "distribution registry",
    auth: Auth::Token { bearer: true },
    help: "token in the URL, or POST /hooks/registry with Authorization: Bearer <token>",
    enabled: always_on,
    parse,
};

/// Media types of manifests: what a tag points at.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

#[derive(Debug, Deserialize)]
struct Envelope {
    events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct Event {
    action: Option<String>,
    target: Option<Target>,
    request: Option<RequestInfo>,
    actor: Option<Actor>,
}

#[derive(Debug, Deserialize)]
struct Target {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RequestInfo {
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Actor {
    name: Option<String>,
}

/// Parses a notification envelope into one event per tagged manifest push.
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    let envelope: Envelope = json(request.body, "registry notification")?;
    let mut events = Vec::new();
    for event in envelope.events {
        if let Some(image_event) = image_event(event, settings)? {
            if !events.contains(&image_event) {
                events.push(image_event);
            }
        }
    }
    if events.is_empty() {
        return Ok(Verdict::ignored(
            "no tagged manifest push in this notification",
        ));
    }
    Ok(Verdict::events(events))
}

fn image_event(event: Event, settings: &Settings) -> Result<Option<ImageEvent>, SourceError> {
    let Some(target) = event.target else {
        return Ok(None);
    };
    let is_manifest = target
        .media_type
        .as_deref()
        .is_some_and(|t| MANIFEST_TYPES.contains(&t));
    let tag = target.tag.as_deref().filter(|t| !t.is_empty());
    let (true, Some(tag)) = (event.action.as_deref() == Some("push") && is_manifest, tag) else {
        return Ok(None);
    };
    let repository = target.repository.as_deref().unwrap_or_default();
    let host = settings
        .registry_host
        .as_deref()
        .or(event.request.as_ref().and_then(|r| r.host.as_deref()))
        .ok_or_else(|| {
            SourceError::Malformed(
                "the notification names no registry host (request.host); set registry_host".into(),
            )
        })?;
    let image = ImageRef::from_parts(host, repository, Some(tag))
        .map_err(|e| SourceError::Malformed(format!("notification names an invalid image: {e}")))?;
    let digest = target
        .digest
        .as_deref()
        .map(validate_digest)
        .transpose()
        .map_err(|e| {
            SourceError::Malformed(format!("notification names an invalid digest: {e}"))
        })?;
    Ok(Some(ImageEvent {
        source: NAME,
        image,
        pusher: event.actor.and_then(|a| a.name).filter(|n| !n.is_empty()),
        digest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn parse_fixture(name: &str, settings: &Settings) -> Result<Verdict, SourceError> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse_body(&body, settings)
    }

    fn parse_body(body: &[u8], settings: &Settings) -> Result<Verdict, SourceError> {
        let headers = HeaderMap::new();
        parse(
            &Request {
                headers: &headers,
                body,
            },
            settings,
        )
    }

    #[test]
    fn tagged_manifest_push_is_an_event() {
        let verdict = parse_fixture("registry-push.json", &Settings::for_tests()).unwrap();
        assert_eq!(verdict.events.len(), 1, "{verdict:?}");
        let event = &verdict.events[0];
        assert_eq!(event.image.to_string(), "127.0.0.1:5000/alice/site:latest");
        assert_eq!(
            event.digest.as_deref(),
            Some("sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf")
        );
        assert_eq!(event.pusher.as_deref(), Some("alice"));
        assert_eq!(event.source, "registry");
    }

    #[test]
    fn configured_host_wins_over_the_one_in_the_request() {
        let settings = Settings {
            registry_host: Some("registry.example.com".into()),
            ..Settings::for_tests()
        };
        let verdict = parse_fixture("registry-push.json", &settings).unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "registry.example.com/alice/site:latest"
        );
    }

    #[test]
    fn blobs_pulls_deletes_and_untagged_pushes_are_ignored() {
        let verdict = parse_fixture("registry-other-events.json", &Settings::for_tests()).unwrap();
        assert!(verdict.events.is_empty());
        assert!(verdict.ignored.unwrap().contains("no tagged manifest push"));
        let verdict = parse_body(br#"{"events":[]}"#, &Settings::for_tests()).unwrap();
        assert!(verdict.events.is_empty());
    }

    #[test]
    fn one_push_seen_twice_in_an_envelope_is_one_event() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/registry-push.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let event = value["events"][0].clone();
        let doubled = serde_json::json!({ "events": [event.clone(), event] }).to_string();
        let verdict = parse_body(doubled.as_bytes(), &Settings::for_tests()).unwrap();
        assert_eq!(verdict.events.len(), 1);
    }

    #[test]
    fn malformed_notifications_are_rejected() {
        let settings = Settings::for_tests();
        let push = |repository: &str, tag: &str, digest: &str, host: &str| {
            serde_json::json!({"events": [{
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "repository": repository, "tag": tag, "digest": digest
                },
                "request": {"host": host}
            }]})
            .to_string()
        };
        let good_digest = format!("sha256:{}", "a".repeat(64));
        for (body, needle) in [
            ("not json".to_string(), "not a registry notification"),
            ("{}".to_string(), "not a registry notification"),
            (
                r#"{"events": {}}"#.to_string(),
                "not a registry notification",
            ),
            (
                push("Alice/site", "v1", &good_digest, "127.0.0.1:5000"),
                "invalid image",
            ),
            (
                push("alice/../site", "v1", &good_digest, "127.0.0.1:5000"),
                "invalid image",
            ),
            (
                push("alice/site", "v 1", &good_digest, "127.0.0.1:5000"),
                "invalid tag",
            ),
            (
                push("alice/site", "v1", "sha256:short", "127.0.0.1:5000"),
                "invalid digest",
            ),
            (
                push("alice/site", "v1", &good_digest, "evil host"),
                "invalid image",
            ),
        ] {
            crate::sources::testing::assert_malformed(
                parse_body(body.as_bytes(), &settings),
                needle,
                &body,
            );
        }
    }
}
