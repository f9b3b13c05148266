//! `bpc-enroll` as a user runs it: the demo, then setups against its server.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use assert_cmd::Command;
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

fn bpc_enroll() -> Command {
    let mut command = Command::cargo_bin("bpc-enroll").unwrap();
    command.env_remove("BPC_ENROLL_CONFIG").env("HOME", "/nonexistent");
    command
}

/// `bpc-enroll` in a session of its own, so that it has no terminal to ask
/// on even when the tests run from one.
fn bpc_enroll_without_terminal() -> Command {
    let mut command = Command::new("/usr/bin/setsid");
    command.arg("-w").arg(assert_cmd::cargo::cargo_bin("bpc-enroll"));
    command.env_remove("BPC_ENROLL_CONFIG").env("HOME", "/nonexistent");
    command
}

/// The contents of every cache file under `xdg`.
fn cache_files(xdg: &Path) -> Vec<String> {
    files_under(&xdg.join("bpc-enroll/auth/svn.simple")).iter().map(|f| fs::read_to_string(f).unwrap()).collect()
}

/// A demo server in a fresh folder; returns the folder and its server URL.
fn demo() -> (tempfile::TempDir, String) {
    let (dir, _, url) = demo_with("never");
    (dir, url)
}

fn setup(url: &str, user: &str, client_ip: &str, root: &Path) -> assert_cmd::assert::Assert {
    bpc_enroll()
        .args(["setup", "--server", url, "--user", user, "--client-ip", client_ip, "--root"])
        .arg(root)
        .write_stdin("")
        .assert()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// A demo server built by `bpc-enroll demo --auth AUTH` in a new folder:
/// (the folder, the demo's folder inside it, its `file://` URL).
fn demo_with(auth: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    bpc_enroll().args(["demo", "--auth", auth, "--dir"]).arg(&demo_dir).assert().success();
    let url = format!("file://{}", demo_dir.join("server.toml").display());
    (dir, demo_dir, url)
}

#[test]
fn demo_prints_the_exchange_and_enrolls_alice() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let output = bpc_enroll().args(["demo", "--dir"]).arg(&demo_dir).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("request         linux:alice") || stdout.contains("request         macos:alice"));
    assert!(stdout.contains("answer          success"), "{stdout}");
    assert!(stdout.contains("url: http://backup.example.org/backuppc/index.cgi?host=pc-alice.example.org"));
    let status_hint = format!(" status --root {}/client --client-ip 127.0.0.2 ", demo_dir.display());
    assert!(stdout.contains(&status_hint), "{stdout}");
    let hosts = fs::read_to_string(demo_dir.join("backuppc/hosts")).unwrap();
    assert!(hosts.ends_with("pc-alice.example.org\t0\talice\n"), "{hosts}");
    let keys = fs::read_to_string(demo_dir.join("client/var/lib/bckpciuem/.ssh/authorized_keys")).unwrap();
    assert!(keys.starts_with("restrict,command=\"") && keys.contains(" rsyncsend --config "), "{keys}");
    assert!(keys.contains("/client/etc/bpc-enroll/client.toml\" ssh-ed25519 "), "{keys}");
}

#[test]
fn the_demos_server_is_clean_under_bpc_registers_check() {
    let (_dir, demo_dir, _) = demo_with("never");
    let output = Command::new(bpc_register())
        .env_clear()
        .arg("--config")
        .arg(demo_dir.join("server.toml"))
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        matches!(lines.as_slice(), [files, config] if files.starts_with("ok: ") && config.starts_with("ok: ")),
        "{stdout}"
    );
}

#[test]
fn demo_without_dir_makes_and_names_a_new_folder() {
    let output = bpc_enroll().arg("demo").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let first = stdout.lines().next().unwrap();
    let dir = PathBuf::from(first.strip_prefix("bpc-enroll demo in ").unwrap());
    assert!(dir.join("server.toml").is_file());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn demo_refuses_a_folder_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("precious"), "keep me").unwrap();
    bpc_enroll().args(["demo", "--dir"]).arg(dir.path()).assert().code(2).stderr(predicate::str::contains("not empty"));
    assert_eq!(files_under(dir.path()), [dir.path().join("precious")]);
}

