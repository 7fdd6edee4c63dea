//! A real headless browser: Debian's `chromium`, driven over WebDriver by
//! `chromedriver` (package `chromium-driver`) through the `fantoccini`
//! client.
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port, opens a
//! headless Chromium session with a fresh profile directory, and offers
//! blocking calls (each runs on the browser's own small runtime, so tests
//! stay synchronous like the rest of the support). Dropping it ends the
//! session (Chromium quits) and stops the chromedriver it started.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::util::{free_port, wait_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium session; see the module doc.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium `width` × `height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {CHROMEDRIVER} (Debian package chromium-driver): {e}")
            });
        let base = format!("http://127.0.0.1:{port}");
        // Ready once it listens. (Its HTTP answers ignore `Connection:
        // close`, which the support's small client relies on.)
        let listening = || TcpStream::connect(("127.0.0.1", port)).ok();
        if wait_for(READY_TIMEOUT, listening).is_none() {
            let _ = driver.kill();
            let _ = driver.wait();
            panic!("{CHROMEDRIVER} did not answer on {base} within {READY_TIMEOUT:?}");
        }
        let profile = tempfile::Builder::new()
            .prefix("dockhook-chromium-")
            .tempdir()
            .expect("a profile directory");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let client = runtime.block_on(
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&base),
        );
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("cannot open a Chromium session through {CHROMEDRIVER}: {e}");
            }
        };
        Browser {
            runtime,
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    fn run<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> T {
        self.runtime
            .block_on(call)
            .unwrap_or_else(|e| panic!("browser: {what}: {e}"))
    }

    /// Loads `url` and waits for the page.
    pub fn goto(&self, url: &str) {
        self.run(&format!("go to {url}"), self.client().goto(url));
    }

    /// The address of the page shown.
    pub fn url(&self) -> String {
        self.run("current URL", self.client().current_url())
            .to_string()
    }

    /// The HTML of the page shown, for failure messages.
    pub fn source(&self) -> String {
        self.runtime
            .block_on(self.client().source())
            .unwrap_or_else(|e| format!("(no page source: {e})"))
    }

    /// The first element `css` selects, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        self.runtime
            .block_on(self.client().find(Locator::Css(css)))
            .ok()
    }

    /// Waits up to `timeout` for an element `css` selects.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Option<Element> {
        wait_for(timeout, || self.find(css))
    }

    /// The text of the first element `css` selects, if any.
    pub fn text(&self, css: &str) -> Option<String> {
        let element = self.find(css)?;
        self.runtime.block_on(element.text()).ok()
    }

    /// Types `text` into the field `css` selects.
    pub fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).unwrap_or_else(|| panic!("no field {css}"));
        self.run("clear a field", field.clear());
        self.run("type into a field", field.send_keys(text));
    }

    /// Clicks the element `css` selects. The live page swaps its content
    /// in when an event comes: an element replaced between finding and
    /// clicking it was not clicked, and is found again.
    pub fn click(&self, css: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let element = self
                .find(css)
                .unwrap_or_else(|| panic!("nothing to click at {css}"));
            match self.runtime.block_on(element.click()) {
                Ok(_) => return,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("browser: click {css}: {e}"),
            }
        }
    }

    /// Runs `script` in the page; its return value.
    pub fn execute(&self, script: &str) -> Value {
        self.run("run a script", self.client().execute(script, vec![]))
    }

    /// The cookies the browser holds for the page's site, HttpOnly ones
    /// included.
    pub fn cookies(&self) -> Vec<Cookie<'static>> {
        self.run("read cookies", self.client().get_all_cookies())
    }

    /// Resizes the window.
    pub fn resize(&self, width: u32, height: u32) {
        self.run("resize", self.client().set_window_size(width, height));
    }

    /// Saves a PNG of the window to `path`, creating its directory.
    pub fn screenshot(&self, path: &Path) {
        let png = self.run("screenshot", self.client().screenshot());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("a directory for screenshots");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends the session: chromedriver quits Chromium.
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
