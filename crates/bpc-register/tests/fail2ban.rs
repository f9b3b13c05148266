//! The fail2ban filter the server package installs, run by fail2ban's own
//! `fail2ban-regex` on the lines real bpc-register processes send to a real
//! rsyslogd: it catches every failed password and every refusal a prober
//! earns, with the client's address, and no registration.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use base64::Engine;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::daemons::Rsyslogd;
use testkit::https::TestCa;

const FILTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/fail2ban/filter.d/bpc-register.conf");
const JAIL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/fail2ban/jail.d/bpc-register.conf");

fn requirements() -> Result<(), String> {
    testkit::backend_requirements()?;
    testkit::require_programs(&[
        "/usr/bin/curl",
        "/usr/bin/setpriv",
        "/usr/bin/fail2ban-regex",
        "/usr/bin/fail2ban-client",
        "/etc/fail2ban/filter.d/common.conf",
    ])
}

/// A demo server with `policy`, logging to `syslog`; carol is an
/// administrator and BackupPC's reload fails (a warning, not a refusal).
fn server(base: &Path, policy: &str, syslog: &Rsyslogd) -> PathBuf {
    let dir = base.join(policy);
    client::demo::run(Some(&dir), "/usr/bin/bpc-enroll", policy).unwrap();
    let users = fs::read_to_string(dir.join("users.toml")).unwrap();
    let carol = server::directory::hash_password(&protocol::Secret::new("carol-demo")).unwrap();
    fs::write(dir.join("users.toml"), format!("{users}\n[users.carol]\npassword = \"{carol}\"\n")).unwrap();
    let path = dir.join("server.toml");
    let mut config: toml::Table = fs::read_to_string(&path).unwrap().parse().unwrap();
    let log = [("kind", "syslog"), ("socket", syslog.socket.to_str().unwrap())];
    config.insert("log".into(), toml::Value::Table(log.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()));
    config.insert("admins".into(), toml::Value::Array(vec!["carol".into()]));
    config
        .get_mut("backuppc")
        .and_then(toml::Value::as_table_mut)
        .unwrap()
        .insert("reload-command".into(), vec!["/bin/false"].into());
    fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

fn plain(username: &str, password: &str) -> String {
    let message = format!("\0{username}\0{password}");
    format!("PLAIN {}\n", base64::engine::general_purpose::STANDARD.encode(message))
}

/// One request, told apart from the others in the log by its client port.
struct Case {
    what: &'static str,
    policy: &'static str,
    request: &'static str,
    client_ip: &'static str,
    input: String,
    /// The lines it logs, and how many of them fail2ban must count.
    lines: usize,
    caught: usize,
}

fn cases() -> Vec<Case> {
    let case = |what, policy, request, client_ip, input: String, lines, caught| Case {
        what,
        policy,
        request,
        client_ip,
        input,
        lines,
        caught,
    };
    let three_wrong = format!("{}{}{}", plain("bob", "wrong"), plain("nobody", "x"), plain("bob", ""));
    let forged = plain("x 10.9.9.9 1 2 3 authentication failed", "x");
    vec![
        case("three wrong passwords", "password", "linux:bob proto=2", "127.0.0.3", three_wrong, 4, 4),
        case("a cancelled challenge", "password", "linux:bob proto=2", "127.0.0.3", "cancel\n".into(), 1, 1),
        case("a client gone during the challenge", "password", "linux:bob proto=2", "127.0.0.3", String::new(), 1, 1),
        case("a username that looks like a log line", "password", "linux:bob proto=2", "127.0.0.3", forged, 2, 2),
        case(
            "a user registering for another",
            "password",
            "linux:bob proto=2",
            "127.0.0.3",
            plain("alice", "alice-demo"),
            1,
            1,
        ),
        case(
            "a wrong, then the right password",
            "password",
            "linux:bob proto=2",
            "127.0.0.3",
            format!("{}{}", plain("bob", "no"), plain("bob", "bob-demo")),
            4,
            1,
        ),
        case(
            "an administrator registering for bob",
            "password",
            "linux:bob proto=2",
            "127.0.0.3",
            plain("carol", "carol-demo"),
            2,
            0,
        ),
        case("an old client told to upgrade", "password", "linux:bob", "127.0.0.3", String::new(), 1, 0),
        case("an unknown logon", "never", "linux:nobody", "127.0.0.3", String::new(), 1, 1),
        case(
            "an unknown OS",
            "never",
            "plan9:bob 127.0.0.66 1 2 3 bad user request: x",
            "127.0.0.3",
            String::new(),
            1,
            1,
        ),
        case("an address outside the domain", "never", "linux:bob", "127.0.0.9", String::new(), 1, 1),
        case("another user's host", "never", "linux:bob", "127.0.0.2", String::new(), 1, 1),
        // A registration that sends no host keys says so in a line of its own.
        case("a new registration, BackupPC not told", "never", "linux:bob", "127.0.0.3", String::new(), 3, 0),
        case("a registration confirmed", "never", "linux:bob", "127.0.0.3", String::new(), 2, 0),
    ]
}

/// What `fail2ban-regex -o TOKEN` prints for `log` under the packaged
/// filter, one line per match (the filter beside fail2ban's common.conf,
/// as it is installed).
fn fail2ban_regex(base: &Path, log: &Path, token: &str) -> Vec<String> {
    let filters = base.join("fail2ban/filter.d");
    fs::create_dir_all(&filters).unwrap();
    fs::copy("/etc/fail2ban/filter.d/common.conf", filters.join("common.conf")).unwrap();
    fs::copy(FILTER, filters.join("bpc-register.conf")).unwrap();
    let out = testkit::run(
        Command::new("/usr/bin/fail2ban-regex").arg("-o").arg(token).arg(log).arg(filters.join("bpc-register.conf")),
    );
    out.lines().map(str::to_owned).collect()
}

/// The client port of a bpc-register line: the second word after `]: `.
fn client_port(line: &str) -> Option<u16> {
    line.split_once("bpc-register[")?.1.split_once("]: ")?.1.split(' ').nth(1)?.parse().ok()
}

/// The process that logged `line`.
fn logging_pid(line: &str) -> Option<&str> {
    Some(line.split_once("bpc-register[")?.1.split_once("]: ")?.0)
}

#[test]
fn fail2ban_counts_every_failed_password_and_probe_and_no_registration() {
    testkit::require!(requirements());
    let base = testkit::base_dir("fail2ban-");
    let syslog = Rsyslogd::start(&base.path().join("rsyslog"));
    let configs: BTreeMap<&str, PathBuf> =
        ["password", "never"].into_iter().map(|policy| (policy, server(base.path(), policy, &syslog))).collect();
    let cases = cases();
    for (index, case) in cases.iter().enumerate() {
        let port = 50000 + index;
        let output = assert_cmd::Command::cargo_bin("bpc-register")
            .unwrap()
            .env_clear()
            .env("SSH_ORIGINAL_COMMAND", case.request)
            .env("SSH_CONNECTION", format!("{} {port} 192.0.2.1 22", case.client_ip))
            .arg("--config")
            .arg(&configs[case.policy])
            .write_stdin(case.input.clone())
            .output()
            .unwrap();
        assert!(output.stderr.is_empty(), "{}: {}", case.what, String::from_utf8_lossy(&output.stderr));
    }
    let last = format!(" {} 192.0.2.1 22 ", 50000 + cases.len() - 1);
    for log in [&syslog.traditional, &syslog.precise] {
        syslog.wait_for_line_in(log, |line| line.contains(&last) && line.contains("confirmed host"));
        let text = fs::read_to_string(log).unwrap();
        let logged: Vec<&str> = text.lines().filter(|line| client_port(line).is_some()).collect();
        let caught = fail2ban_regex(base.path(), log, "msg");
        for line in &caught {
            assert!(
                logged.contains(&line.as_str()),
                "fail2ban-regex printed a line that is not bpc-register's: {line}"
            );
        }
        for (index, case) in cases.iter().enumerate() {
            let port = u16::try_from(50000 + index).unwrap();
            // The request's own process: a registration made in the same
            // second as the change before it is settled a second later by
            // a detached child, whose warning that BackupPC could not be
            // told to reload (`/bin/false` here) comes when it comes.
            let of_port: Vec<&&str> = logged.iter().filter(|line| client_port(line) == Some(port)).collect();
            let pid = of_port.first().and_then(|line| logging_pid(line));
            let lines = of_port.iter().filter(|line| logging_pid(line) == pid).count();
            let caught = caught.iter().filter(|line| client_port(line) == Some(port)).count();
            assert_eq!((lines, caught), (case.lines, case.caught), "{}, in {}:\n{text}", case.what, log.display());
        }
        assert!(
            !caught.iter().any(|line| line.contains(" registered host ") || line.contains(" confirmed host ")),
            "{caught:#?}"
        );
        let mut addresses = fail2ban_regex(base.path(), log, "ip");
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses, ["127.0.0.2", "127.0.0.3", "127.0.0.9"], "the addresses fail2ban would ban");
    }
}

