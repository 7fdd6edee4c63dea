//! The engine over SSH, as the docker CLI reaches `ssh://[USER@]HOST[:PORT]`:
//! each connection to the engine is one run of the system's `ssh` client,
//! which runs `docker system dial-stdio` on the remote host and carries the
//! Engine API over its stdin and stdout.
//!
//! The system client brings the user's configuration, keys, agent and known
//! hosts (`~/.ssh`), as it does for the CLI. It runs with `BatchMode=yes`:
//! a daemon has no terminal to answer a password or host-key prompt, so an
//! unknown host key or a key that is refused fails at once, and what `ssh`
//! says about it is logged.
//!
//! (bollard's own `ssh` feature passes `HOST:PORT` to `ssh` as a host name,
//! so a port in the address could not work.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use bollard::{BollardRequest, ClientVersion, Docker};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Where `ssh://[USER@]HOST[:PORT]` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Destination {
    /// Parses `ssh://[USER@]HOST[:PORT]` (with no path, as the CLI wants).
    pub fn parse(address: &str) -> Option<Destination> {
        let url = url::Url::parse(address).ok()?;
        let host = url.host_str().filter(|h| !h.is_empty())?;
        if url.scheme() != "ssh" || !url.path().is_empty() || url.query().is_some() {
            return None;
        }
        let user = Some(url.username()).filter(|u| !u.is_empty());
        Some(Destination {
            user: user.map(str::to_string),
            // An IPv6 address comes bracketed, which ssh does not take.
            host: host.trim_matches(['[', ']']).to_string(),
            port: url.port(),
        })
    }

    /// The arguments of `ssh` that run `docker system dial-stdio` there,
    /// as the docker CLI gives them.
    fn ssh_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
            .map(String::from)
            .into();
        if let Some(user) = &self.user {
            args.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.extend(["--", &self.host, "docker", "system", "dial-stdio"].map(String::from));
        args
    }
}

/// A client for the engine at `address` (`ssh://…`); nothing runs yet.
pub fn connect(address: &str, timeout: u64, version: &ClientVersion) -> io::Result<Docker> {
    let destination = Destination::parse(address).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{address} is not ssh://[USER@]HOST[:PORT]"),
        )
    })?;
    let client = Client::builder(TokioExecutor::new()).build(Dialer { destination });
    let transport = move |request: BollardRequest| {
        let client = client.clone();
        async move {
            client
                .request(request)
                .await
                .map_err(|e| bollard::errors::Error::IOError {
                    err: io::Error::other(e),
                })
        }
    };
    // bollard names the engine `ssh://…` in the requests it makes; the
    // dialer knows where to go.
    Docker::connect_with_custom_transport(transport, Some(address), timeout, version)
        .map_err(io::Error::other)
}

/// Connects by starting `ssh`.
#[derive(Clone)]
struct Dialer {
    destination: Destination,
}

impl tower_service::Service<http::Uri> for Dialer {
    type Response = SshPipe;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<SshPipe>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let destination = self.destination.clone();
        async move { SshPipe::open(&destination) }.boxed()
    }
}

/// One `ssh` process; the connection is its stdin and stdout, and ends with
/// it (it is killed when the connection is dropped).
struct SshPipe {
    _child: Child,
    stdin: TokioIo<ChildStdin>,
    stdout: TokioIo<ChildStdout>,
}

impl SshPipe {
    fn open(destination: &Destination) -> io::Result<SshPipe> {
        let mut child = Command::new("ssh")
            .args(destination.ssh_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run ssh: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three are piped");
        };
        // What ssh says (a refused key, an unknown host) is the only
        // explanation of a connection that closes at once.
        let host = destination.host.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(%host, "ssh: {line}");
            }
        });
        Ok(SshPipe {
            _child: child,
            stdin: TokioIo::new(stdin),
            stdout: TokioIo::new(stdout),
        })
    }
}

impl Connection for SshPipe {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for SshPipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SshPipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_as_the_docker_cli() {
        let parsed = Destination::parse("ssh://deploy@build.example.com:2222").unwrap();
        assert_eq!(
            parsed,
            Destination {
                user: Some("deploy".into()),
                host: "build.example.com".into(),
                port: Some(2222),
            }
        );
        assert_eq!(
            parsed.ssh_args(),
            [
                "-T",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=30",
                "-l",
                "deploy",
                "-p",
                "2222",
                "--",
                "build.example.com",
                "docker",
                "system",
                "dial-stdio"
            ]
        );
        // A host alone leaves user and port to ~/.ssh/config.
        let alias = Destination::parse("ssh://build").unwrap();
        assert_eq!((alias.user, alias.port), (None, None));
        assert_eq!(alias.host, "build");
        assert_eq!(Destination::parse("ssh://[::1]:22").unwrap().host, "::1");
        for bad in [
            "ssh://",
            "ssh://host/var/run/docker.sock",
            "tcp://host:2376",
            "ssh://host?x=1",
        ] {
            assert_eq!(Destination::parse(bad), None, "{bad}");
        }
    }
}
