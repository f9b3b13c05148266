//! Files and folders a test changes outside its own temporary folder
//! (`/etc/bpc-enroll`, `~backuppc/.ssh`, BackupPC's `config.pl`...): saved
//! with `cp -a` first, put back exactly as they were (or removed, when they
//! did not exist) when the test ends, even when it fails half-way.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths saved now and restored on drop.
pub struct Saved {
    copies: tempfile::TempDir,
    paths: Vec<(PathBuf, bool)>,
}

impl Saved {
    /// Saves each of `paths` (a file, a folder with all below it, or
    /// nothing when it does not exist).
    pub fn new(paths: &[&Path]) -> Saved {
        let copies = crate::base_dir("saved-");
        let mut saved = Vec::new();
        for (index, path) in paths.iter().enumerate() {
            let exists = fs::symlink_metadata(path).is_ok();
            if exists {
                crate::run(Command::new("/bin/cp").arg("-a").arg(path).arg(copies.path().join(index.to_string())));
            }
            saved.push((path.to_path_buf(), exists));
        }
        Saved { copies, paths: saved }
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        for (index, (path, existed)) in self.paths.iter().enumerate().rev() {
            let copy = self.copies.path().join(index.to_string());
            let is_file = fs::symlink_metadata(&copy).is_ok_and(|meta| !meta.is_dir());
            if *existed && is_file {
                // Files such as /etc/passwd are put back by a rename: there
                // is no instant without one.
                let temp = path.with_file_name(format!(
                    ".{}.restoring",
                    path.file_name().and_then(|name| name.to_str()).unwrap_or("file")
                ));
                let copied = Command::new("/bin/cp").arg("-a").arg(&copy).arg(&temp).status();
                if copied.is_ok_and(|status| status.success()) && fs::rename(&temp, path).is_ok() {
                    continue;
                }
                let _ = fs::remove_file(&temp);
            }
            remove(path);
            if *existed {
                let _ = Command::new("/bin/cp").arg("-a").arg(&copy).arg(path).status();
            }
        }
    }
}

/// Removes a file, a link or a folder with everything below it.
pub fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// The paths at and below each of `roots`, those below `excluded` aside.
pub fn paths_below(roots: &[&Path], excluded: &[&Path]) -> std::collections::BTreeSet<PathBuf> {
    let mut paths = std::collections::BTreeSet::new();
    let mut stack: Vec<PathBuf> = roots.iter().map(|root| root.to_path_buf()).collect();
    while let Some(path) = stack.pop() {
        if excluded.iter().any(|excluded| path.starts_with(excluded)) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).into_iter().flatten().filter_map(Result::ok).map(|entry| entry.path()));
        }
        paths.insert(path);
    }
    paths
}

/// Every entry at and below each of `paths`, with its type, owner, group,
/// mode and a digest of its content (or its link's target): equal listings
/// mean nothing there changed.
pub fn listing(paths: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut entries = BTreeMap::new();
    let mut stack: Vec<PathBuf> = paths.iter().map(|path| path.to_path_buf()).collect();
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let mut hasher = DefaultHasher::new();
        let kind = if meta.is_dir() {
            let mut children: Vec<PathBuf> = fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()).collect();
            children.sort();
            stack.extend(children);
            "dir"
        } else if meta.file_type().is_symlink() {
            fs::read_link(&path).unwrap().hash(&mut hasher);
            "link"
        } else {
            fs::read(&path).unwrap_or_default().hash(&mut hasher);
            "file"
        };
        let digest = if kind == "dir" { 0 } else { hasher.finish() };
        entries.insert(path, format!("{kind} {}:{} {:o} {digest:016x}", meta.uid(), meta.gid(), meta.mode() & 0o7777));
    }
    entries
}