#[test]
fn setup_enrolls_bob_and_prints_the_url() {
    let (dir, url) = demo();
    let root = dir.path().join("bob");
    setup(&url, "bob", "127.0.0.3", &root)
        .success()
        .stdout("http://backup.example.org/backuppc/index.cgi?host=pc-bob.example.org\n")
        .stderr(predicate::str::contains("registered pc-bob.example.org for bob"));
    let keys = fs::read_to_string(root.join("var/lib/bckpciuem/.ssh/authorized_keys")).unwrap();
    assert_eq!(keys.lines().count(), 1);
    assert!(keys.contains("restrict,command=\""), "{keys}");
    let config = fs::read_to_string(root.join("etc/bpc-enroll/client.toml")).unwrap();
    assert!(config.contains(&format!("server = \"{url}\"")), "{config}");

    // Running it again is safe: same answer, nothing rewritten.
    let before = fs::read(root.join("var/lib/bckpciuem/.ssh/authorized_keys")).unwrap();
    setup(&url, "bob", "127.0.0.3", &root).success();
    assert_eq!(fs::read(root.join("var/lib/bckpciuem/.ssh/authorized_keys")).unwrap(), before);
}

/// Every file under `dir` but `except`, with its bytes.
fn contents_under(dir: &Path, except: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = files_under(dir);
    files.retain(|file| file != except);
    files.sort();
    files.into_iter().map(|file| (file.clone(), fs::read(file).unwrap())).collect()
}

#[test]
fn status_says_what_a_password_server_knows_of_this_machine_without_a_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    bpc_enroll().args(["demo", "--auth", "password", "--dir"]).arg(&demo_dir).assert().success();
    // BackupPC's TopDir in the demo folder, with one full backup of alice's machine.
    let top = demo_dir.join("top");
    fs::create_dir_all(top.join("pc/pc-alice.example.org")).unwrap();
    fs::write(top.join("pc/pc-alice.example.org/backups"), "0\tfull\t1700000000\t1700000100\t10\n").unwrap();
    let config_pl = demo_dir.join("backuppc/config.pl");
    let text = fs::read_to_string(&config_pl).unwrap() + &format!("$Conf{{TopDir}} = '{}';\n", top.display());
    fs::write(&config_pl, text).unwrap();
    let log = demo_dir.join("register.log");
    let before = contents_under(&demo_dir, &log);
    let status = |client_ip: Option<&str>| {
        let mut command = bpc_enroll_without_terminal();
        command.arg("status").arg("--root").arg(demo_dir.join("client")).write_stdin("");
        command.args(client_ip.map(|ip| ["--client-ip", ip]).iter().flatten());
        let output = command.output().unwrap();
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap().replace(&demo_dir.display().to_string(), "DEMO");
        (output.status.code(), text(output.stdout), text(output.stderr))
    };
    let local = "registration  ok      pc-alice.example.org at file://DEMO/server.toml \
                 (http://backup.example.org/backuppc/index.cgi?host=pc-alice.example.org)\n\
                 backup key    ok      1 key(s) bound to rsyncsend in DEMO/client/var/lib/bckpciuem/.ssh/authorized_keys\n";

    let (code, stdout, stderr) = status(Some("127.0.0.2"));
    assert_eq!(
        stdout,
        format!(
            "{local}server        ok      file://DEMO/server.toml answers\n\
             registered    ok      pc-alice.example.org, in the server's list of hosts\n\
             owner         ok      alice\n\
             page          ok      http://backup.example.org/backuppc/index.cgi?host=pc-alice.example.org\n\
             last backup   ok      started 2023-11-14T22:13:20Z\n"
        ),
        "{stderr}"
    );
    assert_eq!(code, Some(0), "{stderr}");

    // From bob's address the server speaks of bob's machine, which it does not have.
    let (code, stdout, stderr) = status(Some("127.0.0.3"));
    assert_eq!(
        stdout,
        format!(
            "{local}server        ok      file://DEMO/server.toml answers\n\
             host          MISSING the server names this machine pc-bob.example.org now, but setup registered \
             pc-alice.example.org: its address or name changed; run setup again here\n\
             registered    MISSING pc-bob.example.org is not in the server's list of hosts: run setup again\n"
        )
    );
    assert_eq!((code, stderr.as_str()), (Some(1), "bpc-enroll: something above is missing or wrong\n"));

    let (code, stdout, stderr) = status(Some("127.0.0.9"));
    assert!(
        stdout.ends_with(
            "registered    MISSING the server refused to say:\n                      \
             127.0.0.9 0 127.0.0.1 0 invalid DNS name for this IP\n"
        ),
        "{stdout}"
    );
    assert_eq!(code, Some(1), "{stderr}");

    let (code, stdout, stderr) = status(None);
    assert!(
        stdout.ends_with(
            "server        MISSING a file:// server needs --client-ip: the address whose DNS name the server checks\n"
        ),
        "{stdout}"
    );
    assert_eq!((code, stderr.as_str()), (Some(2), "bpc-enroll: the server cannot be asked as configured\n"));

    assert_eq!(contents_under(&demo_dir, &log), before, "status changed a file");
    let log = fs::read_to_string(&log).unwrap();
    let asked =
        "status of host pc-alice.example.org asked: registered to alice, last backup 2023-11-14T22:13:20Z (protocol 2)";
    assert!(log.contains(asked), "{log}");
    assert!(!log.contains("auth-required") && !log.contains("authentication failed"), "{log}");
}

