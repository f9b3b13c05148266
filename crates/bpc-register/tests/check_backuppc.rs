//! A registration lost to BackupPC's own web host editor, found and put
//! back by `bpc-register check --fix --yes`: Debian's real CGI saves the
//! Hosts page it showed before the registration landed, and BackupPC's own
//! Perl reads the result. As root, with the backuppc package:
//! `CI=true flock /tmp/bpc-system.lock cargo test -p bpc-register --test check_backuppc`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::backuppc::{BackupPc, form_encode};
use testkit::server_toml::{ServerToml, path};

fn requirements() -> Result<(), String> {
    testkit::require_root_and(&[
        "/usr/bin/perl",
        "/usr/bin/setpriv",
        "/usr/share/backuppc/lib/realindex.cgi",
        "/usr/share/backuppc/conf/config.pl",
    ])
}

/// bpc-register's side: its configuration beside BackupPC's folder,
/// readable by backuppc, and the program itself where backuppc can run it.
struct Register {
    program: PathBuf,
    config: PathBuf,
}

impl Register {
    fn new(dir: &Path, backuppc: &BackupPc) -> Register {
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let program = dir.join("bpc-register");
        fs::copy(env!("CARGO_BIN_EXE_bpc-register"), &program).unwrap();
        let key = testkit::sshd::keygen(&dir.join("backuppc_key"), "backuppc@test");
        assert!(key.starts_with("ssh-ed25519 "));
        fs::write(dir.join("users.toml"), "[users.alice]\nname = \"Alice\"\n[users.bob]\nname = \"Bob\"\n").unwrap();
        fs::write(dir.join("hosts.static"), "127.0.0.2 pc-alice.example.org\n127.0.0.3 pc-bob.example.org\n").unwrap();
        let config = ServerToml::new()
            .backuppc("conf-dir", path(&backuppc.conf_dir()))
            .table("log", [("kind", "file".into()), ("path", path(&backuppc.conf_dir().join("register.log")))])
            .write(&dir.join("server.toml"));
        for file in ["users.toml", "hosts.static", "backuppc_key.pub"] {
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).unwrap();
        }
        Register { program, config }
    }

    /// `OS:logon` from `ip`, as sshd runs the forced command: as backuppc.
    fn register(&self, request: &str, ip: &str) -> Output {
        Command::new("/usr/bin/setpriv")
            .args(["--reuid=backuppc", "--regid=backuppc", "--init-groups", "--", "/usr/bin/env", "-i"])
            .arg(format!("SSH_ORIGINAL_COMMAND={request}"))
            .arg(format!("SSH_CONNECTION={ip} 50000 127.0.0.1 22"))
            .arg(&self.program)
            .arg("--config")
            .arg(&self.config)
            .env_clear()
            .output()
            .unwrap()
    }

    /// `bpc-register check ARGS`, as the administrator runs it: as root.
    fn check(&self, args: &[&str]) -> (i32, String) {
        let output =
            Command::new(&self.program).arg("--config").arg(&self.config).arg("check").args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    }
}

fn owners(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(host, owner)| ((*host).to_owned(), (*owner).to_owned())).collect()
}

