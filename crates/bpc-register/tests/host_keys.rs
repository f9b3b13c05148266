//! The client's own SSH host keys, sent after the request and pinned for
//! BackupPC's ssh: what the real bpc-register reads, writes and refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is its failure"
)]

#[allow(dead_code, reason = "this test uses a part of the shared helpers")]
mod common;

use assert_cmd::Command;
use common::Demo;
use std::fs;

const FROM_BOB: &str = "127.0.0.3 50000 127.0.0.1 22";
const FROM_ALICE: &str = "127.0.0.2 50000 127.0.0.1 22";
const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOjHEgPPWML3UMMAud1JqyVNZC+DeLG8kIXd8twC5siD";
const ED25519_SHA256: &str = "SHA256:/H0EQRhPs6E8Y3S2xeHH1JQjYHZ6QGAydjHmxjaXZjM";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDTt3lufq2j0wdZqSHGyrQauiepseyzAbJ3TXpWCsuA6MDE5XKp8LpuuGsXnNiSPAblAKRwVXIyv4qzYmbIGOqI=";
const ECDSA_SHA256: &str = "SHA256:9VcjTPeKH0rS9DU7T7qMzsML/cN3ExW0TIUjG3hq89k";

/// Runs bpc-register for `request` from `connection` with `input` on its
/// stdin: its exit code and stdout.
fn register(demo: &Demo, request: &str, connection: &str, input: &str) -> (Option<i32>, String) {
    let output = Command::from_std(demo.command(Some(request.as_ref()), Some(connection.as_ref())))
        .write_stdin(input)
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8(output.stdout).unwrap())
}

fn journal(demo: &Demo) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(demo.path("registrations.jsonl")).unwrap();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn keys_sent_are_pinned_and_the_host_config_trusts_them_alone() {
    let demo = Demo::new();
    let (code, out) = register(&demo, "linux:bob proto=2 host-keys=1", FROM_BOB, &format!("{ED25519} root@pc-bob\n"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("host-keys 1\nsuccess\n"), "{out}");
    let pins = demo.path("backuppc/pc-bob.example.org.known_hosts");
    assert_eq!(
        fs::read_to_string(&pins).unwrap(),
        format!(
            "# Written by bpc-register: the SSH host keys sent by pc-bob.example.org when it registered.\n\
             pc-bob.example.org {ED25519}\n"
        )
    );
    let config = fs::read_to_string(demo.path("backuppc/pc-bob.example.org.pl")).unwrap();
    assert!(config.contains("-o StrictHostKeyChecking=yes -o HostKeyAlias=pc-bob.example.org"), "{config}");
    assert!(
        config.contains(&format!(
            "-o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no'",
            pins.display()
        )),
        "{config}"
    );
    assert!(!config.contains("accept-new"), "{config}");
    let last = journal(&demo).pop().unwrap();
    assert_eq!(last["action"], "added");
    assert_eq!(last["host_keys"], serde_json::json!([ED25519_SHA256]));
    demo.assert_logged("info", "127.0.0.3", &format!("host keys of pc-bob.example.org pinned: [{ED25519_SHA256}]"));
}

#[test]
fn an_older_client_that_sends_no_keys_is_registered_as_before_and_told_so_in_config_and_log() {
    let demo = Demo::new();
    let (code, out) = register(&demo, "linux:bob proto=2", FROM_BOB, "");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("success\n"), "{out}");
    assert!(!demo.path("backuppc/pc-bob.example.org.known_hosts").exists());
    let config = fs::read_to_string(demo.path("backuppc/pc-bob.example.org.pl")).unwrap();
    assert!(config.contains("-o StrictHostKeyChecking=accept-new"), "{config}");
    assert!(config.contains("# The host sent no SSH host keys when it registered (an older bpc-enroll):"), "{config}");
    demo.assert_logged("info", "127.0.0.3", "host pc-bob.example.org sent no SSH host keys (an older client)");
}

