//! Harbor webhooks, in both of Harbor's payload formats.
//!
//! A Harbor project's webhook policy POSTs, for each subscribed event, either
//! the *Default* format (`{"type": "PUSH_ARTIFACT", "operator": …,
//! "event_data": {"resources": [...], "repository": {...}}}`) or the
//! *CloudEvents* format: a structured CloudEvent (`{"specversion": "1.0",
//! "id": …, "type": "harbor.artifact.pushed", "operator": …, "data":
//! {"resources": [...], "repository": {...}}}`, content type
//! `application/cloudevents+json`). A binary-mode CloudEvent (`ce-type`,
//! `ce-id` headers around the bare `data`), as a broker relaying Harbor's
//! events may send, is read too. See `tests/fixtures/harbor-*.json`.
//!
//! Harbor signs nothing: the policy's "Auth Header" is sent verbatim as the
//! `Authorization` header, and here it must equal `harbor_auth`. Only an
//! artifact push names a new image; every other event is answered with
//! success and ignored. Harbor names untagged pushes by their digest (the
//! resource's `tag` is the digest); those are ignored too.
//!
//! The registry host is the one Harbor's `resource_url` names (Harbor's
//! external URL), so the pull goes where the push went.

use serde::Deserialize;

use http::HeaderMap;

use super::{json, secret_matches, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::event::ImageEvent;
use crate::image_ref::{split_host, validate_digest, ImageRef};

/// Name recorded in history for events from this source.
pub const NAME: &str = "harbor";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "Harbor",
    auth: Auth::Own {
        headers: check_headers,
    },
    help: "Authorization equal to harbor_auth",
    enabled: |settings| settings.harbor_auth.is_some(),
    parse,
};

/// The event type of an artifact push: Default format, then CloudEvents.
const PUSH_TYPES: &[&str] = &["PUSH_ARTIFACT", "harbor.artifact.pushed"];

/// The body, whichever format: the Default format's fields and the
/// structured CloudEvent's, all optional, told apart by `specversion`.
#[derive(Debug, Deserialize)]
struct Body {
    specversion: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    operator: Option<String>,
    /// Default format. Read only for pushes: other events carry other shapes.
    event_data: Option<serde_json::Value>,
    /// CloudEvents format.
    data: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct EventData {
    #[serde(default)]
    resources: Vec<Resource>,
    repository: Option<Repository>,
}

#[derive(Debug, Deserialize)]
struct Resource {
    digest: Option<String>,
    tag: Option<String>,
    resource_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Repository {
    name: Option<String>,
    namespace: Option<String>,
    repo_full_name: Option<String>,
}

/// One notification, whichever format it came in.
struct Notification {
    kind: String,
    delivery: Option<String>,
    operator: Option<String>,
    data: Option<serde_json::Value>,
}

/// Authenticates a Harbor webhook, then turns an artifact push into one
/// event per tagged resource.
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    check_headers(request.headers, settings)?;
    let notification = read(request)?;
    if !PUSH_TYPES.contains(&notification.kind.as_str()) {
        return Ok(Verdict {
            delivery: notification.delivery,
            ..Verdict::ignored(format!(
                "Harbor event {:?} is not an artifact push",
                notification.kind
            ))
        });
    }
    let data = notification
        .data
        .ok_or_else(|| SourceError::Malformed("the artifact push has no event data".to_string()))?;
    let data: EventData = serde_json::from_value(data).map_err(|e| {
        SourceError::Malformed(format!("the artifact push's event data is malformed: {e}"))
    })?;
    let repository = repository_name(data.repository.as_ref())?;
    let mut events = Vec::new();
    for resource in &data.resources {
        if let Some(event) = image_event(resource, repository, notification.operator.as_deref())? {
            if !events.contains(&event) {
                events.push(event);
            }
        }
    }
    let verdict = if events.is_empty() {
        Verdict::ignored("the push named no tag (an untagged push)")
    } else {
        Verdict::events(events)
    };
    Ok(Verdict {
        delivery: notification.delivery,
        ..verdict
    })
}

/// The `Authorization` header must be the configured value, byte for byte;
/// the whole proof is in the headers, so it is checked before the body is
/// read. With no `harbor_auth` configured the source is off: every request
/// is unauthorized, so an unset secret can never mean "no check".
fn check_headers(headers: &HeaderMap, settings: &Settings) -> Result<(), SourceError> {
    let given = headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match (settings.harbor_auth.as_ref(), given) {
        (Some(expected), Some(given)) if secret_matches(expected, given) => Ok(()),
        _ => Err(SourceError::Unauthorized),
    }
}

/// Reads the notification from a binary-mode CloudEvent (`ce-*` headers,
/// the body is the data), a structured one or the Default format.
fn read(request: &Request<'_>) -> Result<Notification, SourceError> {
    let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(kind) = non_empty(request.header("ce-type")) {
        let data = json(request.body, "Harbor CloudEvents")?;
        return Ok(Notification {
            kind,
            delivery: non_empty(request.header("ce-id")),
            operator: non_empty(request.header("ce-operator")),
            data: Some(data),
        });
    }
    let body: Body = json(request.body, "Harbor webhook")?;
    let kind = non_empty(body.kind.as_deref())
        .ok_or_else(|| SourceError::Malformed("the notification has no `type`".to_string()))?;
    let cloud_event = body.specversion.is_some();
    Ok(Notification {
        kind,
        // Only CloudEvents carry an ID; the Default format has none.
        delivery: non_empty(body.id.as_deref()).filter(|_| cloud_event),
        operator: non_empty(body.operator.as_deref()),
        data: if cloud_event {
            body.data
        } else {
            body.event_data
        },
    })
}

/// `repository.repo_full_name`, which must agree with its namespace and
/// name when they are given (Harbor sends `namespace/name`).
fn repository_name(repository: Option<&Repository>) -> Result<&str, SourceError> {
    let repository = repository.ok_or_else(|| {
        SourceError::Malformed("the artifact push names no `repository`".to_string())
    })?;
    let full_name = repository
        .repo_full_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            SourceError::Malformed("the artifact push has no `repository.repo_full_name`".into())
        })?;
    if let (Some(namespace), Some(name)) = (&repository.namespace, &repository.name) {
        if format!("{namespace}/{name}") != full_name {
            return Err(SourceError::Malformed(format!(
                "`repository.repo_full_name` ({full_name:?}) is not `namespace/name` ({namespace:?}, {name:?})"
            )));
        }
    }
    Ok(full_name)
}

