//! HTTPS on dockhook's own listener, for a dockhook that faces the internet
//! without a reverse proxy: either a certificate and key from PEM files,
//! reloaded when they change (certbot renewing them, say), or certificates
//! obtained and renewed over ACME (Let's Encrypt) by `rustls-acme`, with the
//! TLS-ALPN-01 challenge answered on the same port and the account and
//! certificates cached in `DATA_DIR/acme`.
//!
//! This module owns the TLS settings, the server side (the [`Acceptor`] the
//! per-connection task hands each accepted TCP stream to, and the
//! background task that reloads or renews) and the two client sides
//! dockhook itself needs: the health probe, and the command-line client on
//! the same host, which trusts exactly the certificate in the configured
//! file. Plain HTTP, for dockhook behind a reverse proxy, stays the default.
//! It knows nothing of HTTP: it hands back a byte stream.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    DigitallySignedStruct, SignatureScheme,
};
use tokio_util::sync::CancellationToken;

/// How long a client may take to finish the TLS handshake: a client that
/// never does cannot hold a connection slot for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate and key files are looked at for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);
/// Let's Encrypt's production directory: the default ACME server.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// The one protocol served: HTTP/1.1, as on plain HTTP.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The TLS settings, as configured; [`Settings::mode`] says what they add
/// up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    pub acme_domains: Vec<String>,
    pub acme_email: Option<String>,
    pub acme_directory: String,
    /// A CA certificate (PEM) trusted for the ACME directory besides the
    /// Web PKI's: a private ACME server's, or a test server's.
    pub acme_ca: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            acme_domains: Vec::new(),
            acme_email: None,
            acme_directory: LETS_ENCRYPT.to_string(),
            acme_ca: None,
        }
    }
}

/// What dockhook serves on its listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP: TLS is a reverse proxy's job.
    Plain,
    /// The certificate chain and key in these files.
    Files { cert: PathBuf, key: PathBuf },
    /// Certificates for `domains` from the ACME server at `directory`.
    Acme {
        domains: Vec<String>,
        email: String,
        directory: String,
        ca: Option<PathBuf>,
    },
}

/// Why the TLS settings do not add up; the text says what to do (the
/// file keys are the variables' names in lower case, without `DOCKHOOK_`).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct SettingsError {
    /// The setting to change.
    pub key: &'static str,
    pub reason: String,
}

