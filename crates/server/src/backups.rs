//! The backups BackupPC keeps of a host, read from `TopDir/pc/HOST/backups`
//! the way BackupPC 4 reads that file.
//!
//! BackupPC writes one line per backup, its fields separated by tabs, in the
//! order of `BackupFields` (`lib/BackupPC/Storage.pm`): `num type startTime
//! endTime nFiles size ...`. `BackupInfoRead` (`lib/BackupPC/Storage/Text.pm`)
//! reads it under the host's own `LOCK`: the first run of CR/LF on a line
//! goes, and only lines that start with digits, a tab and `incr`, `full`,
//! `partial` or `active` count. `TextFileWrite` replaces the file by renames
//! under that lock, so a reader that holds it never sees the file missing.
//!
//! The folder belongs to the `backuppc` account, and this is read by root
//! (`bpc-register hosts list`) and by anyone asking about their own host: the
//! host's folder and the file are opened without following a symbolic link,
//! the file only when it is a regular file, and at most [`MAX_BACKUPS_FILE`]
//! bytes of it.

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use protocol::HostName;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most bytes of a `backups` file read: a line is about 300 bytes, so
/// this is tens of thousands of backups, far more than BackupPC keeps.
pub const MAX_BACKUPS_FILE: u64 = 16 * 1024 * 1024;

/// How long a reader waits for BackupPC to release the host's `LOCK` before
/// reading without it.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// What kind of backup a line of `backups` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupKind {
    /// A full backup.
    Full,
    /// An incremental backup.
    Incr,
    /// A full backup that did not finish.
    Partial,
    /// A backup in progress.
    Active,
    /// A type BackupPC's line filter lets through but no page counts
    /// (`fullish`: the filter only checks how the field starts).
    Other(String),
}

/// One backup, as a line of `backups` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The backup's number (`num`).
    pub num: u64,
    /// Its type (`type`).
    pub kind: BackupKind,
    /// When it started, in seconds since the epoch (`startTime`); `None`
    /// when the field is not a whole number.
    pub start_time: Option<u64>,
    /// When it ended (`endTime`), likewise.
    pub end_time: Option<u64>,
}

impl Backup {
    /// When it started, as a time.
    pub fn started(&self) -> Option<SystemTime> {
        self.start_time.and_then(|seconds| UNIX_EPOCH.checked_add(Duration::from_secs(seconds)))
    }
}

/// Why a host's backups could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BackupsError {
    /// A folder or the file could not be opened or read.
    #[error("{path}: cannot read BackupPC's list of backups: {source}")]
    Io {
        /// The folder or file at fault.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// Something other than BackupPC's own folder or file is in its place.
    #[error("{path}: {what}; BackupPC writes a regular file in a folder there, so it is not read")]
    Planted {
        /// The path.
        path: PathBuf,
        /// What was found.
        what: &'static str,
    },
    /// The file is larger than any BackupPC writes.
    #[error("{path}: larger than {MAX_BACKUPS_FILE} bytes; not BackupPC's list of backups")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
}

/// Parses a `backups` file as BackupPC 4's `BackupInfoRead` does, byte for
/// byte; lines it skips are skipped, so garbage gives no backup.
pub fn parse_backups(bytes: &[u8]) -> Vec<Backup> {
    let mut backups = Vec::new();
    for raw in bytes.split(|b| *b == b'\n') {
        let mut line = raw.to_vec();
        // `s/[\n\r]+//`: the first run of CR (LF ended the line already).
        if let Some(start) = line.iter().position(|b| *b == b'\r') {
            let len = line.iter().skip(start).take_while(|b| **b == b'\r').count();
            line.drain(start..start + len);
        }
        let mut fields = line.split(|b| *b == b'\t');
        let (Some(num), Some(kind)) = (fields.next(), fields.next()) else { continue };
        let starts_right = ["incr", "full", "partial", "active"].iter().any(|word| kind.starts_with(word.as_bytes()));
        let Some(num) = whole_number(num) else { continue };
        if !starts_right {
            continue;
        }
        let kind = match kind {
            b"full" => BackupKind::Full,
            b"incr" => BackupKind::Incr,
            b"partial" => BackupKind::Partial,
            b"active" => BackupKind::Active,
            other => BackupKind::Other(String::from_utf8_lossy(other).into_owned()),
        };
        let start_time = fields.next().and_then(whole_number);
        let end_time = fields.next().and_then(whole_number);
        backups.push(Backup { num, kind, start_time, end_time });
    }
    backups
}

