//! End to end: the `dockhook` command-line client against a running
//! dockhook, a real registry and real containers. Each test runs the
//! binary as a person or a script would (`dockhook status --url ...`) and
//! checks what it prints, its exit code, and what happened to the
//! containers. (`docker exec ... dockhook status` inside dockhook's own
//! container is in e2e_container.rs.)

mod support;

use serde_json::Value;
use support::scenario::{api, assert_one_running, run_site, wait_deployment, wait_state, Site};
use support::*;

/// What one run of the client did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The line of stdout that starts with `start`.
    fn line(&self, start: &str) -> &str {
        self.stdout
            .lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting with {start:?}: {self:?}"))
    }
}

/// Runs `dockhook ARGS` with `env` and nothing of the developer's shell.
fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Dockhook::command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    // The closing note of the issue shows these.
    eprintln!(
        "$ dockhook {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    run
}

/// Runs a client command against `dockhook`: `--url` and the API token in
/// `DOCKHOOK_API_TOKEN`, options after the subcommand.
fn cli(dockhook: &Dockhook, args: &[&str]) -> Run {
    let url = dockhook.base_url();
    let mut all = args.to_vec();
    all.extend(["--url", &url]);
    run(&all, &[("DOCKHOOK_API_TOKEN", API_TOKEN)])
}

/// The ID in the first line, `... queued as deployment ID...`.
fn queued_id(run: &Run) -> i64 {
    let line = run.line("");
    line.split("queued as deployment ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no deployment ID: {run:?}"))
}

