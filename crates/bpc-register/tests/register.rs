//! `bpc-register` as sshd runs it, against a server folder made by the demo.

// Always true here; it lets clippy.toml's allow-unwrap-in-tests cover the helpers too.
#[cfg(test)]
mod common;

use common::{Demo, bpc_register, connection_from};
use predicates::prelude::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

const BOB: &str = "127.0.0.3 50000 127.0.0.1 22";

/// Asserts that `request` from `connection` gets exactly the contract's
/// `text` after `SSH_CONNECTION`, exit 1, a log line at `level`, and that
/// nothing under `DIR/backuppc` changed.
fn assert_refused(demo: &Demo, request: &str, connection: &str, text: &str, level: &str) {
    let before = demo.backuppc();
    demo.register(request, connection).code(1).stdout(format!("{connection} {text}\n"));
    demo.backuppc().assert_unchanged_since(&before);
    demo.assert_logged(level, connection, text);
}

/// Asserts that a hostile request or environment fails with `code`, is not
/// answered `success`, changes nothing under `DIR/backuppc` and forges no
/// log line.
fn assert_harmless(demo: &Demo, request: Option<&OsStr>, connection: Option<&OsStr>, code: i32) {
    let before = demo.backuppc();
    let output = demo.register_raw(request, connection).code(code).get_output().clone();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.lines().any(|line| line == "success"), "{stdout:?}");
    demo.backuppc().assert_unchanged_since(&before);
    demo.assert_log_lines_are_whole();
}

/// Asserts that `request`, which a shell would read as a command creating
/// `DIR/injected`, is refused harmlessly and that the file does not exist.
fn assert_not_executed(demo: &Demo, request: &str) {
    assert_harmless(demo, Some(request.as_ref()), Some(BOB.as_ref()), 1);
    assert!(!demo.path("injected").exists(), "the request was run by a shell");
}

/// `template` with `MARKER` replaced by the path of `DIR/injected`.
fn marker_request(template: &str, demo: &Demo) -> String {
    template.replace("MARKER", &demo.path("injected").display().to_string())
}

#[test]
fn refuses_an_unknown_ostype() {
    assert_refused(&Demo::new(), "beos:bob", BOB, "ostype is unknown", "notice");
}

#[test]
fn refuses_a_logon_missing_from_the_directory() {
    assert_refused(&Demo::new(), "linux:nobody", BOB, "bad user request", "notice");
}

#[test]
fn refuses_a_client_whose_name_is_outside_the_domain() {
    let connection = connection_from("127.0.0.9");
    assert_refused(&Demo::new(), "linux:bob", &connection, "invalid DNS name for this IP", "notice");
}

#[test]
fn refuses_a_client_whose_address_has_no_name() {
    let connection = connection_from("127.0.0.77");
    assert_refused(&Demo::new(), "linux:bob", &connection, "invalid DNS name for this IP", "notice");
}

#[test]
fn refuses_to_give_alices_host_to_bob() {
    let connection = connection_from("127.0.0.2");
    let text = "refusing to re-register client host with username";
    assert_refused(&Demo::new(), "linux:bob", &connection, text, "notice");
}

#[test]
fn a_hosts_file_that_cannot_be_written_is_could_not_register() {
    let demo = Demo::new();
    let hosts = demo.path("backuppc/hosts");
    fs::remove_file(&hosts).unwrap();
    fs::create_dir(&hosts).unwrap();
    assert_refused(&demo, "linux:bob", BOB, "Could not register", "err");
}

#[test]
fn a_host_config_that_cannot_be_put_in_place_is_could_not_generate_config_file() {
    let demo = Demo::new();
    let config = demo.path("backuppc/pc-bob.example.org.pl");
    fs::create_dir(&config).unwrap();
    fs::write(config.join("keep"), "").unwrap();
    assert_refused(&demo, "linux:bob", BOB, "could not generate config file.", "err");
}

