//! `bpc-register hosts ...`, the administrator's commands, run for real
//! against a server folder made by the demo.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

// Always true here; it lets clippy.toml's allow-unwrap-in-tests cover the helpers too.
#[cfg(test)]
#[allow(dead_code, reason = "the harness serves several test files, each using part of it")]
mod common;

use common::{Demo, Tree, bpc_register};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

const ALICE: &str = "127.0.0.2 50000 127.0.0.1 22";
const BOB: &str = "127.0.0.3 50000 127.0.0.1 22";
const ALICES_HOST: &str = "pc-alice.example.org";

/// Runs `bpc-register --config DIR/server.toml ARGS...`.
fn run(demo: &Demo, args: &[&str]) -> Output {
    bpc_register().arg("--config").arg(demo.path("server.toml")).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Everything the commands may change: BackupPC's folder and the journal.
struct Snapshot {
    backuppc: Tree,
    journal: Vec<u8>,
}

fn snapshot(demo: &Demo) -> Snapshot {
    Snapshot { backuppc: demo.backuppc(), journal: fs::read(demo.path("registrations.jsonl")).unwrap() }
}

/// Asserts that `args` fail with exactly `code` and one line on standard
/// error containing `message`, print nothing, and change nothing.
fn assert_fails(demo: &Demo, args: &[&str], code: i32, message: &str) {
    let before = snapshot(demo);
    let output = run(demo, args);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {error}");
    assert_eq!(stdout(&output), "", "{args:?}");
    // clap adds its pointer to --help below a usage error.
    let said = error.lines().filter(|line| !line.is_empty() && !line.starts_with("For more information, try"));
    assert_eq!(said.count(), 1, "{args:?}: {error}");
    assert!(error.starts_with("bpc-register: ") || error.starts_with("error: "), "{error}");
    assert!(error.contains(message), "{args:?}: {error:?} does not say {message:?}");
    demo.backuppc().assert_unchanged_since(&before.backuppc);
    assert_eq!(fs::read(demo.path("registrations.jsonl")).unwrap(), before.journal, "the journal changed");
}

/// The journal's records, as JSON values.
fn journal(demo: &Demo) -> Vec<serde_json::Value> {
    fs::read_to_string(demo.path("registrations.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn list_json(demo: &Demo) -> Vec<serde_json::Value> {
    let output = run(demo, &["hosts", "list", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap()
}

#[test]
fn list_shows_each_host_with_its_owner_registration_and_last_backup() {
    let demo = Demo::new();
    demo.register("linux:bob", BOB).code(0);
    let registered: Vec<String> =
        journal(&demo).iter().map(|record| record["time"].as_str().unwrap().to_owned()).collect();
    assert_eq!(registered.len(), 2);

    let rows = list_json(&demo);
    let expected = serde_json::json!([
        {"host": "localhost", "owner": "backuppc", "author": null, "registered": null, "last-backup": null},
        {"host": ALICES_HOST, "owner": "alice", "author": "", "registered": registered[0], "last-backup": null},
        {"host": "pc-bob.example.org", "owner": "bob", "author": "", "registered": registered[1], "last-backup": null},
    ]);
    assert_eq!(serde_json::Value::Array(rows), expected);

    let output = run(&demo, &["hosts", "list"]);
    assert!(output.status.success());
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("HOST                  OWNER     AUTHOR  REGISTERED"), "{table}");
    assert_eq!(lines[1], "localhost             backuppc  -       -                     -");
    assert_eq!(lines[2], format!("{ALICES_HOST}  alice     -       {}  -", registered[0]));
    // The demo's BackupPC has no backups (TopDir is BackupPC's default,
    // /var/lib/backuppc, which holds none of these hosts), which is no error.
    assert_eq!(stderr(&output), "");
}

#[test]
fn show_gives_the_history_and_the_config_file() {
    let demo = Demo::new();
    demo.register("linux:alice", ALICE).code(0);
    let output = run(&demo, &["hosts", "show", ALICES_HOST]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let config = demo.path(&format!("backuppc/{ALICES_HOST}.pl"));
    let records = journal(&demo);
    // The demo's machine sent one host key; `ssh-keygen -l` prints the same fingerprint.
    let pins = demo.path(&format!("backuppc/{ALICES_HOST}.known_hosts"));
    let pinned = fs::read_to_string(&pins).unwrap();
    let key_file = demo.path("key.pub");
    fs::write(&key_file, pinned.lines().nth(1).unwrap().split_once(' ').unwrap().1).unwrap();
    let listed = std::process::Command::new("/usr/bin/ssh-keygen").arg("-lf").arg(&key_file).output().unwrap();
    let fingerprint = String::from_utf8(listed.stdout).unwrap().split(' ').nth(1).unwrap().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert_eq!(
        text,
        format!(
            "host:        {ALICES_HOST}\nowner:       alice\nauthor:      -\nregistered:  {confirmed}\n\
             last backup: - (none recorded)\nconfig:      {config}\nhost keys:   {fingerprint} (ssh-ed25519)\nhistory:\n\
             \x20 {added} added for alice from 127.0.0.2 ({os}, protocol {protocol}); host keys {fingerprint}\n\
             \x20 {confirmed} confirmed for alice from 127.0.0.2 (linux, protocol 1)\n",
            added = records[0]["time"].as_str().unwrap(),
            confirmed = records[1]["time"].as_str().unwrap(),
            os = records[0]["os"].as_str().unwrap(),
            protocol = records[0]["protocol"],
            config = config.display(),
        )
    );

    let output = run(&demo, &["hosts", "show", ALICES_HOST, "--json"]);
    let details: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: Vec<&str> = details.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["author", "config", "config-exists", "history", "host", "host-keys", "last-backup", "owner", "registered"]
    );
    assert_eq!(details["host-keys"], serde_json::json!([{ "fingerprint": fingerprint, "type": "ssh-ed25519" }]));
    assert_eq!(details["config"], config.display().to_string());
    assert_eq!(details["config-exists"], true);
    assert_eq!(details["history"], serde_json::Value::Array(records));
}

#[test]
fn a_transfer_gives_the_host_to_the_new_owner_for_the_forced_command_too() {
    let demo = Demo::new();
    let before = demo.hosts();
    let config_before = fs::read(demo.path(&format!("backuppc/{ALICES_HOST}.pl"))).unwrap();
    let output = run(&demo, &["hosts", "transfer", ALICES_HOST, "bob"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("{ALICES_HOST} is now registered to bob (was alice; 1 line of hosts changed)\n")
    );
    let alice_line = format!("{ALICES_HOST}\t0\talice\n");
    assert!(before.contains(&alice_line), "{before}");
    assert_eq!(demo.hosts(), before.replace(&alice_line, &format!("{ALICES_HOST}\t0\tbob\n")));
    assert_eq!(fs::read(demo.path(&format!("backuppc/{ALICES_HOST}.pl"))).unwrap(), config_before);
    let last = journal(&demo).pop().unwrap();
    assert_eq!(
        (&last["action"], &last["owner"], &last["previous_owner"], &last["host"]),
        (&"transferred".into(), &"bob".into(), &"alice".into(), &ALICES_HOST.into())
    );
    assert_eq!(last["admin"], nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name);

    let refused = "refusing to re-register client host with username";
    demo.register("linux:alice", ALICE).code(1).stdout(format!("{ALICE} {refused}\n"));
    demo.register("linux:bob", ALICE).code(0);
    let rows = list_json(&demo);
    assert_eq!(rows[1]["owner"], "bob");

    let output = run(&demo, &["hosts", "transfer", ALICES_HOST, "bob"]);
    assert_eq!(stdout(&output), format!("{ALICES_HOST} is already registered to bob; nothing was changed\n"));
}

#[test]
fn the_admin_is_the_user_who_ran_sudo() {
    let demo = Demo::new();
    if !nix::unistd::getuid().is_root() {
        eprintln!("SKIPPED the_admin_is_the_user_who_ran_sudo: needs root");
        assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
        return;
    }
    let output = bpc_register()
        .arg("--config")
        .arg(demo.path("server.toml"))
        .args(["hosts", "transfer", ALICES_HOST, "bob"])
        .env("SUDO_USER", "carol")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(journal(&demo).pop().unwrap()["admin"], "carol");
}

#[test]
fn a_removed_host_loses_its_line_and_config_and_can_register_again() {
    let demo = Demo::new();
    let before = demo.hosts();
    let output = run(&demo, &["hosts", "remove", ALICES_HOST]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let config = demo.path(&format!("backuppc/{ALICES_HOST}.pl"));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!(
            "{ALICES_HOST} is removed: 1 line of hosts (owner alice) and its config {}.\n",
            config.display()
        )),
        "{text}"
    );
    assert!(text.contains(&format!("kept in /var/lib/backuppc/pc/{ALICES_HOST}, but BackupPC no longer counts them")));
    assert!(text.contains("deleted by a later one"), "{text}");
    assert_eq!(demo.hosts(), before.replace(&format!("{ALICES_HOST}\t0\talice\n"), ""));
    assert!(!config.exists());
    let names = demo.backuppc();
    assert!(!names.names().iter().any(|name| name.to_string_lossy().contains("removed")), "{:?}", names.names());
    let last = journal(&demo).pop().unwrap();
    assert_eq!((&last["action"], &last["owner"]), (&"removed".into(), &"alice".into()));

    let output = run(&demo, &["hosts", "show", ALICES_HOST]);
    let shown = stdout(&output);
    assert!(shown.contains("owner:       - (not in hosts)\nauthor:      -\nregistered:  - (removed)\n"), "{shown}");
    assert!(shown.contains(&format!(" removed (owner alice) by {}\n", last["admin"].as_str().unwrap())), "{shown}");
    assert_eq!(list_json(&demo).len(), 1, "only localhost is left");

    demo.register("linux:bob", ALICE).code(0);
    assert_eq!(
        demo.hosts(),
        format!("{}{ALICES_HOST}\t0\tbob\n", before.replace(&format!("{ALICES_HOST}\t0\talice\n"), ""))
    );
    assert!(config.is_file());
}

#[test]
fn an_unknown_host_is_refused_and_changes_nothing() {
    let demo = Demo::new();
    let message = "pc-bob.example.org: no such host in ";
    assert_fails(&demo, &["hosts", "transfer", "pc-bob.example.org", "bob"], 1, message);
    assert_fails(&demo, &["hosts", "remove", "pc-bob.example.org"], 1, message);
    assert_fails(&demo, &["hosts", "remove", "pc-bob.example.org", "--purge"], 1, message);
    assert_fails(&demo, &["hosts", "show", "pc-bob.example.org"], 1, message);
}

#[test]
fn a_bad_logon_is_refused_and_changes_nothing() {
    let demo = Demo::new();
    assert_fails(&demo, &["hosts", "transfer", ALICES_HOST, "nobody"], 1, "nobody: no such user in the directory");
    assert_fails(&demo, &["hosts", "transfer", ALICES_HOST, "../bob"], 2, "invalid value '../bob' for '<LOGON>'");
    assert_fails(&demo, &["hosts", "transfer", "pc/alice", "bob"], 2, "invalid value 'pc/alice' for '<HOST>'");
}

#[test]
fn a_lock_held_by_backuppc_is_refused_after_a_while_and_changes_nothing() {
    let demo = Demo::new();
    let lock = fs::File::options().write(true).create(true).truncate(false).open(demo.path("backuppc/LOCK")).unwrap();
    lock.lock().unwrap();
    let message = "BackupPC's lock is held by another program";
    assert_fails(&demo, &["hosts", "transfer", ALICES_HOST, "bob"], 1, message);
    assert_fails(&demo, &["hosts", "remove", ALICES_HOST], 1, message);
}

#[test]
fn a_hosts_file_replaced_by_a_link_is_not_followed() {
    let demo = Demo::new();
    let hosts = demo.path("backuppc/hosts");
    let victim = demo.path("victim-hosts");
    fs::rename(&hosts, &victim).unwrap();
    std::os::unix::fs::symlink(&victim, &hosts).unwrap();
    let victim_before = fs::read(&victim).unwrap();
    let message = "a symbolic link; BackupPC's hosts must be a regular file";
    assert_fails(&demo, &["hosts", "transfer", ALICES_HOST, "bob"], 1, message);
    assert_fails(&demo, &["hosts", "remove", ALICES_HOST], 1, message);
    assert_eq!(fs::read(&victim).unwrap(), victim_before);
}

#[test]
fn a_config_replaced_by_a_link_is_removed_as_a_link_only() {
    let demo = Demo::new();
    let config = demo.path(&format!("backuppc/{ALICES_HOST}.pl"));
    let victim = demo.path("victim.pl");
    fs::write(&victim, "precious\n").unwrap();
    fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink(&victim, &config).unwrap();
    let output = run(&demo, &["hosts", "remove", ALICES_HOST]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(config.symlink_metadata().is_err());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_folder_the_user_cannot_write_is_refused_and_changes_nothing() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("SKIPPED a_folder_the_user_cannot_write_is_refused_and_changes_nothing: needs root");
        assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
        return;
    }
    let demo = Demo::new();
    // Everything readable by nobody, nothing writable.
    for path in [demo.path(""), demo.path("backuppc")] {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(demo.path("registrations.jsonl"), fs::Permissions::from_mode(0o644)).unwrap();
    let before = snapshot(&demo);
    for args in [["hosts", "transfer", ALICES_HOST, "bob"].as_slice(), ["hosts", "remove", ALICES_HOST].as_slice()] {
        let output = std::process::Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_bpc-register"))
            .arg("--config")
            .arg(demo.path("server.toml"))
            .args(args)
            .env_clear()
            .output()
            .unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{error}");
        assert!(error.contains("LOCK: cannot open the lock: Permission denied"), "{error}");
        assert_eq!(error.lines().count(), 1, "{error}");
    }
    demo.backuppc().assert_unchanged_since(&before.backuppc);
    assert_eq!(fs::read(demo.path("registrations.jsonl")).unwrap(), before.journal);
}

#[test]
fn a_hosts_file_with_a_line_that_cannot_be_edited_in_place_is_left_alone() {
    let demo = Demo::new();
    demo.append("backuppc/hosts", "odd.example.org 0 car\rol\n");
    assert_fails(&demo, &["hosts", "transfer", "odd.example.org", "bob"], 1, "edit that line by hand");
}

#[test]
fn a_purge_of_a_host_without_backups_removes_it() {
    let demo = Demo::new();
    // TopDir at a folder of the test, where this host has no backups.
    demo.append("backuppc/config.pl", &format!("$Conf{{TopDir}} = '{}';\n", demo.path("top").display()));
    let output = run(&demo, &["hosts", "remove", ALICES_HOST, "--purge"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).ends_with("It had no backups.\n"), "{}", stdout(&output));
    assert!(!demo.hosts().contains(ALICES_HOST));
}

fn help_of(args: &[&str]) -> String {
    let output = bpc_register().args(args).arg("--help").env("COLUMNS", "100").output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn help_of_each_hosts_command_is_complete() {
    insta::assert_snapshot!("hosts_help", help_of(&["hosts"]));
    insta::assert_snapshot!("hosts_list_help", help_of(&["hosts", "list"]));
    insta::assert_snapshot!("hosts_show_help", help_of(&["hosts", "show"]));
    insta::assert_snapshot!("hosts_transfer_help", help_of(&["hosts", "transfer"]));
    insta::assert_snapshot!("hosts_remove_help", help_of(&["hosts", "remove"]));
}

/// Has `demo`'s reload-command write the uid it runs as into `ran-as`.
fn record_reloads_uid(demo: &Demo) -> std::path::PathBuf {
    // A folder that nobody may write too, and no folder of the server's.
    fs::create_dir(demo.path("records")).unwrap();
    let ran_as = demo.path("records/ran-as");
    let config = fs::read_to_string(demo.path("server.toml")).unwrap();
    let reload = format!("reload-command = [\"/bin/sh\", \"-c\", \"id -u >> {}\"]", ran_as.display());
    assert!(config.contains("reload-command = []"), "{config}");
    fs::write(demo.path("server.toml"), config.replace("reload-command = []", &reload)).unwrap();
    ran_as
}

/// Transfers Alice's host to `to` as root, which succeeds whatever becomes
/// of the reload; what it said on standard error.
fn transfer_as_root(demo: &Demo, to: &str) -> String {
    let output = run(demo, &["hosts", "transfer", ALICES_HOST, to]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stderr(&output)
}

/// Asserts that a transfer to `to` warns with `message` and never runs the
/// reload command.
fn assert_reload_refused(demo: &Demo, ran_as: &std::path::Path, to: &str, message: &str) {
    let said = transfer_as_root(demo, to);
    assert!(said.contains(message), "{said}");
    assert!(!ran_as.exists(), "the reload command ran as {}", fs::read_to_string(ran_as).unwrap());
}

/// Asserts that a transfer to `to` runs the reload command as nobody.
fn assert_reloaded_as_nobody(demo: &Demo, ran_as: &std::path::Path, to: &str) {
    // Writable by nobody, who records itself there.
    fs::set_permissions(demo.path("records"), fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(transfer_as_root(demo, to), "");
    assert_eq!(fs::read_to_string(ran_as).unwrap(), "65534\n");
}

#[test]
fn root_runs_backuppcs_programs_neither_as_root_nor_as_another_account_than_the_configurations_owner() {
    use std::os::unix::fs::chown;
    testkit::require!(testkit::require_root_and(&["/usr/bin/setpriv"]));
    // Whoever may write config.pl names root as BackupPCUser: BackupPC's
    // programs, which load config.pl, would run its Perl as root.
    let demo = Demo::new();
    let ran_as = record_reloads_uid(&demo);
    demo.append("backuppc/config.pl", "$Conf{BackupPCUser} = 'root';\n");
    assert_reload_refused(&demo, &ran_as, "bob", "$Conf{BackupPCUser} is root, of root's: /bin/sh is not run as root");

    // Root's configuration that others may write: no account is safe.
    demo.append("backuppc/config.pl", "$Conf{BackupPCUser} = 'nobody';\n");
    fs::set_permissions(demo.path("backuppc/config.pl"), fs::Permissions::from_mode(0o664)).unwrap();
    assert_reload_refused(&demo, &ran_as, "alice", "config.pl is root's but others may write it");
    // Root's alone: BackupPCUser is trusted, as long as it is not root.
    fs::set_permissions(demo.path("backuppc/config.pl"), fs::Permissions::from_mode(0o644)).unwrap();
    assert_reloaded_as_nobody(&demo, &ran_as, "bob");

    // The configuration belongs to nobody, who names another account.
    let demo = Demo::new();
    let ran_as = record_reloads_uid(&demo);
    demo.append("backuppc/config.pl", "$Conf{BackupPCUser} = 'daemon';\n");
    for path in [demo.path("backuppc"), demo.path("backuppc/config.pl")] {
        chown(&path, Some(65534), Some(65534)).unwrap();
    }
    assert_reload_refused(&demo, &ran_as, "bob", "is daemon, but BackupPC's configuration belongs to uid 65534");

    // Naming the configuration's owner, it runs as that owner.
    demo.append("backuppc/config.pl", "$Conf{BackupPCUser} = 'nobody';\n");
    assert_reloaded_as_nobody(&demo, &ran_as, "alice");
}

#[test]
fn root_writes_no_journal_through_a_link_put_in_a_folder_another_account_owns() {
    use std::os::unix::fs::{MetadataExt, lchown, symlink};
    testkit::require!(testkit::require_root_and(&[]));
    // The journal is configured under a folder of the account's (nobody
    // stands for backuppc), as `/var/lib/backuppc/enroll/...` would be.
    let demo = Demo::new();
    fs::set_permissions(demo.path(""), fs::Permissions::from_mode(0o755)).unwrap();
    let theirs = demo.path("theirs");
    fs::create_dir_all(theirs.join("enroll")).unwrap();
    fs::rename(demo.path("registrations.jsonl"), theirs.join("enroll/registrations.jsonl")).unwrap();
    lchown(&theirs, Some(65534), Some(65534)).unwrap();
    let config = fs::read_to_string(demo.path("server.toml")).unwrap();
    let moved = config.replace("journal = \"registrations.jsonl\"", "journal = \"theirs/enroll/registrations.jsonl\"");
    assert_ne!(config, moved);
    fs::write(demo.path("server.toml"), moved).unwrap();
    // The account puts a link to a folder of root's (standing for
    // /etc/cron.d) in place of `enroll`.
    let roots = demo.path("roots");
    fs::create_dir(&roots).unwrap();
    fs::rename(theirs.join("enroll"), demo.path("moved-away")).unwrap();
    symlink(&roots, theirs.join("enroll")).unwrap();
    lchown(theirs.join("enroll"), Some(65534), Some(65534)).unwrap();

    let hosts = demo.hosts();
    let refused = format!(
        "bpc-register: root does not use the journal's folder {}: {} belongs to nobody, who could put a link in \
         place of what it holds",
        theirs.join("enroll").display(),
        theirs.display()
    );
    for args in [&["hosts", "transfer", ALICES_HOST, "bob"][..], &["hosts", "remove", ALICES_HOST], &["check"]] {
        let output = run(&demo, args);
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.starts_with(&refused), "{args:?}: {said}");
        assert_eq!(said.lines().count(), 1, "{said}");
    }
    assert_eq!(fs::read_dir(&roots).unwrap().count(), 0, "root wrote in the folder the link leads to");
    assert_eq!(demo.hosts(), hosts);
    // The way made root's again.
    fs::remove_file(theirs.join("enroll")).unwrap();
    fs::rename(demo.path("moved-away"), theirs.join("enroll")).unwrap();
    lchown(&theirs, Some(0), Some(0)).unwrap();
    // Nor a configuration that the account may write: it names every path.
    fs::set_permissions(demo.path("server.toml"), fs::Permissions::from_mode(0o666)).unwrap();
    let output = run(&demo, &["hosts", "list"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with(&format!(
        "bpc-register: root does not use the configuration {}: others than root may write it (mode 0666)",
        demo.path("server.toml").display()
    )));
    fs::set_permissions(demo.path("server.toml"), fs::Permissions::from_mode(0o644)).unwrap();
    // Nor a users file in a folder of the account's, read by its path.
    let users = demo.path("backuppc/users.toml");
    fs::copy(demo.path("users.toml"), &users).unwrap();
    lchown(demo.path("backuppc"), Some(65534), Some(65534)).unwrap();
    let config = fs::read_to_string(demo.path("server.toml")).unwrap();
    fs::write(demo.path("server.toml"), config.replace("path = \"users.toml\"", "path = \"backuppc/users.toml\""))
        .unwrap();
    let output = run(&demo, &["hosts", "list"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with(&format!(
        "bpc-register: root does not use the users file's folder {}: {} belongs to nobody",
        demo.path("backuppc").display(),
        demo.path("backuppc").display()
    )));
    fs::write(demo.path("server.toml"), config).unwrap();
    // With all of it root's, the same command works.
    assert_eq!(transfer_as_root(&demo, "bob"), "");
    let journal = theirs.join("enroll/registrations.jsonl");
    assert!(fs::read_to_string(&journal).unwrap().contains("\"transferred\""));
    assert_eq!(fs::metadata(&journal).unwrap().uid(), 0);
}
