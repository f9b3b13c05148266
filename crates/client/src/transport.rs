//! How the request reaches the server, chosen by the server URL's scheme.

use crate::credentials::{Authenticator, CredentialError};
use protocol::auth::{
    AuthResponse, MAX_AUTH_LINE, client_realmstring, parse_auth_failed, parse_auth_required, render_cancel,
    render_plain,
};
use server::Status;

/// The longest answer read from a server; real ones are under 1 KiB.
const MAX_ANSWER: u64 = 64 * 1024;
/// The most of ssh's standard error kept (the rest is read and dropped, so
/// that ssh never blocks on it).
const MAX_STDERR: u64 = 16 * 1024;
/// How many times one exchange may ask for credentials: the server's own
/// limit, so a server that asks again and again is cut off.
const MAX_CHALLENGES: usize = protocol::auth::MAX_ATTEMPTS;
use protocol::{Request, SshConnection};
use server::challenge::{Challenge, Challenger};
use server::{Server, ServerConfig};
use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Carries one request to the server and brings back its answer.
pub trait Transport {
    /// Sends `request`, answers the server's challenges with `auth`, and
    /// returns the server's answer, unparsed.
    fn exchange(&self, request: &Request, auth: &mut dyn Authenticator) -> Result<Vec<u8>, TransportError>;

    /// The addresses of the server this transport reached, for `from=` when
    /// the server does not say where BackupPC connects from. Empty when there
    /// is no network in between.
    fn reached_addresses(&self) -> Vec<IpAddr> {
        Vec::new()
    }
}

/// Why the request could not be carried.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server URL cannot be used.
    #[error("bad server URL `{url}`: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `file://` needs the address the server should see.
    #[error("a file:// server needs --client-ip: the address whose DNS name the server checks")]
    MissingClientIp,
    /// The client configuration lacks what the transport needs.
    #[error("{0}")]
    Config(String),
    /// The server asked for a password that could not be given.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The server's SSH host key is not the pinned one.
    #[error(
        "the server's SSH host key does not match the one pinned in {known_hosts}: refusing to register \
         (a forged server could read this whole machine); nothing was changed. If the server's key really \
         changed, get the new known_hosts from the backup administrator"
    )]
    HostKeyMismatch {
        /// The pinned known_hosts file.
        known_hosts: PathBuf,
    },
    /// The server could not be reached (or, for `file://`, started).
    #[error("cannot reach the server {server}: {reason}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The reason.
        reason: String,
    },
}

/// The transport for `url`: `file:///path/to/server.toml` runs the register
/// logic in this process (like Subversion's `file://`), seeing the request as
/// coming from `client_ip`.
pub fn transport_for(url: &str, client_ip: Option<IpAddr>) -> Result<Box<dyn Transport>, TransportError> {
    transport_with(url, client_ip, None)
}

