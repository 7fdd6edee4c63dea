//! Azure Container Registry webhooks.
//!
//! An ACR webhook POSTs one event per request (`tests/fixtures/acr-*.json`):
//! `id`, `timestamp`, `action` (`push`, `delete`, `quarantine`,
//! `chart_push`, `chart_delete`), `target` (`mediaType`, `digest`,
//! `repository`, `tag`, …) and, for image events, `request` (`host`, …).
//! Only a tagged `push` names a new image; every other action, and a push by
//! digest alone, is answered with success and ignored.
//!
//! ACR signs nothing, so the request is authenticated by the secret token in
//! its URL (checked by the server). The registry host is `request.host`, the
//! name the pusher used (`myregistry.azurecr.io`); the event `id` is the
//! delivery ID, so a resent event is dropped.

use serde::Deserialize;

use super::{always_on, json, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::event::ImageEvent;
use crate::image_ref::{validate_digest, ImageRef};

/// Name recorded in history for events from this source.
pub const NAME: &str = "acr";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "Azure Container Registry",
    auth: Auth::Token { bearer: false },
    help: "token in the URL",
    enabled: always_on,
    parse,
};

#[derive(Debug, Deserialize)]
struct Payload {
    id: Option<String>,
    action: Option<String>,
    target: Option<Target>,
    request: Option<RequestInfo>,
}

