//! The page through the whole router over real HTTP, on a fake engine:
//! login, cookie flags, CSRF and origin checks, security headers, escaping.

use std::sync::Arc;

use reqwest::redirect::Policy;
use reqwest::Response;

use super::*;
use crate::deploy::fake::FakeEngine;
use crate::sources::testing::{hook_token, serve_on, API_TOKEN, READ_TOKEN};
use crate::store::NewDeployment;

const EVIL: &str = "<script>alert(1)</script>";

struct Site {
    base: String,
    state: Arc<AppState<FakeEngine>>,
    engine: Arc<FakeEngine>,
    http: reqwest::Client,
}

impl Site {
    async fn start() -> Self {
        let mut engine =
            FakeEngine::with_container("site", "owner/site:latest", "sha256:old", "sha256:new");
        engine.world.get_mut().unwrap().containers[0]
            .labels
            .insert("dockhook.mode".into(), EVIL.into());
        let engine = Arc::new(engine);
        let (base, state) = serve_on(engine.clone(), crate::sources::Settings::for_tests()).await;
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Site {
            base,
            state,
            engine,
            http,
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Response {
        self.post_with(path, cookie, form, &[]).await
    }

    async fn post_with(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Logs in with the API token; the `Cookie` header of the session.
    async fn login(&self) -> String {
        self.login_with(API_TOKEN).await
    }

    /// Logs in with `token`; the `Cookie` header of the session.
    async fn login_with(&self, token: &str) -> String {
        let response = self.post("/login", None, &[("token", token)]).await;
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), "/");
        let set = set_cookie(&response).expect("a session cookie");
        set.split(';').next().unwrap().to_string()
    }

    /// The CSRF token in the session's status page.
    async fn csrf(&self, cookie: &str) -> String {
        let page = self.get("/", Some(cookie)).await.text().await.unwrap();
        let (_, rest) = page
            .split_once(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token");
        rest.split('"').next().unwrap().to_string()
    }
}

fn location(response: &Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

fn set_cookie(response: &Response) -> Option<&str> {
    response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_sets_nothing() {
    let site = Site::start().await;
    let started = std::time::Instant::now();
    let hook = hook_token("dockerhub");
    for token in ["wrong", "", &format!("{API_TOKEN}x"), &hook] {
        let response = site.post("/login", None, &[("token", token)]).await;
        assert_eq!(response.status(), 401, "{token:?}");
        assert!(set_cookie(&response).is_none());
        let body = response.text().await.unwrap();
        assert!(body.contains("Wrong token"), "{body}");
    }
    assert!(
        started.elapsed() >= FAILED_LOGIN_DELAY * 4,
        "each wrong token waits"
    );
    let response = site.get("/", None).await;
    assert_eq!(response.status(), 303, "no session: to the login form");
    assert_eq!(location(&response), "/login");
    let response = site.get("/", Some("dockhook_session=made-up")).await;
    assert_eq!(location(&response), "/login");
}

#[tokio::test]
async fn the_token_opens_a_session_with_a_strict_http_only_cookie() {
    let site = Site::start().await;
    let response = site.post("/login", None, &[("token", API_TOKEN)]).await;
    let cookie = set_cookie(&response).unwrap();
    assert!(
        cookie.starts_with("dockhook_session=") && cookie.len() > 60,
        "{cookie}"
    );
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Strict; Path=/"),
        "no Secure over http: {cookie}"
    );

    let host = site.base.strip_prefix("http://").unwrap().to_string();
    let https = format!("https://{host}");
    let response = site
        .post_with(
            "/login",
            None,
            &[("token", API_TOKEN)],
            &[("origin", &https)],
        )
        .await;
    assert!(set_cookie(&response).unwrap().ends_with("; Secure"));

    let cookie = site.login().await;
    let response = site.get("/", Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"target-site\""), "{page}");

    let csrf = site.csrf(&cookie).await;
    let response = site
        .post("/logout", Some(&cookie), &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&response), "/login");
    assert!(set_cookie(&response).unwrap().contains("Max-Age=0"));
    assert_eq!(location(&site.get("/", Some(&cookie)).await), "/login");
}

#[tokio::test]
async fn a_login_from_another_site_is_refused() {
    let site = Site::start().await;
    let response = site
        .post_with(
            "/login",
            None,
            &[("token", API_TOKEN)],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(set_cookie(&response).is_none());
}

#[tokio::test]
async fn every_page_response_restricts_where_it_loads_from() {
    let site = Site::start().await;
    let cookie = site.login().await;
    for (path, cookie) in [
        ("/login", None),
        ("/", Some(cookie.as_str())),
        ("/deployments/99", Some(cookie.as_str())),
        ("/assets/app.css", None),
        ("/assets/app.js", None),
    ] {
        let response = site.get(path, cookie).await;
        let headers = response.headers();
        assert_eq!(
            headers["content-security-policy"], CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
    assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    let css = site.get(assets::CSS.path, None).await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let page = site.get("/", Some(&cookie)).await.text().await.unwrap();
    assert!(page.contains(&assets::CSS.url()) && page.contains(&assets::JS.url()));
}

#[tokio::test]
async fn posts_without_the_csrf_token_or_from_another_site_do_nothing() {
    let site = Site::start().await;
    let cookie = site.login().await;
    let csrf = site.csrf(&cookie).await;
    let other = site.csrf(&site.login().await).await;
    let calls = site.engine.lock().calls.len();
    let paths = [
        "/targets/site/update",
        "/targets/site/rollback",
        "/deployments/1/approve",
        "/deployments/1/reject",
        "/logout",
    ];
    for path in paths {
        for (cookie, form, headers) in [
            (Some(cookie.as_str()), vec![("force", "true")], vec![]),
            (
                Some(cookie.as_str()),
                vec![("csrf", other.as_str())],
                vec![],
            ),
            (Some(cookie.as_str()), vec![("csrf", "")], vec![]),
            (None, vec![("csrf", csrf.as_str())], vec![]),
            (
                Some(cookie.as_str()),
                vec![("csrf", csrf.as_str())],
                vec![("origin", "http://evil.example")],
            ),
            (
                Some(cookie.as_str()),
                vec![("csrf", csrf.as_str())],
                vec![("sec-fetch-site", "cross-site")],
            ),
        ] {
            let response = site.post_with(path, cookie, &form, &headers).await;
            assert_eq!(response.status(), 403, "{path} {form:?} {headers:?}");
            let body = response.text().await.unwrap();
            assert!(body.contains("Nothing was done"), "{body}");
        }
    }
    assert!(
        site.state.store.list(10).unwrap().is_empty(),
        "nothing queued"
    );
    assert_eq!(
        site.engine.lock().calls.len(),
        calls,
        "the engine untouched"
    );
    let response = site.get("/", Some(&cookie)).await;
    assert_eq!(response.status(), 200, "still logged in");
    assert!(!response.text().await.unwrap().contains("id=\"flash\""));
}

#[tokio::test]
async fn an_action_answers_with_a_redirect_and_a_one_time_message() {
    let site = Site::start().await;
    let cookie = site.login().await;
    let csrf = site.csrf(&cookie).await;
    for (target, message) in [
        ("site", "Forced update of site queued as deployment #1."),
        ("no-such", "no-such"),
    ] {
        let path = format!("/targets/{target}/update");
        let form = [("csrf", csrf.as_str()), ("force", "true")];
        let response = site.post(&path, Some(&cookie), &form).await;
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), "/");
        let page = site.get("/", Some(&cookie)).await.text().await.unwrap();
        let flash = page.split_once("id=\"flash\"").expect("a message").1;
        let flash = flash.split_once('>').unwrap().1.split('<').next().unwrap();
        assert!(flash.contains(message), "{flash}");
        let again = site.get("/", Some(&cookie)).await.text().await.unwrap();
        assert!(!again.contains("id=\"flash\""), "shown once");
    }
    let queued = site.state.store.list(10).unwrap();
    assert_eq!(queued.len(), 1, "only the container that exists");
    assert_eq!(queued[0].source, "page");
    assert!(queued[0].force);
}

#[tokio::test]
async fn the_read_only_token_sees_the_page_and_cannot_act() {
    let site = Site::start().await;
    let cookie = site.login_with(READ_TOKEN).await;
    let page = site.get("/", Some(&cookie)).await.text().await.unwrap();
    assert!(page.contains("id=\"target-site\""), "{page}");
    assert!(
        !page.contains("/targets/site/update"),
        "no action offered: {page}"
    );
    let csrf = site.csrf(&cookie).await;
    for path in [
        "/targets/site/update",
        "/targets/site/rollback",
        "/deployments/1/approve",
    ] {
        let response = site.post(path, Some(&cookie), &[("csrf", &csrf)]).await;
        assert_eq!(response.status(), 403, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("read-only token"), "{body}");
    }
    assert!(
        site.state.store.list(10).unwrap().is_empty(),
        "nothing queued"
    );
    // It may still log out.
    let response = site
        .post("/logout", Some(&cookie), &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&response), "/login");
}

#[tokio::test]
async fn payloads_and_labels_reach_the_page_as_text() {
    let site = Site::start().await;
    let id = site
        .state
        .store
        .create(&NewDeployment {
            target: "site".into(),
            container_id: "site-id".into(),
            image: "owner/site:latest".into(),
            source: "dockerhub".into(),
            pusher: Some(EVIL.into()),
            reason: Some(EVIL.into()),
            ..Default::default()
        })
        .unwrap();
    let cookie = site.login().await;
    for path in ["/".to_string(), format!("/deployments/{id}")] {
        let page = site.get(&path, Some(&cookie)).await.text().await.unwrap();
        assert!(!page.contains("<script>alert"), "{path}: {page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {page}"
        );
    }
    let page = site.get("/", Some(&cookie)).await.text().await.unwrap();
    assert!(
        page.contains("Labels ignored"),
        "the bad label is shown: {page}"
    );
}

#[tokio::test]
async fn the_event_stream_needs_a_session_and_ends_with_it() {
    let site = Site::start().await;
    assert_eq!(site.get("/events", None).await.status(), 401);
    let cookie = site.login().await;
    let mut stream = site.get("/events", Some(&cookie)).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    // A change arrives; logging out ends the stream.
    site.state
        .store
        .create(&NewDeployment {
            target: "site".into(),
            ..Default::default()
        })
        .unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await;
    let chunk = chunk.expect("an event").unwrap().expect("data");
    assert!(
        String::from_utf8_lossy(&chunk).contains("event: deployment"),
        "{chunk:?}"
    );
    let csrf = site.csrf(&cookie).await;
    site.post("/logout", Some(&cookie), &[("csrf", &csrf)])
        .await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while stream.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the stream outlived its session");
}
