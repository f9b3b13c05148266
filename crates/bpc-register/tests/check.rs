//! `bpc-register check [--fix [--yes]]`, the real binary, against a server
//! folder made by the demo.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

// Always true here; it lets clippy.toml's allow-unwrap-in-tests cover the helpers too.
#[cfg(test)]
#[allow(dead_code, reason = "this test uses a part of the shared helpers")]
mod common;

use common::{Demo, bpc_register};
use std::fs;

const BOB: &str = "127.0.0.3 50000 127.0.0.1 22";

/// What one run of `check` said.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts that standard output has exactly `line` among its lines.
    fn says(&self, line: &str) -> &Run {
        assert!(self.stdout.lines().any(|l| l == line), "no line {line:?} in:\n{}{}", self.stdout, self.stderr);
        self
    }

    /// The lines of standard output that start with `prefix`.
    fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout.lines().filter(|line| line.starts_with(prefix)).collect()
    }
}

/// `bpc-register --config DIR/server.toml check ARGS`.
fn check(demo: &Demo, args: &[&str]) -> Run {
    let output = bpc_register().arg("--config").arg(demo.path("server.toml")).arg("check").args(args).output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `check ARGS...` run as nobody, standing for the backuppc account.
fn check_as_nobody(demo: &Demo, args: &[&str]) -> Run {
    let output = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_bpc-register"))
        .arg("--config")
        .arg(demo.path("server.toml"))
        .arg("check")
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The demo's journal, as bytes.
fn journal(demo: &Demo) -> Vec<u8> {
    fs::read(demo.path("registrations.jsonl")).unwrap()
}

/// Asserts that `check` reports `problem` (exit 1), that `check --fix`
/// says `fix` and changes nothing, that `check --fix --yes` says `fixed`
/// and exits 0, and that `check` is then clean.
fn assert_found_and_repaired(demo: &Demo, problem: &str, fix: &str, fixed: &str) {
    let found = check(demo, &[]);
    assert_eq!(found.code, 1, "{found:?}");
    found.says(&format!("problem: {problem}"));
    assert_eq!(found.lines_starting("problem: ").len(), 1, "{found:?}");

    let (before, journal_before) = (demo.backuppc(), journal(demo));
    let dry = check(demo, &["--fix"]);
    assert_eq!(dry.code, 1, "{dry:?}");
    dry.says(&format!("problem: {problem}"))
        .says(&format!("fix: {fix}"))
        .says("nothing was changed; run `bpc-register check --fix --yes` to make the repairs above");
    demo.backuppc().assert_unchanged_since(&before);
    assert_eq!(journal(demo), journal_before, "--fix without --yes changed the journal");

    let repaired = check(demo, &["--fix", "--yes"]);
    assert_eq!(repaired.code, 0, "{repaired:?}");
    repaired.says(&format!("fixed: {fixed}"));
    assert_eq!(repaired.lines_starting("left: "), Vec::<&str>::new());
    let clean = check(demo, &[]);
    assert_eq!(clean.code, 0, "{clean:?}");
}

/// Asserts that `check` reports `problem` and that `check --fix --yes`
/// leaves it (`left`), exit 1, changing nothing.
fn assert_found_and_left(demo: &Demo, problem: &str, left: &str) {
    let found = check(demo, &[]);
    assert_eq!(found.code, 1, "{found:?}");
    found.says(&format!("problem: {problem}"));
    let (before, journal_before) = (demo.backuppc(), journal(demo));
    let run = check(demo, &["--fix", "--yes"]);
    assert_eq!(run.code, 1, "{run:?}");
    run.says(&format!("problem: {problem}")).says(&format!("left: {left}"));
    assert_eq!(run.lines_starting("fixed: "), Vec::<&str>::new());
    demo.backuppc().assert_unchanged_since(&before);
    assert_eq!(journal(demo), journal_before);
}

/// The demo with bob registered for `pc-bob.example.org`, then his line
/// taken out of `hosts` as BackupPC's web host editor takes it.
fn demo_with_bobs_line_lost() -> (Demo, String) {
    let demo = Demo::new();
    demo.register("linux:bob", BOB).code(0);
    let hosts = demo.hosts();
    let without: String = hosts.lines().filter(|line| !line.starts_with("pc-bob.")).map(|l| format!("{l}\n")).collect();
    assert_ne!(without, hosts);
    fs::write(demo.path("backuppc/hosts"), &without).unwrap();
    let records = server::journal::read(&demo.path("registrations.jsonl")).unwrap().records;
    let time = records.last().unwrap().time.clone();
    (demo, time)
}

#[test]
fn the_demos_server_is_clean_after_its_own_registration() {
    let demo = Demo::new();
    let run = check(&demo, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "ok: {}: 2 host lines, none duplicated or mishandled; 1 host registered in the journal, each with its \
             line; 1 per-host config that bpc-register wrote, each for a host in hosts\n\
             ok: {}: host owners can change only harmless settings (no command, path, argument, address or mail)\n",
            demo.path("backuppc/hosts").display(),
            demo.path("backuppc/config.pl").display()
        )
    );
    let fix = check(&demo, &["--fix", "--yes"]);
    assert_eq!((fix.code, fix.stdout), (0, run.stdout));
}

#[test]
fn a_registered_host_whose_line_was_lost_gets_it_back_with_its_owner() {
    let (demo, time) = demo_with_bobs_line_lost();
    let hosts_without = demo.hosts();
    assert_found_and_repaired(
        &demo,
        &format!(
            "pc-bob.example.org is registered to bob in the journal (added {time}) but has no line in hosts, so \
             BackupPC does not back it up (BackupPC's web host editor drops a host registered while its page is \
             open; or the line was removed by hand)"
        ),
        "add pc-bob.example.org back to hosts, owned by bob as the journal says, journaled as `restored`",
        "added pc-bob.example.org back to hosts, owned by bob as the journal says, journaled as `restored`",
    );
    assert_eq!(demo.hosts(), format!("{hosts_without}pc-bob.example.org\t0\tbob\n"));
    let records = server::journal::read(&demo.path("registrations.jsonl")).unwrap().records;
    let last = records.last().unwrap();
    assert_eq!(
        (last.host.as_str(), last.owner.as_str(), last.action.as_str()),
        ("pc-bob.example.org", "bob", "restored")
    );
    // bob's registration is his again: re-registering confirms it.
    demo.register("linux:bob", BOB).code(0);
}

#[test]
fn a_lost_host_whose_config_is_gone_too_gets_both_back() {
    let (demo, _) = demo_with_bobs_line_lost();
    let config = demo.path("backuppc/pc-bob.example.org.pl");
    let written = fs::read_to_string(&config).unwrap();
    fs::remove_file(&config).unwrap();
    let run = check(&demo, &["--fix", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.says(
        "fixed: added pc-bob.example.org back to hosts, owned by bob as the journal says, journaled as `restored`, \
         with its per-host config written again",
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), written, "the same config as the registration wrote");
    assert_eq!(check(&demo, &[]).code, 0);
}

#[test]
fn an_orphan_config_of_bpc_registers_is_moved_aside_and_others_are_left_alone() {
    let demo = Demo::new();
    let alice = fs::read_to_string(demo.path("backuppc/pc-alice.example.org.pl")).unwrap();
    let orphan = demo.path("backuppc/old.example.org.pl");
    let body = alice.replace("for host pc-alice.example.org,", "for host old.example.org,");
    fs::write(&orphan, &body).unwrap();
    fs::write(demo.path("backuppc/seed.example.org.pl"), "$Conf{XferMethod} = 'rsync';\n").unwrap();
    let problem = format!(
        "{}: written by bpc-register for old.example.org, which has no line in hosts and no registration in the \
         journal; a line added for old.example.org later would bring its old settings back",
        orphan.display()
    );
    let found = check(&demo, &["--fix"]);
    let fix = found.lines_starting("fix: move ");
    assert_eq!(fix.len(), 1, "{found:?}");
    let aside = fix[0]
        .strip_prefix(&format!("fix: move {} aside to ", orphan.display()))
        .and_then(|rest| rest.strip_suffix(" (BackupPC reads only HOST.pl)"))
        .unwrap()
        .to_owned();
    assert!(aside.starts_with(&format!("{}.orphaned-", orphan.display())), "{aside}");
    let fixed_prefix = format!("moved {} aside to {}.orphaned-", orphan.display(), orphan.display());

    let run_fix = check(&demo, &["--fix", "--yes"]);
    let fixed = run_fix.lines_starting("fixed: ");
    assert!(matches!(fixed.as_slice(), [line] if line.starts_with(&format!("fixed: {fixed_prefix}"))), "{run_fix:?}");
    assert_eq!(run_fix.code, 0);
    run_fix.says(&format!("problem: {problem}"));
    let moved = fixed[0].strip_prefix("fixed: moved ").unwrap();
    let to = moved.split(" aside to ").nth(1).unwrap().strip_suffix(" (BackupPC reads only HOST.pl)").unwrap();
    assert!(!orphan.exists());
    assert_eq!(fs::read_to_string(to).unwrap(), body, "moved, not rewritten");
    assert!(demo.path("backuppc/seed.example.org.pl").exists(), "a file bpc-register did not write was touched");
    assert_eq!(check(&demo, &[]).code, 0);
}

#[test]
fn duplicate_lines_keep_the_one_backuppcs_daemon_reads() {
    let demo = Demo::new();
    demo.append("backuppc/hosts", "PC-Alice.example.org 0 mallory # added by hand\n");
    let hosts = demo.hosts();
    assert_found_and_repaired(
        &demo,
        "pc-alice.example.org has 2 lines in hosts, lines 4 (alice), 5 (mallory): BackupPC's daemon and web page \
         see mallory, BackupPC_dump sees alice; the journal registers it to alice",
        "keep only the last line of pc-alice.example.org in hosts, owned by mallory: the owner BackupPC's daemon \
         and web page see",
        "kept only the last line of pc-alice.example.org in hosts, owned by mallory: the owner BackupPC's daemon \
         and web page see",
    );
    assert_eq!(demo.hosts(), hosts.replace("pc-alice.example.org\t0\talice\n", ""));
}

#[test]
fn a_host_line_taken_for_the_header_gets_the_header_above_it() {
    let demo = Demo::new();
    let without_header: String =
        demo.hosts().lines().filter(|line| !line.starts_with("host ")).map(|line| format!("{line}\n")).collect();
    fs::write(demo.path("backuppc/hosts"), &without_header).unwrap();
    assert_found_and_repaired(
        &demo,
        "hosts line 2 (`localhost   0       backuppc`) is the first line BackupPC counts, so it takes it for the \
         header: that host is not backed up and no line below has an owner; the header `host dhcp user moreUsers` \
         must come first",
        "put BackupPC's header line `host dhcp user moreUsers` at the top of hosts",
        "put BackupPC's header line `host dhcp user moreUsers` at the top of hosts",
    );
    assert_eq!(demo.hosts(), format!("host\tdhcp\tuser\tmoreUsers\n{without_header}"));
}

#[test]
fn config_pl_letting_owners_change_commands_gets_the_lines_appended() {
    let demo = Demo::new();
    demo.append("backuppc/config.pl", "$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 1;\n");
    let config_pl = demo.path("backuppc/config.pl");
    let before = fs::read_to_string(&config_pl).unwrap();
    let run = check(&demo, &[]);
    run.says("    $Conf{CgiUserConfigEdit}{RsyncSshArgs} = 0;");
    assert_found_and_repaired(
        &demo,
        &format!(
            "{}: BackupPC's web page lets a host's owner change RsyncSshArgs, which are not on bpc-register's list of \
             harmless settings: the next backup could run what the owner wrote, as backuppc, or BackupPC could send \
             her mail to anyone; bpc-register refuses to register hosts until it is fixed",
            config_pl.display()
        ),
        &format!(
            "add the line above at the end of {}, so that host owners can change only harmless settings",
            config_pl.display()
        ),
        &format!(
            "added the line above at the end of {}, so that host owners can change only harmless settings",
            config_pl.display()
        ),
    );
    assert_eq!(
        fs::read_to_string(&config_pl).unwrap(),
        format!(
            "{before}# Added by bpc-register check --fix: host owners may not change these in the web page.\n\
             $Conf{{CgiUserConfigEdit}}{{RsyncSshArgs}} = 0;\n"
        )
    );
    demo.register("linux:bob", BOB).code(0);
}

#[test]
fn a_config_pl_behind_a_link_is_left_with_the_lines_to_add() {
    testkit::require!(testkit::require_root_and(&["/usr/bin/setpriv", "/bin/chown"]));
    let demo = Demo::new();
    let real = demo.path("config-real.pl");
    let config_pl = demo.path("backuppc/config.pl");
    fs::write(
        &real,
        format!("{}$Conf{{CgiUserConfigEdit}}{{RsyncSshArgs}} = 1;\n", fs::read_to_string(&config_pl).unwrap()),
    )
    .unwrap();
    fs::remove_file(&config_pl).unwrap();
    std::os::unix::fs::symlink(&real, &config_pl).unwrap();
    give_to_nobody(&demo);
    let before = fs::read(&real).unwrap();
    // Root hands Perl, run as the folder's owner, nothing it reached
    // through a link the owner could have put there.
    let by_root = check(&demo, &[]);
    assert_eq!(by_root.code, 1, "{by_root:?}");
    by_root.says(&format!(
        "problem: {}: cannot read BackupPC's configuration: a symbolic link, which bpc-register run as root does \
         not follow (run it as the account that owns BackupPC's configuration); bpc-register registers only into \
         a BackupPC whose config.pl it can read",
        config_pl.display()
    ));
    // The account that owns it follows the link, as BackupPC does.
    let run = check_as_nobody(&demo, &["--fix", "--yes"]);
    assert_eq!(run.code, 1, "{run:?}");
    run.says(&format!(
        "left: {}: not a regular file (a link, or something else), which bpc-register does not replace; add the \
         lines above to it by hand",
        config_pl.display()
    ))
    .says("    $Conf{CgiUserConfigEdit}{RsyncSshArgs} = 0;");
    assert_eq!(fs::read(&real).unwrap(), before);
    assert!(fs::symlink_metadata(&config_pl).unwrap().file_type().is_symlink());
}

#[test]
fn a_registration_cut_short_is_undone_first() {
    let demo = Demo::new();
    let undo = demo.path("backuppc/.bpc-enroll-undo");
    fs::write(&undo, "{\"journal_len\":").unwrap();
    assert_found_and_repaired(
        &demo,
        &format!(
            "{}: a change to hosts was cut short (a crash or a full disk); until it is undone, hosts, the per-host \
             config and the journal may disagree",
            undo.display()
        ),
        "undo the change that was cut short, as the next registration would",
        "undid the change that was cut short, as the next registration would",
    );
    assert!(!undo.exists());
}

#[test]
fn lines_and_names_backuppc_would_not_accept_are_reported_and_left() {
    let demo = Demo::new();
    demo.append("backuppc/hosts", "  indented.example.org 0 bob\n");
    assert_found_and_left(
        &demo,
        "hosts line 5 (`  indented.example.org 0 bob`) is skipped by BackupPC: a host line starts in the first column \
         with a name of letters, digits, `_`, `.` or `-`, followed by white space and the other columns",
        "hosts line 5: correct it by hand, in BackupPC's Hosts page or an editor",
    );
    let demo = Demo::new();
    demo.append("backuppc/hosts", "-f 0 bob\n");
    assert_found_and_left(
        &demo,
        "hosts line 5: host `-f` starts with `-`: BackupPC's tools (BackupPC_dump -i HOST) would read it as an option",
        "hosts line 5: correct it by hand, in BackupPC's Hosts page or an editor",
    );
    let demo = Demo::new();
    demo.append("backuppc/hosts", "config 0 bob\n");
    assert_found_and_left(
        &demo,
        "hosts line 5: host `config` is `config`: BackupPC reads config.pl as its per-host config, and its owner \
         could edit BackupPC's whole configuration from the web page",
        "hosts line 5: correct it by hand, in BackupPC's Hosts page or an editor",
    );
}

#[test]
fn journal_lines_that_cannot_be_read_are_reported_and_left() {
    let demo = Demo::new();
    demo.append("registrations.jsonl", "{\"time\": cut short\n");
    let journal_path = demo.path("registrations.jsonl");
    assert_found_and_left(
        &demo,
        &format!(
            "{}: line 2 cannot be read as records (cut short by a crash, or edited by hand): a registration written \
             there is not checked",
            journal_path.display()
        ),
        &format!("{}: look at those lines and repair or remove them by hand", journal_path.display()),
    );
}

#[test]
fn a_repair_that_cannot_be_written_changes_nothing_and_exits_2() {
    let (demo, _) = demo_with_bobs_line_lost();
    // The journal can be read but not appended to: root appends to no file
    // with other names, anyone else to none it may not write.
    let real = demo.path("registrations.jsonl");
    fs::hard_link(&real, demo.path("journal-other-name.jsonl")).unwrap();
    if !nix::unistd::geteuid().is_root() {
        fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    }
    let (before, journal_before) = (demo.backuppc(), fs::read(&real).unwrap());
    let run = check(&demo, &["--fix", "--yes"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.lines_starting("fixed: "), Vec::<&str>::new());
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert!(
        matches!(errors.as_slice(), [line] if line.starts_with(
            "bpc-register: could not add pc-bob.example.org back to hosts, owned by bob as the journal says, \
             journaled as `restored`: "
        ) && line.ends_with("; that repair was not made, nor the ones after it")),
        "{run:?}"
    );
    demo.backuppc().assert_unchanged_since(&before);
    assert_eq!(fs::read(&real).unwrap(), journal_before);
}

#[test]
fn a_lock_held_by_backuppc_is_waited_for_then_nothing_changes() {
    let (demo, _) = demo_with_bobs_line_lost();
    let lock = fs::File::options().write(true).open(demo.path("backuppc/LOCK")).unwrap();
    lock.lock().unwrap();
    let before = demo.backuppc();
    for args in [&[][..], &["--fix", "--yes"][..]] {
        let run = check(&demo, args);
        assert_eq!(run.code, 2, "{run:?}");
        assert_eq!(
            run.stderr,
            format!(
                "bpc-register: {}: BackupPC's lock is held by another program (its web page saving, or a \
                 registration) for more than 10 s; nothing was read or changed, try again{}\n",
                demo.path("backuppc/LOCK").display(),
                if args.is_empty() { "" } else { "; nothing was changed" }
            )
        );
        assert_eq!(run.stdout, "");
    }
    demo.backuppc().assert_unchanged_since(&before);
}

#[test]
fn yes_without_fix_is_a_usage_error() {
    let demo = Demo::new();
    let run = check(&demo, &["--yes"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--fix"), "{run:?}");
}

#[test]
fn a_configuration_that_cannot_be_read_exits_2() {
    let demo = Demo::new();
    demo.append("server.toml", "colour = 1\n");
    let run = check(&demo, &["--fix", "--yes"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("bpc-register: ") && run.stderr.contains("colour"), "{run:?}");
    assert_eq!(run.stdout, "");
}

/// A server set up by the seed's shell scripts: `hosts` lines appended by
/// `echo`, per-host configs of its own, no journal, and clients that send
/// `mac:LOGON`.
#[test]
fn a_seed_era_server_is_taken_over_as_it_is() {
    let demo = Demo::new();
    demo.append("users.toml", "\n[users.cmartin]\nname = \"Christophe Martin\"\n");
    demo.append("hosts.static", "127.0.0.4   dormeur.example.org\n");
    demo.append("backuppc/hosts", "dormeur.example.org 0 cmartin\n");
    let seed_config = demo.path("backuppc/dormeur.example.org.pl");
    let seed_body = "$Conf{XferMethod} = 'rsync';\n$Conf{RsyncShareName} = ['/home'];\n";
    fs::write(&seed_config, seed_body).unwrap();
    fs::write(demo.path("backuppc/gone.example.org.pl"), seed_body).unwrap();
    let run = check(&demo, &[]);
    assert_eq!(run.code, 0, "the seed's hosts and configs are not problems: {run:?}");

    let dormeur = "127.0.0.4 50000 127.0.0.1 22";
    demo.register("mac:cmartin", dormeur).code(0);
    assert_eq!(fs::read_to_string(&seed_config).unwrap(), seed_body, "the seed's config is kept");
    let records = server::journal::read(&demo.path("registrations.jsonl")).unwrap().records;
    let last = records.last().unwrap();
    assert_eq!(
        (last.host.as_str(), last.owner.as_str(), last.os.as_str(), last.action.as_str()),
        ("dormeur.example.org", "cmartin", "macos", "confirmed")
    );
    assert_eq!(check(&demo, &[]).code, 0);

    // From now on dormeur is journaled: a line lost to the web editor is found.
    let without: String =
        demo.hosts().lines().filter(|line| !line.starts_with("dormeur.")).map(|l| format!("{l}\n")).collect();
    fs::write(demo.path("backuppc/hosts"), without).unwrap();
    let run = check(&demo, &["--fix", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.says(
        "fixed: added dormeur.example.org back to hosts, owned by cmartin as the journal says, journaled as `restored`",
    );
    assert_eq!(fs::read_to_string(&seed_config).unwrap(), seed_body);
}

#[test]
fn a_lock_roots_fix_creates_is_the_backuppc_accounts_so_registrations_go_on() {
    use std::os::unix::fs::MetadataExt;
    testkit::require!(testkit::require_root_and(&["/usr/bin/setpriv", "/bin/chown"]));
    // A server whose files are an account's (nobody stands for backuppc),
    // where no LOCK was ever made; root runs the fix first.
    let demo = Demo::new();
    fs::remove_file(demo.path("backuppc/LOCK")).unwrap();
    give_to_nobody(&demo);
    let fix = check(&demo, &["--fix", "--yes"]);
    assert_eq!(fix.code, 0, "{fix:?}");
    let lock = fs::metadata(demo.path("backuppc/LOCK")).unwrap();
    assert_eq!((lock.uid(), lock.gid(), lock.mode() & 0o7777), (65534, 65534, 0o644));
    // The forced command, run as that account, can take the lock.
    let (said, logged) = register_bob_as_nobody(&demo);
    assert!(said.starts_with("success\n"), "{said}{logged}");
    assert!(demo.hosts().contains("pc-bob.example.org\t0\tbob\n"), "{}", demo.hosts());
}

/// Gives everything in the demo folder to nobody (standing for backuppc),
/// the folder itself and `server.toml` staying root's, as `/etc` holds
/// `/etc/backuppc`: root uses no folder reached through one of someone
/// else's, and no configuration that someone else may write.
fn give_to_nobody(demo: &Demo) {
    use std::os::unix::fs::PermissionsExt;
    let status = std::process::Command::new("/bin/chown").arg("-R").arg("65534:65534").arg(demo.path("")).status();
    assert!(status.unwrap().success());
    for root_keeps in ["", "server.toml"] {
        std::os::unix::fs::lchown(demo.path(root_keeps), Some(0), Some(0)).unwrap();
    }
    fs::set_permissions(demo.path(""), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Bob's registration by the forced command run as nobody (standing for
/// backuppc): what it answered and what it logged.
fn register_bob_as_nobody(demo: &Demo) -> (String, String) {
    let output = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_bpc-register"))
        .arg("--config")
        .arg(demo.path("server.toml"))
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", "linux:bob")
        .env("SSH_CONNECTION", BOB)
        .output()
        .unwrap();
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_lock_of_roots_that_stops_every_registration_is_reported_and_given_back() {
    use std::os::unix::fs::MetadataExt;
    // Root gives a lock back only where the kernel protects hard links.
    let protected = fs::read_to_string("/proc/sys/fs/protected_hardlinks").is_ok_and(|value| value.trim() == "1");
    let protected = protected.then_some(()).ok_or_else(|| "fs.protected_hardlinks is off here".to_owned());
    testkit::require!(testkit::require_root_and(&["/usr/bin/setpriv", "/bin/chown"]).and(protected));
    // The server's files are an account's (nobody stands for backuppc),
    // but its LOCK is root's, as a command run as root can leave it.
    let demo = Demo::new();
    give_to_nobody(&demo);
    let lock = demo.path("backuppc/LOCK");
    nix::unistd::chown(&lock, Some(nix::unistd::Uid::from_raw(0)), Some(nix::unistd::Gid::from_raw(0))).unwrap();
    let (said, logged) = register_bob_as_nobody(&demo);
    assert!(said.contains("Could not register"), "{said}{logged}");
    assert!(!demo.hosts().contains("pc-bob"), "{}", demo.hosts());

    let problem = format!(
        "{}: BackupPC's lock belongs to root, and nobody, who owns BackupPC's configuration folder and runs the \
         registrations, may not write it: every registration fails (`Could not register`) until it is given back",
        lock.display()
    );
    // The account itself cannot take the lock to repair, and is told so.
    let by_account = check_as_nobody(&demo, &["--fix", "--yes"]);
    let said = &by_account.stderr;
    assert_eq!(by_account.code, 2, "{said}");
    assert!(said.contains("run `bpc-register check --fix --yes` as root"), "{said}");
    // Root gives it back, keeping its group and mode.
    let fixed = format!(
        "gave {} (an empty lock file of root's) to nobody, so that registrations can take it again",
        lock.display()
    );
    assert_found_and_repaired(&demo, &problem, &fixed.replacen("gave", "give", 1), &fixed);
    let meta = fs::metadata(&lock).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (65534, 0, 0o644));
    let (said, logged) = register_bob_as_nobody(&demo);
    assert!(said.starts_with("success\n"), "{said}{logged}");
}
