//! The registry client against a stub registry ([`super::stub`]).

use std::time::Duration;

use axum::http::HeaderMap;

use super::stub::{answer, Stub};
use super::*;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn manifest_found() -> axum::response::Response {
    answer(200, &[(DIGEST_HEADER, DIGEST)], "")
}

/// A `config.json` with `user:password` for `registry`, in a directory
/// kept as long as the returned guard.
fn docker_config(registry: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let json = serde_json::json!({
        "auths": { registry: { "username": "alice", "password": "s3cret" } }
    });
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    dir
}

/// The token the stub's token endpoint gives for `scope`.
fn token_for(scope: &str) -> String {
    format!("tok-{}", scope.replace([':', '/'], "-"))
}

#[tokio::test]
async fn the_token_flow_takes_a_token_with_the_login_and_keeps_it() {
    let stub = Stub::start(|host| {
        let challenge = format!(
            "Bearer realm=\"http://{host}/token\",service=\"stub\",\
             scope=\"repository:alice/site:pull\""
        );
        Box::new(move |request, _| {
            let (path, query) = request.uri.split_once('?').unwrap_or((&request.uri, ""));
            if path == "/token" {
                let login = basic(&Login {
                    username: "alice".into(),
                    password: "s3cret".into(),
                });
                if request.header("authorization") != login {
                    return answer(401, &[], "");
                }
                let scope = url::form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == "scope")
                    .map(|(_, scope)| scope.into_owned())
                    .unwrap_or_default();
                let body = serde_json::json!({"token": token_for(&scope), "expires_in": 300});
                return answer(200, &[], &body.to_string());
            }
            let repository = path
                .trim_start_matches("/v2/")
                .split("/manifests/")
                .next()
                .unwrap();
            let wanted = format!(
                "Bearer {}",
                token_for(&format!("repository:{repository}:pull"))
            );
            if request.header("authorization") == wanted {
                manifest_found()
            } else {
                answer(401, &[("WWW-Authenticate", &challenge)], "")
            }
        })
    })
    .await;
    let config = docker_config(&stub.host);
    let client = RegistryClient::new(Some(config.path().to_path_buf()));
    let image = stub.image("alice/site:latest");

    assert_eq!(client.digest(&image).await.unwrap(), DIGEST);
    let seen = stub.seen();
    let asked: Vec<_> = seen
        .iter()
        .map(|s| (s.method.as_str(), &s.uri[..]))
        .collect();
    assert_eq!(
        asked,
        [
            ("HEAD", "/v2/alice/site/manifests/latest"),
            (
                "GET",
                "/token?service=stub&scope=repository%3Aalice%2Fsite%3Apull"
            ),
            ("HEAD", "/v2/alice/site/manifests/latest"),
        ]
    );
    assert_eq!(seen[2].header("accept"), MANIFEST_ACCEPT);

    // The token is kept: the next question is one request.
    assert_eq!(client.digest(&image).await.unwrap(), DIGEST);
    assert_eq!(stub.seen().len(), 4);

    // Another repository has a token of its own, asked for at once: the
    // registry's way of asking is known.
    let blog = stub.image("alice/blog:latest");
    assert_eq!(client.digest(&blog).await.unwrap(), DIGEST);
    let asked: Vec<String> = stub.seen()[4..]
        .iter()
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    assert_eq!(
        asked,
        [
            "GET /token?service=stub&scope=repository%3Aalice%2Fblog%3Apull",
            "HEAD /v2/alice/blog/manifests/latest",
        ]
    );

    // Without the login the token endpoint refuses, and the error says
    // where the login goes.
    let anonymous = RegistryClient::new(None);
    let error = anonymous.digest(&image).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("config.json"), "{error}");
}

