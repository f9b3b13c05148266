//! `bpc-register` with its real backends: OpenLDAP (StartTLS and LDAPS under
//! a test CA), dnsmasq and rsyslogd, each started on 127.0.0.1 for the test.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use assert_cmd::Command;
use server::config::LdapConfig;
use server::ldap::LdapDirectory;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::daemons::{ADMINS, Dnsmasq, PEOPLE, READER, Rsyslogd, Slapd};
use testkit::server_toml::{ServerToml, path, strings, table};

const DOMAIN: &str = "example.org";

/// One server: its folder, BackupPC's config folder, its configuration.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(directory: toml::Table, resolver: toml::Table, log: Option<toml::Table>) -> Setup {
        let dir = testkit::base_dir("backends-");
        let conf_dir = dir.path().join("backuppc");
        fs::create_dir_all(&conf_dir).unwrap();
        fs::write(conf_dir.join("hosts"), "host dhcp user moreUsers\n").unwrap();
        fs::write(conf_dir.join("config.pl"), client::demo::BACKUPPC_CONFIG_PL).unwrap();
        fs::write(
            dir.path().join("backuppc.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl backuppc@test\n",
        )
        .unwrap();
        let mut server = ServerToml::new()
            .set("domain", DOMAIN)
            .backuppc("url", "http://b/?host={host}")
            .backuppc("key", "backuppc.pub");
        server = server.table("directory", directory).table("resolver", resolver);
        server = match log {
            Some(log) => server.table("log", log),
            None => server.remove("log"),
        };
        let config = server.write(&dir.path().join("server.toml"));
        Setup { dir, config }
    }

    fn hosts(&self) -> String {
        fs::read_to_string(self.dir.path().join("backuppc/hosts")).unwrap()
    }

    fn register(&self, request: &str, client_ip: &str) -> std::process::Output {
        Command::cargo_bin("bpc-register")
            .unwrap()
            .env_clear()
            .env("SSH_ORIGINAL_COMMAND", request)
            .env("SSH_CONNECTION", format!("{client_ip} 50000 127.0.0.1 22"))
            .arg("--config")
            .arg(&self.config)
            .write_stdin("")
            .output()
            .unwrap()
    }

    /// Asserts the exact refusal text and that `hosts` did not change.
    fn assert_refused(&self, request: &str, client_ip: &str, text: &str) {
        let before = self.hosts();
        let output = self.register(request, client_ip);
        assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{client_ip} 50000 127.0.0.1 22 {text}\n"));
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(self.hosts(), before);
    }
}

fn ldap_table(slapd: &Slapd, url: &str, starttls: bool) -> toml::Table {
    table([
        ("kind", "ldap".into()),
        ("url", url.into()),
        ("starttls", starttls.into()),
        ("base", PEOPLE.into()),
        ("bind-dn", READER.into()),
        ("bind-password-file", path(&slapd.reader_secret)),
        ("ca-file", path(&slapd.ca)),
        ("admin-group", ADMINS.into()),
        ("timeout", 3.into()),
    ])
}

fn dns_table(server: &str, timeout: i64) -> toml::Table {
    table([("kind", "dns".into()), ("servers", strings([server])), ("timeout", timeout.into())])
}

fn syslog_table(socket: &Path) -> Option<toml::Table> {
    Some(table([("kind", "syslog".into()), ("facility", "local3".into()), ("socket", path(socket))]))
}

fn static_resolver(dir: &Path) -> toml::Table {
    table([("kind", "static".into()), ("path", path(&dir.join("hosts.static")))])
}

fn static_users(dir: &Path) -> toml::Table {
    fs::write(dir.join("users.toml"), "[users.alice]\n[users.bob]\n").unwrap();
    table([("kind", "file".into()), ("path", path(&dir.join("users.toml")))])
}

