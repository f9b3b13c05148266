//! End to end: a machine enrolled over real OpenSSH is backed up and restored
//! by Debian's BackupPC 4 through rsyncsend. Runs as root (it creates a
//! system account and a sudo rule, and removes them again).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use assert_cmd::Command as TestCommand;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use testkit::backuppc::{BackupPc, give_to_backuppc};
use testkit::run;
use testkit::server_toml::{ServerToml, path, strings};
use testkit::sshd::{Sshd, keygen};

/// The tests here change the system (accounts, /etc/bpc-enroll, the setup
/// manifest): one at a time.
static SYSTEM: Mutex<()> = Mutex::new(());

/// The backup account the tests create; no real installation uses it.
const ACCOUNT: &str = "bpcetest";
const HOST: &str = "pc-test.example.org";
const MANIFEST: &str = "/var/lib/bpc-enroll/installed.toml";
const INSTALLED_CONFIG: &str = "/etc/bpc-enroll/client.toml";

/// bpc-enroll installed as an administrator would: a copy in a root-owned
/// folder (setup refuses to bind the backup key to a program others could
/// replace, and the build folder's parents are not ours to vouch for). Set
/// while a `SystemGuard` lives.
static PROGRAM: Mutex<Option<PathBuf>> = Mutex::new(None);

fn installed_program() -> PathBuf {
    PROGRAM.lock().unwrap_or_else(|p| p.into_inner()).clone().expect("only inside a SystemGuard")
}

fn bpc_enroll() -> TestCommand {
    let mut command = TestCommand::new(installed_program());
    command.env_clear().env("PATH", "/usr/bin:/bin").write_stdin("");
    command
}

/// The `bpc-register` built beside `bpc-enroll`.
fn bpc_register() -> PathBuf {
    testkit::bpc_register_beside(env!("CARGO_BIN_EXE_bpc-enroll"))
}

/// One test that changes the system, at a time: refuses to run on a machine
/// where bpc-enroll is really installed, gives the test its folder, and
/// removes what the test installed even when it fails half-way.
struct SystemGuard {
    dir: tempfile::TempDir,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl SystemGuard {
    fn new() -> SystemGuard {
        let one_at_a_time = SYSTEM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(!Path::new(MANIFEST).exists(), "{MANIFEST} exists: bpc-enroll is installed here; not touching it");
        let existing = nix::unistd::User::from_name(ACCOUNT).unwrap();
        assert!(existing.is_none(), "account {ACCOUNT} exists: a previous run did not clean up");
        let dir = Path::new("/var/lib/bpc-enroll-tests/bin");
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let program = dir.join("bpc-enroll");
        // BPC_ENROLL_UNDER_TEST: another build of bpc-enroll to install, such
        // as the one for client machines, built without the in-process server.
        let built = std::env::var_os("BPC_ENROLL_UNDER_TEST")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bpc-enroll")), PathBuf::from);
        fs::copy(&built, &program).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        *PROGRAM.lock().unwrap_or_else(|p| p.into_inner()) = Some(program);
        SystemGuard { dir: testkit::base_dir("run-"), _one_at_a_time: one_at_a_time }
    }

    /// The test's folder.
    fn base(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SystemGuard {
    fn drop(&mut self) {
        let _ = Command::new(installed_program()).arg("uninstall").output();
        if nix::unistd::User::from_name(ACCOUNT).ok().flatten().is_some() {
            let _ = Command::new("/usr/sbin/userdel").arg(ACCOUNT).output();
        }
        let _ = fs::remove_file(format!("/etc/sudoers.d/bpc-enroll-{ACCOUNT}"));
        let _ = fs::remove_file(OTHER_SUDOERS);
        // The test account's home, when a test made the account itself.
        let _ = fs::remove_dir_all(format!("/var/lib/{ACCOUNT}"));
        if let Some(program) = PROGRAM.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = fs::remove_file(program);
        }
    }
}

/// The server side: BackupPC, its keys, bpc-register's configuration and an
/// sshd that lets the register key run bpc-register as backuppc.
struct Server {
    backuppc: BackupPc,
    sshd: Sshd,
    register_key: PathBuf,
    config: PathBuf,
}

fn server(base: &Path, client_port: u16) -> Server {
    let mut backuppc = BackupPc::new(&base.join("bpc"));
    let ssh = backuppc.dir.join("ssh");
    keygen(&ssh.join("id_ed25519"), "backuppc@test");
    fs::write(ssh.join("known_hosts"), "").unwrap();
    for file in ["id_ed25519", "id_ed25519.pub", "known_hosts"] {
        give_to_backuppc(&ssh.join(file));
    }
    backuppc.start_daemon();

    let dir = base.join("server");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("users.toml"), "[users.alice]\nname = \"Alice\"\n").unwrap();
    fs::write(dir.join("hosts.static"), format!("127.0.0.1 {HOST}\n")).unwrap();
    let config = ServerToml::new()
        .backuppc("conf-dir", path(&backuppc.conf_dir()))
        .backuppc("url", "http://backup.example.org/backuppc/index.cgi?host={host}")
        .backuppc("key", path(&ssh.join("id_ed25519.pub")))
        .backuppc("known-hosts", path(&ssh.join("known_hosts")))
        .backuppc("account", ACCOUNT)
        .backuppc("client-port", i64::from(client_port))
        .backuppc("connect-to", "address")
        .backuppc("reload-command", strings(backuppc.reload_command()))
        .backuppc("delete-command", strings(backuppc.delete_command()))
        .set_in("log", "path", path(&backuppc.dir.join("log/register.log")))
        .write(&dir.join("server.toml"));
    for file in ["users.toml", "hosts.static"] {
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).unwrap();
    }

