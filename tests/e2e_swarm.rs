//! End to end on a single-node Swarm (the machine's engine, made a manager
//! only when `DOCKHOOK_TEST_SWARM=1`; see `support::swarm`): a push updates
//! a service through Swarm's rolling update, pinned to the pushed digest,
//! with no failed request through the service's network; a push whose
//! healthcheck fails ends rolled back by Swarm, with Swarm's message; a
//! global service is updated too; the API lists a service (not its tasks)
//! with its digest, and a person's rollback returns it to the digest
//! before; a crash during a rollout is followed to its end after the
//! restart.
//!
//! The probe is a container on the service's attachable overlay network
//! that fetches `http://SERVICE:8080/` in a loop (`timeout 1 wget`, one
//! request every 50 ms) and prints each answer, or `FAIL`, with the
//! host's uptime. Services use DNS round robin (`--endpoint-mode dnsrr`):
//! the VIP needs IPVS, which this machine's kernel does not offer, and
//! published ports need the ingress network, which needs it too. Services
//! update start-first with a healthcheck, so a new task serves before an
//! old one stops; the figures (webhook to every replica serving the new
//! digest, failed requests) are printed for the README.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::scenario::{api, api_post, steps, wait_deployment, Site};
use support::swarm::Swarm;
use support::*;

/// Replicas of the replicated services.
const REPLICAS: usize = 2;

/// The host's uptime in seconds: the probe stamps its answers with it.
fn uptime() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").expect("/proc/uptime");
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// A service of the site on an overlay network, probed from a container on
/// that network.
struct Fixture {
    site: Site,
    service: String,
    probe: String,
}

#[derive(Clone, Copy)]
enum Mode {
    Replicated,
    Global,
}

impl Fixture {
    /// Pushes `v1` (with `v1`'s healthcheck) as `latest`, runs it as a
    /// service with `extra` options, and starts the probe.
    fn start(cleanup: &mut Cleanup, prefix: &str, mode: Mode, extra: &[&str]) -> Fixture {
        let (site, _) = Site::new(cleanup, prefix);
        site.push(cleanup, "latest", SiteImage::new("v1").healthcheck());
        let service = cleanup.service(&site.name);
        let network = cleanup.network(&format!("{}-net", site.name));
        let probe = cleanup.container(&format!("{}-probe", site.name));
        #[rustfmt::skip]
        docker([
            "network", "create", "--driver", "overlay", "--attachable",
            "--label", "dockhook-test=1", &network,
        ]);
        let image = site.image("latest");
        let replicas = REPLICAS.to_string();
        let mode_args: Vec<&str> = match mode {
            Mode::Replicated => vec!["--replicas", &replicas],
            Mode::Global => vec!["--mode", "global"],
        };
        #[rustfmt::skip]
        let mut args = vec![
            "service", "create", "--detach", "--name", &service,
            "--label", "dockhook-test=1", "--container-label", "dockhook-test=1",
            "--network", &network, "--endpoint-mode", "dnsrr",
            "--update-order", "start-first", "--update-parallelism", "1",
            "--update-monitor", "3s",
        ];
        args.extend(mode_args);
        args.extend(extra);
        args.push(&image);
        docker(args);
        assert!(
            wait_until(Duration::from_secs(60), || running_tasks(&service).len()
                == expected_tasks(mode)),
            "service {service} did not start its tasks: {}",
            docker_stdout(["service", "ps", "--no-trunc", &service])
        );
        let script = format!(
            "while true; do read up _ < /proc/uptime; \
             if answer=$(timeout 1 wget -q -O- http://{service}:{SITE_PORT}/ 2>/dev/null); \
             then echo \"$up $answer\"; else echo \"$up FAIL\"; fi; sleep 0.05; done"
        );
        #[rustfmt::skip]
        docker([
            "run", "--detach", "--name", &probe, "--label", "dockhook-test=1",
            // It runs the site's image, but is no target.
            "--label", "dockhook.enable=false",
            "--network", &network, "--entrypoint", "sh", &image, "-c", &script,
        ]);
        let fixture = Fixture {
            site,
            service,
            probe,
        };
        assert!(
            wait_until(Duration::from_secs(30), || fixture
                .answers()
                .iter()
                .any(|(_, a)| a == "v1")),
            "the probe never reached v1: {:?}",
            fixture.answers()
        );
        fixture
    }

    /// The probe's answers so far: (uptime, page or `FAIL`).
    fn answers(&self) -> Vec<(f64, String)> {
        let logs = docker(["logs", &self.probe]);
        String::from_utf8_lossy(&logs.stdout)
            .lines()
            .filter_map(|line| {
                let (at, answer) = line.split_once(' ')?;
                Some((at.parse().ok()?, answer.trim().to_string()))
            })
            .collect()
    }

    /// The service's spec image, as Swarm holds it.
    fn spec_image(&self) -> String {
        docker_stdout([
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            &self.service,
        ])
    }

