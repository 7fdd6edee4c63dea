//! GitLab: an image pushed to the GitLab container registry, as told by the
//! CI job that pushed it.
//!
//! GitLab sends no webhook when an image is pushed to its container
//! registry, in any edition: its webhook events (push, tag push, issue,
//! comment, merge request, wiki, pipeline, job, deployment, member,
//! subgroup, feature flag, release, emoji, resource access token…) never
//! name a pushed image, and package events were only ever proposed
//! (gitlab-org/gitlab#327337). Self-managed administrators can have the
//! registry itself notify dockhook: that is the distribution registry's
//! format, for `/hooks/registry`. For everyone else, including GitLab.com,
//! the job that pushes the image posts it here:
//!
//! ```sh
//! curl --fail --header "X-Gitlab-Token: $DOCKHOOK_TOKEN" \
//!   --header "X-Gitlab-Event-UUID: job-$CI_JOB_ID" \
//!   --header "Content-Type: application/json" \
//!   --data "{\"image\": \"$CI_REGISTRY_IMAGE\", \"tag\": \"$CI_COMMIT_REF_SLUG\", \"digest\": \"$DIGEST\"}" \
//!   https://dockhook.example.com/hooks/gitlab
//! ```
//!
//! - `image` (required): the repository on `gitlab_registry`
//!   (`registry.gitlab.com` by default), as its path (`group/project/name`)
//!   or with the registry in front (`$CI_REGISTRY_IMAGE`). Only images on
//!   that registry can be named. GitLab lowercases registry paths; a path
//!   with capitals (`$CI_PROJECT_PATH` may have some) is refused.
//! - `tag` (optional): `latest` without it.
//! - `digest` (optional): the manifest digest the pull must bring, as
//!   `docker buildx build --metadata-file` or `docker push` report it.
//!
//!   An empty `tag` or `digest` is an error rather than a default: an unset
//!   CI variable is the usual cause (as for the generic webhook).
//! - `pusher` (optional, informational); other fields are ignored.
//!
//! The request is authenticated by `X-Gitlab-Token`, compared in constant
//! time with `gitlab_token` (GitLab's own webhooks send their secret token
//! the same way). The delivery ID is `X-Gitlab-Event-UUID`, else
//! `Idempotency-Key` (GitLab 17.4+ keeps it across retries): a delivery seen
//! before is dropped by the server. A genuine GitLab webhook pointed here
//! (its body has `object_kind`) is answered as ignored, naming its
//! `X-Gitlab-Event`, rather than refused, since GitLab disables webhooks
//! whose deliveries keep failing.

use serde::Deserialize;

use http::HeaderMap;

use super::{json, secret_matches, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::event::ImageEvent;
use crate::image_ref::{validate_digest, ImageRef};

/// Name recorded in history for events from this source.
pub const NAME: &str = "gitlab";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "GitLab",
    auth: Auth::Own {
        headers: check_headers,
    },
    help: "X-Gitlab-Token equal to gitlab_token",
    enabled: |settings| settings.gitlab_token.is_some(),
    parse,
};

#[derive(Debug, Deserialize)]
struct Payload {
    /// Present in every webhook payload GitLab itself sends.
    object_kind: Option<serde_json::Value>,
    image: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
    pusher: Option<String>,
}

/// Authenticates a request by its GitLab token and turns the image a CI job
/// names into an event on the configured GitLab registry.
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    check_headers(request.headers, settings)?;
    let verdict = parse_body(request, &settings.gitlab_registry)?;
    Ok(Verdict {
        delivery: ["x-gitlab-event-uuid", "idempotency-key"]
            .iter()
            .find_map(|name| request.header(name))
            .filter(|id| !id.is_empty())
            .map(String::from),
        ..verdict
    })
}

/// The `X-Gitlab-Token` header must be `gitlab_token`, byte for byte; the
/// whole proof is in the headers, so it is checked before the body is read.
/// Off until `gitlab_token` is set: without a token no request can prove
/// itself, so each is refused as unauthenticated (401), the same answer a
/// forged one gets; the route itself stays registered.
fn check_headers(headers: &HeaderMap, settings: &Settings) -> Result<(), SourceError> {
    let token = settings
        .gitlab_token
        .as_ref()
        .ok_or(SourceError::Unauthorized)?;
    let given = headers
        .get("x-gitlab-token")
        .ok_or(SourceError::Unauthorized)?;
    if !secret_matches(token, given.as_bytes()) {
        return Err(SourceError::Unauthorized);
    }
    Ok(())
}

