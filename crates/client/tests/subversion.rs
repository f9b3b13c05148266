//! The credential cache is Subversion's own: files written by Debian's `svn`
//! read back here, and `svn` authenticates with files written here.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use client::credentials::{CredentialCache, matches_all};
use protocol::Secret;
use std::collections::BTreeSet;
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

/// Whether Subversion is here to compare with; in CI it must be.
fn subversion_missing() -> bool {
    if Path::new("/usr/bin/svnserve").exists() {
        return false;
    }
    assert!(std::env::var_os("CI").is_none(), "subversion is missing in CI: scripts/test installs it");
    eprintln!("\n*** SKIPPED subversion compatibility: install the subversion package ***\n");
    true
}

#[test]
fn subversion_and_bpc_enroll_read_each_others_credential_files() {
    if subversion_missing() {
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
    let entry = cache.load(&realm).unwrap().expect("bpc-enroll cannot read the file svn wrote");
    assert_eq!(entry["username"], "alice");
    assert_eq!(entry["password"], "alice-demo");
    assert_eq!(entry["passtype"], "simple");

    // bpc-enroll writes; Subversion reads (no name, no password given).
    let we_wrote = svn_config_dir(&dir.path().join("we-wrote"));
    CredentialCache::new(we_wrote.join("auth/svn.simple"))
        .store(&realm, "alice", &Secret::new("alice-demo"), || true)
        .unwrap();
    let output = svn_info(&we_wrote, &url, None);
    assert!(output.status.success(), "svn refused our file: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Repository Root"));

    // And with nothing cached, svn is refused: the success above came from our file.
    let empty = svn_config_dir(&dir.path().join("empty"));
    assert!(!svn_info(&empty, &url, None).status.success());
}

/// The realms `svn auth [--remove] PATTERN...` names for the cache in `config_dir`.
fn svn_auth(config_dir: &Path, remove: bool, patterns: &[&str]) -> BTreeSet<String> {
    let mut command = Command::new("/usr/bin/svn");
    command.env_clear().env("HOME", config_dir).arg("auth").arg("--config-dir").arg(config_dir);
    if remove {
        command.arg("--remove");
    }
    let output = command.arg("--").args(patterns).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let prefix = if remove { "Deleting svn.simple credential for realm '" } else { "Authentication realm: " };
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .map(|realm| realm.strip_suffix('\'').unwrap_or(realm).to_owned())
        .collect()
}

/// The realms bpc-enroll lists for the same patterns, and removes with `remove`.
fn our_auth(config_dir: &Path, remove: bool, patterns: &[&str]) -> BTreeSet<String> {
    let cache = CredentialCache::new(config_dir.join("auth/svn.simple"));
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    let listing = cache.list().unwrap();
    let mut realms = BTreeSet::new();
    for listed in listing.entries.iter().filter(|listed| matches_all(&listed.entry, &patterns)) {
        if remove {
            cache.remove_listed(listed).unwrap();
        }
        realms.insert(listed.realm().to_owned());
    }
    realms
}

fn file_names(config_dir: &Path) -> BTreeSet<String> {
    fs::read_dir(config_dir.join("auth/svn.simple"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn auth_lists_and_removes_what_svn_auth_does_for_the_same_patterns() {
    if subversion_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = svnserve(&dir.path().join("served"));
    let shared = svn_config_dir(&dir.path().join("shared"));
    // One entry written by Subversion itself...
    let output = svn_info(&shared, &format!("svn://127.0.0.1:{}/repo", server.port), Some("alice-demo"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // ...the others by bpc-enroll, one of them without its password, one moved to a file
    // whose name is not the MD5 of its realm.
    let cache = CredentialCache::new(shared.join("auth/svn.simple"));
    let store = |realm: &str, username: &str, plaintext: bool| {
        cache.store(realm, username, &Secret::new("s3cret-pw"), || plaintext).unwrap().0
    };
    store("<ssh://backup.example.org:22> Example backups", "alice", true);
    store("<ssh://other.example.org:2222> Other [test]", "bob", true);
    store("<file:///srv/demo/server.toml> Demo", "carol", false);
    let moved = store("<https://renamed.example.org:443> Moved", "dave", true);
    fs::rename(&moved, moved.with_file_name("not-an-md5")).unwrap();
    assert_eq!(svn_auth(&shared, false, &[]).len(), 5, "svn does not see the five entries");

    let table: &[&[&str]] = &[
        &[],
        &["alice"],
        &["bob"],
        &["Example"],
        &["example.org"],
        &["simple"],
        &["svn.simple"],
        &["*"],
        &["?ave"],
        &["[bc]o"],
        &["[!a]lice"],
        &["[^b]ob"],
        &["a*e"],
        &["Example", "ssh"],
        &["Example", "bob"],
        &["2222"],
        &["ALICE"],
        &["\\[test]"],
        &["[test]"],
        &["/srv/"],
        &["<svn"],
        &["s3cret-pw"],
        &["passtype"],
        &["nothing-like-it"],
    ];
    for patterns in table {
        assert_eq!(our_auth(&shared, false, patterns), svn_auth(&shared, false, patterns), "listing {patterns:?}");
    }

    for patterns in [&["Moved"][..], &["example.org", "o"], &["ca?ol"], &["*"]] {
        let (theirs, ours) = (dir.path().join("theirs"), dir.path().join("ours"));
        for copy in [&theirs, &ours] {
            let _ = fs::remove_dir_all(copy);
            assert!(Command::new("/usr/bin/cp").arg("-a").arg(&shared).arg(copy).status().unwrap().success());
        }
        let removed_by_svn = svn_auth(&theirs, true, patterns);
        assert!(!removed_by_svn.is_empty(), "{patterns:?} removed nothing");
        assert_eq!(our_auth(&ours, true, patterns), removed_by_svn, "removing {patterns:?}");
        assert_eq!(file_names(&ours), file_names(&theirs), "the files left after removing {patterns:?}");
    }
}
