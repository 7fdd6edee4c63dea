//! The machine's engine as a single-node Swarm manager, for the Swarm
//! tests, which run only when `DOCKHOOK_TEST_SWARM=1` is set (`.ci/run`
//! sets it): turning the engine into a manager reconfigures it, which no
//! test does unasked, and a private `dockerd` (iptables off) has no overlay
//! service discovery to probe a service through.
//!
//! [`Swarm::join`] makes the engine a manager (`docker swarm init
//! --advertise-addr 127.0.0.1`) unless it is one already; when the last
//! guard of the process drops, a swarm this module initialised is left
//! (`docker swarm leave --force`) and the `docker_gwbridge` network it
//! brought is removed, so the engine is as it was found. An engine that was
//! already a manager is left a manager. A node that is a Swarm worker, or
//! whose swarm is in an error state, fails the test: its state is not this
//! test's to change. The node of a swarm initialised here carries the
//! `dockhook-test` label, so `.ci/run` can leave a swarm a killed run left.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::docker::{docker, docker_ok, docker_stdout};
use super::util::wait_until;

/// The variable that lets the Swarm tests run.
pub const SWARM_VARIABLE: &str = "DOCKHOOK_TEST_SWARM";

/// Guards alive in this process, and whether the first one initialised
/// the swarm (and created `docker_gwbridge`).
static USERS: Mutex<(usize, bool, bool)> = Mutex::new((0, false, false));

/// See the module doc; hold it for the whole test.
pub struct Swarm(());

impl Swarm {
    /// A guard over a single-node swarm, or `None` (with a line saying the
    /// test did not run) when `DOCKHOOK_TEST_SWARM` is not `1`.
    pub fn join(test: &str) -> Option<Swarm> {
        match std::env::var(SWARM_VARIABLE).as_deref() {
            Ok("1") => {}
            Ok(other) => panic!("{SWARM_VARIABLE} is {other:?}: set it to 1 or unset it"),
            Err(_) => {
                // Straight to stderr, past the test harness's capture: a
                // skipped test must say so even when it "passes".
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: it makes the machine's Docker engine a Swarm manager, \
                     which it does only when {SWARM_VARIABLE}=1 (.ci/run sets it); this test \
                     did NOT run"
                );
                return None;
            }
        }
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        if users.0 == 0 {
            let (state, manager) = node_state();
            match (state.as_str(), manager) {
                ("active", true) => *users = (0, false, false),
                ("inactive", _) => {
                    let had_bridge = docker_ok(["network", "inspect", "docker_gwbridge"]);
                    docker(["swarm", "init", "--advertise-addr", "127.0.0.1"]);
                    // So that `.ci/run` can tell a swarm a killed run left.
                    let node = docker_stdout(["info", "--format", "{{.Swarm.NodeID}}"]);
                    docker(["node", "update", "--label-add", "dockhook-test=1", &node]);
                    // Swarm sets its ingress network up after `init` returns;
                    // a `leave` before that leaves it half made.
                    assert!(
                        wait_until(Duration::from_secs(30), || docker_ok([
                            "network", "inspect", "ingress"
                        ])),
                        "Swarm made no ingress network within 30 s of docker swarm init"
                    );
                    *users = (0, true, !had_bridge);
                }
                (state, manager) => panic!(
                    "the engine's Swarm state is {state:?} (manager: {manager}): the Swarm \
                     tests need an engine that is a manager or in no swarm"
                ),
            }
        }
        users.0 += 1;
        Some(Swarm(()))
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        users.0 -= 1;
        if users.0 == 0 && users.1 {
            docker_ok(["swarm", "leave", "--force"]);
            if users.2 {
                // In use until the ingress sandbox, which leave takes down
                // on its own time, is gone.
                wait_until(Duration::from_secs(15), || {
                    docker_ok(["network", "rm", "docker_gwbridge"])
                });
            }
            *users = (0, false, false);
        }
    }
}

/// The engine's `Swarm.LocalNodeState` and `Swarm.ControlAvailable`.
fn node_state() -> (String, bool) {
    let info = docker_stdout([
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]);
    let mut words = info.split_whitespace();
    let state = words.next().unwrap_or_default().to_string();
    (state, words.next() == Some("true"))
}