/// Like [`transport_for`], with what the `ssh://` transport needs.
pub fn transport_with(
    url: &str,
    client_ip: Option<IpAddr>,
    ssh: Option<SshSettings>,
) -> Result<Box<dyn Transport>, TransportError> {
    let bad = |reason: &str| TransportError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    let parsed = url::Url::parse(url).map_err(|error| bad(&error.to_string()))?;
    match parsed.scheme() {
        "file" => {
            let config_path = parsed.to_file_path().map_err(|()| bad("a file:// URL needs an absolute local path"))?;
            let client_ip = client_ip.ok_or(TransportError::MissingClientIp)?;
            Ok(Box::new(FileTransport { config_path, client_ip }))
        }
        "ssh" => {
            let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("an ssh:// URL needs a host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            if host.starts_with('-') || !parsed.path().trim_matches('/').is_empty() {
                return Err(bad("an ssh:// URL is ssh://[user@]host[:port], nothing more"));
            }
            let login = match parsed.username() {
                "" => "backuppc".to_owned(),
                user if protocol::Logon::parse(user).is_ok() => user.to_owned(),
                _ => return Err(bad("the user part of the URL is not a plain account name")),
            };
            let settings = ssh.ok_or_else(|| {
                TransportError::Config(
                    "an ssh:// server needs `register-key` and `known-hosts` in client.toml (shipped by the backup administrator)".into(),
                )
            })?;
            let port = parsed.port().unwrap_or(22);
            Ok(Box::new(SshTransport { host, port, login, settings, reached: Default::default() }))
        }
        other => Err(bad(&format!("the `{other}` scheme is not supported; use ssh:// or file://"))),
    }
}

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
    fn exchange(&self, request: &Request, auth: &mut dyn Authenticator) -> Result<Vec<u8>, TransportError> {
        let origin = format!("file://{}", self.config_path.display());
        let unreachable = |reason: String| TransportError::Unreachable { server: origin.clone(), reason };
        let config = ServerConfig::load(&self.config_path).map_err(|e| unreachable(e.to_string()))?;
        let folders = ServerFolders::before(&config);
        let server = match Server::from_config(config) {
            Ok(server) => server,
            Err(error) => {
                folders.give_new_files_away();
                return Err(unreachable(error.to_string()));
            }
        };
        let mut bridge = Bridge { auth, origin: origin.clone(), realm: None, answered: false, error: None };
        let response = server.handle_with(Some(request.render().as_bytes()), &self.connection(), &origin, &mut bridge);
        folders.give_new_files_away();
        if let Some(error) = bridge.error {
            return Err(error.into());
        }
        // Only a registration made proves the password: a server fault after
        // the challenge says nothing about it.
        if let (true, Some(realm), Status::Success) = (bridge.answered, &bridge.realm, response.status) {
            bridge.auth.accepted(realm);
        }
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

/// The challenge of the in-process server, answered directly by the
/// client's credential chain: the same steps as on the wire, without the wire.
struct Bridge<'a> {
    auth: &'a mut dyn Authenticator,
    origin: String,
    realm: Option<String>,
    answered: bool,
    error: Option<CredentialError>,
}

impl Challenger for Bridge<'_> {
    fn ask(&mut self, realmstring: &str) -> Challenge {
        let realm = client_realmstring(&self.origin, realmstring);
        self.answered = false;
        let answer = self.auth.credentials(&realm);
        self.realm = Some(realm);
        match answer {
            Ok(Some((username, password))) => {
                self.answered = true;
                Challenge::Answer(Ok(AuthResponse::Plain { username, password }))
            }
            Ok(None) => Challenge::Answer(Ok(AuthResponse::Cancel)),
            Err(error) => {
                self.error = Some(error);
                Challenge::Answer(Ok(AuthResponse::Cancel))
            }
        }
    }

    fn failed(&mut self, _reason: &str) {
        self.answered = false;
        if let Some(realm) = &self.realm {
            self.auth.rejected(realm);
        }
    }
}

/// The client's side of the exchange on a byte stream: answers
/// `auth-required` lines, notes `auth-failed` ones, and returns the answer
/// that follows. `auth` learns whether its last credentials were accepted.
pub fn converse(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    origin: &str,
    auth: &mut dyn Authenticator,
) -> Result<Vec<u8>, TransportError> {
    let lost = |e: std::io::Error| TransportError::Unreachable {
        server: origin.to_owned(),
        reason: match e.kind() {
            std::io::ErrorKind::TimedOut => {
                "the server did not finish its answer in time (timeout in client.toml)".into()
            }
            _ => e.to_string(),
        },
    };
    let mut realm: Option<String> = None;
    let mut answered = false;
    let mut challenges = 0;
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_AUTH_LINE + 1).unwrap_or(u64::MAX);
        reader.take(limit).read_until(b'\n', &mut line).map_err(lost)?;
        let text = String::from_utf8_lossy(&line).into_owned();
        if let Some(asked) = parse_auth_required(&text) {
            challenges += 1;
            if challenges > MAX_CHALLENGES {
                let _ = writer.write_all(render_cancel().as_bytes()).and_then(|()| writer.flush());
                return Err(TransportError::Unreachable {
                    server: origin.to_owned(),
                    reason: format!("the server asked for credentials more than {MAX_CHALLENGES} times; giving up"),
                });
            }
            let key = client_realmstring(origin, asked);
            answered = false;
            let reply = match auth.credentials(&key) {
                Ok(Some((username, password))) => {
                    answered = true;
                    render_plain(&username, &password)
                }
                Ok(None) => render_cancel().to_owned(),
                Err(error) => {
                    let _ = writer.write_all(render_cancel().as_bytes()).and_then(|()| writer.flush());
                    return Err(error.into());
                }
            };
            realm = Some(key);
            writer.write_all(reply.as_bytes()).and_then(|()| writer.flush()).map_err(lost)?;
            continue;
        }
        if parse_auth_failed(&text).is_some() {
            if let (true, Some(realm)) = (answered, &realm) {
                auth.rejected(realm);
            }
            answered = false;
            continue;
        }
        // Only a registration made proves the password: a server fault after
        // the challenge says nothing about it.
        if let (true, Some(realm), true) = (answered, &realm, line.starts_with(b"success")) {
            auth.accepted(realm);
        }
        reader.take(MAX_ANSWER).read_to_end(&mut line).map_err(lost)?;
        return Ok(line);
    }
}

