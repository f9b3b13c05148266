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
/// carries the same key, so that running setup again changes nothing. A new
/// file gets `mode` and, when given, `group` before it is in place.
/// Returns whether the file changed.
pub fn install_authorized_key(
    path: &Path,
    key: &ssh_key::PublicKey,
    line: &str,
    mode: u32,
    group: Option<u32>,
) -> io::Result<bool> {
    let old = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    let blob = key_blob(key)?;
    let mut new = without_key(&old, &blob);
    new.push_str(line);
    if new == old {
        return Ok(false);
    }
    let pending = files::AtomicWrite::prepare(path, new.as_bytes(), mode)?;
    if let Some(gid) = group {
        pending.set_group(gid)?;
    }
    pending.commit()?;
    Ok(true)
}

/// The base64 blob of a key, which identifies its lines whatever their options.
pub fn key_blob(key: &ssh_key::PublicKey) -> io::Result<String> {
    let text = key.to_openssh().map_err(io::Error::other)?;
    Ok(text.split(' ').nth(1).unwrap_or_default().to_owned())
}

/// `text` without the lines that carry `blob`.
pub fn without_key(text: &str, blob: &str) -> String {
    text.lines()
        .filter(|line| blob.is_empty() || !line.split_whitespace().any(|field| field == blob))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Writes the client configuration unless one is there already: a file the
/// administrator shipped (with the register key and known hosts) wins.
/// Returns whether it was written.
pub fn install_client_config(path: &Path, text: &str) -> io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    files::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// Creates `dir` and its missing parents with `mode` (and `group`, when
/// given) and returns the folders it created, parents first.
pub fn create_dirs(dir: &Path, mode: u32, group: Option<u32>) -> io::Result<Vec<PathBuf>> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    let mut created = Vec::new();
    for dir in missing.into_iter().rev() {
        DirBuilder::new().mode(mode).create(dir)?;
        if let Some(gid) = group {
            nix::unistd::chown(dir, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(io::Error::from)?;
        }
        created.push(dir.to_owned());
    }
    Ok(created)
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
        let created = create_dirs(&layout.home().join(".ssh"), 0o700, None).unwrap();
        assert_eq!(created.last().unwrap(), &layout.home().join(".ssh"));
        assert!(install_authorized_key(&layout.authorized_keys(), &key, &line, 0o600, None).unwrap());
        assert!(!install_authorized_key(&layout.authorized_keys(), &key, &line, 0o600, None).unwrap());
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
        install_authorized_key(&path, &key, &line, 0o600, None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{other}{line}"));
    }
}
