//! Test images made `FROM scratch` (nothing can be pulled here): the host's
//! static busybox serving `/www/index.html`, which holds the version string,
//! on port 8080. Each version therefore gets its own image ID.
//!
//! Variants: [`SiteImage::exiting`] for an image whose command fails at once
//! (rollback tests), [`SiteImage::padding_mb`] for a bigger image of random,
//! incompressible bytes (pull benchmarks), [`SiteImage::healthcheck`] for an
//! image with a Docker HEALTHCHECK, [`SiteImage::versioned_defaults`] for an
//! image whose ENV, LABEL and CMD carry its version.
//!
//! Each image is one `docker import` of a root filesystem written here
//! (busybox, its applet links, the page), with its settings given as
//! `--change` instructions. No builder runs: no intermediate images, no
//! shared base or build cache that one test's `docker rmi` could pull from
//! under another's build, and nothing to leave behind once a test removes
//! its own images. An import takes a fraction of a second.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::docker::{docker_command, push, TEST_LABEL};

/// Debian's busybox-static installs here; the image needs a static binary.
const BUSYBOX: &str = "/bin/busybox";
/// The port the site listens on inside the container.
pub const SITE_PORT: u16 = 8080;

/// The site's command. The shell in front of httpd exits on the usual stop
/// signals: as PID 1, httpd alone would ignore them and every `docker stop`
/// would wait out its timeout.
fn serve_command() -> String {
    format!(
        "CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM INT QUIT; httpd -f -p {SITE_PORT} -h /www & wait\"]"
    )
}

/// A description of a site image; [`SiteImage::build`] makes it.
#[derive(Debug, Clone)]
pub struct SiteImage {
    version: String,
    exiting: bool,
    padding_mb: usize,
    healthcheck: bool,
    unhealthy: bool,
    versioned_defaults: bool,
}

/// Builds the plain site image for `version` as `tag`; returns its image ID.
pub fn build_site_image(tag: &str, version: &str) -> String {
    SiteImage::new(version).build(tag)
}

impl SiteImage {
    /// A site whose `index.html` is `version` followed by a newline.
    pub fn new(version: &str) -> SiteImage {
        SiteImage {
            version: version.to_string(),
            exiting: false,
            padding_mb: 0,
            healthcheck: false,
            unhealthy: false,
            versioned_defaults: false,
        }
    }

    /// The container's command exits with status 1 at once (`CMD ["false"]`).
    pub fn exiting(mut self) -> SiteImage {
        self.exiting = true;
        self
    }

    /// Adds a file of `mb` MiB of random bytes, so the image is that much
    /// bigger even compressed.
    pub fn padding_mb(mut self, mb: usize) -> SiteImage {
        self.padding_mb = mb;
        self
    }

    /// Adds a HEALTHCHECK that fetches the page every second.
    pub fn healthcheck(mut self) -> SiteImage {
        self.healthcheck = true;
        self
    }

    /// Adds a HEALTHCHECK that always fails (every second, unhealthy after
    /// two failures), while the site itself serves.
    pub fn unhealthy(mut self) -> SiteImage {
        self.unhealthy = true;
        self
    }

    /// Sets defaults that differ per version, to tell what a container took
    /// from its image: `ENV SITE_VERSION=<version> SITE_MODE=image`,
    /// `LABEL site.version=<version> site.mode=image`, and the usual command
    /// with `site-<version>` as the shell's `$0`, so that `docker top` shows
    /// which image's `CMD` runs.
    pub fn versioned_defaults(mut self) -> SiteImage {
        self.versioned_defaults = true;
        self
    }

    /// The `CMD` of [`SiteImage::versioned_defaults`] for `version`.
    pub fn versioned_cmd(version: &str) -> Vec<String> {
        let script = format!("trap 'exit 0' TERM INT QUIT; httpd -f -p {SITE_PORT} -h /www & wait");
        vec!["sh".into(), "-c".into(), script, format!("site-{version}")]
    }

