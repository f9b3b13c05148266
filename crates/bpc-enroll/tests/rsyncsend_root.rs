//! rsyncsend as root with real rsync: a local rsync client whose `-e` is a
//! small script playing sshd (it puts the remote command in
//! `SSH_ORIGINAL_COMMAND` and runs `bpc-enroll rsyncsend --config ...`).
//! Each test plays an attacker against `allowed-paths` narrower than `/`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A local user who owns a home folder and plants symlinks in it.
const ALICE: u32 = 24680;

fn requirements() -> Result<(), String> {
    testkit::require_root_and(&["/usr/bin/rsync", "/usr/bin/unshare", "/usr/bin/mknod", "/usr/sbin/visudo"])
}

macro_rules! require_root {
    () => {
        if testkit::skip(module_path!(), requirements()) {
            return;
        }
    };
}

/// A machine in a folder: `home/alice` (owned by a user), `outside` (a
/// secret and root's keys), and a client configuration allowing `home`.
struct Machine {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

impl Machine {
    fn new(allowed: &str, allow_restore: bool) -> Machine {
        let dir = testkit::base_dir("rsyncsend-");
        let base = dir.path().canonicalize().unwrap();
        fs::create_dir_all(base.join("home/alice")).unwrap();
        std::os::unix::fs::chown(base.join("home/alice"), Some(ALICE), Some(ALICE)).unwrap();
        fs::create_dir_all(base.join("outside/.ssh")).unwrap();
        fs::write(base.join("outside/shadow"), "root:$6$secret\n").unwrap();
        fs::set_permissions(base.join("outside/shadow"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(base.join("outside/.ssh/authorized_keys"), "ssh-ed25519 AAAA root's own\n").unwrap();
        let allowed = allowed.replace("BASE", base.to_str().unwrap());
        fs::write(base.join("client.toml"), format!("allow-restore = {allow_restore}\nallowed-paths = [{allowed}]\n"))
            .unwrap();
        let ssh = base.join("fake-ssh");
        fs::write(
            &ssh,
            format!(
                "#!/bin/sh\n# Plays sshd: drops the host, runs the forced command with the remote command.\nshift\n\
                 exec /usr/bin/env -i SSH_CONNECTION='127.0.0.1 40000 127.0.0.1 22' SSH_ORIGINAL_COMMAND=\"$*\" \
                 {program} rsyncsend --config {config}\n",
                program = env!("CARGO_BIN_EXE_bpc-enroll"),
                config = base.join("client.toml").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
        Machine { _dir: dir, base }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }

    /// A symlink planted by alice (owned by her).
    fn alice_symlink(&self, target: &str, at: &str) {
        symlink(self.path(target), self.path(at)).unwrap();
        std::os::unix::fs::lchown(self.path(at), Some(ALICE), Some(ALICE)).unwrap();
    }

    /// The local rsync client, as BackupPC's side: `rsync OPTIONS -e fake-ssh FROM TO`.
    fn rsync(&self, options: &[&str], from: &str, to: &str) -> Output {
        Command::new("/usr/bin/rsync")
            .args(options)
            .arg("-e")
            .arg(self.path("fake-ssh"))
            .args([from, to])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }

    /// A backup of `remote` (below the machine's folder) into `local`.
    fn backup(&self, options: &[&str], remote: &str, local: &str) -> Output {
        self.rsync(options, &format!("h:{}", self.path(remote).display()), self.path(local).to_str().unwrap())
    }

    /// A restore of `local` into `remote`.
    fn restore(&self, options: &[&str], local: &str, remote: &str) -> Output {
        let remote = format!("h:{}", self.path(remote).display());
        self.rsync(options, &format!("{}/", self.path(local).display()), &remote)
    }
}

fn said(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

const HOME: &str = "\"BASE/home\"";
const EVERYTHING: &str = "\"/\"";

#[test]
fn a_backup_through_a_users_symlink_reads_nothing_outside_the_allowed_paths() {
    require_root!();
    let machine = Machine::new(HOME, false);
    machine.alice_symlink("outside", "home/alice/link");
    let output = machine.backup(&["-rlptgoD", "--numeric-ids"], "home/alice/link/", "got");
    assert!(!machine.path("got/shadow").exists(), "the backup read outside /home: {}", said(&output));
    assert!(said(&output).contains("outside the allowed paths"), "{}", said(&output));
    // The same path with the link's target inside the allowed paths works.
    fs::create_dir_all(machine.path("home/alice/docs")).unwrap();
    fs::write(machine.path("home/alice/docs/notes"), "mine\n").unwrap();
    machine.alice_symlink("home/alice/docs", "home/alice/inside");
    let output = machine.backup(&["-rlptgoD", "--numeric-ids"], "home/alice/inside/", "mine");
    assert!(output.status.success(), "{}", said(&output));
    assert_eq!(fs::read_to_string(machine.path("mine/notes")).unwrap(), "mine\n");
}

#[test]
fn a_restore_through_a_root_owned_symlink_writes_nothing_outside_the_allowed_paths() {
    require_root!();
    let machine = Machine::new(HOME, true);
    // A symlink owned by root, as a restore with --owner leaves one: rsync's
    // own ownership walk trusts it, the resolution here does not.
    symlink(machine.path("outside/.ssh"), machine.path("home/alice/link")).unwrap();
    fs::create_dir_all(machine.path("payload")).unwrap();
    fs::write(machine.path("payload/authorized_keys"), "ssh-ed25519 AAAA attacker\n").unwrap();
    let output = machine.restore(&["-rlptgoD", "--numeric-ids"], "payload", "home/alice/link/");
    let keys = fs::read_to_string(machine.path("outside/.ssh/authorized_keys")).unwrap();
    assert_eq!(keys, "ssh-ed25519 AAAA root's own\n", "the restore wrote outside /home: {}", said(&output));
    assert!(said(&output).contains("outside the allowed paths"), "{}", said(&output));
}

#[test]
fn symlink_following_letters_are_refused_for_a_narrow_path() {
    require_root!();
    let machine = Machine::new(HOME, false);
    machine.alice_symlink("outside", "home/alice/link");
    for letters in ["-rL", "-rlk"] {
        let output = machine.backup(&[letters, "--numeric-ids"], "home/alice/", "got");
        assert!(!machine.path("got/link/shadow").exists(), "{letters} read outside /home: {}", said(&output));
        assert!(said(&output).contains("refused when allowed-paths is narrower than /"), "{}", said(&output));
    }
}

#[test]
fn a_restore_into_a_narrow_path_creates_no_setuid_file_and_no_device_but_one_into_slash_does() {
    require_root!();
    for (allowed, whole_machine) in [(HOME, false), (EVERYTHING, true)] {
        let machine = Machine::new(allowed, true);
        let payload = machine.path("payload");
        fs::create_dir_all(&payload).unwrap();
        fs::copy("/bin/sh", payload.join("rootshell")).unwrap();
        fs::set_permissions(payload.join("rootshell"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::write(payload.join("group-tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(payload.join("group-tool"), fs::Permissions::from_mode(0o2755)).unwrap();
        testkit::run(Command::new("/usr/bin/mknod").arg(payload.join("disk")).args(["b", "7", "0"]));
        fs::set_permissions(payload.join("disk"), fs::Permissions::from_mode(0o666)).unwrap();
        let output = machine.restore(&["-rlptgoD", "--numeric-ids", "--super"], "payload", "home/alice/restored/");
        let restored = machine.path("home/alice/restored");
        let mode = |name: &str| fs::metadata(restored.join(name)).unwrap().mode() & 0o7777;
        assert_eq!(fs::read(restored.join("rootshell")).unwrap(), fs::read("/bin/sh").unwrap(), "{}", said(&output));
        if whole_machine {
            assert_eq!(mode("rootshell"), 0o4755, "{}", said(&output));
            assert_eq!(mode("group-tool"), 0o2755);
            assert!(fs::symlink_metadata(restored.join("disk")).unwrap().rdev() != 0);
        } else {
            assert_eq!(mode("rootshell"), 0o755, "a restore made a setuid file: {}", said(&output));
            assert_eq!(mode("group-tool"), 0o755, "a restore made a setgid file");
            assert!(!restored.join("disk").exists(), "a restore made a device node: {}", said(&output));
        }
    }
}

#[test]
fn an_rsync_older_than_3_5_is_refused_for_a_narrow_path_only() {
    require_root!();
    for (allowed, refused) in [(HOME, true), (EVERYTHING, false)] {
        let machine = Machine::new(allowed, false);
        let old = machine.path("old-rsync");
        fs::write(&old, "#!/bin/sh\necho 'rsync  version 3.4.1  protocol version 32'\n").unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        // Only this test's own mount namespace sees the old rsync.
        let output = Command::new("/usr/bin/unshare")
            .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
            .arg("mount --bind \"$1\" /usr/bin/rsync && exec /usr/bin/env -i SSH_ORIGINAL_COMMAND=\"$2\" \"$3\" rsyncsend --config \"$4\"")
            .arg("sh")
            .arg(&old)
            .arg(format!("rsync --server --sender -lHogDtprxe.iLsfxC . {}/", machine.path("home/alice").display()))
            .arg(env!("CARGO_BIN_EXE_bpc-enroll"))
            .arg(machine.path("client.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.contains("older than 3.5.0"), refused, "{allowed}: {}", said(&output));
        assert_eq!(output.status.success(), !refused, "{allowed}: {}", said(&output));
    }
}

/// sudo-rs (the default sudo of Ubuntu 25.10 and later), built by
/// `scripts/test` into `target/sudo-rs`.
fn sudo_rs_visudo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/sudo-rs/bin/visudo")
}

#[test]
fn the_sudo_rule_passes_debians_visudo_and_sudo_rs_visudo() {
    let sudo_rs = sudo_rs_visudo();
    let present = if sudo_rs.exists() {
        requirements()
    } else {
        Err(format!("{} is missing: run `bash scripts/test`, which builds it", sudo_rs.display()))
    };
    if testkit::skip(module_path!(), present) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rule =
        client::system::sudoers_rule("bckpciuem", "/usr/bin/bpc-enroll", Path::new("/etc/bpc-enroll/client.toml"))
            .unwrap();
    let path = dir.path().join("bpc-enroll-bckpciuem");
    fs::write(&path, &rule).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).unwrap();
    for visudo in [PathBuf::from("/usr/sbin/visudo"), sudo_rs] {
        let output = Command::new(&visudo).args(["-c", "-f"]).arg(&path).env_clear().output().unwrap();
        assert!(output.status.success(), "{} refuses the rule:\n{rule}\n{}", visudo.display(), said(&output));
    }
}

/// The backup account as setup makes it, with the sudo rule setup installs
/// and bpc-enroll copied to a root-owned folder (the rule names it); all
/// removed on drop. The account name is the one the system tests share,
/// under `flock /tmp/bpc-system.lock`.
struct BackupAccount {
    program: PathBuf,
}

const ACCOUNT: &str = "bpcetest";

impl BackupAccount {
    fn new(config: &Path) -> BackupAccount {
        assert!(
            nix::unistd::User::from_name(ACCOUNT).unwrap().is_none(),
            "account {ACCOUNT} exists: another system test is running (use flock /tmp/bpc-system.lock) or did not clean up"
        );
        let dir = Path::new("/var/lib/bpc-enroll-tests/bin-rsyncsend");
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let program = dir.join("bpc-enroll");
        fs::copy(env!("CARGO_BIN_EXE_bpc-enroll"), &program).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let account = BackupAccount { program };
        testkit::run(Command::new("/usr/sbin/useradd").args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/bin/sh",
            "--password",
            "*",
            ACCOUNT,
        ]));
        client::system::install_sudoers(ACCOUNT, account.program.to_str().unwrap(), config).unwrap();
        account
    }
}

impl Drop for BackupAccount {
    fn drop(&mut self) {
        let _ = fs::remove_file(client::system::sudoers_path(ACCOUNT));
        let _ = Command::new("/usr/sbin/userdel").arg(ACCOUNT).output();
        let _ = fs::remove_file(&self.program);
    }
}

#[test]
fn through_the_backup_account_and_real_sudo_narrow_paths_hold() {
    if testkit::skip(
        module_path!(),
        testkit::require_root_and(&["/usr/bin/sudo", "/usr/bin/setpriv", "/usr/sbin/useradd"]),
    ) {
        return;
    }
    let machine = Machine::new(HOME, true);
    let account = BackupAccount::new(&machine.path("client.toml"));
    // sshd runs the forced command as the backup account, not as root.
    fs::write(
        machine.path("fake-ssh"),
        format!(
            "#!/bin/sh\nshift\nexec /usr/bin/setpriv --reuid={ACCOUNT} --regid={ACCOUNT} --init-groups \
             /usr/bin/env -i SSH_CONNECTION='127.0.0.1 40000 127.0.0.1 22' SSH_ORIGINAL_COMMAND=\"$*\" \
             {program} rsyncsend --config {config}\n",
            program = account.program.display(),
            config = machine.path("client.toml").display()
        ),
    )
    .unwrap();
    fs::create_dir_all(machine.path("home/alice/docs")).unwrap();
    fs::write(machine.path("home/alice/docs/notes"), "mine\n").unwrap();
    let output = machine.backup(&["-rlptgoD", "--numeric-ids"], "home/alice/", "got");
    assert!(output.status.success(), "a backup inside the allowed paths failed: {}", said(&output));
    assert_eq!(fs::read_to_string(machine.path("got/docs/notes")).unwrap(), "mine\n");

    machine.alice_symlink("outside", "home/alice/link");
    let output = machine.backup(&["-rlptgoD", "--numeric-ids"], "home/alice/link/", "stolen");
    assert!(!machine.path("stolen/shadow").exists(), "the backup read outside /home: {}", said(&output));
    assert!(said(&output).contains("outside the allowed paths"), "{}", said(&output));

    fs::remove_file(machine.path("home/alice/link")).unwrap();
    symlink(machine.path("outside/.ssh"), machine.path("home/alice/link")).unwrap();
    fs::create_dir_all(machine.path("payload")).unwrap();
    fs::write(machine.path("payload/authorized_keys"), "ssh-ed25519 AAAA attacker\n").unwrap();
    fs::copy("/bin/sh", machine.path("payload/rootshell")).unwrap();
    fs::set_permissions(machine.path("payload/rootshell"), fs::Permissions::from_mode(0o4755)).unwrap();
    let output = machine.restore(&["-rlptgoD", "--numeric-ids"], "payload", "home/alice/link/");
    let keys = fs::read_to_string(machine.path("outside/.ssh/authorized_keys")).unwrap();
    assert_eq!(keys, "ssh-ed25519 AAAA root's own\n", "the restore wrote outside /home: {}", said(&output));

    let output = machine.restore(&["-rlptgoD", "--numeric-ids"], "payload", "home/alice/restored/");
    assert!(output.status.success(), "a restore inside the allowed paths failed: {}", said(&output));
    let mode = fs::metadata(machine.path("home/alice/restored/rootshell")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755, "a restore through sudo made a setuid file");
    let owner = fs::metadata(machine.path("home/alice/restored/rootshell")).unwrap().uid();
    assert_eq!(owner, 0, "the restore did not run as root");
}

#[test]
fn rsyncsend_as_root_refuses_a_configuration_someone_else_can_change() {
    require_root!();
    let machine = Machine::new(EVERYTHING, true);
    fs::write(machine.path("home/alice/notes"), "mine\n").unwrap();
    let output = machine.backup(&["-rlptgoD", "--numeric-ids"], "home/alice/", "got");
    assert!(output.status.success(), "{}", said(&output));
    let config = machine.path("client.toml");
    let folder = machine.path("");
    let set_mode = |path: &Path, mode: u32| fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let cases: [Spoiling<'_>; 4] = [
        ("group-writable", Box::new(|| set_mode(&config, 0o664)), Box::new(|| set_mode(&config, 0o644))),
        ("writable by others", Box::new(|| set_mode(&config, 0o646)), Box::new(|| set_mode(&config, 0o644))),
        (
            "owned by a user",
            Box::new(|| std::os::unix::fs::chown(&config, Some(ALICE), None).unwrap()),
            Box::new(|| std::os::unix::fs::chown(&config, Some(0), None).unwrap()),
        ),
        ("in a group-writable folder", Box::new(|| set_mode(&folder, 0o775)), Box::new(|| set_mode(&folder, 0o755))),
    ];
    for (what, spoil, mend) in cases {
        spoil();
        let output = machine.backup(&["-rlptgoD", "--numeric-ids"], "home/alice/", "again");
        mend();
        assert!(!machine.path("again/notes").exists(), "a configuration {what} was trusted: {}", said(&output));
        assert!(said(&output).contains("can be changed by someone other than root"), "{what}: {}", said(&output));
    }
    let output = machine.backup(&["-rlptgoD", "--numeric-ids"], "home/alice/", "again");
    assert!(output.status.success(), "{}", said(&output));
}

/// A way to let someone other than root change a file, and the way back.
type Spoiling<'a> = (&'static str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);
