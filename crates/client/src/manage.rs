//! `bpc-enroll uninstall` and `bpc-enroll status`.

use crate::config::ClientConfig;
use crate::install::{Layout, Target, without_key};
use crate::manifest::Manifest;
use crate::system;
use std::fs;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why uninstall could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The manifest cannot be read.
    #[error(transparent)]
    Manifest(#[from] files::TomlError),
    /// Something could not be removed.
    #[error("{path}: cannot remove: {source}")]
    Remove {
        /// The file or folder.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The account could not be removed.
    #[error(transparent)]
    System(#[from] system::SystemError),
}

/// What uninstall removed; `None` when setup never ran under this root.
pub fn uninstall(target: &Target) -> Result<Option<Vec<PathBuf>>, ManageError> {
    let root = target.root();
    let Some(manifest) = Manifest::load(root)? else { return Ok(None) };
    let mut removed = remove_keys_and_files(&manifest)?;
    let manifest_path = Manifest::path(root);
    remove_one(&manifest_path, fs::remove_file(&manifest_path), &mut removed)?;
    removed.extend(remove_empty_dirs(&manifest)?);
    if target.changes_system() && manifest.account_created && system::find_account(&manifest.account)?.is_some() {
        system::remove_account(&manifest.account)?;
        removed.push(PathBuf::from(format!("account {}", manifest.account)));
    }
    Ok(Some(removed))
}

/// Takes the keys `listed` records out of the files they were added to
/// (keeping each file's mode and owner) and removes the files it records.
pub(crate) fn remove_keys_and_files(listed: &Manifest) -> Result<Vec<PathBuf>, ManageError> {
    use std::os::unix::fs::PermissionsExt;
    let mut removed = Vec::new();
    for added in &listed.added_keys {
        let Ok(text) = fs::read_to_string(&added.file) else { continue };
        let kept = without_key(&text, &added.key);
        if kept != text {
            let mode = fs::metadata(&added.file).map_or(0o600, |meta| meta.permissions().mode() & 0o7777);
            files::write_atomic(&added.file, kept.as_bytes(), mode)
                .map_err(|source| ManageError::Remove { path: added.file.clone(), source })?;
            removed.push(added.file.clone());
        }
    }
    for file in listed.created_files.iter().rev() {
        remove_one(file, fs::remove_file(file), &mut removed)?;
    }
    Ok(removed)
}

/// Removes the folders `listed` records, deepest first; one that holds
/// something setup did not put there stays, since it is not setup's to remove.
pub(crate) fn remove_empty_dirs(listed: &Manifest) -> Result<Vec<PathBuf>, ManageError> {
    let mut removed = Vec::new();
    for dir in listed.created_dirs.iter().rev() {
        if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none()) {
            remove_one(dir, fs::remove_dir(dir), &mut removed)?;
        }
    }
    Ok(removed)
}

fn remove_one(path: &Path, result: io::Result<()>, removed: &mut Vec<PathBuf>) -> Result<(), ManageError> {
    match result {
        Ok(()) => {
            removed.push(path.to_owned());
            Ok(())
        }
        // Gone already, or under something that is not a folder: not there.
        Err(error) if matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(()),
        Err(source) => Err(ManageError::Remove { path: path.to_owned(), source }),
    }
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it is as setup left it.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// The state of the installation under `root`, and whether the server answers.
pub fn status(target: &Target, config: &ClientConfig, timeout: Duration) -> (Vec<Check>, Option<bool>) {
    let (root, system) = (target.root(), target.changes_system());
    let mut checks = Vec::new();
    let mut check = |what: &str, ok: bool, detail: String| checks.push(Check { what: what.into(), ok, detail });
    let manifest = Manifest::load(root);
    let manifest = match manifest {
        Ok(Some(manifest)) => {
            check(
                "registration",
                true,
                format!("{} at {} ({})", manifest.host.as_deref().unwrap_or("?"), manifest.server, manifest.url),
            );
            Some(manifest)
        }
        Ok(None) => {
            check("registration", false, "setup has not run here".into());
            None
        }
        Err(error) => {
            check("registration", false, error.to_string());
            None
        }
    };
    let account = manifest.as_ref().map_or(config.account.as_str(), |m| m.account.as_str());
    let layout = Layout::new(root, account);
    if system {
        match system::find_account(account) {
            Ok(Some(found)) => {
                check("account", true, format!("{account} (uid {}, home {})", found.uid, found.home.display()))
            }
            Ok(None) => check("account", false, format!("{account} does not exist")),
            Err(error) => check("account", false, error.to_string()),
        }
        let sudoers = system::sudoers_path(account);
        check("sudo rule", sudoers.exists(), sudoers.display().to_string());
    }
    let keys = fs::read_to_string(layout.authorized_keys()).unwrap_or_default();
    let bound = keys.lines().filter(|line| line.contains(" rsyncsend")).count();
    check(
        "backup key",
        bound > 0,
        format!("{} key(s) bound to rsyncsend in {}", bound, layout.authorized_keys().display()),
    );
    let server = manifest.as_ref().map(|m| m.server.clone()).or_else(|| config.server.clone());
    let reachable = server.map(|server| {
        let ok = server_answers(&server, timeout);
        check("server", ok, format!("{server} {}", if ok { "answers" } else { "cannot be reached" }));
        ok
    });
    (checks, reachable)
}

/// Whether the server's port accepts a connection (`ssh://`) or its
/// configuration exists (`file://`). No registration is attempted.
fn server_answers(server: &str, timeout: Duration) -> bool {
    match crate::transport::ServerUrl::parse(server) {
        Ok(crate::transport::ServerUrl::File { config_path }) => config_path.is_file(),
        Ok(crate::transport::ServerUrl::Ssh { host, port, .. }) => {
            let addresses = (host.as_str(), port).to_socket_addrs();
            addresses.is_ok_and(|mut all| all.any(|address| TcpStream::connect_timeout(&address, timeout).is_ok()))
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::AddedKey;

    #[test]
    fn uninstall_removes_exactly_what_the_manifest_lists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("home/.ssh")).unwrap();
        fs::write(root.join("home/.ssh/authorized_keys"), "ssh-ed25519 OTHER x\nrestrict ssh-ed25519 OURS y\n")
            .unwrap();
        fs::create_dir_all(root.join("made/inner")).unwrap();
        fs::write(root.join("made/inner/file"), "x").unwrap();
        fs::create_dir_all(root.join("shared")).unwrap();
        fs::write(root.join("shared/theirs"), "keep").unwrap();
        let manifest = Manifest {
            account: "bckpciuem".into(),
            created_files: vec![root.join("made/inner/file")],
            created_dirs: vec![root.join("made"), root.join("made/inner"), root.join("shared")],
            added_keys: vec![AddedKey { file: root.join("home/.ssh/authorized_keys"), key: "OURS".into() }],
            ..Manifest::default()
        };
        fs::create_dir_all(Manifest::path(root).parent().unwrap()).unwrap();
        fs::write(Manifest::path(root), manifest.to_toml().unwrap()).unwrap();

        let removed = uninstall(&Target::Trial(root.to_owned())).unwrap().unwrap();
        assert!(removed.contains(&root.join("made")));
        assert!(!root.join("made").exists());
        assert_eq!(fs::read_to_string(root.join("shared/theirs")).unwrap(), "keep");
        assert_eq!(fs::read_to_string(root.join("home/.ssh/authorized_keys")).unwrap(), "ssh-ed25519 OTHER x\n");
        assert!(!Manifest::path(root).exists());
        assert!(uninstall(&Target::Trial(root.to_owned())).unwrap().is_none());
    }
}
