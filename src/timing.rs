//! How long a deployment took to serve, and how long its site was out,
//! read from its recorded steps. One definition, for the API, the status
//! page, notifications and metrics.
//!
//! - **Time to serving**: from the moment dockhook recorded the deployment
//!   (the webhook arrived, or a person asked) to the moment the new
//!   container had passed its health gate and held the target's name (the
//!   `cleaning_up` step).
//! - **Downtime**: how long no container of the target served. A
//!   start-first update keeps the old container serving until the new one
//!   passed its gate and took its aliases, so its downtime is zero. A
//!   stop-first update is out from the moment it stops the old container
//!   (`stopping`) until the new one passed its gate (`cleaning_up`), or,
//!   when it was rolled back, until the old one ran again (the final step).
//!   A deployment that never stopped anything had no downtime; one that
//!   was not under way yet has none to tell (`None`).
//!
//! For a Swarm service, serving is the moment Swarm reported the rolling
//! update `completed` (every task replaced and watched for its monitor
//! period), and its downtime is Swarm's to tell: `None`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{Deployment, State, Step};

/// The figures of one deployment; `None` where it has none (yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Webhook (or request) to the new container serving.
    #[serde(with = "seconds")]
    pub to_serving: Option<Duration>,
    /// How long the target served nothing.
    #[serde(with = "seconds")]
    pub downtime: Option<Duration>,
    /// From the deployment's record to its end.
    #[serde(with = "seconds")]
    pub total: Option<Duration>,
}

impl Timings {
    /// The timings `deployment` shows with `steps` (oldest first).
    pub fn of(deployment: &Deployment, steps: &[Step]) -> Self {
        let at = |state: State| {
            steps
                .iter()
                .find(|s| s.state == state)
                .and_then(|s| parse(&s.at))
        };
        let created = parse(&deployment.created_at);
        let finished = deployment.finished_at.as_deref().and_then(parse);
        let serving = at(State::CleaningUp);
        let to_serving = between(created, serving);
        let stopped = at(State::Stopping);
        let start_first = deployment.strategy.as_deref() == Some("start-first");
        let downtime = match (stopped, start_first) {
            // Swarm replaced the tasks: dockhook did not see them go.
            _ if deployment.service => None,
            // Start-first: the old container served until the new one did.
            (_, true) if serving.is_some() || deployment.state.is_final() => Some(Duration::ZERO),
            (Some(stopped), false) => between(Some(stopped), serving.or(finished)),
            // Nothing was stopped: nothing was out.
            (None, _) if deployment.state.is_final() => Some(Duration::ZERO),
            _ => None,
        };
        Self {
            to_serving,
            downtime,
            total: between(created, finished),
        }
    }
}

fn between(from: Option<u64>, to: Option<u64>) -> Option<Duration> {
    Some(Duration::from_millis(to?.checked_sub(from?)?))
}

/// A figure as a number of seconds (to the millisecond), or null.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64((d.as_millis() as f64) / 1000.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let seconds = Option::<f64>::deserialize(d)?;
        seconds
            .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Milliseconds since the Unix epoch of a timestamp as the store writes
