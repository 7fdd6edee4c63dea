//! End to end: requests that must be refused are refused with the right
//! status and a JSON reason, and change nothing on the host; the API needs
//! the token; configuration errors stop dockhook before it serves.

mod support;

use serde_json::Value;
use support::scenario::{api, hook_path, Site};
use support::*;

fn post(dockhook: &Dockhook, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let response = request("POST", &dockhook.url(path), &all, body).expect("an HTTP answer");
    let json = serde_json::from_str(&response.body).unwrap_or_else(|e| {
        panic!(
            "{} body is not JSON ({e}): {}",
            response.status, response.body
        )
    });
    (response.status, json)
}

#[test]
fn forged_malformed_and_oversized_webhooks_change_nothing() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "attack");
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    // A victim that a forged payload could name, and a newer image that a
    // forged push could make it run.
    let victim = cleanup.container(&format!("{name}-victim"));
    run_container(&name, &site.image("latest"), &[]);
    run_container(&victim, &site.image("latest"), &["--label", "role=victim"]);
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let before = (
        container_inspect(&name)["Id"].clone(),
        container_inspect(&victim)["Id"].clone(),
    );
    let dockhook = Dockhook::start(&site.registry.host(), &[("DOCKHOOK_MAX_BODY", "8KiB")]);

    let genuine = dockerhub_payload(OWNER, &site.name, "latest").to_string();
    let foreign = dockerhub_payload("mallory", &site.name, "latest").to_string();
    let big = format!(
        "{{\"pad\":\"{}\",\"repository\":{{\"repo_name\":\"{}\"}}}}",
        "x".repeat(9000),
        site.repo
    );
    let hostile = |repo: &str, tag: &str| {
        serde_json::json!({"repository": {"repo_name": repo}, "push_data": {"tag": tag}})
            .to_string()
    };
    let wrong_token = "/hooks/dockerhub/dockhook-test-tokeX";
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "wrong token",
            wrong_token.into(),
            genuine.clone().into(),
            401,
            "unauthorized",
        ),
        (
            "token prefix",
            "/hooks/dockerhub/dockhook".into(),
            genuine.clone().into(),
            401,
            "unauthorized",
        ),
        (
            "no token",
            "/hooks/dockerhub/".into(),
            genuine.clone().into(),
            404,
            "no such route",
        ),
        (
            "foreign namespace",
            hook_path(),
            foreign.into(),
            403,
            "not an allowed owner",
        ),
        (
            "not JSON",
            hook_path(),
            b"{not json".to_vec(),
            400,
            "not a Docker Hub webhook",
        ),
        (
            "no repo_name",
            hook_path(),
            br#"{"repository":{}}"#.to_vec(),
            400,
            "repo_name",
        ),
        ("oversized", hook_path(), big.into(), 413, "limit"),
        (
            "hostile name",
            hook_path(),
            hostile(&format!("{OWNER}/../../etc"), "latest").into(),
            400,
            "invalid image",
        ),
        (
            "hostile tag",
            hook_path(),
            hostile(&site.repo, "latest; docker rm -f x").into(),
            400,
            "invalid tag",
        ),
        (
            "container named in payload",
            hook_path(),
            hostile(&format!("{OWNER}/{victim}"), "latest").into(),
            200,
            "no running container",
        ),
    ];
    for (what, path, body, status, needle) in cases {
        let (got, answer) = post(&dockhook, &path, &body, &[]);
        assert_eq!(got, status, "{what}: {answer}");
        let text = answer.to_string();
        assert!(text.contains(needle), "{what}: {text} lacks {needle:?}");
        if status == 401 {
            assert!(
                !text.contains(OWNER) && !text.contains(&site.name),
                "{what}: 401 gives no detail"
            );
        }
    }
    // A GET on the hook is not a webhook either.
    let response = request("GET", &dockhook.url(&hook_path()), &[], b"").unwrap();
    assert_eq!(response.status, 405);

    let (status, history) = api(&dockhook, "/api/deployments");
    assert_eq!(status, 200);
    assert_eq!(
        history["deployments"],
        serde_json::json!([]),
        "nothing was queued"
    );
    assert_eq!(container_inspect(&name)["Id"], before.0);
    assert_eq!(container_inspect(&victim)["Id"], before.1);
    assert_eq!(container_inspect(&name)["Image"], v1.as_str());
}

