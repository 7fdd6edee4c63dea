//! Gitea and Forgejo package webhooks: a container image pushed to the
//! package registry built into Gitea (1.17 and newer) or Forgejo.
//!
//! A webhook subscribed to "Package" events POSTs `{"action": "created",
//! "package": {"type": "container", "name": …, "version": …, "owner":
//! {"login": …}, "html_url": …, "creator": …}, "sender": …}` (see
//! `tests/fixtures/gitea-package-created.json`) once per pushed manifest:
//! `version` is the tag, or the manifest's digest for a manifest pushed
//! untagged (the platform images of a multi-platform push), which names no
//! tag and is ignored. So are deletions and other package types. The payload
//! carries no digest. The image is `<registry>/<owner login, lowercase>/<name>`
//! where the registry is `gitea_registry` if set, else the host of
//! `package.html_url`: Gitea serves its registry on its own host.
//!
//! Gitea signs the raw body: `X-Gitea-Signature` is the bare hex HMAC-SHA256
//! under the webhook secret (Forgejo sends the same value as
//! `X-Forgejo-Signature` too). The signature is checked, in constant time,
//! before the body is parsed. The event is named by `X-Gitea-Event` /
//! `X-Forgejo-Event` (only `package` names images; others are ignored), and
//! the delivery by `X-Gitea-Delivery` / `X-Forgejo-Delivery`, reported so the
//! server drops a replay. The webhook's content type must be JSON: with a
//! form body Gitea signs the JSON payload, not the body it sends.
//!
//! Sources: go-gitea/gitea `modules/structs/hook_package.go` (PackagePayload,
//! actions `created`/`deleted`), `modules/structs/package.go` (Package),
//! `modules/structs/user.go` (`login`, and `username` for compatibility),
//! `services/webhook/deliver.go` (headers and signature),
//! `routers/api/packages/container/manifest.go` (one notification per
//! manifest, version = lowercased tag or digest), and the package test payload
//! in `services/webhook/general_test.go`.

use serde::Deserialize;

use http::HeaderMap;

use super::{header, sha256_hex, hmac_sha256_matches, json, Auth, Request, Settings, Source, SourceError, Verdict};
use crate::settings::Secret;
use crate::event::ImageEvent;
use crate::image_ref::ImageRef;

/// Name recorded in history for events from this source.
pub const NAME: &str = "gitea";

/// This source, for the router and `check-config`.
pub const SOURCE: Source = Source {
    name: NAME,
    title: "Gitea / Forgejo",
    auth: Auth::Own {
        headers: check_headers,
    },
    help: "X-Gitea-Signature / X-Forgejo-Signature with gitea_secret",
    enabled: |settings| settings.gitea_secret.is_some(),
    parse,
};

#[derive(Debug, Deserialize)]
struct Payload {
    action: Option<String>,
    package: Option<Package>,
    sender: Option<Account>,
}

#[derive(Debug, Deserialize)]
struct Package {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    version: Option<String>,
    owner: Option<Account>,
    creator: Option<Account>,
    html_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Account {
    login: Option<String>,
    /// The same as `login`, sent for older clients.
    username: Option<String>,
}

impl Account {
    fn name(self) -> Option<String> {
        self.login
            .filter(|l| !l.is_empty())
            .or(self.username)
            .filter(|l| !l.is_empty())
    }
}

/// The first of `names` the request carries.
fn first_header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| header(headers, name))
}

/// What the headers alone prove: the source is on and the signature is
/// well formed. Runs before the body is read.
fn check_headers(headers: &HeaderMap, settings: &Settings) -> Result<(), SourceError> {
    signature(headers, settings).map(drop)
}

/// The secret and the signature the request presents. Without
/// `gitea_secret` the source is off: no request can prove itself, so each
/// is refused as unauthenticated (401), the same answer a forged one gets.
fn signature<'a>(
    headers: &HeaderMap,
    settings: &'a Settings,
) -> Result<(&'a Secret, [u8; 32]), SourceError> {
    let secret = settings
        .gitea_secret
        .as_ref()
        .ok_or(SourceError::Unauthorized)?;
    let signature = first_header(headers, &["x-gitea-signature", "x-forgejo-signature"])
        .and_then(sha256_hex)
        .ok_or(SourceError::Unauthorized)?;
    Ok((secret, signature))
}

