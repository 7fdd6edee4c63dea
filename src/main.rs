//! The `dockhook` command: parse arguments, load the configuration, call the
//! library. Everything else lives in the `dockhook` crate.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dockhook::app;
use dockhook::cli::{self, Connection, Request};
use dockhook::config::{self, Config};
use dockhook::settings::Secret;
use dockhook::tokens::{self, Kind};

/// Keeps Docker containers up to date the moment a registry says a new image is out.
#[derive(Parser)]
#[command(version, about, after_help = CLIENT_EXIT_CODES)]
struct Cli {
    /// TOML configuration file (also DOCKHOOK_CONFIG); environment variables win over it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook server (the default).
    Serve,
    /// Print the resolved settings, secrets masked, and exit non-zero on any error.
    CheckConfig {
        /// Print the token and the webhook URL in full.
        #[arg(long)]
        show_token: bool,
    },
    /// Exit 0 when the local dockhook answers /healthz with 200 (for Docker's HEALTHCHECK).
    Healthcheck,
    /// Send a test message to every notification URL; exit non-zero if any failed.
    NotifyTest,
    /// Print the README's configuration table (Markdown) from the settings.
    #[command(hide = true)]
    ConfigTable,
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that talk to a running dockhook over its API.
#[derive(Subcommand)]
enum ClientCommand {
    /// Show the watched containers: image, digest, mode, last and pending deployments.
    Status {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show the newest deployments, of every container or of NAME.
    History {
        /// Only this container's deployments.
        name: Option<String>,
        /// How many deployments, newest first (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show one deployment: what it deployed, its steps and their timings.
    Show {
        /// The deployment's ID.
        id: i64,
        #[command(flatten)]
        connection: Connection,
    },
    /// Update container NAME now to the newest image of its tag.
    Update {
        name: String,
        /// Deploy even if the container runs that image already.
        #[arg(long)]
        force: bool,
        /// Follow the deployment until it ends; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Deploy container NAME's previous image again.
    Rollback {
        name: String,
        /// Deploy the image of this earlier deployment [default: the one before the current one].
        #[arg(long, value_name = "ID")]
        to: Option<i64>,
        /// Follow the deployment until it ends; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Deploy a deployment that awaits approval.
    Approve {
        id: i64,
        /// Follow the deployment until it ends; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// End a deployment that awaits approval `rejected`; the container is not touched.
    Reject {
        id: i64,
        #[command(flatten)]
        connection: Connection,
    },
    /// Replace a token dockhook keeps (hook, api or read) and print the new one once.
    RotateToken {
        /// `hook` (the secret every hook URL's token comes from), `api` or `read`.
        #[arg(value_parser = parse_kind)]
        kind: Kind,
        /// How long the old token stays valid (`1h`, `0s`) [default: token_grace].
        #[arg(long, value_name = "DURATION")]
        grace: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    Kind::parse(text).ok_or_else(|| "expected hook, api or read".to_string())
}

/// The client commands' exit codes, for `--help`.
const CLIENT_EXIT_CODES: &str = "\
Client commands (status, history, show, update, rollback, approve, reject, rotate-token) exit with:
  0  done; with --wait, the deployment succeeded
  1  dockhook refused the request, or the deployment ended otherwise (failed, rolled back, rejected)
  2  the request could not be made: usage, no token, dockhook unreachable, token refused
  3  with --wait, the deployment was skipped: nothing was deployed (already up to date, superseded, quarantined)";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("dockhook: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || Config::load(cli.config.as_deref());
    let runtime = || tokio::runtime::Runtime::new().context("cannot start the async runtime");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = load()?;
            dockhook::logging::init(
                &config.log,
                config.log_format,
                std::io::stderr().is_terminal(),
            )?;
            runtime()?.block_on(app::serve(config, app::shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { show_token } => {
            check_config(&load()?, show_token)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck => {
            let config = load()?;
            let tls = config.tls.mode()? != dockhook::tls::Mode::Plain;
            let healthy = runtime()?
                .block_on(app::probe_health(config.listen, tls))
                .unwrap_or(false);
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::NotifyTest => {
            let config = load()?;
            if config.notify.endpoints.is_empty() {
                anyhow::bail!(
                    "no notification URLs: set DOCKHOOK_NOTIFY (or `notify` in the config file)"
                );
            }
            let http = dockhook::notify::Http::new();
            let results =
                runtime()?.block_on(dockhook::notify::outbox::test_all(&config.notify, &http));
            let failed = results
                .iter()
                .filter(|(_, outcome)| outcome.is_err())
                .count();
            for (url, outcome) in &results {
                match outcome {
                    Ok(()) => println!("sent    {url}"),
                    Err(error) => println!("FAILED  {url}: {error}"),
                }
            }
            println!(
                "\n{} of {} notification URLs took the test message",
                results.len() - failed,
                results.len()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::ConfigTable => {
            // Documentation, not this host's settings: needs no configuration.
            print!("{}", config::markdown_table());
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(client) => {
            let (connection, request) = client_request(client);
            let code = runtime()?.block_on(cli::run(cli.config.as_deref(), &connection, request));
            Ok(ExitCode::from(code))
        }
    }
}

/// A client command's options and request.
fn client_request(command: ClientCommand) -> (Connection, Request) {
    match command {
        ClientCommand::Status { connection } => (connection, Request::Status),
        ClientCommand::History {
            name,
            limit,
            connection,
        } => (
            connection,
            Request::History {
                target: name,
                limit,
            },
        ),
        ClientCommand::Show { id, connection } => (connection, Request::Show { id }),
        ClientCommand::Update {
            name,
            force,
            wait,
            connection,
        } => (
            connection,
            Request::Update {
                target: name,
                force,
                wait,
            },
        ),
        ClientCommand::Rollback {
            name,
            to,
            wait,
            connection,
        } => (
            connection,
            Request::Rollback {
                target: name,
                to,
                wait,
            },
        ),
        ClientCommand::Approve {
            id,
            wait,
            connection,
        } => (connection, Request::Approve { id, wait }),
        ClientCommand::Reject { id, connection } => (connection, Request::Reject { id }),
        ClientCommand::RotateToken {
            kind,
            grace,
            connection,
        } => (connection, Request::RotateToken { kind, grace }),
    }
}

fn check_config(config: &Config, show_token: bool) -> anyhow::Result<()> {
    // The files dockhook would refuse to start with.
    if let dockhook::tls::Mode::Files { cert, key } = config.tls.mode()? {
        dockhook::tls::load_pair(&cert, &key)?;
    }
    println!("dockhook configuration: OK");
    for (key, value) in config.entries() {
        println!("  {key:<24} {value}");
    }
    // Read, never create: checking must not change anything.
    let value = |kind: Kind| -> anyhow::Result<Option<Secret>> {
        Ok(match &config.tokens.get(kind).current {
            Some(token) => Some(token.clone()),
            None => tokens::kept(&config.data_dir, kind)?,
        })
    };
    let show = |token: &Secret| {
        if show_token {
            token.expose().to_string()
        } else {
            token.masked()
        }
    };
    let hook_secret = value(Kind::Hook)?;
    println!("\nWebhook URLs (each token opens its own hook only):");
    let token_of = |source: &str| match &hook_secret {
        Some(secret) => show(&tokens::hook_token(secret, source)),
        None => "<generated on first start>".to_string(),
    };
    for hook in app::hooks(config, token_of) {
        if hook.enabled {
            println!("  {:<26} {}{}", hook.source, config.base_url(), hook.path);
            println!("  {:<26} ({})", "", hook.auth);
        } else {
            println!("  {:<26} off: set its secret to turn it on", hook.source);
        }
    }
    println!("\nAPI tokens:");
    for (kind, what) in [
        (Kind::Api, "API token (API, status page, CLI)"),
        (Kind::Read, "read-only token"),
    ] {
        let shown = match value(kind)? {
            Some(token) => show(&token),
            None if kind == Kind::Read => "none (`dockhook rotate-token read` makes one)".into(),
            None => "<generated on first start>".into(),
        };
        println!("  {what:<34} {shown}");
    }
    if !show_token {
        println!("  (run with --show-token to print the tokens whole)");
    }
    Ok(())
}
