//! A server that misbehaves cannot hold `bpc-enroll setup`: over real
//! OpenSSH, a silent server, one that answers and keeps the channel open and
//! one that asks for credentials again and again all end (the first two within
//! the client's `timeout`), and nothing is installed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use testkit::sshd::{Sshd, keygen};

/// The forced commands of the hostile servers, one per register key.
const SERVERS: &[(&str, &str)] = &[
    ("silent", "#!/bin/sh\nexec sleep 30\n"),
    (
        "lingering",
        "#!/bin/sh\nprintf 'success\\nkey: %s\\nurl: http://b/?host=x\\n' \"$(cat \"$0.key\")\"\nexec sleep 30\n",
    ),
    (
        "insistent",
        "#!/bin/sh\nn=0\nwhile [ $n -lt 50 ]; do echo \"auth-required PLAIN Hostile $n\"; read line || exit 0; n=$((n+1)); done\n",
    ),
];

/// Runs setup under `--root` against the server of `register_key`, on a
/// watchdog far above the client's own timeout (2 s).
fn setup(base: &Path, sshd: &Sshd, name: &str, register_key: &Path) -> Output {
    let client = base.join(format!("client-{name}"));
    fs::create_dir_all(&client).unwrap();
    fs::write(client.join("known_hosts"), sshd.known_hosts_line()).unwrap();
    fs::write(
        client.join("client.toml"),
        format!(
            "server = \"ssh://127.0.0.1:{}\"\nregister-key = \"{}\"\nknown-hosts = \"known_hosts\"\ntimeout = 2\n",
            sshd.port,
            register_key.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bpc-enroll"));
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("XDG_CONFIG_HOME", base.join(format!("xdg-{name}")))
        .args(["setup", "--user", "alice", "--non-interactive", "--password-stdin", "--no-auth-cache", "--root"])
        .arg(base.join(format!("root-{name}")))
        .arg("--config")
        .arg(client.join("client.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"a-password\n").unwrap();
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output().unwrap();
        let _ = done.send(());
        output
    });
    assert!(finished.recv_timeout(Duration::from_secs(120)).is_ok(), "setup against the {name} server never ended");
    waiter.join().unwrap()
}

#[test]
fn a_hostile_server_cannot_hold_the_client() {
    testkit::require!(testkit::system_requirements());
    let base = testkit::base_dir("run-");
    let base = base.path();
    let keys = base.join("server-sshd/keys");
    fs::create_dir_all(&keys).unwrap();
    let backup_key = keygen(&base.join("backuppc_key"), "backuppc@test");
    let mut authorized = String::new();
    let mut register_keys = Vec::new();
    for (name, script) in SERVERS {
        let path = base.join(format!("{name}.sh"));
        fs::write(&path, script).unwrap();
        fs::write(path.with_extension("sh.key"), &backup_key).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(path.with_extension("sh.key"), fs::Permissions::from_mode(0o644)).unwrap();
        let register_key = base.join(format!("register-{name}"));
        let public = keygen(&register_key, name);
        authorized.push_str(&format!("restrict,command=\"{}\" {public}\n", path.display()));
        register_keys.push(register_key);
    }
    fs::write(keys.join("backuppc"), authorized).unwrap();
    let sshd = Sshd::start(
        &base.join("server-sshd"),
        &format!("UsePAM yes\nAllowUsers backuppc\nAuthorizedKeysFile {}/%u", keys.display()),
    );
    // The insistent server is stopped by the credential chain itself, which
    // gives each source once; the exchange's own limit on challenges is
    // tested on byte buffers beside `transport::converse`.
    let expectations = [(3, "in time"), (3, "in time"), (2, "asks for a password")];
    for (((name, _), register_key), (code, expected)) in SERVERS.iter().zip(&register_keys).zip(expectations) {
        let output = setup(base, &sshd, name, register_key);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        let installed = base.join(format!("root-{name}/var/lib/bckpciuem/.ssh/authorized_keys"));
        assert!(!installed.exists(), "{name}: a key was installed from a server that never finished");
    }
}
