//! `bpc-register bundle`: the site package and tarball, read back by their
//! consumers (dpkg-deb, tar, bpc-enroll's configuration loader, ssh-keygen's
//! known_hosts lookup, lintian); refused options write nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use testkit::sshd::keygen;

/// A folder with a register key and two host keys.
struct Keys {
    dir: tempfile::TempDir,
    host_keys: Vec<String>,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("register_ed25519"), "register");
        let host_keys = ["host_ed25519", "host_other"]
            .iter()
            .map(|name| {
                let line = keygen(&dir.path().join(name), "root@server");
                line.rsplit_once(' ').unwrap().0.to_owned()
            })
            .collect();
        Keys { dir, host_keys }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `bundle` in the folder, with its register key unless `args`
    /// name another.
    fn bundle(&self, args: &[&str]) -> Output {
        let mut command = assert_cmd::Command::cargo_bin("bpc-register").unwrap();
        command.env_clear().current_dir(self.dir.path()).arg("--config").arg(self.path("server.toml"));
        command.arg("bundle").args(args);
        if !args.contains(&"--register-key") {
            command.arg("--register-key").arg(self.path("register_ed25519"));
        }
        command.output().unwrap()
    }
}

fn run(command: &mut Command) -> String {
    testkit::run(command)
}

const SITE_ARGS: &[&str] = &[
    "--server",
    "ssh://127.0.0.1:2222",
    "--host-key",
    "host_ed25519.pub",
    "--host-key",
    "host_other.pub",
    "--out",
    "out/site.deb",
    "--package-version",
    "1.2",
    "--maintainer",
    "Backup administrators <backup@example.org>",
];

#[test]
fn the_bundle_is_a_package_and_a_tarball_of_the_site_files_owned_by_root() {
    let keys = Keys::new();
    fs::create_dir(keys.path("out")).unwrap();
    let output = keys.bundle(SITE_ARGS);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout,
        "wrote out/site.deb (package bpc-enroll-site 1.2, for ssh://127.0.0.1:2222)\n\
         wrote out/site.tar.gz (the same files and an INSTALL note, for machines without dpkg)\n\
         Both hold the register key: hand them to the machines' administrators only. On each machine:\n  \
         apt-get install ./site.deb && bpc-enroll setup --user LOGON\n"
    );
    let deb = keys.path("out/site.deb");
    for file in [&deb, &keys.path("out/site.tar.gz")] {
        assert_eq!(fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o600, "{}", file.display());
    }

    let fields = |field: &str| run(Command::new("/usr/bin/dpkg-deb").arg("-f").arg(&deb).arg(field));
    assert_eq!(fields("Package"), "bpc-enroll-site\n");
    assert_eq!(fields("Version"), "1.2\n");
    assert_eq!(fields("Depends"), "bpc-enroll\n");
    assert_eq!(fields("Architecture"), "all\n");
    assert_eq!(
        etc_listing(&deb),
        [
            "drwxr-xr-x root/root ./etc/",
            "drwxr-xr-x root/root ./etc/bpc-enroll/",
            "-rw-r--r-- root/root ./etc/bpc-enroll/client.toml",
            "drwxr-xr-x root/root ./etc/bpc-enroll/site/",
            "-rw-r--r-- root/root ./etc/bpc-enroll/site/known_hosts",
            "-rw------- root/root ./etc/bpc-enroll/site/register_ed25519",
        ]
    );
    assert_eq!(
        conffiles(&deb),
        "/etc/bpc-enroll/client.toml\n/etc/bpc-enroll/site/register_ed25519\n/etc/bpc-enroll/site/known_hosts\n"
    );

    // What a machine gets, read as bpc-enroll and ssh read it.
    let root = keys.path("root");
    let config = unpack(&deb, &root);
    assert_eq!(config.server.as_deref(), Some("ssh://127.0.0.1:2222"));
    let site = root.join("etc/bpc-enroll/site");
    assert_eq!(config.register_key.as_deref(), Some(site.join("register_ed25519").as_path()));
    assert_eq!(config.known_hosts.as_deref(), Some(site.join("known_hosts").as_path()));
    assert_eq!(fs::read(site.join("register_ed25519")).unwrap(), fs::read(keys.path("register_ed25519")).unwrap());
    let known_hosts = fs::read_to_string(site.join("known_hosts")).unwrap();
    let expected: String = keys.host_keys.iter().map(|key| format!("[127.0.0.1]:2222 {key}\n")).collect();
    assert_eq!(known_hosts, expected);
    let found =
        run(Command::new("/usr/bin/ssh-keygen").args(["-F", "[127.0.0.1]:2222", "-f"]).arg(site.join("known_hosts")));
    assert_eq!(found.lines().filter(|line| line.starts_with("[127.0.0.1]:2222 ")).count(), 2, "{found}");

    let tarball = run(Command::new("/bin/tar").arg("-tvzf").arg(keys.path("out/site.tar.gz")));
    let entries: Vec<String> = tarball
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            format!("{} {} {}", words[0], words[1], words[5])
        })
        .collect();
    assert_eq!(
        entries,
        [
            "-rw-r--r-- 0/0 bpc-enroll-site/INSTALL",
            "-rw-r--r-- 0/0 bpc-enroll-site/etc/bpc-enroll/client.toml",
            "drwxr-xr-x 0/0 bpc-enroll-site/etc/bpc-enroll/site/",
            "-rw------- 0/0 bpc-enroll-site/etc/bpc-enroll/site/register_ed25519",
            "-rw-r--r-- 0/0 bpc-enroll-site/etc/bpc-enroll/site/known_hosts",
        ]
    );
    // The note's own command puts the same files in place under a root.
    let elsewhere = keys.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    run(Command::new("/bin/tar")
        .arg("-xzf")
        .arg(keys.path("out/site.tar.gz"))
        .arg("-C")
        .arg(&elsewhere)
        .args(["--strip-components=1", "bpc-enroll-site/etc"]));
    for file in ["client.toml", "site/register_ed25519", "site/known_hosts"] {
        let (a, b) = (root.join("etc/bpc-enroll").join(file), elsewhere.join("etc/bpc-enroll").join(file));
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{file}");
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode(), fs::metadata(&b).unwrap().permissions().mode());
    }
    let note =
        run(Command::new("/bin/tar").arg("-xzOf").arg(keys.path("out/site.tar.gz")).arg("bpc-enroll-site/INSTALL"));
    assert!(note.contains("    apt-get install ./site.deb && bpc-enroll setup --user LOGON\n"), "{note}");
    assert!(note.contains("    tar -xzf site.tar.gz -C / --strip-components=1 bpc-enroll-site/etc\n"), "{note}");

    lintian_finds_no_error_or_warning(&deb);
}

