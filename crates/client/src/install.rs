//! What setup installs on the machine, and where.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where setup installs things: under `/` for real, under any folder for a
/// trial or a test (`--root`).
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    account: String,
}

impl Layout {
    /// The layout for `account` under `root`.
    pub fn new(root: impl Into<PathBuf>, account: &str) -> Layout {
        Layout { root: root.into(), account: account.to_owned() }
    }

    /// The backup account's home.
    pub fn home(&self) -> PathBuf {
        self.root.join("var/lib").join(&self.account)
    }

    /// The backup account's `authorized_keys`.
    pub fn authorized_keys(&self) -> PathBuf {
        self.home().join(".ssh/authorized_keys")
    }

    /// The client configuration setup installs.
    pub fn client_config(&self) -> PathBuf {
        self.root.join("etc/bpc-enroll/client.toml")
    }
}

/// The `authorized_keys` line that lets the backup server in with `key` and
/// nothing but `command`: `restrict` turns off forwarding, ptys and user rc,
/// `from=` (when given) limits the addresses it is accepted from.
pub fn authorized_keys_line(key: &ssh_key::PublicKey, command: &str, from: Option<&str>) -> io::Result<String> {
    if command.contains(['"', '\\', '\n', '\r']) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the rsyncsend command holds a quote or a newline"));
    }
    let mut key = key.clone();
    let comment: String = key.comment().chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
    key.set_comment(comment.trim());
    let key_text = key.to_openssh().map_err(io::Error::other)?;
    let from = from.map(|from| format!("from=\"{from}\",")).unwrap_or_default();
    Ok(format!("{from}restrict,command=\"{command}\" {key_text}\n"))
}

/// Installs `line` in `path`, keeping other keys but replacing any line that
/// carries the same key, so that running setup again changes nothing.
/// Returns whether the file changed.
pub fn install_authorized_key(path: &Path, key: &ssh_key::PublicKey, line: &str) -> io::Result<bool> {
    if let Some(ssh_dir) = path.parent() {
        if let Some(home) = ssh_dir.parent() {
            make_dir(home, 0o750)?;
        }
        make_dir(ssh_dir, 0o700)?;
    }
    let old = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    let blob = key.to_openssh().map_err(io::Error::other)?;
    let blob = blob.split(' ').nth(1).unwrap_or_default().to_owned();
    let mut new: String = old
        .lines()
        .filter(|existing| blob.is_empty() || !existing.split_whitespace().any(|field| field == blob))
        .map(|existing| format!("{existing}\n"))
        .collect();
    new.push_str(line);
    if new == old {
        return Ok(false);
    }
    files::write_atomic(path, new.as_bytes(), 0o600)?;
    Ok(true)
}

/// Writes the client configuration unless one is there already: a file the
/// administrator shipped (with the register key and known hosts) wins.
/// Returns whether it was written.
pub fn install_client_config(path: &Path, text: &str) -> io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        make_dir(dir, 0o755)?;
    }
    files::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// Creates `dir` and its missing parents with `mode` from the start.
fn make_dir(dir: &Path, mode: u32) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(mode).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl backuppc@server";

    #[test]
    fn the_line_binds_the_key_to_the_command() {
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        let line = authorized_keys_line(&key, "/usr/bin/bpc-enroll rsyncsend", Some("192.0.2.10")).unwrap();
        assert_eq!(line, format!("from=\"192.0.2.10\",restrict,command=\"/usr/bin/bpc-enroll rsyncsend\" {KEY}\n"));
        assert!(authorized_keys_line(&key, "/x\" ,no-restrict", None).is_err());
    }

    #[test]
    fn installing_twice_changes_nothing_and_modes_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path(), "bckpciuem");
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        let line = authorized_keys_line(&key, "/usr/bin/bpc-enroll rsyncsend", None).unwrap();
        assert!(install_authorized_key(&layout.authorized_keys(), &key, &line).unwrap());
        assert!(!install_authorized_key(&layout.authorized_keys(), &key, &line).unwrap());
        assert_eq!(fs::read_to_string(layout.authorized_keys()).unwrap(), line);
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(layout.authorized_keys()), 0o600);
        assert_eq!(mode(layout.home().join(".ssh")), 0o700);
    }

    #[test]
    fn other_keys_are_kept_and_an_old_binding_of_the_same_key_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ssh/authorized_keys");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7bFyfdhU/nD2AAWl3DjR3pOYY8iwBXDh+z6kuZTy5E other\n";
        fs::write(&path, format!("{other}command=\"/old\" {KEY}\n")).unwrap();
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        let line = authorized_keys_line(&key, "/new rsyncsend", None).unwrap();
        install_authorized_key(&path, &key, &line).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{other}{line}"));
    }
}
