//! A real, throwaway image registry: Debian's `docker-registry` (distribution
//! 2.8) on a free 127.0.0.1 port, storing into its own temporary directory.
//!
//! Plain HTTP and no auth: the engine treats 127.0.0.0/8 as an insecure
//! registry, so `docker push` and pulls by dockhook just work. Dropping the
//! [`Registry`] kills the process and removes its storage.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::http::request;
use super::util::{free_port, wait_until};

const BINARY: &str = "/usr/bin/docker-registry";
/// A port that was free can be taken before the registry binds it; try again.
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running registry; see the module doc.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
    /// The logins of a registry with basic auth.
    auth: Option<TempDir>,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers.
    /// Panics, with the registry's log, if it cannot be started.
    pub fn start() -> Registry {
        Self::start_with("")
    }

    /// Like [`Registry::start`], with `extra_config` (top-level YAML, such
    /// as a `notifications:` or `auth:` section) added to the config file.
    pub fn start_with(extra_config: &str) -> Registry {
        Self::start_configured(extra_config, false)
    }

    /// Like [`Registry::start`], with basic auth: only `user` with
    /// `password` may push or pull. Needs `htpasswd` (apache2-utils).
    pub fn start_with_login(user: &str, password: &str) -> Registry {
        let auth = tempfile::Builder::new()
            .prefix("dockhook-registry-auth-")
            .tempdir()
            .expect("cannot create a directory for the registry's logins");
        let hashed = std::process::Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("htpasswd (apache2-utils) is needed");
        assert!(hashed.status.success(), "htpasswd failed");
        let path = auth.path().join("htpasswd");
        fs::write(&path, &hashed.stdout).expect("cannot write the htpasswd file");
        let mut registry = Self::start_with(&format!(
            "auth:\n  htpasswd:\n    realm: dockhook-test\n    path: {}\n",
            path.display()
        ));
        // Kept as long as the registry: it reads the file at each login.
        registry.auth = Some(auth);
        registry
    }

    /// Like [`Registry::start`], with every request logged (Apache's
    /// combined format), for tests that count requests: see
    /// [`Registry::requests`].
    pub fn start_logging_requests() -> Registry {
        Self::start_configured("", true)
    }

    fn start_configured(extra_config: &str, access_log: bool) -> Registry {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install Debian's docker-registry package (.ci/run does)"
        );
        for _ in 0..START_ATTEMPTS {
            if let Some(registry) = Self::try_start(free_port(), extra_config, access_log) {
                return registry;
            }
        }
        panic!("docker-registry did not start after {START_ATTEMPTS} attempts (see its log above)");
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for talking to the registry API directly.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// `127.0.0.1:PORT/REPOSITORY:TAG`, e.g. `image("dockhooktest/site", "v1")`.
    pub fn image(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host())
    }

    /// The requests logged so far by a registry started with
    /// [`Registry::start_logging_requests`]: `(method, path, user agent)`.
    pub fn requests(&self) -> Vec<(String, String, String)> {
        // 127.0.0.1 - - [date] "HEAD /v2/... HTTP/1.1" 200 0 "" "dockhook/0.1.0"
        self.log()
            .lines()
            .filter_map(|line| {
                let quoted: Vec<&str> = line.split('"').collect();
                let mut request = quoted.get(1)?.split(' ');
                let (method, path) = (request.next()?, request.next()?);
                let agent = quoted.get(5)?;
                Some((method.to_string(), path.to_string(), agent.to_string()))
            })
            .collect()
    }

    /// Everything the registry has logged so far (warnings and errors only,
    /// unless it logs requests).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// One attempt on one port: `None` if the process died or never answered.
    fn try_start(port: u16, extra_config: &str, access_log: bool) -> Option<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("dockhook-registry-")
            .tempdir()
            .expect("cannot create a temporary directory for the registry");
        let config = dir.path().join("config.yml");
        let yaml = config_yaml(&dir.path().join("storage"), port, access_log) + extra_config;
        fs::write(&config, yaml).expect("cannot write the registry config");
        let log = File::create(dir.path().join("registry.log")).expect("cannot create log file");

        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot clone log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {BINARY}: {err}"));
        let mut registry = Registry {
            child,
            port,
            dir,
            auth: None,
        };

        let probe = format!("{}/v2/", registry.url());
        // Any answer will do: with auth configured, /v2/ answers 401.
        let ready = wait_until(READY_TIMEOUT, || {
            request("GET", &probe, &[], b"").is_ok() || !registry.is_running()
        }) && registry.is_running();
        if ready {
            Some(registry)
        } else {
            eprintln!("docker-registry on port {port} failed:\n{}", registry.log());
            None // Drop kills it and removes the directory.
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Misses on blobs a push checks for are routine, not news.
            let log = self.log();
            let news: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("blob unknown"))
                .collect();
            eprintln!("--- registry {} log ---\n{}", self.host(), news.join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Filesystem storage, deletes allowed, no auth, quiet logs (and requests
/// logged when `access_log`). The fixed secret only silences the registry's
/// warning about generating one.
fn config_yaml(storage: &Path, port: u16, access_log: bool) -> String {
    format!(
        "\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: {disabled}
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: dockhook-test-registry
",
        storage = storage.display(),
        disabled = !access_log,
    )
}