impl Settings {
    /// What the settings add up to: plain HTTP, files, or ACME; never two.
    pub fn mode(&self) -> Result<Mode, SettingsError> {
        let error = |key, reason: &str| {
            Err(SettingsError {
                key,
                reason: reason.to_string(),
            })
        };
        let acme = !self.acme_domains.is_empty() || self.acme_email.is_some();
        match (&self.cert, &self.key) {
            (Some(_), Some(_)) if acme => error(
                "tls_cert",
                "DOCKHOOK_TLS_CERT and DOCKHOOK_ACME_DOMAIN are both set: serve either the \
                 certificate files or ACME's certificates, not both (unset one)",
            ),
            (Some(cert), Some(key)) => Ok(Mode::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (Some(_), None) => error(
                "tls_key",
                "DOCKHOOK_TLS_CERT is set but DOCKHOOK_TLS_KEY is not: set both (the PEM \
                 certificate chain and its private key), or neither for plain HTTP",
            ),
            (None, Some(_)) => error(
                "tls_cert",
                "DOCKHOOK_TLS_KEY is set but DOCKHOOK_TLS_CERT is not: set both (the PEM \
                 certificate chain and its private key), or neither for plain HTTP",
            ),
            (None, None) => match (&self.acme_domains[..], &self.acme_email) {
                ([], None) if self.acme_ca.is_some() => error(
                    "acme_ca",
                    "DOCKHOOK_ACME_CA is set but ACME is not on: set DOCKHOOK_ACME_DOMAIN and \
                     DOCKHOOK_ACME_EMAIL, or unset DOCKHOOK_ACME_CA",
                ),
                ([], None) => Ok(Mode::Plain),
                ([], Some(_)) => error(
                    "acme_domain",
                    "DOCKHOOK_ACME_EMAIL is set but DOCKHOOK_ACME_DOMAIN is not: set it to the \
                     name(s) the certificate is for",
                ),
                (_, None) => error(
                    "acme_email",
                    "DOCKHOOK_ACME_DOMAIN is set but DOCKHOOK_ACME_EMAIL is not: set it to a \
                     contact address for the ACME account (Let's Encrypt sends expiry warnings \
                     there)",
                ),
                (domains, Some(email)) => Ok(Mode::Acme {
                    domains: domains.to_vec(),
                    email: email.clone(),
                    directory: self.acme_directory.clone(),
                    ca: self.acme_ca.clone(),
                }),
            },
        }
    }
}

/// Parses `acme_domain`: comma-separated DNS names, each one a name the
/// ACME server can check by connecting to it (no wildcard: TLS-ALPN-01
/// cannot prove one).
pub fn parse_domains(text: &str) -> Result<Vec<String>, String> {
    let mut domains = Vec::new();
    for domain in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if domain.starts_with("*.") {
            return Err(format!(
                "{domain}: a wildcard needs the DNS-01 challenge, which dockhook does not do: \
                 name each host"
            ));
        }
        if domain.parse::<std::net::IpAddr>().is_ok()
            || !domain.contains('.')
            || domain.len() > 253
            || !domain.split('.').all(label_ok)
        {
            return Err(format!(
                "{domain} is not a DNS name such as hooks.example.com (no scheme, port or path)"
            ));
        }
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    Ok(domains)
}

/// Why TLS could not be set up, or a certificate not loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read the TLS key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(
        "the TLS key {key} does not belong to the certificate {cert} ({reason}): set tls_key to \
         the key the certificate was issued for"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot read acme_ca {path}: {reason}")]
    AcmeCa { path: PathBuf, reason: String },
    #[error("cannot create the ACME cache directory {path}: {source}")]
    AcmeCache { path: PathBuf, source: io::Error },
}

/// The crypto every TLS config of dockhook's uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a PEM file held, or why it did not.
fn pem_reason(error: rustls_pki_types::pem::Error, what: &str) -> String {
    match error {
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => format!("it holds no PEM {what}"),
        e => format!("it is not valid PEM: {e}"),
    }
}

/// Loads a certificate chain and its key, checking that they belong
/// together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert).map_err(|reason| TlsError::Cert {
        path: cert.to_path_buf(),
        reason,
    })?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: pem_reason(e, "private key (-----BEGIN PRIVATE KEY-----)"),
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Every certificate in a PEM file, in order; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| pem_reason(e, "certificate"))?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// Hands out the certificate in force, which the reload task replaces.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A server config serving HTTP/1.1 with the certificates `resolver` picks.
fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Arc::new(config)
}

/// Turns accepted TCP connections into what HTTP is served on: the
/// connection itself, or a TLS session over it.
#[derive(Clone)]
pub struct Acceptor {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Plain,
    Tls(Arc<rustls::ServerConfig>),
    /// ACME's challenge connections get the challenge certificate.
    Acme {
        serve: Arc<rustls::ServerConfig>,
        challenge: Arc<rustls::ServerConfig>,
    },
}