#[test]
fn history_api_needs_the_token_and_healthz_reports_docker() {
    require_docker();
    let registry = Registry::start();
    let dockhook = Dockhook::start(&registry.host(), &[]);
    for auth in [
        None,
        Some("Bearer wrong-token-of-some-length"),
        Some("Basic ZG9ja2hvb2s6"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        for path in ["/api/deployments", "/api/deployments/1"] {
            let response = request("GET", &dockhook.url(path), &headers, b"").unwrap();
            assert_eq!(response.status, 401, "{path} with {auth:?}");
            assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        }
    }
    let (status, body) = api(&dockhook, "/api/deployments/999");
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no deployment 999"))
    );
    let (status, _) = api(&dockhook, "/api/deployments/abc");
    assert_eq!(status, 400);
    let (status, _) = api(&dockhook, "/api/deployments?limit=0");
    assert_eq!(status, 400);

    let response = request("GET", &dockhook.url("/healthz"), &[], b"").unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body.contains("\"docker\":\"ok\""));
}

#[test]
fn without_docker_healthz_is_503_and_webhooks_are_refused() {
    let registry_host = "127.0.0.1:9";
    let dockhook = Dockhook::start(
        registry_host,
        &[("DOCKHOOK_DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert!(
        dockhook.log_text().contains("Docker does not answer"),
        "{}",
        dockhook.log_text()
    );
    let response = request("GET", &dockhook.url("/healthz"), &[], b"").unwrap();
    assert_eq!(response.status, 503);
    assert!(
        response.body.contains("/nonexistent/docker.sock"),
        "{}",
        response.body
    );

    let body = dockerhub_payload(OWNER, "site", "latest").to_string();
    let (status, answer) = post_json(&dockhook.url(&hook_path()), &body, &[]);
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("send it again later"), "{answer}");
    let (status, history) = api(&dockhook, "/api/deployments");
    assert_eq!(
        (status, &history["deployments"]),
        (200, &serde_json::json!([]))
    );
}

fn dockhook_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Dockhook::command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn empty_owner_stops_start_up_with_advice() {
    for owner in ["", " , "] {
        let (ok, text) = dockhook_cli(&["serve"], &[("OWNER", owner)]);
        assert!(!ok);
        assert!(
            text.contains("OWNER is empty") && text.contains("set OWNER"),
            "{text}"
        );
        let (ok, text) = dockhook_cli(&["check-config"], &[("OWNER", owner)]);
        assert!(!ok, "{text}");
    }
}

#[test]
fn check_config_masks_secrets_and_prints_the_hook_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dockhook.toml");
    std::fs::write(&config, "owner = [\"alice\", \"bob\"]\ngrace = \"3s\"\n").unwrap();
    let token = "abcdefSECRETSECRETSECRET";
    let env = [
        ("DOCKHOOK_TOKEN", token),
        ("DOCKHOOK_PUBLIC_URL", "https://hooks.example.com"),
        ("DOCKHOOK_GRACE", "2s"),
    ];
    let config_arg = config.to_string_lossy().to_string();
    let (ok, text) = dockhook_cli(&["check-config", "--config", &config_arg], &env);
    assert!(ok, "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(
        text.contains("alice,bob") && text.contains("2s"),
        "env wins over the file: {text}"
    );
    let dockerhub = hook_token_of(token, "dockerhub");
    assert!(
        text.contains(&format!(
            "https://hooks.example.com/hooks/dockerhub/{}…",
            &dockerhub[..4]
        )),
        "{text}"
    );
    let (ok, text) = dockhook_cli(
        &["check-config", "--config", &config_arg, "--show-token"],
        &env,
    );
    assert!(ok);
    assert!(
        text.contains(&format!(
            "https://hooks.example.com/hooks/dockerhub/{dockerhub}"
        )),
        "{text}"
    );
    assert!(
        !text.contains(token),
        "the secret itself is never shown: {text}"
    );

    std::fs::write(&config, "owner = \"alice\"\ngrase = \"3s\"\n").unwrap();
    let (ok, text) = dockhook_cli(&["check-config", "--config", &config_arg], &[]);
    assert!(!ok);
    assert!(text.contains("unknown key `grase`"), "{text}");
    let (ok, text) = dockhook_cli(
        &["check-config"],
        &[("OWNER", "alice"), ("DOCKHOOK_GRACE", "soon")],
    );
    assert!(!ok);
    assert!(
        text.contains("DOCKHOOK_GRACE") || text.contains("grace"),
        "{text}"
    );
}