#[test]
fn ldap_dns_and_syslog_register_and_refuse_as_the_contract_says() {
    testkit::require!(testkit::backend_requirements());
    let base = testkit::base_dir("backends-");
    let slapd = Slapd::start(&base.path().join("slapd"));
    let dns = Dnsmasq::start(&base.path().join("dnsmasq"));
    let syslog = Rsyslogd::start(&base.path().join("rsyslog"));
    let setup =
        Setup::new(ldap_table(&slapd, &slapd.url, true), dns_table(&dns.address, 2), syslog_table(&syslog.socket));

    let output = setup.register("linux:alice", "192.0.2.2");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(setup.hosts().ends_with("pc-alice.example.org\t0\talice\n"));
    syslog.wait_for_line(|l| {
        l.starts_with("local3.info bpc-register: 192.0.2.2 50000 127.0.0.1 22 registered host pc-alice")
    });

    // A PTR in mixed case with a trailing dot becomes the lowercased host name.
    assert!(setup.register("macos:bob", "192.0.2.3").status.success());
    assert!(setup.hosts().ends_with("pc-bob.example.org\t0\tbob\n"), "{}", setup.hosts());
    // IPv6: PTR and AAAA.
    assert!(setup.register("linux:carol", "2001:db8::2").status.success());
    assert!(setup.hosts().ends_with("pc-six.example.org\t0\tcarol\n"), "{}", setup.hosts());

    setup.assert_refused("linux:nobody", "192.0.2.2", "bad user request");
    syslog
        .wait_for_line(|l| l.starts_with("local3.notice bpc-register: 192.0.2.2 50000 127.0.0.1 22 bad user request"));
    for (ip, reason) in [
        ("192.0.2.9", "is outside example.org"),
        ("192.0.2.10", "is outside example.org"),
        ("192.0.2.4", "does not resolve back to 192.0.2.4"),
        ("192.0.2.77", "has no PTR name"),
    ] {
        setup.assert_refused("linux:alice", ip, "invalid DNS name for this IP");
        let prefix = format!("local3.notice bpc-register: {ip} 50000 127.0.0.1 22 invalid DNS name for this IP");
        syslog.wait_for_line(|l| l.starts_with(&prefix) && l.contains(reason));
    }
    setup.assert_refused("linux:bob", "192.0.2.2", "refusing to re-register client host with username");
}

#[test]
fn ldaps_with_the_test_ca_works_and_another_ca_is_refused() {
    testkit::require!(testkit::backend_requirements());
    let base = testkit::base_dir("backends-");
    let slapd = Slapd::start(&base.path().join("slapd"));
    let dns = Dnsmasq::start(&base.path().join("dnsmasq"));
    let setup = Setup::new(ldap_table(&slapd, &slapd.ldaps_url, false), dns_table(&dns.address, 2), None);
    assert!(setup.register("linux:alice", "192.0.2.2").status.success());

    let mut config = ldap_config(&slapd);
    config.url = slapd.ldaps_url.clone();
    config.ca_file = Some("/etc/ssl/certs/ca-certificates.crt".into());
    let directory = LdapDirectory::new(&config).unwrap();
    assert!(directory.user_dn("alice").is_err(), "a server certificate from another CA was trusted");
}

fn ldap_config(slapd: &Slapd) -> LdapConfig {
    let mut table = ldap_table(slapd, &slapd.url, true);
    table.remove("kind");
    toml::Value::Table(table).try_into().unwrap()
}

/// Asks the real directory for `hostile` as a logon, escaped as the filter
/// is built, and asserts that no entry (alice's above all) matches.
fn assert_matches_nothing(hostile: &str) {
    let base = testkit::base_dir("backends-");
    let slapd = Slapd::start(&base.path().join("slapd"));
    let directory = LdapDirectory::new(&ldap_config(&slapd)).unwrap();
    assert_eq!(directory.user_dn("alice").unwrap().as_deref(), Some("uid=alice,ou=people,dc=example,dc=org"));
    assert_eq!(directory.user_dn(hostile).unwrap(), None, "{hostile:?} matched an entry");

    // Through bpc-register such a logon never reaches the directory at all.
    let statics = base.path().join("static");
    fs::create_dir_all(&statics).unwrap();
    fs::write(statics.join("hosts.static"), "127.0.0.2 pc-alice.example.org\n").unwrap();
    let resolver = static_resolver(&statics);
    let setup = Setup::new(ldap_table(&slapd, &slapd.url, true), resolver, None);
    if !hostile.contains('\0') {
        let output = setup.register(&format!("linux:{hostile}"), "127.0.0.2");
        assert_ne!(output.status.code(), Some(0), "{hostile:?}");
        assert!(!String::from_utf8_lossy(&output.stdout).starts_with("success"));
    }
    assert_eq!(setup.hosts(), "host dhcp user moreUsers\n");
}