    let register_key = base.join("register_ed25519");
    keygen(&register_key, "register@test");
    let line = run(Command::new(bpc_register())
        .args(["authorized-keys", "--from", "127.0.0.1", "--key"])
        .arg(register_key.with_extension("pub"))
        .arg("--config")
        .arg(&config));
    let keys = base.join("server-sshd/keys");
    fs::create_dir_all(&keys).unwrap();
    fs::write(keys.join("backuppc"), line).unwrap();
    // Debian's backuppc account is locked (`!`): sshd accepts its keys with PAM only.
    let sshd = Sshd::start(
        &base.join("server-sshd"),
        &format!("UsePAM yes\nAllowUsers backuppc\nAuthorizedKeysFile {}/%u", keys.display()),
    );
    Server { backuppc, sshd, register_key, config }
}

/// The machine's own sshd, which lets only the backup account in.
fn client_sshd(base: &Path) -> Sshd {
    Sshd::start(&base.join("client-sshd"), &format!("UsePAM no\nAllowUsers {ACCOUNT}"))
}

/// The client's tree to back up: modes, an owner with no name, a symlink, and
/// a name with spaces and bytes that are not UTF-8.
fn make_tree(tree: &Path) {
    fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    fs::write(tree.join("plain.txt"), "plain\n").unwrap();
    fs::write(tree.join("secret"), "only root\n").unwrap();
    fs::set_permissions(tree.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(tree.join("sub/script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(tree.join("sub/script.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(tree.join("sub/owned"), "someone else's\n").unwrap();
    std::os::unix::fs::chown(tree.join("sub/owned"), Some(12345), Some(54321)).unwrap();
    let odd = tree.join(OsStr::from_bytes(b"name with spaces \xe9\xff"));
    fs::write(&odd, vec![0u8, 1, 2, 255]).unwrap();
    symlink("../plain.txt", tree.join("sub/link")).unwrap();
    fs::write(tree.join("sub/deeper/big.bin"), (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
}

/// Makes the test tree under `base` and, as the administrator would, makes it
/// the host's only share (scheduled backups off: the test runs them).
fn share_a_test_tree(server: &Server, base: &Path) -> PathBuf {
    let tree = base.join("tree");
    make_tree(&tree);
    let host_config = server.backuppc.conf_dir().join(format!("{HOST}.pl"));
    let mut text = fs::read_to_string(&host_config).unwrap();
    text.push_str(&format!("$Conf{{RsyncShareName}} = ['{}'];\n$Conf{{BackupsDisable}} = 1;\n", tree.display()));
    fs::write(&host_config, text).unwrap();
    tree
}

/// One entry of a tree: relative path, type, mode, owner, group, content
/// (or link target).
type Entry = (Vec<u8>, &'static str, u32, u32, u32, Vec<u8>);

/// Every entry below `root`, sorted.
fn describe(root: &Path) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
            let (kind, content) = if meta.file_type().is_symlink() {
                ("symlink", fs::read_link(&path).unwrap().as_os_str().as_bytes().to_vec())
            } else if meta.is_dir() {
                stack.push(path.clone());
                ("dir", Vec::new())
            } else {
                ("file", fs::read(&path).unwrap())
            };
            let mode = if meta.file_type().is_symlink() { 0 } else { meta.mode() & 0o7777 };
            entries.push((relative, kind, mode, meta.uid(), meta.gid(), content));
        }
    }
    entries.sort();
    entries
}

/// A client configuration that reaches the server on `port` with its host
/// key pinned, and sends `host_key` (the machine's sshd's public host key)
/// for BackupPC to pin; without one, the keys `sshd -T` names.
fn client_config(base: &Path, server: &Server, known_hosts_line: &str, port: u16, host_key: Option<&Path>) -> PathBuf {
    let dir = base.join("client");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("known_hosts"), known_hosts_line).unwrap();
    fs::copy(&server.register_key, dir.join("register_ed25519")).unwrap();
    let config = dir.join("client.toml");
    let host_keys = host_key.map(|path| format!("host-keys = [\"{}\"]\n", path.display())).unwrap_or_default();
    fs::write(
        &config,
        format!(
            "server = \"ssh://127.0.0.1:{port}\"\nregister-key = \"register_ed25519\"\nknown-hosts = \"known_hosts\"\n\
             account = \"{ACCOUNT}\"\ntimeout = 5\n{host_keys}"
        ),
    )
    .unwrap();
    config
}

/// The machine's sshd, the server and a client configuration that reaches it
/// over ssh, the server's host key pinned.
fn machine_and_server(base: &Path) -> (Sshd, Server, PathBuf) {
    let client_sshd = client_sshd(base);
    let server = server(base, client_sshd.port);
    let host_key = client_sshd.host_key_path();
    let config = client_config(base, &server, &server.sshd.known_hosts_line(), server.sshd.port, Some(&host_key));
    (client_sshd, server, config)
}

#[test]
fn an_enrolled_machine_is_backed_up_and_restored_by_backuppc_through_rsyncsend() {
    testkit::require!(testkit::system_requirements());
    let guard = SystemGuard::new();
    let base = guard.base();

    let (mut client_sshd, server, config) = machine_and_server(base);

    // Enrollment, as root, for real.
    let output = bpc_enroll().args(["setup", "--user", "alice", "--config"]).arg(&config).output().unwrap();
    assert!(output.status.success(), "setup failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("http://backup.example.org/backuppc/index.cgi?host={HOST}\n")
    );
    let keys = fs::read_to_string(format!("/var/lib/{ACCOUNT}/.ssh/authorized_keys")).unwrap();
    assert!(
        keys.starts_with(&format!(
            "from=\"127.0.0.1\",restrict,command=\"{} rsyncsend --config {INSTALLED_CONFIG}\" ssh-ed25519 ",
            installed_program().display()
        )),
        "{keys}"
    );
    let sudoers = fs::metadata(format!("/etc/sudoers.d/bpc-enroll-{ACCOUNT}")).unwrap();
    assert_eq!(sudoers.mode() & 0o777, 0o440);
    let hosts = fs::read_to_string(server.backuppc.conf_dir().join("hosts")).unwrap();
    assert!(hosts.ends_with(&format!("{HOST}\t0\talice\n")), "{hosts}");
    let register_log = fs::read_to_string(server.backuppc.dir.join("log/register.log")).unwrap();
    assert!(!register_log.contains("could not tell BackupPC to reload"), "{register_log}");
    // BackupPC's ssh trusts the machine's sshd host key sent at enrollment,
    // and never whatever answers first.
    let host_config = fs::read_to_string(server.backuppc.conf_dir().join(format!("{HOST}.pl"))).unwrap();
    assert!(host_config.contains("-o StrictHostKeyChecking=yes -o HostKeyAlias="), "{host_config}");
    assert!(!host_config.contains("accept-new"), "{host_config}");
    let pins = server.backuppc.conf_dir().join(format!("{HOST}.known_hosts"));
    let pinned_line = |key: &str| format!("{HOST} {key}\n");
    assert!(fs::read_to_string(&pins).unwrap().ends_with(&pinned_line(&client_sshd.host_key)));

    // Setup again changes nothing; status sees everything in place.
    let before = fs::read(format!("/var/lib/{ACCOUNT}/.ssh/authorized_keys")).unwrap();
    bpc_enroll().args(["setup", "--user", "alice", "--config"]).arg(&config).assert().success();
    assert_eq!(fs::read(format!("/var/lib/{ACCOUNT}/.ssh/authorized_keys")).unwrap(), before);
    let status = || {
        let output = bpc_enroll().args(["status", "--config"]).arg(&config).output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains(&format!("registered    ok      {HOST}, in the server's list of hosts\n")), "{stdout}");
        assert!(stdout.contains("owner         ok      alice\n"), "{stdout}");
        stdout
    };
    let stdout = status();
    assert!(stdout.ends_with("last backup   ok      none yet\n"), "{stdout}");

    // The administrator narrows the host's share to the test tree.
    let tree = share_a_test_tree(&server, base);

    server.backuppc.dump(HOST, "-f");
    fs::write(tree.join("plain.txt"), "changed after the full backup\n").unwrap();
    fs::write(tree.join("sub/new-file"), "new\n").unwrap();
    server.backuppc.dump(HOST, "-i");
    // Status reads the start of the incremental from what BackupPC wrote.
    let backups = fs::read_to_string(server.backuppc.dir.join(format!("top/pc/{HOST}/backups"))).unwrap();
    let incremental = backups.lines().find(|line| line.split('\t').nth(1) == Some("incr")).unwrap();
    let start = incremental.split('\t').nth(2).unwrap();
    let started = run(Command::new("/usr/bin/date").args(["-u", "-d", &format!("@{start}"), "+%Y-%m-%dT%H:%M:%SZ"]));
    assert!(status().ends_with(&format!("last backup   ok      started {}\n", started.trim())), "{backups}");
    let restored = base.join("restored");
    server.backuppc.restore(HOST, server.backuppc.newest_backup(HOST), &tree, &restored);
    assert_eq!(describe(&restored), describe(&tree));

    // The administrator sees when the incremental started, as BackupPC wrote it.
    let backups = fs::read_to_string(server.backuppc.dir.join(format!("top/pc/{HOST}/backups"))).unwrap();
    let incremental: Vec<&str> = backups.lines().last().unwrap().split('\t').collect();
    assert_eq!(incremental[1], "incr", "{backups}");
    let started = run(Command::new("/usr/bin/date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ", "-d"])
        .arg(format!("@{}", incremental[2])));
    let output = Command::new(bpc_register())
        .args(["hosts", "list", "--json", "--config"])
        .arg(&server.config)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listing}{}", String::from_utf8_lossy(&output.stderr));
    for field in [
        format!("\"host\": \"{HOST}\""),
        "\"owner\": \"alice\"".into(),
        format!("\"last-backup\": \"{}\"", started.trim()),
    ] {
        assert!(listing.contains(&field), "{field} not in {listing}");
    }

    // The machine is reinstalled: its sshd has a new host key, and the
    // next backup fails on the host key, as ssh says in the transfer log.
    let old_key = client_sshd.host_key.clone();
    client_sshd.replace_host_key();
    let output = server.backuppc.tool("BackupPC_dump", &["-v", "-i", HOST]);
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), server.backuppc.last_xfer_log(HOST));
    assert!(!said.contains("incr backup complete"), "{said}");
    assert!(said.contains("Host key verification failed"), "{said}");
    // The owner enrolls the machine again: the new key replaces the old,
    // journaled with both fingerprints and logged at notice.
    let output = bpc_enroll().args(["setup", "--user", "alice", "--config"]).arg(&config).output().unwrap();
    assert!(output.status.success(), "setup again failed: {}", String::from_utf8_lossy(&output.stderr));
    let fingerprint = |key: &str| {
        let file = base.join("key.pub");
        fs::write(&file, format!("{key}\n")).unwrap();
        let listed = run(Command::new("/usr/bin/ssh-keygen").arg("-lf").arg(&file));
        listed.split(' ').nth(1).unwrap().to_owned()
    };
    let (old_fingerprint, new_fingerprint) = (fingerprint(&old_key), fingerprint(&client_sshd.host_key));
    assert!(fs::read_to_string(&pins).unwrap().ends_with(&pinned_line(&client_sshd.host_key)));
    let journal = fs::read_to_string(server.backuppc.conf_dir().join("bpc-enroll-journal.jsonl")).unwrap();
    let last = journal.lines().last().unwrap();
    assert!(
        last.contains(&format!("\"host_keys\":[\"{new_fingerprint}\"],\"previous_host_keys\":[\"{old_fingerprint}\"]")),
        "{journal}"
    );
    let register_log = fs::read_to_string(server.backuppc.dir.join("log/register.log")).unwrap();
    assert!(
        register_log.lines().any(|line| line.starts_with("notice ")
            && line.contains(&format!(
                "host keys of {HOST} replaced for alice: was [{old_fingerprint}], now [{new_fingerprint}]"
            ))),
        "{register_log}"
    );
    server.backuppc.dump(HOST, "-i");

    // Removed with --purge: BackupPC's own BackupPC_backupDelete deletes both backups.
    let output = Command::new(bpc_register())
        .args(["hosts", "remove", HOST, "--purge", "--config"])
        .arg(&server.config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}{}\n{}", String::from_utf8_lossy(&output.stderr), server.backuppc.log());
    // Three backups: the full, the first incremental and the one after the
    // re-enrollment (BackupPC numbers on past the failed one).
    let deleted =
        said.split("BackupPC deleted its backups ").nth(1).and_then(|rest| rest.split_once(" (")).map(|(n, _)| n);
    assert_eq!(deleted.map(|numbers| numbers.split(", ").count()), Some(3), "{said}");
    // Nothing to warn about: the daemon was told to reload, as backuppc.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(
        server.backuppc.log().contains(&format!("Deleted host {HOST} from backup list")),
        "{}",
        server.backuppc.log()
    );
    let hosts = fs::read_to_string(server.backuppc.conf_dir().join("hosts")).unwrap();
    assert!(!hosts.contains(HOST), "{hosts}");
    assert!(!pins.exists(), "the pinned host keys outlived the host");
    let host_dir = server.backuppc.dir.join(format!("top/pc/{HOST}"));
    let left: Vec<String> =
        fs::read_dir(&host_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|name| name.parse::<u32>().is_ok()), "backups left in {}: {left:?}", host_dir.display());
    assert_eq!(fs::read_to_string(host_dir.join("backups")).unwrap_or_default(), "");

    // Uninstall removes exactly what setup added.
    bpc_enroll().arg("uninstall").assert().success();
    assert!(nix::unistd::User::from_name(ACCOUNT).unwrap().is_none());
    for gone in [
        MANIFEST.to_owned(),
        INSTALLED_CONFIG.to_owned(),
        format!("/etc/sudoers.d/bpc-enroll-{ACCOUNT}"),
        format!("/var/lib/{ACCOUNT}"),
    ] {
        assert!(!Path::new(&gone).exists(), "{gone} is still there");
    }
    drop(guard);
}