    /// Sends the push webhook for `latest` and returns the deployment id.
    fn hook(&self, dockhook: &Dockhook) -> i64 {
        let (status, answer) = self.site.hook(dockhook, "latest");
        assert_eq!(status, 202, "webhook not accepted: {answer}");
        let ids = answer["deployments"].as_array().expect("deployment ids");
        assert_eq!(ids.len(), 1, "one deployment, for the service: {answer}");
        ids[0].as_i64().unwrap()
    }
}

fn expected_tasks(mode: Mode) -> usize {
    match mode {
        Mode::Replicated => REPLICAS,
        Mode::Global => 1,
    }
}

/// The images of the service's running tasks.
fn running_tasks(service: &str) -> Vec<String> {
    let listed = docker_stdout([
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Image}} {{.CurrentState}}",
        service,
    ]);
    listed
        .lines()
        .filter(|line| line.contains(" Running "))
        .map(|line| {
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The digest the registry serves `latest` of the site under.
fn registry_digest(site: &Site) -> String {
    let url = format!("{}/v2/{}/manifests/latest", site.registry.url(), site.repo);
    let accept = "application/vnd.docker.distribution.manifest.v2+json";
    let response = request("HEAD", &url, &[("Accept", accept)], b"").expect("registry answers");
    response
        .header("Docker-Content-Digest")
        .expect("a digest header")
        .to_string()
}

/// A push that passes its healthcheck: Swarm replaces every task, start
/// first, the deployment succeeds on the pinned digest, and no probe
/// request fails.
fn healthy_push(test: &str, prefix: &str, mode: Mode) {
    let Some(_swarm) = Swarm::join(test) else {
        return;
    };
    require_docker();
    let mut cleanup = Cleanup::new();
    let fixture = Fixture::start(&mut cleanup, prefix, mode, &[]);
    let dockhook = Dockhook::start(&fixture.site.registry.host(), &[]);
    let before = fixture.spec_image();
    assert!(
        before.starts_with(&format!("{}@sha256:", fixture.site.image("latest"))),
        "docker service create pins the digest: {before}"
    );

    fixture
        .site
        .push(&mut cleanup, "latest", SiteImage::new("v2").healthcheck());
    let pushed = registry_digest(&fixture.site);
    let sent = uptime();
    let id = fixture.hook(&dockhook);
    let deployment = wait_deployment(&dockhook, id);
    let ended = uptime();
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let pinned = format!("{}@{pushed}", fixture.site.image("latest"));
    assert_eq!(fixture.spec_image(), pinned);
    assert_eq!(deployment["new_image_id"], pinned.as_str(), "{deployment}");
    assert_eq!(deployment["old_image_id"], before.as_str(), "{deployment}");
    let states: Vec<String> = steps(&dockhook, id).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        states,
        [
            "queued",
            "pulling",
            "starting",
            "verifying",
            "cleaning_up",
            "succeeded"
        ]
    );
    let tasks = running_tasks(&fixture.service);
    assert_eq!(tasks.len(), expected_tasks(mode), "{tasks:?}");
    assert!(tasks.iter().all(|image| *image == pinned), "{tasks:?}");

    // Every replica serves v2 now; then stop looking.
    let settled = uptime();
    assert!(
        wait_until(Duration::from_secs(10), || fixture
            .answers()
            .iter()
            .filter(|(at, _)| *at > settled)
            .count()
            >= 20),
        "the probe stopped answering"
    );
    let answers = fixture.answers();
    let after: Vec<&(f64, String)> = answers.iter().filter(|(at, _)| *at >= sent).collect();
    let failed: Vec<&&(f64, String)> = after
        .iter()
        .filter(|(_, a)| a != "v1" && a != "v2")
        .collect();
    let last_v1 = after
        .iter()
        .filter(|(_, a)| a == "v1")
        .map(|(at, _)| *at)
        .fold(sent, f64::max);
    let first_v2 = after.iter().find(|(_, a)| a == "v2").map(|(at, _)| *at);
    let tail: Vec<&str> = answers
        .iter()
        .filter(|(at, _)| *at > settled)
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        tail.iter().all(|a| *a == "v2"),
        "after the update: {tail:?}"
    );
    eprintln!(
        "FIGURES {prefix}: webhook → first v2 answer {:.2} s, → last v1 answer (every \
         replica serving v2) {:.2} s, → deployment succeeded {:.2} s; probe requests {} \
         during the update, failed {}; to_serving {}",
        first_v2.map_or(f64::NAN, |at| at - sent),
        last_v1 - sent,
        ended - sent,
        after.len(),
        failed.len(),
        deployment["timings"]["to_serving"]
    );
    assert!(
        failed.is_empty(),
        "failed requests during the update: {failed:?}"
    );

    // The API shows the service, on the pushed digest.
    let (_, targets) = api(&dockhook, "/api/targets");
    let listed: Vec<&Value> = targets["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|t| t["name"] == fixture.service.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "the service, not its tasks: {targets}");
    assert_eq!(listed[0]["kind"], "service", "{targets}");
    assert_eq!(listed[0]["digest"], pushed.as_str(), "{targets}");

    // A person's rollback puts the digest before it back, through Swarm.
    let path = format!("/api/targets/{}/rollback", fixture.service);
    let (status, answer) = api_post(&dockhook, &path, "");
    assert_eq!(status, 202, "{answer}");
    let rollback = answer["deployment"].as_i64().expect("deployment id");
    let rolled = wait_deployment(&dockhook, rollback);
    assert_eq!(rolled["state"], "succeeded", "{rolled}");
    assert_eq!(fixture.spec_image(), before);
    let back = uptime();
    assert!(
        wait_until(Duration::from_secs(10), || fixture
            .answers()
            .iter()
            .filter(|(at, _)| *at > back)
            .count()
            >= 10),
        "the probe stopped answering"
    );
    let answers = fixture.answers();
    let tail: Vec<&str> = answers
        .iter()
        .filter(|(at, _)| *at > back)
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        tail.iter().all(|a| *a == "v1"),
        "after the rollback: {tail:?}"
    );
}

