//! The Debian packages end to end, on this machine, as an administrator and
//! a person at a machine use them: `apt-get install` of the two packages
//! `scripts/package` built, `bpc-register install` against Debian's
//! BackupPC, `server.toml` edited, `bpc-register bundle` for an sshd on
//! 127.0.0.1, the bundle installed, `bpc-enroll setup --user alice` and
//! nothing more, a full backup by BackupPC; then `bpc-enroll uninstall` and
//! `apt-get purge` of the three packages, after which no file they added is
//! left, and everything the test changed is put back as it was.
//!
//! It installs packages and changes accounts and system files, so it is
//! ignored by `cargo test`: `scripts/test` runs it after `scripts/package
//! --debug`, under `flock /tmp/bpc-system.lock`. `BPC_PACKAGES_DIR` names
//! the folder of the `.deb` files (default: the workspace's
//! `target/debian`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use testkit::restore::{Saved, listing, paths_below};
use testkit::sshd::Sshd;

/// The backup account the packaged client creates by default.
const ACCOUNT: &str = "bckpciuem";
const HOST: &str = "pc-test.example.org";
const PACKAGES: [&str; 3] = ["bpc-enroll-site", "bpc-enroll", "bpc-enroll-server"];
const BIN: &str = "/usr/share/backuppc/bin";

/// What the packages or the test may change outside the test's folder:
/// saved first, put back after.
const SAVED: &[&str] = &[
    "/etc/bpc-enroll",
    "/etc/backuppc",
    "/var/lib/backuppc",
    "/var/lib/bpc-enroll",
    "/var/lib/bckpciuem",
    "/etc/sudoers.d/bpc-enroll-bckpciuem",
    "/run/backuppc",
    "/etc/passwd",
    "/etc/passwd-",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/group",
    "/etc/group-",
    "/etc/gshadow",
    "/etc/gshadow-",
];

/// Where packages put files, and what apt and dpkg keep for themselves or
/// other tests use meanwhile.
const ROOTS: &[&str] = &["/etc", "/usr", "/var/lib", "/opt", "/srv"];
const NOT_OURS: &[&str] = &["/var/lib/dpkg", "/var/lib/apt", "/var/lib/bpc-enroll-tests", "/var/lib/man-db"];

fn packages_dir() -> PathBuf {
    std::env::var_os("BPC_PACKAGES_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debian"), PathBuf::from)
}

/// The one `NAME_*.deb` in the packages folder.
fn deb(name: &str) -> PathBuf {
    let prefix = format!("{name}_");
    let found: Vec<PathBuf> = fs::read_dir(packages_dir())
        .unwrap_or_else(|e| panic!("{}: {e}; run bash scripts/package --debug", packages_dir().display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    assert_eq!(found.len(), 1, "want one {prefix}*.deb in {}: {found:?}", packages_dir().display());
    found.into_iter().next().unwrap()
}

fn installed(package: &str) -> bool {
    Command::new("/usr/bin/dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", package])
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"i") || output.stdout.starts_with(b"r"))
}

/// Runs a command with a plain root environment; panics with its output
/// when it fails.
fn run(program: &str, args: &[&str]) -> String {
    testkit::run(Command::new(program).args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
}

fn apt_get(args: &[&str]) -> Output {
    Command::new("/usr/bin/apt-get")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap()
}

fn assert_success(what: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a BackupPC program as backuppc, as its daemon does.
fn as_backuppc(program: &str) -> Command {
    let mut command = Command::new("/usr/bin/setpriv");
    command
        .args(["--reuid=backuppc", "--regid=backuppc", "--init-groups", "--"])
        .arg(format!("{BIN}/{program}"))
        .env_clear()
        .env("HOME", "/var/lib/backuppc")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null());
    command
}

/// Everything the test changes, undone even when it fails half-way: the
/// enrollment, the packages, BackupPC's daemon and the test's sshd, then
/// the saved paths put back.
struct Machine {
    daemon: Option<testkit::Daemon>,
    sshd: Option<Sshd>,
    _saved: Saved,
    base: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        for package in PACKAGES {
            assert!(!installed(package), "{package} is installed here: not touching this machine");
        }
        assert!(nix::unistd::User::from_name(ACCOUNT).unwrap().is_none(), "account {ACCOUNT} exists already");
        assert!(!Path::new("/etc/bpc-enroll").exists(), "/etc/bpc-enroll exists: not touching this machine");
        let saved = Saved::new(&SAVED.iter().map(Path::new).collect::<Vec<_>>());
        Machine { daemon: None, sshd: None, _saved: saved, base: testkit::base_dir("packages-") }
    }

    fn base(&self) -> &Path {
        self.base.path()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if Path::new("/usr/bin/bpc-enroll").exists() {
            let _ = Command::new("/usr/bin/bpc-enroll").arg("uninstall").env_clear().output();
        }
        if nix::unistd::User::from_name(ACCOUNT).ok().flatten().is_some() {
            let _ = Command::new("/usr/sbin/userdel").arg(ACCOUNT).output();
        }
        let installed: Vec<&str> = PACKAGES.into_iter().filter(|package| installed(package)).collect();
        if !installed.is_empty() {
            let _ = apt_get(&[&["purge", "-y"][..], &installed].concat());
        }
        self.daemon.take();
        self.sshd.take();
    }
}