    /// The image's settings, as Dockerfile instructions for `--change`.
    pub fn changes(&self) -> Vec<String> {
        let mut changes = vec![
            "ENV PATH=/bin".to_string(),
            format!("EXPOSE {SITE_PORT}"),
            format!("LABEL {TEST_LABEL}=1"),
        ];
        if self.healthcheck {
            changes.push(format!(
                "HEALTHCHECK --interval=1s --timeout=2s --retries=3 \
                 CMD [\"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:{SITE_PORT}/\"]"
            ));
        }
        if self.unhealthy {
            changes.push(
                "HEALTHCHECK --interval=1s --timeout=2s --retries=2 \
                 CMD [\"sh\", \"-c\", \"echo database unreachable; exit 1\"]"
                    .to_string(),
            );
        }
        if self.versioned_defaults {
            let version = &self.version;
            changes.push(format!("ENV SITE_VERSION={version} SITE_MODE=image"));
            changes.push(format!("LABEL site.version={version} site.mode=image"));
        }
        changes.push(if self.exiting {
            r#"CMD ["false"]"#.to_string()
        } else if self.versioned_defaults {
            let cmd =
                serde_json::to_string(&Self::versioned_cmd(&self.version)).expect("a JSON array");
            format!("CMD {cmd}")
        } else {
            serve_command()
        });
        changes
    }

    /// Makes the image as `tag` and returns its image ID. Register `tag`
    /// (or the returned ID) with a `Cleanup` first.
    pub fn build(&self, tag: &str) -> String {
        let work = tempfile::Builder::new()
            .prefix("dockhook-image-")
            .tempdir()
            .expect("cannot create a directory for the image's files");
        let rootfs = work.path().join("rootfs");
        let tarball = work.path().join("rootfs.tar");
        self.write_rootfs(&rootfs)
            .unwrap_or_else(|err| panic!("cannot write the files of {tag}: {err}"));
        let tar = Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .output()
            .expect("cannot run tar");
        assert!(
            tar.status.success(),
            "tar of {tag} failed: {}",
            String::from_utf8_lossy(&tar.stderr).trim()
        );
        let mut import = docker_command();
        import.arg("import");
        for change in self.changes() {
            import.args(["--change", &change]);
        }
        let output = import
            .arg(&tarball)
            .arg(tag)
            .output()
            .expect("cannot run docker import");
        assert!(
            output.status.success(),
            "docker import of {tag} failed ({}):\n{}\nchanges: {:?}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            self.changes()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Builds the image as `tag`, pushes it, and returns its image ID.
    pub fn build_and_push(&self, tag: &str) -> String {
        let id = self.build(tag);
        push(tag);
        id
    }

    /// `/bin/busybox` with a link per applet, `/www/index.html`, and the
    /// padding if any, under `root`.
    fn write_rootfs(&self, root: &Path) -> io::Result<()> {
        let bin = root.join("bin");
        fs::create_dir_all(&bin)?;
        fs::create_dir_all(root.join("www"))?;
        fs::create_dir_all(root.join("tmp"))?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
        fs::copy(BUSYBOX, bin.join("busybox"))?;
        for applet in applets() {
            symlink("busybox", bin.join(applet))?;
        }
        fs::write(root.join("www/index.html"), format!("{}\n", self.version))?;
        if self.padding_mb > 0 {
            let bytes = (self.padding_mb as u64) << 20;
            let mut random = File::open("/dev/urandom")?.take(bytes);
            io::copy(&mut random, &mut File::create(root.join("padding.bin"))?)?;
        }
        Ok(())
    }
}

/// The applets the host's busybox provides (`busybox --list`), checked to
/// be a static binary once per process.
fn applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        assert_static(Path::new(BUSYBOX));
        let output = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .unwrap_or_else(|err| panic!("cannot run {BUSYBOX} --list: {err}"));
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter(|applet| *applet != "busybox")
            .map(str::to_string)
            .collect()
    })
}

/// Panics unless `path` is a statically linked ELF file: a dynamic busybox
/// (Debian's `busybox` rather than `busybox-static`) cannot run in a scratch
/// image, and the failure would otherwise surface as a puzzling build error.
fn assert_static(path: &Path) {
    let elf = fs::read(path).unwrap_or_else(|err| {
        panic!("cannot read {path:?} ({err}): install Debian's busybox-static (.ci/run does)")
    });
    assert!(
        elf.starts_with(b"\x7fELF") && elf.get(4..6) == Some(&[2, 1]),
        "{path:?} is not a 64-bit little-endian ELF binary"
    );
    let word = |at: usize, len: usize| -> usize {
        let bytes = &elf[at..at + len];
        bytes
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << 8) | b as usize)
    };
    const PT_INTERP: usize = 3;
    let (table, entry_size, entries) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    let dynamic = (0..entries).any(|i| word(table + i * entry_size, 4) == PT_INTERP);
    assert!(
        !dynamic,
        "{path:?} is dynamically linked: install Debian's busybox-static (.ci/run does)"
    );
}