#[tokio::test]
async fn a_basic_challenge_is_answered_with_the_login() {
    let stub = Stub::start(|_| {
        Box::new(|request, _| {
            if request.header("authorization").starts_with("Basic ") {
                manifest_found()
            } else {
                answer(401, &[("WWW-Authenticate", "Basic realm=\"stub\"")], "")
            }
        })
    })
    .await;
    let config = docker_config(&stub.host);
    let client = RegistryClient::new(Some(config.path().to_path_buf()));
    assert_eq!(
        client.digest(&stub.image("alice/site")).await.unwrap(),
        DIGEST
    );
    assert_eq!(stub.seen().len(), 2);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let stub = Stub::start(|_| {
        Box::new(|_, before| match before {
            0 => answer(429, &[("Retry-After", "1")], ""),
            _ => manifest_found(),
        })
    })
    .await;
    let client = RegistryClient::new(None);
    assert_eq!(
        client.digest(&stub.image("alice/site")).await.unwrap(),
        DIGEST
    );
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[tokio::test]
async fn a_long_retry_after_stops_requests_until_it_passes() {
    let stub = Stub::start(|_| {
        Box::new(|_, _| {
            answer(
                503,
                &[("Retry-After", "3600")],
                r#"{"errors":[{"code":"TOOMANYREQUESTS"}]}"#,
            )
        })
    })
    .await;
    let client = RegistryClient::new(None);
    let image = stub.image("alice/site");
    let error = client.digest(&image).await.unwrap_err();
    let RegistryError::RateLimited { wait, .. } = error else {
        panic!("{error:?}");
    };
    assert!(wait > Duration::from_secs(3590), "{wait:?}");
    assert_eq!(stub.seen().len(), 1);
    // Within the pause nothing is sent, for this image or another.
    for image in [image, stub.image("alice/blog")] {
        let error = client.digest(&image).await.unwrap_err();
        assert!(
            matches!(error, RegistryError::RateLimited { .. }),
            "{error:?}"
        );
    }
    let error = client.tags(&stub.image("alice/blog")).await.unwrap_err();
    assert!(error.to_string().contains("429"), "{error}");
    assert_eq!(stub.seen().len(), 1, "no request during the pause");
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off() {
    let stub = Stub::start(|_| Box::new(|_, _| answer(429, &[], ""))).await;
    let client = RegistryClient::new(None);
    let image = stub.image("alice/site");
    let error = client.digest(&image).await.unwrap_err();
    let RegistryError::RateLimited { wait, .. } = error else {
        panic!("{error:?}");
    };
    // Each backoff is twice the one before; the pause after the last
    // attempt is left for the next question.
    let seen = stub.seen();
    assert_eq!(seen.len(), ATTEMPTS);
    assert!(seen[1].at - seen[0].at >= FIRST_BACKOFF);
    assert!(seen[2].at - seen[1].at >= 2 * FIRST_BACKOFF);
    assert!(
        wait > 3 * FIRST_BACKOFF && wait <= 4 * FIRST_BACKOFF,
        "{wait:?}"
    );
}

#[tokio::test]
async fn tags_follow_the_link_pages() {
    let stub = Stub::start(|_| {
        Box::new(|request, _| {
            let page = request.uri.as_str();
            if page == "/v2/alice/site/tags/list?n=1000" {
                answer(
                    200,
                    &[(
                        "Link",
                        "</v2/alice/site/tags/list?last=1.1.0&n=1000>; rel=\"next\"",
                    )],
                    r#"{"name":"alice/site","tags":["1.0.0","1.1.0"]}"#,
                )
            } else if page == "/v2/alice/site/tags/list?last=1.1.0&n=1000" {
                answer(200, &[], r#"{"name":"alice/site","tags":["1.2.0"]}"#)
            } else {
                answer(404, &[], "")
            }
        })
    })
    .await;
    let client = RegistryClient::new(None);
    let tags = client.tags(&stub.image("alice/site:1.0.0")).await.unwrap();
    assert_eq!(tags, ["1.0.0", "1.1.0", "1.2.0"]);
    assert_eq!(stub.seen().len(), 2);
}

#[tokio::test]
async fn bad_answers_are_errors_that_say_what_was_wrong() {
    let stub = Stub::start(|_| {
        Box::new(|request, _| match request.uri.as_str() {
            "/v2/alice/down/manifests/latest" => answer(500, &[], "oops"),
            "/v2/alice/nodigest/manifests/latest" => answer(200, &[], ""),
            "/v2/alice/baddigest/manifests/latest" => {
                answer(200, &[(DIGEST_HEADER, "md5:abc")], "")
            }
            "/v2/alice/garbage/tags/list?n=1000" => answer(200, &[], "<html>"),
            _ => answer(404, &[], ""),
        })
    })
    .await;
    let client = RegistryClient::new(None);
    let digest = |name: &str| {
        let image = stub.image(name);
        let client = &client;
        async move { client.digest(&image).await.unwrap_err() }
    };
    let error = digest("alice/down").await;
    assert!(
        matches!(error, RegistryError::Status { status: 500, .. }),
        "{error:?}"
    );
    let error = digest("alice/nodigest").await;
    assert!(
        error.to_string().contains("no Docker-Content-Digest"),
        "{error}"
    );
    let error = digest("alice/baddigest").await;
    assert!(error.to_string().contains("invalid digest"), "{error}");
    let error = digest("alice/missing").await;
    assert!(matches!(error, RegistryError::NotFound { .. }), "{error:?}");
    let error = client.tags(&stub.image("alice/garbage")).await.unwrap_err();
    assert!(error.to_string().contains("not a tag list"), "{error}");

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let image = ImageRef::parse(&format!("127.0.0.1:{port}/alice/site")).unwrap();
    let error = client.digest(&image).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { .. }),
        "{error:?}"
    );
}

#[test]
fn challenges_parse_with_quoted_commas() {
    let challenge = Challenge::parse(
        "Bearer scope=\"repository:library/busybox:pull,push\",\
         realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\"",
    );
    assert_eq!(
        challenge,
        Some(Challenge::Bearer {
            realm: "https://auth.docker.io/token".into(),
            service: Some("registry.docker.io".into()),
        })
    );
    assert_eq!(
        Challenge::parse("Basic realm=\"x\""),
        Some(Challenge::Basic)
    );
    assert_eq!(Challenge::parse("Bearer service=\"no-realm\""), None);
    assert_eq!(Challenge::parse("Negotiate"), None);
}

#[test]
fn loopback_registries_are_plain_http() {
    assert_eq!(base_url("docker.io"), "https://registry-1.docker.io");
    assert_eq!(base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
    assert_eq!(base_url("localhost:5000"), "http://localhost:5000");
    assert_eq!(base_url("[::1]:5000"), "http://[::1]:5000");
    assert_eq!(base_url("ghcr.io"), "https://ghcr.io");
    assert_eq!(base_url("10.0.0.1:5000"), "https://10.0.0.1:5000");
}

#[test]
fn link_headers_give_the_next_path_only() {
    let mut headers = HeaderMap::new();
    headers.insert(
        LINK,
        "<https://elsewhere.example/v2/a/tags/list?last=b&n=2>; rel=\"next\""
            .parse()
            .unwrap(),
    );
    assert_eq!(
        next_page(&headers).as_deref(),
        Some("/v2/a/tags/list?last=b&n=2")
    );
    headers.insert(
        LINK,
        "</v2/a/tags/list?last=b>; rel=\"prev\"".parse().unwrap(),
    );
    assert_eq!(next_page(&headers), None);
}
