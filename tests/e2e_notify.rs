//! End to end: notifications from the real binary. A message whose
//! receiver is down survives `kill -9` in the outbox and is delivered, once
//! and signed, after the restart; `dockhook notify-test` reports per URL
//! and fails when one does.

mod support;

use std::process::Command;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::scenario::{run_site, Site};
use support::*;

const SECRET: &str = "e2e-signing-secret";

/// `sha256=<hex>` of `body` under `secret`, as the README tells receivers
/// to check it.
fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn short(image_id: &str) -> String {
    image_id.trim_start_matches("sha256:")[..12].to_string()
}

#[test]
fn a_pending_notification_survives_kill_9_and_is_delivered_once_after_restart() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "notify");
    let name = run_site(&mut cleanup, &site, &site.name, &[]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));

    // The receiver is not up yet: every delivery fails.
    let port = free_port();
    let url = format!("generic+http://127.0.0.1:{port}/hook?secret={SECRET}");
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let env = [
        ("DOCKHOOK_NOTIFY", url.as_str()),
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
    ];
    let mut dockhook = Dockhook::start(&site.registry.host(), &env);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let failed = dockhook.wait_for_log("notification delivery failed", Duration::from_secs(30));
    assert!(
        failed.is_some(),
        "no failed attempt; log:\n{}",
        dockhook.log_text()
    );
    dockhook.kill_9();
    let log = dockhook.log_text();
    assert!(!log.contains(SECRET), "the secret was logged:\n{log}");
    assert!(
        log.contains("secret=***"),
        "the URL is shown masked:\n{log}"
    );

    let receiver = Receiver::on(port);
    let dockhook = Dockhook::start(&site.registry.host(), &env);
    let delivered = dockhook.wait_for_log("notification delivered", Duration::from_secs(30));
    assert!(
        delivered.is_some(),
        "not delivered; log:\n{}",
        dockhook.log_text()
    );
    let received = receiver.received();
    assert_eq!(received.len(), 1, "delivered exactly once: {received:?}");
    let request = &received[0];
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(
        request.header("x-dockhook-signature"),
        Some(signature(SECRET, &request.body).as_str()),
        "signed with the URL's secret"
    );
    let body = request.json();
    assert_eq!(body["title"], format!("dockhook: {name} updated"), "{body}");
    let event = &body["events"][0];
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(event["event"], "succeeded", "{body}");
    assert_eq!(event["container"], name.as_str(), "{body}");
    assert_eq!(event["deployment"], deployment["id"], "{body}");
    assert_eq!(event["source"], "dockerhub", "{body}");
    assert_eq!(event["old_digest"], short(&v1), "{body}");
    assert_eq!(event["new_digest"], short(&v2), "{body}");
    assert!(event["to_serving_s"].as_f64().unwrap() > 0.0, "{body}");
    assert!(event["downtime_s"].as_f64().is_some(), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{} → {}", short(&v1), short(&v2))),
        "{message}"
    );
    assert!(!dockhook.log_text().contains(SECRET));
}

#[test]
fn one_push_to_two_containers_is_one_message_with_the_failure_and_its_logs() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "notifygroup");
    let good = run_site(&mut cleanup, &site, &format!("{}-good", site.name), &[]);
    // The same image, but this one refuses to run v2, saying why.
    let picky = cleanup.container(&format!("{}-picky", site.name));
    cleanup.containers_with_prefix(&format!("{picky}-dockhook-"));
    let script = "trap 'exit 0' TERM INT QUIT; \
                  if [ \"$(cat /www/index.html)\" = v2 ]; then echo 'panic: v2 is broken'; exit 1; fi; \
                  httpd -f -p 8080 -h /www & wait";
    #[rustfmt::skip]
    docker([
        "run", "-d", "--name", &picky, "--label", "dockhook-test=1",
        "--entrypoint", "sh", &site.image("latest"), "-c", script,
    ]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));

    let receiver = Receiver::on(free_port());
    let url = format!(
        "generic+http://127.0.0.1:{}/hook?secret={SECRET}",
        receiver.port()
    );
    let dockhook = Dockhook::start(&site.registry.host(), &[("DOCKHOOK_NOTIFY", &url)]);
    let (status, answer) = site.hook(&dockhook, "latest");
    assert_eq!(status, 202, "{answer}");
    let ids = answer["deployments"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "{answer}");
    for id in ids {
        support::scenario::wait_deployment(&dockhook, id.as_i64().unwrap());
    }
    let delivered = dockhook.wait_for_log("notification delivered", Duration::from_secs(30));
    assert!(
        delivered.is_some(),
        "not delivered; log:\n{}",
        dockhook.log_text()
    );
    let received = receiver.received();
    assert_eq!(received.len(), 1, "one message for the push: {received:?}");
    let body = received[0].json();
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{body}");
    let of = |name: &str| {
        events
            .iter()
            .find(|e| e["container"] == name)
            .unwrap_or_else(|| panic!("no event for {name}: {body}"))
    };
    let (updated, refused) = (of(&good), of(&picky));
    assert_eq!(updated["event"], "succeeded", "{body}");
    assert_eq!(refused["event"], "rolled_back", "{body}");
    for event in [updated, refused] {
        assert_eq!(event["old_digest"], short(&v1), "{body}");
        assert_eq!(event["new_digest"], short(&v2), "{body}");
    }
    assert!(
        refused["reason"].as_str().unwrap().contains("exited"),
        "{body}"
    );
    assert_eq!(refused["log_lines"], "panic: v2 is broken", "{body}");
    assert_eq!(
        body["title"],
        format!(
            "dockhook: {} on 2 containers: 1 rolled back, 1 updated",
            site.image("latest")
        ),
        "{body}"
    );
    let text = body["message"].as_str().unwrap();
    assert!(text.contains("    panic: v2 is broken"), "{text}");
}

#[test]
fn notify_test_reports_each_url_and_fails_when_one_does() {
    let receiver = Receiver::on(free_port());
    let dead = free_port();
    let good = format!(
        "generic+http://127.0.0.1:{}/ok?secret={SECRET}",
        receiver.port()
    );
    let bad = format!("generic+http://127.0.0.1:{dead}/dead");
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(Dockhook::BINARY)
        .arg("notify-test")
        .env_clear()
        .env("OWNER", OWNER)
        .env("DOCKHOOK_DATA_DIR", data.path())
        .env("DOCKHOOK_NOTIFY", format!("{good} {bad}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let masked = format!(
        "sent    generic+http://127.0.0.1:{}/ok?secret=***\n",
        receiver.port()
    );
    assert!(stdout.contains(&masked), "{stdout}");
    assert!(stdout.contains(&format!("FAILED  {bad}: ")), "{stdout}");
    assert!(
        stdout.contains("1 of 2 notification URLs took the test message"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET), "{stdout}");
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].json()["events"][0]["event"], "test");
    assert_eq!(
        received[0].header("x-dockhook-signature"),
        Some(signature(SECRET, &received[0].body).as_str())
    );

    // All good: exit 0. None configured: a clear error.
    let output = Command::new(Dockhook::BINARY)
        .arg("notify-test")
        .env_clear()
        .env("OWNER", OWNER)
        .env("DOCKHOOK_DATA_DIR", data.path())
        .env("DOCKHOOK_NOTIFY", &good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let output = Command::new(Dockhook::BINARY)
        .arg("notify-test")
        .env_clear()
        .env("OWNER", OWNER)
        .env("DOCKHOOK_DATA_DIR", data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no notification URLs: set DOCKHOOK_NOTIFY"),
        "{stderr}"
    );
}
