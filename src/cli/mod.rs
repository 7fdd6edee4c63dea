//! The command-line client: `dockhook status`, `history`, `show`,
//! `update`, `rollback`, `approve`, `reject`.
//!
//! It talks to a running dockhook over its HTTP API only, never to Docker
//! or the history database, so it works from any host that reaches the
//! API, and inside dockhook's own container with nothing to set
//! (`docker exec dockhook dockhook status`): the URL defaults to the
//! configured listen address on this host, and the token to the API
//! token, `DOCKHOOK_API_TOKEN`, else the one dockhook generated in its data
//! directory (`--token-file` names another file). `dockhook rotate-token`
//! replaces a token dockhook keeps, printing the new one once.
//!
//! People get tables; `--json` prints the API's answer as received, for
//! scripts. `--wait` follows a deployment live: it subscribes to the
//! event stream first and only then reads the deployment, so no step
//! falls between; each event wakes a fresh read of the deployment, so a
//! step is printed with the time dockhook recorded, and a dropped stream
//! (reconnected) or a `lagged` event loses nothing. With `--json`, the
//! deployment is printed once it ends, as `dockhook show --json` would.
//!
//! Exit codes ([`EXIT_OK`] ...): 0 done (with `--wait`: the deployment
//! succeeded); 1 dockhook refused the request (no such target, nothing to
//! roll back to, not awaiting approval, Docker down) or the deployment
//! ended otherwise (failed, rolled back, rejected); 2 the request could
//! not be made (usage, no token, dockhook unreachable, token refused); 3
//! the deployment was skipped and nothing was deployed (the container
//! already ran that image, a newer push superseded it, or the image is in
//! quarantine); its reason is printed.

pub mod client;
mod render;
mod sse;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client::{Answer, CliError, Client, Detail, Events, Trust};

use crate::config::{ClientSettings, Config};
use crate::settings::Secret;
use crate::store::{Change, State};
use crate::tls::Mode;

/// Done; with `--wait`, the deployment succeeded.
pub const EXIT_OK: u8 = 0;
/// dockhook refused the request, or the deployment did not succeed.
pub const EXIT_NOT_DONE: u8 = 1;
/// The request could not be made: usage, token, connection.
pub const EXIT_ERROR: u8 = 2;
/// With `--wait`: the deployment was skipped; nothing was deployed.
pub const EXIT_SKIPPED: u8 = 3;

/// While following, a read of the deployment at least this often, events
/// or not.
const POLL: Duration = Duration::from_secs(5);
/// A stream this long without a byte (dockhook sends a keep-alive every
/// 15 s) is taken for dead and opened again.
const SILENT: Duration = Duration::from_secs(40);
/// How long a lost dockhook (restarting, say) is waited for.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// How to reach dockhook, and how to print; options of every client
/// command.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// dockhook's URL [default: http://127.0.0.1:PORT, PORT from the listen setting]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// File holding the API token [default: DOCKHOOK_API_TOKEN, else DATA_DIR/api_token]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A client command.
#[derive(Debug, Clone)]
pub enum Request {
    Status,
    History {
        target: Option<String>,
        limit: u32,
    },
    Show {
        id: i64,
    },
    Update {
        target: String,
        force: bool,
        wait: bool,
    },
    Rollback {
        target: String,
        to: Option<i64>,
        wait: bool,
    },
    Approve {
        id: i64,
        wait: bool,
    },
    Reject {
        id: i64,
    },
    RotateToken {
        kind: crate::tokens::Kind,
        grace: Option<String>,
    },
}

impl CliError {
    /// The exit code this error ends the command with.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused { .. } => EXIT_NOT_DONE,
            CliError::OutputClosed => 0,
            _ => EXIT_ERROR,
        }
    }
}

/// Runs `request` against the dockhook `connection` and the configuration
/// (`config`, else `DOCKHOOK_CONFIG`, and the environment) name; prints
/// to stdout, errors to stderr; returns the exit code.
pub async fn run(config: Option<&Path>, connection: &Connection, request: Request) -> u8 {
    let outcome = match connect(config, connection) {
        Ok(client) => {
            let mut out = std::io::stdout().lock();
            execute(&client, request, connection.json, &mut out).await
        }
        Err(error) => Err(error),
    };
    outcome.unwrap_or_else(|error| {
        // A reader that stopped reading wanted no more: like `head`, quietly.
        if !matches!(error, CliError::OutputClosed) {
            eprintln!("dockhook: {error}");
        }
        error.exit_code()
    })
}

