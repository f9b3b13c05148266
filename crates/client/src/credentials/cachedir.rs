//! The credential cache's folders and files, opened so that nothing planted
//! in them is followed.
//!
//! The configuration folder (`$XDG_CONFIG_HOME`, `~/.config`) is opened as
//! the user named it; every level below it (`bpc-enroll`, `auth`,
//! `svn.simple`) and every file is opened relative to the level above with
//! `O_NOFOLLOW`, and checked on the opened descriptor: owned by the user
//! running, not writable by anyone else (the configuration folder itself
//! only has to belong to the user, or to root). A symbolic link, or a file or folder
//! of someone else, is refused with the reason, never read, written or
//! removed through. Files are written as a temp file created 0600 in the
//! same folder and renamed over the old one.

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, fsync, unlinkat};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why the cache, or one of its files, was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The folder or file is not the cache's own: it was left alone.
    #[error("{} is not used: {why}", path.display())]
    Untrusted {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Files larger than this are not credential files.
const MAX_FILE: u64 = 1 << 20;

/// One opened and checked folder of the cache (its last level).
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
    /// Whether one of the cache's own levels lets no one else in (Subversion
    /// makes `auth` 0700 and writes its files 0644 inside it).
    closed: bool,
}

impl PrivateDir {
    /// Opens `base` (following links: the user chose it), then each of
    /// `levels` below it without following links; with `create`, missing
    /// levels are made 0700 (and a missing `base` with its missing parents).
    /// `None` when a level is missing and `create` is false.
    pub fn open(base: &Path, levels: &[OsString], create: bool) -> Result<Option<PrivateDir>, CacheError> {
        let io = io_error;
        if create {
            crate::install::create_dirs(base, 0o700, None)
                .map_err(|source| CacheError::Io { path: base.to_owned(), source })?;
        }
        let directory = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut fd = match openat(AT_FDCWD, base, directory, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(errno) => return Err(io(base)(errno)),
        };
        // The configuration folder may be shared (a group-writable ~/.config,
        // even /tmp): what is planted in it is caught one level down. Only its
        // owner matters, for root under sudo with another user's folder.
        check_owner(&fstat(&fd).map_err(io(base))?, base, true, true)?;
        let mut path = base.to_owned();
        let mut closed = false;
        for level in levels {
            path.push(level);
            let opened = match openat(&fd, level.as_os_str(), directory | OFlag::O_NOFOLLOW, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&fd, level.as_os_str(), Mode::from_bits_truncate(0o700)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(errno) => return Err(io(&path)(errno)),
                    }
                    openat(&fd, level.as_os_str(), directory | OFlag::O_NOFOLLOW, Mode::empty())
                }
                other => other,
            };
            let next = match opened {
                Ok(next) => next,
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(untrusted(&path, describe_non_folder(&fd, level))),
                Err(errno) => return Err(io(&path)(errno)),
            };
            let stat = fstat(&next).map_err(io(&path))?;
            check_owner(&stat, &path, false, true)?;
            check_unchangeable(&stat, &path)?;
            closed |= stat.st_mode & 0o077 == 0;
            fd = next;
        }
        Ok(Some(PrivateDir { fd, path, closed }))
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The contents of file `name`; `None` when there is none. A link, a
    /// file of someone else, or one others could read or change, is refused.
    pub fn read(&self, name: &OsStr) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.path.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(untrusted(&path, "it is a symbolic link".into())),
            Err(errno) => return Err(CacheError::Io { path, source: errno.into() }),
        };
        let stat = fstat(&fd).map_err(|errno| CacheError::Io { path: path.clone(), source: errno.into() })?;
        self.check_file(&stat, &path)?;
        let mut body = Vec::new();
        File::from(fd)
            .take(MAX_FILE)
            .read_to_end(&mut body)
            .map_err(|source| CacheError::Io { path: path.clone(), source })?;
        Ok(Some(body))
    }

    /// The names in the folder.
    pub fn names(&self) -> Result<Vec<OsString>, CacheError> {
        let io = |errno: Errno| CacheError::Io { path: self.path.clone(), source: errno.into() };
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut dir = nix::dir::Dir::openat(&self.fd, ".", flags, Mode::empty()).map_err(io)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let name = OsStr::from_bytes(entry.map_err(io)?.file_name().to_bytes()).to_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Replaces file `name` with `body`: a temp file created 0600 beside it,
    /// flushed, renamed over it. An existing `name` that is not a file of
    /// this user (a link, someone else's) is left alone and nothing is written.
    pub fn write(&self, name: &OsStr, body: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.path.join(name);
        self.check_replaceable(name, &path)?;
        let io = io_error;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut attempt = 0u32;
        let (temp_name, fd) = loop {
            let mut temp_name = OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{}.{attempt}.tmp", std::process::id()));
            match openat(&self.fd, temp_name.as_os_str(), flags, Mode::from_bits_truncate(0o600)) {
                Ok(fd) => break (temp_name, fd),
                Err(Errno::EEXIST) if attempt < 100 => attempt += 1,
                Err(errno) => return Err(io(&path)(errno)),
            }
        };
        let mut file = File::from(fd);
        let written = file.write_all(body).and_then(|()| file.sync_all());
        drop(file);
        let renamed = written.map_err(|source| CacheError::Io { path: path.clone(), source }).and_then(|()| {
            renameat(&self.fd, temp_name.as_os_str(), &self.fd, name).map_err(io(&path))?;
            fsync(&self.fd).map_err(io(&self.path))
        });
        if renamed.is_err() {
            let _ = unlinkat(&self.fd, temp_name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        renamed.map(|()| path)
    }

    /// Removes file `name`; false when there was none. A link or a file of
    /// someone else is left alone.
    pub fn remove(&self, name: &OsStr) -> Result<bool, CacheError> {
        let path = self.path.join(name);
        if !self.check_replaceable(name, &path)? {
            return Ok(false);
        }
        let io = |errno: Errno| CacheError::Io { path: path.clone(), source: errno.into() };
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {}
            Err(Errno::ENOENT) => return Ok(false),
            Err(errno) => return Err(io(errno)),
        }
        fsync(&self.fd).map_err(io)?;
        Ok(true)
    }

    /// Whether `name` exists, refusing one that is not this user's file.
    fn check_replaceable(&self, name: &OsStr, path: &Path) -> Result<bool, CacheError> {
        match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => self.check_file(&stat, path).map(|()| true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(CacheError::Io { path: path.to_owned(), source: errno.into() }),
        }
    }

    fn check_file(&self, stat: &FileStat, path: &Path) -> Result<(), CacheError> {
        let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFLNK {
            return Err(untrusted(path, "it is a symbolic link".into()));
        }
        if kind != SFlag::S_IFREG {
            return Err(untrusted(path, "it is not a regular file".into()));
        }
        check_owner(stat, path, false, false)?;
        check_unchangeable(stat, path)?;
        if stat.st_mode & 0o077 != 0 && !self.closed {
            return Err(untrusted(
                path,
                format!("others may read it (mode {:04o}) and its folders let them in", stat.st_mode & 0o7777),
            ));
        }
        Ok(())
    }
}

/// Owned by the user running (or, for the configuration folder itself, by
/// root).
fn check_owner(stat: &FileStat, path: &Path, root_may_own: bool, folder: bool) -> Result<(), CacheError> {
    let me = nix::unistd::geteuid().as_raw();
    if stat.st_uid != me && !(root_may_own && stat.st_uid == 0) {
        let what = if folder { "folder" } else { "file" };
        return Err(untrusted(
            path,
            format!("the {what} belongs to uid {}, not to the user running (uid {me})", stat.st_uid),
        ));
    }
    Ok(())
}

/// Writable by no one but its owner.
fn check_unchangeable(stat: &FileStat, path: &Path) -> Result<(), CacheError> {
    if stat.st_mode & 0o022 != 0 {
        return Err(untrusted(path, format!("others may change it (mode {:04o})", stat.st_mode & 0o7777)));
    }
    Ok(())
}

fn describe_non_folder(parent: &OwnedFd, name: &OsStr) -> String {
    match fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) if SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK => {
            "it is a symbolic link".into()
        }
        _ => "it is not a folder".into(),
    }
}

fn untrusted(path: &Path, why: String) -> CacheError {
    CacheError::Untrusted { path: path.to_owned(), why }
}

/// An `Errno` about `path` as a [`CacheError`].
fn io_error(path: &Path) -> impl Fn(Errno) -> CacheError + '_ {
    move |errno| CacheError::Io { path: path.to_owned(), source: errno.into() }
}
