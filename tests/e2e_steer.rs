//! End to end against the real engine and a real registry: what a person
//! sees and does through the API. Targets, update now (and forced), rollback
//! to the kept image, quarantine of a rolled-back image, the modes
//! `approve` and `monitor`, delays, images kept for rollbacks, the event
//! stream, and the refusals of bad requests.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use support::scenario::{
    api, api_post, assert_one_running, image_exists, run_site, wait_deployment, wait_state, Site,
};
use support::*;

/// The one deployment id a webhook answer names.
fn queued(answer: &(u16, Value)) -> i64 {
    assert_eq!(answer.0, 202, "{}", answer.1);
    let ids = answer.1["deployments"].as_array().expect("deployment ids");
    assert_eq!(ids.len(), 1, "{}", answer.1);
    ids[0].as_i64().unwrap()
}

/// The deployment an accepted action answer names.
fn accepted(answer: &(u16, Value)) -> i64 {
    assert_eq!(answer.0, 202, "{}", answer.1);
    answer.1["deployment"].as_i64().expect("deployment id")
}

fn target<'a>(targets: &'a Value, name: &str) -> &'a Value {
    targets["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not a target: {targets}"))
}

#[test]
fn update_now_rollback_and_quarantine_through_the_api() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "steer");
    let name = run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    // The target is listed with what it runs.
    let (status, targets) = api(&dockhook, "/api/targets");
    assert_eq!(status, 200, "{targets}");
    let listed = target(&targets, &name);
    assert_eq!(listed["image"], site.image("latest"));
    assert_eq!(listed["image_id"], v1.as_str());
    assert_eq!(listed["mode"], "auto");
    assert!(
        listed["digest"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sha256:"),
        "the running digest: {listed}"
    );

    // Update now with nothing new: skipped; forced: a new container on v1.
    let path = format!("/api/targets/{name}/update");
    let id = accepted(&api_post(&dockhook, &path, ""));
    let ended = wait_deployment(&dockhook, id);
    assert_eq!(ended["state"], "skipped", "{ended}");
    assert_eq!(ended["source"], "api");
    let before = container_inspect(&name)["Id"].clone();
    let id = accepted(&api_post(&dockhook, &path, r#"{"force": true}"#));
    let ended = wait_deployment(&dockhook, id);
    assert_eq!(ended["state"], "succeeded", "{ended}");
    assert_eq!(ended["force"], true);
    assert_ne!(container_inspect(&name)["Id"], before, "recreated");
    assert_one_running(&name, &v1);

    // A push deploys v2; the image before it (v1) is kept for a rollback.
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let pushed = wait_deployment(&dockhook, queued(&site.hook(&dockhook, "latest")));
    assert_eq!(pushed["state"], "succeeded", "{pushed}");
    assert_one_running(&name, &v2);
    assert!(image_exists(&v1), "v1 is kept for a rollback");

    // Roll back: v1 runs again, under the same flow, and v2 is kept.
    let rollback = format!("/api/targets/{name}/rollback");
    let id = accepted(&api_post(&dockhook, &rollback, ""));
    let rolled = wait_deployment(&dockhook, id);
    assert_eq!(
        rolled["state"],
        "succeeded",
        "{rolled}\n{}",
        dockhook.log_text()
    );
    assert_eq!(rolled["kind"], "rollback");
    assert_one_running(&name, &v1);
    assert!(image_exists(&v2), "the image rolled away from is kept");
    let tagged = docker_stdout(["image", "inspect", "-f", "{{.Id}}", &site.image("latest")]);
    assert_eq!(tagged, v1, "the tag names what runs");

    // The webhook's redelivery of v2 does not bring it back (quarantine).
    let again = wait_deployment(&dockhook, queued(&site.hook(&dockhook, "latest")));
    assert_eq!(again["state"], "skipped", "{again}");
    let note = steps_text(&dockhook, again["id"].as_i64().unwrap());
    assert!(
        note.contains(&format!("rolled back in deployment {id}")),
        "{note}"
    );
    assert_one_running(&name, &v1);

    // A rollback to a named deployment: the forced v1 one is deployment 2.
    let to_push = pushed["id"].as_i64().unwrap();
    let body = format!(r#"{{"to": {to_push}}}"#);
    let id = accepted(&api_post(&dockhook, &rollback, &body));
    let back = wait_deployment(&dockhook, id);
    assert_eq!(back["state"], "succeeded", "{back}");
    assert_eq!(back["rollback_to"], to_push);
    assert_one_running(&name, &v2);

    // A new push lifts nothing it should not: v3 deploys.
    let v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let third = wait_deployment(&dockhook, queued(&site.hook(&dockhook, "latest")));
    assert_eq!(third["state"], "succeeded", "{third}");
    assert_one_running(&name, &v3);
    // keep_images = 1: the newest previous image (v2) stays, v1 goes.
    assert!(image_exists(&v2));
    assert!(!image_exists(&v1), "older images are removed");
}

/// Every step's state and note of deployment `id`, one per line.
fn steps_text(dockhook: &Dockhook, id: i64) -> String {
    support::scenario::steps(dockhook, id)
        .into_iter()
        .map(|(state, detail)| format!("{state}: {detail}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn approve_reject_and_monitor_modes() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "modes");
    let held = run_site(
        &mut cleanup,
        &site,
        &format!("{}-held", site.name),
        &["--label", "dockhook.mode=approve"],
    );
    let watched = run_site(
        &mut cleanup,
        &site,
        &format!("{}-watched", site.name),
        &["--label", "dockhook.mode=monitor"],
    );
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let (_, targets) = api(&dockhook, "/api/targets");
    assert_eq!(target(&targets, &held)["mode"], "approve");
    assert_eq!(target(&targets, &watched)["mode"], "monitor");

    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let (status, answer) = site.hook(&dockhook, "latest");
    assert_eq!(status, 202, "{answer}");
    let ids: Vec<i64> = answer["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{answer}");
    let by_target = |target: &str| {
        ids.iter()
            .copied()
            .find(|id| api(&dockhook, &format!("/api/deployments/{id}")).1["target"] == target)
            .unwrap()
    };
    let (waiting, available) = (by_target(&held), by_target(&watched));
    wait_state(&dockhook, waiting, "awaiting_approval");
    let seen = wait_deployment(&dockhook, available);
    assert_eq!(seen["state"], "available", "{seen}");
    // Nothing was pulled or changed for either.
    assert_one_running(&held, &v1);
    assert_one_running(&watched, &v1);
    let (_, targets) = api(&dockhook, "/api/targets");
    let pending = &target(&targets, &held)["pending"];
    assert_eq!(pending[0]["id"], waiting, "{targets}");

    // Approving deploys it.
    let (status, answer) = api_post(
        &dockhook,
        &format!("/api/deployments/{waiting}/approve"),
        "",
    );
    assert_eq!(status, 200, "{answer}");
    let approved = wait_deployment(&dockhook, waiting);
    assert_eq!(approved["state"], "succeeded", "{approved}");
    assert_one_running(&held, &v2);
    // Approving again is refused, and changes nothing.
    let (status, answer) = api_post(
        &dockhook,
        &format!("/api/deployments/{waiting}/approve"),
        "",
    );
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("succeeded"),
        "{answer}"
    );

    // Rejecting ends the next one `rejected`; the container is untouched.
    let _v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let (_, answer) = site.hook(&dockhook, "latest");
    let next = answer["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .find(|id| api(&dockhook, &format!("/api/deployments/{id}")).1["target"] == held.as_str())
        .unwrap();
    wait_state(&dockhook, next, "awaiting_approval");
    let before = container_inspect(&held);
    let (status, answer) = api_post(&dockhook, &format!("/api/deployments/{next}/reject"), "");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["deployment"]["state"], "rejected");
    let after = container_inspect(&held);
    assert_eq!(after["Id"], before["Id"]);
    assert_eq!(after["Image"], v2.as_str());
    assert_eq!(
        wait_deployment(&dockhook, next)["state"],
        "rejected",
        "final"
    );
    assert_one_running(&watched, &v1);
}

#[test]
fn a_delay_waits_for_the_newest_push_to_stay_the_newest() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "delay");
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name.clone(),
        &["--label", "dockhook.delay=8s"],
    );
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    let _v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let first = queued(&site.hook(&dockhook, "latest"));
    let first_due = due_at(&wait_state(&dockhook, first, "delayed"));
    // A newer push supersedes it and restarts the wait.
    let v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let second = queued(&site.hook(&dockhook, "latest"));
    assert_ne!(second, first);
    let first_ended = wait_deployment(&dockhook, first);
    assert_eq!(first_ended["state"], "skipped", "{first_ended}");
    let (_, waiting) = api(&dockhook, &format!("/api/deployments/{second}"));
    assert_eq!(waiting["state"], "delayed", "{waiting}");
    let second_due = due_at(&waiting);
    assert!(
        second_due > first_due,
        "the wait restarted: {first_due} then {second_due}"
    );
    assert_one_running(&name, &v1);

    let ended = wait_deployment(&dockhook, second);
    assert_eq!(ended["state"], "succeeded", "{ended}");
    let (_, steps) = api(&dockhook, &format!("/api/deployments/{second}"));
    let pulled_at = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "pulling")
        .expect("it pulled")["at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pulled_at >= second_due,
        "pulled at {pulled_at}, due {second_due}"
    );
    assert_one_running(&name, &v3);
}