/// What the `ssh://` transport needs besides the URL.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The private register key.
    pub register_key: PathBuf,
    /// The known_hosts file holding the server's pinned host key.
    pub known_hosts: PathBuf,
    /// The account to run ssh as (uid, gid), when running as root.
    pub run_as: Option<(u32, u32)>,
    /// Seconds to wait for the connection, and for a silent server.
    pub timeout: u32,
}

/// The system OpenSSH client, run as the backup account as the contract
/// says: `env SSH_AUTH_SOCK= ssh -x -a -i REGISTER_KEY -l backuppc SERVER
/// OS:logon`, with the server's host key pinned and no prompt possible.
#[derive(Debug, Clone)]
pub struct SshTransport {
    /// The server's host name or address.
    pub host: String,
    /// The server's sshd port.
    pub port: u16,
    /// The server account bound to bpc-register.
    pub login: String,
    /// Keys, pinning and identity.
    pub settings: SshSettings,
    /// The address ssh authenticated to, as it reported it.
    pub reached: std::cell::RefCell<Option<IpAddr>>,
}

/// The OpenSSH client.
pub const SSH: &str = "/usr/bin/ssh";
/// util-linux's setpriv, which drops to the backup account with no
/// supplementary groups before ssh starts.
pub const SETPRIV: &str = "/usr/bin/setpriv";

impl SshTransport {
    fn url(&self) -> String {
        format!("ssh://{}@{}:{}", self.login, self.host, self.port)
    }