#[test]
fn a_good_request_registers_the_host_once_and_again_idempotently() {
    let demo = Demo::new();
    let hosts_before = demo.hosts();
    let key = fs::read_to_string(demo.path("backuppc-key/id_ed25519.pub")).unwrap();
    let answer = format!(
        "success\nkey: {}\nurl: http://backup.example.org/backuppc/index.cgi?host=pc-bob.example.org\n\
         host: pc-bob.example.org\naccount: bckpciuem\nuser: bob\n",
        key.trim_end()
    );
    demo.register("linux:bob", BOB).code(0).stdout(answer.clone());
    assert_eq!(demo.hosts(), format!("{hosts_before}pc-bob.example.org\t0\tbob\n"));
    assert!(demo.path("backuppc/pc-bob.example.org.pl").is_file());
    demo.assert_logged("info", BOB, "pc-bob.example.org");

    let registered = demo.backuppc();
    demo.register("linux:bob", BOB).code(0).stdout(answer);
    demo.backuppc().assert_unchanged_since(&registered);
}

#[test]
fn the_seeds_mac_is_accepted_and_journaled_as_macos() {
    let demo = Demo::new();
    demo.register("mac:bob", BOB).code(0).stdout(predicate::str::starts_with("success\n"));
    let journal = server::journal::read(&demo.path("registrations.jsonl")).unwrap();
    let last = journal.records.last().unwrap();
    assert_eq!(
        (last.host.as_str(), last.owner.as_str(), last.os.as_str(), last.action.as_str()),
        ("pc-bob.example.org", "bob", "macos", "added")
    );
    demo.assert_logged("info", BOB, "registered host pc-bob.example.org for bob (macos, sent as mac, protocol 1)");
}

#[test]
fn an_os_list_without_macos_refuses_the_seeds_mac_too() {
    let demo = Demo::new();
    let config = fs::read_to_string(demo.path("server.toml")).unwrap();
    let linux_only = config.replace("os = [\"linux\", \"macos\", \"windows\"]", "os = [\"linux\"]");
    assert_ne!(linux_only, config);
    fs::write(demo.path("server.toml"), linux_only).unwrap();
    assert_refused(&demo, "mac:bob", BOB, "ostype is unknown", "notice");
    assert_refused(&demo, "macos:bob", BOB, "ostype is unknown", "notice");
    demo.register("linux:bob", BOB).code(0);
}

#[test]
fn a_request_with_a_semicolon_runs_nothing() {
    let demo = Demo::new();
    assert_not_executed(&demo, &marker_request("linux:bob;touch MARKER", &demo));
}

#[test]
fn a_request_with_a_command_substitution_runs_nothing() {
    let demo = Demo::new();
    assert_not_executed(&demo, &marker_request("$(touch MARKER):bob", &demo));
}

#[test]
fn a_request_with_backticks_runs_nothing() {
    let demo = Demo::new();
    assert_not_executed(&demo, &marker_request("`touch MARKER`:bob", &demo));
}

#[test]
fn a_request_with_a_pipe_runs_nothing() {
    let demo = Demo::new();
    assert_not_executed(&demo, &marker_request("linux:bob|touch MARKER", &demo));
}

#[test]
fn a_request_with_a_newline_cannot_forge_success() {
    assert_harmless(&Demo::new(), Some("linux:bob\nsuccess".as_ref()), Some(BOB.as_ref()), 1);
}

#[test]
fn a_ten_kilobyte_request_is_refused() {
    let request = format!("linux:bob {}", "a".repeat(10 * 1024));
    assert_harmless(&Demo::new(), Some(request.as_ref()), Some(BOB.as_ref()), 1);
}

#[test]
fn a_logon_with_dot_dot_slash_is_refused() {
    assert_harmless(&Demo::new(), Some("linux:../../etc/passwd".as_ref()), Some(BOB.as_ref()), 1);
}

#[test]
fn a_request_that_is_not_utf8_is_refused() {
    assert_harmless(&Demo::new(), Some(OsStr::from_bytes(b"linux:b\xffob")), Some(BOB.as_ref()), 1);
}

#[test]
fn an_empty_request_is_refused() {
    assert_harmless(&Demo::new(), Some("".as_ref()), Some(BOB.as_ref()), 1);
}

#[test]
fn no_request_at_all_is_refused() {
    assert_harmless(&Demo::new(), None, Some(BOB.as_ref()), 1);
}

#[test]
fn a_missing_ssh_connection_is_a_usage_error() {
    assert_harmless(&Demo::new(), Some("linux:bob".as_ref()), None, 2);
}

#[test]
fn an_ssh_connection_with_a_newline_is_a_usage_error() {
    let connection = format!("{BOB}\nsuccess");
    assert_harmless(&Demo::new(), Some("linux:bob".as_ref()), Some(connection.as_ref()), 2);
}

