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

#[test]
fn the_status_page_logs_in_shows_a_push_live_and_rolls_back() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "page");
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name.clone(),
        &["--label", "dockhook.enable=true"],
    );
    // Only the test's container: the engine is shared with other tests.
    let dockhook = Dockhook::start(&site.registry.host(), &[("DOCKHOOK_LABEL_ENABLE", "true")]);
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
    browser.fill("#token", TOKEN);
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
