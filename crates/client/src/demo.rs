//! `bpc-enroll demo`: a whole server and one enrollment in a folder.

use crate::config::ClientConfig;
use crate::credentials::{Authenticator, CredentialError};
use crate::setup::{Enrollment, SetupError, SetupOptions, enroll};
use crate::transport::FileTransport;
use protocol::{Logon, OsName};
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The demo's users: alice (password `alice-demo`) and bob (`bob-demo`),
/// the passwords stored as argon2id hashes.
fn users_file() -> Result<String, DemoError> {
    let hash =
        |password: &str| server::directory::hash_password(&protocol::Secret::new(password)).map_err(DemoError::Hash);
    Ok(format!(
        "# The demo's user directory: who may register a host.\n\
         # Passwords: alice-demo and bob-demo, stored as argon2id hashes.\n\
         [users.alice]\nname = \"Alice Example\"\npassword = \"{}\"\n\n\
         [users.bob]\nname = \"Bob Example\"\npassword = \"{}\"\n",
        hash("alice-demo")?,
        hash("bob-demo")?
    ))
}

/// The demo's resolver: two hosts inside the domain, one outside it.
pub const HOSTS_STATIC: &str = "\
# The demo's DNS, in /etc/hosts format: address, then its name.
127.0.0.2   pc-alice.example.org
127.0.0.3   pc-bob.example.org
127.0.0.9   evil.example.net
";

/// The demo's server configuration for an `auth` policy; paths are
/// relative to its folder.
fn server_toml(auth: &str) -> String {
    SERVER_TOML.replace("auth = \"never\"", &format!("auth = \"{auth}\""))
}

