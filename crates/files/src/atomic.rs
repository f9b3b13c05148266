//! Replacing a file so that readers see the old content or the new, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A new version of a file, written and flushed to disk beside the file but
/// not yet in its place. Dropping it without [`AtomicWrite::commit`] removes
/// the temporary file, so an error half-way leaves the old file untouched.
#[derive(Debug)]
pub struct AtomicWrite {
    temp: tempfile::NamedTempFile,
    final_path: PathBuf,
}

impl AtomicWrite {
    /// Writes `body` to a temporary file in `path`'s folder, created with
    /// `mode` (or, when `path` exists, with its mode, owner and group, as far
    /// as the system lets this process keep them), and flushes it to disk.
    pub fn prepare(path: &Path, body: &[u8], mode: u32) -> io::Result<AtomicWrite> {
        AtomicWrite::prepare_with(path, mode, |file| file.write_all(body))
    }

    /// Like [`AtomicWrite::prepare`], with the body written by `write` into
    /// the temporary file, so that a large file can be copied into it
    /// (`io::copy` between files moves the bytes in the kernel) instead of
    /// being built in memory.
    pub fn prepare_with(
        path: &Path,
        mode: u32,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<AtomicWrite> {
        let dir = parent_dir(path);
        let name = path.file_name().ok_or_else(|| io::Error::other("the path has no file name"))?;
        // The file it replaces, never one a link put in its place leads to.
        let existing = fs::symlink_metadata(path).ok().filter(fs::Metadata::is_file);
        let mode = existing.as_ref().map_or(mode, |m| m.mode() & 0o7777);
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .permissions(fs::Permissions::from_mode(mode))
            .tempfile_in(dir)?;
        AtomicWrite::fill(temp, path, existing.as_ref(), mode, write)
    }

    /// Like [`AtomicWrite::prepare_with`], with the new version at `temp`, a
    /// fixed name in `path`'s folder that only a writer holding the
    /// folder's lock uses: what a killed writer left is then found by its
    /// name, without listing the folder. A file left at `temp` is removed
    /// first; the new one is created there, never through a link.
    pub fn prepare_at(
        path: &Path,
        temp: &Path,
        mode: u32,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<AtomicWrite> {
        use std::os::unix::fs::OpenOptionsExt;
        // The file it replaces, never one a link put in its place leads to.
        let existing = fs::symlink_metadata(path).ok().filter(fs::Metadata::is_file);
        let mode = existing.as_ref().map_or(mode, |m| m.mode() & 0o7777);
        match fs::remove_file(temp) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        // Named before it is created: a relative name is made absolute here,
        // and then stands for the file whatever the working folder becomes.
        let name = tempfile::TempPath::try_from_path(temp)?;
        let file = match fs::OpenOptions::new().read(true).write(true).create_new(true).mode(mode).open(&name) {
            Ok(file) => file,
            Err(error) => {
                // Not ours: nothing to remove when the name is dropped.
                let _ = name.keep();
                return Err(error);
            }
        };
        let temp = tempfile::NamedTempFile::from_parts(file, name);
        AtomicWrite::fill(temp, path, existing.as_ref(), mode, write)
    }

    /// Gives the new version at `temp` its mode (and the owner of the file
    /// it replaces, `existing`), writes it with `write` and flushes it.
    fn fill(
        mut temp: tempfile::NamedTempFile,
        path: &Path,
        existing: Option<&fs::Metadata>,
        mode: u32,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<AtomicWrite> {
        // The umask may have narrowed the mode; the file is not visible under
        // its final name yet, so setting the exact mode now exposes nothing.
        temp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(old) = existing {
            keep_owner(temp.as_file(), old);
        }
        write(temp.as_file_mut())?;
        temp.as_file().sync_all()?;
        Ok(AtomicWrite { temp, final_path: path.to_owned() })
    }

    /// Gives the new version `gid` as its group before it is visible.
    pub fn set_group(&self, gid: u32) -> io::Result<()> {
        nix::unistd::fchown(self.temp.as_file(), None, Some(nix::unistd::Gid::from_raw(gid))).map_err(io::Error::from)
    }

    /// Gives the new version exactly this owner, group and mode before it
    /// is visible, whatever the file it replaces had (only root may).
    pub fn set_owner_and_mode(&self, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
        use nix::unistd::{Gid, Uid, fchown};
        fchown(self.temp.as_file(), Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(io::Error::from)?;
        self.temp.as_file().set_permissions(fs::Permissions::from_mode(mode))
    }

    /// Gives the new version this modification time before it is visible.
    pub fn set_modified(&self, time: std::time::SystemTime) -> io::Result<()> {
        self.temp.as_file().set_modified(time)
    }

    /// Where the new version waits, for a check before it is committed.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Puts the new version in place and makes the rename durable.
    pub fn commit(self) -> io::Result<()> {
        let folder = parent_dir(&self.final_path).to_owned();
        self.commit_unsynced()?;
        File::open(folder)?.sync_all()
    }

    /// Puts the new version in place; the caller flushes the folder (once
    /// for several renames in it) to make the rename durable.
    pub fn commit_unsynced(self) -> io::Result<()> {
        self.temp.persist(&self.final_path).map(drop).map_err(|error| error.error)
    }
}

/// The folder `path` is in: `.` for a bare name.
pub fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Replaces `path` with `body` atomically; see [`AtomicWrite::prepare`].
pub fn write_atomic(path: &Path, body: &[u8], mode: u32) -> io::Result<()> {
    AtomicWrite::prepare(path, body, mode)?.commit()
}

/// Gives the new file the owner and group of the one it replaces. Only root
/// may give a file away, and a group only to one of its own; when the system
/// refuses, the file keeps this process's owner, which is the best a
/// non-root writer (such as BackupPC's own CGI) can do.
fn keep_owner(file: &File, old: &fs::Metadata) {
    use nix::unistd::{Gid, Uid, fchown};
    let (uid, gid) = (Uid::from_raw(old.uid()), Gid::from_raw(old.gid()));
    if fchown(file, Some(uid), Some(gid)).is_err() {
        let _ = fchown(file, None, Some(gid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_file_gets_the_mode_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomic(&path, b"x", 0o600).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn replaced_file_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_fixed_temporary_name_replaces_a_leftover_and_is_gone_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let temp = dir.path().join(".new.hosts");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(&temp, b"left by a killed writer").unwrap();
        let write = AtomicWrite::prepare_at(&path, &temp, 0o600, |file| file.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&temp).unwrap(), b"new");
        assert_eq!(fs::metadata(&temp).unwrap().permissions().mode() & 0o777, 0o640);
        write.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!temp.exists());
        drop(AtomicWrite::prepare_at(&path, &temp, 0o600, |file| file.write_all(b"dropped")).unwrap());
        assert!(!temp.exists());
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn dropped_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        fs::write(&path, b"old").unwrap();
        drop(AtomicWrite::prepare(&path, b"new", 0o644).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
