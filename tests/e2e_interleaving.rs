//! End to end: crashes and restarts at the moments that used to strand a
//! site. A kill during the second of two queued updates, a kill while the
//! old container is in its graceful stop, and a start while Docker does not
//! answer: each time the site is back under its own name, the history says
//! what is true on the host, and the next push updates it.

mod support;

use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use support::scenario::{api, assert_one_running, run_site, wait_deployment, Site};
use support::*;

fn state_of(dockhook: &Dockhook, id: i64) -> String {
    api(dockhook, &format!("/api/deployments/{id}")).1["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Issue: a queued job recorded the container of the moment the webhook
/// came, which the update before it then replaced. Killed during that
/// second update and restarted, dockhook undid it with the stale ID and
/// left the site down. Now the job resolves its container when it runs.
#[test]
fn kill_9_during_the_second_of_two_queued_updates_leaves_the_site_up() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "queuedkill");
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &["--label", "dockhook.strategy=stop-first"],
    );
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let env = [
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
        ("DOCKHOOK_GRACE", "20s"),
    ];
    let mut first = Dockhook::start(&site.registry.host(), &env);
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let (status, answer) = site.hook(&first, "latest");
    assert_eq!(status, 202, "{answer}");
    let one = answer["deployments"][0].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || state_of(&first, one)
            == "verifying"),
        "{}",
        first.log_text()
    );
    // Queued behind the first, while the v1 container still has the name.
    let v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let (status, answer) = site.hook(&first, "latest");
    assert_eq!(status, 202, "{answer}");
    let two = answer["deployments"][0].as_i64().unwrap();
    assert_ne!(one, two);
    let second_verifying = wait_until(Duration::from_secs(90), || {
        state_of(&first, two) == "verifying"
    });
    assert!(second_verifying, "{}", first.log_text());
    first.kill_9();

    let second = Dockhook::start(
        &site.registry.host(),
        &[
            ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
            ("DOCKHOOK_GRACE", "1s"),
        ],
    );
    let deployment = wait_deployment(&second, two);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(&name, &v3);

    // The next push updates it.
    let v4 = site.push(&mut cleanup, "latest", SiteImage::new("v4"));
    let deployment = site.deploy(&second, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(&name, &v4);
}

/// Sends the webhook for `site` to a dockhook of its own and kills it (-9)
/// two seconds into the old container's stop, which must take longer (a
/// stop signal the site ignores). Returns its data directory and the
/// deployment.
fn kill_9_during_the_old_containers_stop(site: &Site) -> (tempfile::TempDir, i64) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let mut first = Dockhook::start(
        &site.registry.host(),
        &[("DOCKHOOK_DATA_DIR", data_dir.as_str())],
    );
    let (status, answer) = site.hook(&first, "latest");
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployments"][0].as_i64().unwrap();
    let stopping = wait_until(Duration::from_secs(60), || {
        state_of(&first, id) == "stopping"
    });
    assert!(stopping, "{}", first.log_text());
    std::thread::sleep(Duration::from_secs(2));
    first.kill_9();
    (data, id)
}

/// Issue: killed while the old container was in its graceful stop and
/// restarted at once, dockhook saw it still running, removed the healthy
/// new one and recorded a rollback; then the old one finished stopping and
/// the site was down. Now recovery lets the stop end, finishes the update
/// (start-first passed its commit point), and records what the host shows.
#[test]
fn kill_9_during_the_old_containers_graceful_stop_finishes_the_update() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "stopkill");
    let network = cleanup.network(&format!("{}-net", site.name));
    docker(["network", "create", "--label", "dockhook-test=1", &network]);
    // busybox httpd ignores SIGWINCH: each stop takes the full timeout.
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &[
            "--network",
            &network,
            "--network-alias",
            "web",
            "--stop-signal",
            "SIGWINCH",
            "--stop-timeout",
            "8",
        ],
    );
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let (data, id) = kill_9_during_the_old_containers_stop(&site);
    let data_dir = data.path().to_string_lossy().to_string();
    let env = [("DOCKHOOK_DATA_DIR", data_dir.as_str())];
    let old_still_running = container_inspect(&name)["State"]["Running"] == true;

    let second = Dockhook::start(&site.registry.host(), &env);
    let deployment = wait_deployment(&second, id);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert!(old_still_running, "the kill came during the stop");
    // Long after the interrupted stop would have ended, the site runs.
    std::thread::sleep(Duration::from_secs(9));
    assert_one_running(&name, &v2);
    let aliases =
        &container_inspect(&name)["NetworkSettings"]["Networks"][network.as_str()]["Aliases"];
    assert!(
        aliases.as_array().unwrap().iter().any(|a| a == "web"),
        "{aliases}"
    );
}