#[test]
fn backuppc_backs_up_and_restores_an_allowed_path_narrower_than_slash() {
    testkit::require!(testkit::system_requirements());
    let guard = SystemGuard::new();
    let base = guard.base();
    let (_client_sshd, server, config) = machine_and_server(base);
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!("allowed-paths = [\"{}\"]\n", base.display()));
    fs::write(&config, text).unwrap();
    bpc_enroll().args(["setup", "--user", "alice", "--config"]).arg(&config).assert().success();

    // BackupPC's own options, through sshd, sudo and the root stage's pin,
    // --confine-root and (on the restore) --drop-D and --chmod=ug-s.
    let tree = share_a_test_tree(&server, base);
    server.backuppc.dump(HOST, "-f");
    let restored = base.join("restored");
    server.backuppc.restore(HOST, server.backuppc.newest_backup(HOST), &tree, &restored);
    assert_eq!(describe(&restored), describe(&tree));
}

#[test]
fn a_changed_server_host_key_or_an_unreachable_server_changes_nothing() {
    testkit::require!(testkit::system_requirements());
    let guard = SystemGuard::new();
    let base = guard.base();
    let server = server(base, 22);

    let impostor = keygen(&base.join("impostor"), "impostor");
    let impostor = impostor.rsplit_once(' ').unwrap().0;
    let config =
        client_config(base, &server, &format!("[127.0.0.1]:{} {impostor}\n", server.sshd.port), server.sshd.port, None);
    bpc_enroll()
        .args(["setup", "--user", "alice", "--config"])
        .arg(&config)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("does not match the one pinned in"));
    assert_nothing_installed(&server);

    let closed = testkit::free_port();
    let config = client_config(base, &server, &server.sshd.known_hosts_line(), closed, None);
    bpc_enroll()
        .args(["setup", "--user", "alice", "--config"])
        .arg(&config)
        .assert()
        .code(3)
        .stderr(predicates::str::contains("cannot reach the server"));
    assert_nothing_installed(&server);
}