/// The BackupPC daemon of Debian's installation, started as backuppc,
/// once it has written its pid file (its socket then listens).
fn start_backuppc() -> testkit::Daemon {
    let (uid, gid) = testkit::backuppc::backuppc_ids();
    fs::create_dir_all("/run/backuppc").unwrap();
    std::os::unix::fs::chown("/run/backuppc", Some(uid), Some(gid)).unwrap();
    let child = as_backuppc("BackupPC").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let daemon = testkit::Daemon::from_child(child, PathBuf::from("/var/lib/backuppc/log/LOG"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string("/run/backuppc/BackupPC.pid").is_ok_and(|pid| !pid.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "BackupPC did not start:\n{}",
            fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

/// What bash completes after `words`, with the installed completion.
fn bash_completes(program: &str, words: &str) -> String {
    let script = format!(
        "source /usr/share/bash-completion/bash_completion\n\
         _completion_loader {program}\n\
         complete -p {program}\n\
         COMP_LINE='{program} {words}'; COMP_POINT=${{#COMP_LINE}}\n\
         read -ra COMP_WORDS <<< \"$COMP_LINE\"; COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         $(complete -p {program} | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p') {program} \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    run("/bin/bash", &["-c", &script])
}

fn man(args: &[&str]) -> String {
    let output = Command::new("/usr/bin/man")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert_success(&format!("man {args:?}"), &output)
}

#[test]
#[ignore = "installs the Debian packages: run by scripts/test after scripts/package --debug"]
fn the_packages_install_enroll_a_machine_that_backuppc_backs_up_and_purge_clean() {
    testkit::require!(testkit::system_requirements());
    testkit::require!(testkit::require_programs(&[
        "/usr/bin/apt-get",
        "/usr/bin/man",
        "/usr/share/bash-completion/bash_completion"
    ]));
    let content_before = listing(&[Path::new("/etc"), Path::new("/var/lib/backuppc")]);
    let paths_before = paths_below(
        &ROOTS.iter().map(Path::new).collect::<Vec<_>>(),
        &NOT_OURS.iter().map(Path::new).collect::<Vec<_>>(),
    );
    let mut machine = Machine::new();
    let base = machine.base().to_owned();

    // 1. The two packages, with apt, as the README says.
    let (client_deb, server_deb) = (deb("bpc-enroll"), deb("bpc-enroll-server"));
    let output = apt_get(&[
        "install",
        "-y",
        "--no-install-recommends",
        client_deb.to_str().unwrap(),
        server_deb.to_str().unwrap(),
    ]);
    assert_success("apt-get install of the packages", &output);
    let owned: BTreeSet<PathBuf> = ["bpc-enroll", "bpc-enroll-server"]
        .iter()
        .flat_map(|package| run("/usr/bin/dpkg", &["-L", package]).lines().map(PathBuf::from).collect::<Vec<_>>())
        .collect();
    assert!(man(&["bpc-enroll"]).contains("bpc-enroll-setup(8)"));
    assert!(man(&["bpc-register"]).contains("bpc-register-install(8)"));
    assert!(man(&["5", "server.toml"]).contains("[backuppc]"));
    assert!(man(&["5", "client.toml"]).contains("allowed-paths"));
    assert!(man(&["bpc-register-bundle"]).contains("--host-key"));
    let completion = bash_completes("bpc-register", "ins");
    assert!(completion.starts_with("complete ") && completion.contains(" bpc-register\n"), "{completion}");
    assert!(completion.lines().any(|line| line == "install"), "{completion}");
    let completion = bash_completes("bpc-enroll", "set");
    assert!(completion.lines().any(|line| line == "setup"), "{completion}");

    // 2. The test's sshd on 127.0.0.1, for the register key and for
    // BackupPC's logins to the machine (both on this machine).
    machine.sshd = Some(Sshd::start(&base.join("sshd"), &format!("UsePAM yes\nAllowUsers backuppc {ACCOUNT}")));
    let sshd = machine.sshd.as_ref().unwrap();
    let port = sshd.port.to_string();

    // 3. bpc-register install against Debian's BackupPC.
    let output = Command::new("/usr/bin/bpc-register")
        .args([
            "install",
            "--domain",
            "example.org",
            "--url",
            "http://backup.example.org/backuppc/index.cgi?host={host}",
            "--client-port",
            &port,
        ])
        .env_clear()
        .output()
        .unwrap();
    let out = assert_success("bpc-register install", &output);
    assert!(
        out.contains(
            "\nwrite /etc/bpc-enroll/server.toml (bpc-register's configuration, replacing the package's example;"
        ),
        "{out}"
    );
    assert!(!out.contains("problem:"), "{out}");

    // 4. The administrator edits server.toml: who may enroll, how
    // addresses become names, where bpc-register logs, what BackupPC
    // connects to.
    fs::write("/etc/bpc-enroll/users.toml", "[users.alice]\nname = \"Alice\"\n").unwrap();
    fs::write("/etc/bpc-enroll/hosts.static", format!("127.0.0.1 {HOST}\n")).unwrap();
    let mut config: toml::Table = fs::read_to_string("/etc/bpc-enroll/server.toml").unwrap().parse().unwrap();
    let table = |entries: &[(&str, &str)]| {
        toml::Value::Table(entries.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
    };
    config.insert("resolver".into(), table(&[("kind", "static"), ("path", "hosts.static")]));
    // The log goes to a folder of its own that backuppc may write, under
    // /var/log, root's: root's commands use no folder that BackupPC's
    // account could swap for a link (its home, /var/lib/backuppc, is its own).
    let log_dir = Path::new("/var/log/bpc-register");
    fs::create_dir_all(log_dir).unwrap();
    testkit::backuppc::give_to_backuppc(log_dir);
    config.insert("log".into(), table(&[("kind", "file"), ("path", "/var/log/bpc-register/bpc-register.log")]));
    config
        .get_mut("backuppc")
        .and_then(toml::Value::as_table_mut)
        .unwrap()
        .insert("connect-to".into(), "address".into());
    fs::write("/etc/bpc-enroll/server.toml", toml::to_string(&config).unwrap()).unwrap();
    // Debian's config.pl names smbclient, which BackupPC's daemon insists
    // on finding; this machine has BackupPC without its recommended Samba.
    let mut config_pl = fs::read_to_string("/etc/backuppc/config.pl").unwrap();
    config_pl.push_str("$Conf{SmbClientPath} = '';\n$Conf{NmbLookupPath} = '';\n");
    fs::write("/etc/backuppc/config.pl", config_pl).unwrap();
    let check = Command::new("/usr/bin/bpc-register").arg("check").env_clear().output().unwrap();
    assert_success("bpc-register check", &check);
    machine.daemon = Some(start_backuppc());

    // 5. The bundle for the sshd on 127.0.0.1, installed on the machine.
    let bundle = base.join("bpc-enroll-site.deb");
    let host_key = base.join("sshd/host_ed25519.pub");
    let output = Command::new("/usr/bin/bpc-register")
        .args([
            "bundle",
            "--server",
            &format!("ssh://127.0.0.1:{port}"),
            "--host-key",
            host_key.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ])
        .env_clear()
        .output()
        .unwrap();
    assert_success("bpc-register bundle", &output);
    let lintian = Command::new("/usr/bin/lintian").args(["--fail-on", "error"]).arg(&bundle).output().unwrap();
    assert_success("lintian on the bundle", &lintian);
    let output = apt_get(&["install", "-y", "--no-install-recommends", bundle.to_str().unwrap()]);
    assert_success("apt-get install of the bundle", &output);
    let site_files: Vec<PathBuf> =
        run("/usr/bin/dpkg", &["-L", "bpc-enroll-site"]).lines().map(PathBuf::from).collect();

    // The machine's sshd here is the test's, not the one `sshd -T` reports:
    // as for any non-standard sshd, the keys it serves are named in
    // client.toml, so that BackupPC pins them.
    let client_toml = fs::read_to_string("/etc/bpc-enroll/client.toml").unwrap();
    fs::write("/etc/bpc-enroll/client.toml", format!("{client_toml}host-keys = [\"{}\"]\n", host_key.display()))
        .unwrap();

    // 6. The whole enrollment.
    let output = Command::new("/usr/bin/bpc-enroll")
        .args(["setup", "--user", "alice"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let register_log = fs::read_to_string("/var/log/bpc-register/bpc-register.log").unwrap_or_default();
    let out = assert_success(&format!("bpc-enroll setup --user alice (bpc-register's log:\n{register_log})"), &output);
    assert_eq!(out, format!("http://backup.example.org/backuppc/index.cgi?host={HOST}\n"));
    let hosts = fs::read_to_string("/etc/backuppc/hosts").unwrap();
    assert!(hosts.ends_with(&format!("{HOST}\t0\talice\n")), "{hosts}");

    // 7. BackupPC backs the machine up (the administrator narrows the share
    // to a test tree and keeps the schedule off: this test runs the backup).
    let tree = base.join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("sub/file.txt"), "backed up\n").unwrap();
    let host_config = format!("/etc/backuppc/{HOST}.pl");
    let mut text = fs::read_to_string(&host_config).unwrap();
    text.push_str(&format!(
        "$Conf{{RsyncShareName}} = ['{}'];\n$Conf{{BackupsDisable}} = 1;\n$Conf{{PingCmd}} = '';\n",
        tree.display()
    ));
    fs::write(&host_config, text).unwrap();
    let dump = as_backuppc("BackupPC_dump").args(["-v", "-f", HOST]).output().unwrap();
    let dump_out = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.status.success() && dump_out.contains("full backup complete"),
        "BackupPC_dump:\n{dump_out}\n{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let tar = as_backuppc("BackupPC_tarCreate")
        .args(["-h", HOST, "-n", "-1", "-s", tree.to_str().unwrap(), "."])
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    let restored = base.join("restored");
    fs::create_dir(&restored).unwrap();
    let mut untar = Command::new("/bin/tar").arg("-x").arg("-C").arg(&restored).stdin(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut untar.stdin.take().unwrap(), &tar.stdout).unwrap();
    assert!(untar.wait().unwrap().success());
    assert_eq!(fs::read_to_string(restored.join("sub/file.txt")).unwrap(), "backed up\n");
    machine.daemon.take();

    // 8. The machine leaves, the packages are purged: no file they added
    // is left; the registration and the backup stay (BackupPC's).
    let output = Command::new("/usr/bin/bpc-enroll").arg("uninstall").env_clear().output().unwrap();
    assert_success("bpc-enroll uninstall", &output);
    let output = apt_get(&["purge", "-y", "bpc-enroll-site", "bpc-enroll", "bpc-enroll-server"]);
    assert_success("apt-get purge", &output);
    for package in PACKAGES {
        assert!(!installed(package), "{package} is still known to dpkg");
    }
    let left: Vec<&PathBuf> = owned
        .iter()
        .chain(&site_files)
        .filter(|path| ROOTS.iter().any(|root| path.starts_with(root)))
        .filter(|path| fs::symlink_metadata(path).is_ok() && !paths_before.contains(*path))
        .collect();
    let made_by_commands = |path: &Path| {
        [
            "/etc/bpc-enroll/register_ed25519",
            "/etc/bpc-enroll/register_ed25519.pub",
            "/etc/bpc-enroll/users.toml",
            "/etc/bpc-enroll/hosts.static",
        ]
        .iter()
        .any(|made| path == Path::new(made))
    };
    assert!(
        left.iter().all(|path| made_by_commands(path) || *path == Path::new("/etc/bpc-enroll")),
        "left by the packages: {left:?}"
    );
    let paths_after = paths_below(
        &ROOTS.iter().map(Path::new).collect::<Vec<_>>(),
        &NOT_OURS.iter().map(Path::new).collect::<Vec<_>>(),
    );
    let added: Vec<&PathBuf> = paths_after
        .difference(&paths_before)
        .filter(|path| {
            !path.starts_with("/var/lib/backuppc")
                && !path.starts_with("/etc/backuppc")
                && !made_by_commands(path)
                && *path != Path::new("/etc/bpc-enroll")
        })
        .collect();
    assert!(added.is_empty(), "new files after the purge: {added:?}");
    assert!(fs::read_to_string("/etc/backuppc/hosts").unwrap().contains(HOST), "the purge removed a registration");
    assert!(Path::new(&format!("/var/lib/backuppc/pc/{HOST}/backups")).exists(), "the purge removed a backup");

    // 9. Everything the test changed is put back.
    drop(machine);
    assert_eq!(
        listing(&[Path::new("/etc"), Path::new("/var/lib/backuppc")]),
        content_before,
        "files under /etc or /var/lib/backuppc differ from before the test"
    );
    let paths_restored = paths_below(
        &ROOTS.iter().map(Path::new).collect::<Vec<_>>(),
        &NOT_OURS.iter().map(Path::new).collect::<Vec<_>>(),
    );
    let still: Vec<&PathBuf> = paths_restored.symmetric_difference(&paths_before).collect();
    assert!(still.is_empty(), "paths that differ from before the test: {still:?}");
}