macro_rules! injection_tests {
    ($($name:ident: $hostile:expr,)*) => {$(
        #[test]
        fn $name() {
            testkit::require!(testkit::backend_requirements());
            assert_matches_nothing(&$hostile);
        }
    )*};
}

injection_tests! {
    ldap_injection_star_matches_nothing: "*",
    ldap_injection_prefix_star_matches_nothing: "alice*",
    ldap_injection_closing_filter_matches_nothing: "alice)(uid=*",
    ldap_injection_or_filter_matches_nothing: "*)(|(uid=*",
    ldap_injection_nul_matches_nothing: "alice\0",
    ldap_injection_escaped_star_matches_nothing: "\\2a",
    ldap_injection_very_long_matches_nothing: "a".repeat(10_000),
    ldap_injection_non_ascii_matches_nothing: "alicé",
}

#[test]
fn passwords_are_checked_by_binding_and_empty_ones_never_bind() {
    testkit::require!(testkit::backend_requirements());
    let base = testkit::base_dir("backends-");
    let slapd = Slapd::start(&base.path().join("slapd"));
    let directory = LdapDirectory::new(&ldap_config(&slapd)).unwrap();
    use server::Directory;
    let check = |name: &str, password: &str| {
        directory.check_password(&protocol::Logon::parse(name).unwrap(), &protocol::Secret::new(password)).unwrap()
    };
    assert!(check("alice", "alice-demo"));
    assert!(!check("alice", "bob-demo"));
    assert!(!check("alice", ""));
    assert!(!check("nobody", "alice-demo"));
    let admin = |name: &str| directory.is_admin(&protocol::Logon::parse(name).unwrap()).unwrap();
    assert!(admin("carol"));
    assert!(!admin("alice"));
}

#[test]
fn a_directory_that_is_down_is_the_servers_fault_not_a_bad_user() {
    testkit::require!(testkit::backend_requirements());
    let base = testkit::base_dir("backends-");
    let syslog = Rsyslogd::start(&base.path().join("rsyslog"));
    let statics = base.path().join("static");
    fs::create_dir_all(&statics).unwrap();
    fs::write(statics.join("hosts.static"), "127.0.0.2 pc-alice.example.org\n").unwrap();
    let resolver = static_resolver(&statics);
    // Nothing listens on the first port; the second accepts and never answers.
    let closed = testkit::free_port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    for url in [format!("ldap://127.0.0.1:{closed}"), format!("ldap://{}", silent.local_addr().unwrap())] {
        let directory = table([
            ("kind", "ldap".into()),
            ("url", url.as_str().into()),
            ("base", PEOPLE.into()),
            ("timeout", 1.into()),
        ]);
        let setup = Setup::new(directory, resolver.clone(), syslog_table(&syslog.socket));
        let started = Instant::now();
        let output = setup.register("linux:alice", "127.0.0.2");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("the user directory cannot be consulted"), "{stdout}");
        assert!(!stdout.contains("bad user request"));
        assert_eq!(output.status.code(), Some(1));
        assert!(started.elapsed() < Duration::from_secs(15), "no answer within the configured timeout");
        assert_eq!(setup.hosts(), "host dhcp user moreUsers\n");
        syslog.wait_for_line(|l| l.starts_with("local3.err bpc-register: 127.0.0.2") && l.contains(&url));
    }
}

#[test]
fn a_dns_that_does_not_answer_is_the_servers_fault() {
    testkit::require!(testkit::backend_requirements());
    let base = testkit::base_dir("backends-");
    let syslog = Rsyslogd::start(&base.path().join("rsyslog"));
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_tcp = std::net::TcpListener::bind(silent.local_addr().unwrap()).unwrap();
    let setup = Setup::new(
        static_users(base.path()),
        dns_table(&silent.local_addr().unwrap().to_string(), 1),
        syslog_table(&syslog.socket),
    );
    let started = Instant::now();
    let output = setup.register("linux:alice", "192.0.2.2");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("the DNS cannot be consulted"), "{stdout}");
    assert!(!stdout.contains("invalid DNS name"));
    assert!(started.elapsed() < Duration::from_secs(15), "no answer within the configured timeout");
    assert_eq!(setup.hosts(), "host dhcp user moreUsers\n");
    syslog.wait_for_line(|l| l.starts_with("local3.err bpc-register: 192.0.2.2") && l.contains("no answer within"));
    drop(silent_tcp);
}

