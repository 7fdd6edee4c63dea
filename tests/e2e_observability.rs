//! End to end: what dockhook tells an operator. A real Prometheus scrapes
//! `/metrics` with a metrics token and counts a real deployment; `promtool
//! check metrics` accepts a real scrape; a flood of webhooks that change
//! nothing writes nothing to the log at the default level, in text or JSON.

mod support;

use std::time::Duration;

use support::prometheus::{promtool_check_metrics, sample, Prometheus};
use support::scenario::{hook_path, run_site, Site};
use support::*;

const METRICS_TOKEN: &str = "dockhook-test-metrics-token";

/// GETs `/metrics` with `headers`; the whole response.
fn scrape(dockhook: &Dockhook, headers: &[(&str, &str)]) -> Response {
    request("GET", &dockhook.url("/metrics"), headers, b"").expect("GET /metrics answers")
}

#[test]
fn prometheus_scrapes_dockhook_and_counts_a_deployment() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "metrics");
    run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(
        &site.registry.host(),
        &[("DOCKHOOK_METRICS_TOKEN", METRICS_TOKEN)],
    );
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_eq!(deployment["new_image_id"], v2.as_str(), "{deployment}");

    let prometheus = Prometheus::start(dockhook.addr(), METRICS_TOKEN);
    let counted = wait_for(Duration::from_secs(30), || {
        prometheus.value("dockhook_deployments_total{job=\"dockhook\",state=\"succeeded\"}")
    });
    assert_eq!(
        counted,
        Some(1.0),
        "Prometheus did not read the deployment; its target: {}",
        prometheus.target()
    );
    let target = prometheus.target();
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
    for (query, expected) in [
        (
            "dockhook_webhooks_total{source=\"dockerhub\",outcome=\"accepted\"}",
            1.0,
        ),
        ("dockhook_push_to_serving_seconds_count", 1.0),
        ("dockhook_deployment_duration_seconds_count", 1.0),
        ("dockhook_downtime_seconds_count", 1.0),
        // Start-first (no published port): the site never went down. (The
        // bound reads `0` in the text format, `0.0` in OpenMetrics, which
        // Prometheus asks for.)
        ("dockhook_downtime_seconds_bucket{le=~\"0|0.0\"}", 1.0),
        ("dockhook_rollbacks_total", 0.0),
        ("dockhook_docker_up", 1.0),
        ("dockhook_queue_depth", 0.0),
    ] {
        assert_eq!(prometheus.value(query), Some(expected), "{query}");
    }
    let version = format!(
        "dockhook_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(prometheus.value(&version), Some(1.0), "{version}");

    // The scrape Prometheus took is one promtool accepts too.
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let response = scrape(&dockhook, &[("Authorization", &bearer)]);
    assert_eq!(response.status, 200, "{}", response.body);
    let (ok, problems) = promtool_check_metrics(&response.body);
    assert!(
        ok && problems.trim().is_empty(),
        "{problems}\n{}",
        response.body
    );
}

