//! `bpc-enroll rsyncsend` as sshd starts it: hostile commands run nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use assert_cmd::Command;
use std::fs;
use std::path::Path;

/// Runs rsyncsend with `command` as BackupPC's request and the given config.
fn rsyncsend(config: &Path, command: &str) -> std::process::Output {
    Command::cargo_bin("bpc-enroll")
        .unwrap()
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", command)
        .env("SSH_CONNECTION", "127.0.0.1 40000 127.0.0.1 22")
        .arg("rsyncsend")
        .arg("--config")
        .arg(config)
        .write_stdin("")
        .output()
        .unwrap()
}

fn config(dir: &Path, allow_restore: bool) -> std::path::PathBuf {
    let path = dir.join("client.toml");
    fs::write(&path, format!("allow-restore = {allow_restore}\n")).unwrap();
    path
}

#[test]
fn hostile_commands_are_refused_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), false);
    let marker = dir.path().join("ran");
    let m = marker.display();
    let corpus = [
        format!("touch {m}"),
        format!("/bin/sh -c 'touch {m}'"),
        format!("rsync --server --sender -a . / ; touch {m}"),
        format!("rsync --server --sender -a . / && touch {m}"),
        format!("rsync --server --sender -a . / | touch {m}"),
        format!("rsync --server --sender -a$(touch {m}) . /"),
        format!("rsync --server --sender -a`touch {m}` . /"),
        format!("rsync --server --sender -e 'sh -c touch\\ {m}' . /"),
        format!("rsync --server --sender --rsh=touch\\ {m} -a . /"),
        format!("rsync --server --sender -a --log-file={m} . /"),
        format!("rsync --server --sender -a --write-batch={m} . /"),
        "rsync --server --sender -a --remove-source-files . /".to_owned(),
        // --protect-args would let the options above travel inside the connection.
        "/usr/bin/rsync --server --sender -slHogDtprcxe.iLsfxC".to_owned(),
        "/usr/bin/rsync --server -lHogDtprRe.iLsfxC --numeric-ids . /tmp".to_owned(),
        "rsync --daemon --server .".to_owned(),
        format!("rsync --server --sender -a . / {m}"),
        "rsync --server --sender -a . /etc/../root".to_owned(),
        format!("perl -e 'open F, \">{m}\"'"),
        format!("rsync --server --sender -a . /\ntouch {m}"),
        String::new(),
    ];
    for command in &corpus {
        let output = rsyncsend(&config, command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(stderr.starts_with("bpc-enroll rsyncsend: refused: "), "{command:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{command:?}");
        assert!(!marker.exists(), "{command:?} ran something");
    }
}

#[test]
fn restores_are_accepted_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let restore = "/usr/bin/rsync --server -lHogDtprRe.iLsfxC --numeric-ids . /nonexistent-restore-target";
    let refused = rsyncsend(&config(dir.path(), false), restore);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("restores are turned off"));
    let allowed = rsyncsend(&config(dir.path(), true), restore);
    assert!(!String::from_utf8_lossy(&allowed.stderr).contains("refused"), "{allowed:?}");
}

#[test]
fn paths_outside_the_allowed_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    fs::write(&config, "allowed-paths = [\"/home\"]\n").unwrap();
    let output = rsyncsend(&config, "/usr/bin/rsync --server --sender -lHogDtprxe.iLsfxC --numeric-ids . /etc/");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("path `/etc/` is not inside the allowed paths"));
}

#[test]
fn a_missing_configuration_refuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let output = rsyncsend(&dir.path().join("absent.toml"), "/usr/bin/rsync --server --sender -lHogDtprxe.iLsfxC . /");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read the client configuration"));
}

#[test]
fn letters_that_take_a_value_or_follow_symlinks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let narrow = dir.path().join("narrow.toml");
    fs::write(&narrow, "allow-restore = true\nallowed-paths = [\"/nonexistent-home\"]\n").unwrap();
    let cases = [
        // -T, -B, -f and -M swallow the rest of the bundle as their value.
        ("rsync --server -rlTtmp . /nonexistent-home/x", "option -T is not allowed"),
        ("rsync --server --sender -rlBxe.iLsfxC . /nonexistent-home/x", "option -B is not allowed"),
        ("rsync --server --sender -rlfPxe.iLsfxC . /nonexistent-home/x", "option -f is not allowed"),
        ("rsync --server --sender -rlMxe.iLsfxC . /nonexistent-home/x", "option -M is not allowed"),
        ("rsync --server --sender -rLe.iLsfxC . /nonexistent-home/x", "option -L is refused"),
        ("rsync --server --sender -rlke.iLsfxC . /nonexistent-home/x", "option -k is refused"),
        ("rsync --server -rlKe.iLsfxC . /nonexistent-home/x", "option -K is refused"),
        ("rsync --server -rlXe.iLsfxC . /nonexistent-home/x", "option -X is refused"),
    ];
    for (command, reason) in cases {
        let output = rsyncsend(&narrow, command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(stderr.starts_with("bpc-enroll rsyncsend: refused: "), "{command:?}: {stderr}");
        assert!(stderr.contains(reason), "{command:?}: {stderr}");
    }
}