/// ASCII digits only (Perl's `\d` on bytes), as a number that fits.
fn whole_number(field: &[u8]) -> Option<u64> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// The host's last backup as BackupPC's host summary page
/// (`CGI/Summary.pm`) counts it: of the full and incremental backups, the
/// one that started last. Partial and active backups do not count, nor a
/// backup whose start time is not a whole number. Of two that started in
/// the same second, the first in the file, as the page's `>` keeps it.
pub fn last_backup(backups: &[Backup]) -> Option<&Backup> {
    let mut last: Option<(&Backup, u64)> = None;
    for backup in backups.iter().filter(|backup| matches!(backup.kind, BackupKind::Full | BackupKind::Incr)) {
        let Some(start) = backup.start_time else { continue };
        if last.is_none_or(|(_, latest)| start > latest) {
            last = Some((backup, start));
        }
    }
    last.map(|(backup, _)| backup)
}

/// The backups of `host` under BackupPC's `top_dir` (`$Conf{TopDir}`); none
/// when the host has no folder or no `backups` file yet.
pub fn read(top_dir: &Path, host: &HostName) -> Result<Vec<Backup>, BackupsError> {
    let pc = top_dir.join("pc");
    let directory = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    // `TopDir/pc` is the administrator's choice (it may be a link to another
    // disk); below it, nothing is followed.
    let pc_fd = match nix::fcntl::open(&pc, directory, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        Err(errno) => return Err(BackupsError::Io { path: pc, source: errno.into() }),
    };
    let host_path = pc.join(host.as_str());
    let host_fd = match openat(&pc_fd, host.as_str(), directory | OFlag::O_NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return Err(BackupsError::Planted { path: host_path, what: "not a folder (a symbolic link or a file)" });
        }
        Err(errno) => return Err(BackupsError::Io { path: host_path, source: errno.into() }),
    };
    let _lock = lock_shared(&host_fd);
    let path = host_path.join("backups");
    let file = match open_regular(&host_fd, "backups") {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(Vec::new()),
        Err(Opened::Planted(what)) => return Err(BackupsError::Planted { path, what }),
        Err(Opened::Io(source)) => return Err(BackupsError::Io { path, source }),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BACKUPS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| BackupsError::Io { path: path.clone(), source })?;
    if u64::try_from(bytes.len()).map_or(true, |len| len > MAX_BACKUPS_FILE) {
        return Err(BackupsError::TooLarge { path });
    }
    Ok(parse_backups(&bytes))
}

/// The last backup of `host` (see [`last_backup`]).
pub fn last_backup_of(top_dir: &Path, host: &HostName) -> Result<Option<Backup>, BackupsError> {
    Ok(last_backup(&read(top_dir, host)?).cloned())
}