#[test]
fn a_refusal_is_shown_as_the_server_wrote_it_and_installs_nothing() {
    let (dir, url) = demo();
    let root = dir.path().join("evil");
    setup(&url, "alice", "127.0.0.9", &root)
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("127.0.0.9 0 127.0.0.1 0 invalid DNS name for this IP"));
    setup(&url, "bob", "127.0.0.2", &root)
        .code(1)
        .stderr(predicate::str::contains("refusing to re-register client host with username"));
    setup(&url, "nobody", "127.0.0.3", &root).code(1).stderr(predicate::str::contains(" bad user request"));
    assert!(files_under(&root).is_empty());
}

#[test]
fn usage_errors_exit_2_and_unreachable_servers_exit_3() {
    let (dir, url) = demo();
    let root = dir.path().join("r");
    bpc_enroll()
        .args(["setup", "--server", &url, "--user", "bob", "--root"])
        .arg(&root)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--client-ip"));
    bpc_enroll()
        .args(["setup", "--server", &url, "--client-ip", "127.0.0.3", "--root"])
        .arg(&root)
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--user"));
    setup(&url, "bob;id", "127.0.0.3", &root).code(2).stderr(predicate::str::contains("logon"));
    setup("gopher://backup.example.org", "bob", "127.0.0.3", &root).code(2);
    let missing = format!("file://{}", dir.path().join("no/server.toml").display());
    setup(&missing, "bob", "127.0.0.3", &root).code(3).stderr(predicate::str::contains("cannot reach the server"));
    assert!(files_under(&root).is_empty());
}

