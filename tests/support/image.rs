//! Test images built `FROM scratch` (nothing can be pulled here): the host's
//! static busybox serving `/www/index.html`, which holds the version string,
//! on port 8080. Each version therefore gets its own image ID.
//!
//! Variants: [`SiteImage::exiting`] for an image whose command fails at once
//! (rollback tests), [`SiteImage::padding_mb`] for a bigger image of random,
//! incompressible bytes (pull benchmarks), [`SiteImage::healthcheck`] for an
//! image with a Docker HEALTHCHECK, [`SiteImage::versioned_defaults`] for an
//! image whose ENV, LABEL and CMD carry its version.
//!
//! Why two images: the legacy builder shares cached intermediate images
//! between builds, and `docker rmi` of one test's image prunes untagged
//! parents that a concurrent build is about to use ("unknown parent image
//! ID"). So busybox and its applet links live in one tagged base image that
//! nothing removes, built once per test process, and site layers are built on
//! it with `--no-cache`: each site image owns its whole chain above the base.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::docker::{push, TEST_LABEL};

/// Debian's busybox-static installs here; the image needs a static binary.
const BUSYBOX: &str = "/bin/busybox";
/// The shared base image (see the module doc). It carries the test label, so
/// `.ci/run` sweeps it before a run; the first build then makes it again.
const BASE_TAG: &str = "dockhook-test-base:v2";
/// The port the site listens on inside the container.
pub const SITE_PORT: u16 = 8080;

/// Everything site images share, so that a plain site build is a single
/// step: the legacy builder commits a container per step, about a second each.
/// The shell in front of httpd exits on the usual stop signals: as PID 1,
/// httpd alone would ignore them and every `docker stop` would wait out its
/// timeout.
fn base_dockerfile() -> String {
    format!(
        "\
FROM scratch
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
ENV PATH=/bin
EXPOSE {SITE_PORT}
CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM INT QUIT; httpd -f -p {SITE_PORT} -h /www & wait\"]
"
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

    /// Adds a layer with `mb` MiB of random bytes, so the image is that much
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

    /// The Dockerfile this image builds from, on top of the base image.
    pub fn dockerfile(&self) -> String {
        let mut lines = vec![format!("FROM {BASE_TAG}"), "COPY www /www".to_string()];
        if self.padding_mb > 0 {
            lines.push("COPY padding.bin /padding.bin".to_string());
        }
        if self.healthcheck {
            lines.push(format!(
                "HEALTHCHECK --interval=1s --timeout=2s --retries=3 \
                 CMD [\"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:{SITE_PORT}/\"]"
            ));
        }
        if self.unhealthy {
            lines.push(
                "HEALTHCHECK --interval=1s --timeout=2s --retries=2 \
                 CMD [\"sh\", \"-c\", \"echo database unreachable; exit 1\"]"
                    .to_string(),
            );
        }
        if self.versioned_defaults {
            let version = &self.version;
            lines.push(format!("ENV SITE_VERSION={version} SITE_MODE=image"));
            lines.push(format!("LABEL site.version={version} site.mode=image"));
            let cmd = serde_json::to_string(&Self::versioned_cmd(version)).expect("a JSON array");
            lines.push(format!("CMD {cmd}"));
        }
        if self.exiting {
            lines.push(r#"CMD ["false"]"#.to_string());
        }
        lines.join("\n") + "\n"
    }

    /// Builds the image as `tag` and returns its image ID. Register `tag`
    /// with a `Cleanup` first.
    pub fn build(&self, tag: &str) -> String {
        ensure_base_image();
        let context = build_context();
        self.write_context(context.path())
            .unwrap_or_else(|err| panic!("cannot write the build context for {tag}: {err}"));
        docker_build(context.path(), tag, &["--no-cache"])
    }

    /// Builds the image as `tag`, pushes it, and returns its image ID.
    pub fn build_and_push(&self, tag: &str) -> String {
        let id = self.build(tag);
        push(tag);
        id
    }

    fn write_context(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir.join("www"))?;
        fs::write(dir.join("www/index.html"), format!("{}\n", self.version))?;
        fs::write(dir.join("Dockerfile"), self.dockerfile())?;
        if self.padding_mb > 0 {
            let bytes = (self.padding_mb as u64) << 20;
            let mut random = File::open("/dev/urandom")?.take(bytes);
            io::copy(&mut random, &mut File::create(dir.join("padding.bin"))?)?;
        }
        Ok(())
    }
}

/// Builds the base image once per process; later calls wait for the first.
/// The build is cached, so a process after the first only re-tags it.
fn ensure_base_image() {
    static BASE: OnceLock<()> = OnceLock::new();
    BASE.get_or_init(|| {
        assert_static(Path::new(BUSYBOX));
        let context = build_context();
        fs::copy(BUSYBOX, context.path().join("busybox"))
            .and_then(|_| fs::write(context.path().join("Dockerfile"), base_dockerfile()))
            .unwrap_or_else(|err| panic!("cannot write the base image context: {err}"));
        let label = format!("{TEST_LABEL}=1");
        docker_build(context.path(), BASE_TAG, &["--label", &label]);
    });
}

fn build_context() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dockhook-image-")
        .tempdir()
        .expect("cannot create a build context directory")
}

/// `docker build` of `context` as `tag` with the legacy builder (the engine
/// is older than the CLI's BuildKit); returns the image ID.
fn docker_build(context: &Path, tag: &str, extra_args: &[&str]) -> String {
    let output = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "--tag", tag])
        .args(extra_args)
        .arg(context)
        .output()
        .expect("cannot run docker build");
    assert!(
        output.status.success(),
        "docker build of {tag} failed ({}):\n{}\nDockerfile:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        fs::read_to_string(context.join("Dockerfile")).unwrap_or_default()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
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
