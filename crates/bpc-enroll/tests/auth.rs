//! The Subversion authentication model over real OpenSSH: challenges, the
//! credential chain, the per-realm cache, the author of record.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use testkit::ServerToml;
use testkit::backuppc::give_to_backuppc;
use testkit::run;
use testkit::sshd::{Sshd, keygen};
use testkit::terminal::on_terminal;

const REALM: &str = "Example backups";

/// The `bpc-register` built beside `bpc-enroll`.
fn bpc_register() -> PathBuf {
    testkit::bpc_register_beside(env!("CARGO_BIN_EXE_bpc-enroll"))
}

/// A server folder readable by backuppc, with bpc-register's configuration
/// for `policy` and its own register key; returns (config, register key).
fn server_config(base: &Path, name: &str, policy: &str, alice_password: &str) -> (PathBuf, PathBuf) {
    let dir = base.join(name);
    let conf_dir = dir.join("backuppc");
    fs::create_dir_all(&conf_dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(conf_dir.join("hosts"), "host dhcp user moreUsers\n").unwrap();
    fs::write(conf_dir.join("config.pl"), client::demo::BACKUPPC_CONFIG_PL).unwrap();
    give_to_backuppc(&conf_dir);
    give_to_backuppc(&conf_dir.join("hosts"));
    keygen(&dir.join("backuppc_key"), "backuppc@test");
    set_alice_password(&dir, alice_password);
    fs::write(dir.join("hosts.static"), "127.0.0.1 pc-test.example.org\n").unwrap();
    let config = ServerToml::new()
        .set("auth", policy)
        .set("realm", REALM)
        .backuppc("url", "http://b/?host={host}")
        .set_in("log", "path", "backuppc/register.log")
        .write(&dir.join("server.toml"));
    for file in ["hosts.static", "backuppc_key.pub"] {
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let register_key = dir.join("register_key");
    keygen(&register_key, "register@test");
    (config, register_key)
}

fn set_alice_password(dir: &Path, password: &str) {
    let hash = server::directory::hash_password(&protocol::Secret::new(password)).unwrap();
    fs::write(dir.join("users.toml"), format!("[users.alice]\npassword = \"{hash}\"\n")).unwrap();
    fs::set_permissions(dir.join("users.toml"), fs::Permissions::from_mode(0o644)).unwrap();
}

fn client_config(dir: &Path, sshd: &Sshd, register_key: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("known_hosts"), sshd.known_hosts_line()).unwrap();
    let config = dir.join("client.toml");
    fs::write(
        &config,
        format!(
            "server = \"ssh://127.0.0.1:{}\"\nregister-key = \"{}\"\nknown-hosts = \"known_hosts\"\ntimeout = 5\n",
            sshd.port,
            register_key.display()
        ),
    )
    .unwrap();
    config
}

/// `bpc-enroll setup` under --root with a private XDG_CONFIG_HOME.
fn setup_command(config: &Path, root: &Path, xdg: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bpc-enroll"));
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("XDG_CONFIG_HOME", xdg)
        .args(["setup", "--user", "alice", "--root"])
        .arg(root)
        .arg("--config")
        .arg(config)
        .args(extra);
    command
}

/// Every command line seen in /proc while `running` is set.
fn watch_command_lines(running: Arc<AtomicBool>) -> std::thread::JoinHandle<BTreeSet<String>> {
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        while running.load(Ordering::Relaxed) {
            for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
                if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
                    seen.insert(String::from_utf8_lossy(&cmdline).replace('\0', " "));
                }
            }
        }
        seen
    })
}

fn realm_of(sshd: &Sshd) -> String {
    format!("<ssh://127.0.0.1:{}> {REALM}", sshd.port)
}