/// Why [`open_regular`] gave no file.
enum Opened {
    Planted(&'static str),
    Io(io::Error),
}

/// `name` in `folder`, opened for reading without following a link and
/// without blocking on a FIFO; `None` when it does not exist.
fn open_regular(folder: &OwnedFd, name: &str) -> Result<Option<File>, Opened> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match openat(folder, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(Opened::Planted("a symbolic link")),
        Err(errno) => return Err(Opened::Io(errno.into())),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(Opened::Io)?;
    if !meta.is_file() {
        return Err(Opened::Planted("not a regular file"));
    }
    Ok(Some(file))
}

/// The host's `LOCK`, held shared while the file is read, as BackupPC's
/// writers hold it exclusively around their renames. When there is none
/// (it is created by BackupPC's first write), or it is not a regular file,
/// or BackupPC keeps it past [`LOCK_WAIT`], the file is read without it:
/// a read never creates anything in BackupPC's folders and never hangs.
fn lock_shared(host_fd: &OwnedFd) -> Option<File> {
    let file = open_regular(host_fd, "LOCK").ok()??;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock_shared() {
            Ok(()) => return Some(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// Two lines as BackupPC 4.4 writes them (29 fields, tab-separated).
    const TWO_BACKUPS: &str = "0\tfull\t1700000000\t1700000100\t10\t2048\t3\t1024\t7\t1024\t0\t0\t0\t0\t3\t900\t800\t0\t-1\t1\trsync\t0\t\t4.4.0\t12\t0\t\t\n\
                               1\tincr\t1700086400\t1700086460\t2\t100\t1\t50\t1\t50\t0\t0\t0\t0\t3\t40\t40\t1\t-1\t1\trsync\t1\t\t4.4.0\t14\t0\t\t\n";

    fn host() -> HostName {
        HostName::parse("pc.example.org").unwrap()
    }

    /// A TopDir with `pc/pc.example.org/backups` holding `body`.
    fn top_dir_with(body: &[u8]) -> tempfile::TempDir {
        let top = tempfile::tempdir().unwrap();
        fs::create_dir_all(top.path().join("pc/pc.example.org")).unwrap();
        fs::write(top.path().join("pc/pc.example.org/backups"), body).unwrap();
        top
    }

    #[test]
    fn reads_backuppcs_lines_and_takes_the_latest_full_or_incremental() {
        let backups = parse_backups(TWO_BACKUPS.as_bytes());
        assert_eq!(
            backups,
            [
                Backup {
                    num: 0,
                    kind: BackupKind::Full,
                    start_time: Some(1_700_000_000),
                    end_time: Some(1_700_000_100)
                },
                Backup {
                    num: 1,
                    kind: BackupKind::Incr,
                    start_time: Some(1_700_086_400),
                    end_time: Some(1_700_086_460)
                },
            ]
        );
        assert_eq!(last_backup(&backups).map(|b| b.num), Some(1));
        let top = top_dir_with(TWO_BACKUPS.as_bytes());
        let last = last_backup_of(top.path(), &host()).unwrap().unwrap();
        assert_eq!(last.started(), Some(UNIX_EPOCH + Duration::from_secs(1_700_086_400)));
    }

    #[test]
    fn partial_and_active_backups_are_not_the_last_backup() {
        let body = "3\tfull\t100\t200\n4\tpartial\t300\t400\n5\tactive\t500\t\n6\tfullish\t600\t700\n";
        let backups = parse_backups(body.as_bytes());
        assert_eq!(backups.len(), 4);
        assert_eq!(backups[3].kind, BackupKind::Other("fullish".into()));
        assert_eq!(last_backup(&backups).map(|b| b.num), Some(3));
    }

    #[test]
    fn garbage_gives_no_backup_and_no_panic() {
        let garbage: &[&[u8]] = &[
            b"",
            b"\n\n\n",
            b"not a backups file\n",
            b"x\tfull\t1\t2\n",
            b" 1\tfull\t1\t2\n",
            b"1 full 1 2\n",
            b"1\tFull\t1\t2\n",
            b"\xff\xfe\t\x00full\n",
            b"99999999999999999999999\tfull\t1\t2\n",
        ];
        for body in garbage {
            let backups = parse_backups(body);
            assert_eq!(backups, [], "{body:?}");
            assert!(last_backup(&backups).is_none());
        }
    }

    #[test]
    fn a_start_time_that_is_not_a_number_does_not_count() {
        let backups = parse_backups(b"1\tfull\t12abc\t2\n2\tincr\t\t\n3\tfull\t-5\t1\n0\tfull\t7\t8\n");
        assert_eq!(backups.iter().map(|b| b.start_time).collect::<Vec<_>>(), [None, None, None, Some(7)]);
        assert_eq!(last_backup(&backups).map(|b| b.num), Some(0));
    }

    #[test]
    fn the_first_run_of_carriage_returns_goes_as_in_backuppc() {
        // `s/[\n\r]+//` removes the first run only: here it sits inside the
        // start time, which then reads as 1234; the second run stays in
        // the end time, which is then no number.
        let backups = parse_backups(b"7\tfull\t12\r\r34\t5\r6\r\n");
        assert_eq!(backups, [Backup { num: 7, kind: BackupKind::Full, start_time: Some(1234), end_time: None }]);
    }

    #[test]
    fn a_host_without_a_folder_or_a_file_has_no_backups() {
        let top = tempfile::tempdir().unwrap();
        assert_eq!(read(top.path(), &host()).unwrap(), []);
        fs::create_dir_all(top.path().join("pc/pc.example.org")).unwrap();
        assert_eq!(read(top.path(), &host()).unwrap(), []);
        assert_eq!(read(&top.path().join("absent"), &host()).unwrap(), []);
    }

    #[test]
    fn a_backups_file_replaced_by_a_link_is_not_followed() {
        let top = top_dir_with(b"");
        let victim = top.path().join("victim");
        fs::write(&victim, TWO_BACKUPS).unwrap();
        let file = top.path().join("pc/pc.example.org/backups");
        fs::remove_file(&file).unwrap();
        symlink(&victim, &file).unwrap();
        let error = read(top.path(), &host()).unwrap_err();
        assert!(matches!(error, BackupsError::Planted { what: "a symbolic link", .. }), "{error}");
        assert!(error.to_string().contains("pc/pc.example.org/backups"), "{error}");
    }

    #[test]
    fn a_host_folder_replaced_by_a_link_is_not_followed() {
        let top = tempfile::tempdir().unwrap();
        let elsewhere = top.path().join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::write(elsewhere.join("backups"), TWO_BACKUPS).unwrap();
        fs::create_dir_all(top.path().join("pc")).unwrap();
        symlink(&elsewhere, top.path().join("pc/pc.example.org")).unwrap();
        let error = read(top.path(), &host()).unwrap_err();
        assert!(matches!(error, BackupsError::Planted { .. }), "{error}");
    }

    #[test]
    fn a_fifo_in_place_of_the_file_is_refused_without_waiting() {
        let top = top_dir_with(b"");
        let file = top.path().join("pc/pc.example.org/backups");
        fs::remove_file(&file).unwrap();
        nix::unistd::mkfifo(&file, Mode::from_bits_truncate(0o644)).unwrap();
        let error = read(top.path(), &host()).unwrap_err();
        assert!(matches!(error, BackupsError::Planted { what: "not a regular file", .. }), "{error}");
    }

    #[test]
    fn a_file_larger_than_any_backuppc_writes_is_refused() {
        let top = top_dir_with(b"");
        let file = fs::File::create(top.path().join("pc/pc.example.org/backups")).unwrap();
        file.set_len(MAX_BACKUPS_FILE + 1).unwrap();
        let error = read(top.path(), &host()).unwrap_err();
        assert!(matches!(error, BackupsError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn a_lock_held_by_backuppc_delays_the_read_no_longer_than_the_wait() {
        let top = top_dir_with(TWO_BACKUPS.as_bytes());
        let lock = fs::File::create(top.path().join("pc/pc.example.org/LOCK")).unwrap();
        lock.lock().unwrap();
        let backups = read(top.path(), &host()).unwrap();
        assert_eq!(backups.len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(input in proptest::prelude::any::<Vec<u8>>()) {
            let backups = parse_backups(&input);
            let _ = last_backup(&backups);
        }
    }
}