/// The event for one pushed resource, `None` when it has no tag.
fn image_event(
    resource: &Resource,
    repository: &str,
    operator: Option<&str>,
) -> Result<Option<ImageEvent>, SourceError> {
    // An untagged push is named by its digest, in `tag` as well.
    let tag = resource
        .tag
        .as_deref()
        .filter(|t| !t.is_empty() && !t.starts_with("sha256:"));
    let Some(tag) = tag else {
        return Ok(None);
    };
    let location = resource.resource_url.as_deref().unwrap_or_default();
    let (host, path) = split_host(location).ok_or_else(|| {
        SourceError::Malformed(format!(
            "the resource's `resource_url` ({location:?}) names no registry host"
        ))
    })?;
    // `host/repository:tag`; a trailing '/' in Harbor's external URL doubles
    // the separator.
    if path.trim_start_matches('/') != format!("{repository}:{tag}") {
        return Err(SourceError::Malformed(format!(
            "the resource's `resource_url` ({location:?}) is not {repository}:{tag}"
        )));
    }
    let image = ImageRef::from_parts(host, repository, Some(tag))
        .map_err(|e| SourceError::Malformed(format!("the push names an invalid image: {e}")))?;
    let digest = resource
        .digest
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(validate_digest)
        .transpose()
        .map_err(|e| SourceError::Malformed(format!("the push names an invalid digest: {e}")))?;
    Ok(Some(ImageEvent {
        source: NAME,
        image,
        pusher: operator.map(str::to_string),
        digest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;
    use crate::sources::testing::{fixture, fixture_json, post, run, serve};

    const AUTH: &str = "Bearer harbor-s3cret";

    fn settings() -> Settings {
        Settings {
            harbor_auth: Some(Secret::for_tests(AUTH)),
            ..Settings::for_tests()
        }
    }

    fn parse_with(
        body: &[u8],
        headers: &[(&str, &str)],
        settings: &Settings,
    ) -> Result<Verdict, SourceError> {
        run(parse, headers, body, settings)
    }

    fn parse_body(body: &[u8]) -> Result<Verdict, SourceError> {
        parse_with(body, &[("authorization", AUTH)], &settings())
    }

    #[test]
    fn default_format_push_is_an_event() {
        let verdict = parse_body(&fixture("harbor-push-default.json")).unwrap();
        assert_eq!(verdict.events.len(), 1, "{verdict:?}");
        let event = &verdict.events[0];
        assert_eq!(
            event.image.to_string(),
            "hub.harbor.com/test-webhook/debian:latest"
        );
        assert_eq!(
            event.digest.as_deref(),
            Some("sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8")
        );
        assert_eq!(event.pusher.as_deref(), Some("admin"));
        assert_eq!(event.source, "harbor");
        assert_eq!(verdict.delivery, None, "the Default format has no ID");
        assert_eq!(verdict.ignored, None);
    }

    #[test]
    fn cloudevents_push_is_an_event_with_its_id_as_delivery() {
        let verdict = parse_body(&fixture("harbor-push-cloudevents.json")).unwrap();
        assert_eq!(verdict.events.len(), 1, "{verdict:?}");
        let event = &verdict.events[0];
        assert_eq!(
            event.image.to_string(),
            "harbor.example.com:8443/team/backend/api:v1.2.0"
        );
        assert_eq!(
            event.digest.as_deref(),
            Some("sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c")
        );
        assert_eq!(event.pusher.as_deref(), Some("robot$team+ci"));
        assert_eq!(
            verdict.delivery.as_deref(),
            Some("4b2f89a6-548d-4c12-9993-a1f5790b97d2")
        );
    }

    #[test]
    fn binary_mode_cloudevent_is_read_from_its_headers() {
        let data = fixture_json("harbor-push-cloudevents.json")["data"].to_string();
        let verdict = parse_with(
            data.as_bytes(),
            &[
                ("authorization", AUTH),
                ("ce-specversion", "1.0"),
                ("ce-type", "harbor.artifact.pushed"),
                ("ce-id", "binary-1"),
                ("ce-operator", "alice"),
            ],
            &settings(),
        )
        .unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "harbor.example.com:8443/team/backend/api:v1.2.0"
        );
        assert_eq!(verdict.events[0].pusher.as_deref(), Some("alice"));
        assert_eq!(verdict.delivery.as_deref(), Some("binary-1"));
    }

    #[test]
    fn several_tagged_resources_are_several_events() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let body = serde_json::json!({
            "type": "PUSH_ARTIFACT",
            "event_data": {
                "resources": [
                    {"digest": digest, "tag": "v1", "resource_url": "harbor.local/library/app:v1"},
                    {"digest": digest, "tag": "stable", "resource_url": "harbor.local/library/app:stable"},
                    {"digest": digest, "tag": "v1", "resource_url": "harbor.local/library/app:v1"}
                ],
                "repository": {"name": "app", "namespace": "library", "repo_full_name": "library/app"}
            }
        })
        .to_string();
        let verdict = parse_body(body.as_bytes()).unwrap();
        let images: Vec<_> = verdict.events.iter().map(|e| e.image.to_string()).collect();
        assert_eq!(
            images,
            [
                "harbor.local/library/app:v1",
                "harbor.local/library/app:stable"
            ]
        );
        assert!(verdict.events.iter().all(|e| e.pusher.is_none()));
    }

    #[test]
    fn a_dotless_harbor_host_is_still_the_registry() {
        let body = serde_json::json!({
            "type": "PUSH_ARTIFACT",
            "event_data": {
                "resources": [{"tag": "v1", "resource_url": "harbor/library/app:v1"}],
                "repository": {"repo_full_name": "library/app"}
            }
        })
        .to_string();
        let verdict = parse_body(body.as_bytes()).unwrap();
        assert_eq!(verdict.events[0].image.to_string(), "harbor/library/app:v1");
        assert_eq!(verdict.events[0].digest, None);
    }

    #[test]
    fn wrong_or_missing_authorization_is_unauthorized() {
        let body = fixture("harbor-push-default.json");
        for headers in [
            &[][..],
            &[("authorization", "Bearer harbor-s3cre")][..],
            &[("authorization", "harbor-s3cret")][..],
            &[("authorization", "Bearer harbor-s3cret ")][..],
            &[("authorization", "")][..],
            &[("x-harbor-auth", AUTH)][..],
        ] {
            assert!(
                matches!(
                    parse_with(&body, headers, &settings()),
                    Err(SourceError::Unauthorized)
                ),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn without_harbor_auth_every_request_is_unauthorized() {
        let body = fixture("harbor-push-default.json");
        for headers in [
            &[][..],
            &[("authorization", "")][..],
            &[("authorization", AUTH)][..],
        ] {
            assert!(matches!(
                parse_with(&body, headers, &Settings::for_tests()),
                Err(SourceError::Unauthorized)
            ));
        }
    }

    #[test]
    fn authentication_comes_before_parsing() {
        assert!(matches!(
            parse_with(b"not json", &[], &settings()),
            Err(SourceError::Unauthorized)
        ));
    }

    #[test]
    fn other_events_and_untagged_pushes_are_ignored() {
        let verdict = parse_body(&fixture("harbor-delete-default.json")).unwrap();
        assert!(verdict.events.is_empty());
        assert!(verdict.ignored.unwrap().contains("DELETE_ARTIFACT"));

        let verdict = parse_body(&fixture("harbor-push-untagged.json")).unwrap();
        assert!(verdict.events.is_empty());
        assert!(verdict.ignored.unwrap().contains("untagged"));

        // Other events' data need not look like a push's.
        for body in [
            r#"{"type":"REPLICATION","event_data":{"replication":{"job_status":"Success"}}}"#,
            r#"{"type":"QUOTA_EXCEED","event_data":"whatever"}"#,
            r#"{"specversion":"1.0","id":"x","type":"harbor.scan.completed","data":[1,2]}"#,
            r#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[],"repository":{"repo_full_name":"a/b"}}}"#,
        ] {
            let verdict = parse_body(body.as_bytes()).unwrap();
            assert!(verdict.events.is_empty(), "{body}");
            assert!(verdict.ignored.is_some(), "{body}");
        }
        let verdict = parse_body(
            br#"{"specversion":"1.0","id":"d-7","type":"harbor.artifact.deleted","data":{}}"#,
        )
        .unwrap();
        assert_eq!(
            verdict.delivery.as_deref(),
            Some("d-7"),
            "ignored deliveries are remembered too"
        );
    }

    #[test]
    fn malformed_notifications_are_rejected() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let push = |repo: &str, tag: &str, url: &str, digest: &str| {
            serde_json::json!({
                "type": "PUSH_ARTIFACT",
                "event_data": {
                    "resources": [{"digest": digest, "tag": tag, "resource_url": url}],
                    "repository": {"repo_full_name": repo}
                }
            })
            .to_string()
        };
        for (body, needle) in [
            ("not json".to_string(), "not a Harbor webhook"),
            ("[]".to_string(), "not a Harbor webhook"),
            ("{}".to_string(), "no `type`"),
            (r#"{"type":42}"#.to_string(), "not a Harbor webhook"),
            (r#"{"type":"PUSH_ARTIFACT"}"#.to_string(), "no event data"),
            (
                r#"{"type":"PUSH_ARTIFACT","event_data":{"resources":{}}}"#.to_string(),
                "malformed",
            ),
            (
                r#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[]}}"#.to_string(),
                "no `repository`",
            ),
            (
                r#"{"type":"PUSH_ARTIFACT","event_data":{"repository":{"name":"app"}}}"#
                    .to_string(),
                "repo_full_name",
            ),
            (
                r#"{"type":"PUSH_ARTIFACT","event_data":{"repository":{"repo_full_name":"library/app","namespace":"mallory","name":"app"}}}"#
                    .to_string(),
                "not `namespace/name`",
            ),
            (
                push("Library/App", "v1", "harbor.local/Library/App:v1", &digest),
                "invalid image",
            ),
            (
                push("library/../etc", "v1", "harbor.local/library/../etc:v1", &digest),
                "invalid image",
            ),
            (
                push("library/my app", "v1", "harbor.local/library/my app:v1", &digest),
                "invalid image",
            ),
            (
                push("library/app", "v 1", "harbor.local/library/app:v 1", &digest),
                "invalid tag",
            ),
            (
                push("library/app", "v1", "evil host/library/app:v1", &digest),
                "invalid image",
            ),
            (
                push("library/app", "v1", "harbor.local/library/app:v1", "sha256:abc"),
                "invalid digest",
            ),
            (
                push("library/app", "v1", "harbor.local/library/app:v1", "md5:00"),
                "invalid digest",
            ),
            (push("library/app", "v1", "", &digest), "no registry host"),
            (
                push("library/app", "v1", "library/app:v1", &digest),
                "is not library/app:v1",
            ),
            (
                push("library/app", "v1", "harbor.local/library/other:v1", &digest),
                "is not library/app:v1",
            ),
        ] {
            crate::sources::testing::assert_malformed(parse_body(body.as_bytes()), needle, &body);
        }
    }

    #[tokio::test]
    async fn over_http_a_push_is_dispatched_once_and_forgeries_refused() {
        let base = serve(settings()).await;
        let url = format!("{base}/hooks/harbor");
        let body = fixture("harbor-push-cloudevents.json");
        let headers = [
            ("content-type", "application/cloudevents+json"),
            ("authorization", AUTH),
        ];
        let (status, answer) = post(&url, &headers, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["reason"].as_str().unwrap().contains(
                "no running container uses harbor.example.com:8443/team/backend/api:v1.2.0"
            ),
            "{answer}"
        );
        let (_, answer) = post(&url, &headers, &body).await;
        assert_eq!(
            answer["reason"],
            "delivery 4b2f89a6-548d-4c12-9993-a1f5790b97d2 was already received"
        );

        for forged in [&[][..], &[("authorization", "Bearer guess")][..]] {
            let (status, answer) = post(&url, forged, &body).await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (401, Some("unauthorized"))
            );
        }
        // Harbor's "Test Endpoint" button: a bare POST, no body, no header.
        let (status, _) = post(&url, &[], b"").await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn over_http_the_route_is_off_without_harbor_auth() {
        let base = serve(Settings::for_tests()).await;
        let (status, answer) = post(
            &format!("{base}/hooks/harbor"),
            &[("authorization", AUTH)],
            &fixture("harbor-push-default.json"),
        )
        .await;
        assert_eq!(status, 401, "{answer}");
    }
}