#[test]
fn a_broken_client_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    fs::write(&config, "account = \"bckpciuem\"\nsever = \"ssh://x\"\n").unwrap();
    bpc_enroll()
        .args(["setup", "--user", "bob", "--root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("client.toml:2:").and(predicate::str::contains("sever")));
}

#[test]
fn help_is_complete_for_every_command() {
    let commands = ["setup", "demo", "status", "uninstall", "auth", "rsyncsend"];
    let mut every = vec![vec!["--help"]];
    every.extend(commands.iter().map(|command| vec![*command, "--help"]));
    for args in every {
        let output = bpc_enroll().args(&args).env("COLUMNS", "100").output().unwrap();
        assert!(output.status.success());
        let name = format!("help_{}", args.join("_").replace("--", ""));
        let text = String::from_utf8(output.stdout).unwrap();
        insta::assert_snapshot!(name, text);
    }
    let top = String::from_utf8(bpc_enroll().arg("--help").output().unwrap().stdout).unwrap();
    for command in commands {
        assert!(top.contains(&format!("\n  {command} ")), "{command} is missing from --help");
    }
}

#[test]
fn version_lists_the_transports_and_credential_stores_of_this_build() {
    let output = bpc_enroll().arg("--version").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with(&format!("bpc-enroll, version {}\n", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("* ssh : ") && text.contains("  - handles 'ssh' scheme\n"), "{text}");
    assert!(
        text.contains("* https : ") && text.contains("  - handles 'https' scheme\n  - handles 'http' scheme\n"),
        "{text}"
    );
    // The tests are built with the in-process server.
    assert!(text.contains("* file : ") && text.contains("  - handles 'file' scheme\n"), "{text}");
    assert!(text.contains("The following credential stores are available:\n* the Subversion-format file cache"));
    bpc_enroll().args(["--version", "status"]).assert().code(2);
}

#[test]
fn auth_lists_cached_realms_without_passwords_and_removes_them() {
    let xdg = tempfile::tempdir().unwrap();
    let cache = client::credentials::CredentialCache::new(xdg.path().join("bpc-enroll/auth/svn.simple"));
    cache
        .store("<ssh://backup.example.org:22> Example backups", "alice", &protocol::Secret::new("alice-demo"), || true)
        .unwrap();
    cache.store("<ssh://other.example.org:22> Other", "bob", &protocol::Secret::new("bob-demo"), || true).unwrap();
    let auth = |args: &[&str]| {
        let output = bpc_enroll().env("XDG_CONFIG_HOME", xdg.path()).arg("auth").args(args).output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let listing = auth(&[]);
    assert!(listing.contains("Realm: <ssh://backup.example.org:22> Example backups\nUsername: alice\n"), "{listing}");
    assert!(listing.contains("Username: bob"));
    assert!(!listing.contains("alice-demo") && !listing.contains("bob-demo"));
    assert_eq!(
        auth(&["--remove", "backup.example.org"]),
        "Removed: <ssh://backup.example.org:22> Example backups (alice)\n"
    );
    let listing = auth(&[]);
    assert!(!listing.contains("alice") && listing.contains("bob"), "{listing}");
}

#[test]
fn a_challenged_setup_caches_unless_told_not_to() {
    let (dir, demo_dir, url) = demo_with("password");
    let plaintext_yes = dir.path().join("plaintext-yes.toml");
    fs::write(&plaintext_yes, "store-plaintext-passwords = \"yes\"\n").unwrap();
    let setup_with = |xdg: &Path, extra: &[&str], password: &str| {
        let args =
            ["setup", "--server", &url, "--user", "bob", "--client-ip", "127.0.0.3", "--password-stdin", "--root"];
        bpc_enroll_without_terminal()
            .env("XDG_CONFIG_HOME", xdg)
            .args(args)
            .arg(dir.path().join("root"))
            .args(extra)
            .write_stdin(format!("{password}\n"))
            .assert()
    };
    let setup = |xdg: &Path, extra: &[&str]| setup_with(xdg, extra, "bob-demo");
    let cached = dir.path().join("xdg-cached");
    setup(&cached, &["--config", plaintext_yes.to_str().unwrap()]).success();
    let files = files_under(&cached.join("bpc-enroll/auth/svn.simple"));
    assert_eq!(files.len(), 1);
    assert!(
        fs::read_to_string(&files[0])
            .unwrap()
            .contains(&format!("<file://{}> Example backups", demo_dir.join("server.toml").display()))
    );

    let flag = dir.path().join("xdg-flag");
    setup(&flag, &["--no-auth-cache"]).success();
    assert!(!flag.exists());

    let user_config = dir.path().join("xdg-user");
    fs::create_dir_all(user_config.join("bpc-enroll")).unwrap();
    fs::write(user_config.join("bpc-enroll/config.toml"), "store-auth-creds = false\n").unwrap();
    setup(&user_config, &[]).success();
    assert!(!user_config.join("bpc-enroll/auth").exists());

    let system_config = dir.path().join("client.toml");
    fs::write(&system_config, "store-auth-creds = false\n").unwrap();
    let system_xdg = dir.path().join("xdg-system");
    setup(&system_xdg, &["--config", system_config.to_str().unwrap()]).success();
    assert!(!system_xdg.exists());

    // A wrong password on stdin moves on to the cache, whose password is right.
    let wrong_then_cached = |xdg: &Path| setup_with(xdg, &["--config", plaintext_yes.to_str().unwrap()], "not-bobs");
    wrong_then_cached(&cached).success();
    // With nothing after it (no cache, no terminal), the failure names the options.
    wrong_then_cached(&dir.path().join("xdg-empty")).code(2).stderr(predicate::str::contains("--password-stdin"));
}

#[test]
fn a_password_is_cached_unencrypted_only_as_store_plaintext_passwords_says() {
    let (dir, _, url) = demo_with("password");
    let realm = format!("<{url}> Example backups");
    let setup = |name: &str, client_toml: &str, user_toml: Option<&str>| {
        let xdg = dir.path().join(format!("xdg-{name}"));
        if let Some(text) = user_toml {
            fs::create_dir_all(xdg.join("bpc-enroll")).unwrap();
            fs::write(xdg.join("bpc-enroll/config.toml"), text).unwrap();
        }
        let config = dir.path().join(format!("{name}.toml"));
        fs::write(&config, client_toml).unwrap();
        let output = bpc_enroll_without_terminal()
            .env("XDG_CONFIG_HOME", &xdg)
            .args(["setup", "--server", &url, "--user", "bob", "--client-ip", "127.0.0.3", "--password-stdin"])
            .arg("--root")
            .arg(dir.path().join(format!("root-{name}")))
            .arg("--config")
            .arg(&config)
            .write_stdin("bob-demo\n")
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(output.status.success(), "{name}: {stderr}");
        let files = cache_files(&xdg);
        assert_eq!(files.len(), 1, "{name}: {files:?}");
        (files.into_iter().next().unwrap(), stderr)
    };
    let username_only = format!("K 15\nsvn:realmstring\nV {}\n{realm}\nK 8\nusername\nV 3\nbob\nEND\n", realm.len());

    // The default is to ask; with no terminal to ask on, only the username is kept, and setup says why.
    let (file, stderr) = setup("default", "", None);
    assert_eq!(file, username_only);
    assert!(stderr.contains("the password was not stored because there was no terminal to ask"), "{stderr}");

    let (file, stderr) = setup("yes", "store-plaintext-passwords = \"yes\"\n", None);
    assert!(file.contains("K 8\npassword\nV 8\nbob-demo\n"), "{file}");
    assert!(stderr.contains("is stored unencrypted in"), "{stderr}");

    let (file, stderr) = setup("no", "store-plaintext-passwords = \"no\"\n", None);
    assert_eq!(file, username_only);
    assert!(stderr.contains("store-plaintext-passwords is \"no\""), "{stderr}");

    // The user's own choice wins over client.toml's, as Subversion's per-user servers file does.
    let (file, _) =
        setup("user-no", "store-plaintext-passwords = \"yes\"\n", Some("store-plaintext-passwords = \"no\"\n"));
    assert_eq!(file, username_only);
    let (file, _) = setup("user-yes", "", Some("store-plaintext-passwords = \"yes\"\n"));
    assert!(file.contains("bob-demo"), "{file}");
}

#[test]
fn setup_does_not_write_the_password_through_a_link_planted_in_the_cache() {
    let (dir, _, url) = demo_with("password");
    let config = dir.path().join("client.toml");
    fs::write(&config, "store-plaintext-passwords = \"yes\"\n").unwrap();
    let xdg = dir.path().join("xdg");
    let setup = |root: &str| {
        bpc_enroll_without_terminal()
            .env("XDG_CONFIG_HOME", &xdg)
            .args(["setup", "--server", &url, "--user", "bob", "--client-ip", "127.0.0.3", "--password-stdin"])
            .arg("--root")
            .arg(dir.path().join(root))
            .arg("--config")
            .arg(&config)
            .write_stdin("bob-demo\n")
            .output()
            .unwrap()
    };
    assert!(setup("root1").status.success());
    let cached = files_under(&xdg.join("bpc-enroll/auth/svn.simple")).pop().unwrap();

    // Someone swaps the cache file for a link to a file of theirs.
    let outside = dir.path().join("outside");
    fs::write(&outside, "theirs\n").unwrap();
    fs::remove_file(&cached).unwrap();
    std::os::unix::fs::symlink(&outside, &cached).unwrap();
    let output = setup("root2");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("the credentials were not cached") && stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(fs::read_to_string(&outside).unwrap(), "theirs\n");
    assert!(fs::symlink_metadata(&cached).unwrap().file_type().is_symlink());

    // Or the folder itself.
    let svn_simple = xdg.join("bpc-enroll/auth/svn.simple");
    fs::remove_dir_all(&svn_simple).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &svn_simple).unwrap();
    let output = setup("root3");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("svn.simple is not used: it is a symbolic link"), "{stderr}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

    // auth lists nothing through it either, and says why.
    let output = bpc_enroll().env("XDG_CONFIG_HOME", &xdg).arg("auth").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("symbolic link"));
}

#[test]
fn as_root_the_cache_is_not_kept_in_a_folder_another_user_owns() {
    if testkit::skip(module_path!(), if nix::unistd::geteuid().is_root() { Ok(()) } else { Err("needs root".into()) }) {
        return;
    }
    let (dir, _, url) = demo_with("password");
    let config = dir.path().join("client.toml");
    fs::write(&config, "store-plaintext-passwords = \"yes\"\n").unwrap();
    // sudo -E keeps the user's XDG_CONFIG_HOME: a folder that user owns.
    let users_config = dir.path().join("users-config");
    fs::create_dir(&users_config).unwrap();
    nix::unistd::chown(&users_config, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let roots_home = dir.path().join("root-home");
    fs::create_dir(&roots_home).unwrap();
    let setup = |root: &str| {
        let output = bpc_enroll_without_terminal()
            .env("XDG_CONFIG_HOME", &users_config)
            .env("HOME", &roots_home)
            .args(["setup", "--server", &url, "--user", "bob", "--client-ip", "127.0.0.3", "--password-stdin"])
            .arg("--root")
            .arg(dir.path().join(root))
            .arg("--config")
            .arg(&config)
            .write_stdin("bob-demo\n")
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(output.status.success(), "{stderr}");
        stderr
    };
    let stderr = setup("root1");
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert_eq!(fs::read_dir(&users_config).unwrap().count(), 0, "root wrote into the user's folder");
    let cached = files_under(&roots_home.join(".config/bpc-enroll/auth/svn.simple"));
    assert_eq!(cached.len(), 1, "{stderr}");

    // A cache file that belongs to someone else is neither trusted nor replaced.
    nix::unistd::chown(&cached[0], Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let before = fs::read(&cached[0]).unwrap();
    let stderr = setup("root2");
    assert!(stderr.contains("the credentials were not cached") && stderr.contains("belongs to uid 65534"), "{stderr}");
    assert_eq!(fs::read(&cached[0]).unwrap(), before);
    let auth =
        bpc_enroll().env("XDG_CONFIG_HOME", &users_config).env("HOME", &roots_home).arg("auth").output().unwrap();
    assert!(String::from_utf8_lossy(&auth.stderr).contains("belongs to uid 65534"));
    assert!(auth.stdout.is_empty());
}

/// The `bpc-register` built beside `bpc-enroll`.
fn bpc_register() -> PathBuf {
    testkit::bpc_register_beside(env!("CARGO_BIN_EXE_bpc-enroll"))
}

#[test]
fn a_file_setup_as_root_leaves_the_servers_files_to_the_folders_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let requirement = testkit::require_root_and(&["/usr/bin/setpriv", "/usr/bin/ssh-keygen"]).and_then(|()| {
        nix::unistd::User::from_name("backuppc").ok().flatten().ok_or_else(|| "no backuppc account".to_owned())
    });
    if testkit::skip(module_path!(), requirement.map(|_| ())) {
        return;
    }
    let backuppc = nix::unistd::User::from_name("backuppc").unwrap().unwrap();
    let (uid, gid) = (backuppc.uid.as_raw(), backuppc.gid.as_raw());
    let base = testkit::base_dir("file-root-");
    let server = base.path().join("server");
    fs::create_dir(&server).unwrap();
    // The server's folders belong to backuppc, its configuration to root.
    for folder in ["backuppc", "log"] {
        fs::create_dir(server.join(folder)).unwrap();
        std::os::unix::fs::chown(server.join(folder), Some(uid), Some(gid)).unwrap();
    }
    testkit::run(
        std::process::Command::new("/usr/bin/ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "backuppc@test", "-f"])
            .arg(server.join("id_ed25519")),
    );
    fs::write(server.join("backuppc/config.pl"), client::demo::BACKUPPC_CONFIG_PL).unwrap();
    fs::write(server.join("users.toml"), "[users.alice]\nname = \"Alice\"\n[users.bob]\nname = \"Bob\"\n").unwrap();
    fs::write(server.join("hosts.static"), "127.0.0.2 pc-alice.example.org\n127.0.0.3 pc-bob.example.org\n").unwrap();
    testkit::ServerToml::new()
        .backuppc("key", "id_ed25519.pub")
        .set_in("log", "path", "log/register.log")
        .write(&server.join("server.toml"));
    for file in ["users.toml", "hosts.static", "id_ed25519.pub"] {
        fs::set_permissions(server.join(file), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let register = base.path().join("bpc-register");
    fs::copy(bpc_register(), &register).unwrap();
    fs::set_permissions(&register, fs::Permissions::from_mode(0o755)).unwrap();

    let url = format!("file://{}", server.join("server.toml").display());
    setup(&url, "alice", "127.0.0.2", &base.path().join("client")).success();
    let conf = server.join("backuppc");
    for file in [
        conf.join("LOCK"),
        conf.join("hosts"),
        conf.join("pc-alice.example.org.pl"),
        conf.join("bpc-enroll-journal.jsonl"),
        server.join("log/register.log"),
    ] {
        let meta = fs::symlink_metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{} is not backuppc's", file.display());
    }

    // bpc-register, as sshd runs it, still registers the next host.
    let output = std::process::Command::new("/usr/bin/setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into(), "--".into()])
        .arg(&register)
        .arg("--config")
        .arg(server.join("server.toml"))
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", "linux:bob")
        .env("SSH_CONNECTION", "127.0.0.3 50000 127.0.0.1 22")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(fs::read_to_string(conf.join("hosts")).unwrap().contains("pc-bob.example.org\t0\tbob\n"));

    // A configuration that others may write could name any file for root
    // to write: root refuses it, as a configuration error, changing nothing.
    fs::set_permissions(server.join("server.toml"), fs::Permissions::from_mode(0o664)).unwrap();
    let hosts = fs::read(conf.join("hosts")).unwrap();
    let client = base.path().join("client-refused");
    let refused = setup(&url, "bob", "127.0.0.3", &client).code(2);
    let said = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        said.contains(&format!(
            "the server of {url} cannot be used as root: root does not use the configuration {}: others than root \
             may write it (mode 0664)",
            server.join("server.toml").display()
        )),
        "{said}"
    );
    assert_eq!(fs::read(conf.join("hosts")).unwrap(), hosts);
    assert!(files_under(&client).is_empty(), "{:?}", files_under(&client));
}