/// A connection to serve HTTP on.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Acceptor {
    /// Plain HTTP.
    pub fn plain() -> Self {
        Self { kind: Kind::Plain }
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        !matches!(self.kind, Kind::Plain)
    }

    /// Sets up `mode`: loads the files (any problem with them is an error
    /// now, before dockhook listens) or starts obtaining certificates, with
    /// `cache_dir` for ACME's account and certificates. The task that
    /// reloads or renews them runs until `stop`.
    pub fn start(
        mode: &Mode,
        cache_dir: &Path,
        stop: CancellationToken,
    ) -> Result<(Self, Option<tokio::task::JoinHandle<()>>), TlsError> {
        match mode {
            Mode::Plain => Ok((Self::plain(), None)),
            Mode::Files { cert, key } => {
                // Taken before loading: a change while loading is seen.
                let seen = fingerprints(cert, key);
                let first = load_pair(cert, key)?;
                let current = Arc::new(Current(RwLock::new(Arc::new(first))));
                let task = tokio::spawn(reload(
                    cert.clone(),
                    key.clone(),
                    seen,
                    current.clone(),
                    RELOAD_POLL,
                    stop,
                ));
                let kind = Kind::Tls(server_config(current));
                Ok((Self { kind }, Some(task)))
            }
            Mode::Acme {
                domains,
                email,
                directory,
                ca,
            } => {
                let client = acme_client_config(ca.as_deref())?;
                create_private_dir(cache_dir).map_err(|source| TlsError::AcmeCache {
                    path: cache_dir.to_path_buf(),
                    source,
                })?;
                let state = rustls_acme::AcmeConfig::new_with_client_config(domains, client)
                    .contact_push(format!("mailto:{email}"))
                    .directory(directory)
                    .cache(rustls_acme::caches::DirCache::new(cache_dir.to_path_buf()))
                    .state();
                let kind = Kind::Acme {
                    serve: server_config(state.resolver()),
                    challenge: state.challenge_rustls_config_with_provider(provider()),
                };
                tracing::info!(domains = %domains.join(","), %directory, "TLS certificates come over ACME");
                let task = tokio::spawn(run_acme(state, stop));
                Ok((Self { kind }, Some(task)))
            }
        }
    }

    /// The TLS handshake on `stream`, bounded by [`HANDSHAKE_TIMEOUT`];
    /// `None` when it failed, or when it was an ACME server checking a
    /// challenge, which wants no HTTP.
    pub async fn accept(&self, stream: TcpStream) -> Option<Stream> {
        let (serve, challenge) = match &self.kind {
            Kind::Plain => return Some(Stream::Plain(stream)),
            Kind::Tls(serve) => (serve, None),
            Kind::Acme { serve, challenge } => (serve, Some(challenge)),
        };
        let handshake = async {
            if !starts_tls(&stream).await? {
                answer_plain_http(stream).await;
                return Ok(None);
            }
            let start = tokio_rustls::LazyConfigAcceptor::new(Default::default(), stream).await?;
            match challenge {
                Some(config) if rustls_acme::is_tls_alpn_challenge(&start.client_hello()) => {
                    // Not info: anyone can ask, as often as they like.
                    tracing::debug!("answering an ACME TLS-ALPN-01 challenge");
                    let mut tls = start.into_stream(config.clone()).await?;
                    tokio::io::AsyncWriteExt::shutdown(&mut tls).await?;
                    Ok(None)
                }
                _ => Ok::<_, io::Error>(Some(start.into_stream(serve.clone()).await?)),
            }
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(tls)) => tls.map(|tls| Stream::Tls(Box::new(tls))),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("TLS handshake took longer than {HANDSHAKE_TIMEOUT:?}");
                None
            }
        }
    }
}

/// Whether what the client sent first is a TLS handshake record (type 22),
/// rather than, say, a plain HTTP request.
async fn starts_tls(stream: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    Ok(stream.peek(&mut first).await? == 1 && first[0] == 0x16)
}

/// Tells a client that spoke plain HTTP to the HTTPS port what to do, as
/// nginx does, instead of closing on it without a word.
async fn answer_plain_http(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str = "dockhook serves HTTPS on this port: use an https:// URL\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Closing with the request unread would reset the connection, and the
    // client could lose the answer: read what it sent, for a moment.
    let mut sink = [0u8; 4096];
    let drain = async {
        while matches!(
            tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await,
            Ok(1..)
        ) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// The size, modification time and inode of a file: what changes when it is
/// rewritten or replaced (a renamed-over file, a symlink switched to a new
/// version as certbot does).
type Fingerprint = Option<(u64, std::time::SystemTime, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?, meta.ino()))
}

fn fingerprints(cert: &Path, key: &Path) -> (Fingerprint, Fingerprint) {
    (fingerprint(cert), fingerprint(key))
}

