//! A host's owner, logged in to BackupPC's web page, tries to change the
//! ssh command BackupPC runs for her host: Debian's real CGI, as root.
//! Run with `flock /tmp/bpc-system.lock cargo test -p bpc-enroll --test owner_edits`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use protocol::{HostName, Logon};
use server::hostconfig::{HostConfig, SshSettings};
use std::fs;
use std::path::Path;
use testkit::backuppc::{BackupPc, give_to_backuppc};

const HOST: &str = "pc-alice.example.org";

/// What the owner posts: the form BackupPC's editor sends when she saves a
/// new `RsyncSshArgs` (`-e`, then her command) and a new `FullPeriod`.
const EDIT: &str = "action=editConfig&host=pc-alice.example.org&saveAction=Save\
    &override_RsyncSshArgs=1&v_zZ_RsyncSshArgs_zZ_0=-e&v_zZ_RsyncSshArgs_zZ_1=%2Fvar%2Ftmp%2Fevil\
    &override_FullPeriod=1&v_zZ_FullPeriod=3.5";

/// The values BackupPC reads from the host's config file, as Perl reads them.
fn host_values(backuppc: &BackupPc) -> (Vec<String>, String) {
    let path = backuppc.conf_dir().join(format!("{HOST}.pl"));
    let program = r#"our %Conf; my $f = shift; do $f or die "cannot load $f: $@ $!";
        print join("\n", $Conf{FullPeriod} // "unset", @{$Conf{RsyncSshArgs}}), "\n";"#;
    let output =
        std::process::Command::new("/usr/bin/perl").env_clear().arg("-e").arg(program).arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    let full_period = lines.next().unwrap();
    (lines.collect(), full_period)
}

/// BackupPC with `pc-alice.example.org` registered to alice, its config file
/// as bpc-register writes it.
fn registered(dir: &Path) -> (BackupPc, Vec<String>) {
    let backuppc = BackupPc::new(dir);
    let hosts = backuppc.conf_dir().join("hosts");
    fs::write(&hosts, format!("host dhcp user moreUsers\n{HOST} 0 alice\n")).unwrap();
    give_to_backuppc(&hosts);
    let host = HostName::parse(HOST).unwrap();
    let owner = Logon::parse("alice").unwrap();
    let ssh = SshSettings {
        account: "bckpciuem".into(),
        port: 22,
        identity: "/var/lib/backuppc/.ssh/id_ed25519".into(),
        known_hosts: None,
    };
    // An address, as with `connect-to = "address"`: BackupPC_dump then gets
    // as far as running the transfer without a DNS name for the host.
    let config = HostConfig { host: &host, owner: &owner, client_name_alias: "127.0.0.1", ssh: &ssh, pinned: None };
    let path = backuppc.conf_dir().join(format!("{HOST}.pl"));
    fs::write(&path, config.render()).unwrap();
    give_to_backuppc(&path);
    let (written, _) = host_values(&backuppc);
    assert!(
        matches!(written.as_slice(), [dash_e, command] if dash_e == "-e" && command.starts_with("$sshPath -l bckpciuem")),
        "{written:?}"
    );
    (backuppc, written)
}

fn requirements() -> Result<(), String> {
    testkit::require_root_and(&[
        "/usr/bin/perl",
        "/usr/bin/setpriv",
        "/usr/share/backuppc/lib/realindex.cgi",
        "/usr/share/backuppc/conf/config.pl",
    ])
}

#[test]
fn with_debians_stock_config_the_owner_rewrites_the_ssh_command() {
    if testkit::skip(module_path!(), requirements()) {
        return;
    }
    let base = testkit::base_dir("owner-edits-");
    let (mut backuppc, _) = registered(&base.path().join("bpc"));
    backuppc.allow_owners_debians_edits();
    assert!(!server::owner_edits::read(&backuppc.conf_dir()).unwrap().is_safe());

    let page = backuppc.cgi_post("alice", EDIT);
    assert!(page.status.success(), "{}", String::from_utf8_lossy(&page.stderr));
    let (ssh_args, full_period) = host_values(&backuppc);
    // This is the hole bpc-register now refuses to register into: the next
    // backup would run /var/tmp/evil as backuppc.
    assert_eq!(ssh_args, ["-e", "/var/tmp/evil"]);
    assert_eq!(full_period, "3.5");

    // And BackupPC_dump runs what she wrote. (The editor saves only what the
    // form holds, so she posts the transfer method too.)
    let marker_dir = base.path().join("marker");
    fs::create_dir(&marker_dir).unwrap();
    give_to_backuppc(&marker_dir);
    let evil = base.path().join("evil");
    fs::write(&evil, format!("#!/bin/sh\nid -un > {}/ran\nexit 1\n", marker_dir.display())).unwrap();
    fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let form = EDIT.replace("%2Fvar%2Ftmp%2Fevil", &url_encode(&evil.display().to_string()))
        + "&override_XferMethod=1&v_zZ_XferMethod=rsync";
    backuppc.cgi_post("alice", &form);
    assert_eq!(host_values(&backuppc).0, ["-e".to_owned(), evil.display().to_string()]);
    backuppc.start_daemon();
    let dump = backuppc.tool("BackupPC_dump", &["-v", "-f", HOST]);
    let ran = fs::read_to_string(marker_dir.join("ran")).unwrap_or_else(|_| {
        panic!("BackupPC_dump did not run the owner's command:\n{}", String::from_utf8_lossy(&dump.stdout))
    });
    assert_eq!(ran, "backuppc\n");
}

/// `text` as a form value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

#[test]
fn with_the_config_bpc_register_requires_the_owner_cannot_touch_the_ssh_command() {
    if testkit::skip(module_path!(), requirements()) {
        return;
    }
    let base = testkit::base_dir("owner-edits-");
    let (backuppc, written) = registered(&base.path().join("bpc"));
    backuppc.keep_owners_off_commands();

    let page = backuppc.cgi_post("alice", EDIT);
    assert!(page.status.success(), "{}", String::from_utf8_lossy(&page.stderr));
    let (ssh_args, full_period) = host_values(&backuppc);
    assert_eq!(ssh_args, written, "the owner changed RsyncSshArgs");
    // The same post did save what owners may still change: the editor works.
    assert_eq!(full_period, "3.5");
}

#[test]
fn with_the_editor_turned_off_the_owner_changes_nothing() {
    if testkit::skip(module_path!(), requirements()) {
        return;
    }
    let base = testkit::base_dir("owner-edits-");
    let (backuppc, written) = registered(&base.path().join("bpc"));
    backuppc.allow_owners_debians_edits();
    let config = backuppc.conf_dir().join("config.pl");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str("$Conf{CgiUserConfigEditEnable} = 0;\n");
    fs::write(&config, text).unwrap();
    assert!(server::owner_edits::read(&backuppc.conf_dir()).unwrap().is_safe());

    let page = backuppc.cgi_post("alice", EDIT);
    let html = String::from_utf8_lossy(&page.stdout);
    assert!(html.contains("Only privileged users can edit configuration settings"), "{html}");
    assert_eq!(host_values(&backuppc), (written, "unset".to_owned()));
}
