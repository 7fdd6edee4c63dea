//! A real Prometheus (Debian's `prometheus` package, 2.42) scraping one
//! target, and `promtool`, for the metrics tests.
//!
//! [`Prometheus::start`] runs the server on a free 127.0.0.1 port with a
//! temporary configuration and database (the packaged service is never
//! started: `.ci/run` installs the package with service starts forbidden),
//! scraping the target every second with a bearer token, as a user would
//! configure it. Dropping it kills the process and removes its files.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::http::{http_get, request};
use super::util::{free_port, wait_until};

const BINARY: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Prometheus; see the module doc.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://{target}/metrics` with
    /// `Authorization: Bearer {token}` every second, and waits until it is
    /// ready. Panics, with its log, if it cannot be started.
    pub fn start(target: &str, token: &str) -> Prometheus {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install Debian's prometheus package (.ci/run does)"
        );
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(free_port(), target, token) {
                Ok(prometheus) => return prometheus,
                Err(log) => last_log = log,
            }
        }
        panic!("prometheus did not start after {START_ATTEMPTS} attempts; its log:\n{last_log}");
    }

    fn try_start(port: u16, target: &str, token: &str) -> Result<Prometheus, String> {
        let dir = tempfile::Builder::new()
            .prefix("dockhook-prometheus-")
            .tempdir()
            .expect("cannot create a temporary directory for prometheus");
        let config = dir.path().join("prometheus.yml");
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: dockhook\n    authorization:\n      \
             type: Bearer\n      credentials: {token}\n    static_configs:\n      \
             - targets: ['{target}']\n"
        );
        fs::write(&config, yaml).expect("cannot write the prometheus config");
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BINARY}: {e}"));
        let mut prometheus = Prometheus { child, port, dir };
        let ready_url = format!("http://127.0.0.1:{port}/-/ready");
        let ready = wait_until(READY_TIMEOUT, || {
            http_get(&ready_url).is_some() || !prometheus.running()
        });
        if ready && prometheus.running() {
            return Ok(prometheus);
        }
        let _ = prometheus.child.kill();
        let _ = prometheus.child.wait();
        Err(prometheus.log())
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The result of an instant query (`data.result`), or `None` when the
    /// query failed.
    pub fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            percent_encode(promql)
        );
        let response = request("GET", &url, &[], b"").ok()?;
        let json: Value = serde_json::from_str(&response.body).ok()?;
        (json["status"] == "success")
            .then(|| json["data"]["result"].as_array().cloned())
            .flatten()
    }

    /// The value of a query that yields one series, once it does.
    pub fn value(&self, promql: &str) -> Option<f64> {
        match self.query(promql)?.as_slice() {
            [series] => series["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// The scrape target as Prometheus sees it (`/api/v1/targets`).
    pub fn target(&self) -> Value {
        let url = format!("http://127.0.0.1:{}/api/v1/targets", self.port);
        http_get(&url)
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .map(|json| json["data"]["activeTargets"][0].clone())
            .unwrap_or(Value::Null)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool check metrics` on `exposition`: its exit status's
/// success, and what it printed (problems, one a line).
pub fn promtool_check_metrics(exposition: &str) -> (bool, String) {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install Debian's prometheus package (.ci/run does)"
    );
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PROMTOOL}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(exposition.as_bytes())
        .expect("cannot write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// `text` with everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the sample `name` (labels as dockhook writes them) in a
/// scrape of `/metrics`.
pub fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}
