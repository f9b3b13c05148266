//! `file://`: a `bpc-register` run inside this process against a server
//! configuration file, like Subversion's `ra_local`. Built in only with the
//! `file` feature: a client machine's build does without the server.

use super::session::{ChallengeSession, Reply};
use super::{Transport, TransportError};
use crate::credentials::Authenticator;
use protocol::auth::AuthResponse;
use protocol::{ClientRequest, SshConnection};
use server::challenge::{Challenge, Challenger};
use server::{Server, ServerConfig, Status};
use std::collections::HashSet;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// The in-process transport: a `bpc-register` run inside this process against
/// a server configuration file.
#[derive(Debug, Clone)]
pub struct FileTransport {
    /// The server configuration.
    pub config_path: PathBuf,
    /// The address the request appears to come from.
    pub client_ip: IpAddr,
}

impl FileTransport {
    /// The `SSH_CONNECTION` the in-process server sees: the client address,
    /// port 0 on both ends (no socket is involved) and the loopback address.
    pub fn connection(&self) -> SshConnection {
        SshConnection::new(self.client_ip, 0, IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    }
}

impl Transport for FileTransport {
    fn exchange(
        &self,
        request: &ClientRequest,
        host_keys: &[String],
        auth: &mut dyn Authenticator,
    ) -> Result<Vec<u8>, TransportError> {
        let origin = format!("file://{}", self.config_path.display());
        let unreachable = |reason: String| TransportError::Unreachable { server: origin.clone(), reason };
        let config = ServerConfig::load(&self.config_path).map_err(|error| match error {
            // Refused as it stands, not out of reach: a configuration error.
            server::config::ConfigError::Untrusted(refusal) => {
                TransportError::Config(format!("the server of {origin} cannot be used as root: {refusal}"))
            }
            other => unreachable(other.to_string()),
        })?;
        let folders = ServerFolders::before(&config);
        let server = match Server::from_config(config) {
            Ok(server) => server,
            Err(error) => {
                folders.give_new_files_away();
                return Err(unreachable(error.to_string()));
            }
        };
        let mut bridge = Bridge { session: ChallengeSession::new(&origin, auth), host_keys, error: None };
        let response = server.handle_with(Some(request.render().as_bytes()), &self.connection(), &origin, &mut bridge);
        folders.give_new_files_away();
        if let Some(error) = bridge.error {
            return Err(error);
        }
        bridge.session.finished(response.status == Status::Success);
        Ok(response.text.into_bytes())
    }
}

/// The folders the in-process server writes in (BackupPC's configuration
/// folder, the journal's, the log file's) and the names each held before the
/// exchange. Run as root against a server's real configuration, the server
/// would leave `LOCK`, the journal, the log or `HOST.pl` owned by root, and
/// `bpc-register`, run as the folder's owner, could then register no one.
struct ServerFolders {
    folders: Vec<(PathBuf, HashSet<OsString>)>,
}

impl ServerFolders {
    /// Notes what the server's folders hold now; nothing when not root,
    /// since the files the server creates are then this user's anyway.
    fn before(config: &ServerConfig) -> ServerFolders {
        if !nix::unistd::geteuid().is_root() {
            return ServerFolders { folders: Vec::new() };
        }
        let mut paths = vec![config.backuppc.conf_dir.clone()];
        let files = [
            config.journal.as_ref(),
            match &config.log {
                server::config::LogConfig::File { path } => Some(path),
                _ => None,
            },
        ];
        paths.extend(files.into_iter().flatten().filter_map(|file| file.parent().map(PathBuf::from)));
        paths.sort();
        paths.dedup();
        let folders = paths.into_iter().map(|folder| {
            let names = std::fs::read_dir(&folder)
                .map(|entries| entries.filter_map(|entry| entry.ok().map(|entry| entry.file_name())).collect())
                .unwrap_or_default();
            (folder, names)
        });
        ServerFolders { folders: folders.collect() }
    }

    /// Gives each regular file that appeared in a folder, owned by root,
    /// to the folder's owner and group, as if that owner had run the
    /// server. Files are opened without following links and changed through
    /// their descriptor, and only those with a single link, so that nothing
    /// placed in the folder by someone else can point the change elsewhere.
    /// Best effort: a file that cannot be given away stays as it is.
    fn give_new_files_away(self) {
        use nix::fcntl::{OFlag, openat};
        use nix::sys::stat::{Mode, SFlag, fstat};
        use nix::unistd::{Gid, Uid, fchown};
        for (folder, before) in self.folders {
            let Ok(dir) =
                nix::fcntl::open(&folder, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            else {
                continue;
            };
            let Ok(dir_stat) = fstat(&dir) else { continue };
            if dir_stat.st_uid == 0 {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&folder) else { continue };
            for name in entries.filter_map(|entry| entry.ok().map(|entry| entry.file_name())) {
                if before.contains(&name) {
                    continue;
                }
                let flags =
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
                let Ok(file) = openat(&dir, name.as_os_str(), flags, Mode::empty()) else { continue };
                let Ok(stat) = fstat(&file) else { continue };
                let regular = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
                if regular && stat.st_uid == 0 && stat.st_nlink == 1 {
                    let _ = fchown(&file, Some(Uid::from_raw(dir_stat.st_uid)), Some(Gid::from_raw(dir_stat.st_gid)));
                }
            }
        }
    }
}

/// The challenge of the in-process server, answered by the same session as
/// on the wire, without the wire.
struct Bridge<'a> {
    session: ChallengeSession<'a>,
    host_keys: &'a [String],
    error: Option<TransportError>,
}

impl Challenger for Bridge<'_> {
    fn ask(&mut self, realmstring: &str) -> Challenge {
        match self.session.asked(realmstring) {
            Ok(Reply::Plain { username, password }) => {
                Challenge::Answer(Ok(AuthResponse::Plain { username, password }))
            }
            Ok(Reply::Cancel) => Challenge::Answer(Ok(AuthResponse::Cancel)),
            Err(error) => {
                self.error = Some(error);
                Challenge::Answer(Ok(AuthResponse::Cancel))
            }
        }
    }

    fn failed(&mut self, _reason: &str) {
        // The in-process server says so at most once per answer.
        if let Err(error) = self.session.failed() {
            self.error = Some(error);
        }
    }

    fn host_keys(&mut self, count: u32) -> Vec<Vec<u8>> {
        self.host_keys.iter().take(count as usize).map(|line| format!("{line}\n").into_bytes()).collect()
    }
}