/// The client `connection` and the configuration make.
fn connect(config: Option<&Path>, connection: &Connection) -> Result<Client, CliError> {
    let settings =
        || Config::load_client(config).map_err(|e| CliError::Usage(format!("configuration: {e}")));
    let (url, trust) = match &connection.url {
        Some(url) => (url.clone(), Trust::WebPki),
        None => local_connection(&settings()?),
    };
    let token = match &connection.token_file {
        Some(path) => read_token(path)?,
        None => api_token(&settings()?)?,
    };
    Client::with_trust(&url, token, trust)
}

/// Where a dockhook listening on `listen` on this host is reached.
fn local_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The URL of a dockhook listening on `listen` on this host, over plain HTTP.
fn local_url(listen: SocketAddr) -> String {
    format!("http://{}", local_addr(listen))
}

/// The URL of the dockhook on this host, and how to trust its certificate
/// when it serves HTTPS: the one in its `tls_cert` file, which this client
/// reads as it reads the token; over ACME, the certificate's name, checked
/// against the Web PKI, at the local address.
fn local_connection(settings: &ClientSettings) -> (String, Trust) {
    let addr = local_addr(settings.listen);
    match &settings.tls {
        Mode::Plain => (local_url(settings.listen), Trust::WebPki),
        Mode::Files { cert, .. } => (format!("https://{addr}"), Trust::Pinned(cert.clone())),
        Mode::Acme { domains, .. } => (
            format!("https://{}:{}", domains[0], addr.port()),
            Trust::Resolve {
                domain: domains[0].clone(),
                addr,
            },
        ),
    }
}

/// `DOCKHOOK_API_TOKEN` (or the file's `api_token`), else the generated
/// one.
fn api_token(settings: &ClientSettings) -> Result<Secret, CliError> {
    if let Some(token) = &settings.api_token {
        return Ok(token.clone());
    }
    let path = &settings.api_token_path;
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Secret::new(text.trim())),
        Ok(_) => Err(no_token(path, "it is empty".into())),
        Err(e) => Err(no_token(path, e.to_string())),
    }
}

fn no_token(path: &Path, reason: String) -> CliError {
    CliError::NoToken {
        path: path.display().to_string(),
        reason,
    }
}

fn read_token(path: &Path) -> Result<Secret, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!("cannot read --token-file {}: {e}", path.display()))
    })?;
    match text.trim() {
        "" => Err(CliError::Usage(format!(
            "--token-file {} is empty",
            path.display()
        ))),
        token => Ok(Secret::new(token)),
    }
}

/// Does `request` with `client`, printing to `out`; returns the exit code.
pub async fn execute(
    client: &Client,
    request: Request,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let now = crate::timing::now();
    let text = match request {
        Request::Status => {
            let answer = client.targets().await?;
            pick(json, &answer, || render::status(&answer.value.targets, now))
        }
        Request::History { target, limit } => {
            let answer = client.deployments(target.as_deref(), limit).await?;
            pick(json, &answer, || {
                render::history(&answer.value.deployments, now)
            })
        }
        Request::Show { id } => {
            let answer = client.deployment(id).await?;
            pick(json, &answer, || render::detail(&answer.value, now))
        }
        Request::Update {
            target,
            force,
            wait,
        } => {
            let answer = client.update(&target, force).await?;
            let what = format!("update of {target}");
            return accepted(client, &answer, &what, wait, json, out).await;
        }
        Request::Rollback { target, to, wait } => {
            let answer = client.rollback(&target, to).await?;
            let what = match to {
                Some(to) => format!("rollback of {target} to deployment {to}"),
                None => format!("rollback of {target}"),
            };
            return accepted(client, &answer, &what, wait, json, out).await;
        }
        Request::Approve { id, wait } => {
            let answer = client.decide(id, "approve").await?;
            let d = &answer.value.deployment;
            if wait {
                if !json {
                    say(out, &format!("deployment {id} approved"))?;
                }
                return follow(client, id, json, out).await;
            }
            pick(json, &answer, || {
                format!(
                    "deployment {id} approved: {} is being updated to {} (follow it with --wait or `dockhook show {id}`)\n",
                    d.target, d.image
                )
            })
        }
        Request::RotateToken { kind, grace } => {
            let answer = client.rotate(kind.as_str(), grace.as_deref()).await?;
            pick(json, &answer, || render::rotated(kind, &answer.value, now))
        }
        Request::Reject { id } => {
            let answer = client.decide(id, "reject").await?;
            pick(json, &answer, || {
                format!(
                    "deployment {id} rejected: {} was not touched\n",
                    answer.value.deployment.target
                )
            })
        }
    };
    say(out, text.trim_end_matches('\n'))?;
    Ok(EXIT_OK)
}

/// The answer as received for `--json`, else the text `people` makes.
fn pick<T>(json: bool, answer: &Answer<T>, people: impl FnOnce() -> String) -> String {
    if json {
        answer.raw.clone()
    } else {
        people()
    }
}

