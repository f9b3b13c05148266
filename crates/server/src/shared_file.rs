//! Opening the files bpc-register keeps beside BackupPC's, which root's
//! commands and the forced command (BackupPC's account) both open: `LOCK`,
//! the journal, bpc-register's own locks and its log file.
//!
//! A file is opened without following a link planted in its place and
//! without blocking on a FIFO, and created when missing. One that root
//! creates in a folder someone else owns is given to that owner, or the
//! forced command and BackupPC could not open it afterwards; root gives only
//! the file it has just created itself (`O_CREAT | O_EXCL`), never one that
//! was already there: a file found in place, whoever put it there and
//! whatever other names it has, keeps its owner. Nor does root write
//! through a file found with other names: a hard link planted there could
//! name one of root's files elsewhere.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// How many times a file that vanishes between "not there" and "already
/// there" is looked for again before the last error is given.
const ATTEMPTS: usize = 3;

/// Opens `path` with `options` (write or append access), creating it with
/// `mode` when it is missing (see the module's documentation).
pub fn open(path: &Path, options: &OpenOptions, mode: u32) -> io::Result<File> {
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for _ in 0..ATTEMPTS {
        match options.clone().custom_flags(flags).open(path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Ok(file) if nix::unistd::geteuid().is_root() && file.metadata()?.nlink() != 1 => {
                return Err(io::Error::other("it has other names (hard links); root writes through none"));
            }
            opened => return opened,
        }
        match options.clone().create_new(true).mode(mode).custom_flags(flags).open(path) {
            Ok(file) => {
                give_to_folder_owner(&file, path);
                return Ok(file);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = error,
            Err(error) => return Err(error),
        }
    }
    Err(last)
}

/// Whether a file bpc-register wrote for itself beside BackupPC's (an index,
/// a cache), found as `meta`, may be believed: anyone can compute the key it
/// is checked against, so only when it belongs to root, to this process's
/// user or to `also_owner()` (asked only when needed), and no one else may
/// write it.
pub fn believable(meta: &std::fs::Metadata, also_owner: impl FnOnce() -> Option<u32>) -> bool {
    let owner = meta.uid();
    let trusted = owner == 0 || owner == nix::unistd::geteuid().as_raw() || also_owner() == Some(owner);
    trusted && meta.mode() & 0o022 == 0
}

/// When root has just created `file` at `path` in a folder someone else
/// owns, gives it to the folder's owner and group.
fn give_to_folder_owner(file: &File, path: &Path) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let Ok(folder) = std::fs::metadata(files::parent_dir(path)) else { return };
    if folder.uid() != 0 {
        let _ = nix::unistd::fchown(
            file,
            Some(nix::unistd::Uid::from_raw(folder.uid())),
            Some(nix::unistd::Gid::from_raw(folder.gid())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.write(true);
        options
    }

    #[test]
    fn creates_a_missing_file_with_its_mode_and_opens_an_existing_one_as_it_is() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut append = OpenOptions::new();
        append.append(true);
        open(&path, &append, 0o640).unwrap().write_all(b"one\n").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o640);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        open(&path, &append, 0o640).unwrap().write_all(b"two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn never_follows_a_link_nor_waits_for_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, "kept\n").unwrap();
        let link = dir.path().join("LOCK");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(open(&link, &write(), 0o644).unwrap_err().raw_os_error(), Some(nix::libc::ELOOP));
        let fifo = dir.path().join("log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No reader: a blocking open would wait for one forever.
        assert_eq!(open(&fifo, &write(), 0o644).unwrap_err().raw_os_error(), Some(nix::libc::ENXIO));
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept\n");
    }

    #[test]
    fn root_gives_the_file_it_creates_to_the_folders_owner_and_no_file_it_finds() {
        testkit::require!(testkit::require_root_and(&[]));
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backuppc");
        fs::create_dir(&folder).unwrap();
        std::os::unix::fs::chown(&folder, Some(65534), Some(65534)).unwrap();
        let owner = |path: &Path| {
            let meta = fs::metadata(path).unwrap();
            (meta.uid(), meta.gid())
        };
        // Created here by root: given to the folder's owner.
        open(&folder.join("LOCK"), &write(), 0o644).unwrap();
        assert_eq!(owner(&folder.join("LOCK")), (65534, 65534));
        // The folder's owner planted a second name for one of root's files:
        // root neither gives it away nor writes through it.
        let victim = dir.path().join("shadow");
        fs::write(&victim, "root's\n").unwrap();
        fs::hard_link(&victim, folder.join("journal")).unwrap();
        let error = open(&folder.join("journal"), &write(), 0o640).unwrap_err();
        assert!(error.to_string().contains("other names (hard links)"), "{error}");
        assert_eq!(owner(&victim), (0, 0), "root's file was given away through a hard link");
        // A file of root's with no other name, already there: kept too.
        fs::remove_file(&victim).unwrap();
        open(&folder.join("journal"), &write(), 0o640).unwrap();
        assert_eq!(owner(&folder.join("journal")), (0, 0));
        // In a folder of root's, nothing is given.
        open(&dir.path().join("register.log"), &write(), 0o640).unwrap();
        assert_eq!(owner(&dir.path().join("register.log")), (0, 0));
    }
}
