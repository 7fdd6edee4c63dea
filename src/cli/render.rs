//! What people read: aligned tables, short IDs and digests, relative
//! times. Pure: text in, text out; `now` is passed in so tests are exact.

use std::time::Duration;

use super::client::{Detail, Rotated};
use crate::control::Target;
use crate::store::{Deployment, Step};
use crate::timing;

/// Columns aligned on the widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The first 12 hex digits of an ID or digest, `sha256:` kept for a
/// digest so it reads as one.
pub fn short(id: &str) -> String {
    match id.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => id.chars().take(12).collect(),
    }
}

/// `4.1s`, `2m05s`, `1h02m`: a duration at the precision people read.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        let tenths = (d.as_millis() + 50) / 100;
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    } else {
        format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24)
    }
}

/// `3m ago`, from a store timestamp; the timestamp itself if it does not
/// parse.
pub fn ago(at: &str, now: u64) -> String {
    let Some(then) = timing::parse(at) else {
        return at.to_string();
    };
    let secs = now.saturating_sub(then) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// How long a finished deployment took, or `-`.
fn took(deployment: &Deployment) -> String {
    let created = timing::parse(&deployment.created_at);
    let finished = deployment.finished_at.as_deref().and_then(timing::parse);
    match (created, finished) {
        (Some(from), Some(to)) => duration(Duration::from_millis(to.saturating_sub(from))),
        _ => "-".to_string(),
    }
}

/// What started a deployment: a push, a person, a rollback.
fn kind(deployment: &Deployment) -> String {
    match (deployment.kind.as_deref(), deployment.rollback_to) {
        (Some("rollback"), Some(to)) => format!("rollback to {to}"),
        (Some(kind), _) if deployment.force => format!("{kind} (forced)"),
        (Some(kind), _) => kind.to_string(),
        (None, _) => "push".to_string(),
    }
}

fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_string(), str::to_string)
}

/// `dockhook status`: one line per watched container.
pub fn status(targets: &[Target], now: u64) -> String {
    if targets.is_empty() {
        return "dockhook watches no running container\n".to_string();
    }
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            let mode = match t.delay_seconds {
                0 => t.mode.to_string(),
                delay => format!(
                    "{} (delay {})",
                    t.mode,
                    duration(Duration::from_secs(delay))
                ),
            };
            let last = match &t.last_deployment {
                Some(d) => format!("{} {} {}", d.id, d.state.as_str(), ago(&d.created_at, now)),
                None => "-".to_string(),
            };
            let pending: Vec<String> = t
                .pending
                .iter()
                .map(|d| format!("{} {}", d.id, d.state.as_str()))
                .collect();
            vec![
                t.name.clone(),
                t.image.clone(),
                or_dash(t.digest.as_deref().map(short).as_deref()),
                mode,
                last,
                if pending.is_empty() {
                    "-".to_string()
                } else {
                    pending.join(", ")
                },
            ]
        })
        .collect();
    let mut out = table(
        &[
            "NAME",
            "IMAGE",
            "DIGEST",
            "MODE",
            "LAST DEPLOYMENT",
            "PENDING",
        ],
        &rows,
    );
    for target in targets {
        if let Some(error) = &target.label_error {
            out.push_str(&format!(
                "{}: takes no update until its labels are fixed: {error}\n",
                target.name
            ));
        }
    }
    out
}

/// `dockhook history`: one line per deployment, newest first.
pub fn history(deployments: &[Deployment], now: u64) -> String {
    if deployments.is_empty() {
        return "no deployment yet\n".to_string();
    }
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.target.clone(),
                d.state.as_str().to_string(),
                kind(d),
                d.source.clone(),
                d.image.clone(),
                ago(&d.created_at, now),
                took(d),
            ]
        })
        .collect();
    table(
        &[
            "ID", "TARGET", "STATE", "KIND", "SOURCE", "IMAGE", "CREATED", "TOOK",
        ],
        &rows,
    )
}

