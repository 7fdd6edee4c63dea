//! The status page's HTML, from what the API shows: pure functions from
//! data to markup. `maud` escapes every value put in a template, so a
//! container name, a label or a webhook's pusher is always text, never
//! markup. No inline script or style: the Content-Security-Policy forbids
//! them, and the page reads fully without the script.

use std::time::Duration;

use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::session::Flash;
use crate::control::Target;
use crate::store::{Deployment, State, Step};
use crate::timing::{self, Timings};

/// What every page of a logged-in session needs.
pub struct Ctx<'a> {
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    /// Logged in with the read-only token: no action is offered.
    pub read_only: bool,
}

/// The history's newest deployments the front page shows, with their steps.
pub const HISTORY: u32 = 25;

fn layout(title: &str, ctx: Option<&Ctx>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · dockhook" }
                link rel="stylesheet" href=(assets::CSS.url());
                @if ctx.is_some() {
                    script src=(assets::JS.url()) defer {}
                }
            }
            body {
                header.top {
                    a.brand href="/" { "dockhook" }
                    @if let Some(ctx) = ctx {
                        span #live .live data-state="off" { "Live updates off: reload to refresh" }
                        form.inline method="post" action="/logout" {
                            (csrf(ctx))
                            button.quiet type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @if let Some(flash) = ctx.and_then(|c| c.flash.as_ref()) {
                        p #flash .flash .ok[flash.ok] .error[!flash.ok] role="status" { (flash.message) }
                    }
                    div #content { (content) }
                }
            }
        }
    }
}

fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// A button that POSTs a form of its own to `action`; nothing for a
/// read-only session.
fn action(ctx: &Ctx, action: &str, label: &str, class: &str, fields: &[(&str, &str)]) -> Markup {
    html! {
        @if !ctx.read_only {
        form.inline method="post" action=(action) {
            (csrf(ctx))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button class=(class) type="submit" { (label) }
        }
        }
    }
}

/// The login form; `refused` says why the last try failed.
pub fn login(refused: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            section.login {
                h1 { "Log in" }
                @if let Some(message) = refused {
                    p #login-error .flash .error role="alert" { (message) }
                }
                form method="post" action="/login" {
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Log in" }
                }
                p.hint {
                    "The API token, or the read-only token to look only; "
                    code { "dockhook check-config --show-token" }
                    " prints them."
                }
            }
        },
    )
}

/// A page that says why a request was refused, with a way back.
pub fn refused(title: &str, message: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            section {
                h1 { (title) }
                p #refused { (message) }
                p { a href="/" { "Back to the status page" } }
            }
        },
    )
}

/// The front page: containers, what waits, the history.
pub fn status(
    ctx: &Ctx,
    targets: &Result<Vec<Target>, String>,
    history: &[(Deployment, Vec<Step>)],
) -> Markup {
    layout(
        "Status",
        Some(ctx),
        html! {
            (containers(ctx, targets))
            @if let Ok(targets) = targets {
                (waiting(ctx, targets))
            }
            section #history {
                h2 { "History" }
                @if history.is_empty() {
                    p.empty { "No deployment yet." }
                } @else {
                    (history_table(history))
                }
            }
        },
    )
}

fn containers(ctx: &Ctx, targets: &Result<Vec<Target>, String>) -> Markup {
    html! {
        section #containers {
            h2 { "Containers" }
            @match targets {
                Err(error) => p.flash.error { "Cannot list the containers: " (error) },
                Ok(targets) if targets.is_empty() => p.empty { "No container is watched." },
                Ok(targets) => table.cards {
                    thead { tr {
                        th { "Container" } th { "Image" } th { "Digest" } th { "Mode" }
                        th { "Delay" } th { "Last deployment" } th { "Actions" }
                    } }
                    tbody {
                        @for target in targets {
                            tr #(format!("target-{}", target.name)) data-target=(target.name) {
                                td data-label="Container" {
                                    strong { (target.name) }
                                    @if let Some(error) = &target.label_error {
                                        p.flash.error { "Labels ignored: " (error) }
                                    }
                                }
                                td data-label="Image" { code { (target.image) } }
                                td data-label="Digest" {
                                    @if let Some(digest) = &target.digest {
                                        code title=(digest) { (short_digest(digest)) }
                                    } @else { span.muted { "unknown" } }
                                }
                                td data-label="Mode" { (target.mode.as_str()) }
                                td data-label="Delay" {
                                    @if target.delay_seconds == 0 { "none" }
                                    @else { (human(Duration::from_secs(target.delay_seconds))) }
                                }
                                td data-label="Last deployment" {
                                    @if let Some(d) = &target.last_deployment {
                                        a href=(format!("/deployments/{}", d.id)) { "#" (d.id) }
                                        " " (badge(d.state))
                                        " " span.muted { (clock(&d.created_at)) }
                                    } @else { span.muted { "none" } }
                                }
                                td.actions data-label="Actions" {
                                    (action(ctx, &format!("/targets/{}/update", target.name), "Update", "update", &[]))
                                    (action(ctx, &format!("/targets/{}/update", target.name), "Force update", "force quiet", &[("force", "true")]))
                                    (action(ctx, &format!("/targets/{}/rollback", target.name), "Roll back", "rollback quiet", &[]))
                                }
                            }
                        }
                    }
                },
            }
        }
    }
}