    /// The key and known_hosts, copied where the backup account (and nobody
    /// else) can read them for the time of the exchange. The register key
    /// is not left in the account's home: it is only needed now.
    fn stage_files(&self, gid: Option<u32>) -> Result<(tempfile::TempDir, PathBuf, PathBuf), TransportError> {
        use std::os::unix::fs::PermissionsExt;
        let config = |what: &str, path: &std::path::Path, error: std::io::Error| {
            TransportError::Config(format!("{}: cannot read the {what}: {error}", path.display()))
        };
        let key = std::fs::read(&self.settings.register_key)
            .map_err(|e| config("register key (register-key in client.toml)", &self.settings.register_key, e))?;
        let known = std::fs::read(&self.settings.known_hosts)
            .map_err(|e| config("pinned known_hosts (known-hosts in client.toml)", &self.settings.known_hosts, e))?;
        let stage_error = |e: std::io::Error| TransportError::Config(format!("cannot stage the register key: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("bpc-enroll-ssh-")
            .permissions(std::fs::Permissions::from_mode(0o750))
            .tempdir()
            .map_err(stage_error)?;
        if let Some(gid) = gid {
            nix::unistd::chown(dir.path(), None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| stage_error(e.into()))?;
        }
        let key_path = dir.path().join("register_key");
        let known_path = dir.path().join("known_hosts");
        let mode = if gid.is_some() { 0o640 } else { 0o600 };
        for (path, body) in [(&key_path, &key), (&known_path, &known)] {
            files::write_atomic(path, body, mode).map_err(stage_error)?;
            if let Some(gid) = gid {
                nix::unistd::chown(path.as_path(), None, Some(nix::unistd::Gid::from_raw(gid)))
                    .map_err(|e| stage_error(e.into()))?;
            }
        }
        Ok((dir, key_path, known_path))
    }

    fn command(
        &self,
        request: &Request,
        key: &std::path::Path,
        known_hosts: &std::path::Path,
        home: &std::path::Path,
    ) -> Command {
        let timeout = self.settings.timeout.max(1);
        let mut command = match self.settings.run_as {
            Some((uid, gid)) => {
                let mut command = Command::new(SETPRIV);
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(SSH);
                command
            }
            None => Command::new(SSH),
        };
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .env("SSH_AUTH_SOCK", "")
            .args(["-F", "/dev/null", "-x", "-a", "-T"])
            .arg("-i")
            .arg(key)
            .args(["-l", &self.login, "-p", &self.port.to_string()])
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "CheckHostIP=no"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", &format!("ConnectTimeout={timeout}"), "-o", &format!("ServerAliveInterval={timeout}")])
            // VERBOSE: ssh then says which address it authenticated to, the
            // one `from=` must name (see `authenticated_address`).
            .args(["-o", "ServerAliveCountMax=2", "-o", "LogLevel=VERBOSE", "--", &self.host, &request.render()]);
        command
    }
}

impl Transport for SshTransport {
    fn exchange(&self, request: &Request, auth: &mut dyn Authenticator) -> Result<Vec<u8>, TransportError> {
        let (stage, key, known_hosts) = self.stage_files(self.settings.run_as.map(|(_, gid)| gid))?;
        let cannot_run = |e: std::io::Error| TransportError::Unreachable {
            server: self.url(),
            reason: format!("cannot run {SSH}: {e}"),
        };
        let mut child = self
            .command(request, &key, &known_hosts, stage.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(cannot_run)?;
        let stderr_pipe = child.stderr.take();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = stderr_pipe {
                let _ = (&mut pipe).take(MAX_STDERR).read_to_end(&mut text);
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            }
            text
        });
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(cannot_run(std::io::Error::other("no pipes to ssh")));
        };
        let origin = protocol::auth::realm_origin("ssh", &self.host, self.port);
        // The whole time spent waiting for the server, connection included,
        // is bounded by `timeout`; time at a password prompt does not count.
        let budget = std::time::Duration::from_secs(u64::from(self.settings.timeout.max(1)));
        let mut reader = std::io::BufReader::new(files::DeadlineReader::new(stdout, budget));
        let answer = converse(&mut reader, &mut stdin, &origin, auth);
        drop(stdin);
        drop(reader);
        if answer.is_err() {
            // A server that stopped answering, or asked too often, is cut off here.
            let _ = child.kill();
        }
        let status = child.wait().map_err(cannot_run)?;
        let stderr = stderr_reader.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        self.reached.replace(authenticated_address(&stderr));
        if status.code() != Some(255) {
            return answer;
        }
        if stderr.contains("Host key verification failed") || stderr.contains("IDENTIFICATION HAS CHANGED") {
            return Err(TransportError::HostKeyMismatch { known_hosts: self.settings.known_hosts.clone() });
        }
        // ssh's own error lines, without the informational ones VERBOSE adds.
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.starts_with("Authenticated to ") && !line.starts_with("Transferred: "))
            .collect();
        let reason = protocol::text::printable(errors.join("\n").trim());
        Err(TransportError::Unreachable { server: self.url(), reason })
    }

    /// The address of the connection that carried the exchange, as ssh
    /// reported it: the one BackupPC's connections will come from when it
    /// runs on the same server, and nothing a second DNS lookup could change.
    fn reached_addresses(&self) -> Vec<IpAddr> {
        self.reached.borrow().iter().copied().collect()
    }
}

