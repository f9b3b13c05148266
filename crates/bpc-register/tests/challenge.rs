//! The protocol-2 challenge on bpc-register's stdin and stdout, byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use assert_cmd::Command;
use base64::Engine;
use std::fs;
use std::path::Path;

const FROM_ALICE: &str = "127.0.0.2 50000 192.0.2.1 22";
const FROM_BOB: &str = "127.0.0.3 50000 192.0.2.1 22";
const REALM: &str = "<ssh://192.0.2.1:22> Example backups";

/// A demo server with `policy`, carol (password carol-demo) an administrator.
fn server(policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    client::demo::run(Some(dir.path()), "/usr/bin/bpc-enroll", policy).unwrap();
    let users = fs::read_to_string(dir.path().join("users.toml")).unwrap();
    let carol = server::directory::hash_password(&protocol::Secret::new("carol-demo")).unwrap();
    fs::write(dir.path().join("users.toml"), format!("{users}\n[users.carol]\npassword = \"{carol}\"\n")).unwrap();
    let config = fs::read_to_string(dir.path().join("server.toml")).unwrap();
    fs::write(dir.path().join("server.toml"), config.replace("realm = ", "admins = [\"carol\"]\nrealm = ")).unwrap();
    dir
}

fn plain(username: &str, password: &str) -> String {
    let message = format!("\0{username}\0{password}");
    format!("PLAIN {}\n", base64::engine::general_purpose::STANDARD.encode(message))
}

/// Runs bpc-register with `request` from `connection`, `input` on stdin.
fn register(dir: &Path, request: &str, connection: &str, input: &str) -> (Option<i32>, String) {
    let output = Command::cargo_bin("bpc-register")
        .unwrap()
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", request)
        .env("SSH_CONNECTION", connection)
        .arg("--config")
        .arg(dir.join("server.toml"))
        .write_stdin(input)
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8(output.stdout).unwrap())
}

fn journal(dir: &Path) -> String {
    fs::read_to_string(dir.join("registrations.jsonl")).unwrap()
}

#[test]
fn a_protocol_1_client_gets_the_upgrade_message_from_a_password_server() {
    let dir = server("password");
    let hosts = fs::read(dir.path().join("backuppc/hosts")).unwrap();
    let (code, out) = register(dir.path(), "linux:bob", FROM_BOB, "");
    assert_eq!(
        out,
        format!("{FROM_BOB} authentication required: this server asks for a password, upgrade the client\n")
    );
    assert_eq!(code, Some(1));
    assert_eq!(fs::read(dir.path().join("backuppc/hosts")).unwrap(), hosts);
}

#[test]
fn a_protocol_1_client_still_registers_with_a_never_server() {
    let dir = server("never");
    let (code, out) = register(dir.path(), "linux:bob", FROM_BOB, "");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("success\n") && !out.contains("author:"), "{out}");
    assert!(journal(dir.path()).lines().last().unwrap().contains("\"author\":\"\""));
}

#[test]
fn the_right_password_at_the_second_attempt_is_accepted() {
    let dir = server("password");
    let input = format!("{}{}", plain("bob", "wrong"), plain("bob", "bob-demo"));
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, &input);
    let expected_start = format!(
        "auth-required PLAIN {REALM}\nauth-failed authentication failed\nauth-required PLAIN {REALM}\nsuccess\n"
    );
    assert!(out.starts_with(&expected_start), "{out}");
    assert!(out.ends_with("user: bob\nauthor: bob\n"), "{out}");
    assert_eq!(code, Some(0));
    assert!(journal(dir.path()).lines().last().unwrap().contains("\"owner\":\"bob\",\"author\":\"bob\""));
}

#[test]
fn three_wrong_answers_and_unknown_users_look_the_same() {
    let dir = server("password");
    let input = format!("{}{}{}", plain("bob", "not-bobs-password"), plain("nobody", "x"), plain("bob", ""));
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, &input);
    let failed = format!("auth-required PLAIN {REALM}\nauth-failed authentication failed\n");
    assert_eq!(out, format!("{failed}{failed}{failed}{FROM_BOB} authentication failed\n"));
    assert_eq!(code, Some(1));
    let log = fs::read_to_string(dir.path().join("register.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("notice ") && l.contains("authentication failed (attempt")).count(),
        3
    );
    assert!(!log.contains("not-bobs-password"), "a password reached the log: {log}");
}

#[test]
fn cancel_and_garbage_end_the_challenge_cleanly() {
    let dir = server("password");
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, "cancel\n");
    assert_eq!(out, format!("auth-required PLAIN {REALM}\n{FROM_BOB} authentication failed\n"));
    assert_eq!(code, Some(1));
    let (_, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, "");
    assert!(out.ends_with(&format!("{FROM_BOB} authentication failed\n")), "{out}");
    let (_, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, "LOGIN x\nPLAIN !!\n\u{0}\n");
    assert!(out.ends_with(&format!("{FROM_BOB} authentication failed\n")), "{out}");
    assert_eq!(journal(dir.path()).lines().count(), 1, "only the demo's own registration");
}