#[test]
fn a_registration_dropped_by_backuppcs_host_editor_is_found_and_put_back() {
    if testkit::skip(module_path!(), requirements()) {
        return;
    }
    let base = testkit::base_dir("check-cgi-");
    let backuppc = BackupPc::new(&base.path().join("bpc"));
    let register = Register::new(&base.path().join("server"), &backuppc);
    let registered = register.register("linux:alice", "127.0.0.2");
    assert!(registered.status.success(), "{registered:?}");

    // The administrator opens the Hosts page of BackupPC's configuration
    // editor: it shows alice's host.
    let mut form = backuppc.cgi_form("backuppc", "action=editConfig&newMenu=hosts", "editForm");
    let shown: Vec<&str> =
        form.iter().filter(|(name, _)| name.starts_with("v_zZ_Hosts_zZ_")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(shown, ["pc-alice.example.org", "alice", ""], "the page shows alice's host");

    // Meanwhile bob registers his machine.
    let registered = register.register("linux:bob", "127.0.0.3");
    assert!(registered.status.success(), "{registered:?}");
    assert_eq!(
        backuppc.hosts_as_backuppc_reads(),
        owners(&[("pc-alice.example.org", "alice"), ("pc-bob.example.org", "bob")])
    );

    // The administrator saves the page as it was shown.
    for (name, value) in &mut form {
        if name == "saveAction" {
            *value = "Save".into();
        }
    }
    let saved = backuppc.cgi_post("backuppc", &form_encode(&form));
    assert!(saved.status.success(), "the CGI failed: {}", String::from_utf8_lossy(&saved.stderr));
    let page = String::from_utf8_lossy(&saved.stdout);
    assert!(!page.contains("No save due to errors"), "the CGI did not save:\n{page}");
    assert_eq!(
        backuppc.hosts_as_backuppc_reads(),
        owners(&[("pc-alice.example.org", "alice")]),
        "BackupPC's editor wrote back the list it showed, without bob's host:\n{}",
        fs::read_to_string(backuppc.conf_dir().join("hosts")).unwrap()
    );
    assert!(backuppc.conf_dir().join("pc-bob.example.org.pl").exists(), "bob's config stays");

    let (code, report) = register.check(&[]);
    assert_eq!(code, 1, "{report}");
    assert!(
        report
            .lines()
            .any(|line| line.starts_with("problem: pc-bob.example.org is registered to bob in the journal (added ")
                && line.contains("but has no line in hosts")),
        "{report}"
    );
    let (code, report) = register.check(&["--fix", "--yes"]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.lines().any(|line| line
            == "fixed: added pc-bob.example.org back to hosts, owned by bob as the journal says, journaled as `restored`"),
        "{report}"
    );
    let (code, report) = register.check(&[]);
    assert_eq!(code, 0, "{report}");

    assert_eq!(
        backuppc.hosts_as_backuppc_reads(),
        owners(&[("pc-alice.example.org", "alice"), ("pc-bob.example.org", "bob")]),
        "BackupPC reads bob's host as his again"
    );
    let hosts = backuppc.conf_dir().join("hosts");
    let (uid, gid) = testkit::backuppc::backuppc_ids();
    let meta = fs::metadata(&hosts).unwrap();
    assert_eq!(
        (std::os::unix::fs::MetadataExt::uid(&meta), std::os::unix::fs::MetadataExt::gid(&meta)),
        (uid, gid),
        "hosts keeps BackupPC's owner when root repairs it"
    );
    // bob registering again is a confirmation of his own host.
    let again = register.register("linux:bob", "127.0.0.3");
    assert!(again.status.success(), "{again:?}");
}

/// The number of registrations in the race below, and of processes.
const RACING_REGISTRATIONS: usize = 200;
const RACING_CLIENTS: usize = 16;

#[test]
fn registrations_racing_backuppcs_host_editor_are_all_kept_or_put_back_and_none_doubled() {
    if testkit::skip(module_path!(), requirements()) {
        return;
    }
    let base = testkit::base_dir("race-cgi-");
    let backuppc = BackupPc::new(&base.path().join("bpc"));
    let register = Register::new(&base.path().join("server"), &backuppc);
    // One machine per registration, each with its own address and name.
    let machines: Vec<(String, String)> = (0..RACING_REGISTRATIONS)
        .map(|n| (format!("127.0.{}.{}", 10 + n / 200, 1 + n % 200), format!("pc-{n:03}.example.org")))
        .collect();
    let statics: String = machines.iter().map(|(ip, name)| format!("{ip} {name}\n")).collect();
    fs::write(base.path().join("server/hosts.static"), statics).unwrap();

    let done = std::sync::atomic::AtomicBool::new(false);
    let (saves, answers) = std::thread::scope(|scope| {
        // The administrator saves the Hosts page again and again, each time
        // as it was shown a moment before.
        let editor = scope.spawn(|| {
            let mut saves = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) && saves < 500 {
                let mut form = backuppc.cgi_form("backuppc", "action=editConfig&newMenu=hosts", "editForm");
                for (name, value) in &mut form {
                    if name == "saveAction" {
                        *value = "Save".into();
                    }
                }
                let saved = backuppc.cgi_post("backuppc", &form_encode(&form));
                assert!(saved.status.success(), "the CGI failed: {}", String::from_utf8_lossy(&saved.stderr));
                saves += 1;
            }
            saves
        });
        let clients: Vec<_> = machines
            .chunks(RACING_REGISTRATIONS.div_ceil(RACING_CLIENTS))
            .map(|chunk| {
                let register = &register;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(ip, name)| (name.clone(), register.register("linux:alice", ip)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let answers: Vec<(String, Output)> = clients.into_iter().flat_map(|client| client.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (editor.join().unwrap(), answers)
    });
    for (name, output) in &answers {
        assert!(output.status.success(), "{name}: {output:?}");
    }
    assert!(saves > 0, "the editor never saved during the race");

    let hosts = backuppc.conf_dir().join("hosts");
    let lost = RACING_REGISTRATIONS - backuppc.hosts_as_backuppc_reads().len();
    eprintln!("{saves} saves of the Hosts page; {lost} registrations lost by the editor before the repair");
    let (code, report) = register.check(&["--fix", "--yes"]);
    assert!(code == 0, "{report}");
    let (code, report) = register.check(&[]);
    assert_eq!(code, 0, "after the repair: {report}");

    let expected: BTreeMap<String, String> = machines.iter().map(|(_, name)| (name.clone(), "alice".into())).collect();
    assert_eq!(backuppc.hosts_as_backuppc_reads(), expected, "every registration is in hosts, alice's");
    let text = fs::read_to_string(&hosts).unwrap();
    for (_, name) in &machines {
        let lines = text.lines().filter(|line| line.split_whitespace().next() == Some(name.as_str())).count();
        assert_eq!(lines, 1, "{name} has {lines} lines:\n{text}");
    }
}