fn waiting(ctx: &Ctx, targets: &[Target]) -> Markup {
    let pending: Vec<&Deployment> = targets.iter().flat_map(|t| &t.pending).collect();
    html! {
        section #waiting {
            h2 { "Waiting" }
            @if pending.is_empty() {
                p.empty { "Nothing waits for approval or a delay." }
            } @else {
                table.cards {
                    thead { tr {
                        th { "Deployment" } th { "Container" } th { "Image" } th { "Waits for" } th { "Actions" }
                    } }
                    tbody {
                        @for d in pending {
                            tr #(format!("pending-{}", d.id)) {
                                td data-label="Deployment" { a href=(format!("/deployments/{}", d.id)) { "#" (d.id) } }
                                td data-label="Container" { (d.target) }
                                td data-label="Image" { code { (d.image) } (digest_note(d)) }
                                td data-label="Waits for" { (waits_for(d)) }
                                td.actions data-label="Actions" { (decide(ctx, d)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn waits_for(d: &Deployment) -> Markup {
    html! {
        @match (d.state, &d.due_at) {
            (State::Delayed, Some(due)) => { "its delay, due " time datetime=(due) { (clock(due)) } }
            (State::Delayed, None) => "its delay",
            _ => "approval",
        }
    }
}

/// Approve (when it awaits approval) and reject (when it waits at all).
fn decide(ctx: &Ctx, d: &Deployment) -> Markup {
    html! {
        @if d.state == State::AwaitingApproval {
            (action(ctx, &format!("/deployments/{}/approve", d.id), "Approve", "approve", &[]))
        }
        @if d.state.is_waiting() {
            (action(ctx, &format!("/deployments/{}/reject", d.id), "Reject", "reject quiet", &[]))
        }
    }
}

fn history_table(history: &[(Deployment, Vec<Step>)]) -> Markup {
    html! {
        table.cards.history {
            thead { tr {
                th { "#" } th { "Container" } th { "Image" } th { "Asked by" } th { "State" }
                th { "Started" } th { "To serving" } th { "Downtime" } th { "Steps" }
            } }
            tbody {
                @for (d, steps) in history {
                    @let timings = Timings::of(d, steps);
                    tr #(format!("deployment-{}", d.id)) .deployment data-state=(d.state.as_str()) {
                        td data-label="#" { a href=(format!("/deployments/{}", d.id)) { "#" (d.id) } }
                        td data-label="Container" { (d.target) }
                        td data-label="Image" { code { (d.image) } (digest_note(d)) }
                        td data-label="Asked by" { (asked_by(d)) }
                        td data-label="State" {
                            (badge(d.state))
                            @if let Some(error) = &d.error { p.error-text { (error) } }
                        }
                        td data-label="Started" { time datetime=(d.created_at) { (clock(&d.created_at)) } }
                        td data-label="To serving" { (figure(timings.to_serving)) }
                        td data-label="Downtime" { (figure(timings.downtime)) }
                        td data-label="Steps" {
                            details #(format!("steps-{}", d.id)) {
                                summary { (steps.len()) " steps" }
                                (step_list(d, steps))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each step with its time and how long after the one before it came.
fn step_list(d: &Deployment, steps: &[Step]) -> Markup {
    let mut previous = timing::parse(&d.created_at);
    let rows: Vec<(&Step, Option<u64>)> = steps
        .iter()
        .map(|step| {
            let at = timing::parse(&step.at);
            let after = at
                .zip(previous)
                .and_then(|(at, before)| at.checked_sub(before));
            previous = at.or(previous);
            (step, after)
        })
        .collect();
    html! {
        ol.steps {
            @for (step, after) in rows {
                li data-state=(step.state.as_str()) {
                    (badge(step.state))
                    " " time datetime=(step.at) { (clock_precise(&step.at)) }
                    @if let Some(after) = after { " " span.muted { "+" (human(Duration::from_millis(after))) } }
                    @if let Some(detail) = &step.detail { " " span.detail { (detail) } }
                }
            }
        }
    }
}

/// One deployment with all it recorded.
pub fn deployment(ctx: &Ctx, d: &Deployment, steps: &[Step]) -> Markup {
    let timings = Timings::of(d, steps);
    // Kind, rollback and force are in "Asked by".
    let fields: [(&str, Option<String>); 11] = [
        ("Container", Some(d.target.clone())),
        ("Image", Some(d.image.clone())),
        ("Digest", d.digest.clone()),
        ("Strategy", d.strategy.clone()),
        ("Old image", d.old_image_id.clone()),
        ("New image", d.new_image_id.clone()),
        ("Old container", d.old_container_id.clone()),
        ("New container", d.new_container_id.clone()),
        ("Due", d.due_at.as_deref().map(clock)),
        ("Started", Some(clock(&d.created_at))),
        ("Finished", d.finished_at.as_deref().map(clock)),
    ];
    layout(
        &format!("Deployment {}", d.id),
        Some(ctx),
        html! {
            section #(format!("deployment-{}", d.id)) .deployment data-state=(d.state.as_str()) {
                h1 { "Deployment #" (d.id) " " (badge(d.state)) }
                @if let Some(error) = &d.error { p.flash.error { (error) } }
                dl.facts {
                    dt { "Asked by" } dd { (asked_by(d)) }
                    @for (name, value) in &fields {
                        @if let Some(value) = value { dt { (name) } dd { code { (value) } } }
                    }
                    dt { "Time to serving" } dd { (figure(timings.to_serving)) }
                    dt { "Downtime" } dd { (figure(timings.downtime)) }
                    dt { "Total" } dd { (figure(timings.total)) }
                }
                div.actions {
                    (decide(ctx, d))
                    @if d.state == State::Succeeded && d.new_image_id.is_some() {
                        @let id = d.id.to_string();
                        (action(ctx, &format!("/targets/{}/rollback", d.target), "Deploy this image again", "rollback quiet", &[("to", &id)]))
                    }
                }
                h2 { "Steps" }
                (step_list(d, steps))
                p { a href="/" { "Back to the status page" } }
            }
        },
    )
}

/// Who asked, and for what when it was not a push: `page · rollback to #3`.
fn asked_by(d: &Deployment) -> Markup {
    html! {
        (d.source)
        @if let Some(pusher) = &d.pusher { " (" (pusher) ")" }
        @if let Some(kind) = &d.kind {
            " · " (kind)
            @if let Some(to) = d.rollback_to { " to " a href=(format!("/deployments/{to}")) { "#" (to) } }
        }
        @if d.force { " (forced)" }
    }
}

fn digest_note(d: &Deployment) -> Markup {
    html! {
        @if let Some(digest) = &d.digest {
            " " code.muted title=(digest) { (short_digest(digest)) }
        }
    }
}

fn badge(state: State) -> Markup {
    let tone = match state {
        State::Succeeded => "good",
        State::Failed | State::RollbackFailed => "bad",
        State::RolledBack | State::Rejected => "warn",
        State::AwaitingApproval | State::Delayed | State::Available => "wait",
        State::Skipped => "muted",
        _ => "busy",
    };
    html! { span class=(format!("badge {tone}")) { (state.as_str().replace('_', " ")) } }
}

fn figure(value: Option<Duration>) -> Markup {
    html! {
        @match value {
            Some(d) => (human(d)),
            None => span.muted { "–" },
        }
    }
}

/// `sha256:0123456789ab…` as its first twelve hex digits.
fn short_digest(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.get(..12).unwrap_or(hex)
}

/// A store timestamp (`2026-11-29T06:45:30.123Z`) to the second, in UTC.
fn clock(at: &str) -> String {
    match timing::parse(at) {
        Some(ms) => format!(
            "{} UTC",
            &timing::format(ms - ms % 1000)[..19].replace('T', " ")
        ),
        None => at.to_string(),
    }
}

/// The time of day of a step, to the millisecond.
fn clock_precise(at: &str) -> String {
    match timing::parse(at) {
        Some(ms) => timing::format(ms)[11..23].to_string(),
        None => at.to_string(),
    }
}

/// A duration as a person reads it: `350 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::Mode;

    const EVIL: &str = "<script>alert(1)</script>";

    fn deployment_of(pusher: &str) -> Deployment {
        Deployment {
            id: 7,
            target: "site".into(),
            image: format!("owner/site:{EVIL}"),
            source: "dockerhub".into(),
            pusher: Some(pusher.into()),
            digest: Some("sha256:0123456789abcdef0123".into()),
            state: State::AwaitingApproval,
            old_container_id: None,
            new_container_id: None,
            old_image_id: None,
            new_image_id: None,
            strategy: None,
            old_networks: None,
            error: Some(format!("failed: {EVIL}")),
            due_at: None,
            kind: None,
            rollback_to: None,
            force: false,
            service: false,
            created_at: "2026-11-29T06:45:30.123Z".into(),
            updated_at: "2026-11-29T06:45:30.123Z".into(),
            finished_at: None,
        }
    }

    fn target_of(d: &Deployment) -> Target {
        Target {
            name: "site\"><script>x</script>".into(),
            container_id: "c1".into(),
            kind: crate::engine::TargetKind::Container,
            image: "owner/site:latest".into(),
            image_id: None,
            digest: None,
            mode: Mode::Approve,
            delay_seconds: 600,
            label_error: Some(format!("label dockhook.mode: unknown mode {EVIL:?}")),
            last_deployment: Some(d.clone()),
            pending: vec![d.clone()],
        }
    }

    fn ctx() -> Ctx<'static> {
        Ctx {
            csrf: "token-123",
            read_only: false,
            flash: Some(Flash {
                ok: false,
                message: EVIL.into(),
            }),
        }
    }

    /// No value from a payload, a label or a container name reaches the
    /// page as markup.
    fn assert_escaped(html: &str) {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<style"), "no inline style");
        assert!(!html.contains(" style="), "no inline style");
        assert!(!html.contains(" on"), "no inline handler: {html}");
        // The only script is the page's own file.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains(&format!("<script src=\"{}\" defer", assets::JS.url())));
    }

    #[test]
    fn the_status_page_escapes_names_labels_and_payloads() {
        let d = deployment_of(EVIL);
        let step = Step {
            state: State::AwaitingApproval,
            at: "2026-11-29T06:45:31.000Z".into(),
            detail: Some(EVIL.into()),
        };
        let html = status(&ctx(), &Ok(vec![target_of(&d)]), &[(d, vec![step])]).into_string();
        assert_escaped(&html);
        assert!(
            html.contains("site&quot;&gt;&lt;script&gt;x&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn the_deployment_page_escapes_payloads() {
        let d = deployment_of(EVIL);
        assert_escaped(&deployment(&ctx(), &d, &[]).into_string());
    }

    #[test]
    fn every_form_carries_the_csrf_token() {
        let d = deployment_of("alice");
        let html = status(&ctx(), &Ok(vec![target_of(&d)]), &[]).into_string();
        let forms = html.matches("<form").count();
        // Logout, update, force update, roll back, approve, reject.
        assert_eq!(forms, 6, "{html}");
        assert_eq!(
            html.matches(r#"<input type="hidden" name="csrf" value="token-123">"#)
                .count(),
            forms
        );
        assert!(html.contains(r#"action="/deployments/7/approve""#));
    }

    #[test]
    fn steps_show_their_time_and_the_gap_before_them() {
        let d = deployment_of("alice");
        let step = Step {
            state: State::Pulling,
            at: "2026-11-29T06:45:32.423Z".into(),
            detail: None,
        };
        let html = step_list(&d, &[step]).into_string();
        assert!(html.contains("06:45:32.423"), "{html}");
        assert!(html.contains("+2.3 s"), "{html}");
    }

    #[test]
    fn figures_read_like_a_person_writes_them() {
        assert_eq!(human(Duration::from_millis(350)), "350 ms");
        assert_eq!(human(Duration::from_millis(4_250)), "4.2 s");
        assert_eq!(human(Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(human(Duration::from_secs(7_800)), "2 h 10 min");
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(clock("2026-11-29T06:45:30.123Z"), "2026-11-29 06:45:30 UTC");
    }
}