fn assert_nothing_installed(server: &Server) {
    assert!(nix::unistd::User::from_name(ACCOUNT).unwrap().is_none(), "the account was left behind");
    for path in [MANIFEST.to_owned(), INSTALLED_CONFIG.to_owned(), format!("/etc/sudoers.d/bpc-enroll-{ACCOUNT}")] {
        assert!(!Path::new(&path).exists(), "{path} was written");
    }
    let hosts = fs::read_to_string(server.backuppc.conf_dir().join("hosts")).unwrap();
    assert!(!hosts.contains(HOST), "the host was registered: {hosts}");
    let _ = &server.config;
}

/// A sudo rule of the account's that setup did not write.
const OTHER_SUDOERS: &str = "/etc/sudoers.d/bpcetest-other";

/// A password hash the old account had (of "an old password").
const OLD_HASH: &str =
    "$6$bpcetestsalt$1d8SaYVGLH3SmL3e3aSC0X19B0T3iEwcFz7Z6hfxl3JVzWTd2DTQ4bEQqf.Wk1kIG//etCnQs6cp7zlLMpShe0";

/// The account's line in /etc/shadow, as the system keeps it.
fn shadow_line() -> String {
    let shadow = fs::read_to_string("/etc/shadow").unwrap();
    shadow.lines().find(|line| line.starts_with(&format!("{ACCOUNT}:"))).unwrap().to_owned()
}