/// Authenticates a Gitea or Forgejo delivery and turns a container package
/// event into an image event.
pub fn parse(request: &Request<'_>, settings: &Settings) -> Result<Verdict, SourceError> {
    let (secret, signature) = signature(request.headers, settings)?;
    if !hmac_sha256_matches(secret, request.body, &signature) {
        return Err(SourceError::Unauthorized);
    }
    let verdict = match first_header(request.headers, &["x-gitea-event", "x-forgejo-event"]) {
        Some("package") => parse_package(request.body, settings)?,
        Some(other) => Verdict::ignored(format!(
            "Gitea event {other:?} names no image; subscribe the webhook to package events only"
        )),
        None => {
            return Err(SourceError::Malformed(
                "no X-Gitea-Event header: is this a Gitea or Forgejo webhook?".into(),
            ))
        }
    };
    Ok(Verdict {
        delivery: first_header(request.headers, &["x-gitea-delivery", "x-forgejo-delivery"])
            .filter(|id| !id.is_empty())
            .map(String::from),
        ..verdict
    })
}

fn parse_package(body: &[u8], settings: &Settings) -> Result<Verdict, SourceError> {
    let payload: Payload = json(body, "Gitea package event")?;
    let action = payload
        .action
        .ok_or_else(|| SourceError::Malformed("payload has no `action`".into()))?;
    if action != "created" {
        return Ok(Verdict::ignored(format!(
            "package action {action:?}: only created packages are deployed"
        )));
    }
    let package = payload
        .package
        .ok_or_else(|| SourceError::Malformed("payload has no `package` object".into()))?;
    let kind = package.kind.as_deref().unwrap_or_default();
    if kind != "container" {
        return Ok(Verdict::ignored(format!(
            "package type {kind:?} is not a container image"
        )));
    }
    let tag = package
        .version
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SourceError::Malformed("payload has no `package.version`".into()))?;
    if tag.starts_with("sha256:") {
        return Ok(Verdict::ignored(
            "untagged manifest (one platform of a multi-platform push)",
        ));
    }

    let owner = package
        .owner
        .and_then(Account::name)
        .filter(|owner| !owner.contains('/'))
        .ok_or_else(|| SourceError::Malformed("payload has no valid `package.owner.login`".into()))?
        .to_ascii_lowercase();
    let name = package
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| SourceError::Malformed("payload has no `package.name`".into()))?;
    let registry = match &settings.gitea_registry {
        Some(registry) => registry.clone(),
        None => package
            .html_url
            .as_deref()
            .and_then(url_host)
            .ok_or_else(|| {
                SourceError::Malformed(
                    "payload has no `package.html_url` to take the registry host from; set gitea_registry"
                        .into(),
                )
            })?,
    };
    let image = ImageRef::from_parts(&registry, &format!("{owner}/{name}"), Some(&tag))
        .map_err(|e| SourceError::Malformed(format!("payload names an invalid image: {e}")))?;

    let pusher = payload
        .sender
        .and_then(Account::name)
        .or_else(|| package.creator.and_then(Account::name));
    Ok(Verdict::events(vec![ImageEvent {
        source: NAME,
        image,
        pusher,
        digest: None,
    }]))
}

