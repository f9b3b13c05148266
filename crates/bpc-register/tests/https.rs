//! `bpc-register serve`, the https:// transport, through the real thing:
//! the service started as an unprivileged account on 127.0.0.1 with a test
//! CA, driven by `curl` from chosen loopback source addresses (the static
//! resolver names them), and by raw sockets for the slow clients.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::Daemon;
use testkit::https::{Reply, TestCa, as_service, form, give_to_service, serve, serve_activated};

const PROGRAM: &str = env!("CARGO_BIN_EXE_bpc-register");
const REALM: &str = "Example backups";

fn requirements() -> Result<(), String> {
    testkit::require_root_and(&[
        "/usr/bin/curl",
        "/usr/bin/openssl",
        "/usr/bin/setpriv",
        "/usr/bin/systemd-socket-activate",
        "/usr/bin/perl",
    ])
}

/// A demo server (alice and bob; pc-bob.example.org is 127.0.0.3 and
/// free; 127.0.0.9 is outside the domain) with `policy`, carol an
/// administrator, an `[https]` table from `https` and a test CA.
struct Site {
    dir: tempfile::TempDir,
    ca: TestCa,
    port: u16,
}

impl Site {
    fn new(policy: &str, tls: bool, https: &[(&str, toml::Value)]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        client::demo::run(Some(dir.path()), "/usr/bin/bpc-enroll", policy).unwrap();
        let users = fs::read_to_string(dir.path().join("users.toml")).unwrap();
        let carol = server::directory::hash_password(&protocol::Secret::new("carol-demo")).unwrap();
        fs::write(dir.path().join("users.toml"), format!("{users}\n[users.carol]\npassword = \"{carol}\"\n")).unwrap();
        let ca = TestCa::new(&dir.path().join("tls"));
        let port = testkit::free_port();
        let path = dir.path().join("server.toml");
        let mut config: toml::Table = fs::read_to_string(&path).unwrap().parse().unwrap();
        let mut table = toml::Table::new();
        table.insert("listen".into(), vec![format!("127.0.0.1:{port}")].into());
        if tls {
            table.insert("cert".into(), ca.cert.to_str().unwrap().into());
            table.insert("key".into(), ca.key.to_str().unwrap().into());
        }
        for (key, value) in https {
            table.insert((*key).into(), value.clone());
        }
        config.insert("https".into(), toml::Value::Table(table));
        config.insert("admins".into(), vec!["carol"].into());
        fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        give_to_service(dir.path());
        Site { dir, ca, port }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn serve(&self) -> Daemon {
        serve(Path::new(PROGRAM), &self.path("server.toml"), self.path("serve.stderr"))
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("register.log")).unwrap_or_default()
    }

    fn hosts(&self) -> String {
        fs::read_to_string(self.path("backuppc/hosts")).unwrap()
    }

    /// The log lines about the connection whose client port is `port`.
    fn lines_of(&self, client: &str, port: u16) -> Vec<String> {
        let prefix = format!(": {client} {port} 127.0.0.1 {} ", self.port);
        self.log().lines().filter(|line| line.contains(&prefix)).map(str::to_owned).collect()
    }
}

/// `curl` from source address `from` with `args`, the URL last.
fn curl(site: &Site, from: &str, args: &[&str]) -> Reply {
    testkit::https::curl(&site.ca.ca, from, args)
}

