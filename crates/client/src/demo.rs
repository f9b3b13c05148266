//! `bpc-enroll demo`: a whole server and one enrollment in a folder.

use crate::config::ClientConfig;
use crate::setup::{Enrollment, SetupError, SetupOptions, enroll};
use crate::transport::FileTransport;
use protocol::{Logon, OsName};
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The demo's users file: the two users of the story.
pub const USERS: &str = "\
# The demo's user directory: who may register a host.
[users.alice]
name = \"Alice Example\"

[users.bob]
name = \"Bob Example\"
";

/// The demo's resolver: two hosts inside the domain, one outside it.
pub const HOSTS_STATIC: &str = "\
# The demo's DNS, in /etc/hosts format: address, then its name.
127.0.0.2   pc-alice.example.org
127.0.0.3   pc-bob.example.org
127.0.0.9   evil.example.net
";

/// The demo's server configuration; paths are relative to its folder.
pub const SERVER_TOML: &str = "\
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
    /// The enrollment itself failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// Creates the demo in `dir` (a new temporary folder when `None`) and enrolls
/// `pc-alice.example.org` for `alice` through `file://`; `program` is the `bpc-enroll` the backup key is bound to.
pub fn run(dir: Option<&Path>, program: &str) -> Result<DemoReport, DemoError> {
    let dir = prepare_dir(dir)?;
    let write = |name: &str, body: &[u8], mode: u32| {
        let path = dir.join(name);
        files::write_atomic(&path, body, mode).map_err(|source| DemoError::Write { path, source })
    };
    let make_dir = |name: &str, mode: u32| {
        let path = dir.join(name);
        DirBuilder::new().recursive(true).mode(mode).create(&path).map_err(|source| DemoError::Write { path, source })
    };
    write("server.toml", SERVER_TOML.as_bytes(), 0o644)?;
    write("users.toml", USERS.as_bytes(), 0o644)?;
    write("hosts.static", HOSTS_STATIC.as_bytes(), 0o644)?;
    make_dir("backuppc", 0o755)?;
    write("backuppc/hosts", BACKUPPC_HOSTS.as_bytes(), 0o644)?;
    make_dir("backuppc-key", 0o700)?;
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)?;
    key.set_comment("backuppc@backup.example.org");
    write("backuppc-key/id_ed25519", key.to_openssh(LineEnding::LF)?.as_bytes(), 0o600)?;
    write("backuppc-key/id_ed25519.pub", format!("{}\n", key.public_key().to_openssh()?).as_bytes(), 0o644)?;

    let transport =
        FileTransport { config_path: dir.join("server.toml"), client_ip: std::net::Ipv4Addr::new(127, 0, 0, 2).into() };
    let options = SetupOptions {
        server: format!("file://{}", dir.join("server.toml").display()),
        logon: demo_name(Logon::parse("alice"))?,
        os: demo_name(OsName::parse(crate::detected_os()))?,
        root: dir.join("client"),
        config: ClientConfig::default(),
        program: program.to_owned(),
        system: false,
    };
    let enrollment = enroll(&options, &transport, None)?;
    let host = enrollment.host.clone().unwrap_or_default();
    let server_files = vec![
        (dir.join("backuppc/hosts"), "BackupPC's hosts file, with the new line"),
        (dir.join(format!("backuppc/{host}.pl")), "the host's BackupPC config"),
        (dir.join("register.log"), "the server's event log"),
        (dir.join("registrations.jsonl"), "the journal of registrations"),
    ];
    Ok(DemoReport {
        client_ip: transport.client_ip,
        connection: transport.connection().to_string(),
        dir,
        server_files,
        enrollment,
    })
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
        let report = run(Some(dir.path()), "/usr/bin/bpc-enroll").unwrap();
        assert_eq!(report.enrollment.host.as_deref(), Some("pc-alice.example.org"));
        let hosts = fs::read_to_string(dir.path().join("backuppc/hosts")).unwrap();
        assert!(hosts.ends_with("pc-alice.example.org\t0\talice\n"), "{hosts}");
        assert!(dir.path().join("backuppc/pc-alice.example.org.pl").exists());
        assert!(matches!(run(Some(dir.path()), "x"), Err(DemoError::NotEmpty(_))));
    }
}
