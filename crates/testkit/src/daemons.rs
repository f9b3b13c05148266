//! Real daemons for the backend tests, each on 127.0.0.1 with its own
//! configuration in a test folder: OpenLDAP's slapd, dnsmasq and rsyslogd.
//! Each stops its daemon when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Daemon, free_port, run};

/// OpenLDAP with a seeded tree, StartTLS and LDAPS under a test CA.
pub struct Slapd {
    _daemon: Daemon,
    /// `ldap://127.0.0.1:PORT` (StartTLS available).
    pub url: String,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps_url: String,
    /// The test CA's certificate.
    pub ca: PathBuf,
    /// A file holding the reader account's password.
    pub reader_secret: PathBuf,
}

/// The directory's base for users.
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
/// The reader account.
pub const READER: &str = "cn=reader,dc=example,dc=org";
/// The administrators group (carol is in it).
pub const ADMINS: &str = "cn=backup-admins,ou=groups,dc=example,dc=org";

impl Slapd {
    /// Users: alice (alice-demo), alice2, bob (bob-demo), carol (carol-demo,
    /// administrator). Anonymous users cannot search people.
    pub fn start(dir: &Path) -> Slapd {
        fs::create_dir_all(dir.join("db")).unwrap();
        // ca.crt, server.crt and server.key in `dir`.
        crate::tls::TestCa::new(dir);
        let hash = |password: &str| {
            run(Command::new("/usr/sbin/slappasswd").args(["-h", "{SSHA}", "-s", password])).trim().to_owned()
        };
        let d = dir.display();
        fs::write(
            dir.join("slapd.conf"),
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
                 TLSCACertificateFile {d}/ca.crt\nTLSCertificateFile {d}/server.crt\nTLSCertificateKeyFile {d}/server.key\n\
                 database mdb\nmaxsize 104857600\nsuffix \"dc=example,dc=org\"\nrootdn \"cn=admin,dc=example,dc=org\"\n\
                 rootpw {}\ndirectory {d}/db\nindex objectClass eq\nindex uid eq\nindex member eq\n\
                 access to attrs=userPassword by self write by anonymous auth by * none\n\
                 access to dn.subtree=\"{PEOPLE}\" by dn.exact=\"{READER}\" read by self read by * none\n\
                 access to * by dn.exact=\"{READER}\" read by * none\n",
                hash("admin-secret")
            ),
        )
        .unwrap();
        let person = |uid: &str, number: u32, password: &str| {
            format!(
                "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
                 uidNumber: {number}\ngidNumber: {number}\nhomeDirectory: /home/{uid}\nuserPassword: {}\n\n",
                hash(password)
            )
        };
        let seed = format!(
            "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: {READER}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: {}\n\n\
             {}{}{}{}\
             dn: {ADMINS}\nobjectClass: groupOfNames\ncn: backup-admins\nmember: uid=carol,{PEOPLE}\n",
            hash("reader-secret"),
            person("alice", 10001, "alice-demo"),
            person("alice2", 10002, "alice2-demo"),
            person("bob", 10003, "bob-demo"),
            person("carol", 10004, "carol-demo"),
        );
        fs::write(dir.join("seed.ldif"), seed).unwrap();
        run(Command::new("/usr/sbin/slapadd")
            .arg("-q")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(dir.join("seed.ldif")));
        let (port, ldaps_port) = (free_port(), free_port());
        let (url, ldaps_url) = (format!("ldap://127.0.0.1:{port}"), format!("ldaps://127.0.0.1:{ldaps_port}"));
        let mut command = Command::new("/usr/sbin/slapd");
        command
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("{url}/ {ldaps_url}/"))
            .args(["-d", "none"]);
        let daemon = Daemon::start(command, "slapd starting", dir.join("slapd.log"));
        // slapd prints its start line just before its listeners call listen().
        for port in [port, ldaps_port] {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "slapd does not listen on {port}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let reader_secret = dir.join("reader.secret");
        fs::write(&reader_secret, "reader-secret\n").unwrap();
        Slapd { _daemon: daemon, url, ldaps_url, ca: dir.join("ca.crt"), reader_secret }
    }
}