/// `dockhook check-config --show-token` with `env`: the Docker Hub hook
/// URL's token.
fn shown_token(env: &[(&str, &str)]) -> String {
    let mut all = vec![("OWNER", OWNER)];
    all.extend_from_slice(env);
    let (ok, text) = dockhook_cli(&["check-config", "--show-token"], &all);
    assert!(ok, "{text}");
    let url = text
        .lines()
        .find(|line| line.contains("/hooks/dockerhub/"))
        .unwrap_or_else(|| panic!("check-config shows no Docker Hub URL: {text}"));
    url.rsplit("/hooks/dockerhub/")
        .next()
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn generated_token_is_never_logged_shown_on_request_and_survives_restarts() {
    require_docker();
    let registry = Registry::start();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let env = [
        ("DOCKHOOK_TOKEN", ""),
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
    ];
    let mut first = Dockhook::start(&registry.host(), &env);
    let line = first
        .wait_for_log("/hooks/dockerhub/", std::time::Duration::from_secs(5))
        .expect("the hook URL is logged, masked");
    let stored = std::fs::read_to_string(data.path().join("token")).unwrap();
    let secret = stored.trim().to_string();
    assert_eq!(secret.len(), 64, "256 bits, in hex: {secret}");
    assert!(
        first.log_text().contains("generated the hook secret"),
        "{}",
        first.log_text()
    );
    let token = hook_token_of(&secret, "dockerhub");
    assert!(
        line.contains(&format!("/hooks/dockerhub/{}…", &token[..4])),
        "{line}"
    );
    assert!(
        line.contains("`dockhook check-config --show-token`")
            && line.contains("`docker exec dockhook dockhook check-config --show-token`"),
        "the log says how to see the URL: {line}"
    );
    // The command the log names prints it whole.
    assert_eq!(shown_token(&[("DOCKHOOK_DATA_DIR", &data_dir)]), token);
    first.terminate(std::time::Duration::from_secs(10));
    for secret in [&secret, &token] {
        assert!(!first.log_text().contains(secret), "{}", first.log_text());
    }

    let second = Dockhook::start(&registry.host(), &env);
    let path = format!("/hooks/dockerhub/{token}");
    let body = dockerhub_payload(OWNER, "nothing-runs-this", "latest").to_string();
    let (status, _) = post_json(&second.url(&path), &body, &[]);
    assert_eq!(status, 200, "the stored token still works after a restart");
    assert!(!second.log_text().contains(&token), "{}", second.log_text());
}

/// At the most verbose log level, with a container whose configuration
/// holds the token (as dockhook's own does when it runs in a container):
/// the token appears nowhere in dockhook's output, whatever the requests.
#[test]
fn the_token_is_never_logged_even_at_trace_level() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "tracelog");
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let mut dockhook = Dockhook::start(
        &site.registry.host(),
        &[
            ("DOCKHOOK_TOKEN", ""),
            ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
            ("RUST_LOG", "trace"),
        ],
    );
    let secret = std::fs::read_to_string(data.path().join("token"))
        .unwrap()
        .trim()
        .to_string();
    let token = hook_token_of(&secret, "dockerhub");
    // One character off: a typo of the token shows most of it.
    let wrong = format!(
        "{}{}",
        &token[..63],
        if token.ends_with('0') { '1' } else { '0' }
    );
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    run_container(
        &name,
        &site.image("latest"),
        &["-e", &format!("APP_TOKEN={secret}")],
    );
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));

    let genuine = dockerhub_payload(OWNER, &site.name, "latest").to_string();
    let hook = format!("/hooks/dockerhub/{token}");
    let (status, answer) = post_json(&dockhook.url(&hook), &genuine, &[]);
    assert_eq!(status, 202, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["deployments"][0]
        .as_i64()
        .unwrap();
    let right = format!("Bearer {API_TOKEN}");
    let registry_bearer = format!("Bearer {}", hook_token_of(&secret, "registry"));
    let wrong_bearer = format!("Bearer {wrong}");
    let deployment = wait_for(std::time::Duration::from_secs(90), || {
        let path = format!("/api/deployments/{id}");
        let response = request(
            "GET",
            &dockhook.url(&path),
            &[("Authorization", &right)],
            b"",
        )
        .expect("an HTTP answer");
        let deployment: Value = serde_json::from_str(&response.body).unwrap();
        (deployment["state"] == "succeeded" || deployment["state"] == "rolled_back")
            .then_some(deployment)
    })
    .expect("the deployment ends");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");

    let registry_events = b"{\"events\": []}";
    type Sent<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a [u8]);
    let requests: Vec<Sent> = vec![
        (
            "POST",
            format!("/hooks/dockerhub/{wrong}"),
            vec![],
            genuine.as_bytes(),
        ),
        ("GET", hook.clone(), vec![], b""),
        ("POST", format!("{hook}/more"), vec![], b""),
        ("POST", format!("/hook/{token}"), vec![], b""),
        (
            "POST",
            format!("/hooks/registry/{}", hook_token_of(&secret, "registry")),
            vec![],
            registry_events,
        ),
        (
            "POST",
            "/hooks/registry".into(),
            vec![("Authorization", &registry_bearer)],
            registry_events,
        ),
        (
            "POST",
            "/hooks/registry".into(),
            vec![("Authorization", &wrong_bearer)],
            b"",
        ),
        (
            "POST",
            format!("/hooks/quay/{}", hook_token_of(&secret, "quay")),
            vec![],
            b"{}",
        ),
        (
            "POST",
            format!("/hooks/acr/{}", hook_token_of(&secret, "acr")),
            vec![],
            b"{}",
        ),
        (
            "POST",
            format!("/hooks/generic/{}", hook_token_of(&secret, "generic")),
            vec![],
            b"{}",
        ),
        ("POST", format!("/hooks/generic/{wrong}"), vec![], b"{}"),
        (
            "GET",
            "/api/deployments".into(),
            vec![("Authorization", &right)],
            b"",
        ),
        (
            "GET",
            "/api/deployments".into(),
            vec![("Authorization", &wrong_bearer)],
            b"",
        ),
        (
            "GET",
            format!("/api/deployments?token={token}"),
            vec![],
            b"",
        ),
        ("GET", "/healthz".into(), vec![], b""),
    ];
    for (method, path, mut headers, body) in requests {
        headers.push(("Content-Type", "application/json"));
        let response = request(method, &dockhook.url(&path), &headers, body);
        assert!(response.is_ok(), "{method} {path}: {response:?}");
    }
    dockhook.terminate(std::time::Duration::from_secs(30));

    let log = dockhook.log_text();
    assert!(
        log.contains(r#"route="/hooks/dockerhub/{token}""#) && log.contains("TRACE"),
        "requests are traced at this level: {log}"
    );
    assert!(
        log.contains("APP_TOKEN=[redacted]"),
        "the Docker API bodies that held it are logged, redacted"
    );
    let hook_tokens: Vec<String> = ["dockerhub", "registry", "quay", "acr", "generic"]
        .iter()
        .map(|source| hook_token_of(&secret, source))
        .collect();
    let api_token = API_TOKEN.to_string();
    let named = [
        ("hook secret", &secret),
        ("wrong token", &wrong),
        ("API token", &api_token),
    ]
    .into_iter()
    .chain(hook_tokens.iter().map(|token| ("hook token", token)));
    for (what, secret) in named {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(
            lines.is_empty(),
            "the {what} is logged:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn a_client_trickling_its_headers_is_cut_off() {
    use std::io::{Read, Write};
    let dockhook = Dockhook::start(
        "127.0.0.1:9",
        &[("DOCKHOOK_DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let mut stream = std::net::TcpStream::connect(dockhook.addr()).unwrap();
    stream
        .write_all(b"POST /hooks/dockerhub/x HTTP/1.1\r\nHost: dockhook\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    // The server closes the connection: the read ends, with or without an
    // error status, long before the 30 s read timeout.
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(25),
        "still open after {waited:?}"
    );
    // Meanwhile the server answers others.
    let response = request("GET", &dockhook.url("/healthz"), &[], b"").unwrap();
    assert_eq!(response.status, 503);
}

/// Sends only the head of a POST that announces a large body, never the
/// body, and reads the answer: `(status, body)`, or an error when none
/// comes while the body is still owed.
fn answer_to_headers_alone(
    dockhook: &Dockhook,
    path: &str,
    headers: &[(&str, &str)],
    patience: std::time::Duration,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(dockhook.addr())?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: dockhook\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.set_read_timeout(Some(patience))?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                return Ok((status, body.to_string()));
            }
        }
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&buffer[..n]);
    }
}

#[test]
fn forged_requests_are_refused_before_their_body_is_read() {
    let dockhook = Dockhook::start(
        "127.0.0.1:9",
        &[
            ("DOCKHOOK_DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("DOCKHOOK_GITHUB_SECRET", "github-webhook-secret"),
        ],
    );
    let short = format!("sha256={}", "ab".repeat(31));
    let not_hex = format!("sha256={}", "zz".repeat(32));
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, &str, Headers)] = &[
        ("wrong token", "/hooks/dockerhub/wrong-token-xxxxxxxx", &[]),
        (
            "wrong bearer",
            "/hooks/registry",
            &[("Authorization", "Bearer wrong-token-xxxxxxxx")],
        ),
        (
            "source off",
            "/hooks/gitlab",
            &[("X-Gitlab-Token", "anything-at-all")],
        ),
        ("source off", "/hooks/harbor", &[("Authorization", "x")]),
        (
            "no signature",
            "/hooks/github",
            &[("X-GitHub-Event", "package")],
        ),
        (
            "short signature",
            "/hooks/github",
            &[
                ("X-GitHub-Event", "package"),
                ("X-Hub-Signature-256", &short),
            ],
        ),
        (
            "signature not hex",
            "/hooks/github",
            &[
                ("X-GitHub-Event", "package"),
                ("X-Hub-Signature-256", &not_hex),
            ],
        ),
    ];
    for (what, path, headers) in cases {
        // Well under the server's 30 s request timeout, which would answer 408.
        let patience = std::time::Duration::from_secs(10);
        let (status, body) = answer_to_headers_alone(&dockhook, path, headers, patience)
            .unwrap_or_else(|e| panic!("{what} ({path}): no answer without the body: {e}"));
        assert_eq!(status, 401, "{what} ({path}): {body}");
        assert!(body.contains("unauthorized"), "{what}: {body}");
    }
    // A well-formed signature needs the body: the answer waits for it, as
    // every answer above would if it were given only after the body.
    let signature = format!("sha256={}", "ab".repeat(32));
    let waiting = answer_to_headers_alone(
        &dockhook,
        "/hooks/github",
        &[
            ("X-GitHub-Event", "package"),
            ("X-Hub-Signature-256", &signature),
        ],
        std::time::Duration::from_secs(2),
    );
    assert!(waiting.is_err(), "answered without the body: {waiting:?}");
}

