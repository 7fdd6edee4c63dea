//! End to end, the status page in a real headless browser (Debian's
//! Chromium through chromedriver) against the real dockhook binary, a real
//! registry and a real container: a wrong token is refused, the right one
//! logs in, a push appears live without a reload, a rollback from the page
//! brings the old image back, and a POST without the page's CSRF token is
//! refused and changes nothing.
//!
//! Screenshots go to `target/tmp/screenshots/`; with `UPDATE_SCREENSHOTS=1`
//! they also replace the ones in `docs/screenshots/` the README shows.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::browser::Browser;
use support::scenario::{api, assert_one_running, run_site, Site, DEPLOY_TIMEOUT};
use support::*;

/// Where the README's screenshots live.
const DOCS_SCREENSHOTS: &str = "docs/screenshots";
const SHORT: Duration = Duration::from_secs(15);

/// Saves a screenshot under `name` in the build's directory, and in the
/// docs when asked to.
fn screenshot(browser: &Browser, name: &str) {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("screenshots")
        .join(name);
    browser.screenshot(&path);
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DOCS_SCREENSHOTS);
        browser.screenshot(&docs.join(name));
    }
}

/// The number of deployments dockhook recorded.
fn deployments(dockhook: &Dockhook) -> usize {
    let (status, body) = api(dockhook, "/api/deployments?limit=1000");
    assert_eq!(status, 200, "{body}");
    body["deployments"].as_array().expect("a list").len()
}

/// Waits until the page shows deployment `id` ended in `state`, without
/// the page being loaded again.
fn wait_row(browser: &Browser, dockhook: &Dockhook, id: i64, state: &str) {
    let css = format!("#deployment-{id}[data-state=\"{state}\"]");
    assert!(
        browser.wait_for(&css, DEPLOY_TIMEOUT).is_some(),
        "the page never showed deployment {id} {state}; API: {}\nlog:\n{}",
        api(dockhook, &format!("/api/deployments/{id}")).1,
        dockhook.log_text()
    );
}

/// Runs container `name` of `site`'s `latest`, for dockhook to watch, with
/// `labels` more.
fn watched(cleanup: &mut Cleanup, site: &Site, name: &str, labels: &[&str]) -> String {
    let mut args = vec!["--label", "dockhook.enable=true"];
    for label in labels {
        args.extend(["--label", label]);
    }
    run_site(cleanup, site, name, &args)
}

/// dockhook for `site`, watching only labelled containers: the engine is
/// shared with other tests.
fn start(site: &Site) -> Dockhook {
    Dockhook::start(&site.registry.host(), &[("DOCKHOOK_LABEL_ENABLE", "true")])
}