/// The `host[:port]` of an `http(s)://` URL, lowercase; the caller validates
/// it as a registry host.
fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(rest[..end].to_ascii_lowercase()).filter(|host| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::{fixture, fixture_json, hmac_hex, post, run, serve};

    const SECRET: &str = "gitea-webhook-secret";
    const DELIVERY: &str = "f6266f16-1bf3-46a5-9ea4-602e06ead473";

    fn settings() -> Settings {
        Settings {
            gitea_secret: Some(crate::settings::Secret::for_tests(SECRET)),
            ..Settings::for_tests()
        }
    }

    /// A Gitea delivery of `event`, signed with the test secret.
    fn deliver(event: &str, body: &[u8]) -> Result<Verdict, SourceError> {
        run(
            parse,
            &[
                ("x-gitea-event", event),
                ("x-gitea-delivery", DELIVERY),
                ("x-gitea-signature", &hmac_hex(SECRET, body)),
            ],
            body,
            &settings(),
        )
    }

    fn deliver_json(payload: &serde_json::Value) -> Result<Verdict, SourceError> {
        deliver("package", &serde_json::to_vec(payload).unwrap())
    }

    fn ignored(verdict: Verdict) -> String {
        assert!(verdict.events.is_empty(), "{verdict:?}");
        verdict.ignored.expect("a reason")
    }

    #[test]
    fn created_container_is_an_event_on_the_gitea_host() {
        let verdict = deliver("package", &fixture("gitea-package-created.json")).unwrap();
        assert_eq!(verdict.events.len(), 1, "{verdict:?}");
        let event = &verdict.events[0];
        assert_eq!(event.image.to_string(), "git.example.com/alice/site:v2");
        assert_eq!(event.digest, None, "Gitea sends no digest");
        assert_eq!(event.pusher.as_deref(), Some("ci-bot"));
        assert_eq!(event.source, "gitea");
        assert_eq!(verdict.delivery.as_deref(), Some(DELIVERY));
    }

    #[test]
    fn forgejo_headers_are_read_too() {
        let body = fixture("gitea-package-created.json");
        let verdict = run(
            parse,
            &[
                ("x-forgejo-event", "package"),
                ("x-forgejo-delivery", "forgejo-1"),
                ("x-forgejo-signature", &hmac_hex(SECRET, &body)),
            ],
            &body,
            &settings(),
        )
        .unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "git.example.com/alice/site:v2"
        );
        assert_eq!(verdict.delivery.as_deref(), Some("forgejo-1"));
    }

    #[test]
    fn registry_host_comes_from_settings_or_the_package_url() {
        let configured = Settings {
            gitea_registry: Some("registry.example.com:5000".into()),
            ..settings()
        };
        let body = fixture("gitea-package-created.json");
        let headers = [
            ("x-gitea-event", "package"),
            ("x-gitea-signature", &hmac_hex(SECRET, &body) as &str),
        ];
        let verdict = run(parse, &headers, &body, &configured).unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "registry.example.com:5000/alice/site:v2"
        );

        for (url, host) in [
            (
                "http://localhost:3000/alice/-/packages/container/site/v2",
                "localhost:3000",
            ),
            (
                "HTTPS://Git.Example.COM/alice/-/packages/container/site/v2",
                "git.example.com",
            ),
            ("https://git.example.com?x=1", "git.example.com"),
        ] {
            let mut payload = fixture_json("gitea-package-created.json");
            payload["package"]["html_url"] = url.into();
            let verdict = deliver_json(&payload).unwrap();
            assert_eq!(verdict.events[0].image.registry, host, "{url}");
        }
    }

    #[test]
    fn owner_falls_back_to_username() {
        let mut payload = fixture_json("gitea-package-created.json");
        payload["package"]["owner"]
            .as_object_mut()
            .unwrap()
            .remove("login");
        let verdict = deliver_json(&payload).unwrap();
        assert_eq!(
            verdict.events[0].image.to_string(),
            "git.example.com/alice/site:v2"
        );
    }

    #[test]
    fn forged_requests_are_unauthorized() {
        let body = fixture("gitea-package-created.json");
        let other_key = hmac_hex("another secret", &body);
        let prefixed = format!("sha256={}", hmac_hex(SECRET, &body));
        for headers in [
            vec![("x-gitea-event", "package")],
            vec![("x-gitea-event", "package"), ("x-gitea-signature", "")],
            vec![
                ("x-gitea-event", "package"),
                ("x-gitea-signature", &other_key),
            ],
            vec![
                ("x-gitea-event", "package"),
                ("x-gitea-signature", &prefixed),
            ],
            vec![
                ("x-gitea-event", "package"),
                ("x-forgejo-signature", &other_key),
            ],
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
        let body = fixture("gitea-package-created.json");
        let good = hmac_hex(SECRET, &body);
        let changed = String::from_utf8(body)
            .unwrap()
            .replace("\"version\": \"v2\"", "\"version\": \"v3\"");
        let result = run(
            parse,
            &[("x-gitea-event", "package"), ("x-gitea-signature", &good)],
            changed.as_bytes(),
            &settings(),
        );
        assert!(matches!(result, Err(SourceError::Unauthorized)));
    }

    #[test]
    fn the_signature_is_checked_before_the_body_is_read() {
        let result = run(
            parse,
            &[("x-gitea-event", "package"), ("x-gitea-signature", "00")],
            b"not json",
            &settings(),
        );
        assert!(matches!(result, Err(SourceError::Unauthorized)));
    }

    #[test]
    fn without_a_secret_the_source_is_off() {
        let body = fixture("gitea-package-created.json");
        let result = run(
            parse,
            &[
                ("x-gitea-event", "package"),
                ("x-gitea-signature", &hmac_hex(SECRET, &body)),
            ],
            &body,
            &Settings::for_tests(),
        );
        assert!(matches!(result, Err(SourceError::Unauthorized)));
    }

    #[test]
    fn deletions_other_events_types_and_untagged_manifests_are_ignored() {
        let mut payload = fixture_json("gitea-package-created.json");
        payload["action"] = "deleted".into();
        assert!(ignored(deliver_json(&payload).unwrap()).contains("\"deleted\""));

        let mut payload = fixture_json("gitea-package-created.json");
        payload["package"]["type"] = "npm".into();
        assert!(ignored(deliver_json(&payload).unwrap()).contains("\"npm\""));

        let mut payload = fixture_json("gitea-package-created.json");
        payload["package"]["version"] =
            "sha256:6ccce4863b70f258d691f59609d31b4502e1ba5199942d3bc5d35d17a4ce771d".into();
        assert!(ignored(deliver_json(&payload).unwrap()).contains("untagged"));

        let verdict = deliver("push", br#"{"ref":"refs/heads/main"}"#).unwrap();
        assert_eq!(verdict.delivery.as_deref(), Some(DELIVERY));
        assert!(ignored(verdict).contains("\"push\""));
    }

    #[test]
    fn malformed_payloads_are_rejected_with_a_reason() {
        let base = fixture_json("gitea-package-created.json");
        let with = |pointer: &str, value: serde_json::Value| {
            let mut payload = base.clone();
            *payload.pointer_mut(pointer).expect(pointer) = value;
            serde_json::to_vec(&payload).unwrap()
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a Gitea package event"),
            (b"{}".to_vec(), "no `action`"),
            (br#"{"action":"created"}"#.to_vec(), "no `package` object"),
            (with("/package/version", "".into()), "package.version"),
            (
                with("/package/owner", serde_json::Value::Null),
                "owner.login",
            ),
            (with("/package/owner/login", "a/b".into()), "owner.login"),
            (with("/package/name", "".into()), "package.name"),
            (with("/package/name", "Site".into()), "invalid image"),
            (with("/package/name", "../../etc".into()), "invalid image"),
            (with("/package/name", "my site".into()), "invalid image"),
            (with("/package/version", "v2 latest".into()), "invalid tag"),
            (
                with("/package/html_url", serde_json::Value::Null),
                "set gitea_registry",
            ),
            (
                with("/package/html_url", "ftp://git.example.com/x".into()),
                "set gitea_registry",
            ),
            (
                with("/package/html_url", "https:///x".into()),
                "set gitea_registry",
            ),
            (
                with("/package/html_url", "https://user@evil.example/x".into()),
                "invalid registry host",
            ),
            (
                with("/package/html_url", "https://bad_host.example/x".into()),
                "invalid registry host",
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
    }

    #[tokio::test]
    async fn over_http_a_replayed_delivery_is_dropped() {
        let base = serve(settings()).await;
        let url = format!("{base}/hooks/gitea");
        let body = fixture("gitea-package-created.json");
        let signature = hmac_hex(SECRET, &body);
        let headers = [
            ("content-type", "application/json"),
            ("x-gitea-event", "package"),
            ("x-gitea-delivery", "g-1"),
            ("x-gitea-signature", signature.as_str()),
        ];
        let (status, answer) = post(&url, &headers, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["reason"]
                .as_str()
                .unwrap()
                .contains("no running container uses git.example.com/alice/site:v2"),
            "{answer}"
        );
        let (_, answer) = post(&url, &headers, &body).await;
        assert_eq!(answer["reason"], "delivery g-1 was already received");

        let (status, _) = post(
            &format!("{}/hooks/gitea", serve(Settings::for_tests()).await),
            &headers,
            &body,
        )
        .await;
        assert_eq!(status, 401, "off without a secret");
    }
}