/// dnsmasq answering the test's records, and nothing else.
pub struct Dnsmasq {
    _daemon: Daemon,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

/// A DNS name in wire format, hex-encoded, for dnsmasq's `dns-rr`.
fn wire_name(name: &str) -> String {
    let mut hex = String::new();
    for label in name.trim_end_matches('.').split('.') {
        hex.push_str(&format!("{:02x}", label.len()));
        hex.extend(label.bytes().map(|b| format!("{b:02x}")));
    }
    hex.push_str("00");
    hex
}

impl Dnsmasq {
    /// The records, in documentation ranges (resolvers answer names under
    /// 127.in-addr.arpa themselves, as RFC 6761 asks, without a query):
    /// - 192.0.2.2 and pc-alice.example.org, both ways;
    /// - 192.0.2.3 and PC-Bob.Example.ORG (mixed case), both ways;
    /// - 192.0.2.9 to evil.example.net, 192.0.2.10 to evil-example.org (outside the domain);
    /// - 192.0.2.4 to liar.example.org, which resolves to 192.0.2.5;
    /// - 2001:db8::2 and pc-six.example.org, both ways;
    /// - nothing for 192.0.2.77.
    ///
    /// Only the DNS server on 127.0.0.1 is ever contacted.
    pub fn start(dir: &Path) -> Dnsmasq {
        fs::create_dir_all(dir).unwrap();
        let port = free_port();
        fs::write(
            dir.join("dnsmasq.conf"),
            format!(
                "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n\
                 pid-file={}/dnsmasq.pid\nlog-facility=-\nuser=root\nlocal=/#/\n\
                 host-record=pc-alice.example.org,192.0.2.2\nhost-record=pc-six.example.org,2001:db8::2\n\
                 dns-rr=3.2.0.192.in-addr.arpa,12,{}\ndns-rr=PC-Bob.Example.ORG,1,c0000203\n\
                 ptr-record=9.2.0.192.in-addr.arpa,evil.example.net\n\
                 ptr-record=10.2.0.192.in-addr.arpa,evil-example.org\n\
                 ptr-record=4.2.0.192.in-addr.arpa,liar.example.org\naddress=/liar.example.org/192.0.2.5\n",
                dir.display(),
                wire_name("PC-Bob.Example.ORG")
            ),
        )
        .unwrap();
        let mut command = Command::new("/usr/sbin/dnsmasq");
        command.arg(format!("--conf-file={}", dir.join("dnsmasq.conf").display())).arg("--keep-in-foreground");
        let daemon = Daemon::start(command, "started, version", dir.join("dnsmasq.log"));
        Dnsmasq { _daemon: daemon, address: format!("127.0.0.1:{port}") }
    }
}

/// rsyslogd listening on its own socket and writing
/// `facility.severity program: message` lines to a file, and the same
/// messages as Debian writes them to `/var/log/syslog` (rsyslog's
/// traditional format in Debian 12, its precise one later).
pub struct Rsyslogd {
    _daemon: Daemon,
    /// The datagram socket to log to.
    pub socket: PathBuf,
    /// Where the lines land.
    pub output: PathBuf,
    /// `Dec  2 18:45:01 HOST program[pid]: message` (RSYSLOG_TraditionalFileFormat).
    pub traditional: PathBuf,
    /// `2025-12-02T18:45:01.123456+00:00 HOST program[pid]: message` (RSYSLOG_FileFormat).
    pub precise: PathBuf,
}

impl Rsyslogd {
    /// Starts rsyslogd and waits for its own start message in the output.
    pub fn start(dir: &Path) -> Rsyslogd {
        fs::create_dir_all(dir.join("work")).unwrap();
        let socket = dir.join("log.sock");
        let output = dir.join("messages.log");
        let traditional = dir.join("traditional.log");
        let precise = dir.join("precise.log");
        fs::write(
            dir.join("rsyslog.conf"),
            format!(
                "global(workDirectory=\"{}\" processInternalMessages=\"on\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{}\" CreatePath=\"on\" RateLimit.Interval=\"0\")\n\
                 template(name=\"bpc\" type=\"string\" string=\"%syslogfacility-text%.%syslogseverity-text% %programname%:%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{}\" template=\"bpc\")\n\
                 *.* action(type=\"omfile\" file=\"{}\" template=\"RSYSLOG_TraditionalFileFormat\")\n\
                 *.* action(type=\"omfile\" file=\"{}\" template=\"RSYSLOG_FileFormat\")\n",
                dir.join("work").display(),
                socket.display(),
                output.display(),
                traditional.display(),
                precise.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rsyslogd = Rsyslogd {
            _daemon: Daemon::from_child(child, dir.join("rsyslogd.stderr")),
            socket,
            output,
            traditional,
            precise,
        };
        rsyslogd.wait_for_line(|line| line.starts_with("syslog.info rsyslogd:") && line.ends_with("start"));
        rsyslogd
    }

    /// Waits (at most 10 s) for a line that `matches`, and returns it.
    pub fn wait_for_line(&self, matches: impl Fn(&str) -> bool) -> String {
        self.wait_for_line_in(&self.output, matches)
    }

    /// Waits (at most 10 s) for a line of `file` (one of the outputs) that
    /// `matches`, and returns it.
    pub fn wait_for_line_in(&self, file: &Path, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = fs::read_to_string(file).unwrap_or_default();
            if let Some(line) = text.lines().find(|line| matches(line)) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "no such line in {}:\n{text}", file.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