#[test]
fn only_an_administrator_registers_for_someone_else_and_is_the_author() {
    let dir = server("password");
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, &plain("alice", "alice-demo"));
    assert_eq!(code, Some(1));
    assert!(out.ends_with(&format!("{FROM_BOB} alice may not register a host for bob\n")), "{out}");
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, &plain("carol", "carol-demo"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.ends_with("user: bob\nauthor: carol\n"), "{out}");
    assert!(journal(dir.path()).lines().last().unwrap().contains("\"owner\":\"bob\",\"author\":\"carol\""));
    assert!(fs::read_to_string(dir.path().join("backuppc/hosts")).unwrap().ends_with("pc-bob.example.org\t0\tbob\n"));
}

#[test]
fn new_hosts_challenges_only_hosts_not_yet_registered_to_the_logon() {
    let dir = server("new-hosts");
    // bob's host is new: challenged. Registered to bob now: not challenged again.
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, &plain("bob", "bob-demo"));
    assert_eq!(code, Some(0));
    assert!(out.starts_with(&format!("auth-required PLAIN {REALM}\nsuccess\n")), "{out}");
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_BOB, "");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("success\n") && !out.contains("author:"), "a known host was challenged: {out}");
    let (code, out) = register(dir.path(), "linux:bob proto=2", FROM_ALICE, &plain("bob", "bob-demo"));
    assert_eq!(code, Some(1));
    assert!(out.starts_with(&format!("auth-required PLAIN {REALM}\n")), "{out}");
    assert!(out.ends_with(&format!("{FROM_ALICE} refusing to re-register client host with username\n")), "{out}");
}

#[test]
fn a_client_that_never_answers_the_challenge_is_let_go() {
    let dir = server("password");
    let config = fs::read_to_string(dir.path().join("server.toml")).unwrap();
    fs::write(dir.path().join("server.toml"), config.replace("realm = ", "challenge-timeout = 1\nrealm = ")).unwrap();
    let hosts = fs::read(dir.path().join("backuppc/hosts")).unwrap();
    // Standard input stays open and silent, as with a client that hangs.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bpc-register"))
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", "linux:bob proto=2")
        .env("SSH_CONNECTION", FROM_BOB)
        .arg("--config")
        .arg(dir.path().join("server.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output().unwrap();
        let _ = done.send(());
        output
    });
    // A safety net for the test itself, far above the 1 s the server is given.
    if finished.recv_timeout(std::time::Duration::from_secs(120)).is_err() {
        panic!("bpc-register still waits for an answer that never comes");
    }
    drop(stdin);
    let output = waiter.join().unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.starts_with(&format!("auth-required PLAIN {REALM}\n{FROM_BOB} ")), "{out}");
    assert_eq!(fs::read(dir.path().join("backuppc/hosts")).unwrap(), hosts);
}

#[test]
fn new_hosts_asks_the_owner_for_the_password_before_replacing_pinned_host_keys() {
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDTt3lufq2j0wdZqSHGyrQauiepseyzAbJ3TXpWCsuA6MDE5XKp8LpuuGsXnNiSPAblAKRwVXIyv4qzYmbIGOqI=";
    let dir = server("new-hosts");
    // The demo pinned the key alice's machine sent when it enrolled.
    let pins = dir.path().join("backuppc/pc-alice.example.org.known_hosts");
    let pinned = fs::read_to_string(&pins).unwrap();
    let same = pinned.lines().nth(1).unwrap().split_once(' ').unwrap().1.to_owned();
    // The same key again: the owner's host, nothing new, no challenge.
    let (code, out) = register(dir.path(), "linux:alice proto=2 host-keys=1", FROM_ALICE, &format!("{same}\n"));
    assert_eq!((code, out.lines().take(2).collect::<Vec<_>>()), (Some(0), vec!["host-keys 1", "success"]), "{out}");
    // Another key from the host's address: only the owner's password replaces it.
    let (code, out) = register(dir.path(), "linux:alice proto=2 host-keys=1", FROM_ALICE, &format!("{ECDSA}\n"));
    assert_eq!(code, Some(1));
    assert_eq!(out, format!("host-keys 1\nauth-required PLAIN {REALM}\n{FROM_ALICE} authentication failed\n"));
    assert_eq!(fs::read_to_string(&pins).unwrap(), pinned);
    let answer = format!("{ECDSA}\n{}", plain("alice", "alice-demo"));
    let (code, out) = register(dir.path(), "linux:alice proto=2 host-keys=1", FROM_ALICE, &answer);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with(&format!("host-keys 1\nauth-required PLAIN {REALM}\nsuccess\n")), "{out}");
    assert!(out.contains("\nauthor: alice\n"), "{out}");
    assert_eq!(
        fs::read_to_string(&pins).unwrap().lines().nth(1),
        Some(format!("pc-alice.example.org {ECDSA}").as_str())
    );
    let last = journal(dir.path()).lines().last().unwrap().to_owned();
    assert!(last.contains("\"author\":\"alice\"") && last.contains("\"previous_host_keys\":[\"SHA256:"), "{last}");
}