fn parse_body(request: &Request<'_>, registry: &str) -> Result<Verdict, SourceError> {
    let payload: Payload = json(request.body, "GitLab image push")?;
    if payload.object_kind.is_some() {
        let event = request.header("x-gitlab-event").unwrap_or("a GitLab event");
        return Ok(Verdict::ignored(format!(
            "{event:?} names no pushed image (GitLab has no registry push event); \
             post {{\"image\", \"tag\", \"digest\"}} from the CI job that pushes instead"
        )));
    }
    let malformed = |message: String| SourceError::Malformed(message);
    let image = payload
        .image
        .as_deref()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| malformed("the body has no `image`".into()))?;
    let path = image
        .strip_prefix(registry)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(image);
    let tag = match payload.tag.as_deref() {
        Some("") => {
            return Err(malformed(
                "`tag` is empty; leave it out for `latest`, or check the CI variable".into(),
            ))
        }
        tag => tag,
    };
    let image = ImageRef::from_parts(registry, path, tag).map_err(|e| {
        malformed(format!(
            "the body names an invalid image: {e}; `image` is a repository on {registry}, without tag"
        ))
    })?;
    let digest = payload
        .digest
        .as_deref()
        .map(validate_digest)
        .transpose()
        .map_err(|e| malformed(format!("`digest` is not a valid digest: {e}")))?;
    Ok(Verdict::events(vec![ImageEvent {
        source: NAME,
        image,
        pusher: payload.pusher.filter(|p| !p.is_empty()),
        digest,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{fixture, post, run, serve};

    const TOKEN: &str = "glpat-not-a-real-token-but-long-enough";
    const DIGEST: &str = "sha256:9d96d9d5b1addd7e7e6119a23b1e5b5f68545312bfecb21d1cdc6af22b8628b8";

    fn settings() -> Settings {
        Settings {
            gitlab_token: Some(crate::settings::Secret::for_tests(TOKEN)),
            ..Settings::for_tests()
        }
    }

    fn deliver(body: &[u8]) -> Result<Verdict, SourceError> {
        run(
            parse,
            &[("x-gitlab-token", TOKEN), ("x-gitlab-event-uuid", "job-42")],
            body,
            &settings(),
        )
    }

    fn event(body: &str) -> ImageEvent {
        let verdict = deliver(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(verdict.events.len(), 1, "{verdict:?}");
        verdict.events.into_iter().next().unwrap()
    }

    #[test]
    fn ci_body_is_an_event_on_the_gitlab_registry() {
        let verdict = deliver(&fixture("gitlab-ci-push.json")).unwrap();
        assert_eq!(verdict.delivery.as_deref(), Some("job-42"));
        let event = &verdict.events[0];
        assert_eq!(event.image.to_string(), "registry.gitlab.com/alice/site:v2");
        assert_eq!(event.digest.as_deref(), Some(DIGEST));
        assert_eq!(event.pusher.as_deref(), Some("alice"));
        assert_eq!(event.source, "gitlab");
    }

    #[test]
    fn image_as_path_or_with_the_registry_and_default_tag() {
        let registry_image = r#"{"image":"registry.gitlab.com/group/sub/project","tag":"1.2"}"#;
        assert_eq!(
            event(registry_image).image.to_string(),
            "registry.gitlab.com/group/sub/project:1.2"
        );
        let event = event(r#"{"image":"alice/site"}"#);
        assert_eq!(
            event.image.to_string(),
            "registry.gitlab.com/alice/site:latest"
        );
        assert_eq!(event.digest, None);
    }

    #[test]
    fn configured_registry_and_idempotency_key() {
        let settings = Settings {
            gitlab_registry: "gitlab.example.com:5050".into(),
            ..settings()
        };
        let verdict = run(
            parse,
            &[
                ("x-gitlab-token", TOKEN),
                ("idempotency-key", "retry-safe-1"),
            ],
            br#"{"image":"gitlab.example.com:5050/ops/api","tag":"v7"}"#,
            &settings,
        )
        .unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "gitlab.example.com:5050/ops/api:v7"
        );
        assert_eq!(verdict.delivery.as_deref(), Some("retry-safe-1"));
    }

    #[test]
    fn only_images_on_the_gitlab_registry_can_be_named() {
        // Another registry's name is read as a path on the GitLab registry.
        let event = event(r#"{"image":"ghcr.io/mallory/site","tag":"v1"}"#);
        assert_eq!(event.image.registry, "registry.gitlab.com");
        assert_eq!(event.image.repository, "ghcr.io/mallory/site");
    }

    #[test]
    fn wrong_or_missing_token_is_unauthorized() {
        let body = fixture("gitlab-ci-push.json");
        let longer = format!("{TOKEN}x");
        for headers in [
            vec![],
            vec![("x-gitlab-token", "")],
            vec![("x-gitlab-token", &TOKEN[..TOKEN.len() - 1])],
            vec![("x-gitlab-token", longer.as_str())],
            vec![("authorization", TOKEN)],
        ] {
            assert!(
                matches!(
                    run(parse, &headers, &body, &settings()),
                    Err(SourceError::Unauthorized)
                ),
                "{headers:?}"
            );
        }
        let unread = run(
            parse,
            &[("x-gitlab-token", "guess")],
            b"not json",
            &settings(),
        );
        assert!(
            matches!(unread, Err(SourceError::Unauthorized)),
            "token before body"
        );
        let off = run(
            parse,
            &[("x-gitlab-token", TOKEN)],
            &body,
            &Settings::for_tests(),
        );
        assert!(
            matches!(off, Err(SourceError::Unauthorized)),
            "off without a token"
        );
    }

    #[test]
    fn gitlab_webhooks_are_ignored_with_advice() {
        let verdict = run(
            parse,
            &[
                ("x-gitlab-token", TOKEN),
                ("x-gitlab-event", "Push Hook"),
                (
                    "x-gitlab-event-uuid",
                    "13792a34-cac6-4fda-95a8-c58e00a3954e",
                ),
            ],
            &fixture("gitlab-push-hook.json"),
            &settings(),
        )
        .unwrap();
        assert!(verdict.events.is_empty());
        assert!(verdict
            .ignored
            .unwrap()
            .contains("\"Push Hook\" names no pushed image"));
        assert_eq!(
            verdict.delivery.as_deref(),
            Some("13792a34-cac6-4fda-95a8-c58e00a3954e")
        );
    }

    #[test]
    fn malformed_bodies_are_rejected_with_a_reason() {
        for (body, needle) in [
            ("not json", "not a GitLab image push"),
            ("[]", "not a GitLab image push"),
            ("{}", "no `image`"),
            (r#"{"image":""}"#, "no `image`"),
            (r#"{"image":7}"#, "not a GitLab image push"),
            (r#"{"image":"alice/site","tag":""}"#, "`tag` is empty"),
            (
                r#"{"image":"alice/site","digest":""}"#,
                "not a valid digest",
            ),
            (r#"{"image":"Alice/Site"}"#, "invalid repository"),
            (r#"{"image":"alice/../etc"}"#, "invalid repository"),
            (r#"{"image":"alice/my site"}"#, "invalid repository"),
            (r#"{"image":"alice/site:v2"}"#, "invalid repository"),
            (r#"{"image":"registry.gitlab.com/"}"#, "invalid repository"),
            (r#"{"image":"alice/site","tag":"v2;reboot"}"#, "invalid tag"),
            (
                r#"{"image":"alice/site","digest":"sha256:abc"}"#,
                "not a valid digest",
            ),
        ] {
            match deliver(body.as_bytes()) {
                Err(SourceError::Malformed(message)) => {
                    assert!(
                        message.contains(needle),
                        "{body}: {message:?} lacks {needle:?}"
                    )
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn over_http_a_replayed_delivery_is_dropped() {
        let base = serve(settings()).await;
        let url = format!("{base}/hooks/gitlab");
        let body = fixture("gitlab-ci-push.json");
        let headers = [
            ("content-type", "application/json"),
            ("x-gitlab-token", TOKEN),
            ("x-gitlab-event-uuid", "job-1"),
        ];
        let (status, answer) = post(&url, &headers, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["reason"]
                .as_str()
                .unwrap()
                .contains("no running container uses registry.gitlab.com/alice/site:v2"),
            "{answer}"
        );
        let (_, answer) = post(&url, &headers, &body).await;
        assert_eq!(answer["reason"], "delivery job-1 was already received");

        let (status, _) = post(&url, &[("x-gitlab-token", "guess")], &body).await;
        assert_eq!(status, 401);
    }
}