/// Every `every`, looks whether the files changed since they were `seen`,
/// and if so loads the new pair into `current`. A pair that does not load (a renewal caught
/// half-written, a key that is not the certificate's) leaves the old one
/// serving; it is tried again when the files change again.
async fn reload(
    cert: PathBuf,
    key: PathBuf,
    mut seen: (Fingerprint, Fingerprint),
    current: Arc<Current>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
        let now = fingerprints(&cert, &key);
        if now == seen {
            continue;
        }
        seen = now;
        match load_pair(&cert, &key) {
            Ok(pair) => {
                *current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::error!(
                "{e}; still serving the previous certificate until the files change again"
            ),
        }
    }
}

/// Drives ACME: loads the cached certificate, orders one when there is none
/// or it is due for renewal (a third of its lifetime before it expires),
/// and logs what happens, until `stop`.
async fn run_acme(mut state: rustls_acme::AcmeState<io::Error>, stop: CancellationToken) {
    use rustls_acme::EventOk;
    loop {
        let event = tokio::select! {
            event = state.next() => event,
            () = stop.cancelled() => return,
        };
        match event {
            Some(Ok(EventOk::DeployedCachedCert)) => {
                tracing::info!("serving the ACME certificate cached from an earlier run")
            }
            Some(Ok(EventOk::DeployedNewCert)) => {
                tracing::info!("obtained a new certificate over ACME; serving it")
            }
            Some(Ok(EventOk::CertCacheStore | EventOk::AccountCacheStore)) => {}
            Some(Err(e @ rustls_acme::EventError::Order(_))) => tracing::error!(
                "ACME: {e}; trying again later (do the domains resolve to this host, and does \
                 port 443 reach dockhook?)"
            ),
            Some(Err(e)) => tracing::error!("ACME: {e}"),
            None => return,
        }
    }
}