/// Forwards connections from a socket of its own to Docker's, once it is
/// told to: a Docker that comes up after dockhook does.
struct LateDocker {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl LateDocker {
    fn new() -> LateDocker {
        let dir = tempfile::tempdir().unwrap();
        LateDocker {
            path: dir.path().join("docker.sock"),
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Starts answering, by forwarding to the real engine's socket.
    fn come_up(&self) {
        let listener = UnixListener::bind(&self.path).unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                pipe(client.try_clone().unwrap(), engine.try_clone().unwrap());
                pipe(engine, client);
            }
        });
    }
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if std::io::Write::write_all(&mut to, &buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// Issue: with Docker down at start, interrupted deployments were marked
/// failed for good. Now recovery waits (and `/healthz` says not ready),
/// then puts the site right once Docker answers.
#[test]
fn recovery_waits_for_docker_to_answer() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "latedocker");
    let name = run_site(&mut cleanup, &site, &site.name, &[]);
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let mut first = Dockhook::start(
        &site.registry.host(),
        &[
            ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
            ("DOCKHOOK_GRACE", "60s"),
        ],
    );
    let (status, answer) = site.hook(&first, "latest");
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployments"][0].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || state_of(&first, id)
            == "verifying"),
        "{}",
        first.log_text()
    );
    first.kill_9();

    let docker = LateDocker::new();
    let host = docker.host();
    let second = Dockhook::start(
        &site.registry.host(),
        &[
            ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
            ("DOCKHOOK_DOCKER_HOST", host.as_str()),
        ],
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(state_of(&second, id), "verifying", "nothing decided yet");
    let health = request("GET", &second.url("/healthz"), &[], b"").unwrap();
    assert_eq!(health.status, 503);

    docker.come_up();
    let deployment = wait_deployment(&second, id);
    assert_eq!(deployment["state"], "rolled_back", "{deployment}");
    assert_one_running(&name, &v1);
    let ready = wait_until(Duration::from_secs(10), || {
        request("GET", &second.url("/healthz"), &[], b"").is_ok_and(|r| r.status == 200)
    });
    assert!(ready, "{}", second.log_text());
}

/// The manifest digest the registry serves image `id` under.
fn digest_of(id: &str) -> String {
    let digests = docker_stdout(["image", "inspect", "--format", "{{json .RepoDigests}}", id]);
    let digests: Vec<String> = serde_json::from_str(&digests).unwrap();
    let first = digests
        .first()
        .unwrap_or_else(|| panic!("{id} has no digest"));
    first.rsplit_once('@').unwrap().1.to_string()
}

/// Sends the generic hook for `image` at `digest` and waits for the one
/// deployment it queues.
fn deploy_digest(dockhook: &Dockhook, image: &str, digest: &str) -> serde_json::Value {
    let body = serde_json::json!({ "image": image, "digest": digest }).to_string();
    let url = dockhook.url(&format!("/hooks/generic/{}", hook_token("generic")));
    let (status, answer) = post_json(&url, &body, &[]);
    assert_eq!(status, 202, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    wait_deployment(dockhook, answer["deployments"][0].as_i64().unwrap())
}

/// A registry tag moved back to an image it held before (a rollback by
/// re-tagging) deploys that image again; then forward again.
#[test]
fn a_tag_moved_back_and_forth_deploys_each_time() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "backforth");
    let name = run_site(&mut cleanup, &site, &site.name, &[]);
    let digest_a = digest_of(&v1);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let latest = site.image("latest");
    // The push left no local copy: read its digest from a pull.
    docker(["pull", &latest]);
    let digest_b = digest_of(&v2);
    docker(["rmi", &latest]);
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let by_digest = |digest: &str| format!("{}@{digest}", latest.rsplit_once(':').unwrap().0);
    // Moves `latest` in the registry to the image at `digest`.
    let retag = |digest: &str| {
        docker(["pull", &by_digest(digest)]);
        docker(["tag", &by_digest(digest), &latest]);
        docker(["push", &latest]);
        docker(["rmi", &latest]);
    };

    let deployment = deploy_digest(&dockhook, &latest, &digest_b);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(&name, &v2);
    retag(&digest_a);
    let deployment = deploy_digest(&dockhook, &latest, &digest_a);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(&name, &v1);
    retag(&digest_b);
    let deployment = deploy_digest(&dockhook, &latest, &digest_b);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(&name, &v2);
}