/// `dockhook show`: the deployment, then its steps.
pub fn detail(detail: &Detail, now: u64) -> String {
    let d = &detail.deployment;
    let mut fields: Vec<(&str, String)> = vec![
        ("state", d.state.as_str().to_string()),
        ("image", d.image.clone()),
    ];
    if let Some(digest) = &d.digest {
        fields.push(("digest", digest.clone()));
    }
    let mut origin = format!("{}, from {}", kind(d), d.source);
    if let Some(pusher) = &d.pusher {
        origin.push_str(&format!(" (pushed by {pusher})"));
    }
    fields.push(("kind", origin));
    if let Some(strategy) = &d.strategy {
        fields.push(("strategy", strategy.clone()));
    }
    for (label, container, image) in [
        ("before", &d.old_container_id, &d.old_image_id),
        ("after", &d.new_container_id, &d.new_image_id),
    ] {
        if container.is_some() || image.is_some() {
            let text = format!(
                "container {}, image {}",
                or_dash(container.as_deref().map(short).as_deref()),
                or_dash(image.as_deref().map(short).as_deref())
            );
            fields.push((label, text));
        }
    }
    fields.push((
        "created",
        format!("{} ({})", d.created_at, ago(&d.created_at, now)),
    ));
    if let Some(due) = &d.due_at {
        fields.push(("due", due.clone()));
    }
    if let Some(finished) = &d.finished_at {
        fields.push(("finished", finished.clone()));
    }
    if let Some(error) = &d.error {
        fields.push(("error", error.clone()));
    }
    let t = &detail.timings;
    let figure = |d: Option<Duration>| d.map_or_else(|| "-".to_string(), duration);
    fields.push((
        "timings",
        format!(
            "to serving {}, downtime {}, total {}",
            figure(t.to_serving),
            figure(t.downtime),
            figure(t.total)
        ),
    ));
    let mut out = format!("deployment {} of {}\n", d.id, d.target);
    for (label, value) in fields {
        out.push_str(&format!("  {label:<9} {value}\n"));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = detail.steps.iter().map(|s| step(d, s)).collect();
    out.push_str(&table(&["AT", "AFTER", "STATE", "DETAIL"], &rows));
    out
}

/// A step's cells: its time of day (UTC), how long after the deployment
/// was recorded, its state and note.
pub fn step(deployment: &Deployment, step: &Step) -> Vec<String> {
    let clock = step
        .at
        .split_once('T')
        .map_or(step.at.as_str(), |(_, time)| time.trim_end_matches('Z'))
        .to_string();
    let after = match (
        timing::parse(&deployment.created_at),
        timing::parse(&step.at),
    ) {
        (Some(from), Some(at)) => format!(
            "+{}",
            duration(Duration::from_millis(at.saturating_sub(from)))
        ),
        _ => "-".to_string(),
    };
    vec![
        clock,
        after,
        step.state.as_str().to_string(),
        step.detail.clone().unwrap_or_default(),
    ]
}

/// A rotation's answer: the new token, once, and how long the old one lasts.
pub fn rotated(kind: crate::tokens::Kind, rotated: &Rotated, now: u64) -> String {
    let what = match kind {
        crate::tokens::Kind::Hook => "hook secret",
        crate::tokens::Kind::Api => "API token",
        crate::tokens::Kind::Read => "read-only token",
    };
    let mut text = format!("new {what}: {}\n", rotated.value);
    match rotated.previous_valid_until.as_deref() {
        Some(until) => {
            let left = timing::parse(until).map_or(0, |then| then.saturating_sub(now));
            text += &format!(
                "the old one stays valid until {until} (for {})\n",
                duration(Duration::from_millis(left))
            );
        }
        None => text += "no older one stays valid\n",
    }
    if !rotated.hooks.is_empty() {
        text += "the new hook paths (give each sender its own):\n";
        let rows: Vec<Vec<String>> = rotated
            .hooks
            .iter()
            .map(|(source, path)| vec![source.clone(), path.clone()])
            .collect();
        text += &table(&["SOURCE", "PATH"], &rows);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let rows = vec![
            vec!["site".to_string(), "auto".to_string(), "x".to_string()],
            vec!["a".to_string(), "approve".to_string(), String::new()],
        ];
        assert_eq!(
            table(&["NAME", "MODE", "NOTE"], &rows),
            "NAME  MODE     NOTE\nsite  auto     x\na     approve\n"
        );
    }

    #[test]
    fn short_ids_and_digests() {
        assert_eq!(short("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
        assert_eq!(short("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short("sha256:abc"), "sha256:abc");
    }

    #[test]
    fn durations_and_ages_read_well() {
        assert_eq!(duration(Duration::from_millis(4_120)), "4.1s");
        assert_eq!(duration(Duration::from_millis(4_150)), "4.2s");
        assert_eq!(duration(Duration::ZERO), "0.0s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration(Duration::from_secs(3_720)), "1h02m");
        assert_eq!(duration(Duration::from_secs(90_000)), "1d01h");
        let now = timing::parse("2026-11-29T07:00:00.000Z").unwrap();
        assert_eq!(ago("2026-11-29T06:59:58.500Z", now), "1s ago");
        assert_eq!(ago("2026-11-29T06:57:00.000Z", now), "3m ago");
        assert_eq!(ago("2026-11-27T07:00:00.000Z", now), "2d ago");
        assert_eq!(ago("yesterday", now), "yesterday");
    }
}
