//! Support for the tests that run real daemons: a folder sshd and slapd
//! accept, free loopback ports, daemons whose readiness is a line they print,
//! and the rule that a test which cannot run says so loudly (and fails in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support: a panic is a test failure")]

pub mod backuppc;
pub mod daemons;
pub mod https;
pub mod manpage;
pub mod restore;
pub mod server_toml;
pub mod sshd;
pub mod terminal;
pub mod tls;

pub use server_toml::ServerToml;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Checks that the tests run as root and that `programs` exist; the error
/// says what is missing and how to get it.
pub fn require_root_and(programs: &[&str]) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("these tests start daemons and change accounts: run them as root".into());
    }
    require_programs(programs)
}

/// Checks that `programs` (or any files a test reads) exist; the error says
/// what is missing and how to get it.
pub fn require_programs(programs: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}: run `bash scripts/test`, which installs them", missing.join(", ")))
    }
}

/// Whether the end-to-end tests can run here: as root, with OpenSSH, rsync,
/// sudo and Debian's BackupPC.
pub fn system_requirements() -> Result<(), String> {
    require_root_and(&[
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/bin/rsync",
        "/usr/bin/sudo",
        "/usr/sbin/visudo",
        "/usr/bin/setpriv",
        "/usr/bin/setsid",
        "/usr/sbin/useradd",
        "/usr/share/backuppc/bin/BackupPC",
    ])
}

/// Whether the backend tests can run here: as root, with slapd, dnsmasq,
/// rsyslogd and openssl.
pub fn backend_requirements() -> Result<(), String> {
    require_root_and(&[
        "/usr/sbin/slapd",
        "/usr/sbin/slapadd",
        "/usr/sbin/slappasswd",
        "/usr/sbin/dnsmasq",
        "/usr/sbin/rsyslogd",
        "/usr/bin/openssl",
    ])
}

/// Returns from the test when `requirement` fails: loudly outside CI, as a
/// failure in CI (see [`skip`]).
#[macro_export]
macro_rules! require {
    ($requirement:expr) => {
        if $crate::skip(module_path!(), $requirement) {
            return;
        }
    };
}

/// Whether a test must stop here: outside CI it prints a loud notice and
/// returns true; in CI (`CI` set), where everything is installed, it fails.
pub fn skip(test: &str, requirement: Result<(), String>) -> bool {
    let Err(reason) = requirement else { return false };
    assert!(std::env::var_os("CI").is_none(), "{test} cannot run in CI: {reason}");
    eprintln!("\n*** SKIPPED {test}: {reason} ***\n");
    true
}

/// A folder for one test under a root-owned 0755 parent: sshd and slapd
/// refuse key files below a world-writable folder such as /tmp.
pub fn base_dir(prefix: &str) -> tempfile::TempDir {
    let parent = Path::new("/var/lib/bpc-enroll-tests");
    fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).unwrap();
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A port of 127.0.0.1 free for TCP and UDP (closed again before use).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs a command and returns its standard output; panics with what it
/// said when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A daemon that is stopped (SIGTERM, then reaped) when dropped.
pub struct Daemon {
    child: Child,
    /// Where the rest of its standard error goes.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `command` and reads its standard error until a line contains
    /// `ready`; the rest is drained into `log`, so the daemon never blocks.
    pub fn start(mut command: Command, ready: &str, log: PathBuf) -> Daemon {
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains(ready) => break,
                Some(Ok(line)) => seen.push(line),
                _ => panic!("{command:?} did not start:\n{}", seen.join("\n")),
            }
        }
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut file = fs::File::create(log_path).unwrap();
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
            }
        });
        Daemon { child, log }
    }

    /// Wraps a daemon started otherwise.
    pub fn from_child(child: Child, log: PathBuf) -> Daemon {
        Daemon { child, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The `bpc-register` built beside `bpc_enroll` (the test's
/// `env!("CARGO_BIN_EXE_bpc-enroll")`): `cargo test --workspace` builds both
/// before running any test.
pub fn bpc_register_beside(bpc_enroll: &str) -> PathBuf {
    let path = Path::new(bpc_enroll).with_file_name("bpc-register");
    assert!(path.exists(), "{} is missing: run the tests with `cargo test --workspace`", path.display());
    path
}
