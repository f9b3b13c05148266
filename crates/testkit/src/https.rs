//! `bpc-register serve` for a test: a test CA and a server certificate made
//! with the `openssl` command, and the real service started as an
//! unprivileged account (it refuses root) on 127.0.0.1.

pub use crate::tls::TestCa;
use crate::{Daemon, run};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The account the service runs as in tests: `nobody`, which owns nothing else.
pub const SERVICE_UID: u32 = 65534;

/// Gives `dir` and everything in it to [`SERVICE_UID`], so that the
/// service can read its configuration and write BackupPC's files there.
pub fn give_to_service(dir: &Path) {
    run(Command::new("/bin/chown").arg("-R").arg(format!("{SERVICE_UID}:{SERVICE_UID}")).arg(dir));
}

/// `program ARGS` as [`SERVICE_UID`], with a clean environment.
pub fn as_service(program: &Path) -> Command {
    let mut command = Command::new("/usr/bin/setpriv");
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["--reuid", &SERVICE_UID.to_string(), "--regid", &SERVICE_UID.to_string(), "--clear-groups", "--"])
        .arg(program);
    command
}

/// Starts `program serve --config CONFIG` as [`SERVICE_UID`] and waits
/// until it listens; its standard error goes to `log`.
pub fn serve(program: &Path, config: &Path, log: PathBuf) -> Daemon {
    let mut command = as_service(program);
    command.arg("serve").arg("--config").arg(config);
    Daemon::start(command, "bpc-register: listening on", log)
}

/// Starts it as [`serve`] does, under `systemd-socket-activate` listening
/// on `address`: as under systemd, the service starts at the first
/// connection and gets that socket as descriptor 3.
pub fn serve_activated(program: &Path, config: &Path, address: &str, log: PathBuf) -> Daemon {
    let service = as_service(program);
    let mut command = Command::new("/usr/bin/systemd-socket-activate");
    command.env_clear().arg("--listen").arg(address).arg(service.get_program()).args(service.get_args());
    command.arg("serve").arg("--config").arg(config);
    Daemon::start(command, &format!("Listening on {address} as 3."), log)
}

/// One HTTP exchange as curl saw it.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The client port an answer's connection names (its second word).
    pub fn client_port(&self) -> u16 {
        self.body.split(' ').nth(1).and_then(|port| port.parse().ok()).unwrap_or_else(|| panic!("{self:?}"))
    }
}

/// Runs `curl` over HTTP/1.1 from source address `from`, trusting `ca`
/// only, with `args` (the URL among them); panics when curl fails.
pub fn curl(ca: &Path, from: &str, args: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let output = Command::new("/usr/bin/curl")
        .env_clear()
        .args(["--silent", "--show-error", "--http1.1", "--max-time", "60", "--interface", from])
        .arg("--cacert")
        .arg(ca)
        .arg("--dump-header")
        .arg(&head)
        .arg("--output")
        .arg(&body)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let head = fs::read_to_string(&head).unwrap();
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok()).unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Reply { status, headers, body: fs::read_to_string(&body).unwrap() }
}

/// curl's arguments that POST `body` as a form.
pub fn form(body: &str) -> Vec<String> {
    ["--header", "Content-Type: application/x-www-form-urlencoded", "--data-binary", body].map(str::to_owned).to_vec()
}