/// POSTs `body` as a form to /register from `from`, with `extra` arguments.
fn post(site: &Site, from: &str, body: &str, extra: &[&str]) -> Reply {
    let mut args = form(body);
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(site.url("https", "/register"));
    curl(site, from, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The forced command's answer to `request` (stdin `input`), as sshd would
/// run it as the same account, without the challenge's own lines.
fn over_ssh(site: &Site, request: &str, from: &str, input: &str) -> String {
    let mut command = as_service(Path::new(PROGRAM));
    command
        .env("SSH_ORIGINAL_COMMAND", request)
        .env("SSH_CONNECTION", format!("{from} 50000 127.0.0.1 22"))
        .arg("--config")
        .arg(site.path("server.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines().filter(|line| !line.starts_with("auth-required ")).map(|line| format!("{line}\n")).collect()
}

fn plain_ssh(username: &str, password: &str) -> String {
    use base64::Engine;
    let message = format!("\0{username}\0{password}");
    format!("PLAIN {}\n", base64::engine::general_purpose::STANDARD.encode(message))
}

/// The lines fail2ban's filter counts as failures (its failregex's texts
/// after the connection).
fn counted_by_fail2ban(lines: &[String]) -> usize {
    lines.iter().filter(|line| line.contains(" authentication failed") || line.contains(" bad user request:")).count()
}

#[test]
fn curl_meets_the_challenge_then_registers_with_basic_credentials() {
    testkit::require!(requirements());
    let site = Site::new("password", true, &[]);
    let _service = site.serve();
    let request = "os=linux&logon=bob&proto=2";

    let first = post(&site, "127.0.0.3", request, &[]);
    assert_eq!(first.status, 401, "{first:?}");
    assert_eq!(first.header("WWW-Authenticate"), Some(format!("Basic realm=\"{REALM}\"").as_str()));
    assert_eq!(first.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let port = first.client_port();
    assert_eq!(first.body, format!("127.0.0.3 {port} 127.0.0.1 {} authentication failed\n", site.port));
    // Asked, not failed: the realm as the server names it, and nothing for fail2ban.
    let lines = site.lines_of("127.0.0.3", port);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("info "), "{lines:#?}");
    assert!(
        lines[0].ends_with(&format!("password asked for <https://127.0.0.1:{}> {REALM}, for bob", site.port)),
        "{lines:#?}"
    );
    assert_eq!(counted_by_fail2ban(&lines), 0);
    assert!(!site.hosts().contains("pc-bob.example.org"));

    // A wrong password and an unknown user: 401 again, one failure each.
    for (user, password) in [("bob", "wrong"), ("mallory", "bob-demo")] {
        let wrong = post(&site, "127.0.0.3", request, &["--user", &format!("{user}:{password}")]);
        assert_eq!(wrong.status, 401, "{wrong:?}");
        assert_eq!(wrong.header("WWW-Authenticate"), Some(format!("Basic realm=\"{REALM}\"").as_str()));
        let lines = site.lines_of("127.0.0.3", wrong.client_port());
        assert_eq!(counted_by_fail2ban(&lines), 1, "{lines:#?}");
        assert!(lines.iter().any(|line| {
            line.starts_with("notice ")
                && line
                    .contains(&format!("authentication failed (attempt 1): wrong password or unknown user \"{user}\""))
        }));
    }
    assert!(!site.hosts().contains("pc-bob.example.org"));

    let right = post(&site, "127.0.0.3", request, &["--user", "bob:bob-demo"]);
    assert_eq!(right.status, 200, "{right:?}");
    assert!(right.body.starts_with("success\nkey: ssh-ed25519 "), "{right:?}");
    assert!(right.body.ends_with("\nhost: pc-bob.example.org\naccount: bckpciuem\nuser: bob\nauthor: bob\n"));
    assert!(site.hosts().lines().any(|line| line.starts_with("pc-bob.example.org") && line.ends_with("bob")));
    let journal = fs::read_to_string(site.path("registrations.jsonl")).unwrap();
    assert!(journal.lines().last().unwrap().contains("\"host\":\"pc-bob.example.org\""), "{journal}");

    // The body is what the SSH transport answers the same request.
    let ssh = over_ssh(&site, "linux:bob proto=2", "127.0.0.3", &plain_ssh("bob", "bob-demo"));
    assert_eq!(right.body, ssh);

    // An administrator registers for another; a user may not.
    let carol = post(&site, "127.0.0.3", request, &["--user", "carol:carol-demo"]);
    assert_eq!((carol.status, carol.body.ends_with("\nuser: bob\nauthor: carol\n")), (200, true), "{carol:?}");
    let alice = post(&site, "127.0.0.3", request, &["--user", "alice:alice-demo"]);
    assert_eq!(alice.status, 403, "{alice:?}");
    assert!(alice.body.ends_with(" alice may not register a host for bob\n"), "{alice:?}");
    assert_eq!(alice.header("WWW-Authenticate"), None);
}

#[test]
fn no_challenge_when_the_policy_needs_none_and_never_for_a_status_request() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[]);
    let _service = site.serve();
    let done = post(&site, "127.0.0.3", "os=linux&logon=bob&proto=2", &[]);
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body, over_ssh(&site, "linux:bob proto=2", "127.0.0.3", ""));
    let info = post(&site, "127.0.0.3", "os=info&proto=2", &[]);
    assert_eq!(info.status, 200, "{info:?}");
    assert!(info.body.starts_with("success\nhost: pc-bob.example.org\nregistered: yes\nowner: bob\n"), "{info:?}");

    let site = Site::new("password", true, &[]);
    let _service = site.serve();
    let info = post(&site, "127.0.0.2", "os=info&proto=2", &[]);
    assert_eq!(info.status, 200, "{info:?}");
    assert!(info.body.contains("\nowner: alice\n"), "{info:?}");
}

#[test]
fn each_refusal_has_its_status_and_the_ssh_answer() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[]);
    let before = fs::read(site.path("backuppc/hosts")).unwrap();
    let _service = site.serve();
    let tail = format!(" 127.0.0.1 {} ", site.port);
    for (from, body, status, answer) in [
        ("127.0.0.3", "os=linux&logon=nobody&proto=2", 403, "bad user request"),
        ("127.0.0.3", "os=beos&logon=bob", 403, "ostype is unknown"),
        ("127.0.0.3", "logon=bob", 403, "ostype is unknown"),
        ("127.0.0.9", "os=linux&logon=bob", 403, "invalid DNS name for this IP"),
        ("127.0.0.2", "os=linux&logon=bob", 403, "refusing to re-register client host with username"),
    ] {
        let reply = post(&site, from, body, &[]);
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        let port = reply.client_port();
        assert_eq!(reply.body, format!("{from} {port}{tail}{answer}\n"), "{body}");
        let lines = site.lines_of(from, port);
        assert!(lines.iter().any(|line| line.starts_with("notice ") && line.contains(&format!("{tail}{answer}: "))));
    }

    let url = site.url("https", "/register");
    let other = curl(
        &site,
        "127.0.0.3",
        &[&form("os=linux&logon=bob")[..], &[site.url("https", "/other")]]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!((other.status, other.body.as_str()), (404, "404 Not Found: only /register is served\n"));
    let get = curl(&site, "127.0.0.3", &[&url]);
    assert_eq!((get.status, get.body.as_str()), (405, "405 Method Not Allowed: /register takes POST\n"));
    assert_eq!(get.header("Allow"), Some("POST"));
    let text = curl(&site, "127.0.0.3", &["--header", "Content-Type: text/plain", "--data-binary", "linux:bob", &url]);
    assert_eq!(
        (text.status, text.body.as_str()),
        (415, "415 Unsupported Media Type: the body must be application/x-www-form-urlencoded\n")
    );
    let big = site.path("big.form");
    fs::write(&big, format!("os=linux&logon=bob&x={}", "a".repeat(protocol::form::MAX_FORM_LEN))).unwrap();
    let large = post(&site, "127.0.0.3", &format!("@{}", big.display()), &[]);
    assert_eq!(
        (large.status, large.body.as_str()),
        (413, "413 Payload Too Large: the body is longer than 49152 bytes\n")
    );
    // Over a MiB: refused on its length alone, unread.
    let huge = site.path("huge.form");
    fs::write(&huge, format!("os=linux&logon=bob&x={}", "a".repeat(2 << 20))).unwrap();
    let unread = post(&site, "127.0.0.3", &format!("@{}", huge.display()), &[]);
    assert_eq!(unread.status, 413, "{unread:?}");
    // Chunked, so that no length warns the server beforehand.
    let chunked = post(&site, "127.0.0.3", &format!("@{}", big.display()), &["--header", "Transfer-Encoding: chunked"]);
    assert_eq!(chunked.status, 413, "{chunked:?}");
    let head = curl(
        &site,
        "127.0.0.3",
        &[
            "--header",
            &format!("X-Long: {}", "a".repeat(server::https::MAX_HEAD_LEN)),
            "--data-binary",
            "os=info",
            &url,
        ],
    );
    assert_eq!(head.status, 431, "{head:?}");

    assert_eq!(fs::read(site.path("backuppc/hosts")).unwrap(), before, "a refused request changed hosts");
}