/// The states printed by `--wait`, in order.
fn followed_states(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter(|line| line.as_bytes().get(2) == Some(&b':') && line.contains('+'))
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

#[test]
fn a_push_shows_in_status_history_and_show() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "cli-read");
    let name = run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let id = deployment["id"].as_i64().unwrap();

    let status = cli(&dockhook, &["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.line("NAME").contains("LAST DEPLOYMENT"),
        "{status:?}"
    );
    let row: Vec<&str> = status
        .line(&format!("{name} "))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], site.image("latest"), "{status:?}");
    assert!(
        row[2].starts_with("sha256:") && row[2].len() == 19,
        "short digest: {status:?}"
    );
    assert_eq!(row[3], "auto");
    assert_eq!(
        row[4..6],
        [id.to_string().as_str(), "succeeded"],
        "{status:?}"
    );

    // Scripts get the API's JSON: the digest whole, the image ID it runs.
    let targets = cli(&dockhook, &["status", "--json"]).json();
    let target = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name.as_str())
        .expect("the site is listed");
    assert_eq!(target["image_id"], v2.as_str());
    assert!(
        target["digest"].as_str().unwrap().starts_with(row[2]),
        "{target}"
    );
    assert_eq!(target["last_deployment"]["id"], id);

    let history = cli(&dockhook, &["history", &name]);
    assert_eq!(history.code, 0, "{history:?}");
    let row: Vec<&str> = history.line(&id.to_string()).split_whitespace().collect();
    assert_eq!(
        row[..5],
        [
            &id.to_string(),
            name.as_str(),
            "succeeded",
            "push",
            "dockerhub"
        ]
    );
    let listed = cli(&dockhook, &["history", &name, "--limit", "5", "--json"]).json();
    assert_eq!(
        listed["deployments"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    assert_eq!(listed["deployments"][0]["target"], name.as_str());

    let show = cli(&dockhook, &["show", &id.to_string()]);
    assert_eq!(show.code, 0, "{show:?}");
    assert_eq!(
        show.line("deployment"),
        format!("deployment {id} of {name}")
    );
    assert!(show.line("  timings").contains("to serving "), "{show:?}");
    assert!(show.line("  after").contains(&v2[7..19]), "{show:?}");
    let steps: Vec<&str> = show
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("AT"))
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    assert_eq!(steps.first(), Some(&"queued"), "{show:?}");
    assert_eq!(steps.last(), Some(&"succeeded"), "{show:?}");
    assert!(
        steps.contains(&"pulling") && steps.contains(&"verifying"),
        "{show:?}"
    );
    let detail = cli(&dockhook, &["show", &id.to_string(), "--json"]).json();
    assert_eq!(detail["new_image_id"], v2.as_str());
    assert!(
        detail["timings"]["total"].as_f64().unwrap() > 0.0,
        "{detail}"
    );

    let missing = cli(&dockhook, &["show", "999999"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert_eq!(missing.stderr.trim(), "dockhook: no deployment 999999");
    assert_one_running(&name, &v2);
}

#[test]
fn wrong_token_unreachable_server_and_bad_usage_exit_2_with_a_clear_error() {
    require_docker();
    let dockhook = Dockhook::start("127.0.0.1:9", &[]);
    let url = dockhook.base_url();
    let wrong = run(
        &["status", "--url", &url],
        &[("DOCKHOOK_API_TOKEN", "not-the-token-0123456789")],
    );
    assert_eq!(wrong.code, 2, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains(&format!("dockhook at {url} refused the token (401)")),
        "{wrong:?}"
    );
    assert!(wrong.stdout.is_empty(), "{wrong:?}");

    let closed = format!("http://127.0.0.1:{}", free_port());
    let unreachable = run(
        &["history", "--url", &closed],
        &[("DOCKHOOK_API_TOKEN", API_TOKEN)],
    );
    assert_eq!(unreachable.code, 2, "{unreachable:?}");
    assert!(
        unreachable
            .stderr
            .contains(&format!("cannot reach dockhook at {closed}")),
        "{unreachable:?}"
    );

    let usage = cli(&dockhook, &["history", "--limit", "0"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    assert!(usage.stderr.contains("--limit"), "{usage:?}");
}

#[test]
fn without_options_the_cli_uses_the_configured_address_and_the_generated_token() {
    require_docker();
    // No tokens set: dockhook generates them in its data directory.
    let dockhook = Dockhook::start(
        "127.0.0.1:9",
        &[("DOCKHOOK_TOKEN", ""), ("DOCKHOOK_API_TOKEN", "")],
    );
    let data_dir = dockhook.data_dir().to_str().unwrap().to_string();
    let env = [
        ("DOCKHOOK_LISTEN", dockhook.addr()),
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
    ];
    let status = run(&["status", "--json"], &env);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.json()["targets"].is_array(), "{status:?}");

    let token_file = dockhook.data_dir().join("api_token");
    let history = run(
        &[
            "history",
            "--url",
            &dockhook.base_url(),
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(history.code, 0, "{history:?}");

    let elsewhere = tempfile::tempdir().unwrap();
    let env = [
        ("DOCKHOOK_LISTEN", dockhook.addr()),
        ("DOCKHOOK_DATA_DIR", elsewhere.path().to_str().unwrap()),
    ];
    let no_token = run(&["status"], &env);
    assert_eq!(no_token.code, 2, "{no_token:?}");
    assert!(
        no_token
            .stderr
            .contains("set DOCKHOOK_API_TOKEN or pass --token-file"),
        "{no_token:?}"
    );
}

#[test]
fn tokens_rotate_from_the_cli_and_each_opens_only_its_own_door() {
    require_docker();
    let dockhook = Dockhook::start(
        "127.0.0.1:9",
        &[("DOCKHOOK_TOKEN", ""), ("DOCKHOOK_API_TOKEN", "")],
    );
    let data_dir = dockhook.data_dir().to_str().unwrap().to_string();
    let local = [
        ("DOCKHOOK_LISTEN", dockhook.addr()),
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
    ];
    let file = |name: &str| std::fs::read_to_string(dockhook.data_dir().join(name)).unwrap();
    let old_api = file("api_token");
    let old_hook = file("token");

    // The API token: the new one is printed once and kept where the CLI
    // on this host reads it; the old one works for the grace.
    let rotated = run(&["rotate-token", "api", "--grace", "1h"], &local);
    assert_eq!(rotated.code, 0, "{rotated:?}");
    let new_api = file("api_token");
    assert_ne!(new_api, old_api);
    assert!(
        rotated
            .stdout
            .contains(&format!("new API token: {new_api}")),
        "{rotated:?}"
    );
    assert!(rotated.stdout.contains("stays valid until"), "{rotated:?}");
    assert_eq!(
        run(&["status"], &local).code,
        0,
        "the CLI reads the new token"
    );
    let old_env = [("DOCKHOOK_API_TOKEN", old_api.trim())];
    let url = dockhook.base_url();
    assert_eq!(
        run(&["status", "--url", &url], &old_env).code,
        0,
        "the old token in its grace"
    );

    // A read-only token: made by its first rotation; it reads, it cannot act.
    let read = run(&["rotate-token", "read", "--json"], &local);
    assert_eq!(read.code, 0, "{read:?}");
    let read_token = read.json()["value"].as_str().unwrap().to_string();
    let as_reader = [("DOCKHOOK_API_TOKEN", read_token.as_str())];
    assert_eq!(run(&["status", "--url", &url], &as_reader).code, 0);
    let update = run(&["update", "anything", "--url", &url], &as_reader);
    assert_eq!(update.code, 1, "{update:?}");
    assert!(
        update.stderr.contains("read-only token cannot do this"),
        "{update:?}"
    );

    // The hook secret, with no grace: the old hook URLs stop at once.
    let hooks = run(&["rotate-token", "hook", "--grace", "0s"], &local);
    assert_eq!(hooks.code, 0, "{hooks:?}");
    let dockerhub_path = |secret: &str| {
        let secret = ::dockhook::settings::Secret::new(secret.trim());
        let token = ::dockhook::tokens::hook_token(&secret, "dockerhub");
        format!("/hooks/dockerhub/{}", token.expose())
    };
    let new_path = dockerhub_path(&file("token"));
    assert!(hooks.stdout.contains(&new_path), "{hooks:?}");
    let payload = dockerhub_payload(OWNER, "nothing-runs-this", "latest").to_string();
    let (status, body) = post_json(&dockhook.url(&dockerhub_path(&old_hook)), &payload, &[]);
    assert_eq!(status, 401, "{body}");
    let (status, body) = post_json(&dockhook.url(&new_path), &payload, &[]);
    assert_eq!(status, 200, "{body}");
    // A hook token opens no API.
    let hook_token = new_path.rsplit('/').next().unwrap();
    assert_eq!(
        run(
            &["status", "--url", &url],
            &[("DOCKHOOK_API_TOKEN", hook_token)]
        )
        .code,
        2
    );
}

#[test]
fn update_wait_follows_the_deployment_live_and_its_exit_code_says_how_it_ended() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "cli-update");
    let name = run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    // Nothing new: skipped, exit 3, the container untouched.
    let before = container_inspect(&name)["Id"].clone();
    let same = cli(&dockhook, &["update", &name, "--wait"]);
    assert_eq!(same.code, 3, "{same:?}");
    assert!(same.stdout.contains("skipped"), "{same:?}");
    assert_eq!(container_inspect(&name)["Id"], before);

    // A new image in the registry, no webhook: `update` deploys it.
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let update = cli(&dockhook, &["update", &name, "--wait"]);
    assert_eq!(update.code, 0, "{update:?}\n{}", dockhook.log_text());
    let id = queued_id(&update);
    assert_eq!(
        update.line("update of"),
        format!("update of {name} queued as deployment {id}")
    );
    let states = followed_states(&update);
    assert_eq!(
        states.first().map(String::as_str),
        Some("queued"),
        "{update:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{update:?}"
    );
    for state in ["pulling", "creating", "verifying", "cleaning_up"] {
        assert_eq!(
            states.iter().filter(|s| *s == state).count(),
            1,
            "{state} once: {update:?}"
        );
    }
    assert!(
        update
            .line(&format!("deployment {id} succeeded"))
            .contains(&format!("{name} runs")),
        "{update:?}"
    );
    assert_one_running(&name, &v2);
    assert_eq!(wait_deployment(&dockhook, id)["kind"], "manual");

    // Forced: the same image again, as a script sees it.
    let forced = cli(&dockhook, &["update", &name, "--force", "--wait", "--json"]);
    assert_eq!(forced.code, 0, "{forced:?}");
    let ended = forced.json();
    assert_eq!(ended["state"], "succeeded", "{ended}");
    assert_eq!(ended["force"], true, "{ended}");
    assert!(ended["steps"].as_array().unwrap().len() > 3, "{ended}");
    assert_one_running(&name, &v2);

    // Without --wait: accepted, the API's answer for scripts.
    let accepted = cli(&dockhook, &["update", &name, "--json"]);
    assert_eq!(accepted.code, 0, "{accepted:?}");
    let answer = accepted.json();
    assert_eq!(answer["status"], "accepted");
    wait_deployment(&dockhook, answer["deployment"].as_i64().unwrap());

    let unknown = cli(&dockhook, &["update", "no-such-container", "--wait"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("no-such-container"), "{unknown:?}");
}

#[test]
fn rollback_wait_deploys_the_previous_image_again() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "cli-rollback");
    let name = run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let first = site.deploy(&dockhook, "latest");
    assert_eq!(first["state"], "succeeded", "{first}");
    let v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let second = site.deploy(&dockhook, "latest");
    assert_eq!(second["state"], "succeeded", "{second}");
    assert_one_running(&name, &v3);

    let rollback = cli(&dockhook, &["rollback", &name, "--wait"]);
    assert_eq!(rollback.code, 0, "{rollback:?}\n{}", dockhook.log_text());
    let id = queued_id(&rollback);
    assert_eq!(
        rollback.line("rollback of"),
        format!("rollback of {name} queued as deployment {id}")
    );
    assert_eq!(
        followed_states(&rollback).last().map(String::as_str),
        Some("succeeded")
    );
    assert_one_running(&name, &v2);

    // Forward again to the newest deployment's image, named by its ID.
    let to = second["id"].to_string();
    let forward = cli(&dockhook, &["rollback", &name, "--to", &to, "--wait"]);
    assert_eq!(forward.code, 0, "{forward:?}\n{}", dockhook.log_text());
    let forward_id = queued_id(&forward);
    assert_one_running(&name, &v3);

    let history = cli(&dockhook, &["history", &name]);
    let kind = |id: i64| {
        let row = history.line(&format!("{id} "));
        row.split("  ")
            .map(str::trim)
            .find(|c| c.starts_with("rollback"))
            .map(str::to_string)
    };
    assert_eq!(kind(id).as_deref(), Some("rollback"), "{history:?}");
    assert_eq!(
        kind(forward_id),
        Some(format!("rollback to {to}")),
        "{history:?}"
    );
}

#[test]
fn approve_deploys_and_reject_leaves_the_container_untouched() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "cli-approve");
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name.clone(),
        &["--label", "dockhook.mode=approve"],
    );
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let before = container_inspect(&name)["Id"].clone();

    // A push waits for a person; status shows it pending.
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let (status, answer) = site.hook(&dockhook, "latest");
    assert_eq!(status, 202, "{answer}");
    let rejected = answer["deployments"][0].as_i64().unwrap();
    wait_state(&dockhook, rejected, "awaiting_approval");
    let status = cli(&dockhook, &["status"]);
    let row = status.line(&format!("{name} "));
    assert!(row.contains("approve"), "{status:?}");
    assert!(
        row.contains(&format!("{rejected} awaiting_approval")),
        "{status:?}"
    );

    let reject = cli(&dockhook, &["reject", &rejected.to_string()]);
    assert_eq!(reject.code, 0, "{reject:?}");
    assert_eq!(
        reject.stdout.trim(),
        format!("deployment {rejected} rejected: {name} was not touched")
    );
    assert_eq!(
        api(&dockhook, &format!("/api/deployments/{rejected}")).1["state"],
        "rejected"
    );
    assert_eq!(container_inspect(&name)["Id"], before, "untouched");
    assert_one_running(&name, &v1);

    // Deciding twice is refused: exit 1 and dockhook's reason.
    let again = cli(&dockhook, &["approve", &rejected.to_string()]);
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(
        again.stderr.trim(),
        format!("dockhook: deployment {rejected} is rejected, not awaiting approval")
    );

    let v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let (status, answer) = site.hook(&dockhook, "latest");
    assert_eq!(status, 202, "{answer}");
    let approved = answer["deployments"][0].as_i64().unwrap();
    wait_state(&dockhook, approved, "awaiting_approval");
    let approve = cli(&dockhook, &["approve", &approved.to_string(), "--wait"]);
    assert_eq!(approve.code, 0, "{approve:?}\n{}", dockhook.log_text());
    assert_eq!(
        approve.line("deployment"),
        format!("deployment {approved} approved")
    );
    assert_eq!(
        followed_states(&approve).last().map(String::as_str),
        Some("succeeded")
    );
    assert_one_running(&name, &v3);
}