#[test]
fn an_ssh_connection_of_four_words_is_a_usage_error() {
    assert_harmless(&Demo::new(), Some("linux:bob".as_ref()), Some("x y z w".as_ref()), 2);
}

#[test]
fn an_ssh_connection_that_is_not_utf8_is_a_usage_error() {
    let connection = OsStr::from_bytes(b"127.0.0.3 50000 127.0.0.1 22\xff");
    assert_harmless(&Demo::new(), Some("linux:bob".as_ref()), Some(connection), 2);
}

#[test]
fn concurrent_registrations_lose_nothing() {
    const HOSTS: u32 = 32;
    let demo = Demo::new();
    let names: String = (1..=HOSTS).map(|n| format!("127.0.1.{n}  host-{n}.example.org\n")).collect();
    demo.append("hosts.static", &names);
    let original = demo.hosts();

    let children: Vec<_> = (1..=HOSTS)
        .map(|n| {
            let connection = connection_from(&format!("127.0.1.{n}"));
            let mut command = demo.command(Some("linux:bob".as_ref()), Some(connection.as_ref()));
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.starts_with("success\n"), "{stdout}");
    }

    let hosts = demo.hosts();
    let lines: Vec<&str> = hosts.lines().collect();
    let original_lines: Vec<&str> = original.lines().collect();
    assert_eq!(lines.get(..original_lines.len()), Some(original_lines.as_slice()), "{hosts}");
    assert_eq!(lines.len(), original_lines.len() + HOSTS as usize, "{hosts}");
    for n in 1..=HOSTS {
        let line = format!("host-{n}.example.org\t0\tbob");
        assert_eq!(lines.iter().filter(|l| **l == line).count(), 1, "{line:?} in:\n{hosts}");
        assert!(demo.path(&format!("backuppc/host-{n}.example.org.pl")).is_file());
    }
    let files = demo.backuppc();
    // LOCK, config.pl, hosts, and the demo's pc-alice.example.org.pl and .known_hosts.
    assert_eq!(files.names().len(), 5 + HOSTS as usize, "files left in backuppc/: {:?}", files.names());
}

#[test]
fn an_unknown_config_key_names_file_line_and_key() {
    let demo = Demo::new();
    let config = demo.path("server.toml");
    let text = fs::read_to_string(&config).unwrap();
    let (comment, rest) = text.split_once('\n').unwrap();
    fs::write(&config, format!("{comment}\ncolour = \"blue\"\n{rest}")).unwrap();
    let before = demo.backuppc();
    demo.register("linux:bob", BOB)
        .code(2)
        .stdout(predicate::str::starts_with(format!("{BOB} ")).and(predicate::str::contains("misconfigured")))
        .stderr(predicate::str::contains("server.toml:2:").and(predicate::str::contains("colour")));
    demo.backuppc().assert_unchanged_since(&before);
}

/// Debian's stock `config.pl`, as the backuppc package installs it.
const DEBIAN_CONFIG_PL: &str = "/usr/share/backuppc/conf/config.pl";

/// `bpc-register check` on the demo: its exit code and standard output.
fn check(demo: &Demo) -> (i32, String) {
    let mut command = bpc_register();
    command.arg("--config").arg(demo.path("server.toml")).arg("check");
    let output = assert_cmd::Command::from_std(command).assert().get_output().clone();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_backuppc_that_lets_owners_edit_rsyncsshargs_gets_no_registration_until_fixed() {
    let installed = std::path::Path::new(DEBIAN_CONFIG_PL).exists();
    let requirement = if installed { Ok(()) } else { Err(format!("missing {DEBIAN_CONFIG_PL}: install backuppc")) };
    if testkit::skip(module_path!(), requirement) {
        return;
    }
    let demo = Demo::new();
    let config_pl = demo.path("backuppc/config.pl");
    fs::write(&config_pl, format!("do '{DEBIAN_CONFIG_PL}' or die \"cannot load: $@ $!\";\n")).unwrap();
    let journal_before = fs::read(demo.path("registrations.jsonl")).unwrap();

    assert_refused(&demo, "linux:bob", BOB, "Could not register", "err");
    assert_eq!(fs::read(demo.path("registrations.jsonl")).unwrap(), journal_before, "the journal changed");
    assert!(!demo.path("backuppc/pc-bob.example.org.pl").exists());
    demo.assert_logged("err", BOB, "$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 0;");
    demo.assert_logged("err", BOB, "$Conf{CgiUserConfigEditEnable} = 0;");

    let (code, report) = check(&demo);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("RsyncSshArgs") && report.contains(&config_pl.display().to_string()), "{report}");
    let fixes: Vec<&str> =
        report.lines().map(str::trim).filter(|line| line.starts_with("$Conf{CgiUserConfigEdit}{")).collect();
    assert!(fixes.contains(&"$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 0;"), "{report}");
    demo.append("backuppc/config.pl", &format!("{}\n", fixes.join("\n")));
    let (code, report) = check(&demo);
    assert_eq!(code, 0, "{report}");

    demo.register("linux:bob", BOB).code(0).stdout(predicate::str::starts_with("success\n"));
    assert!(demo.path("backuppc/pc-bob.example.org.pl").is_file());

    // Editing config.pl afterwards changes its identity: the cached verdict
    // no longer counts, and the same request is refused again.
    demo.append("backuppc/config.pl", "$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 1;\n");
    assert_refused(&demo, "linux:bob", BOB, "Could not register", "err");
    assert_eq!(check(&demo).0, 1);
}

