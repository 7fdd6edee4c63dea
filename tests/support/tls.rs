//! Throwaway certificate authorities for TLS tests, made with the `openssl`
//! command: a CA, and certificates it signs for a server (for 127.0.0.1) or
//! a client, the way `dockerd --tlsverify` deployments are set up. Keys are
//! P-256, in PKCS#8 PEM files; everything lives in the CA's temporary
//! directory and goes with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A certificate authority; see the module doc.
pub struct TestCa {
    dir: TempDir,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    /// A TLS server at 127.0.0.1.
    Server,
    Client,
}

/// A certificate and its key.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, valid for a day.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("dockhook-ca-")
            .tempdir()
            .expect("cannot create a directory for the CA");
        let ca = TestCa { dir };
        request_with_new_key(
            ca.dir.path(),
            &[
                "-x509",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        ca
    }

    /// The CA's certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for `usage`, named `name` in the CA's directory.
    pub fn issue(&self, name: &str, usage: Usage) -> Issued {
        let dir = self.dir.path();
        let key = format!("{name}-key.pem");
        let cert = format!("{name}-cert.pem");
        let csr = format!("{name}.csr");
        let extensions = format!("{name}.ext");
        let (subject, extension) = match usage {
            Usage::Server => (
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            Usage::Client => ("/CN=dockhook", "extendedKeyUsage=clientAuth\n"),
        };
        fs::write(dir.join(&extensions), extension).expect("cannot write the extensions");
        request_with_new_key(dir, &["-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &extensions,
                "-out",
                &cert,
            ],
        );
        Issued {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }

    /// A DOCKER_CERT_PATH directory under `parent`, named `name`, holding
    /// `ca_cert` as `ca.pem` and `client` as `cert.pem` and `key.pem`.
    pub fn cert_path(parent: &Path, name: &str, ca_cert: &Path, client: &Issued) -> PathBuf {
        let dir = parent.join(name);
        fs::create_dir(&dir).expect("cannot create the certificate directory");
        for (from, to) in [
            (ca_cert, "ca.pem"),
            (client.cert.as_path(), "cert.pem"),
            (client.key.as_path(), "key.pem"),
        ] {
            fs::copy(from, dir.join(to)).expect("cannot copy a certificate");
        }
        dir
    }
}

/// `openssl req` with a new P-256 key, unencrypted, and `args`.
fn request_with_new_key(dir: &Path, args: &[&str]) {
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(dir, &[&["req"][..], &new_key, args].concat());
}

/// `openssl ARGS` in `dir`; panics with its stderr if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run openssl ({err}): install openssl"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
