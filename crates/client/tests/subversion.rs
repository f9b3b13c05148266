//! The credential cache is Subversion's own: files written by Debian's `svn`
//! read back here, and `svn` authenticates with files written here.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use client::credentials::CredentialCache;
use protocol::Secret;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// svnserve on 127.0.0.1, stopped on drop.
struct Svnserve {
    child: Child,
    port: u16,
}

impl Drop for Svnserve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository whose realm is "Example backups" and whose only user is
/// alice (password alice-demo), served to authenticated users only.
fn svnserve(dir: &Path) -> Svnserve {
    fs::create_dir_all(dir).unwrap();
    let repo = dir.join("repo");
    assert!(Command::new("/usr/bin/svnadmin").arg("create").arg(&repo).status().unwrap().success());
    fs::write(
        repo.join("conf/svnserve.conf"),
        "[general]\nanon-access = none\nauth-access = read\npassword-db = passwd\nrealm = Example backups\n",
    )
    .unwrap();
    fs::write(repo.join("conf/passwd"), "[users]\nalice = alice-demo\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("/usr/bin/svnserve")
        .args(["-d", "--foreground", "--listen-host", "127.0.0.1", "--listen-port", &port.to_string(), "-r"])
        .arg(dir)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "svnserve does not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    Svnserve { child, port }
}

/// A Subversion configuration folder that keeps plaintext passwords in
/// `auth/svn.simple` (no keyring).
fn svn_config_dir(dir: &Path) -> std::path::PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("config"), "[auth]\npassword-stores =\n").unwrap();
    fs::write(dir.join("servers"), "[global]\nstore-passwords = yes\nstore-plaintext-passwords = yes\n").unwrap();
    dir.to_owned()
}

fn svn_info(config_dir: &Path, url: &str, password: Option<&str>) -> std::process::Output {
    let mut command = Command::new("/usr/bin/svn");
    command
        .env_clear()
        .env("HOME", config_dir)
        .arg("info")
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--non-interactive");
    if password.is_some() {
        command.args(["--username", "alice", "--password-from-stdin"]);
    }
    let mut child =
        command.arg(url).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(password) = password {
        stdin.write_all(password.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn subversion_and_bpc_enroll_read_each_others_credential_files() {
    if !Path::new("/usr/bin/svnserve").exists() {
        assert!(std::env::var_os("CI").is_none(), "subversion is missing in CI: scripts/test installs it");
        eprintln!("\n*** SKIPPED subversion compatibility: install the subversion package ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = svnserve(&dir.path().join("served"));
    let url = format!("svn://127.0.0.1:{}/repo", server.port);
    let realm = format!("<svn://127.0.0.1:{}> Example backups", server.port);

    // Subversion writes; bpc-enroll reads.
    let svn_wrote = svn_config_dir(&dir.path().join("svn-wrote"));
    let output = svn_info(&svn_wrote, &url, Some("alice-demo"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let cache = CredentialCache::new(svn_wrote.join("auth/svn.simple"));
    let entry = cache.load(&realm).expect("bpc-enroll cannot read the file svn wrote");
    assert_eq!(entry["username"], "alice");
    assert_eq!(entry["password"], "alice-demo");
    assert_eq!(entry["passtype"], "simple");

    // bpc-enroll writes; Subversion reads (no name, no password given).
    let we_wrote = svn_config_dir(&dir.path().join("we-wrote"));
    CredentialCache::new(we_wrote.join("auth/svn.simple")).store(&realm, "alice", &Secret::new("alice-demo")).unwrap();
    let output = svn_info(&we_wrote, &url, None);
    assert!(output.status.success(), "svn refused our file: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Repository Root"));

    // And with nothing cached, svn is refused: the success above came from our file.
    let empty = svn_config_dir(&dir.path().join("empty"));
    assert!(!svn_info(&empty, &url, None).status.success());
}