#[test]
fn a_backuppc_without_config_pl_gets_no_registration() {
    let demo = Demo::new();
    fs::remove_file(demo.path("backuppc/config.pl")).unwrap();
    assert_refused(&demo, "linux:bob", BOB, "Could not register", "err");
    demo.assert_logged("err", BOB, "config.pl: cannot read BackupPC's configuration");
    let (code, report) = check(&demo);
    assert_eq!(code, 1, "{report}");
}

#[test]
fn help_of_check_names_what_it_checks() {
    let mut command = bpc_register();
    command.args(["check", "--help"]).env("COLUMNS", "100");
    let output = command.output().unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!("check_help", String::from_utf8(output.stdout).unwrap());
}

#[test]
fn help_explains_the_forced_command() {
    let mut command = bpc_register();
    command.arg("--help").env("COLUMNS", "100");
    let output = assert_cmd::Command::from_std(command)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("SSH_ORIGINAL_COMMAND"))
        .get_output()
        .clone();
    insta::assert_snapshot!("help", String::from_utf8(output.stdout).unwrap());
}

#[test]
fn version_prints_the_version() {
    let mut command = bpc_register();
    command.arg("--version");
    assert_cmd::Command::from_std(command)
        .assert()
        .code(0)
        .stdout(format!("bpc-register {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_registration_in_the_same_second_as_the_one_before_is_settled_after_the_answer() {
    let demo = Demo::new();
    let reloads = demo.path("reloads");
    let config = fs::read_to_string(demo.path("server.toml")).unwrap();
    let reload = format!("reload-command = [\"/bin/sh\", \"-c\", \"echo reload >> {}\"]", reloads.display());
    assert!(config.contains("reload-command = []"), "{config}");
    fs::write(demo.path("server.toml"), config.replace("reload-command = []", &reload)).unwrap();
    let names: String = (1..=50).map(|n| format!("127.0.2.{n}  burst-{n}.example.org\n")).collect();
    demo.append("hosts.static", &names);
    let seconds = || {
        let modified = fs::metadata(demo.path("backuppc/hosts")).unwrap().modified().unwrap();
        server::hosts_mtime::whole_seconds(modified)
    };

    // Registrations until one lands in the same second as the one before.
    let mut previous = seconds();
    let mut added = 0;
    let burst_second = loop {
        added += 1;
        assert!(added <= 50, "fifty registrations, each in a second of its own");
        demo.register("linux:bob", &connection_from(&format!("127.0.2.{added}"))).success();
        let now = seconds();
        if now == previous {
            break now;
        }
        previous = now;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let settled = loop {
        let count = fs::read_to_string(&reloads).unwrap_or_default().lines().count();
        if count == added + 1 && seconds() > burst_second {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let now = server::hosts_mtime::whole_seconds(std::time::SystemTime::now());
    assert!(
        settled,
        "no settle: mtime {} (burst {burst_second}), reloads:\n{}",
        seconds(),
        fs::read_to_string(&reloads).unwrap_or_default()
    );
    assert!(seconds() <= now + 1, "the mtime {} is ahead of the clock {now}", seconds());
}