#[test]
fn a_push_rolls_a_replicated_service_out_with_no_failed_request() {
    healthy_push(
        "a_push_rolls_a_replicated_service_out_with_no_failed_request",
        "swarm-replicated",
        Mode::Replicated,
    );
}

#[test]
fn a_push_updates_a_global_service() {
    healthy_push(
        "a_push_updates_a_global_service",
        "swarm-global",
        Mode::Global,
    );
}

#[test]
fn a_push_whose_healthcheck_fails_is_rolled_back_by_swarm() {
    let Some(_swarm) = Swarm::join("a_push_whose_healthcheck_fails_is_rolled_back_by_swarm") else {
        return;
    };
    require_docker();
    let mut cleanup = Cleanup::new();
    // Swarm's defaults: a failed task pauses the update.
    let fixture = Fixture::start(
        &mut cleanup,
        "swarm-unhealthy",
        Mode::Replicated,
        &["--update-failure-action", "pause"],
    );
    let dockhook = Dockhook::start(&fixture.site.registry.host(), &[]);
    let before = fixture.spec_image();

    fixture
        .site
        .push(&mut cleanup, "latest", SiteImage::new("v2").unhealthy());
    let sent = uptime();
    let id = fixture.hook(&dockhook);
    let deployment: Value = wait_deployment(&dockhook, id);
    assert_eq!(deployment["state"], "rolled_back", "{deployment}");
    let error = deployment["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("update paused due to failure or early termination of task"),
        "Swarm's message: {error}"
    );
    assert_eq!(fixture.spec_image(), before, "the old digest again");
    let tasks = running_tasks(&fixture.service);
    assert_eq!(tasks, vec![before.clone(); REPLICAS]);
    let notes: Vec<String> = steps(&dockhook, id).into_iter().map(|(_, n)| n).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("asking Swarm to roll back")),
        "{notes:?}"
    );
    let answers = fixture.answers();
    let after: Vec<&(f64, String)> = answers.iter().filter(|(at, _)| *at >= sent).collect();
    let failed = after.iter().filter(|(_, a)| a != "v1").count();
    eprintln!(
        "FIGURES swarm-unhealthy: probe requests {} during the update and its rollback, \
         answered by something else than v1: {failed}",
        after.len()
    );
    assert_eq!(failed, 0, "only v1 ever served: {after:?}");
}

/// dockhook crashes right after Swarm accepted the update (fault injection
/// at `verifying`); the next start follows the rollout Swarm carried on
/// with to its end, and records it.
#[test]
fn a_crash_during_a_rollout_is_followed_to_its_end_after_the_restart() {
    let test = "a_crash_during_a_rollout_is_followed_to_its_end_after_the_restart";
    let Some(_swarm) = Swarm::join(test) else {
        return;
    };
    require_docker();
    let mut cleanup = Cleanup::new();
    let fixture = Fixture::start(&mut cleanup, "swarm-crash", Mode::Replicated, &[]);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let mut crashing = Dockhook::start(
        &fixture.site.registry.host(),
        &[
            ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
            ("DOCKHOOK_FAULT_ABORT_AT", "verifying"),
        ],
    );
    fixture
        .site
        .push(&mut cleanup, "latest", SiteImage::new("v2").healthcheck());
    let pinned = format!(
        "{}@{}",
        fixture.site.image("latest"),
        registry_digest(&fixture.site)
    );
    let id = fixture.hook(&crashing);
    let exit = crashing.wait_exit(Duration::from_secs(60));
    assert!(
        exit.is_some_and(|s| !s.success()),
        "dockhook did not crash at verifying:\n{}",
        crashing.log_text()
    );
    // Swarm carries on without dockhook.
    assert_eq!(fixture.spec_image(), pinned);

    let dockhook = Dockhook::start(
        &fixture.site.registry.host(),
        &[("DOCKHOOK_DATA_DIR", data_dir.as_str())],
    );
    let deployment = wait_deployment(&dockhook, id);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let (_, last) = steps(&dockhook, id).pop().unwrap();
    assert!(
        last.contains("followed after dockhook stopped during step verifying"),
        "{last}"
    );
    let tasks = running_tasks(&fixture.service);
    assert_eq!(tasks, vec![pinned; REPLICAS]);
}