#[derive(Debug, Deserialize)]
struct Target {
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RequestInfo {
    host: Option<String>,
}

/// Parses an ACR webhook; a tagged push is one event.
pub fn parse(request: &Request<'_>, _settings: &Settings) -> Result<Verdict, SourceError> {
    let payload: Payload = json(request.body, "Microsoft Azure Container Registry webhook")?;
    let delivery = payload.id.filter(|id| !id.is_empty());
    let verdict = match payload.action.as_deref() {
        None | Some("") => {
            return Err(SourceError::Malformed(
                "the webhook has no `action`".to_string(),
            ))
        }
        Some("push") => push(payload.target, payload.request)?,
        Some(action) => Verdict::ignored(format!("ACR action {action:?} is not an image push")),
    };
    Ok(Verdict {
        delivery,
        ..verdict
    })
}

fn push(target: Option<Target>, request: Option<RequestInfo>) -> Result<Verdict, SourceError> {
    let target =
        target.ok_or_else(|| SourceError::Malformed("the push has no `target`".to_string()))?;
    let Some(tag) = target.tag.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(Verdict::ignored("the push named no tag (a push by digest)"));
    };
    let host = request
        .and_then(|r| r.host)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            SourceError::Malformed("the push names no registry host (`request.host`)".to_string())
        })?;
    let repository = target.repository.as_deref().unwrap_or_default();
    let image = ImageRef::from_parts(&host, repository, Some(tag))
        .map_err(|e| SourceError::Malformed(format!("the push names an invalid image: {e}")))?;
    let digest = target
        .digest
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(validate_digest)
        .transpose()
        .map_err(|e| SourceError::Malformed(format!("the push names an invalid digest: {e}")))?;
    Ok(Verdict::events(vec![ImageEvent {
        source: NAME,
        image,
        pusher: None,
        digest,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{fixture, post, run, serve};

    fn parse_body(body: &[u8]) -> Result<Verdict, SourceError> {
        run(parse, &[], body, &Settings::for_tests())
    }

    fn parse_fixture(name: &str) -> Result<Verdict, SourceError> {
        parse_body(&fixture(name))
    }

    #[test]
    fn tagged_push_is_an_event_with_the_event_id_as_delivery() {
        let verdict = parse_fixture("acr-push.json").unwrap();
        assert_eq!(verdict.events.len(), 1, "{verdict:?}");
        let event = &verdict.events[0];
        assert_eq!(
            event.image.to_string(),
            "myregistry.azurecr.io/hello-world:v1"
        );
        assert_eq!(
            event.digest.as_deref(),
            Some("sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d")
        );
        assert_eq!(event.source, "acr");
        assert_eq!(event.pusher, None);
        assert_eq!(
            verdict.delivery.as_deref(),
            Some("cb8c3971-9adc-488b-bdd8-43cbb4974ff5")
        );
        assert_eq!(verdict.ignored, None);
    }

    #[test]
    fn nested_repositories_keep_their_path() {
        let body = br#"{"id":"1","action":"push","target":{"repository":"team/app/api","tag":"2.0"},"request":{"host":"myregistry.azurecr.io"}}"#;
        let verdict = parse_body(body).unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "myregistry.azurecr.io/team/app/api:2.0"
        );
        assert_eq!(verdict.events[0].digest, None);
    }

    #[test]
    fn other_actions_and_pushes_by_digest_are_ignored() {
        for (fixture, needle) in [
            ("acr-delete.json", "\"delete\""),
            ("acr-chart-push.json", "\"chart_push\""),
        ] {
            let verdict = parse_fixture(fixture).unwrap();
            assert!(verdict.events.is_empty(), "{fixture}");
            assert!(verdict.ignored.unwrap().contains(needle), "{fixture}");
            assert!(verdict.delivery.is_some(), "{fixture}: still remembered");
        }
        for body in [
            &br#"{"id":"2","action":"quarantine","target":{"repository":"a","tag":"1"}}"#[..],
            br#"{"id":"3","action":"ping"}"#,
            br#"{"id":"4","action":"push","target":{"repository":"hello-world","digest":"sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d"},"request":{"host":"r.azurecr.io"}}"#,
            br#"{"id":"5","action":"push","target":{"repository":"hello-world","tag":""},"request":{"host":"r.azurecr.io"}}"#,
        ] {
            let verdict = parse_body(body).unwrap();
            assert!(verdict.events.is_empty());
            assert!(verdict.ignored.is_some(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn malformed_webhooks_are_rejected() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let push = |repository: &str, tag: &str, digest: &str, host: &str| {
            serde_json::json!({
                "id": "x",
                "action": "push",
                "target": {"repository": repository, "tag": tag, "digest": digest},
                "request": {"host": host}
            })
            .to_string()
        };
        for (body, needle) in [
            (
                "not json".to_string(),
                "not a Microsoft Azure Container Registry",
            ),
            ("[]".to_string(), "not a Microsoft Azure Container Registry"),
            ("{}".to_string(), "no `action`"),
            (
                r#"{"action":7}"#.to_string(),
                "not a Microsoft Azure Container Registry",
            ),
            (r#"{"action":"push"}"#.to_string(), "no `target`"),
            (
                r#"{"action":"push","target":{"repository":"a","tag":"1"}}"#.to_string(),
                "request.host",
            ),
            (push("", "v1", &digest, "r.azurecr.io"), "invalid image"),
            (
                push("Hello-World", "v1", &digest, "r.azurecr.io"),
                "invalid image",
            ),
            (
                push("hello/../world", "v1", &digest, "r.azurecr.io"),
                "invalid image",
            ),
            (
                push("hello world", "v1", &digest, "r.azurecr.io"),
                "invalid image",
            ),
            (
                push("hello-world", "v1;reboot", &digest, "r.azurecr.io"),
                "invalid tag",
            ),
            (
                push("hello-world", "v1", "sha256:xxxx", "r.azurecr.io"),
                "invalid digest",
            ),
            (
                push("hello-world", "v1", &digest, "evil host"),
                "invalid image",
            ),
            (
                push("hello-world", "v1", &digest, "r.azurecr.io/x"),
                "invalid image",
            ),
        ] {
            crate::sources::testing::assert_malformed(parse_body(body.as_bytes()), needle, &body);
        }
    }

    #[tokio::test]
    async fn over_http_a_wrong_path_token_is_refused() {
        let base = serve(Settings::for_tests()).await;
        let url = format!("{base}/hooks/acr/guess");
        let (status, answer) = post(&url, &[], &fixture("acr-push.json")).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized"))
        );
    }
}
