//! The real client against the real `bpc-register serve` over https:// on
//! 127.0.0.1, with a test CA: enrollment under each policy, the credential
//! cache reused and a rejected entry dropped, a server whose certificate
//! another CA signed refused with nothing changed, an unreachable server,
//! and a status request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is its failure"
)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use testkit::Daemon;
use testkit::https::{TestCa, give_to_service, serve};
use testkit::terminal::on_terminal;

const REALM: &str = "Example backups";

/// The `bpc-register` built beside `bpc-enroll`.
fn bpc_register() -> PathBuf {
    testkit::bpc_register_beside(env!("CARGO_BIN_EXE_bpc-enroll"))
}

fn requirements() -> Result<(), String> {
    testkit::require_root_and(&["/usr/bin/openssl", "/usr/bin/setpriv", "/usr/bin/perl"])
}

/// The demo's server with `policy`, 127.0.0.1 named pc-test.example.org
/// in its resolver, served over https:// on a free port of 127.0.0.1 with a
/// certificate from its own test CA.
struct Site {
    dir: tempfile::TempDir,
    ca: TestCa,
    port: u16,
    _serve: Daemon,
}

impl Site {
    fn start(policy: &str) -> Site {
        Site::start_with(policy, true)
    }

    /// With `tls` false, the service speaks plain HTTP (on loopback only).
    fn start_with(policy: &str, tls: bool) -> Site {
        let dir = tempfile::tempdir().unwrap();
        client::demo::run(Some(dir.path()), "/usr/bin/bpc-enroll", policy).unwrap();
        let resolver = dir.path().join("hosts.static");
        let names = fs::read_to_string(&resolver).unwrap() + "127.0.0.1   pc-test.example.org\n";
        fs::write(&resolver, names).unwrap();
        let ca = TestCa::new(&dir.path().join("tls"));
        let port = testkit::free_port();
        let path = dir.path().join("server.toml");
        let mut config: toml::Table = fs::read_to_string(&path).unwrap().parse().unwrap();
        let mut https = toml::Table::new();
        https.insert("listen".into(), vec![format!("127.0.0.1:{port}")].into());
        if tls {
            https.insert("cert".into(), ca.cert.to_str().unwrap().into());
            https.insert("key".into(), ca.key.to_str().unwrap().into());
        }
        config.insert("https".into(), toml::Value::Table(https));
        fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        give_to_service(dir.path());
        let serve = serve(&bpc_register(), &path, dir.path().join("serve.stderr"));
        Site { dir, ca, port, _serve: serve }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn realm(&self) -> String {
        format!("<{}> {REALM}", self.url())
    }

    fn hosts(&self) -> String {
        fs::read_to_string(self.path("backuppc/hosts")).unwrap()
    }

    /// The journal's records about pc-test.example.org, as (author, action).
    fn journal(&self) -> Vec<(String, String)> {
        let text = fs::read_to_string(self.path("registrations.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|record| record["host"] == "pc-test.example.org")
            .map(|record| {
                (record["author"].as_str().unwrap().to_owned(), record["action"].as_str().unwrap().to_owned())
            })
            .collect()
    }
}

/// A client folder whose `client.toml` names `server` and trusts `ca`.
fn client_config(dir: &Path, server: &str, ca: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let config = dir.join("client.toml");
    let text = format!(
        "server = \"{server}\"\nca-file = \"{}\"\ntimeout = 10\nstore-plaintext-passwords = \"yes\"\n",
        ca.display()
    );
    fs::write(&config, text).unwrap();
    config
}

/// `bpc-enroll setup --user alice --root ROOT --non-interactive`, with a
/// private XDG_CONFIG_HOME and `password` on standard input when given
/// (with `--password-stdin`); no terminal.
fn setup(config: &Path, root: &Path, xdg: &Path, password: Option<&str>) -> Output {
    let mut command = Command::new("/usr/bin/setsid");
    command
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_bpc-enroll"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("XDG_CONFIG_HOME", xdg)
        .args(["setup", "--user", "alice", "--non-interactive", "--root"])
        .arg(root)
        .arg("--config")
        .arg(config);
    if password.is_some() {
        command.arg("--password-stdin");
    }
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(password) = password {
        stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cache_file(xdg: &Path, realm: &str) -> PathBuf {
    use md5::{Digest, Md5};
    let digest: String = Md5::digest(realm.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    xdg.join("bpc-enroll/auth/svn.simple").join(digest)
}

/// The backup key line setup installed under `root`.
fn installed_key(root: &Path) -> String {
    fs::read_to_string(root.join("var/lib/bckpciuem/.ssh/authorized_keys")).unwrap()
}

/// Checks a successful setup: the page's URL printed, the key bound to
/// rsyncsend for the address the request went to.
fn assert_enrolled(output: &Output, root: &Path) {
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "http://backup.example.org/backuppc/index.cgi?host=pc-test.example.org\n");
    let key = installed_key(root);
    assert!(key.starts_with("from=\"127.0.0.1\",restrict,command=\""), "{key}");
}

#[test]
fn with_no_challenge_the_client_enrolls_over_https() {
    testkit::require!(requirements());
    let site = Site::start("never");
    let work = tempfile::tempdir().unwrap();
    let config = client_config(&work.path().join("client"), &site.url(), &site.ca.ca);
    let xdg = work.path().join("xdg");
    let root = work.path().join("root");
    assert_enrolled(&setup(&config, &root, &xdg, None), &root);
    assert!(site.hosts().ends_with("\npc-test.example.org\t0\talice\n"), "{}", site.hosts());
    assert_eq!(site.journal(), [("".to_owned(), "added".to_owned())]);
    assert!(!xdg.exists(), "nothing was cached: nothing was asked");
}

#[test]
fn plain_http_reaches_a_service_on_loopback() {
    testkit::require!(requirements());
    let site = Site::start_with("password", false);
    let work = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", site.port);
    let config = client_config(&work.path().join("client"), &url, &site.ca.ca);
    let xdg = work.path().join("xdg");
    let root = work.path().join("root");
    assert_enrolled(&setup(&config, &root, &xdg, Some("alice-demo")), &root);
    assert!(cache_file(&xdg, &format!("<{url}> {REALM}")).exists(), "cached under the http:// realm");
}

#[test]
fn a_password_server_challenges_and_the_cache_is_reused_then_dropped_when_rejected() {
    testkit::require!(requirements());
    let site = Site::start("password");
    let work = tempfile::tempdir().unwrap();
    let config = client_config(&work.path().join("client"), &site.url(), &site.ca.ca);
    let xdg = work.path().join("xdg");
    let cache = cache_file(&xdg, &site.realm());

    // 1. Without a credential the server's challenge cannot be answered.
    let output = setup(&config, &work.path().join("root0"), &work.path().join("xdg-empty"), None);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains(&format!("the server {} asks for a password", site.realm())));
    assert!(!work.path().join("root0/var").exists(), "nothing was installed");

    // 2. --password-stdin: accepted, cached under the client's own realmstring.
    let root = work.path().join("root1");
    assert_enrolled(&setup(&config, &root, &xdg, Some("alice-demo")), &root);
    let realm = site.realm();
    assert_eq!(
        fs::read_to_string(&cache).unwrap(),
        format!(
            "K 8\npasstype\nV 6\nsimple\nK 8\npassword\nV 10\nalice-demo\nK 15\nsvn:realmstring\nV {}\n{realm}\nK 8\nusername\nV 5\nalice\nEND\n",
            realm.len()
        )
    );
    assert_eq!(site.journal(), [("alice".to_owned(), "added".to_owned())]);

    // 3. From the cache: nothing on standard input, no terminal.
    let root = work.path().join("root2");
    assert_enrolled(&setup(&config, &root, &xdg, None), &root);
    assert!(cache.exists());
    assert_eq!(site.journal().len(), 2);
    assert_eq!(site.journal()[1].0, "alice", "the cached credential authenticated alice");

    // 4. A stale password in the cache: rejected and dropped, and with no
    //    other source the setup stops, nothing installed.
    let stale = fs::read_to_string(&cache).unwrap().replace("V 10\nalice-demo\n", "V 9\nalice-old\n");
    fs::write(&cache, stale).unwrap();
    let output = setup(&config, &work.path().join("root3"), &xdg, None);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(!cache.exists(), "the rejected credential is still cached");
    assert!(!work.path().join("root3/var").exists(), "nothing was installed");

    // 5. On a terminal, three wrong passwords: after the third rejection
    //    the server's answer ends it (exit 1), nothing installed or cached.
    let mut command = Command::new(env!("CARGO_BIN_EXE_bpc-enroll"));
    command.env_clear().env("PATH", "/usr/bin:/bin").env("XDG_CONFIG_HOME", &xdg);
    command.args(["setup", "--user", "alice", "--root"]).arg(work.path().join("root4")).arg("--config").arg(&config);
    let (code, screen) = on_terminal(command, &["wrong1", "wrong2", "wrong3"]);
    assert_eq!(code, Some(1), "{screen}");
    assert_eq!(screen.matches(&format!("Password for 'alice' at {realm}:")).count(), 3, "{screen}");
    assert!(screen.contains("authentication failed"), "{screen}");
    assert!(!work.path().join("root4/var").exists() && !cache.exists(), "{screen}");

    // No secret in the server's files.
    for file in ["registrations.jsonl", "register.log", "serve.stderr"] {
        let content = fs::read_to_string(site.path(file)).unwrap_or_default();
        for secret in ["alice-demo", "alice-old", "wrong1", "wrong2", "wrong3"] {
            assert!(!content.contains(secret), "{secret} is in {file}");
        }
    }
}

#[test]
fn a_new_hosts_server_challenges_a_new_host_only() {
    testkit::require!(requirements());
    let site = Site::start("new-hosts");
    let work = tempfile::tempdir().unwrap();
    let config = client_config(&work.path().join("client"), &site.url(), &site.ca.ca);
    let root = work.path().join("root1");
    assert_enrolled(&setup(&config, &root, &work.path().join("xdg1"), Some("alice-demo")), &root);
    // Registered to alice now: the same owner again is not challenged.
    let root = work.path().join("root2");
    assert_enrolled(&setup(&config, &root, &work.path().join("xdg2"), None), &root);
    assert!(!work.path().join("xdg2").exists(), "nothing was asked");
}

#[test]
fn a_server_whose_certificate_another_ca_signed_is_refused_and_nothing_changes() {
    testkit::require!(requirements());
    let site = Site::start("never");
    let work = tempfile::tempdir().unwrap();
    // Another CA of the same name: the issuer is found, its signature fails.
    let other = TestCa::new(&work.path().join("other-ca"));
    let config = client_config(&work.path().join("client"), &site.url(), &other.ca);
    let hosts = site.hosts();
    let root = work.path().join("root");
    let output = setup(&config, &root, &work.path().join("xdg"), None);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        format!(
            "bpc-enroll: the TLS certificate of 127.0.0.1 ({}) does not verify against the CA certificates in {} \
             (ca-file in client.toml): its signature does not verify (BadSignature); refusing to register (a forged server could read this whole \
             machine); nothing was changed. If the server's certificate really changed, get its CA from the backup \
             administrator (ca-file in client.toml)\n",
            site.url(),
            other.ca.display()
        )
    );
    assert!(!root.exists(), "setup wrote under {}", root.display());
    assert_eq!(site.hosts(), hosts);
    assert!(site.journal().is_empty());
}

#[test]
fn an_unreachable_https_server_exits_3() {
    let work = tempfile::tempdir().unwrap();
    // Any CA will do: nothing answers on the port.
    let ca = TestCa::new(&work.path().join("ca"));
    let port = testkit::free_port();
    let config = client_config(&work.path().join("client"), &format!("https://127.0.0.1:{port}"), &ca.ca);
    let root = work.path().join("root");
    let output = setup(&config, &root, &work.path().join("xdg"), None);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with(&format!("bpc-enroll: cannot reach the server https://127.0.0.1:{port}: ")), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!root.exists());
}

#[test]
fn status_asks_an_https_server_without_a_challenge() {
    testkit::require!(requirements());
    let site = Site::start("password");
    let work = tempfile::tempdir().unwrap();
    let config = client_config(&work.path().join("client"), &site.url(), &site.ca.ca);
    let root = work.path().join("root");
    assert_enrolled(&setup(&config, &root, &work.path().join("xdg"), Some("alice-demo")), &root);
    let output = Command::new("/usr/bin/setsid")
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_bpc-enroll"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["status", "--root"])
        .arg(&root)
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "server        ok      {} answers\n\
             registered    ok      pc-test.example.org, in the server's list of hosts\n\
             owner         ok      alice\n",
            site.url()
        )),
        "{stdout}\n{}",
        text(&output.stderr)
    );
}
