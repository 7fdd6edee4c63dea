//! GitHub Packages webhooks: a container image pushed to the GitHub
//! Container Registry (`ghcr.io`).
//!
//! GitHub sends the `package` event (and, to webhooks subscribed to it, the
//! older `registry_package` event with the same content under another key)
//! once per pushed manifest, with `action` `published` (or `updated`). For
//! a container the package is `package_type` `CONTAINER` (the REST API
//! spells it `container`) and `package.package_version.container_metadata`
//! carries the tag and the digest it now points at. A multi-platform push
//! sends one event per platform manifest, untagged, and one for the tagged
//! index: only the tagged one is an image event. The image is
//! `<github_registry>/<owner login, lowercase>/<package name>` (a package
//! name may have a `/`), as in the fixtures `tests/fixtures/github-*.json`.
//!
//! GitHub signs the raw body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256
//! under the webhook secret>`. The signature is checked, in constant time,
//! before the body is parsed; `X-GitHub-Delivery` is reported so the server
//! drops a replayed delivery. `ping` (sent when the webhook is created) is
//! answered as ignored; so is any other event, since only packages name
//! images.
//!
//! Sources: the `package` and `registry_package` schemas in GitHub's OpenAPI
//! description (github/rest-api-description, `webhook-package-published`,
//! `webhook-registry-package-published`), octokit/webhooks payload examples,
//! and real deliveries quoted in JRoy/disgit#3 and octokit/webhooks.js#646.

use serde::Deserialize;

use http::HeaderMap;

use super::{header, sha256_hex, hmac_sha256_matches, json, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::settings::Secret;
use crate::event::ImageEvent;
use crate::image_ref::{validate_digest, ImageRef};

/// Name recorded in history for events from this source.
pub const NAME: &str = "github";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "GitHub",
    auth: Auth::Own {
        headers: check_headers,
    },
    help: "X-Hub-Signature-256 with github_secret",
    enabled: |settings| settings.github_secret.is_some(),
    parse,
};

#[derive(Debug, Deserialize)]
struct Payload {
    action: Option<String>,
    /// Under this key in `package` events…
    package: Option<Package>,
    /// …and under this one in `registry_package` events.
    registry_package: Option<Package>,
    sender: Option<Account>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: Option<String>,
    package_type: Option<String>,
    owner: Option<Account>,
    package_version: Option<PackageVersion>,
}

#[derive(Debug, Deserialize)]
struct PackageVersion {
    /// For a container, the manifest digest of this version.
    version: Option<String>,
    container_metadata: Option<ContainerMetadata>,
}

#[derive(Debug, Deserialize)]
struct ContainerMetadata {
    tag: Option<Tag>,
}

#[derive(Debug, Deserialize)]
struct Tag {
    /// Empty for an untagged manifest.
    name: Option<String>,
    digest: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Account {
    login: Option<String>,
}

/// What the headers alone prove: the source is on and the signature is
/// well formed. Runs before the body is read.
fn check_headers(headers: &HeaderMap, settings: &Settings) -> Result<(), SourceError> {
    signature(headers, settings).map(drop)
}

/// The secret and the signature the request presents. Without
/// `github_secret` the source is off: no request can prove itself, so each
/// is refused as unauthenticated (401), the same answer a forged one gets.
fn signature<'a>(
    headers: &HeaderMap,
    settings: &'a Settings,
) -> Result<(&'a Secret, [u8; 32]), SourceError> {
    let secret = settings
        .github_secret
        .as_ref()
        .ok_or(SourceError::Unauthorized)?;
    let signature = header(headers, "x-hub-signature-256")
        .and_then(|value| value.strip_prefix("sha256="))
        .and_then(sha256_hex)
        .ok_or(SourceError::Unauthorized)?;
    Ok((secret, signature))
}