/// Setup against the in-process server of [`file_server`], with a client
/// configuration that names only the test's account.
struct FileSetup {
    url: String,
    config: PathBuf,
}

impl FileSetup {
    fn new(base: &Path) -> FileSetup {
        let config = base.join("client.toml");
        fs::write(&config, format!("account = \"{ACCOUNT}\"\n")).unwrap();
        FileSetup { url: file_server(base), config }
    }

    /// Runs `bpc-enroll setup --user USER EXTRA...` from 127.0.0.1.
    fn setup(&self, user: &str, extra: &[&str]) -> std::process::Output {
        bpc_enroll()
            .args(["setup", "--server", &self.url, "--client-ip", "127.0.0.1", "--user", user, "--config"])
            .arg(&self.config)
            .args(extra)
            .output()
            .unwrap()
    }
}

/// A server configuration for the in-process transport: no BackupPC daemon
/// needed to register.
fn file_server(base: &Path) -> String {
    let dir = base.join("file-server");
    fs::create_dir_all(dir.join("backuppc")).unwrap();
    fs::write(dir.join("backuppc/config.pl"), client::demo::BACKUPPC_CONFIG_PL).unwrap();
    keygen(&dir.join("id_ed25519"), "backuppc@test");
    fs::write(dir.join("users.toml"), "[users.alice]\nname = \"Alice\"\n").unwrap();
    fs::write(dir.join("hosts.static"), format!("127.0.0.1 {HOST}\n")).unwrap();
    ServerToml::new()
        .backuppc("key", "id_ed25519.pub")
        .backuppc("account", ACCOUNT)
        .remove("log")
        .write(&dir.join("server.toml"));
    format!("file://{}", dir.join("server.toml").display())
}

