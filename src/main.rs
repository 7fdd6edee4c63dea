//! The `dockhook` command: parse arguments, load the configuration, call the
//! library. Everything else lives in the `dockhook` crate.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dockhook::app;
use dockhook::config::{self, Config};

/// Keeps Docker containers up to date the moment a registry says a new image is out.
#[derive(Parser)]
#[command(version, about)]
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
    /// Print the README's configuration table (Markdown) from the settings.
    #[command(hide = true)]
    ConfigTable,
}

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
            let listen = load()?.listen;
            let healthy = runtime()?
                .block_on(app::probe_health(listen))
                .unwrap_or(false);
            Ok(if healthy {
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
    }
}

fn check_config(config: &Config, show_token: bool) -> anyhow::Result<()> {
    println!("dockhook configuration: OK");
    for (key, value) in config.entries() {
        println!("  {key:<24} {value}");
    }
    let stored = config.token_path();
    let token = match &config.token {
        Some(token) => Some(token.clone()),
        // Read, never create: checking must not change anything.
        None if stored.exists() => Some(config.resolve_token()?.0),
        None => None,
    };
    let shown = match &token {
        Some(token) if show_token => token.expose().to_string(),
        Some(token) => token.masked(),
        None => "<generated on first start>".to_string(),
    };
    println!("\nWebhook URLs:");
    for hook in app::hooks(config, &shown) {
        if hook.enabled {
            println!("  {:<26} {}{}", hook.source, config.base_url(), hook.path);
            println!("  {:<26} ({})", "", hook.auth);
        } else {
            println!("  {:<26} off: set its secret to turn it on", hook.source);
        }
    }
    if token.is_some() && !show_token {
        println!("  (run with --show-token to print the token whole)");
    }
    Ok(())
}
