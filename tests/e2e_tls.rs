//! End to end: dockhook serving HTTPS itself. With certificate files made by
//! `openssl` at test time (verified against their CA, reloaded when they
//! are replaced, trusted by the command-line client and the health probe),
//! and with certificates obtained over ACME from a real ACME server on
//! loopback (pebble), which validates the TLS-ALPN-01 challenge against
//! dockhook's own listener.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use support::pebble::Pebble;
use support::tls::{TestCa, Usage};
use support::*;

/// An HTTPS request's status and the certificate the server showed.
struct Answer {
    status: u16,
    leaf: Vec<u8>,
}

/// `GET url`, trusting only `root` (PEM), connecting to `addr` whatever the
/// URL's host resolves to.
fn https_get(url: &str, root: &[u8], addr: SocketAddr) -> Result<Answer, String> {
    let host = reqwest::Url::parse(url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(root).unwrap())
                .resolve(&host, addr)
                .tls_info(true)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
            let leaf = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|info| info.peer_certificate())
                .expect("an HTTPS answer has a peer certificate")
                .to_vec();
            Ok(Answer {
                status: response.status().as_u16(),
                leaf,
            })
        })
}

/// The first certificate in a PEM file, as DER.
fn leaf_of(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .unwrap_or_else(|e| panic!("no certificate in {}: {e}", path.display()))
        .to_vec()
}

/// Puts `from`'s certificate and key in place as `dir/cert.pem` and
/// `dir/key.pem`, each renamed over the old file as certbot does.
fn install(from: &support::tls::Issued, dir: &Path) {
    for (source, name) in [(&from.cert, "cert.pem"), (&from.key, "key.pem")] {
        let new = dir.join(format!("{name}.new"));
        fs::copy(source, &new).expect("cannot copy a certificate file");
        fs::rename(&new, dir.join(name)).expect("cannot move a certificate file");
    }
}

#[test]
fn https_from_files_is_verified_reloaded_and_used_by_the_cli() {
    let ca = TestCa::new("dockhook-e2e-tls");
    let (first, second) = (
        ca.issue("first", Usage::Server),
        ca.issue("second", Usage::Server),
    );
    let files = tempfile::tempdir().unwrap();
    install(&first, files.path());
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    let tls_env = [
        ("DOCKHOOK_TLS_CERT", cert.to_str().unwrap()),
        ("DOCKHOOK_TLS_KEY", key.to_str().unwrap()),
    ];
    let dockhook = Dockhook::start("127.0.0.1:9", &tls_env);
    let addr: SocketAddr = dockhook.addr().parse().unwrap();
    let root = fs::read(ca.cert()).unwrap();
    let url = format!("https://{addr}/healthz");

    let answer = https_get(&url, &root, addr).expect("HTTPS verified against the test CA");
    assert!(
        matches!(answer.status, 200 | 503),
        "/healthz over HTTPS answered {}",
        answer.status
    );
    assert_eq!(answer.leaf, leaf_of(&first.cert));
    let webhook_url = dockhook
        .wait_for_log("webhook URL", Duration::from_secs(5))
        .expect("the webhook URL is logged");
    assert!(webhook_url.contains("https://127.0.0.1:"), "{webhook_url}");

    // Plain HTTP to the HTTPS port: told what to do, not hung up on.
    let plain = request("GET", &format!("http://{addr}/healthz"), &[], b"")
        .expect("plain HTTP gets an answer");
    assert_eq!(plain.status, 400);
    assert!(plain.body.contains("use an https:// URL"), "{}", plain.body);

    // The health probe and the client on this host, as configured.
    let local = [
        &tls_env[..],
        &[
            ("DOCKHOOK_LISTEN", dockhook.addr()),
            ("DOCKHOOK_TOKEN", TOKEN),
            ("DOCKHOOK_API_TOKEN", API_TOKEN),
            ("OWNER", OWNER),
        ],
    ]
    .concat();
    let history = Dockhook::command()
        .args(["history", "--json"])
        .envs(local.iter().copied())
        .output()
        .unwrap();
    assert!(
        history.status.success(),
        "`dockhook history` over HTTPS failed: {}",
        String::from_utf8_lossy(&history.stderr)
    );
    let probe = Dockhook::command()
        .arg("healthcheck")
        .envs(local.iter().copied())
        .status()
        .unwrap();
    // The probe says what /healthz said (503 while Docker is unreachable):
    // it got its answer over TLS.
    assert_eq!(
        probe.success(),
        answer.status == 200,
        "the health probe disagrees with /healthz ({})",
        answer.status
    );

    // A renewal: new files, the new certificate served, no restart.
    install(&second, files.path());
    let replaced = Instant::now();
    let renewed = wait_until(Duration::from_secs(20), || {
        https_get(&url, &root, addr).is_ok_and(|answer| answer.leaf == leaf_of(&second.cert))
    });
    assert!(renewed, "the replaced certificate was not served");
    eprintln!(
        "FIGURE: replaced certificate served {:?} after the files changed",
        replaced.elapsed()
    );
    assert!(dockhook
        .wait_for_log("TLS certificate reloaded", Duration::from_secs(1))
        .is_some());

    // A key that is not the certificate's: an error, the old pair serves on.
    fs::copy(&first.key, &key).unwrap();
    dockhook
        .wait_for_log(
            "does not belong to the certificate",
            Duration::from_secs(20),
        )
        .expect("a mismatched pair is logged as an error");
    let answer = https_get(&url, &root, addr).expect("still serving");
    assert_eq!(answer.leaf, leaf_of(&second.cert));
}

