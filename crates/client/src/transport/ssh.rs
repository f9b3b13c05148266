//! `ssh://`: the system OpenSSH client, run as the backup account, with the
//! server's host key pinned and every wait bounded.

use super::session::converse;
use super::{Transport, TransportError};
use crate::credentials::Authenticator;
use protocol::ClientRequest;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The most of ssh's standard error kept (the rest is read and dropped, so
/// that ssh never blocks on it).
const MAX_STDERR: u64 = 16 * 1024;

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
        request: &ClientRequest,
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
    fn exchange(
        &self,
        request: &ClientRequest,
        host_keys: &[String],
        auth: &mut dyn Authenticator,
    ) -> Result<Vec<u8>, TransportError> {
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
        let answer = converse(&mut reader, &mut stdin, &origin, host_keys, auth);
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
}
