//! The machine's own SSH host keys, sent at registration so that BackupPC
//! trusts them alone: `host-keys` in `client.toml`, else the `hostkey`
//! files that `sshd -T` reports, with `.pub`.

use crate::config::ClientConfig;
use protocol::hostkeys::{HostKey, MAX_HOST_KEYS};
use std::path::{Path, PathBuf};

/// Where sshd is, to ask it which host keys it serves.
pub const SSHD: &str = "/usr/sbin/sshd";

/// The host keys to send, or why none are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnHostKeys {
    /// The keys, each once, in the order found.
    pub keys: Vec<HostKey>,
    /// Why no key could be found, when the list was not configured.
    pub note: Option<String>,
}

/// Why configured host keys cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum HostKeysError {
    /// A configured file cannot be read.
    #[error("{path}: cannot read this host key (host-keys in client.toml): {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A configured file is not a public host key the server accepts.
    #[error("{path}: not a host public key the server accepts (host-keys in client.toml): {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: protocol::hostkeys::HostKeyError,
    },
    /// More keys than the server accepts.
    #[error("host-keys in client.toml names {0} keys; at most {MAX_HOST_KEYS} are sent")]
    TooMany(usize),
}

/// The host keys `config` says to send: its `host-keys` list (each file
/// must be a public key the server accepts), else those sshd serves.
pub fn own_host_keys(config: &ClientConfig) -> Result<OwnHostKeys, HostKeysError> {
    match &config.host_keys {
        Some(paths) => {
            if paths.len() > MAX_HOST_KEYS as usize {
                return Err(HostKeysError::TooMany(paths.len()));
            }
            let mut keys = Vec::new();
            for path in paths {
                let key = read_key(path)?;
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Ok(OwnHostKeys { keys, note: None })
        }
        None => Ok(served_by_sshd()),
    }
}

/// One public key file, its first line.
fn read_key(path: &Path) -> Result<HostKey, HostKeysError> {
    let text = std::fs::read_to_string(path).map_err(|source| HostKeysError::Read { path: path.to_owned(), source })?;
    HostKey::parse(text.trim_end().as_bytes())
        .map_err(|reason| HostKeysError::Invalid { path: path.to_owned(), reason })
}

/// The public halves of the `hostkey` files of `sshd -T`, those that can
/// be read and accepted; when there are none, a note says why.
fn served_by_sshd() -> OwnHostKeys {
    let output = std::process::Command::new(SSHD)
        .arg("-T")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::null())
        .output();
    let none = |why: String| OwnHostKeys {
        keys: Vec::new(),
        note: Some(format!(
            "no SSH host key of this machine was sent ({why}): BackupPC will trust the host key its first \
             backup meets; set host-keys in client.toml and run setup again to pin them"
        )),
    };
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            return none(format!(
                "{SSHD} -T failed: {}",
                protocol::text::one_line(&String::from_utf8_lossy(&output.stderr))
            ));
        }
        Err(error) => return none(format!("{SSHD} -T: {error}")),
    };
    let mut keys = Vec::new();
    for private in hostkey_files(&String::from_utf8_lossy(&output.stdout)) {
        let public = PathBuf::from(format!("{}.pub", private.display()));
        if let Ok(key) = read_key(&public)
            && !keys.contains(&key)
            && keys.len() < MAX_HOST_KEYS as usize
        {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return none(format!("{SSHD} -T names no host key with a readable .pub file"));
    }
    OwnHostKeys { keys, note: None }
}

/// The `hostkey` files in `sshd -T`'s output.
fn hostkey_files(output: &str) -> Vec<PathBuf> {
    output.lines().filter_map(|line| line.strip_prefix("hostkey ")).map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOjHEgPPWML3UMMAud1JqyVNZC+DeLG8kIXd8twC5siD";

    #[test]
    fn reads_the_hostkey_lines_of_sshd_t() {
        let output =
            "port 22\nhostkey /etc/ssh/ssh_host_rsa_key\nhostkey /etc/ssh/ssh_host_ed25519_key\nhostkeyagent none\n";
        assert_eq!(
            hostkey_files(output),
            [PathBuf::from("/etc/ssh/ssh_host_rsa_key"), PathBuf::from("/etc/ssh/ssh_host_ed25519_key")]
        );
    }

    #[test]
    fn configured_keys_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.pub");
        std::fs::write(&good, format!("{ED25519} root@pc\n")).unwrap();
        let config = ClientConfig { host_keys: Some(vec![good.clone(), good]), ..ClientConfig::default() };
        let found = own_host_keys(&config).unwrap();
        assert_eq!(found.keys.iter().map(HostKey::render).collect::<Vec<_>>(), [ED25519]);
        let private = dir.path().join("ssh_host_ed25519_key");
        std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n").unwrap();
        let config = ClientConfig { host_keys: Some(vec![private.clone()]), ..ClientConfig::default() };
        assert_eq!(
            own_host_keys(&config).unwrap_err().to_string(),
            format!(
                "{}: not a host public key the server accepts (host-keys in client.toml): a private key was sent; \
                 send the host's public key (.pub) only",
                private.display()
            )
        );
    }
}
