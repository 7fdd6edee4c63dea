//! A real ACME server on loopback: Debian's `pebble` (Let's Encrypt's test
//! server), with `pebble-challtestsrv` as its DNS server answering
//! 127.0.0.1 for every name, so the challenges it validates connect to a
//! dockhook on this host. Nothing is always-valid: pebble really performs
//! the TLS-ALPN-01 check against the port it is told.
//!
//! Its own HTTPS certificate comes from a [`TestCa`]; its issuing root is
//! generated at start and read from its management interface. Both
//! processes are killed when the [`Pebble`] is dropped.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::tls::{TestCa, Usage};
use super::util::{free_port, wait_until};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// pebble and its DNS server; see the module doc.
pub struct Pebble {
    processes: Vec<Child>,
    ca: TestCa,
    dir: TempDir,
    port: u16,
    management_port: u16,
}

impl Pebble {
    /// Starts pebble with its challenges checked on `tls_port` (TLS-ALPN-01)
    /// of 127.0.0.1. Panics, saying what to install, if pebble is missing.
    pub fn start(tls_port: u16) -> Pebble {
        for binary in ["pebble", "pebble-challtestsrv"] {
            let found = Command::new(binary)
                .arg("-help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(
                found,
                "`{binary}` is not installed: this test needs Debian's pebble package \
                 (apt-get install pebble)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("dockhook-pebble-")
            .tempdir()
            .expect("cannot create a directory for pebble");
        let ca = TestCa::new("dockhook-test-pebble");
        let own = ca.issue("pebble", Usage::Server);
        let (port, management_port, dns_port) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": own.cert,
                "privateKey": own.key,
                // No HTTP-01 here: a port nothing listens on.
                "httpPort": free_port(),
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_path = dir.path().join("pebble.json");
        fs::write(&config_path, config.to_string()).expect("cannot write pebble's config");

        let mut pebble = Pebble {
            processes: Vec::new(),
            ca,
            dir,
            port,
            management_port,
        };
        let dns = format!("127.0.0.1:{dns_port}");
        let challtestsrv = pebble.spawn(
            "challtestsrv",
            Command::new("pebble-challtestsrv").args([
                "-dns01",
                &dns,
                "-defaultIPv6",
                "",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{}", free_port()),
            ]),
        );
        pebble.processes.push(challtestsrv);
        let server = pebble.spawn(
            "pebble",
            Command::new("pebble")
                .args(["-config", config_path.to_str().unwrap(), "-dnsserver", &dns])
                // Not PEBBLE_VA_ALWAYS_VALID: challenges are really checked.
                // No random sleep before a check, and no good nonce refused
                // at random: the test is about dockhook, not retries.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0"),
        );
        pebble.processes.push(server);
        let listening = wait_until(READY_TIMEOUT, || {
            [port, management_port]
                .iter()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok())
        });
        assert!(
            listening,
            "pebble did not listen within {READY_TIMEOUT:?}; its log:\n{}",
            pebble.log()
        );
        pebble
    }

    fn spawn(&self, name: &str, command: &mut Command) -> Child {
        let log = fs::File::create(self.dir.path().join(format!("{name}.log")))
            .expect("cannot create a log file");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot share the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The CA of pebble's own HTTPS certificate (for `acme_ca`).
    pub fn ca_cert(&self) -> PathBuf {
        self.ca.cert()
    }

    /// The root that pebble's certificates chain to, as PEM.
    pub fn issuing_root(&self) -> String {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let ca = fs::read(self.ca_cert()).expect("cannot read the test CA");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                reqwest::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                    .build()
                    .unwrap()
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .unwrap_or_else(|e| panic!("cannot read pebble's root from {url}: {e}"))
                    .text()
                    .await
                    .unwrap()
            })
    }

    /// How many orders pebble was sent so far.
    pub fn orders(&self) -> usize {
        self.log().matches("POST /order-plz").count()
    }

    /// What pebble and its DNS server printed.
    pub fn log(&self) -> String {
        ["challtestsrv", "pebble"]
            .iter()
            .map(|name| {
                let path: &Path = &self.dir.path().join(format!("{name}.log"));
                format!(
                    "--- {name} ---\n{}",
                    fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