#[test]
fn bad_certificate_files_stop_dockhook_at_start_saying_why() {
    let ca = TestCa::new("dockhook-e2e-tls-bad");
    let (one, other) = (
        ca.issue("one", Usage::Server),
        ca.issue("other", Usage::Server),
    );
    let missing = one.cert.with_file_name("missing.pem");
    for (cert, key, needle) in [
        (&one.cert, &other.key, "does not belong to the certificate"),
        (&missing, &one.key, "missing.pem"),
        (&one.key, &one.key, "no PEM certificate"),
    ] {
        let env = [
            ("DOCKHOOK_TLS_CERT", cert.to_str().unwrap()),
            ("DOCKHOOK_TLS_KEY", key.to_str().unwrap()),
        ];
        let failure = Dockhook::try_start("127.0.0.1:9", &env)
            .err()
            .expect("dockhook started with bad certificate files");
        assert!(failure.contains(needle), "{failure}");
    }
    let half = Dockhook::try_start("127.0.0.1:9", &[("DOCKHOOK_TLS_CERT", "/x.pem")])
        .err()
        .expect("dockhook started with a certificate and no key");
    assert!(half.contains("DOCKHOOK_TLS_KEY is not"), "{half}");
}

#[test]
fn acme_certificate_from_pebble_is_served_and_reused_after_a_restart() {
    const DOMAIN: &str = "hooks.dockhook-e2e.test";
    let port = free_port();
    let pebble = Pebble::start(port);
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let ca = pebble.ca_cert();
    let env = [
        ("DOCKHOOK_LISTEN", listen.as_str()),
        ("DOCKHOOK_DATA_DIR", data.path().to_str().unwrap()),
        ("DOCKHOOK_ACME_DOMAIN", DOMAIN),
        ("DOCKHOOK_ACME_EMAIL", "ops@dockhook-e2e.test"),
        ("DOCKHOOK_ACME_DIRECTORY", &pebble.directory()),
        ("DOCKHOOK_ACME_CA", ca.to_str().unwrap()),
        // Challenge connections are logged at debug.
        ("RUST_LOG", "info,dockhook::tls=debug"),
    ];
    let started = Instant::now();
    let mut dockhook = Dockhook::start("127.0.0.1:9", &env);
    dockhook
        .wait_for_log("obtained a new certificate", Duration::from_secs(60))
        .expect("no certificate from pebble within 60 s");
    let obtained = started.elapsed();
    eprintln!("FIGURE: certificate from pebble in {obtained:?} after start");
    // pebble really checked the challenge, on dockhook's own listener.
    assert!(
        dockhook
            .log_text()
            .contains("answering an ACME TLS-ALPN-01 challenge"),
        "pebble never connected for the challenge"
    );

    let root = pebble.issuing_root();
    let addr: SocketAddr = listen.parse().unwrap();
    let url = format!("https://{DOMAIN}:{port}/healthz");
    let first = https_get(&url, root.as_bytes(), addr)
        .expect("the served certificate verifies against pebble's root for the domain");
    let orders = pebble.orders();
    assert_eq!(orders, 1, "{}", pebble.log());
    let cache = data.path().join("acme");
    let cached = fs::read_dir(&cache).unwrap().count();
    assert!(cached >= 2, "no account and certificate in DATA_DIR/acme");
    // It holds the private keys: for dockhook's user only.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&cache).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "DATA_DIR/acme is {mode:o}");

    dockhook.terminate(Duration::from_secs(30));
    drop(dockhook);
    let dockhook = Dockhook::start("127.0.0.1:9", &env);
    dockhook
        .wait_for_log("cached from an earlier run", Duration::from_secs(10))
        .expect("the restart did not use the cached certificate");
    let again = https_get(&url, root.as_bytes(), addr).expect("served after the restart");
    assert_eq!(
        again.leaf, first.leaf,
        "a different certificate after the restart"
    );
    assert_eq!(pebble.orders(), 1, "the restart ordered a new certificate");
    assert!(!dockhook.log_text().contains("obtained a new certificate"));
}