#[test]
fn the_same_owner_replaces_the_keys_journaled_and_logged_at_notice() {
    let demo = Demo::new();
    register(&demo, "linux:bob proto=2 host-keys=1", FROM_BOB, &format!("{ED25519}\n"));
    let (code, out) = register(&demo, "linux:bob proto=2 host-keys=1", FROM_BOB, &format!("{ECDSA}\n"));
    assert_eq!(code, Some(0), "{out}");
    let pins = fs::read_to_string(demo.path("backuppc/pc-bob.example.org.known_hosts")).unwrap();
    assert_eq!(pins.lines().nth(1), Some(format!("pc-bob.example.org {ECDSA}").as_str()));
    let last = journal(&demo).pop().unwrap();
    assert_eq!(last["action"], "confirmed");
    assert_eq!(last["host_keys"], serde_json::json!([ECDSA_SHA256]));
    assert_eq!(last["previous_host_keys"], serde_json::json!([ED25519_SHA256]));
    demo.assert_logged(
        "notice",
        "127.0.0.3",
        &format!("host keys of pc-bob.example.org replaced for bob: was [{ED25519_SHA256}], now [{ECDSA_SHA256}]"),
    );
}

#[test]
fn another_owner_sending_keys_is_refused_as_before_and_changes_nothing() {
    let demo = Demo::new();
    let before = demo.backuppc();
    let (code, out) = register(&demo, "linux:bob proto=2 host-keys=1", FROM_ALICE, &format!("{ECDSA}\n"));
    assert_eq!(code, Some(1));
    assert_eq!(out, format!("host-keys 1\n{FROM_ALICE} refusing to re-register client host with username\n"));
    demo.backuppc().assert_unchanged_since(&before);
}

/// Asserts that sending `input` after announcing `announced` keys is
/// refused with `reason`, whether the server asked or not, and that
/// nothing changed under BackupPC's folder.
fn assert_refused(announced: u32, input: &str, asked: bool, reason: &str) {
    let demo = Demo::new();
    let before = demo.backuppc();
    let journal_before = fs::read(demo.path("registrations.jsonl")).unwrap();
    let (code, out) = register(&demo, &format!("linux:bob proto=2 host-keys={announced}"), FROM_BOB, input);
    assert_eq!(code, Some(1), "{out}");
    let question = if asked { format!("host-keys {announced}\n") } else { String::new() };
    assert_eq!(out, format!("{question}{FROM_BOB} host keys refused: {reason}\n"));
    demo.backuppc().assert_unchanged_since(&before);
    assert_eq!(fs::read(demo.path("registrations.jsonl")).unwrap(), journal_before);
    demo.assert_logged("notice", "127.0.0.3", &format!("host keys refused: {reason}"));
    demo.assert_log_lines_are_whole();
}

#[test]
fn what_is_not_a_key_is_refused() {
    let data = ED25519.split(' ').nth(1).unwrap();
    assert_refused(1, &format!("{data}\n"), true, "not an OpenSSH public key (expected `TYPE BASE64`)");
    assert_refused(1, "ssh-ed25519 bm90IGEga2V5\n", true, "not an OpenSSH public key (expected `TYPE BASE64`)");
}

#[test]
fn an_unknown_key_type_is_refused() {
    assert_refused(
        1,
        "ssh-dss AAAAB3NzaC1kc3M=\n",
        true,
        "host key type `ssh-dss` is not accepted (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa)",
    );
}

#[test]
fn a_private_key_is_refused() {
    assert_refused(
        1,
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        true,
        "a private key was sent; send the host's public key (.pub) only",
    );
}

#[test]
fn a_key_with_options_is_refused() {
    assert_refused(
        1,
        &format!("restrict,command=\"/bin/sh\" {ED25519}\n"),
        true,
        "host key type `restrict,command=\"/bin/sh\"` is not accepted (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa)",
    );
}

#[test]
fn very_many_keys_are_refused_before_any_is_read() {
    assert_refused(9, &format!("{ED25519}\n").repeat(9), false, "too many host keys (9; at most 8)");
    assert_refused(4_000_000_000, "", false, "too many host keys (4000000000; at most 8)");
}

#[test]
fn a_very_long_key_is_refused() {
    let long = format!("{ED25519} {}\n", "x".repeat(10_000));
    assert_refused(1, &long, true, "host key line too long (4098 bytes; at most 4096)");
}

#[test]
fn a_newline_inside_a_key_is_refused() {
    let (head, tail) = ED25519.split_at(40);
    assert_refused(2, &format!("{head}\n{tail}\n"), true, "not an OpenSSH public key (expected `TYPE BASE64`)");
    assert_refused(1, &format!("{ED25519}\r\n"), true, "host key line holds a control character or is not ASCII");
}

#[test]
fn fewer_keys_than_announced_are_refused() {
    assert_refused(2, &format!("{ED25519}\n"), true, "the client sent 1 of the 2 host keys it announced");
}