#[test]
fn too_many_failed_authentications_from_one_address_get_429() {
    testkit::require!(requirements());
    let site = Site::new("password", true, &[("max-failed-auth", 3.into())]);
    let _service = site.serve();
    let request = "os=linux&logon=bob&proto=2";
    for _ in 0..3 {
        assert_eq!(post(&site, "127.0.0.3", request, &["--user", "bob:wrong"]).status, 401);
    }
    // Past the limit the password is not even checked: the right one too.
    let limited = post(&site, "127.0.0.3", request, &["--user", "bob:bob-demo"]);
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(
        limited.body,
        "429 Too Many Requests: too many failed authentications from this address; try again later\n"
    );
    let retry: u64 = limited.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry), "{limited:?}");
    let log = site.log();
    let lines: Vec<&str> = log.lines().filter(|line| line.contains("too many failed authentications")).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains(": 127.0.0.3 "), "{lines:#?}");
    assert!(lines[0].starts_with("notice "), "{lines:#?}");
    assert!(
        lines[0].ends_with(
            "too many failed authentications from 127.0.0.3: 3 within 600 s; answered 429 without checking the password"
        ),
        "{lines:#?}"
    );
    assert!(!site.hosts().contains("pc-bob.example.org"));
    // Without credentials it is only challenged; another address is not limited.
    assert_eq!(post(&site, "127.0.0.3", request, &[]).status, 401);
    let alice = post(&site, "127.0.0.2", "os=linux&logon=alice&proto=2", &["--user", "alice:alice-demo"]);
    assert_eq!(alice.status, 200, "{alice:?}");
}

