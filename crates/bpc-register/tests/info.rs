//! The status request (`info:`) as sshd hands it to the real `bpc-register`,
//! against a server folder made by the demo: answered about the client's
//! own host only, never challenged, nothing written but a log line.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

// Always true here; it lets clippy.toml's allow-unwrap-in-tests cover the helpers too.
#[cfg(test)]
#[allow(dead_code, reason = "the harness serves several test files; this one uses part of it")]
mod common;

use common::{Demo, connection_from};
use std::fs;

const ALICES_PAGE: &str = "http://backup.example.org/backuppc/index.cgi?host=pc-alice.example.org";

/// Runs `request` from `ip` and checks that it exits with `code`, answers
/// exactly `answer`, and leaves BackupPC's folder, the journal and the
/// cached reading of `config.pl` as they were.
fn assert_answered(demo: &Demo, request: &str, ip: &str, code: i32, answer: &str) {
    let kept = ["registrations.jsonl", "bpc-register-owner-edits.cache"];
    let files = || kept.map(|name| fs::read(demo.path(name)).ok());
    let (before, files_before) = (demo.backuppc(), files());
    demo.register(request, &connection_from(ip)).code(code).stdout(answer.to_owned());
    demo.backuppc().assert_unchanged_since(&before);
    assert_eq!(files(), files_before, "the journal or the cache changed");
    assert!(files_before.iter().all(Option::is_some), "the demo has no {kept:?}");
}

/// The demo, with BackupPC's `TopDir` in `DIR/top` (made empty).
fn demo() -> Demo {
    let demo = Demo::new();
    let top = demo.path("top");
    fs::create_dir_all(top.join("pc")).unwrap();
    demo.append("backuppc/config.pl", &format!("$Conf{{TopDir}} = '{}';\n", top.display()));
    demo
}

/// The demo with `auth = POLICY`.
fn demo_with_policy(policy: &str) -> Demo {
    let demo = demo();
    let config = fs::read_to_string(demo.path("server.toml")).unwrap();
    let changed = config.replace("auth = \"never\"", &format!("auth = \"{policy}\""));
    assert_ne!(changed, config);
    fs::write(demo.path("server.toml"), changed).unwrap();
    demo
}

#[test]
fn a_registered_host_is_told_its_owner_and_page() {
    let demo = demo();
    let answer = format!(
        "success\nhost: pc-alice.example.org\nregistered: yes\nowner: alice\nurl: {ALICES_PAGE}\nlast-backup: none\n"
    );
    assert_answered(&demo, "info: proto=2", "127.0.0.2", 0, &answer);
    demo.assert_logged(
        "info",
        &connection_from("127.0.0.2"),
        "status of host pc-alice.example.org asked: registered to alice",
    );
}

#[test]
fn the_last_backup_is_read_from_backuppcs_top_dir() {
    let demo = demo();
    let host_dir = demo.path("top/pc/pc-alice.example.org");
    fs::create_dir_all(&host_dir).unwrap();
    // As BackupPC 4.4 writes them: a full, then an incremental a day later.
    fs::write(
        host_dir.join("backups"),
        "0\tfull\t1700000000\t1700000100\t10\t2048\t3\t1024\t7\t1024\t0\t0\t0\t0\t3\t900\t800\t0\t-1\t1\trsync\t0\t\t4.4.0\t12\t0\t\t\n\
         1\tincr\t1700086400\t1700086460\t2\t100\t1\t50\t1\t50\t0\t0\t0\t0\t3\t40\t40\t1\t-1\t1\trsync\t1\t\t4.4.0\t14\t0\t\t\n",
    )
    .unwrap();
    let top = fs::read_dir(demo.path("top/pc")).unwrap().count();
    let answer = format!(
        "success\nhost: pc-alice.example.org\nregistered: yes\nowner: alice\nurl: {ALICES_PAGE}\n\
         last-backup: 2023-11-15T22:13:20Z\n"
    );
    assert_answered(&demo, "info: proto=2", "127.0.0.2", 0, &answer);
    assert_eq!(fs::read_dir(demo.path("top/pc")).unwrap().count(), top, "something appeared under TopDir/pc");
    assert_eq!(fs::read_dir(&host_dir).unwrap().count(), 1, "something appeared in the host's folder");
}

