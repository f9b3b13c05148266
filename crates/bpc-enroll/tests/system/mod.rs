//! Real components for the end-to-end tests: sshd, ssh-keygen, BackupPC.
//! Each helper owns a folder under [`base_dir`] and stops its daemons on drop.

#![allow(dead_code, reason = "each test file uses its own part of the harness")]

pub mod backuppc;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Returns `Err(reason)` when the end-to-end tests cannot run here. In CI
/// (`CI` set) that is a failure: CI installs everything they need.
pub fn requirements() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the end-to-end tests create a system account and start sshd: run them as root".into());
    }
    let needed = [
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/bin/rsync",
        "/usr/bin/sudo",
        "/usr/sbin/visudo",
        "/usr/bin/setpriv",
        "/usr/sbin/useradd",
        "/usr/share/backuppc/bin/BackupPC",
    ];
    let missing: Vec<&str> = needed.into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}: run `bash scripts/test`, which installs them", missing.join(", ")))
    }
}

/// Skips the test loudly outside CI, fails it in CI.
#[macro_export]
macro_rules! require_system {
    () => {
        if let Err(reason) = system::requirements() {
            if std::env::var_os("CI").is_some() {
                panic!("end-to-end test cannot run in CI: {reason}");
            }
            eprintln!("\n*** SKIPPED {}: {reason} ***\n", module_path!());
            return;
        }
    };
}

/// A folder for one test, under a root-owned 0755 parent: sshd refuses key
/// files below a world-writable folder such as /tmp.
pub fn base_dir() -> tempfile::TempDir {
    let parent = Path::new("/var/lib/bpc-enroll-tests");
    fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).unwrap();
    let dir = tempfile::Builder::new().prefix("run-").tempdir_in(parent).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs a command and panics with its output when it fails.
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

/// A new ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path, comment: &str) -> String {
    run(Command::new("/usr/bin/ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path));
    fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_owned()
}

/// A free TCP port on 127.0.0.1 (the listener is closed before sshd binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An sshd on 127.0.0.1 with its own host key and configuration.
pub struct Sshd {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Its host public key, as `known_hosts` wants it after the host pattern.
    pub host_key: String,
    /// Where it logs (it runs with -e).
    pub log: PathBuf,
}

impl Sshd {
    /// Starts sshd in `dir` with `extra` configuration lines and waits until
    /// it says it is listening.
    pub fn start(dir: &Path, extra: &str) -> Sshd {
        fs::create_dir_all(dir).unwrap();
        let host_key = keygen(&dir.join("host_ed25519"), "test-host");
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {dir}/host_ed25519\n\
                 PidFile none\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 StrictModes yes\n\
                 LogLevel VERBOSE\n\
                 {extra}\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        fs::create_dir_all("/run/sshd").unwrap();
        let log = dir.join("sshd.log");
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Server listening on") => break,
                Some(Ok(line)) => seen.push(line),
                _ => panic!("sshd did not start:\n{}", seen.join("\n")),
            }
        }
        // Keep draining sshd's log into a file, so that it never blocks on a full pipe.
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut file = fs::File::create(log_path).unwrap();
            for line in lines.map_while(Result::ok) {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
            }
        });
        let host_key = host_key.rsplit_once(' ').map_or(host_key.clone(), |(key, _)| key.to_owned());
        Sshd { child, port, host_key, log }
    }

    /// The `known_hosts` line that pins this sshd.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_key)
    }

    /// What sshd logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes `path` and its files readable by everyone (for daemons running as
/// other accounts), writable by root only.
pub fn world_readable(path: &Path) {
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}