/// A delayed deployment's `due_at` (RFC 3339, which sorts as text).
fn due_at(deployment: &Value) -> String {
    deployment["due_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no due_at: {deployment}"))
        .to_string()
}

/// Reads Server-Sent Events from `/api/events` until `done` says so.
fn follow_events(dockhook: &Dockhook, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut stream = TcpStream::connect(dockhook.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("the event stream stays open");
        if let Some(data) = line.strip_prefix("data:") {
            let change: Value = serde_json::from_str(data.trim()).unwrap();
            let finished = done(&change);
            seen.push(change);
            if finished {
                break;
            }
        }
    }
    seen
}

#[test]
fn the_event_stream_tells_each_state_of_a_push() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "events");
    let name = run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let (status, _) = api(&dockhook, "/api/targets");
    assert_eq!(status, 200);

    // Unauthenticated: refused.
    let response = request("GET", &dockhook.url("/api/events"), &[], b"").unwrap();
    assert_eq!(response.status, 401);

    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let follower = {
        std::thread::scope(|scope| {
            let handle =
                scope.spawn(|| follow_events(&dockhook, |change| change["state"] == "succeeded"));
            // Subscribed before the push: give the connection a moment.
            std::thread::sleep(Duration::from_millis(300));
            let id = queued(&site.hook(&dockhook, "latest"));
            (id, handle.join().unwrap())
        })
    };
    let (id, changes) = follower;
    let states: Vec<&str> = changes
        .iter()
        .filter(|c| c["deployment"] == id)
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"queued"), "{changes:?}");
    assert_eq!(states.last(), Some(&"succeeded"), "{changes:?}");
    assert!(
        states.contains(&"pulling") && states.contains(&"verifying"),
        "{states:?}"
    );
    assert!(changes.iter().all(|c| c["target"] == name.as_str()));
    assert_one_running(&name, &v2);
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "badsteer");
    let name = run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let before = container_inspect(&name)["Id"].clone();

    let oversized = "x".repeat(5000);
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            "/api/targets/nosuch/update".into(),
            "",
            404,
            "no running container named",
        ),
        (
            format!("/api/targets/{name}/update"),
            "{\"force\": 1}",
            400,
            "invalid JSON",
        ),
        (
            format!("/api/targets/{name}/update"),
            "{\"forse\": true}",
            400,
            "unknown field",
        ),
        (
            format!("/api/targets/{name}/rollback"),
            "",
            409,
            "no successful deployment",
        ),
        (
            format!("/api/targets/{name}/rollback"),
            "{\"to\": 999}",
            404,
            "no deployment 999",
        ),
        (
            "/api/deployments/999/approve".into(),
            "",
            404,
            "no deployment 999",
        ),
        (
            "/api/deployments/x/reject".into(),
            "",
            400,
            "must be a number",
        ),
        (
            format!("/api/targets/{name}/update"),
            &oversized,
            413,
            "limit",
        ),
    ];
    for (path, body, status, needle) in &cases {
        let (got, answer) = api_post(&dockhook, path, body);
        assert_eq!(got, *status, "{path} {body:.40}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{path}: {answer}"
        );
    }
    // Without the token: 401, on every action.
    for path in [
        format!("/api/targets/{name}/update"),
        format!("/api/targets/{name}/rollback"),
        "/api/deployments/1/approve".to_string(),
        "/api/deployments/1/reject".to_string(),
    ] {
        let response = request("POST", &dockhook.url(&path), &[], b"").unwrap();
        assert_eq!(response.status, 401, "{path}");
    }
    let response = request("GET", &dockhook.url("/api/targets"), &[], b"").unwrap();
    assert_eq!(response.status, 401);
    let (_, deployments) = api(&dockhook, "/api/deployments");
    assert_eq!(
        deployments["deployments"],
        Value::Array(vec![]),
        "nothing was recorded"
    );
    assert_eq!(container_inspect(&name)["Id"], before);
    assert_one_running(&name, &v1);
}