/// What a request over HTTPS is, sends (credentials) and from where, its
/// status, the lines it logs and how many of them fail2ban counts.
type HttpsCase = (&'static str, Option<&'static str>, &'static str, u16, usize, usize);

#[test]
fn fail2ban_counts_each_failed_password_over_https_once_and_not_the_first_challenge() {
    testkit::require!(requirements());
    let base = testkit::base_dir("fail2ban-https-");
    let syslog = Rsyslogd::start(&base.path().join("rsyslog"));
    let config = server(base.path(), "password", &syslog);
    let dir = config.parent().unwrap();
    let ca = TestCa::new(&dir.join("tls"));
    let port = testkit::free_port();
    let mut table: toml::Table = fs::read_to_string(&config).unwrap().parse().unwrap();
    let https = [
        ("listen", toml::Value::from(vec![format!("127.0.0.1:{port}")])),
        ("cert", ca.cert.to_str().unwrap().into()),
        ("key", ca.key.to_str().unwrap().into()),
        ("max-failed-auth", 3.into()),
    ];
    table.insert("https".into(), toml::Value::Table(https.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
    testkit::https::give_to_service(dir);
    let _service = testkit::https::serve(Path::new(env!("CARGO_BIN_EXE_bpc-register")), &config, dir.join("serve.log"));

    // Each request from its own client port: (credentials, status, lines, caught).
    let url = format!("https://127.0.0.1:{port}/register");
    let cases: [HttpsCase; 7] = [
        ("asked for a password", None, "127.0.0.3", 401, 1, 0),
        ("a wrong password", Some("bob:wrong"), "127.0.0.3", 401, 2, 1),
        ("an unknown user", Some("nobody:x"), "127.0.0.3", 401, 2, 1),
        ("a user registering for another", Some("alice:alice-demo"), "127.0.0.3", 403, 1, 1),
        ("a third wrong password", Some("bob:again"), "127.0.0.3", 401, 2, 1),
        ("the right password, past the limit", Some("bob:bob-demo"), "127.0.0.3", 429, 1, 1),
        ("a registration confirmed from elsewhere", Some("alice:alice-demo"), "127.0.0.2", 200, 2, 0),
    ];
    let first_port = 52000 + u16::try_from(std::process::id() % 1000).unwrap() * 8;
    for (index, (what, credentials, from, status, _, _)) in cases.iter().enumerate() {
        let logon = if *from == "127.0.0.2" { "alice" } else { "bob" };
        let mut args = testkit::https::form(&format!("os=linux&logon={logon}&proto=2"));
        args.extend(["--local-port".to_owned(), (first_port + u16::try_from(index).unwrap()).to_string()]);
        if let Some(credentials) = credentials {
            args.extend(["--user".to_owned(), (*credentials).to_owned()]);
        }
        args.push(url.clone());
        let reply = testkit::https::curl(&ca.ca, from, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(reply.status, *status, "{what}: {reply:?}");
    }
    let last = format!("127.0.0.2 {} 127.0.0.1 {port} ", first_port + 6);
    for log in [&syslog.traditional, &syslog.precise] {
        syslog.wait_for_line_in(log, |line| line.contains(&last) && line.contains("confirmed host"));
        let text = fs::read_to_string(log).unwrap();
        let logged: Vec<&str> = text.lines().filter(|line| client_port(line).is_some()).collect();
        let caught = fail2ban_regex(base.path(), log, "msg");
        for (index, (what, _, _, _, lines, count)) in cases.iter().enumerate() {
            let client = Some(first_port + u16::try_from(index).unwrap());
            let logged = logged.iter().filter(|line| client_port(line) == client).count();
            let counted = caught.iter().filter(|line| client_port(line) == client).count();
            assert_eq!((logged, counted), (*lines, *count), "{what}, in {}:\n{text}", log.display());
        }
        let mut addresses = fail2ban_regex(base.path(), log, "ip");
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses, ["127.0.0.3"], "the addresses fail2ban would ban");
    }
}

#[test]
fn the_example_jail_passes_fail2bans_configuration_test_once_enabled() {
    testkit::require!(requirements());
    let base = testkit::base_dir("fail2ban-");
    let config = base.path().join("etc-fail2ban");
    testkit::run(Command::new("/bin/cp").arg("-a").arg("/etc/fail2ban").arg(&config));
    fs::copy(FILTER, config.join("filter.d/bpc-register.conf")).unwrap();
    fs::copy(JAIL, config.join("jail.d/bpc-register.conf")).unwrap();
    let log = base.path().join("syslog");
    fs::write(&log, "").unwrap();
    // Only this jail, enabled, on a log that exists here.
    fs::write(config.join("jail.d/defaults-debian.conf"), "").unwrap();
    fs::write(config.join("jail.local"), format!("[bpc-register]\nenabled = true\nlogpath = {}\n", log.display()))
        .unwrap();
    let dump = testkit::run(Command::new("/usr/bin/fail2ban-client").arg("-c").arg(&config).arg("-d"));
    assert!(dump.contains("['add', 'bpc-register', 'auto']"), "{dump}");
    assert!(dump.contains("['set', 'bpc-register', 'maxretry', 6]"), "{dump}");
    assert!(dump.contains("bpc-register"), "{dump}");
    let shipped = fs::read_to_string(JAIL).unwrap();
    assert!(shipped.contains("\nenabled  = false\n"), "the packaged jail must stay disabled");
}