const SERVER_TOML: &str = "\
# bpc-register configuration for the bpc-enroll demo.
domain = \"example.org\"
os = [\"linux\", \"macos\", \"windows\"]
auth = \"never\"
realm = \"Example backups\"
journal = \"registrations.jsonl\"

[backuppc]
conf-dir = \"backuppc\"
url = \"http://backup.example.org/backuppc/index.cgi?host={host}\"
key = \"backuppc-key/id_ed25519.pub\"
account = \"bckpciuem\"
# No BackupPC daemon runs in the demo: nothing to tell to reload.
reload-command = []

[directory]
kind = \"file\"
path = \"users.toml\"

[resolver]
kind = \"static\"
path = \"hosts.static\"

[log]
kind = \"file\"
path = \"register.log\"
";

/// BackupPC's `hosts` as Debian ships it, less the long comment.
pub const BACKUPPC_HOSTS: &str = "\
# BackupPC hosts file (demo copy of Debian's /etc/backuppc/hosts).
host        dhcp    user    moreUsers     # <--- do not edit this line
localhost   0       backuppc
";

/// BackupPC's server-wide `config.pl`, reduced to what bpc-register checks:
/// a host's owner may change the schedule, the files and the email settings
/// of the host in BackupPC's web page, and nothing that names a command, a
/// path, an argument or the address BackupPC connects to. (A key left out of
/// `CgiUserConfigEdit` cannot be edited by owners.)
pub const BACKUPPC_CONFIG_PL: &str = "\
# BackupPC's config.pl (demo copy: only the settings bpc-register checks).
$Conf{CgiUserConfigEditEnable} = 1;
$Conf{CgiUserConfigEdit} = {
    FullPeriod         => 1,
    IncrPeriod         => 1,
    FullKeepCnt        => 1,
    IncrKeepCnt        => 1,
    BackupFilesOnly    => 1,
    BackupFilesExclude => 1,
    BackupsDisable     => 1,
    BlackoutPeriods    => 1,
    EMailNotifyMinDays => 1,
};
";

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    /// The demo folder.
    pub dir: PathBuf,
    /// The address the enrollment came from.
    pub client_ip: std::net::IpAddr,
    /// `SSH_CONNECTION` as the server saw it.
    pub connection: String,
    /// The server side's files.
    pub server_files: Vec<(PathBuf, &'static str)>,
    /// The enrollment of `pc-alice.example.org` for `alice`.
    pub enrollment: Enrollment,
    /// The challenge, as it went (empty when the policy asked for none).
    pub challenge: Vec<String>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The folder exists and holds something.
    #[error("{0}: the folder is not empty; give a new or empty folder")]
    NotEmpty(PathBuf),
    /// A demo file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The demo key could not be made.
    #[error("cannot generate the demo backup key: {0}")]
    Key(#[from] ssh_key::Error),
    /// A demo password could not be hashed.
    #[error("cannot hash a demo password: {0}")]
    Hash(String),
    /// The enrollment itself failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// Creates the demo in `dir` (a new temporary folder when `None`) and enrolls
/// `pc-alice.example.org` for `alice` through `file://`; `program` is the `bpc-enroll` the backup key is bound to.
pub fn run(dir: Option<&Path>, program: &str, auth: &str) -> Result<DemoReport, DemoError> {
    let dir = prepare_dir(dir)?;
    let write = |name: &str, body: &[u8], mode: u32| {
        let path = dir.join(name);
        files::write_atomic(&path, body, mode).map_err(|source| DemoError::Write { path, source })
    };
    let make_dir = |name: &str, mode: u32| {
        let path = dir.join(name);
        DirBuilder::new().recursive(true).mode(mode).create(&path).map_err(|source| DemoError::Write { path, source })
    };
    write("server.toml", server_toml(auth).as_bytes(), 0o644)?;
    write("users.toml", users_file()?.as_bytes(), 0o644)?;
    write("hosts.static", HOSTS_STATIC.as_bytes(), 0o644)?;
    make_dir("backuppc", 0o755)?;
    write("backuppc/hosts", BACKUPPC_HOSTS.as_bytes(), 0o644)?;
    write("backuppc/config.pl", BACKUPPC_CONFIG_PL.as_bytes(), 0o644)?;
    make_dir("backuppc-key", 0o700)?;
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)?;
    key.set_comment("backuppc@backup.example.org");
    write("backuppc-key/id_ed25519", key.to_openssh(LineEnding::LF)?.as_bytes(), 0o600)?;
    write("backuppc-key/id_ed25519.pub", format!("{}\n", key.public_key().to_openssh()?).as_bytes(), 0o644)?;

    // The demo machine's own SSH host key, which the server pins.
    make_dir("client-host-key", 0o755)?;
    let host_key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)?;
    let host_key_path = dir.join("client-host-key/ssh_host_ed25519_key.pub");
    write(
        "client-host-key/ssh_host_ed25519_key.pub",
        format!("{}\n", host_key.public_key().to_openssh()?).as_bytes(),
        0o644,
    )?;

    let transport =
        FileTransport { config_path: dir.join("server.toml"), client_ip: std::net::Ipv4Addr::new(127, 0, 0, 2).into() };
    let options = SetupOptions {
        server: format!("file://{}", dir.join("server.toml").display()),
        logon: demo_name(Logon::parse("alice"))?,
        os: demo_name(OsName::parse(crate::detected_os()))?,
        target: crate::install::Target::Trial(dir.join("client")),
        config: ClientConfig { host_keys: Some(vec![host_key_path]), ..ClientConfig::default() },
        program: program.to_owned(),
        take_over_account: false,
    };
    let mut alice = DemoUser { transcript: Vec::new() };
    let enrollment = enroll(&options, &transport, &mut alice, None)?;
    let host = enrollment.host.clone().unwrap_or_default();
    let server_files = vec![
        (dir.join("backuppc/hosts"), "BackupPC's hosts file, with the new line"),
        (dir.join(format!("backuppc/{host}.pl")), "the host's BackupPC config"),
        (dir.join(format!("backuppc/{host}.known_hosts")), "the host's SSH host key, pinned for BackupPC's ssh"),
        (dir.join("backuppc/config.pl"), "BackupPC's config.pl: what host owners may edit in its web page"),
        (dir.join("register.log"), "the server's event log"),
        (dir.join("registrations.jsonl"), "the journal of registrations"),
    ];
    Ok(DemoReport {
        client_ip: transport.client_ip,
        connection: transport.connection().to_string(),
        dir,
        server_files,
        enrollment,
        challenge: alice.transcript,
    })
}

/// Alice at the keyboard: answers with her demo password and notes the
/// exchange (the password itself is never written down).
struct DemoUser {
    transcript: Vec<String>,
}

impl Authenticator for DemoUser {
    fn credentials(&mut self, realm: &str) -> Result<Option<(String, protocol::Secret)>, CredentialError> {
        self.transcript.push(format!("S: auth-required PLAIN {realm}"));
        self.transcript.push("C: PLAIN <base64 of \\0alice\\0(alice's password)>".into());
        Ok(Some(("alice".into(), protocol::Secret::new("alice-demo"))))
    }
    fn rejected(&mut self, _realm: &str) {
        self.transcript.push("S: auth-failed authentication failed".into());
    }
    fn accepted(&mut self, _realm: &str) {}
}

fn demo_name<T>(name: Result<T, protocol::NameError>) -> Result<T, DemoError> {
    name.map_err(|error| DemoError::Setup(SetupError::BadAnswer(error.to_string())))
}

fn prepare_dir(dir: Option<&Path>) -> Result<PathBuf, DemoError> {
    let Some(dir) = dir else {
        let made = tempfile::Builder::new()
            .prefix("bpc-enroll-demo-")
            .tempdir()
            .map_err(|source| DemoError::Write { path: std::env::temp_dir(), source })?;
        return Ok(made.keep());
    };
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(DemoError::NotEmpty(dir.to_owned())),
            None => Ok(absolute(dir)),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| DemoError::Write { path: dir.to_owned(), source })?;
            Ok(absolute(dir))
        }
        Err(source) => Err(DemoError::Write { path: dir.to_owned(), source }),
    }
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_enrolls_alice_and_refuses_a_non_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(Some(dir.path()), "/usr/bin/bpc-enroll", "never").unwrap();
        assert_eq!(report.enrollment.host.as_deref(), Some("pc-alice.example.org"));
        let hosts = fs::read_to_string(dir.path().join("backuppc/hosts")).unwrap();
        assert!(hosts.ends_with("pc-alice.example.org\t0\talice\n"), "{hosts}");
        assert!(dir.path().join("backuppc/pc-alice.example.org.pl").exists());
        assert!(server::owner_edits::read(&dir.path().join("backuppc")).unwrap().is_safe());
        assert!(report.challenge.is_empty());
        assert!(matches!(run(Some(dir.path()), "x", "never"), Err(DemoError::NotEmpty(_))));
        let challenged = tempfile::tempdir().unwrap();
        let report = run(Some(challenged.path()), "/usr/bin/bpc-enroll", "password").unwrap();
        assert!(report.challenge[0].starts_with("S: auth-required PLAIN <file://"), "{:?}", report.challenge);
        assert!(report.enrollment.answer.contains("\nauthor: alice\n"));
    }
}