#[test]
fn x_forwarded_for_is_ignored_from_an_untrusted_peer_and_used_from_a_trusted_proxy() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[("trusted-proxies", vec!["127.0.0.5"].into())]);
    let _service = site.serve();
    let request = "os=linux&logon=bob&proto=2";
    // From 127.0.0.4, untrusted: the header is ignored, the peer has no name.
    let untrusted = post(&site, "127.0.0.4", request, &["--header", "X-Forwarded-For: 127.0.0.3"]);
    assert_eq!(untrusted.status, 403, "{untrusted:?}");
    assert!(untrusted.body.starts_with("127.0.0.4 ") && untrusted.body.ends_with(" invalid DNS name for this IP\n"));
    assert!(!site.hosts().contains("pc-bob.example.org"));
    // From the proxy: the right-most address that is not the proxy's.
    let header = "X-Forwarded-For: 127.0.0.9, 127.0.0.3, 127.0.0.5";
    let proxied = post(&site, "127.0.0.5", request, &["--header", header]);
    assert_eq!(proxied.status, 200, "{proxied:?}");
    assert!(proxied.body.ends_with("\nhost: pc-bob.example.org\naccount: bckpciuem\nuser: bob\n"), "{proxied:?}");
    let log = site.log();
    let registered =
        |line: &&str| line.contains(": 127.0.0.3 ") && line.contains(" registered host pc-bob.example.org for bob");
    assert!(log.lines().any(|line| registered(&line)), "{log}");
    let garbled = post(&site, "127.0.0.5", request, &["--header", "X-Forwarded-For: unknown"]);
    assert_eq!(
        (garbled.status, garbled.body.as_str()),
        (400, "400 Bad Request: X-Forwarded-For holds `unknown`, not an address\n")
    );
}