/// The peer address in OpenSSH's `Authenticated to HOST ([ADDRESS]:PORT)
/// using "METHOD".` line (printed at `LogLevel=VERBOSE`).
fn authenticated_address(stderr: &str) -> Option<IpAddr> {
    stderr.lines().find_map(|line| {
        let rest = line.strip_prefix("Authenticated to ")?;
        let (_, after) = rest.rsplit_once(" ([")?;
        let (address, _) = after.split_once("]:")?;
        address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_transport_from_the_scheme() {
        let ip = Some("127.0.0.2".parse().unwrap());
        assert!(transport_for("file:///srv/server.toml", ip).is_ok());
        assert!(matches!(transport_for("file:///srv/server.toml", None), Err(TransportError::MissingClientIp)));
        assert!(matches!(transport_for("gopher://x", ip), Err(TransportError::BadUrl { .. })));
        assert!(matches!(transport_for("ssh://backup.example.org", ip), Err(TransportError::Config(_))));
        let ssh = || Some(SshSettings { register_key: "k".into(), known_hosts: "h".into(), run_as: None, timeout: 5 });
        assert!(transport_with("ssh://backup.example.org:2222", None, ssh()).is_ok());
        assert!(transport_with("ssh://-oProxyCommand=x", None, ssh()).is_err());
        assert!(transport_with("ssh://backup.example.org/path", None, ssh()).is_err());
        assert!(transport_with("ssh://a;b@backup.example.org", None, ssh()).is_err());
        assert!(matches!(transport_for("not a url", ip), Err(TransportError::BadUrl { .. })));
    }

    #[test]
    fn the_address_comes_from_what_ssh_authenticated_to() {
        let stderr = "Warning: something\nAuthenticated to backup.example.org ([192.0.2.10]:22) using \"publickey\".\n";
        assert_eq!(authenticated_address(stderr), Some("192.0.2.10".parse().unwrap()));
        let v6 = "Authenticated to b ([2001:db8::1]:2222) using \"publickey\".\n";
        assert_eq!(authenticated_address(v6), Some("2001:db8::1".parse().unwrap()));
        let mapped = "Authenticated to b ([::ffff:192.0.2.1]:22) using \"publickey\".\n";
        assert_eq!(authenticated_address(mapped), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(authenticated_address("Authenticated to x ([not-an-ip]:22)\n"), None);
        assert_eq!(authenticated_address("ssh: connect to host b port 22: Connection refused\n"), None);
    }

    /// Always has the same answer, and counts what it was told.
    #[derive(Default)]
    struct Always {
        asked: usize,
        accepted: usize,
    }

    impl Authenticator for Always {
        fn credentials(&mut self, _realm: &str) -> Result<Option<(String, protocol::Secret)>, CredentialError> {
            self.asked += 1;
            Ok(Some(("alice".into(), protocol::Secret::new("pw"))))
        }
        fn rejected(&mut self, _realm: &str) {}
        fn accepted(&mut self, _realm: &str) {
            self.accepted += 1;
        }
    }

    #[test]
    fn a_server_that_asks_again_and_again_is_cut_off() {
        let server = "auth-required PLAIN Example\n".repeat(10) + "success\nkey: x\n";
        let mut reader = std::io::Cursor::new(server.into_bytes());
        let mut sent = Vec::new();
        let mut auth = Always::default();
        let error = converse(&mut reader, &mut sent, "ssh://b:22", &mut auth).unwrap_err();
        assert!(error.to_string().contains("more than 3 times"), "{error}");
        assert_eq!(auth.asked, MAX_CHALLENGES);
        let sent = String::from_utf8(sent).unwrap();
        assert_eq!(sent.lines().filter(|l| l.starts_with("PLAIN ")).count(), MAX_CHALLENGES);
        assert_eq!(sent.lines().last(), Some(render_cancel().trim_end()));
        assert_eq!(auth.accepted, 0);
    }

    #[test]
    fn a_server_within_the_limit_gets_its_answers() {
        let server = "auth-required PLAIN Example\nauth-failed no\n".repeat(2)
            + "auth-required PLAIN Example\nsuccess\nkey: x\n";
        let mut reader = std::io::Cursor::new(server.into_bytes());
        let mut auth = Always::default();
        let answer = converse(&mut reader, &mut Vec::new(), "ssh://b:22", &mut auth).unwrap();
        assert_eq!(answer, b"success\nkey: x\n");
        assert_eq!((auth.asked, auth.accepted), (3, 1));
    }
}