#[test]
fn promtool_accepts_a_scrape_and_webhook_outcomes_are_counted() {
    require_docker();
    let registry = Registry::start();
    let dockhook = Dockhook::start(&registry.host(), &[]);
    let hook = dockhook.url(&hook_path());
    let nobody_runs = dockerhub_payload(OWNER, &unique("nobody-runs-it"), "latest").to_string();
    for _ in 0..3 {
        assert_eq!(post_json(&hook, &nobody_runs, &[]).0, 200);
    }
    assert_eq!(post_json(&hook, "{not json", &[]).0, 400);
    let forged = dockhook.url("/hooks/dockerhub/not-the-token-at-all");
    assert_eq!(post_json(&forged, &nobody_runs, &[]).0, 401);
    let stranger = dockerhub_payload("someone-else", "site", "latest").to_string();
    assert_eq!(post_json(&hook, &stranger, &[]).0, 403);

    for refused in [vec![], vec![("Authorization", "Bearer wrong")]] {
        let response = scrape(&dockhook, &refused);
        assert_eq!(response.status, 401, "{refused:?}: {}", response.body);
    }
    let bearer = format!("Bearer {API_TOKEN}");
    let response = scrape(&dockhook, &[("Authorization", &bearer)]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = &response.body;
    let (ok, problems) = promtool_check_metrics(text);
    assert!(ok && problems.trim().is_empty(), "{problems}\n{text}");
    for (series, expected) in [
        ("ignored", 3.0),
        ("bad_request", 1.0),
        ("unauthorized", 1.0),
        ("forbidden", 1.0),
    ] {
        let name = format!("dockhook_webhooks_total{{source=\"dockerhub\",outcome=\"{series}\"}}");
        assert_eq!(sample(text, &name), Some(expected), "{name}:\n{text}");
    }
    assert_eq!(sample(text, "dockhook_queue_depth"), Some(0.0), "{text}");
    assert_eq!(sample(text, "dockhook_docker_up"), Some(1.0), "{text}");

    let openmetrics = scrape(
        &dockhook,
        &[
            ("Authorization", &bearer),
            ("Accept", "application/openmetrics-text;version=1.0.0"),
        ],
    );
    assert!(
        openmetrics
            .header("Content-Type")
            .is_some_and(|kind| kind.starts_with("application/openmetrics-text")),
        "{:?}",
        openmetrics.headers
    );
    assert!(
        openmetrics.body.ends_with("# EOF\n"),
        "{}",
        openmetrics.body
    );
}

/// Starts dockhook with `env` at the default log level, sends `copies`
/// webhooks that change nothing of three kinds (an image nobody runs, the
/// same delivery again and again, a registry event that is no push), stops
/// it, and returns the lines it logged while serving them.
fn lines_logged_by_a_flood(
    registry: &Registry,
    env: &[(&str, &str)],
    copies: usize,
) -> Vec<String> {
    let mut dockhook = Dockhook::start(&registry.host(), env);
    let nobody_runs = dockerhub_payload(OWNER, &unique("nobody-runs-it"), "latest").to_string();
    let hook = dockhook.url(&hook_path());
    let acr = dockhook.url(&format!("/hooks/acr/{}", hook_token("acr")));
    let delivery = serde_json::json!({
        "id": unique("delivery"),
        "action": "push",
        "target": { "repository": "nobody/runs-it", "tag": "v1" },
        "request": { "host": "registry.example.com" },
    })
    .to_string();
    let registry_hook = dockhook.url(&format!("/hooks/registry/{}", hook_token("registry")));
    let blob = serde_json::json!({ "events": [{
        "id": unique("event"),
        "action": "push",
        "target": { "mediaType": "application/octet-stream", "repository": "x/y" },
    }]})
    .to_string();
    for _ in 0..copies {
        assert_eq!(post_json(&hook, &nobody_runs, &[]).0, 200);
        assert_eq!(post_json(&acr, &delivery, &[]).0, 200);
        assert_eq!(post_json(&registry_hook, &blob, &[]).0, 200);
    }
    let exited = dockhook.terminate(Duration::from_secs(30));
    assert!(
        exited.is_some_and(|s| s.success()),
        "{}",
        dockhook.log_text()
    );
    let logs = dockhook.logs();
    let start = logs
        .iter()
        .position(|line| line.contains("listening on "))
        .expect("a ready line");
    let end = logs
        .iter()
        .position(|line| line.contains("shutdown signal received"))
        .unwrap_or_else(|| panic!("no shutdown line:\n{}", logs.join("\n")));
    logs[start + 1..end].to_vec()
}

#[test]
fn a_flood_of_webhooks_that_change_nothing_logs_nothing_at_the_default_level() {
    require_docker();
    let registry = Registry::start();
    for format in ["text", "json"] {
        let env = [("DOCKHOOK_LOG_FORMAT", format), ("RUST_LOG", "")];
        let logged = lines_logged_by_a_flood(&registry, &env, 100);
        assert!(
            logged.is_empty(),
            "{format}: 300 webhooks that change nothing logged:\n{}",
            logged.join("\n")
        );
    }
    // At debug level they are there: the flood was seen, and each line is
    // one JSON object without the token.
    let env = [
        ("DOCKHOOK_LOG_FORMAT", "json"),
        ("RUST_LOG", "dockhook=debug"),
    ];
    let logged = lines_logged_by_a_flood(&registry, &env, 2);
    let ignored: Vec<&String> = logged
        .iter()
        .filter(|line| line.contains("event ignored"))
        .collect();
    assert_eq!(ignored.len(), 3, "{}", logged.join("\n"));
    for line in &logged {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(
            json["level"].is_string() && json["message"].is_string(),
            "{line}"
        );
        for secret in [
            TOKEN,
            API_TOKEN,
            &hook_token("acr"),
            &hook_token("dockerhub"),
        ] {
            assert!(!line.contains(secret), "{line}");
        }
    }
    assert!(
        logged
            .iter()
            .any(|line| line.contains("delivery already received")),
        "{}",
        logged.join("\n")
    );
}