/// Writes `bytes` one at a time, `pause` apart, until the server closes
/// or `limit` bytes went; then reads the answer.
fn trickle(address: &str, bytes: Vec<u8>, pause: Duration) -> std::thread::JoinHandle<String> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    std::thread::spawn(move || {
        for byte in bytes {
            if stream.write_all(&[byte]).is_err() {
                break;
            }
            std::thread::sleep(pause);
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
}

#[test]
fn slow_clients_get_408_and_hold_no_one_up() {
    testkit::require!(requirements());
    // Plain HTTP on loopback, as behind a local TLS proxy: raw bytes trickle.
    let site = Site::new("never", false, &[("timeout", 2.into())]);
    let _service = site.serve();
    let address = format!("127.0.0.1:{}", site.port);
    let head = b"POST /register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let slow_head = trickle(&address, head.to_vec(), Duration::from_millis(200));
    let body_head =
        b"POST /register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                      Content-Length: 60\r\n\r\nos=linux&logon=bob&proto=2&x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut slow_body = TcpStream::connect(&address).unwrap();
    slow_body.write_all(&body_head[..body_head.len() - 30]).unwrap();
    slow_body.set_read_timeout(Some(Duration::from_secs(120))).unwrap();

    // Meanwhile a normal client is served.
    let mut args = form("os=linux&logon=bob&proto=2");
    args.push(site.url("http", "/register"));
    let normal = curl(&site, "127.0.0.3", &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(normal.status, 200, "{normal:?}");

    let answer = slow_head.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\n408 Request Timeout: the request did not arrive in time\n"), "{answer:?}");
    let mut answer = String::new();
    slow_body.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer:?}");
    assert!(answer.ends_with("408 Request Timeout: the body did not arrive in time\n"), "{answer:?}");
    assert!(site.log().contains("HTTP request refused (408): no whole request head within the timeout"));
}

#[test]
fn a_tls_handshake_that_never_comes_is_cut_after_the_timeout() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[("timeout", 1.into())]);
    let _service = site.serve();
    let mut silent = TcpStream::connect(format!("127.0.0.1:{}", site.port)).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut buffer = [0; 16];
    assert_eq!(silent.read(&mut buffer).unwrap(), 0, "the server did not close the connection");
    assert!(site.log().contains("TLS handshake not finished within the timeout"), "{}", site.log());
    // The service still serves.
    assert_eq!(post(&site, "127.0.0.3", "os=info&proto=2", &[]).status, 200);
}

#[test]
fn systemd_socket_activation_serves_the_socket_handed_over() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[("listen", toml::Value::Array(Vec::new()))]);
    let address = format!("127.0.0.1:{}", site.port);
    let _service = serve_activated(Path::new(PROGRAM), &site.path("server.toml"), &address, site.path("serve.stderr"));
    let reply = post(&site, "127.0.0.3", "os=linux&logon=bob&proto=2", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(site.hosts().contains("pc-bob.example.org"));
}

/// Runs `serve` as the service account with `environment`, descriptor 3
/// `/dev/null`, and returns its exit code and standard error.
fn serve_fails(site: &Site, environment: &[(&str, &str)], root: bool) -> (Option<i32>, String) {
    let mut command = if root {
        let mut command = Command::new(PROGRAM);
        command.env_clear();
        command
    } else {
        as_service(Path::new(PROGRAM))
    };
    command.arg("serve").arg("--config").arg(site.path("server.toml"));
    for (key, value) in environment {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (output.status.code(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn it_refuses_root_plain_http_off_loopback_and_sockets_not_its_own() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[]);
    let (code, stderr) = serve_fails(&site, &[], true);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "bpc-register: serve must not run as root: run it as the backuppc account (User=backuppc in \
         bpc-register-https.service)\n"
    );

    let (code, stderr) = serve_fails(&site, &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")], false);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("bpc-register: socket activation: LISTEN_PID is \"1\", not this process ("), "{stderr}");

    // Descriptor 3 is not a socket: refused, whatever LISTEN_PID says.
    let script = "exec 3</dev/null; export LISTEN_FDS=1 LISTEN_PID=$$; exec \"$@\"";
    let service = as_service(Path::new(PROGRAM));
    let output = Command::new("/bin/sh")
        .env_clear()
        .args(["-c", script, "sh"])
        .arg(service.get_program())
        .args(service.get_args())
        .arg("serve")
        .arg("--config")
        .arg(site.path("server.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "bpc-register: socket activation: descriptor 3: fd 3 is not a socket\n"
    );

    let open = Site::new("never", false, &[("listen", vec!["0.0.0.0:0"].into())]);
    let (code, stderr) = serve_fails(&open, &[], false);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "bpc-register: refusing plain HTTP on 0.0.0.0:0, which is not a loopback address: set [https] cert and \
         key, or listen on 127.0.0.1 or ::1 behind a TLS proxy\n"
    );

    let half = Site::new("never", false, &[("cert", "tls/server.crt".into())]);
    let (code, stderr) = serve_fails(&half, &[], false);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(2), "bpc-register: [https] cert and key go together: set both, or neither for plain HTTP on loopback\n")
    );
}