#[test]
fn the_status_page_logs_in_shows_a_push_live_and_rolls_back() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "page");
    let name = watched(&mut cleanup, &site, &site.name, &[]);
    let dockhook = start(&site);
    let browser = Browser::start(1280, 1000);

    // Not logged in: the page sends the browser to the login form.
    browser.goto(&dockhook.url("/"));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());

    // A wrong token: refused, told so, no cookie.
    browser.fill("#token", "not-the-token");
    browser.click("form[action=\"/login\"] button");
    let refused = browser
        .wait_for("#login-error", SHORT)
        .map(|_| browser.text("#login-error").unwrap_or_default());
    assert!(
        refused
            .as_deref()
            .is_some_and(|t| t.contains("Wrong token")),
        "{refused:?} at {}: {}",
        browser.url(),
        browser.source()
    );
    assert!(browser.url().ends_with("/login"));
    assert!(browser.cookies().is_empty(), "{:?}", browser.cookies());
    screenshot(&browser, "login-refused.png");

    // The token: a session cookie the page's scripts cannot read.
    browser.fill("#token", API_TOKEN);
    browser.click("form[action=\"/login\"] button");
    let row = format!("#target-{name}");
    assert!(browser.wait_for(&row, SHORT).is_some(), "no row for {name}");
    assert_eq!(browser.url(), dockhook.url("/"));
    let cookies = browser.cookies();
    let session = cookies
        .iter()
        .find(|c| c.name() == "dockhook_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert_eq!(browser.execute("return document.cookie"), "", "HttpOnly");
    let session_cookie = format!("dockhook_session={}", session.value());

    // Live: a push shows up and runs to its end with no reload.
    assert!(
        wait_until(SHORT, || browser
            .text("#live")
            .is_some_and(|t| t == "Live updates on")),
        "live updates never came on: {:?}",
        browser.text("#live")
    );
    browser.execute("window.dockhookLoaded = 'once'; return null");
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let (status, answer) = site.hook(&dockhook, "latest");
    assert_eq!(status, 202, "{answer}");
    let pushed = answer["deployments"][0].as_i64().expect("a deployment");
    wait_row(&browser, &dockhook, pushed, "succeeded");
    assert_eq!(
        browser.execute("return window.dockhookLoaded || null"),
        "once",
        "the page was loaded again instead of updated in place"
    );
    assert_one_running(&name, &v2);

    // A POST without the page's CSRF token, even with the session
    // cookie, is refused and changes nothing.
    let before = deployments(&dockhook);
    let container = container_inspect(&name)["Id"].clone();
    for body in ["force=true", "force=true&csrf=forged"] {
        let response = request(
            "POST",
            &dockhook.url(&format!("/targets/{name}/update")),
            &[
                ("Cookie", &session_cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .expect("an answer");
        assert_eq!(response.status, 403, "{body}: {}", response.body);
    }
    assert_eq!(deployments(&dockhook), before, "nothing queued");
    assert_eq!(container_inspect(&name)["Id"], container, "nothing changed");

    // Roll back from the page: the old image runs again.
    browser.click(&format!(
        "{row} form[action=\"/targets/{name}/rollback\"] button"
    ));
    let flash = browser
        .wait_for("#flash", SHORT)
        .and_then(|_| browser.text("#flash"))
        .unwrap_or_default();
    let rollback: i64 = flash
        .split_once("deployment #")
        .and_then(|(_, rest)| rest.trim_end_matches('.').parse().ok())
        .unwrap_or_else(|| panic!("no deployment in the message {flash:?}"));
    wait_row(&browser, &dockhook, rollback, "succeeded");
    assert_one_running(&name, &v1);
    let (_, deployment) = api(&dockhook, &format!("/api/deployments/{rollback}"));
    assert_eq!(deployment["source"], "page", "{deployment}");

    // For the README: the page with the history open, wide and narrow.
    browser.click(&format!("#steps-{rollback} summary"));
    screenshot(&browser, "status-desktop.png");
    browser.resize(390, 1400);
    assert!(
        browser.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            == true,
        "the page is wider than a phone's screen"
    );
    screenshot(&browser, "status-phone.png");
    browser.resize(1280, 1000);
    browser.goto(&dockhook.url(&format!("/deployments/{rollback}")));
    assert!(browser
        .wait_for(&format!("#deployment-{rollback} ol.steps"), SHORT)
        .is_some());
    screenshot(&browser, "deployment.png");
}

/// A logged-in session of the page, over plain HTTP: its cookie and the
/// CSRF token its forms carry.
struct PageSession<'a> {
    dockhook: &'a Dockhook,
    cookie: String,
    csrf: String,
}

impl<'a> PageSession<'a> {
    fn login(dockhook: &'a Dockhook) -> Self {
        let body = format!("token={API_TOKEN}");
        let response = request(
            "POST",
            &dockhook.url("/login"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .expect("an answer");
        assert_eq!(response.status, 303, "{}", response.body);
        let cookie = response
            .header("Set-Cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let mut session = PageSession {
            dockhook,
            cookie,
            csrf: String::new(),
        };
        let page = session.get("/").body;
        session.csrf = page
            .split_once(r#"name="csrf" value=""#)
            .and_then(|(_, rest)| rest.split('"').next())
            .expect("a CSRF token in the page")
            .to_string();
        session
    }

    fn get(&self, path: &str) -> Response {
        request(
            "GET",
            &self.dockhook.url(path),
            &[("Cookie", &self.cookie)],
            b"",
        )
        .expect("an answer")
    }

    /// POSTs a page form with the CSRF token; the message the page then
    /// shows.
    fn act(&self, path: &str) -> String {
        let body = format!("csrf={}", self.csrf);
        let response = request(
            "POST",
            &self.dockhook.url(path),
            &[
                ("Cookie", &self.cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .expect("an answer");
        assert_eq!(response.status, 303, "{path}: {}", response.body);
        assert_eq!(response.header("Location"), Some("/"));
        let page = self.get("/").body;
        let (_, rest) = page
            .split_once(r#"id="flash""#)
            .unwrap_or_else(|| panic!("no message after {path}: {page}"));
        let text = rest.split_once('>').unwrap().1;
        text.split('<').next().unwrap().to_string()
    }
}

/// The deployment number in a message like "... queued as deployment #7.".
fn deployment_in(message: &str) -> i64 {
    message
        .split_once('#')
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no deployment in {message:?}"))
}

fn state_of(dockhook: &Dockhook, id: i64) -> String {
    let (_, deployment) = api(dockhook, &format!("/api/deployments/{id}"));
    deployment["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_page_approves_rejects_updates_and_escapes_labels() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "pageact");
    let name = watched(&mut cleanup, &site, &site.name, &["dockhook.mode=approve"]);
    let evil = "<script>alert(1)</script>";
    let mode = format!("dockhook.mode={evil}");
    let odd = watched(&mut cleanup, &site, &format!("odd-{name}"), &[&mode]);
    let dockhook = start(&site);
    let page = PageSession::login(&dockhook);

    // A label's text is shown, never run; the page's headers hold.
    let response = page.get("/");
    assert_eq!(response.status, 200);
    assert!(response.body.contains(&format!("id=\"target-{odd}\"")));
    assert!(!response.body.contains(evil), "{}", response.body);
    assert!(response
        .body
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(
        response.header("Content-Security-Policy"),
        Some(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    );
    assert_eq!(response.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(response.header("Referrer-Policy"), Some("no-referrer"));

    // Mode approve: a push waits; rejected, nothing changes.
    let hold = |tag: &str| {
        let (status, answer) = site.hook(&dockhook, tag);
        assert_eq!(status, 202, "{answer}");
        // The container with the unreadable label may get one too.
        let id = answer["deployments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_i64())
            .find(|id| {
                let (_, deployment) = api(&dockhook, &format!("/api/deployments/{id}"));
                deployment["target"] == name.as_str()
            })
            .unwrap_or_else(|| panic!("no deployment of {name}: {answer}"));
        assert!(
            wait_until(SHORT, || state_of(&dockhook, id) == "awaiting_approval"),
            "deployment {id} is {}",
            state_of(&dockhook, id)
        );
        assert!(page.get("/").body.contains(&format!("id=\"pending-{id}\"")));
        id
    };
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let rejected = hold("latest");
    let said = page.act(&format!("/deployments/{rejected}/reject"));
    assert!(said.contains("rejected"), "{said}");
    assert_eq!(state_of(&dockhook, rejected), "rejected");
    assert_one_running(&name, &v1);

    // Approved, it is deployed.
    let v3 = site.push(&mut cleanup, "latest", SiteImage::new("v3"));
    let approved = hold("latest");
    let said = page.act(&format!("/deployments/{approved}/approve"));
    assert!(said.contains("approved"), "{said}");
    let deployment = support::scenario::wait_deployment(&dockhook, approved);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_one_running(&name, &v3);

    // "Update" asks the registry now, with no webhook, past the mode.
    let v4 = site.push(&mut cleanup, "latest", SiteImage::new("v4"));
    let said = page.act(&format!("/targets/{name}/update"));
    let updated = deployment_in(&said);
    let deployment = support::scenario::wait_deployment(&dockhook, updated);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_eq!(deployment["source"], "page", "{deployment}");
    assert_one_running(&name, &v4);
}