#[test]
fn a_host_without_a_line_is_told_it_is_not_registered() {
    let demo = demo();
    assert_answered(&demo, "info: proto=2", "127.0.0.3", 0, "success\nhost: pc-bob.example.org\nregistered: no\n");
    demo.assert_logged(
        "info",
        &connection_from("127.0.0.3"),
        "status of host pc-bob.example.org asked: not registered",
    );
}

#[test]
fn nothing_in_the_request_can_turn_it_to_another_host() {
    let demo = demo();
    // From bob's address: whatever the options say, the answer is about pc-bob.
    let answer = "success\nhost: pc-bob.example.org\nregistered: no\n";
    assert_answered(&demo, "info: host=pc-alice.example.org logon=alice proto=2", "127.0.0.3", 0, answer);
    // A name after the colon is a registration for an OS called `info`.
    let connection = connection_from("127.0.0.3");
    assert_answered(&demo, "info:pc-alice.example.org", "127.0.0.3", 1, &format!("{connection} ostype is unknown\n"));
    assert_answered(&demo, "info:alice proto=2", "127.0.0.3", 1, &format!("{connection} ostype is unknown\n"));
}

#[test]
fn an_address_without_a_name_in_the_domain_learns_nothing() {
    let demo = demo();
    for ip in ["127.0.0.9", "127.0.0.77"] {
        let answer = format!("{} invalid DNS name for this IP\n", connection_from(ip));
        assert_answered(&demo, "info: proto=2", ip, 1, &answer);
        demo.assert_logged("notice", &connection_from(ip), "invalid DNS name for this IP");
    }
}

#[test]
fn a_password_policy_does_not_challenge_a_status_request() {
    let demo = demo_with_policy("password");
    let answer = format!(
        "success\nhost: pc-alice.example.org\nregistered: yes\nowner: alice\nurl: {ALICES_PAGE}\nlast-backup: none\n"
    );
    // Nothing is written on standard input: a challenge would find the client gone.
    assert_answered(&demo, "info: proto=2", "127.0.0.2", 0, &answer);
    // A protocol-1 client is answered too, not told to upgrade.
    assert_answered(&demo, "info:", "127.0.0.2", 0, &answer);
    // A registration under the same policy is challenged (and here refused).
    let output = demo.register("linux:bob proto=2", &connection_from("127.0.0.3")).code(1).get_output().clone();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("auth-required PLAIN "), "{stdout}");
}

#[test]
fn an_owner_column_with_odd_bytes_is_answered_on_its_line_and_logged_whole() {
    let demo = demo();
    demo.append("hosts.static", "127.0.0.4 pc-carol.example.org\n");
    fs::write(demo.path("backuppc/hosts"), format!("{}pc-carol.example.org 0 carol\\ smith\x1b[2J\n", demo.hosts()))
        .unwrap();
    let answer = format!(
        "success\nhost: pc-carol.example.org\nregistered: yes\nowner: carol smith [2J\nurl: {}\nlast-backup: none\n",
        ALICES_PAGE.replace("pc-alice", "pc-carol")
    );
    assert_answered(&demo, "info: proto=2", "127.0.0.4", 0, &answer);
    demo.assert_logged("info", &connection_from("127.0.0.4"), "registered to carol smith\\x1b[2J, last backup none");
    demo.assert_log_lines_are_whole();
}

#[test]
fn a_hosts_file_that_cannot_be_read_is_the_servers_fault() {
    let demo = demo();
    let hosts = demo.path("backuppc/hosts");
    fs::remove_file(&hosts).unwrap();
    fs::create_dir(&hosts).unwrap();
    let connection = connection_from("127.0.0.2");
    let answer = format!(
        "{connection} BackupPC's list of hosts cannot be read; try again later or tell the backup administrator\n"
    );
    assert_answered(&demo, "info: proto=2", "127.0.0.2", 1, &answer);
    demo.assert_logged("err", &connection, "hosts: cannot read");
}