/// Two replicas of one tag, updated by one push: each ends on the new
/// image, one after the other, and the old image goes once neither uses it.
#[test]
fn replicas_of_one_image_both_move_and_the_old_image_goes_last() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "replicas");
    let a = run_site(&mut cleanup, &site, &format!("{}-a", site.name), &[]);
    let b = run_site(&mut cleanup, &site, &format!("{}-b", site.name), &[]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[("DOCKHOOK_KEEP_IMAGES", "0")]);
    let (status, answer) = site.hook(&dockhook, "latest");
    assert_eq!(status, 202, "{answer}");
    let ids: Vec<i64> = answer["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{answer}");
    let ended: Vec<_> = ids
        .iter()
        .map(|&id| wait_deployment(&dockhook, id))
        .collect();
    for deployment in &ended {
        assert_eq!(deployment["state"], "succeeded", "{deployment}");
    }
    // Serialised: the second started only after the first ended.
    let (first, second) = if ended[0]["finished_at"].as_str() <= ended[1]["finished_at"].as_str() {
        (&ended[0], &ended[1])
    } else {
        (&ended[1], &ended[0])
    };
    let second_steps = second["steps"].as_array().expect("steps");
    let second_pulled = second_steps
        .iter()
        .find(|step| step["state"] == "pulling")
        .expect("the second pulled")["at"]
        .as_str()
        .unwrap();
    assert!(
        first["finished_at"].as_str().unwrap() <= second_pulled,
        "{first}\n{second}"
    );
    assert_one_running(&a, &v2);
    assert_one_running(&b, &v2);
    assert!(
        !support::scenario::image_exists(&v1),
        "the old image is removed once no replica uses it"
    );
}

/// The aliases a container answers to on `network`, without Docker's own
/// short-ID alias.
fn aliases(name: &str, network: &str) -> Vec<String> {
    let inspect = container_inspect(name);
    let id = inspect["Id"].as_str().unwrap().to_string();
    let mut aliases: Vec<String> = inspect["NetworkSettings"]["Networks"][network]["Aliases"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not on {network}: {inspect}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .filter(|a| !id.starts_with(a.as_str()))
        .collect();
    aliases.sort();
    aliases
}

/// A start-first update undone after the old container had left its
/// networks (here: the new one vanished during a crash past the commit
/// point) puts the old one back on every network with every alias.
#[test]
fn an_undone_start_first_update_puts_the_old_container_back_on_its_networks() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "undonets");
    let front = cleanup.network(&format!("{}-front", site.name));
    let back = cleanup.network(&format!("{}-back", site.name));
    for network in [&front, &back] {
        docker(["network", "create", "--label", "dockhook-test=1", network]);
    }
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &[
            "--network",
            &front,
            "--network-alias",
            "web",
            "--stop-signal",
            "SIGWINCH",
            "--stop-timeout",
            "8",
        ],
    );
    docker([
        "network",
        "connect",
        "--alias",
        "api",
        "--alias",
        "db-client",
        &back,
        &name,
    ]);
    let (front_before, back_before) = (aliases(&name, &front), aliases(&name, &back));
    let old_id = container_inspect(&name)["Id"].as_str().unwrap().to_string();
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let (data, id) = kill_9_during_the_old_containers_stop(&site);
    let data_dir = data.path().to_string_lossy().to_string();
    let env = [("DOCKHOOK_DATA_DIR", data_dir.as_str())];
    // The new container is lost while dockhook is down.
    docker(["rm", "-f", &format!("{name}-dockhook-new-{id}")]);

    let second = Dockhook::start(&site.registry.host(), &env);
    let deployment = wait_deployment(&second, id);
    assert_eq!(deployment["state"], "rolled_back", "{deployment}");
    assert_one_running(&name, &v1);
    assert_eq!(container_inspect(&name)["Id"], old_id.as_str());
    assert_eq!(aliases(&name, &front), front_before);
    assert_eq!(aliases(&name, &back), back_before);
    // Long after the interrupted stop would have ended, it still runs.
    std::thread::sleep(Duration::from_secs(7));
    assert_one_running(&name, &v1);
}

/// SIGTERM lets the update under way end and leaves the queued one for the
/// next start, which runs it.
#[test]
fn shutdown_leaves_queued_updates_for_the_next_start() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "drain");
    let name = run_site(&mut cleanup, &site, &site.name, &[]);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let env = [
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
        ("DOCKHOOK_GRACE", "4s"),
    ];
    let mut first = Dockhook::start(&site.registry.host(), &env);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let (_, answer) = site.hook(&first, "latest");
    let one = answer["deployments"][0].as_i64().unwrap();
    assert!(wait_until(Duration::from_secs(30), || state_of(
        &first, one
    ) == "verifying"));
    let v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let (_, answer) = site.hook(&first, "latest");
    let two = answer["deployments"][0].as_i64().unwrap();
    let exit = first.terminate(Duration::from_secs(30));
    assert!(exit.is_some_and(|s| s.success()), "{}", first.log_text());
    assert_one_running(&name, &v2);

    let second = Dockhook::start(&site.registry.host(), &env);
    let (_, before) = api(&second, &format!("/api/deployments/{one}"));
    assert_eq!(
        before["state"], "succeeded",
        "the running one ended: {before}"
    );
    let deployment = wait_deployment(&second, two);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(&name, &v3);
}