/// Runs `program args` as the backup account (its own group, no others).
fn as_account(program: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let account = nix::unistd::User::from_name(ACCOUNT).unwrap().unwrap();
    TestCommand::new("/usr/bin/setpriv")
        .arg(format!("--reuid={}", account.uid))
        .arg(format!("--regid={}", account.gid))
        .args(["--clear-groups", "--", program])
        .args(args)
        .env_clear()
        .write_stdin(stdin)
        .output()
        .unwrap()
}

/// Logs in as the backup account with `key` and asks for `id`.
fn ssh_as_account(sshd: &Sshd, key: &Path) -> std::process::Output {
    Command::new("/usr/bin/ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-p", &sshd.port.to_string(), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .args(["-l", ACCOUNT, "127.0.0.1", "id"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

#[test]
fn an_account_setup_did_not_make_is_refused_then_taken_over_without_its_keys() {
    testkit::require!(testkit::system_requirements());
    let guard = SystemGuard::new();
    let base = guard.base();
    let trial = FileSetup::new(base);
    let setup = |user: &str, extra: &[&str]| trial.setup(user, extra);

    // The account as the old shell setup left it: a password, a home, .ssh
    // and authorized_keys all its own, and a key that may run anything.
    let home = PathBuf::from(format!("/var/lib/{ACCOUNT}"));
    run(Command::new("/usr/sbin/useradd")
        .args(["--system", "--user-group", "--shell", "/bin/sh", "--password", OLD_HASH, "--home-dir"])
        .arg(&home)
        .arg(ACCOUNT));
    let account = nix::unistd::User::from_name(ACCOUNT).unwrap().unwrap();
    let (uid, gid) = (account.uid.as_raw(), account.gid.as_raw());
    let keys = home.join(".ssh/authorized_keys");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700)).unwrap();
    let intruder = base.join("intruder");
    let intruder_key = keygen(&intruder, "intruder@laptop");
    fs::write(&keys, format!("{intruder_key}\n")).unwrap();
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o600)).unwrap();
    for path in [&home, &home.join(".ssh"), &keys] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
    let sshd = client_sshd(base);
    let login = ssh_as_account(&sshd, &intruder);
    assert!(login.status.success(), "the intruder's key should work before setup: {login:?}");
    // sshd's session process ends just after the client: setup refuses to
    // take over an account that still runs something.
    for uid_kind in ["--euid", "--uid"] {
        let _ = Command::new("/usr/bin/pidwait").args([uid_kind, ACCOUNT]).status();
    }
    let shadow_before = shadow_line();
    let keys_before = fs::read(&keys).unwrap();
    let unchanged = || {
        assert_eq!(shadow_line(), shadow_before, "/etc/shadow changed");
        assert_eq!(fs::read(&keys).unwrap(), keys_before, "authorized_keys changed");
        for path in [&home, &home.join(".ssh"), &keys] {
            assert_eq!(fs::metadata(path).unwrap().uid(), uid, "{} changed owner", path.display());
        }
        for path in [MANIFEST.to_owned(), INSTALLED_CONFIG.to_owned(), format!("/etc/sudoers.d/bpc-enroll-{ACCOUNT}")] {
            assert!(!Path::new(&path).exists(), "{path} was written");
        }
    };

    // Without the person's word, setup refuses and says what to do.
    let refused = setup("alice", &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not make it") && stderr.contains("--take-over-account"), "{stderr}");
    unchanged();

    // An account that cannot be made safe is refused even with it.
    run(Command::new("/usr/sbin/usermod").args(["--shell", "/usr/sbin/nologin", ACCOUNT]));
    let refused = setup("alice", &["--take-over-account"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has the shell `/usr/sbin/nologin`"), "{stderr}");
    run(Command::new("/usr/sbin/usermod").args(["--shell", "/bin/sh", ACCOUNT]));
    fs::write(OTHER_SUDOERS, format!("{ACCOUNT} ALL=(root) NOPASSWD: /usr/bin/id\n")).unwrap();
    fs::set_permissions(OTHER_SUDOERS, fs::Permissions::from_mode(0o440)).unwrap();
    let refused = setup("alice", &["--take-over-account"]);
    fs::remove_file(OTHER_SUDOERS).unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has sudo rules already"), "{stderr}");
    let mut lurker = Command::new("/usr/bin/setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into(), "--".into()])
        .args(["/bin/sh", "-c", "echo started; exec /usr/bin/sleep infinity"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It prints once it runs as the account.
    let mut started = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(lurker.stdout.take().unwrap()), &mut started).unwrap();
    assert_eq!(started, "started\n");
    let refused = setup("alice", &["--take-over-account"]);
    lurker.kill().unwrap();
    lurker.wait().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a running process"), "{stderr}");
    unchanged();

    // With it, a registration the server refuses still changes nothing.
    let refused = setup("mallory", &["--take-over-account"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad user request"), "{stderr}");
    unchanged();

    // A registration that succeeds takes the account over and says what it removed.
    let taken = setup("alice", &["--take-over-account"]);
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(taken.status.success(), "{stderr}");
    let fingerprint = run(Command::new("/usr/bin/ssh-keygen").arg("-lf").arg(intruder.with_extension("pub")));
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap();
    assert!(stderr.contains(&format!("removed from {}: ssh-ed25519 {fingerprint}", keys.display())), "{stderr}");
    assert!(stderr.contains("disabled the password"), "{stderr}");
    assert_eq!(shadow_line().split(':').nth(1), Some("*"));

    // The intruder's key no longer logs in; the account cannot add one back.
    let login = ssh_as_account(&sshd, &intruder);
    assert!(!login.status.success(), "the intruder's key still logs in: {login:?}");
    let text = fs::read_to_string(&keys).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("restrict,command=\"") && !text.contains("intruder"), "{text}");
    for (path, mode) in [(&home, 0o750), (&home.join(".ssh"), 0o750), (&keys, 0o640)] {
        let meta = fs::symlink_metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (0, gid, mode), "{}", path.display());
    }
    let keys_text = keys.to_str().unwrap();
    let line = format!("{intruder_key}\n");
    assert!(!as_account("/usr/bin/tee", &["-a", keys_text], &line).status.success(), "the account wrote its keys");
    let keys2 = home.join(".ssh/authorized_keys2");
    let keys2_text = keys2.to_str().unwrap();
    assert!(!as_account("/usr/bin/tee", &[keys2_text], &line).status.success(), "the account added a keys file");
    let moved = home.join("ssh-moved");
    let ssh_dir = home.join(".ssh");
    let moved_ok = as_account("/usr/bin/mv", &[ssh_dir.to_str().unwrap(), moved.to_str().unwrap()], "");
    assert!(!moved_ok.status.success(), "the account moved its .ssh away");
    assert!(as_account("/usr/bin/cat", &[keys_text], "").status.success(), "the account cannot read its keys");
    assert_eq!(fs::read_to_string(&keys).unwrap(), text);
    assert!(!ssh_as_account(&sshd, &intruder).status.success());

    // Setup made it its own now: running again needs no option and changes nothing.
    let again = setup("alice", &[]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(!String::from_utf8_lossy(&again.stderr).contains("took over"));
    assert_eq!(fs::read_to_string(&keys).unwrap(), text);
}

/// The account's line in /etc/passwd.
fn passwd_shell() -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|line| line.starts_with(&format!("{ACCOUNT}:"))).unwrap();
    line.rsplit(':').next().unwrap().to_owned()
}

/// Logs in with the backup key as BackupPC would and asks for what
/// rsyncsend refuses: the login itself is what is tested.
fn backup_login(sshd: &Sshd, key: &Path) -> String {
    let output = ssh_as_account(sshd, key);
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(said.contains("bpc-enroll rsyncsend: refused"), "the backup key did not reach rsyncsend: {output:?}");
    said
}

#[test]
fn a_taken_over_account_runs_no_start_up_file_at_a_backup_connection() {
    testkit::require!(testkit::system_requirements());
    let guard = SystemGuard::new();
    let base = guard.base();
    let trial = FileSetup::new(base);
    let backup_key = base.join("file-server/id_ed25519");
    let setup = || trial.setup("alice", &["--take-over-account"]);

    // Its former controller gave it bash and left a .bashrc, which Debian's
    // bash reads whenever sshd starts it, forced command or not.
    let home = PathBuf::from(format!("/var/lib/{ACCOUNT}"));
    run(Command::new("/usr/sbin/useradd")
        .args(["--system", "--user-group", "--shell", "/bin/bash", "--password", "*", "--home-dir"])
        .arg(&home)
        .arg(ACCOUNT));
    let account = nix::unistd::User::from_name(ACCOUNT).unwrap().unwrap();
    let (uid, gid) = (account.uid.as_raw(), account.gid.as_raw());
    let marks = base.join("marks");
    fs::create_dir_all(&marks).unwrap();
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&marks, Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    let bashrc = home.join(".bashrc");
    let mark = marks.join("bashrc-ran");
    fs::write(&bashrc, format!("/usr/bin/id -u > {}\n", mark.display())).unwrap();
    std::os::unix::fs::chown(&bashrc, Some(uid), Some(gid)).unwrap();
    let sshd = client_sshd(base);

    let taken = setup();
    let stderr = String::from_utf8_lossy(&taken.stderr);
    if taken.status.success() {
        backup_login(&sshd, &backup_key);
    }
    assert!(!mark.exists(), "the planted .bashrc ran as the account at a backup connection: {stderr}");
    assert_eq!(taken.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&bashrc.display().to_string()) && stderr.contains("remove them or move them"), "{stderr}");
    assert_eq!(passwd_shell(), "/bin/bash", "the refused setup changed the shell");
    assert_eq!(fs::metadata(&home).unwrap().uid(), uid, "the refused setup changed the home");
    assert!(!Path::new(MANIFEST).exists());

    // What sshd reads for the account elsewhere, or something of its own
    // that systemd would start, is refused in the same way.
    let linger_dir = Path::new("/var/lib/systemd/linger");
    let made_linger_dir = !linger_dir.exists();
    fs::create_dir_all(linger_dir).unwrap();
    fs::write(linger_dir.join(ACCOUNT), "").unwrap();
    fs::remove_file(&bashrc).unwrap();
    let refused = setup();
    fs::remove_file(linger_dir.join(ACCOUNT)).unwrap();
    if made_linger_dir {
        fs::remove_dir(linger_dir).unwrap();
    }
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("systemd lingering"), "{stderr}");
    assert!(!Path::new(MANIFEST).exists());

    // Once the home holds nothing of its own, the take-over gives it /bin/sh.
    let taken = setup();
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(taken.status.success(), "{stderr}");
    assert!(stderr.contains("set the shell of bpcetest to /bin/sh"), "{stderr}");
    assert_eq!(passwd_shell(), "/bin/sh");

    // /bin/sh reads no start-up file for the forced command, wherever it comes from.
    for name in [".bashrc", ".profile", ".bash_profile", ".bash_login", ".shrc"] {
        fs::write(home.join(name), format!("/usr/bin/id -u > {}\n", marks.join(name).display())).unwrap();
    }
    backup_login(&sshd, &backup_key);
    let ran: Vec<_> = fs::read_dir(&marks).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(ran.is_empty(), "start-up files ran at a backup connection: {ran:?}");
    for name in [".bashrc", ".profile", ".bash_profile", ".bash_login", ".shrc"] {
        fs::remove_file(home.join(name)).unwrap();
    }
}

#[test]
fn an_installed_client_config_someone_else_can_change_makes_setup_refuse_and_change_nothing() {
    testkit::require!(testkit::system_requirements());
    let guard = SystemGuard::new();
    let base = guard.base();
    let trial = FileSetup::new(base);
    let installed = Path::new(INSTALLED_CONFIG);
    let folder = installed.parent().unwrap();
    assert!(!folder.exists(), "{} exists: not touching it", folder.display());
    fs::create_dir(folder).unwrap();
    let _remove_folder = RemoveOnDrop(folder.to_owned());
    fs::set_permissions(folder, fs::Permissions::from_mode(0o755)).unwrap();
    // Whoever can write it decides what rsyncsend as root may read and write.
    let text = format!("account = \"{ACCOUNT}\"\nallowed-paths = [\"/\"]\nallow-restore = true\n");
    fs::write(installed, &text).unwrap();
    let set_mode = |path: &Path, mode: u32| fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let cases: [Spoiling<'_>; 3] = [
        ("a group-writable file", Box::new(|| set_mode(installed, 0o664)), Box::new(|| set_mode(installed, 0o644))),
        (
            "a file owned by a user",
            Box::new(|| std::os::unix::fs::chown(installed, Some(4242), None).unwrap()),
            Box::new(|| std::os::unix::fs::chown(installed, Some(0), None).unwrap()),
        ),
        ("a group-writable folder", Box::new(|| set_mode(folder, 0o775)), Box::new(|| set_mode(folder, 0o755))),
    ];
    for (what, spoil, mend) in cases {
        spoil();
        let refused = trial.setup("alice", &[]);
        // rsyncsend as root refuses it too, before reading it.
        let rsyncsend = bpc_enroll()
            .args(["rsyncsend", "--config", INSTALLED_CONFIG])
            .env("SSH_ORIGINAL_COMMAND", "rsync --server --sender -slHogDtprxe.iLsfxC . /etc/")
            .output()
            .unwrap();
        mend();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains("can be changed by someone other than root"), "{what}: {stderr}");
        assert!(nix::unistd::User::from_name(ACCOUNT).unwrap().is_none(), "{what}: the account was created");
        for path in [MANIFEST.to_owned(), format!("/etc/sudoers.d/bpc-enroll-{ACCOUNT}")] {
            assert!(!Path::new(&path).exists(), "{what}: {path} was written");
        }
        assert_eq!(fs::read_to_string(installed).unwrap(), text);
        let said = String::from_utf8_lossy(&rsyncsend.stderr);
        assert!(!rsyncsend.status.success(), "{what}: rsyncsend as root trusted it: {said}");
        assert!(said.contains("can be changed by someone other than root"), "{what}: {said}");
    }
}

/// A folder a test made, removed with what it holds even when the test fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A way to let someone other than root change a file, and the way back.
type Spoiling<'a> = (&'static str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);
