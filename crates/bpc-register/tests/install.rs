//! `bpc-register install` on this machine's real Debian BackupPC, as root:
//! what it makes, that a second run changes nothing, that `--dry-run`
//! changes nothing, and that a link planted in `~backuppc/.ssh` leads it
//! nowhere. Everything it touches (`/etc/bpc-enroll`, `~backuppc/.ssh`,
//! BackupPC's `config.pl` and `LOCK`) is saved first and put back after.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;
use testkit::restore::{Saved, listing, remove};

const CONFIG_DIR: &str = "/etc/bpc-enroll";
const SSH_DIR: &str = "/var/lib/backuppc/.ssh";
const CONF_DIR: &str = "/etc/backuppc";
const EXAMPLE: &str = include_str!("../debian/server.toml");
const ADMINS_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@laptop";

/// One test at a time changes these paths.
static SYSTEM: Mutex<()> = Mutex::new(());

fn requirements() -> Result<(), String> {
    testkit::require_root_and(&["/usr/share/backuppc/lib/BackupPC/Lib.pm", "/usr/sbin/sshd", "/usr/bin/ssh-keygen"])
}

/// The paths install changes, saved, then emptied as on a fresh server
/// (no /etc/bpc-enroll, no ~backuppc/.ssh, Debian's own config.pl).
fn fresh_server() -> (std::sync::MutexGuard<'static, ()>, Saved) {
    let guard = SYSTEM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let saved = Saved::new(&[
        Path::new(CONFIG_DIR),
        Path::new(SSH_DIR),
        &Path::new(CONF_DIR).join("config.pl"),
        &Path::new(CONF_DIR).join("LOCK"),
    ]);
    remove(Path::new(CONFIG_DIR));
    remove(Path::new(SSH_DIR));
    (guard, saved)
}