/// The directory under which the ACME account key and certificates live:
/// only its owner may look in.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The TLS client config ACME requests go out with: the Web PKI's roots,
/// and `ca` besides if given.
fn acme_client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let error = |reason: String| TlsError::AcmeCa {
            path: path.to_path_buf(),
            reason,
        };
        for cert in read_certs(path).map_err(error)? {
            roots.add(cert).map_err(|e| error(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client config that trusts exactly the end-entity certificate `path`
/// starts with: the command-line client on dockhook's own host reads the
/// file dockhook serves, so it needs neither a CA nor a name that matches
/// the address it connects to.
pub fn pinned_client_config(path: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let leaf = read_certs(path)
        .map_err(|reason| TlsError::Cert {
            path: path.to_path_buf(),
            reason,
        })?
        .swap_remove(0);
    Ok(client_config(Verifier {
        pinned: Some(leaf),
        provider: provider(),
    }))
}

fn client_config(verifier: Verifier) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    config
}

/// Checks the server's certificate against a pinned one, or, for the
/// liveness probe of dockhook's own listener (`pinned: None`), not at all:
/// the probe sends no secret and only reads a status line. The handshake's
/// signatures are checked either way.
#[derive(Debug)]
struct Verifier {
    pinned: Option<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(pinned) if pinned.as_ref() != end_entity.as_ref() => Err(rustls::Error::General(
                "dockhook serves a certificate other than the one in tls_cert (was it just \
                 replaced? try again in a few seconds; or pass --url for another dockhook)"
                    .into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens a TLS session to dockhook's own listener at `addr` for the health
/// probe, trusting whatever certificate it serves (see [`Verifier`]).
pub async fn connect_for_probe(
    addr: SocketAddr,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(Verifier {
        pinned: None,
        provider: provider(),
    })));
    let stream = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("a valid name");
    connector.connect(name, stream).await
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name`, and its key, as PEM.
    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes `text` to `path` the way certbot and editors do: a new file
    /// renamed over the old one.
    fn replace(path: &Path, text: &str) {
        let new = path.with_extension("new");
        std::fs::write(&new, text).unwrap();
        std::fs::rename(new, path).unwrap();
    }

    /// An acceptor serving a self-signed certificate from files in the
    /// directory it returns.
    fn files_acceptor() -> (Acceptor, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("a.example.com");
        std::fs::write(dir.path().join("c"), cert).unwrap();
        std::fs::write(dir.path().join("k"), key).unwrap();
        let mode = Mode::Files {
            cert: dir.path().join("c"),
            key: dir.path().join("k"),
        };
        // The reload task is not needed: the stop is dropped uncancelled,
        // and the task ends with the test's runtime.
        let (acceptor, _) = Acceptor::start(&mode, dir.path(), CancellationToken::new()).unwrap();
        (acceptor, dir)
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.end_entity_cert().unwrap().to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_pair_loads_and_every_bad_file_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (a_cert, a_key) = pair("a.example.com");
        let (_, b_key) = pair("b.example.com");
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        assert_eq!(leaf(&load_pair(&cert, &key).unwrap()), der(&a_cert));

        let missing = dir.path().join("missing.pem");
        let err = load_pair(&missing, &key).unwrap_err().to_string();
        assert!(
            err.contains("TLS certificate") && err.contains("missing.pem"),
            "{err}"
        );
        let err = load_pair(&cert, &missing).unwrap_err().to_string();
        assert!(
            err.contains("TLS key") && err.contains("missing.pem"),
            "{err}"
        );
        // The key where the certificate should be, and the other way round.
        let err = load_pair(&key, &key).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = load_pair(&cert, &cert).unwrap_err().to_string();
        assert!(err.contains("no PEM private key"), "{err}");
        std::fs::write(&key, &b_key).unwrap();
        let err = load_pair(&cert, &key).unwrap_err().to_string();
        assert!(err.contains("does not belong to the certificate"), "{err}");
    }

    #[tokio::test]
    async fn changed_files_are_served_and_a_bad_pair_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (a_cert, a_key) = pair("a.example.com");
        let (b_cert, b_key) = pair("b.example.com");
        let (c_cert, c_key) = pair("c.example.com");
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let seen = fingerprints(&cert, &key);
        let current = Arc::new(Current(RwLock::new(Arc::new(
            load_pair(&cert, &key).unwrap(),
        ))));
        let stop = CancellationToken::new();
        let task = tokio::spawn(reload(
            cert.clone(),
            key.clone(),
            seen,
            current.clone(),
            Duration::from_millis(20),
            stop.clone(),
        ));
        let served = || leaf(&current.0.read().unwrap());
        let serves = |pem: &str| {
            let want = der(pem);
            async move {
                for _ in 0..250 {
                    if served() == want {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                false
            }
        };

        replace(&key, &b_key);
        replace(&cert, &b_cert);
        assert!(serves(&b_cert).await, "the renewed pair is not served");

        // Half a renewal: the new certificate, the old key. The old pair
        // stays until the key follows.
        replace(&cert, &c_cert);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(served(), der(&b_cert), "a mismatched pair was served");
        replace(&key, &c_key);
        assert!(serves(&c_cert).await, "the completed pair is not served");

        // A file that is not PEM at all changes nothing either.
        replace(&cert, "not a certificate");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(served(), der(&c_cert));

        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_finishes_its_handshake_is_cut_off() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        // The first byte of a TLS record, and then nothing.
        client.write_all(&[0x16]).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (acceptor, _dir) = files_acceptor();
        let started = tokio::time::Instant::now();
        assert!(acceptor.accept(stream).await.is_none());
        assert_eq!(started.elapsed().as_secs(), HANDSHAKE_TIMEOUT.as_secs());
    }

    #[test]
    fn domains_are_dns_names() {
        assert_eq!(
            parse_domains("Hooks.Example.com., hooks.example.com,b.example.org").unwrap(),
            ["hooks.example.com", "b.example.org"]
        );
        for bad in [
            "*.example.com",
            "example.com:443",
            "https://example.com",
            "localhost",
            "-a.example.com",
            "::1",
            "a..example.com",
        ] {
            assert!(parse_domains(bad).is_err(), "{bad} was taken");
        }
    }

    #[tokio::test]
    async fn plain_http_to_the_https_port_is_told_to_use_https() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        });
        let (stream, _) = listener.accept().await.unwrap();
        let (acceptor, _dir) = files_acceptor();
        assert!(acceptor.accept(stream).await.is_none());
        let answer = client.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("use an https:// URL"), "{answer}");
    }
}