/// Prints a line and flushes it, so a follower sees it as it happens.
fn say(out: &mut dyn Write, line: &str) -> Result<(), CliError> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::OutputClosed,
            _ => CliError::Usage(format!("cannot write the output: {e}")),
        })
}

/// What an update or rollback prints once accepted, and the following.
async fn accepted(
    client: &Client,
    answer: &Answer<client::Accepted>,
    what: &str,
    wait: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let id = answer.value.deployment;
    match (wait, json) {
        (true, true) => follow(client, id, json, out).await,
        (true, false) => {
            say(out, &format!("{what} queued as deployment {id}"))?;
            follow(client, id, json, out).await
        }
        (false, true) => {
            say(out, &answer.raw)?;
            Ok(EXIT_OK)
        }
        (false, false) => {
            let line = format!(
                "{what} queued as deployment {id} (follow it with --wait or `dockhook show {id}`)"
            );
            say(out, &line)?;
            Ok(EXIT_OK)
        }
    }
}

/// Follows deployment `id` until it ends, printing each step as it comes
/// (with `json`, only the ended deployment); the exit code says how it
/// ended.
async fn follow(client: &Client, id: i64, json: bool, out: &mut dyn Write) -> Result<u8, CliError> {
    // Subscribed before the first read: a change after that read is heard.
    let mut events = client.events().await?;
    let mut shown = 0;
    let mut hinted = false;
    loop {
        let answer = client.deployment(id).await?;
        let Detail {
            deployment, steps, ..
        } = &answer.value;
        if !json {
            for step in steps.iter().skip(shown) {
                let cells = render::step(deployment, step);
                say(
                    out,
                    format!(
                        "{:<12}  {:>8}  {:<17}  {}",
                        cells[0], cells[1], cells[2], cells[3]
                    )
                    .trim_end(),
                )?;
            }
            shown = shown.max(steps.len());
        }
        if deployment.state.is_final() {
            return ended(&answer, json, out);
        }
        if deployment.state == State::AwaitingApproval && !hinted && !json {
            say(
                out,
                &format!("waiting for a person: `dockhook approve {id}` or `dockhook reject {id}`"),
            )?;
            hinted = true;
        }
        wake(client, &mut events, id).await?;
    }
}

/// Waits until deployment `id` may have changed: an event about it, a
/// `lagged` event, a stream opened again, or [`POLL`] passed.
async fn wake(client: &Client, events: &mut Events, id: i64) -> Result<(), CliError> {
    loop {
        match tokio::time::timeout(POLL, events.next()).await {
            Err(_) if events.last_seen().elapsed() < SILENT => return Ok(()),
            Ok(Some(Ok(event))) => match event.event.as_str() {
                "deployment" => {
                    let change: Option<Change> = serde_json::from_str(&event.data).ok();
                    if change.is_none_or(|c| c.deployment == id) {
                        return Ok(());
                    }
                }
                "lagged" => return Ok(()),
                _ => {}
            },
            // Ended, broken or silent: open it again, then read afresh.
            Err(_) | Ok(None) | Ok(Some(Err(_))) => {
                *events = reconnect(client).await?;
                return Ok(());
            }
        }
    }
}

/// The event stream again, trying for [`RECONNECT_FOR`] while dockhook
/// cannot be reached.
async fn reconnect(client: &Client) -> Result<Events, CliError> {
    let deadline = Instant::now() + RECONNECT_FOR;
    loop {
        match client.events().await {
            Ok(events) => return Ok(events),
            Err(CliError::Unreachable { .. }) | Err(CliError::Refused { status: 503, .. })
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The last words on an ended deployment, and the exit code its state
/// means.
fn ended(answer: &Answer<Detail>, json: bool, out: &mut dyn Write) -> Result<u8, CliError> {
    let Detail {
        deployment: d,
        steps,
        timings,
    } = &answer.value;
    let code = match d.state {
        State::Succeeded => EXIT_OK,
        State::Skipped => EXIT_SKIPPED,
        _ => EXIT_NOT_DONE,
    };
    if json {
        say(out, &answer.raw)?;
        return Ok(code);
    }
    let reason = d
        .error
        .clone()
        .or_else(|| steps.last().and_then(|s| s.detail.clone()));
    let figure = |d: Option<Duration>| d.map_or_else(|| "-".to_string(), render::duration);
    let line = match (d.state, reason) {
        (State::Succeeded, _) => format!(
            "deployment {} succeeded: {} runs {} (serving after {}, downtime {})",
            d.id,
            d.target,
            d.image,
            figure(timings.to_serving),
            figure(timings.downtime)
        ),
        (state, Some(reason)) => format!("deployment {} {}: {reason}", d.id, state.as_str()),
        (state, None) => format!("deployment {} {}", d.id, state.as_str()),
    };
    say(out, &line)?;
    Ok(code)
}

#[cfg(test)]
mod tests;