fn cache_file(xdg: &Path, realm: &str) -> PathBuf {
    use md5::{Digest, Md5};
    let digest: String = Md5::digest(realm.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    xdg.join("bpc-enroll/auth/svn.simple").join(digest)
}

#[test]
fn a_password_server_challenges_and_the_client_caches_like_subversion() {
    testkit::require!(testkit::system_requirements());
    let base = testkit::base_dir("run-");
    let base = base.path();
    let (password_config, password_key) = server_config(base, "password-server", "password", "alice-demo");
    let (never_config, never_key) = server_config(base, "never-server", "never", "alice-demo");
    let line = |key: &Path, config: &Path| {
        run(Command::new(bpc_register())
            .args(["authorized-keys", "--key"])
            .arg(key.with_extension("pub"))
            .arg("--config")
            .arg(config))
    };
    let keys = base.join("server-sshd/keys");
    fs::create_dir_all(&keys).unwrap();
    fs::write(keys.join("backuppc"), line(&password_key, &password_config) + &line(&never_key, &never_config)).unwrap();
    let sshd = Sshd::start(
        &base.join("server-sshd"),
        &format!("UsePAM yes\nAllowUsers backuppc\nAuthorizedKeysFile {}/%u", keys.display()),
    );
    let client = client_config(&base.join("client"), &sshd, &password_key);
    let xdg = base.join("xdg");
    let realm = realm_of(&sshd);
    let cache = cache_file(&xdg, &realm);

    // 1. No cache yet: a wrong password, then the right one at the second prompt.
    let running = Arc::new(AtomicBool::new(true));
    let watcher = watch_command_lines(running.clone());
    let (code, screen) =
        on_terminal(setup_command(&client, &base.join("root1"), &xdg, &[]), &["wrong-password", "alice-demo", "yes"]);
    running.store(false, Ordering::Relaxed);
    assert_eq!(code, Some(0), "{screen}");
    assert_eq!(screen.matches(&format!("Password for 'alice' at {realm}:")).count(), 2, "{screen}");
    let command_lines = watcher.join().unwrap();
    assert!(command_lines.iter().any(|c| c.contains("bpc-enroll setup")), "the watcher saw nothing");
    for secret in ["alice-demo", "wrong-password"] {
        assert!(!command_lines.iter().any(|c| c.contains(secret)), "{secret} was on a command line");
    }
    assert_eq!(
        fs::read_to_string(&cache).unwrap(),
        format!(
            "K 8\npasstype\nV 6\nsimple\nK 8\npassword\nV 10\nalice-demo\nK 15\nsvn:realmstring\nV {}\n{realm}\nK 8\nusername\nV 5\nalice\nEND\n",
            realm.len()
        )
    );
    assert_eq!(fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(cache.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);

    // 2. From the cache: no prompt is even possible.
    let output = setup_command(&client, &base.join("root2"), &xdg, &["--non-interactive"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // 3. The password changed on the server: the cache is refused, the prompt takes over, the cache is replaced.
    set_alice_password(password_config.parent().unwrap(), "alice-new");
    let (code, screen) = on_terminal(setup_command(&client, &base.join("root3"), &xdg, &[]), &["alice-new", "yes"]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(fs::read_to_string(&cache).unwrap().contains("V 9\nalice-new\n"));

    // 4. --password-stdin with --no-auth-cache: accepted, nothing written.
    let fresh_xdg = base.join("xdg-fresh");
    let mut command = setup_command(
        &client,
        &base.join("root4"),
        &fresh_xdg,
        &["--password-stdin", "--no-auth-cache", "--non-interactive"],
    );
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"alice-new\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!fresh_xdg.exists(), "--no-auth-cache wrote {}", fresh_xdg.display());

    // 5. Without a terminal or a cached password, the failure says which option to use.
    let output = setup_command(&client, &base.join("root5"), &base.join("xdg-empty"), &[])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--password-stdin"));

    // The author of record, and no secret in the server's files.
    let conf_dir = password_config.parent().unwrap().join("backuppc");
    let journal = fs::read_to_string(conf_dir.join("bpc-enroll-journal.jsonl")).unwrap();
    assert!(journal.lines().all(|l| l.contains("\"author\":\"alice\"")), "{journal}");
    for file in [conf_dir.join("bpc-enroll-journal.jsonl"), conf_dir.join("register.log"), sshd.log_path().to_owned()] {
        let text = fs::read_to_string(&file).unwrap_or_default();
        for secret in ["alice-demo", "alice-new", "wrong-password"] {
            assert!(!text.contains(secret), "{secret} is in {}", file.display());
        }
    }
    assert!(fs::read_to_string(conf_dir.join("register.log")).unwrap().contains("notice"));

    // 6. A `never` server never challenges; the registration has no author.
    let never_client = client_config(&base.join("never-client"), &sshd, &never_key);
    let output = setup_command(&never_client, &base.join("root6"), &base.join("xdg-never"), &["--non-interactive"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let journal = fs::read_to_string(never_config.parent().unwrap().join("backuppc/bpc-enroll-journal.jsonl")).unwrap();
    assert!(journal.contains("\"author\":\"\""), "{journal}");
    assert!(!base.join("xdg-never").exists());
}

/// `bpc-enroll status` under --root, with no terminal and nothing on standard
/// input; returns the exit code, standard output and standard error.
fn status(config: &Path, root: &Path) -> (Option<i32>, String, String) {
    let output = Command::new("/usr/bin/setsid")
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_bpc-enroll"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["status", "--root"])
        .arg(root)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

/// Every file under `dir` but `except`, with its bytes, and every folder
/// (with no bytes), through the folders below.
fn contents_under(dir: &Path, except: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.retain(|file| file != except);
    files.sort();
    let mut contents = Vec::new();
    for file in files {
        if file.is_dir() {
            let below = contents_under(&file, except);
            contents.push((file, Vec::new()));
            contents.extend(below);
        } else {
            contents.push((file.clone(), fs::read(&file).unwrap()));
        }
    }
    contents
}

#[test]
fn status_over_ssh_asks_a_password_server_without_a_challenge() {
    testkit::require!(testkit::system_requirements());
    let base = testkit::base_dir("run-");
    let base = base.path();
    let (config, register_key) = server_config(base, "password-server", "password", "alice-demo");
    // BackupPC's TopDir beside the server's folder, with one incremental backup of the machine.
    let top = base.join("password-server/top");
    let host_dir = top.join("pc/pc-test.example.org");
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(host_dir.join("backups"), "7\tincr\t1700086400\t1700086460\t2\n").unwrap();
    for folder in [top.clone(), top.join("pc"), host_dir.clone()] {
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(host_dir.join("backups"), fs::Permissions::from_mode(0o644)).unwrap();
    let config_pl = base.join("password-server/backuppc/config.pl");
    let text = fs::read_to_string(&config_pl).unwrap() + &format!("$Conf{{TopDir}} = '{}';\n", top.display());
    fs::write(&config_pl, text).unwrap();
    // What a server that knows only `OS:logon` answers to `info: proto=2`:
    // its parser reads an empty logon (protocol's
    // `an_old_server_answers_a_status_request_bad_user_request`).
    let old_server = base.join("old-bpc-register");
    fs::write(&old_server, "#!/bin/sh\necho \"$SSH_CONNECTION bad user request\"\nexit 1\n").unwrap();
    fs::set_permissions(&old_server, fs::Permissions::from_mode(0o755)).unwrap();
    let old_key = base.join("old_register_key");
    let old_public = keygen(&old_key, "old-register@test");
    let line = run(Command::new(bpc_register())
        .args(["authorized-keys", "--key"])
        .arg(register_key.with_extension("pub"))
        .arg("--config")
        .arg(&config));
    let keys = base.join("server-sshd/keys");
    fs::create_dir_all(&keys).unwrap();
    let old_line = format!("restrict,command=\"{}\" {old_public}\n", old_server.display());
    fs::write(keys.join("backuppc"), line + &old_line).unwrap();
    let sshd = Sshd::start(
        &base.join("server-sshd"),
        &format!("UsePAM yes\nAllowUsers backuppc\nAuthorizedKeysFile {}/%u", keys.display()),
    );
    let client = client_config(&base.join("client"), &sshd, &register_key);
    let root = base.join("root");
    let server_url = format!("ssh://127.0.0.1:{}", sshd.port);

    // Before setup: the server answers, and does not have this machine.
    let (code, stdout, stderr) = status(&client, &root);
    assert_eq!(
        stdout,
        format!(
            "registration  MISSING setup has not run here\n\
             backup key    MISSING 0 key(s) bound to rsyncsend in {}/var/lib/bckpciuem/.ssh/authorized_keys\n\
             server        ok      {server_url} answers\n\
             registered    MISSING pc-test.example.org is not in the server's list of hosts: run setup again\n",
            root.display()
        ),
        "{stderr}"
    );
    assert_eq!(code, Some(1), "{stderr}");

    let mut command = setup_command(&client, &root, &base.join("xdg"), &["--password-stdin", "--non-interactive"]);
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"alice-demo\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // After: no password is asked (there is no terminal and none on standard
    // input), the owner is said, and nothing on the server changes but its log.
    let conf_dir = config.parent().unwrap().join("backuppc");
    let log = conf_dir.join("register.log");
    let before = contents_under(&conf_dir, &log);
    let (code, stdout, stderr) = status(&client, &root);
    let expected_tail = format!(
        "server        ok      {server_url} answers\n\
         registered    ok      pc-test.example.org, in the server's list of hosts\n\
         owner         ok      alice\n\
         page          ok      http://b/?host=pc-test.example.org\n\
         last backup   ok      started 2023-11-15T22:13:20Z\n"
    );
    assert!(stdout.ends_with(&expected_tail), "{stdout}\n{stderr}");
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    assert_eq!(contents_under(&conf_dir, &log), before, "status changed a file of the server");
    let log = fs::read_to_string(&log).unwrap();
    let asked = log.lines().filter(|line| line.contains(" status of host pc-test.example.org asked: "));
    assert_eq!(asked.map(|line| line.split(' ').next().unwrap()).collect::<Vec<_>>(), ["info", "info"], "{log}");

    // A server older than status requests: said so, and not a failure.
    let old_client = client_config(&base.join("old-client"), &sshd, &old_key);
    let (code, stdout, stderr) = status(&old_client, &root);
    assert!(
        stdout.ends_with(&format!(
            "server        unknown {server_url} answers, but this server does not answer status requests \
             (its bpc-register predates them): what it knows of this machine cannot be shown\n"
        )),
        "{stdout}\n{stderr}"
    );
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
}

#[test]
fn on_a_terminal_the_client_asks_before_storing_a_password_unencrypted() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let demo = Command::new(env!("CARGO_BIN_EXE_bpc-enroll"))
        .args(["demo", "--auth", "password", "--dir"])
        .arg(&demo_dir)
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let url = format!("file://{}", demo_dir.join("server.toml").display());
    let realm = format!("<{url}> Example backups");
    let empty_config = dir.path().join("client.toml");
    fs::write(&empty_config, "").unwrap();
    let setup = |name: &str, answers: &[&str]| {
        let xdg = dir.path().join(format!("xdg-{name}"));
        let command = setup_command(
            &empty_config,
            &dir.path().join(format!("root-{name}")),
            &xdg,
            &["--server", &url, "--client-ip", "127.0.0.2"],
        );
        let (code, screen) = on_terminal(command, answers);
        assert_eq!(code, Some(0), "{screen}");
        (fs::read_to_string(cache_file(&xdg, &realm)).unwrap(), screen)
    };

    let (file, screen) = setup("yes", &["alice-demo", "maybe", "yes"]);
    assert!(
        screen.contains(&format!("ATTENTION!  Your password for authentication realm:\r\n\r\n   {realm}")),
        "{screen}"
    );
    assert!(screen.contains("Please type 'yes' or 'no': "), "{screen}");
    assert!(file.contains("K 8\npassword\nV 10\nalice-demo\n"), "{file}");
    assert!(screen.contains("is stored unencrypted in"), "{screen}");

    let (file, screen) = setup("no", &["alice-demo", "no"]);
    assert_eq!(file, format!("K 15\nsvn:realmstring\nV {}\n{realm}\nK 8\nusername\nV 5\nalice\nEND\n", realm.len()));
    assert!(screen.contains("the password was not stored because you answered no"), "{screen}");
}