#[test]
fn without_a_reachable_syslog_the_registration_still_lands() {
    testkit::require!(testkit::backend_requirements());
    let base = testkit::base_dir("backends-");
    let dns = Dnsmasq::start(&base.path().join("dnsmasq"));
    let setup =
        Setup::new(static_users(base.path()), dns_table(&dns.address, 2), syslog_table(&base.path().join("no.sock")));
    let output = setup.register("linux:alice", "192.0.2.2");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot write to syslog") && stderr.contains("registered host pc-alice.example.org"),
        "{stderr}"
    );
    assert!(setup.hosts().ends_with("pc-alice.example.org\t0\talice\n"));
}

/// `bpc-register serve` with LDAP (StartTLS) and the DNS: their blocking
/// clients (ldap3's sync API and hickory's own runtime would fail inside
/// another tokio runtime) run on its worker threads; behind a trusted
/// proxy, the client is the address the proxy names.
#[test]
fn serve_checks_passwords_in_ldap_and_names_hosts_in_the_dns() {
    testkit::require!(testkit::backend_requirements());
    testkit::require!(testkit::require_programs(&["/usr/bin/curl", "/usr/bin/setpriv"]));
    let base = testkit::base_dir("backends-https-");
    let slapd = Slapd::start(&base.path().join("slapd"));
    let dns = Dnsmasq::start(&base.path().join("dnsmasq"));
    let log = table([("kind", "file".into()), ("path", "register.log".into())]);
    let setup = Setup::new(ldap_table(&slapd, &slapd.url, true), dns_table(&dns.address, 2), Some(log));
    // The service's account reads its own copies of the bind secret and the CA.
    let dir = setup.dir.path();
    fs::copy(&slapd.reader_secret, dir.join("reader.secret")).unwrap();
    fs::copy(&slapd.ca, dir.join("ldap-ca.crt")).unwrap();
    let ca = testkit::https::TestCa::new(&dir.join("tls"));
    let port = testkit::free_port();
    let mut config: toml::Table = fs::read_to_string(&setup.config).unwrap().parse().unwrap();
    config.insert("auth".into(), "password".into());
    let directory = config.get_mut("directory").and_then(toml::Value::as_table_mut).unwrap();
    directory.insert("bind-password-file".into(), path(&dir.join("reader.secret")));
    directory.insert("ca-file".into(), path(&dir.join("ldap-ca.crt")));
    let https = table([
        ("listen", strings([format!("127.0.0.1:{port}")])),
        ("cert", path(&ca.cert)),
        ("key", path(&ca.key)),
        ("trusted-proxies", strings(["127.0.0.1"])),
    ]);
    config.insert("https".into(), toml::Value::Table(https));
    fs::write(&setup.config, toml::to_string(&config).unwrap()).unwrap();
    testkit::https::give_to_service(dir);
    let _service =
        testkit::https::serve(Path::new(env!("CARGO_BIN_EXE_bpc-register")), &setup.config, dir.join("serve.stderr"));

    let url = format!("https://127.0.0.1:{port}/register");
    let post = |extra: &[&str]| {
        let mut args = testkit::https::form("os=linux&logon=alice&proto=2");
        args.extend(["--header".to_owned(), "X-Forwarded-For: 192.0.2.2".to_owned()]);
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args.push(url.clone());
        testkit::https::curl(&ca.ca, "127.0.0.1", &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let asked = post(&[]);
    assert_eq!(asked.status, 401, "{asked:?}");
    assert!(asked.body.starts_with("192.0.2.2 "), "{asked:?}");
    assert_eq!(post(&["--user", "alice:wrong"]).status, 401);
    let done = post(&["--user", "alice:alice-demo"]);
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.ends_with("\nhost: pc-alice.example.org\naccount: bckpciuem\nuser: alice\nauthor: alice\n"));
    assert!(setup.hosts().ends_with("pc-alice.example.org\t0\talice\n"), "{}", setup.hosts());
}