/// them (`2026-11-29T06:45:30.123Z`).
pub fn parse(at: &str) -> Option<u64> {
    let at = at.strip_suffix('Z')?;
    let (date, time) = at.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.splitn(3, ':');
    let hour: u64 = time.next()?.parse().ok()?;
    let minute: u64 = time.next()?.parse().ok()?;
    let seconds = time.next()?;
    let (second, millis) = match seconds.split_once('.') {
        Some((s, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (
            s.parse::<u64>().ok()?,
            format!("{f:0<3}")[..3].parse::<u64>().ok()?,
        ),
        Some(_) => return None,
        None => (seconds.parse::<u64>().ok()?, 0),
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A timestamp in the store's format, `millis` after the Unix epoch.
pub fn format(millis: u64) -> String {
    let days = (millis / 86_400_000) as i64;
    let rest = millis % 86_400_000;
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Now, in milliseconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(parse("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        let at = "2026-11-29T06:45:30.123Z";
        assert_eq!(format(parse(at).unwrap()), at);
        assert_eq!(
            format(parse("2024-02-29T23:59:59.999Z").unwrap()),
            "2024-02-29T23:59:59.999Z"
        );
        for bad in [
            "",
            "2026-11-29",
            "2026-13-01T00:00:00.000Z",
            "2026-11-29T25:00:00.000Z",
            "x-y-zT1:2:3Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    fn deployment(strategy: &str, state: State, finished: Option<&str>) -> Deployment {
        Deployment {
            id: 1,
            target: "site".into(),
            image: "site:latest".into(),
            source: "dockerhub".into(),
            pusher: None,
            digest: None,
            state,
            old_container_id: None,
            new_container_id: None,
            old_image_id: None,
            new_image_id: None,
            strategy: Some(strategy.into()),
            old_networks: None,
            error: None,
            due_at: None,
            kind: None,
            rollback_to: None,
            force: false,
            service: false,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: finished.map(str::to_string),
        }
    }

    fn step(state: State, at: &str) -> Step {
        Step {
            state,
            at: format!("2026-01-01T00:00:{at}Z"),
            detail: None,
        }
    }

    #[test]
    fn stop_first_is_out_from_the_stop_to_the_gate() {
        let d = deployment(
            "stop-first",
            State::Succeeded,
            Some("2026-01-01T00:00:09.000Z"),
        );
        let steps = [
            step(State::Queued, "00.000"),
            step(State::Pulling, "01.000"),
            step(State::Stopping, "03.000"),
            step(State::Starting, "04.000"),
            step(State::CleaningUp, "06.500"),
            step(State::Succeeded, "09.000"),
        ];
        let t = Timings::of(&d, &steps);
        assert_eq!(t.downtime, Some(Duration::from_millis(3500)));
        assert_eq!(t.to_serving, Some(Duration::from_millis(6500)));
        assert_eq!(t.total, Some(Duration::from_secs(9)));
    }

    #[test]
    fn start_first_has_no_downtime_and_a_rolled_back_stop_first_has_some() {
        let d = deployment(
            "start-first",
            State::Succeeded,
            Some("2026-01-01T00:00:09.000Z"),
        );
        let steps = [
            step(State::Stopping, "05.000"),
            step(State::CleaningUp, "06.000"),
        ];
        assert_eq!(Timings::of(&d, &steps).downtime, Some(Duration::ZERO));

        let d = deployment(
            "stop-first",
            State::RolledBack,
            Some("2026-01-01T00:00:09.000Z"),
        );
        let steps = [
            step(State::Stopping, "05.000"),
            step(State::RolledBack, "09.000"),
        ];
        let t = Timings::of(&d, &steps);
        assert_eq!(t.downtime, Some(Duration::from_secs(4)));
        assert_eq!(t.to_serving, None);

        let d = deployment("stop-first", State::Pulling, None);
        assert_eq!(
            Timings::of(&d, &[step(State::Pulling, "01.000")]).downtime,
            None
        );
    }

    #[test]
    fn a_service_serves_once_swarm_completed_and_its_downtime_is_swarms() {
        let d = Deployment {
            service: true,
            ..deployment(
                "stop-first",
                State::Succeeded,
                Some("2026-01-01T00:00:09.000Z"),
            )
        };
        let steps = [
            step(State::Pulling, "01.000"),
            step(State::Starting, "02.000"),
            step(State::Verifying, "02.100"),
            step(State::CleaningUp, "08.000"),
        ];
        let t = Timings::of(&d, &steps);
        assert_eq!(t.to_serving, Some(Duration::from_secs(8)));
        assert_eq!(t.downtime, None);
    }
}
