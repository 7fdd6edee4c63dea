//! End to end: remote engines, reached as the docker CLI reaches them.
//!
//! - TCP with TLS: dockhook, with `DOCKER_HOST=tcp://127.0.0.1:PORT`,
//!   `DOCKER_TLS_VERIFY=1` and `DOCKER_CERT_PATH`, updates a container on a
//!   private `dockerd` that listens there with `--tlsverify` (certificates
//!   made by the test with `openssl`), and says clearly what is wrong when
//!   the CA, the client certificate or a file is not right.
//! - SSH: with `DOCKER_HOST=ssh://root@127.0.0.1:PORT`, through a private
//!   `sshd` whose key runs `docker system dial-stdio` against the same
//!   daemon, it updates the container again; a key the server does not take
//!   is reported with what `ssh` said.
//!
//! The daemon is a private one ([`PrivateDaemon`]), so the test needs root;
//! it lives alone in its test binary because it aims the whole test support
//! (docker commands, images) at that daemon.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::ServerTls;
use support::scenario::{assert_one_running, run_site, Site};
use support::sshd::PrivateSshd;
use support::tls::{TestCa, Usage};
use support::*;

/// The environment of a docker CLI user of the engine at `address`.
fn tls_env<'a>(address: &'a str, cert_path: &'a Path) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DOCKER_HOST", address),
        ("DOCKER_TLS_VERIFY", "1"),
        (
            "DOCKER_CERT_PATH",
            cert_path.to_str().expect("a UTF-8 path"),
        ),
    ]
}

/// The first line `dockhook` logs with `needle`, within 20 s.
fn logged(dockhook: &Dockhook, needle: &str) -> String {
    dockhook
        .wait_for_log(needle, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no `{needle}` in the log:\n{}", dockhook.log_text()))
}

/// Expects `dockhook` connected to the engine at `address`, pushes
/// `version` and expects container `name` updated to it.
fn update_through(
    dockhook: &Dockhook,
    address: &str,
    site: &Site,
    cleanup: &mut Cleanup,
    name: &str,
    version: &str,
) {
    let connected = logged(dockhook, "connected to Docker");
    assert!(connected.contains(address), "{connected}");
    let image = site.push(cleanup, "latest", SiteImage::new(version));
    let deployment = site.deploy(dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(name, &image);
}

/// Starts dockhook with `env`, expects it to serve while the engine does
/// not answer, and returns the warning it logged about that.
fn refused(registry: &str, env: &[(&str, &str)]) -> String {
    let dockhook = Dockhook::start(registry, env);
    let warning = logged(&dockhook, "serving anyway");
    eprintln!("refused as it should be: {warning}");
    let health = request("GET", &dockhook.url("/healthz"), &[], b"").expect("/healthz answers");
    assert_eq!(health.status, 503, "{}", health.body);
    warning
}

#[test]
fn remote_engines_over_tls_and_ssh_are_updated_and_bad_credentials_explained() {
    let ca = TestCa::new("dockhook-test-ca");
    let server = ca.issue("server", Usage::Server);
    let (daemon, address) = PrivateDaemon::start_with_tls(&ServerTls {
        ca: ca.cert(),
        cert: server.cert,
        key: server.key,
    });
    use_daemon(&daemon.host());
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "tls");
    let registry = site.registry.host();
    let name = run_site(&mut cleanup, &site, &site.name.clone(), &[]);
    let certs = tempfile::tempdir().unwrap();
    let client = ca.issue("client", Usage::Client);
    let good = TestCa::cert_path(certs.path(), "good", &ca.cert(), &client);

    // The engine's certificate, checked against another CA.
    let other = TestCa::new("another-ca");
    let wrong_ca = TestCa::cert_path(certs.path(), "wrong-ca", &other.cert(), &client);
    let warning = refused(&registry, &tls_env(&address, &wrong_ca));
    let ca_file = wrong_ca.join("ca.pem").display().to_string();
    assert!(
        warning.contains("not signed by the CA in") && warning.contains(&ca_file),
        "{warning}"
    );

    // A client certificate the engine does not trust.
    let stranger = other.issue("client", Usage::Client);
    let untrusted = TestCa::cert_path(certs.path(), "untrusted", &ca.cert(), &stranger);
    let warning = refused(&registry, &tls_env(&address, &untrusted));
    let cert_file = untrusted.join("cert.pem").display().to_string();
    assert!(
        warning.contains("refused the client certificate") && warning.contains(&cert_file),
        "{warning}"
    );

    // A file missing: dockhook does not start, and names it.
    let incomplete = TestCa::cert_path(certs.path(), "incomplete", &ca.cert(), &client);
    std::fs::remove_file(incomplete.join("key.pem")).unwrap();
    let failure = Dockhook::try_start(&registry, &tls_env(&address, &incomplete))
        .err()
        .expect("dockhook started without key.pem");
    eprintln!("refused as it should be: {failure}");
    let key_file = incomplete.join("key.pem").display().to_string();
    assert!(
        failure.contains(&format!("{key_file} is missing")),
        "{failure}"
    );

    // The right certificates: an update, over TLS.
    let dockhook = Dockhook::start(&registry, &tls_env(&address, &good));
    update_through(&dockhook, &address, &site, &mut cleanup, &name, "v2");
    drop(dockhook);

    // Over SSH, to the same daemon.
    let sshd = PrivateSshd::start(&daemon.host());
    let path = sshd.client_path();
    let wrong_user = sshd.address().replace("root@", "nobody@");
    let refused_key = Dockhook::start(&registry, &[("DOCKER_HOST", &wrong_user), ("PATH", &path)]);
    let said = logged(&refused_key, "Permission denied");
    assert!(said.contains("ssh: nobody@127.0.0.1"), "{said}");
    drop(refused_key);

    let address = sshd.address();
    let dockhook = Dockhook::start(&registry, &[("DOCKER_HOST", &address), ("PATH", &path)]);
    update_through(&dockhook, &address, &site, &mut cleanup, &name, "v3");
    // The engine's event stream, one long ssh session, held throughout.
    assert!(
        dockhook
            .log_text()
            .lines()
            .all(|l| !l.contains("event stream failed")),
        "{}",
        dockhook.log_text()
    );
}