fn install(args: &[&str]) -> Output {
    assert_cmd::Command::cargo_bin("bpc-register").unwrap().env_clear().arg("install").args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn program() -> String {
    Path::new(env!("CARGO_BIN_EXE_bpc-register")).canonicalize().unwrap().display().to_string()
}

fn owner_and_mode(path: &str) -> (String, u32) {
    let meta = fs::metadata(path).unwrap();
    let user = nix::unistd::User::from_uid(meta.uid().into()).unwrap().unwrap().name;
    let group = nix::unistd::Group::from_gid(meta.gid().into()).unwrap().unwrap().name;
    (format!("{user}:{group}"), meta.mode() & 0o7777)
}

fn watched() -> [&'static Path; 3] {
    [Path::new(CONFIG_DIR), Path::new("/var/lib/backuppc"), Path::new(CONF_DIR)]
}

#[test]
fn install_makes_the_keys_the_line_and_the_configuration_and_a_second_run_changes_nothing() {
    testkit::require!(requirements());
    let (_one_at_a_time, _saved) = fresh_server();
    // The administrator's own key is already there and must stay.
    fs::create_dir(SSH_DIR).unwrap();
    fs::write(format!("{SSH_DIR}/authorized_keys"), format!("{ADMINS_KEY}\n")).unwrap();
    testkit::backuppc::give_to_backuppc(Path::new(SSH_DIR));
    testkit::backuppc::give_to_backuppc(&Path::new(SSH_DIR).join("authorized_keys"));
    let config_pl_before = owner_and_mode(&format!("{CONF_DIR}/config.pl"));

    let output =
        install(&["--domain", "example.org", "--url", "https://backup.example.org/backuppc/index.cgi?host={host}"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.starts_with("bpc-register install: BackupPC 4."), "{out}");
    assert!(out.contains("\nin place: sshd accepts keys for backuppc (UsePAM yes"), "{out}");
    assert!(out.contains("\nNext:\n  1. Edit /etc/bpc-enroll/server.toml:"), "{out}");

    assert_eq!(owner_and_mode("/etc/bpc-enroll/register_ed25519"), ("root:root".into(), 0o600));
    assert_eq!(owner_and_mode("/etc/bpc-enroll/register_ed25519.pub").0, "root:root");
    assert_eq!(owner_and_mode(&format!("{SSH_DIR}/id_ed25519")), ("backuppc:backuppc".into(), 0o600));
    assert_eq!(owner_and_mode(&format!("{SSH_DIR}/id_ed25519.pub")).0, "backuppc:backuppc");
    assert_eq!(owner_and_mode(&format!("{SSH_DIR}/authorized_keys")), ("backuppc:backuppc".into(), 0o644));
    let register = fs::read_to_string("/etc/bpc-enroll/register_ed25519.pub").unwrap();
    let register = register.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert!(register.starts_with("ssh-ed25519 "), "{register}");
    let keys = fs::read_to_string(format!("{SSH_DIR}/authorized_keys")).unwrap();
    assert!(
        keys.starts_with(&format!(
            "{ADMINS_KEY}\nrestrict,command=\"{} --config /etc/bpc-enroll/server.toml\" {register} ",
            program()
        )),
        "{keys}"
    );
    assert_eq!(keys.lines().count(), 2, "{keys}");

    let config = server::ServerConfig::load(Path::new("/etc/bpc-enroll/server.toml")).unwrap();
    assert_eq!(config.domain.to_string(), "example.org");
    assert_eq!(config.backuppc.url, "https://backup.example.org/backuppc/index.cgi?host={host}");
    assert_eq!(config.backuppc.key, Path::new(SSH_DIR).join("id_ed25519.pub"));
    assert_eq!(owner_and_mode("/etc/bpc-enroll/server.toml"), ("root:root".into(), 0o644));
    assert_eq!(owner_and_mode("/etc/bpc-enroll/users.toml"), ("root:backuppc".into(), 0o640));
    let edits = server::owner_edits::read(Path::new(CONF_DIR)).unwrap();
    assert!(edits.is_safe(), "{}", edits.problem());
    assert_eq!(owner_and_mode(&format!("{CONF_DIR}/config.pl")), config_pl_before);
    assert_eq!(owner_and_mode(&format!("{CONF_DIR}/LOCK")).0, config_pl_before.0, "BackupPC must open its LOCK");
    let config_pl = fs::read_to_string(format!("{CONF_DIR}/config.pl")).unwrap();
    assert!(config_pl.contains("\n# Added by `bpc-register install`"), "the addition says where it comes from");

    let before = listing(&watched());
    let again = install(&["--domain", "example.org"]);
    let out = stdout(&again);
    assert_eq!(again.status.code(), Some(0), "{out}");
    assert!(out.contains("\nnothing to change\n"), "{out}");
    assert!(
        out.contains("\nnote: /etc/bpc-enroll/server.toml exists and is kept: --domain change only a new one"),
        "{out}"
    );
    assert_eq!(listing(&watched()), before, "a second run changed something");
}

#[test]
fn the_packaged_example_is_replaced_and_a_dry_run_changes_nothing() {
    testkit::require!(requirements());
    let (_one_at_a_time, _saved) = fresh_server();
    fs::create_dir(CONFIG_DIR).unwrap();
    fs::write(format!("{CONFIG_DIR}/server.toml"), EXAMPLE).unwrap();
    let before = listing(&watched());
    let output = install(&["--dry-run", "--domain", "example.org"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    for change in [
        "would write /etc/bpc-enroll/server.toml (bpc-register's configuration, replacing the package's example; root:root, 0644)",
        "would create /var/lib/backuppc/.ssh (backuppc:backuppc, 0700)",
        "would create BackupPC's key /var/lib/backuppc/.ssh/id_ed25519 and /var/lib/backuppc/.ssh/id_ed25519.pub with ssh-keygen as backuppc",
        "would create the register key /etc/bpc-enroll/register_ed25519 and /etc/bpc-enroll/register_ed25519.pub with ssh-keygen as root",
        "would add the register key to /var/lib/backuppc/.ssh/authorized_keys",
        "would append 44 lines `$Conf{CgiUserConfigEdit}{KEY} = 0;` to /etc/backuppc/config.pl",
    ] {
        assert!(out.contains(&format!("\n{change}")), "{change}\n{out}");
    }
    assert_eq!(listing(&watched()), before, "--dry-run changed something");

    let without_domain = install(&[]);
    assert_eq!(without_domain.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&without_domain.stderr),
        "bpc-register: /etc/bpc-enroll/server.toml is written from the options: give --domain DOMAIN, the DNS \
         domain of the machines that may enroll\n"
    );
    assert_eq!(listing(&watched()), before, "a refused run changed something");

    let output = install(&["--domain", "example.net", "--keep-backuppc-config"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "config.pl is left unsafe: a problem remains\n{out}");
    assert!(
        out.contains("\nproblem: /etc/backuppc/config.pl: BackupPC's web page lets a host's owner change"),
        "{out}"
    );
    let config = server::ServerConfig::load(Path::new("/etc/bpc-enroll/server.toml")).unwrap();
    assert_eq!(config.domain.to_string(), "example.net", "the example was replaced");
    assert!(!server::owner_edits::read(Path::new(CONF_DIR)).unwrap().is_safe(), "config.pl was kept");
}

#[test]
fn a_link_planted_in_the_backuppc_accounts_ssh_folder_leads_nowhere() {
    testkit::require!(requirements());
    let (_one_at_a_time, _saved) = fresh_server();
    let base = testkit::base_dir("install-");
    let secret = base.path().join("secret");
    fs::write(&secret, "root's secret\n").unwrap();
    fs::create_dir(SSH_DIR).unwrap();
    testkit::backuppc::give_to_backuppc(Path::new(SSH_DIR));
    std::os::unix::fs::symlink(&secret, format!("{SSH_DIR}/authorized_keys")).unwrap();
    let output = install(&["--domain", "example.org"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .starts_with("bpc-register: /var/lib/backuppc/.ssh/authorized_keys: cannot open (a link is not followed)"),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root's secret\n");
    assert!(fs::symlink_metadata(format!("{SSH_DIR}/authorized_keys")).unwrap().file_type().is_symlink());
}

#[test]
fn help_of_install_names_every_change_and_check() {
    let output = assert_cmd::Command::cargo_bin("bpc-register")
        .unwrap()
        .args(["install", "--help"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!("install_help", String::from_utf8(output.stdout).unwrap());
}