#[test]
fn a_delivery_that_could_not_be_handled_is_handled_when_sent_again() {
    use hmac::{Hmac, Mac};
    require_docker();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let secret = "github-webhook-secret";
    let settings = [
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
        ("DOCKHOOK_GITHUB_SECRET", secret),
    ];
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github-package-published.json"
    ))
    .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signature = format!("sha256={signature}");
    let delivery = unique("delivery");
    let headers = [
        ("X-GitHub-Event", "package"),
        ("X-GitHub-Delivery", delivery.as_str()),
        ("X-Hub-Signature-256", signature.as_str()),
    ];

    let mut without_docker = settings.to_vec();
    without_docker.push(("DOCKHOOK_DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    let down = Dockhook::start("127.0.0.1:9", &without_docker);
    let (status, answer) = post(&down, "/hooks/github", &body, &headers);
    assert_eq!(status, 503, "{answer}");
    drop(down);

    // The same delivery, retried once Docker answers, on the same history.
    let up = Dockhook::start("127.0.0.1:9", &settings);
    let (status, answer) = post(&up, "/hooks/github", &body, &headers);
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("no running container uses ghcr.io/alice/site:v2"),
        "handled, not taken for a replay: {answer}"
    );
    let (status, answer) = post(&up, "/hooks/github", &body, &headers);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["reason"],
        format!("delivery {delivery} was already received"),
        "{answer}"
    );
}
