//! Docker Hub webhooks.
//!
//! Docker Hub POSTs JSON like the fixtures in `tests/fixtures/dockerhub-*.json`
//! and signs nothing, so the request is authenticated by the secret token in
//! its URL (checked by the server before this module sees the body). Here we
//! only parse the payload and apply the owner gate: the pushed repository's
//! namespace must be one of the configured owners.
//!
//! The payload's `callback_url` is deliberately ignored: calling a URL chosen
//! by the sender would let anyone who can reach us make us send requests.

use serde::Deserialize;

use super::{always_on, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::event::ImageEvent;
use crate::image_ref::ImageRef;

/// Name recorded in history for events from this source.
pub const NAME: &str = "dockerhub";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "Docker Hub",
    auth: Auth::Token { bearer: false },
    help: "token in the URL",
    enabled: always_on,
    parse,
};

#[derive(Debug, Deserialize)]
struct Payload {
    push_data: Option<PushData>,
    repository: Option<Repository>,
}

#[derive(Debug, Deserialize)]
struct PushData {
    /// Seconds since the epoch; Docker Hub has sent both integers and floats.
    #[allow(dead_code)]
    pushed_at: Option<f64>,
    pusher: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Repository {
    repo_name: Option<String>,
    namespace: Option<String>,
}

/// Parses a Docker Hub webhook into an event for the configured registry
/// (`docker.io` unless a stand-in is configured) and checks that its
/// namespace is one of the owners.
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    let event = parse_body(request.body, &settings.dockerhub_registry, &settings.owners)?;
    Ok(Verdict::events(vec![event]))
}

fn parse_body(body: &[u8], registry: &str, owners: &[String]) -> Result<ImageEvent, SourceError> {
    let payload: Payload = serde_json::from_slice(body).map_err(|e| {
        SourceError::Malformed(format!("body is not a Docker Hub webhook payload: {e}"))
    })?;
    let repository = payload
        .repository
        .ok_or_else(|| SourceError::Malformed("payload has no `repository` object".to_string()))?;
    let repo_name = repository
        .repo_name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            SourceError::Malformed("payload has no `repository.repo_name`".to_string())
        })?;
    let push_data = payload.push_data;
    let tag = push_data.as_ref().and_then(|p| p.tag.as_deref());

    // Docker Hub's repo_name is `namespace/name`, or just `name` for official
    // images, whose namespace is `library`.
    let namespace = match repo_name.split_once('/') {
        Some((namespace, _)) => namespace,
        None => "library",
    };
    if let Some(claimed) = repository.namespace.as_deref() {
        if !claimed.is_empty() && claimed != namespace {
            return Err(SourceError::Malformed(format!(
                "`repository.namespace` ({claimed:?}) does not match `repository.repo_name` ({repo_name:?})"
            )));
        }
    }
    let image = ImageRef::from_parts(registry, &repo_name, tag)
        .map_err(|e| SourceError::Malformed(format!("payload names an invalid image: {e}")))?;
    if !owners.iter().any(|owner| owner == namespace) {
        return Err(SourceError::Forbidden(format!(
            "namespace {namespace:?} is not an allowed owner; add it to OWNER to accept its pushes"
        )));
    }
    Ok(ImageEvent {
        source: NAME,
        image,
        pusher: push_data.and_then(|p| p.pusher),
        digest: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn documented_payload_with_integer_pushed_at() {
        let event = parse_body(
            &fixture("dockerhub-documented.json"),
            "docker.io",
            &owners(&["svendowideit"]),
        )
        .unwrap();
        assert_eq!(
            event.image.to_string(),
            "docker.io/svendowideit/testhook:latest"
        );
        assert_eq!(event.pusher.as_deref(), Some("trustedbuilder"));
        assert_eq!(event.source, "dockerhub");
    }

    #[test]
    fn float_pushed_at_and_images_list() {
        let event = parse_body(
            &fixture("dockerhub-float-pushed-at.json"),
            "127.0.0.1:5000",
            &owners(&["alice"]),
        )
        .unwrap();
        assert_eq!(event.image.to_string(), "127.0.0.1:5000/alice/site:v2");
    }

    #[test]
    fn missing_tag_and_images_means_latest() {
        let event = parse_body(
            &fixture("dockerhub-minimal.json"),
            "docker.io",
            &owners(&["alice"]),
        )
        .unwrap();
        assert_eq!(event.image.to_string(), "docker.io/alice/site:latest");
        assert_eq!(event.pusher, None);
    }

    #[test]
    fn official_image_namespace_is_library() {
        let body = br#"{"repository":{"repo_name":"nginx"},"push_data":{"tag":"1"}}"#;
        assert!(matches!(
            parse_body(body, "docker.io", &owners(&["alice"])),
            Err(SourceError::Forbidden(_))
        ));
        let event = parse_body(body, "docker.io", &owners(&["library"])).unwrap();
        assert_eq!(event.image.to_string(), "docker.io/library/nginx:1");
    }

    #[test]
    fn foreign_namespace_is_forbidden() {
        let err = parse_body(
            &fixture("dockerhub-documented.json"),
            "docker.io",
            &owners(&["alice", "bob"]),
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::Forbidden(ref m) if m.contains("svendowideit")));
    }

    #[test]
    fn namespace_must_agree_with_repo_name() {
        let body = br#"{"repository":{"repo_name":"mallory/site","namespace":"alice"}}"#;
        assert!(matches!(
            parse_body(body, "docker.io", &owners(&["alice", "mallory"])),
            Err(SourceError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_bodies_are_rejected_with_a_reason() {
        let alice = owners(&["alice"]);
        for (body, needle) in [
            (&b"not json"[..], "not a Docker Hub webhook"),
            (b"[]", "not a Docker Hub webhook"),
            (b"{}", "no `repository` object"),
            (br#"{"repository":{}}"#, "repository.repo_name"),
            (
                br#"{"repository":{"repo_name":""}}"#,
                "repository.repo_name",
            ),
            (
                br#"{"repository":{"repo_name":42}}"#,
                "not a Docker Hub webhook",
            ),
            (
                br#"{"repository":{"repo_name":"alice/Site"}}"#,
                "invalid image",
            ),
            (
                br#"{"repository":{"repo_name":"alice/../etc"}}"#,
                "invalid image",
            ),
            (
                br#"{"repository":{"repo_name":"alice/site"},"push_data":{"tag":"x;reboot"}}"#,
                "invalid tag",
            ),
            (
                br#"{"repository":{"repo_name":"alice/site"},"push_data":{"pushed_at":"soon"}}"#,
                "not a Docker Hub webhook",
            ),
        ] {
            match parse_body(body, "docker.io", &alice) {
                Err(SourceError::Malformed(message)) => assert!(
                    message.contains(needle),
                    "{:?}: {message:?} lacks {needle:?}",
                    String::from_utf8_lossy(body)
                ),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}