#[test]
fn by_default_the_package_is_named_and_versioned_here_and_pins_etc_ssh() {
    if testkit::skip(module_path!(), testkit::require_programs(&["/etc/ssh/ssh_host_ed25519_key.pub"])) {
        return;
    }
    let keys = Keys::new();
    testkit::ServerToml::new().write(&keys.path("server.toml"));
    let output = keys.bundle(&["--server", "ssh://backup.example.org"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let debs: Vec<String> = fs::read_dir(keys.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let version = debs[0].strip_prefix("bpc-enroll-site_").unwrap().strip_suffix("_all.deb").unwrap();
    assert!(version.len() == 15 && version.chars().all(|c| c.is_ascii_digit() || c == '.'), "{version}");
    assert!(keys.path(&format!("bpc-enroll-site_{version}_all.tar.gz")).exists(), "the tarball beside the package");
    let root = keys.path("root");
    run(Command::new("/usr/bin/dpkg-deb").arg("-x").arg(keys.path(&debs[0])).arg(&root));
    let known_hosts = fs::read_to_string(root.join("etc/bpc-enroll/site/known_hosts")).unwrap();
    let ed25519 = fs::read_to_string("/etc/ssh/ssh_host_ed25519_key.pub").unwrap();
    let ed25519 = ed25519.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert!(known_hosts.contains(&format!("backup.example.org {ed25519}\n")), "{known_hosts}");
    let maintainer = run(Command::new("/usr/bin/dpkg-deb").arg("-f").arg(keys.path(&debs[0])).arg("Maintainer"));
    assert_eq!(maintainer, "Backup administrators <backuppc@example.org>\n");
}

#[test]
fn refused_options_and_unusable_keys_write_nothing() {
    let keys = Keys::new();
    let private_host_key = keys.path("host_ed25519").display().to_string();
    fs::write(keys.path("not-a-ca.pem"), "not a certificate\n").unwrap();
    let cases: [(&[&str], i32, String); 8] = [
        (
            &["--server", "http://backup.example.org"],
            2,
            "--server `http://backup.example.org` is not ssh://HOST[:PORT] or https://HOST[:PORT] (a DNS name or an \
             address, a port from 1 to 65535)"
                .into(),
        ),
        (
            &["--server", "ssh://backup", "--host-key", "host_ed25519.pub", "--ca-file", "not-a-ca.pem"],
            2,
            "--ca-file is for an https:// server; an ssh:// server is pinned by its host keys (--host-key)".into(),
        ),
        (
            &["--server", "https://backup", "--ca-file", "not-a-ca.pem"],
            1,
            "not-a-ca.pem: holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the PEM file of the CA that \
             signs the certificate of `bpc-register serve` with --ca-file"
                .into(),
        ),
        (
            &["--server", "https://backup", "--ca-file", "missing.pem"],
            1,
            "missing.pem: cannot read the CA certificates: No such file or directory (os error 2); give the PEM file \
             of the CA that signs the certificate of `bpc-register serve` with --ca-file"
                .into(),
        ),
        (
            &["--server", "ssh://backup", "--host-key", "host_ed25519.pub", "--name", "Site"],
            2,
            "--name `Site` is not a Debian package name (lowercase letters, digits, + - and ., two or more)".into(),
        ),
        (
            &["--server", "ssh://backup", "--host-key", &private_host_key],
            1,
            format!(
                "{private_host_key}: not an OpenSSH public host key (Base64 encoding error: invalid Base64 \
                 encoding); give the .pub files of the server's sshd with --host-key"
            ),
        ),
        (
            &["--server", "ssh://backup", "--host-key", "host_ed25519.pub", "--register-key", "host_ed25519.pub"],
            1,
            "host_ed25519.pub: not an OpenSSH private key: ".into(),
        ),
        (
            &["--server", "ssh://backup", "--host-key", "host_ed25519.pub", "--register-key", "missing"],
            1,
            "missing: cannot read the register key: No such file or directory (os error 2); run `bpc-register \
             install` first, or give --register-key FILE"
                .into(),
        ),
    ];
    let before: Vec<_> = fs::read_dir(keys.dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    for (args, code, message) in cases {
        let output = keys.bundle(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.starts_with(&format!("bpc-register: {message}")), "{args:?}:\n{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let after: Vec<_> = fs::read_dir(keys.dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(after, before);
}

/// The `./etc/` entries of a package, as `MODE OWNER PATH`.
fn etc_listing(deb: &std::path::Path) -> Vec<String> {
    let listing = run(Command::new("/usr/bin/dpkg-deb").arg("-c").arg(deb));
    listing
        .lines()
        .filter(|line| line.contains("./etc/"))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let word = |n: usize| words.get(n).copied().unwrap_or_default();
            format!("{} {} {}", word(0), word(1), word(5))
        })
        .collect()
}

/// The package's `DEBIAN/conffiles`.
fn conffiles(deb: &std::path::Path) -> String {
    let control = tempfile::tempdir().unwrap();
    run(Command::new("/usr/bin/dpkg-deb").arg("-e").arg(deb).arg(control.path().join("DEBIAN")));
    fs::read_to_string(control.path().join("DEBIAN/conffiles")).unwrap()
}

/// Unpacks the package under `root` and reads its `client.toml` as
/// bpc-enroll does.
fn unpack(deb: &std::path::Path, root: &std::path::Path) -> client::ClientConfig {
    run(Command::new("/usr/bin/dpkg-deb").arg("-x").arg(deb).arg(root));
    client::ClientConfig::load(&root.join("etc/bpc-enroll/client.toml")).unwrap()
}

/// lintian, as Debian runs it, has no error or warning about the package.
fn lintian_finds_no_error_or_warning(deb: &std::path::Path) {
    if !testkit::skip(module_path!(), testkit::require_programs(&["/usr/bin/lintian"])) {
        let lintian = Command::new("/usr/bin/lintian").arg(deb).output().unwrap();
        let report = String::from_utf8_lossy(&lintian.stdout);
        assert!(lintian.status.success(), "{report}");
        assert!(!report.lines().any(|line| line.starts_with("E: ") || line.starts_with("W: ")), "{report}");
    }
}

#[test]
fn an_https_bundle_carries_the_servers_url_and_its_ca_and_no_key() {
    let keys = Keys::new();
    let ca = testkit::tls::TestCa::new(&keys.path("pki"));
    fs::create_dir(keys.path("out")).unwrap();
    let ca_file = ca.ca.display().to_string();
    let args = [
        "--server",
        "https://127.0.0.1:8443",
        "--ca-file",
        &ca_file,
        "--out",
        "out/site.deb",
        "--package-version",
        "1.2",
        "--maintainer",
        "Backup administrators <backup@example.org>",
    ];
    let output = keys.bundle(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout,
        "wrote out/site.deb (package bpc-enroll-site 1.2, for https://127.0.0.1:8443)\n\
         wrote out/site.tar.gz (the same files and an INSTALL note, for machines without dpkg)\n\
         Neither holds a secret. On each machine:\n  \
         apt-get install ./site.deb && bpc-enroll setup --user LOGON\n"
    );
    let deb = keys.path("out/site.deb");
    assert_eq!(
        etc_listing(&deb),
        [
            "drwxr-xr-x root/root ./etc/",
            "drwxr-xr-x root/root ./etc/bpc-enroll/",
            "-rw-r--r-- root/root ./etc/bpc-enroll/client.toml",
            "drwxr-xr-x root/root ./etc/bpc-enroll/site/",
            "-rw-r--r-- root/root ./etc/bpc-enroll/site/ca.pem",
        ]
    );
    assert_eq!(conffiles(&deb), "/etc/bpc-enroll/client.toml\n/etc/bpc-enroll/site/ca.pem\n");
    let root = keys.path("root");
    let config = unpack(&deb, &root);
    assert_eq!(config.server.as_deref(), Some("https://127.0.0.1:8443"));
    assert_eq!(config.ca_file.as_deref(), Some(root.join("etc/bpc-enroll/site/ca.pem").as_path()));
    assert_eq!((config.register_key, config.known_hosts), (None, None));
    assert_eq!(fs::read(root.join("etc/bpc-enroll/site/ca.pem")).unwrap(), fs::read(&ca.ca).unwrap());

    let tarball = run(Command::new("/bin/tar").arg("-tzf").arg(keys.path("out/site.tar.gz")));
    assert_eq!(
        tarball.lines().collect::<Vec<_>>(),
        [
            "bpc-enroll-site/INSTALL",
            "bpc-enroll-site/etc/bpc-enroll/client.toml",
            "bpc-enroll-site/etc/bpc-enroll/site/",
            "bpc-enroll-site/etc/bpc-enroll/site/ca.pem",
        ]
    );
    let note =
        run(Command::new("/bin/tar").arg("-xzOf").arg(keys.path("out/site.tar.gz")).arg("bpc-enroll-site/INSTALL"));
    assert!(note.contains("site/ca.pem is the CA its HTTPS certificate must be signed by"), "{note}");

    lintian_finds_no_error_or_warning(&deb);

    // Without --ca-file the machines trust their system's CAs: client.toml alone.
    let output = keys.bundle(&["--server", "https://backup.example.org", "--out", "plain.deb"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        etc_listing(&keys.path("plain.deb")),
        [
            "drwxr-xr-x root/root ./etc/",
            "drwxr-xr-x root/root ./etc/bpc-enroll/",
            "-rw-r--r-- root/root ./etc/bpc-enroll/client.toml",
        ]
    );
    let plain = keys.path("plain");
    run(Command::new("/usr/bin/dpkg-deb").arg("-x").arg(keys.path("plain.deb")).arg(&plain));
    assert_eq!(
        fs::read_to_string(plain.join("etc/bpc-enroll/client.toml")).unwrap(),
        "# bpc-enroll's settings for this site, installed by the bpc-enroll-site package: see client.toml(5).\n\
         server = \"https://backup.example.org\"\n"
    );
    let tarball = run(Command::new("/bin/tar").arg("-tzf").arg(keys.path("plain.tar.gz")));
    assert_eq!(tarball, "bpc-enroll-site/INSTALL\nbpc-enroll-site/etc/bpc-enroll/client.toml\n");
}

#[test]
fn a_bundle_written_over_an_old_one_is_private_again() {
    let keys = Keys::new();
    fs::create_dir(keys.path("out")).unwrap();
    for file in ["out/site.deb", "out/site.tar.gz"] {
        fs::write(keys.path(file), "old").unwrap();
        fs::set_permissions(keys.path(file), fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert!(keys.bundle(SITE_ARGS).status.success());
    for file in ["out/site.deb", "out/site.tar.gz"] {
        assert_eq!(fs::metadata(keys.path(file)).unwrap().permissions().mode() & 0o777, 0o600, "{file}");
        assert_ne!(fs::read(keys.path(file)).unwrap(), b"old");
    }
}

#[test]
fn help_of_bundle_names_what_the_package_installs() {
    let output = assert_cmd::Command::cargo_bin("bpc-register")
        .unwrap()
        .args(["bundle", "--help"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!("bundle_help", String::from_utf8(output.stdout).unwrap());
}