/// Authenticates a GitHub delivery and turns a container package event into
/// an image event on the configured registry (`ghcr.io` by default).
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    let (secret, signature) = signature(request.headers, settings)?;
    if !hmac_sha256_matches(secret, request.body, &signature) {
        return Err(SourceError::Unauthorized);
    }
    let verdict = match request.header("x-github-event") {
        Some("ping") => Verdict::ignored("ping: the GitHub webhook reaches dockhook"),
        Some(event @ ("package" | "registry_package")) => {
            parse_package(request.body, event, settings)?
        }
        Some(other) => Verdict::ignored(format!(
            "GitHub event {other:?} names no image; subscribe the webhook to packages only"
        )),
        None => {
            return Err(SourceError::Malformed(
                "no X-GitHub-Event header: is this a GitHub webhook?".into(),
            ))
        }
    };
    Ok(Verdict {
        delivery: request
            .header("x-github-delivery")
            .filter(|id| !id.is_empty())
            .map(String::from),
        ..verdict
    })
}

fn parse_package(body: &[u8], event: &str, settings: &Settings) -> Result<Verdict, SourceError> {
    let payload: Payload = json(body, "GitHub package event")?;
    let action = payload
        .action
        .ok_or_else(|| SourceError::Malformed("payload has no `action`".into()))?;
    if !matches!(action.as_str(), "published" | "updated") {
        return Ok(Verdict::ignored(format!(
            "package action {action:?}: only published and updated packages are deployed"
        )));
    }
    let package = if event == "package" {
        payload.package
    } else {
        payload.registry_package
    }
    .ok_or_else(|| SourceError::Malformed(format!("payload has no `{event}` object")))?;
    let package_type = package.package_type.as_deref().unwrap_or_default();
    if !package_type.eq_ignore_ascii_case("container") {
        return Ok(Verdict::ignored(format!(
            "package type {package_type:?} is not a container image"
        )));
    }
    let version = package.package_version;
    let tag = version
        .as_ref()
        .and_then(|v| v.container_metadata.as_ref())
        .and_then(|m| m.tag.as_ref());
    let Some(tag_name) = tag
        .and_then(|t| t.name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return Ok(Verdict::ignored(
            "untagged manifest (one platform of a multi-platform push, or an attestation)",
        ));
    };

    let owner = package
        .owner
        .and_then(|o| o.login)
        .filter(|login| !login.is_empty() && !login.contains('/'))
        .ok_or_else(|| SourceError::Malformed("payload has no valid `package.owner.login`".into()))?
        .to_ascii_lowercase();
    let name = package
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| SourceError::Malformed("payload has no `package.name`".into()))?;
    let image = ImageRef::from_parts(
        &settings.github_registry,
        &format!("{owner}/{name}"),
        Some(tag_name),
    )
    .map_err(|e| SourceError::Malformed(format!("payload names an invalid image: {e}")))?;

    // The tag's digest; else the version's name, which for a container is
    // the digest of its manifest.
    let digest = tag
        .and_then(|t| t.digest.as_deref())
        .filter(|d| !d.is_empty())
        .or_else(|| {
            version
                .as_ref()
                .and_then(|v| v.version.as_deref())
                .filter(|v| v.starts_with("sha256:"))
        })
        .map(validate_digest)
        .transpose()
        .map_err(|e| SourceError::Malformed(format!("payload names an invalid digest: {e}")))?;

    Ok(Verdict::events(vec![ImageEvent {
        source: NAME,
        image,
        pusher: payload
            .sender
            .and_then(|s| s.login)
            .filter(|l| !l.is_empty()),
        digest,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{fixture, fixture_json, hmac_hex, post, run, serve};

    const SECRET: &str = "It's a Secret to Everybody";
    const DIGEST: &str = "sha256:c362465abda1824ac37f290c695dc482815fae1de1b04e81ca8c5771d72249f2";

    fn settings() -> Settings {
        Settings {
            github_secret: Some(crate::settings::Secret::for_tests(SECRET)),
            ..Settings::for_tests()
        }
    }

    fn signature(body: &[u8]) -> String {
        format!("sha256={}", hmac_hex(SECRET, body))
    }

    /// A delivery of `event` signed with the test secret.
    fn deliver(event: &str, body: &[u8]) -> Result<Verdict, SourceError> {
        run(
            parse,
            &[
                ("x-github-event", event),
                ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("x-hub-signature-256", &signature(body)),
            ],
            body,
            &settings(),
        )
    }

    fn deliver_json(event: &str, payload: &serde_json::Value) -> Result<Verdict, SourceError> {
        deliver(event, &serde_json::to_vec(payload).unwrap())
    }

    fn ignored(verdict: Verdict) -> String {
        assert!(verdict.events.is_empty(), "{verdict:?}");
        verdict.ignored.expect("a reason")
    }

    #[test]
    fn published_container_is_an_event_with_tag_and_digest() {
        let verdict = deliver("package", &fixture("github-package-published.json")).unwrap();
        assert_eq!(verdict.events.len(), 1, "{verdict:?}");
        let event = &verdict.events[0];
        // The owner's login is `Alice`; image paths are lowercase.
        assert_eq!(event.image.to_string(), "ghcr.io/alice/site:v2");
        assert_eq!(event.digest.as_deref(), Some(DIGEST));
        assert_eq!(event.pusher.as_deref(), Some("github-actions[bot]"));
        assert_eq!(event.source, "github");
        assert_eq!(
            verdict.delivery.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
    }

    #[test]
    fn legacy_registry_package_event_and_nested_package_name() {
        let verdict = deliver(
            "registry_package",
            &fixture("github-registry-package-published.json"),
        )
        .unwrap();
        let event = &verdict.events[0];
        assert_eq!(
            event.image.to_string(),
            "ghcr.io/alice/site/frontend:latest"
        );
        assert_eq!(
            event.digest.as_deref(),
            Some("sha256:1cf387c012cd2d02f1923e589f86df4a4802427057dbc90f47b87f04d29d54bc")
        );
    }

    #[test]
    fn configured_registry_updated_action_and_lowercase_type() {
        let mut payload = fixture_json("github-package-published.json");
        payload["action"] = "updated".into();
        payload["package"]["package_type"] = "container".into();
        let settings = Settings {
            github_registry: "ghcr.example.com".into(),
            ..settings()
        };
        let body = serde_json::to_vec(&payload).unwrap();
        let verdict = run(
            parse,
            &[
                ("x-github-event", "package"),
                ("x-hub-signature-256", &signature(&body)),
            ],
            &body,
            &settings,
        )
        .unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "ghcr.example.com/alice/site:v2"
        );
        assert_eq!(verdict.delivery, None, "no X-GitHub-Delivery header");
    }

    #[test]
    fn digest_falls_back_to_the_version_name() {
        let mut payload = fixture_json("github-package-published.json");
        let tag = &mut payload["package"]["package_version"]["container_metadata"]["tag"];
        tag.as_object_mut().unwrap().remove("digest");
        let verdict = deliver_json("package", &payload).unwrap();
        assert_eq!(verdict.events[0].digest.as_deref(), Some(DIGEST));

        payload["package"]["package_version"]["version"] = "1.0.0".into();
        let verdict = deliver_json("package", &payload).unwrap();
        assert_eq!(verdict.events[0].digest, None, "not a digest");
    }

    #[test]
    fn forged_requests_are_unauthorized() {
        let body = fixture("github-package-published.json");
        let good = signature(&body);
        let other_key = format!("sha256={}", hmac_hex("another secret", &body));
        let bare = hmac_hex(SECRET, &body);
        for headers in [
            vec![("x-github-event", "package")],
            vec![("x-github-event", "package"), ("x-hub-signature-256", "")],
            vec![
                ("x-github-event", "package"),
                ("x-hub-signature-256", "sha256="),
            ],
            vec![
                ("x-github-event", "package"),
                ("x-hub-signature-256", &other_key),
            ],
            // Without its `sha256=` prefix.
            vec![
                ("x-github-event", "package"),
                ("x-hub-signature-256", &bare),
            ],
            // The SHA-1 signature alone is not accepted.
            vec![("x-github-event", "package"), ("x-hub-signature", &good)],
        ] {
            assert!(
                matches!(
                    run(parse, &headers, &body, &settings()),
                    Err(SourceError::Unauthorized)
                ),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn a_body_changed_after_signing_is_unauthorized() {
        let body = fixture("github-package-published.json");
        let good = signature(&body);
        let text = String::from_utf8(body).unwrap();
        let changed = text.replace("\"name\": \"site\"", "\"name\": \"other\"");
        assert_ne!(changed, text);
        let result = run(
            parse,
            &[
                ("x-github-event", "package"),
                ("x-hub-signature-256", &good),
            ],
            changed.as_bytes(),
            &settings(),
        );
        assert!(matches!(result, Err(SourceError::Unauthorized)));
    }

    #[test]
    fn the_signature_is_checked_before_the_body_is_read() {
        let result = run(
            parse,
            &[
                ("x-github-event", "package"),
                ("x-hub-signature-256", "sha256=00"),
            ],
            b"not json",
            &settings(),
        );
        assert!(matches!(result, Err(SourceError::Unauthorized)));
    }

    #[test]
    fn without_a_secret_the_source_is_off() {
        let body = fixture("github-package-published.json");
        let result = run(
            parse,
            &[
                ("x-github-event", "package"),
                ("x-hub-signature-256", &signature(&body)),
            ],
            &body,
            &Settings::for_tests(),
        );
        assert!(matches!(result, Err(SourceError::Unauthorized)));
    }

    #[test]
    fn every_verdict_reports_the_delivery_for_replay_detection() {
        for (event, body) in [
            ("package", fixture("github-package-published.json")),
            ("package", fixture("github-package-npm.json")),
            ("ping", fixture("github-ping.json")),
            ("push", b"{}".to_vec()),
        ] {
            let verdict = deliver(event, &body).unwrap();
            assert_eq!(
                verdict.delivery.as_deref(),
                Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                "{event}"
            );
        }
    }

    #[test]
    fn ping_other_events_and_other_packages_are_ignored() {
        assert!(ignored(deliver("ping", &fixture("github-ping.json")).unwrap()).contains("ping"));
        assert!(
            ignored(deliver("push", b"{\"ref\":\"refs/heads/main\"}").unwrap())
                .contains("\"push\"")
        );
        assert!(
            ignored(deliver("package", &fixture("github-package-npm.json")).unwrap())
                .contains("\"npm\"")
        );

        let mut payload = fixture_json("github-package-published.json");
        payload["package"]["package_type"] = "docker".into();
        assert!(ignored(deliver_json("package", &payload).unwrap()).contains("\"docker\""));

        let mut payload = fixture_json("github-package-published.json");
        payload["action"] = "deleted".into();
        assert!(ignored(deliver_json("package", &payload).unwrap()).contains("\"deleted\""));
    }

    #[test]
    fn untagged_manifests_are_ignored() {
        let mut payload = fixture_json("github-package-published.json");
        payload["package"]["package_version"]["container_metadata"]["tag"]["name"] = "".into();
        assert!(ignored(deliver_json("package", &payload).unwrap()).contains("untagged"));
        payload["package"]["package_version"]["container_metadata"] = serde_json::Value::Null;
        assert!(ignored(deliver_json("package", &payload).unwrap()).contains("untagged"));
    }

    #[test]
    fn malformed_payloads_are_rejected_with_a_reason() {
        const TAG: &str = "/package/package_version/container_metadata/tag";
        let base = fixture_json("github-package-published.json");
        let with = |pointer: &str, value: serde_json::Value| {
            let mut payload = base.clone();
            *payload.pointer_mut(pointer).expect(pointer) = value;
            serde_json::to_vec(&payload).unwrap()
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a GitHub package event"),
            (b"[]".to_vec(), "not a GitHub package event"),
            (b"{}".to_vec(), "no `action`"),
            (br#"{"action":"published"}"#.to_vec(), "no `package` object"),
            (
                fixture("github-registry-package-published.json"),
                "no `package` object",
            ),
            (
                with("/package/owner", serde_json::Value::Null),
                "owner.login",
            ),
            (with("/package/owner/login", "".into()), "owner.login"),
            (with("/package/owner/login", "a/b".into()), "owner.login"),
            (with("/package/owner/login", "..".into()), "invalid image"),
            (with("/package/name", "".into()), "package.name"),
            (
                with("/package/name", 7.into()),
                "not a GitHub package event",
            ),
            (with("/package/name", "Site".into()), "invalid image"),
            (with("/package/name", "../etc".into()), "invalid image"),
            (
                with("/package/name", "site/../../etc".into()),
                "invalid image",
            ),
            (with("/package/name", "my site".into()), "invalid image"),
            (
                with(&format!("{TAG}/name"), "v2;reboot".into()),
                "invalid tag",
            ),
            (with(&format!("{TAG}/name"), "../v2".into()), "invalid tag"),
            (
                with(&format!("{TAG}/digest"), "sha256:6c62fb45".into()),
                "invalid digest",
            ),
        ];
        for (body, needle) in cases {
            match deliver("package", &body) {
                Err(SourceError::Malformed(message)) => assert!(
                    message.contains(needle),
                    "{}: {message:?} lacks {needle:?}",
                    String::from_utf8_lossy(&body)
                ),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(&body)),
            }
        }

        // Without a digest on the tag, the version's name is read: it too
        // must be a valid digest when it claims to be one.
        let mut payload = base.clone();
        payload
            .pointer_mut(TAG)
            .and_then(|tag| tag.as_object_mut())
            .unwrap()
            .remove("digest");
        payload["package"]["package_version"]["version"] = "sha256:zz".into();
        assert!(matches!(
            deliver_json("package", &payload),
            Err(SourceError::Malformed(ref m)) if m.contains("invalid digest")
        ));

        let body = fixture("github-package-published.json");
        let result = run(
            parse,
            &[("x-hub-signature-256", &signature(&body))],
            &body,
            &settings(),
        );
        assert!(
            matches!(result, Err(SourceError::Malformed(ref m)) if m.contains("X-GitHub-Event"))
        );
    }

    #[tokio::test]
    async fn over_http_a_replayed_delivery_is_dropped() {
        let base = serve(settings()).await;
        let url = format!("{base}/hooks/github");
        let body = fixture("github-package-published.json");
        let sig = signature(&body);
        let headers = [
            ("content-type", "application/json"),
            ("x-github-event", "package"),
            ("x-github-delivery", "d-1"),
            ("x-hub-signature-256", sig.as_str()),
        ];
        let (status, answer) = post(&url, &headers, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["reason"]
                .as_str()
                .unwrap()
                .contains("no running container uses ghcr.io/alice/site:v2"),
            "{answer}"
        );
        let (status, answer) = post(&url, &headers, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["reason"], "delivery d-1 was already received");

        let forged = [
            ("x-github-event", "package"),
            ("x-hub-signature-256", "sha256=00"),
        ];
        let (status, answer) = post(&url, &forged, &body).await;
        assert_eq!((status, answer["status"].as_str()), (401, Some("error")));
    }

    #[tokio::test]
    async fn over_http_the_route_is_off_without_a_secret() {
        let base = serve(Settings::for_tests()).await;
        let body = fixture("github-package-published.json");
        let sig = signature(&body);
        let headers = [
            ("x-github-event", "package"),
            ("x-hub-signature-256", sig.as_str()),
        ];
        let (status, answer) = post(&format!("{base}/hooks/github"), &headers, &body).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"], "unauthorized");
    }
}