#[test]
fn help_of_serve_says_how_it_runs_and_what_configures_it() {
    let output = Command::new(PROGRAM).env_clear().env("COLUMNS", "100").args(["serve", "--help"]).output().unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!("serve_help", String::from_utf8(output.stdout).unwrap());
}

#[test]
fn sigterm_stops_it_cleanly() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[]);
    let mut command = as_service(Path::new(PROGRAM));
    command.arg("serve").arg("--config").arg(site.path("server.toml"));
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert_eq!(line, format!("bpc-register: listening on https://127.0.0.1:{}\n", site.port));
    assert_eq!(post(&site, "127.0.0.3", "os=info&proto=2", &[]).status, 200);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let log = site.log();
    assert!(log.lines().last().unwrap().ends_with("https service stopped"), "{log}");
}

#[test]
fn without_listen_and_without_a_socket_it_says_what_to_set() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[("listen", toml::Value::Array(Vec::new()))]);
    let (code, stderr) = serve_fails(&site, &[], false);
    assert_eq!(
        (code, stderr.as_str()),
        (
            Some(2),
            "bpc-register: no address to listen on: set [https] listen, or start it from bpc-register-https.socket\n"
        )
    );
}

const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/systemd");

#[test]
fn the_packaged_units_pass_systemd_analyze_and_run_serve_as_backuppc() {
    testkit::require!(testkit::require_programs(&["/usr/bin/systemd-analyze"]));
    let dir = tempfile::tempdir().unwrap();
    let service = fs::read_to_string(Path::new(UNITS).join("bpc-register-https.service")).unwrap();
    let socket = fs::read_to_string(Path::new(UNITS).join("bpc-register-https.socket")).unwrap();
    for line in
        ["ExecStart=/usr/bin/bpc-register serve", "User=backuppc", "NoNewPrivileges=yes", "ProtectSystem=strict"]
    {
        assert!(service.lines().any(|l| l == line), "no {line} in the service");
    }
    assert!(socket.lines().any(|l| l == "ListenStream=443"), "{socket}");
    // As installed, but with this build's program, which must exist for the check.
    fs::write(dir.path().join("bpc-register-https.service"), service.replace("/usr/bin/bpc-register", PROGRAM))
        .unwrap();
    fs::write(dir.path().join("bpc-register-https.socket"), &socket).unwrap();
    let output = Command::new("/usr/bin/systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("bpc-register-https.service"))
        .arg(dir.path().join("bpc-register-https.socket"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "systemd-analyze verify: {stderr}");
    // The pages their Documentation= names are the ones the package ships.
    let docs = dir.path().join("docs");
    testkit::run(Command::new(PROGRAM).arg("generate-docs").arg(&docs));
    assert!(docs.join("man/bpc-register-serve.8").exists());
    assert!(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/man/server.toml.5")).exists());
    for unit in [&service, &socket] {
        assert!(unit.contains("Documentation=man:bpc-register-serve(8) man:server.toml(5)\n"), "{unit}");
    }
}

#[test]
fn one_address_cannot_take_every_connection() {
    testkit::require!(requirements());
    let site = Site::new("never", true, &[("max-connections-per-address", 2.into())]);
    let _service = site.serve();
    // From 127.0.0.1, the source address a plain connect takes.
    let connect = || {
        let stream = TcpStream::connect(format!("127.0.0.1:{}", site.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        stream
    };
    // Two idle connections (no TLS handshake yet): a third is closed.
    let _idle = [connect(), connect()];
    let mut third = connect();
    assert_eq!(third.read(&mut [0; 16]).unwrap_or(0), 0, "the third connection was not closed");
    let log = site.log();
    assert!(
        log.lines().any(|line| line.starts_with("notice ")
            && line.contains(": 127.0.0.1 ")
            && line.ends_with("connection closed: 2 connections from this address are open already")),
        "{log}"
    );
    // Another address is served meanwhile.
    assert_eq!(post(&site, "127.0.0.2", "os=info&proto=2", &[]).status, 200);
}
