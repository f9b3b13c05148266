//! `bpc-register check`: BackupPC's `hosts`, the per-host configs that
//! bpc-register wrote, the journal of registrations and BackupPC's
//! `config.pl`, compared.
//!
//! Each disagreement is a [`Finding`], told in one line by
//! [`Finding::describe`]. The files are read the way BackupPC reads them
//! ([`parse_hosts`] for `hosts`), under BackupPC's `LOCK` when it exists, so
//! that a `hosts` being rewritten by BackupPC's web page is never read half
//! way.

use crate::hostconfig;
use crate::hosts_mtime;
use crate::journal::{self, Journal, JournalRecord};
use crate::owner_edits::{self, OwnerEdits};
use crate::pins;
use crate::registry::{HostLine, parse_hosts};
use crate::transaction;
use protocol::text::escape;
use protocol::{HostName, Logon};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Something `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The first line BackupPC counts in `hosts` is not a usable header: it
    /// takes that line for the header, so the host on it (if it is one) is
    /// not a host, and without a `user` column no line has an owner.
    BadHeader {
        /// The line's number, from 1.
        line: usize,
        /// The line, escaped.
        text: String,
        /// Whether the line is a host line (its first field is not `host`),
        /// which a header put above it makes a host again.
        is_host: bool,
    },
    /// A line BackupPC skips: it does not start, in the first column, with
    /// a name of letters, digits, `_`, `.`, `-` or `\` followed by white
    /// space and more columns.
    IgnoredLine {
        /// The line's number, from 1.
        line: usize,
        /// The line, escaped.
        text: String,
    },
    /// A host name that BackupPC reads from `hosts` but mishandles.
    BadName {
        /// The line's number, from 1.
        line: usize,
        /// The name as BackupPC reads it, escaped.
        host: String,
        /// What goes wrong.
        reason: &'static str,
    },
    /// A host with more than one line, which BackupPC reads two ways.
    Duplicate {
        /// The host.
        host: String,
        /// The lines' numbers, from 1, in file order.
        lines: Vec<usize>,
        /// The owner on each line, in file order.
        owners: Vec<String>,
        /// The owner the journal registers it to, if it does.
        journal_owner: Option<String>,
    },
    /// A host the journal says is registered but which has no line in
    /// `hosts` (BackupPC's web host editor saved the list it showed while
    /// the registration landed, or someone removed the line by hand).
    LostLine {
        /// The host.
        host: String,
        /// The journal's last record about it.
        record: JournalRecord,
        /// Whether its per-host config is still there.
        config_present: bool,
    },
    /// A per-host config that bpc-register wrote, for a host with no line in
    /// `hosts` and no registration in the journal.
    OrphanConfig {
        /// The host it was written for.
        host: String,
        /// The file.
        path: PathBuf,
    },
    /// A file of pinned host keys that bpc-register wrote
    /// (`HOST.known_hosts`), for a host with no line in `hosts` and no
    /// registration in the journal.
    OrphanPins {
        /// The host whose keys it holds.
        host: String,
        /// The file.
        path: PathBuf,
    },
    /// A change to `hosts`, a per-host config and the journal was cut short
    /// (a crash, a full disk); its undo record is still there.
    PendingUndo {
        /// The undo record.
        path: PathBuf,
    },
    /// Lines of the journal that are not records.
    UnreadableJournal {
        /// The journal.
        path: PathBuf,
        /// Their numbers, from 1.
        lines: Vec<usize>,
    },
    /// BackupPC's web page lets host owners change more than harmless
    /// settings.
    OwnerEdits(OwnerEdits),
    /// BackupPC's `config.pl` could not be read.
    OwnerEditsUnknown(String),
    /// A file every registration writes (`LOCK`, `hosts`, the journal, the
    /// settlers' lock) that the account registrations run as, the owner of
    /// BackupPC's configuration folder, may not write (judged by its owner,
    /// group and mode; a file with an access control list is not judged):
    /// every registration fails until it is given back.
    Unwritable {
        /// The file.
        path: PathBuf,
        /// Which file it is.
        what: &'static str,
        /// Whether it is one of the two lock files, which hold no data.
        lock: bool,
        /// Its owner.
        owner: u32,
        /// The account registrations run as.
        account: u32,
        /// Its device and inode when examined.
        identity: (u64, u64),
        /// Its size.
        size: u64,
        /// Its permission bits.
        mode: u32,
        /// The owner of the folder it is in (the path's links followed).
        folder_owner: Option<u32>,
    },
}

impl Finding {
    /// The finding in one line.
    pub fn describe(&self) -> String {
        match self {
            Finding::BadHeader { line, text, is_host: true } => format!(
                "hosts line {line} (`{text}`) is the first line BackupPC counts, so it takes it for the header: \
                 that host is not backed up and no line below has an owner; the header \
                 `host dhcp user moreUsers` must come first"
            ),
            Finding::BadHeader { line, text, is_host: false } => format!(
                "hosts line {line}: the header `{text}` names no `user` column, so BackupPC sees no owner on any line"
            ),
            Finding::IgnoredLine { line, text } => format!(
                "hosts line {line} (`{text}`) is skipped by BackupPC: a host line starts in the first column with a \
                 name of letters, digits, `_`, `.` or `-`, followed by white space and the other columns"
            ),
            Finding::BadName { line, host, reason } => {
                format!("hosts line {line}: host `{}` {reason}", escape(host.as_bytes()))
            }
            Finding::Duplicate { host, lines, owners, journal_owner } => {
                let first = owners.first().map(String::as_str).unwrap_or_default();
                let last = owners.last().map(String::as_str).unwrap_or_default();
                let each: Vec<String> =
                    lines.iter().zip(owners).map(|(line, owner)| format!("{line} ({})", shown_owner(owner))).collect();
                let journal = match journal_owner {
                    Some(owner) => format!("; the journal registers it to {}", shown_owner(owner)),
                    None => String::new(),
                };
                format!(
                    "{} has {} lines in hosts, lines {}: BackupPC's daemon and web page see {}, BackupPC_dump sees \
                     {}{journal}",
                    escape(host.as_bytes()),
                    lines.len(),
                    each.join(", "),
                    shown_owner(last),
                    shown_owner(first)
                )
            }
            Finding::LostLine { host, record, config_present } => format!(
                "{} is registered to {} in the journal ({} {}) but has no line in hosts, so BackupPC does not \
                 back it up{} (BackupPC's web host editor drops a host registered while its page is open; or the \
                 line was removed by hand)",
                escape(host.as_bytes()),
                escape(record.owner.as_bytes()),
                escape(record.action.as_bytes()),
                escape(record.time.as_bytes()),
                if *config_present { "" } else { " and its config file is gone too" }
            ),
            Finding::OrphanConfig { host, path } => {
                let host = escape(host.as_bytes());
                format!(
                    "{}: written by bpc-register for {host}, which has no line in hosts and no registration in the \
                     journal; a line added for {host} later would bring its old settings back",
                    path.display()
                )
            }
            Finding::OrphanPins { host, path } => {
                let host = escape(host.as_bytes());
                format!(
                    "{}: host keys pinned by bpc-register for {host}, which has no line in hosts and no registration \
                     in the journal; only {host}'s config points ssh at them, so they are left over",
                    path.display()
                )
            }
            Finding::PendingUndo { path } => format!(
                "{}: a change to hosts was cut short (a crash or a full disk); until it is undone, hosts, the \
                 per-host config and the journal may disagree",
                path.display()
            ),
            Finding::UnreadableJournal { path, lines } => format!(
                "{}: line{} {} cannot be read as records (cut short by a crash, or edited by hand): a registration \
                 written there is not checked",
                path.display(),
                if lines.len() == 1 { "" } else { "s" },
                join(lines)
            ),
            Finding::OwnerEdits(edits) => format!(
                "{}: BackupPC's web page lets a host's owner change {}, which are not on bpc-register's list of \
                 harmless settings: the next backup could run what the owner wrote, as backuppc, or BackupPC could \
                 send her mail to anyone; bpc-register refuses to register hosts until it is fixed",
                edits.config_path.display(),
                edits.dangerous_editable().join(", ")
            ),
            Finding::OwnerEditsUnknown(error) => error.clone(),
            Finding::Unwritable { path, what, owner, account, .. } => format!(
                "{}: {what} belongs to {}, and {}, who owns BackupPC's configuration folder and runs the \
                 registrations, may not write it: every registration fails (`Could not register`) until it is \
                 given back",
                path.display(),
                account_name(*owner),
                account_name(*account)
            ),
        }
    }
}

/// Whether the account `uid`, in `groups`, may write a file with `meta`'s
/// owner, group and mode (the permission bits the kernel applies to it).
fn may_write(meta: &fs::Metadata, uid: u32, groups: &[u32]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    if meta.uid() == uid {
        mode & 0o200 != 0
    } else if groups.contains(&meta.gid()) {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    }
}

/// Whether the file at `path` (not followed) carries an access control list,
/// which its mode bits do not tell.
fn has_acl(path: &Path) -> bool {
    rustix::fs::lgetxattr(path, "system.posix_acl_access", &mut [0u8; 0][..]).is_ok()
}

/// Whether the kernel lets an account hard-link only the files it owns or
/// may read and write (`fs.protected_hardlinks`), read from `setting`.
fn hardlinks_protected(setting: &Path) -> bool {
    fs::read_to_string(setting).is_ok_and(|value| value.trim() == "1")
}

/// Where the kernel says whether hard links are protected.
const PROTECTED_HARDLINKS: &str = "/proc/sys/fs/protected_hardlinks";

/// An account's name, if it has one.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|user| user.name)
}

/// An account's name, or `uid N` when it has none.
fn account_name(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// What `check` read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The findings, `hosts` first, then the journal, the configs and
    /// `config.pl`.
    pub findings: Vec<Finding>,
    /// The number of host lines in `hosts`.
    pub host_lines: usize,
    /// The number of hosts the journal says are registered.
    pub journaled: usize,
    /// The number of per-host configs that bpc-register wrote.
    pub own_configs: usize,
}

/// The files in the configuration folder that bpc-register wrote, each by
/// the host it was written for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnFiles {
    /// The per-host configs, `HOST.pl`.
    pub configs: BTreeMap<String, PathBuf>,
    /// The files of pinned host keys, `HOST.known_hosts`.
    pub pins: BTreeMap<String, PathBuf>,
}

/// Why `check` could not read what it compares.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A file or folder could not be read.
    #[error("{path}: cannot {action}: {source}; run check as root or as the backuppc user")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The system's reason.
        source: io::Error,
    },
    /// BackupPC's lock stayed taken.
    #[error(
        "{path}: BackupPC's lock is held by another program (its web page saving, or a registration) for more \
         than {seconds} s; nothing was read or changed, try again"
    )]
    Busy {
        /// The lock.
        path: PathBuf,
        /// How long was waited.
        seconds: u64,
    },
    /// BackupPC's lock cannot be opened by whoever runs `check`.
    #[error(
        "{path}: cannot open BackupPC's lock: {source}; when the account that runs the registrations cannot open \
         it either (a lock left by a command run as root), every registration fails: run `bpc-register check \
         --fix --yes` as root, which gives an empty lock of root's back"
    )]
    LockDenied {
        /// The lock.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// A file that must be a regular file is not one.
    #[error("{path}: not a regular file; BackupPC's {what} must be one, and bpc-register follows no link there")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// Which of BackupPC's files.
        what: &'static str,
    },
}

/// The files `check` compares: BackupPC's configuration folder and the
/// journal of registrations.
#[derive(Debug, Clone)]
pub struct Sources {
    /// BackupPC's configuration folder (`hosts`, `LOCK`, `HOST.pl`).
    pub conf_dir: PathBuf,
    /// The journal of registrations.
    pub journal: PathBuf,
    /// How long to wait for BackupPC's `LOCK` ([`LOCK_WAIT`]).
    pub lock_wait: std::time::Duration,
}

impl Sources {
    /// The sources `config` names, as absolute paths so that what `check`
    /// prints can be used from anywhere.
    pub fn of(config: &crate::ServerConfig) -> Sources {
        let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let conf_dir = absolute(&config.backuppc.conf_dir);
        let journal = match &config.journal {
            Some(journal) => absolute(journal),
            None => conf_dir.join(journal::JOURNAL_NAME),
        };
        Sources { conf_dir, journal, lock_wait: LOCK_WAIT }
    }

    /// BackupPC's `hosts`.
    pub fn hosts_path(&self) -> PathBuf {
        self.conf_dir.join("hosts")
    }

    /// Compares everything, reading `hosts` and the rest under a shared lock
    /// on BackupPC's `LOCK` when it exists (so nothing is created), then
    /// BackupPC's `config.pl` with Perl.
    pub fn inspect(&self) -> Result<Inspection, CheckError> {
        let lock = self.shared_lock()?;
        let hosts = read_regular(&self.hosts_path(), "hosts")?;
        let mut inspection = self.inspect_files(&hosts)?;
        drop(lock);
        inspection.findings.extend(owner_edits_finding(&self.conf_dir));
        Ok(inspection)
    }

    /// Compares `hosts` (its bytes, read by the caller under the lock) with
    /// the journal and the per-host configs.
    pub fn inspect_files(&self, hosts: &[u8]) -> Result<Inspection, CheckError> {
        let journal = journal::read(&self.journal).map_err(|source| CheckError::Read {
            path: self.journal.clone(),
            action: "read the journal",
            source,
        })?;
        let own_files = self.own_files()?;
        let mut inspection = compare(&self.conf_dir, &self.journal, hosts, &journal, &own_files);
        let undo = self.conf_dir.join(transaction::UNDO_NAME);
        if fs::symlink_metadata(&undo).is_ok() {
            inspection.findings.insert(0, Finding::PendingUndo { path: undo });
        }
        inspection.findings.extend(self.unwritable());
        Ok(inspection)
    }

    /// The files every registration writes that the account registrations
    /// run as (the configuration folder's owner, unless that is root) may
    /// not write. Only regular files are judged: a link in their place is
    /// refused by the registration itself, with its own error.
    pub fn unwritable(&self) -> Vec<Finding> {
        use std::os::unix::fs::MetadataExt;
        let Ok(folder) = fs::metadata(&self.conf_dir) else { return Vec::new() };
        let account = folder.uid();
        if account == 0 {
            return Vec::new();
        }
        // The account's groups; without an entry for it, the folder's group
        // stands for them.
        let groups: Vec<u32> = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(account))
            .ok()
            .flatten()
            .and_then(|user| {
                let name = std::ffi::CString::new(user.name).ok()?;
                nix::unistd::getgrouplist(&name, user.gid).ok()
            })
            .map_or_else(|| vec![folder.gid()], |groups| groups.iter().map(|g| g.as_raw()).collect());
        let watched = [
            (self.conf_dir.join("LOCK"), "BackupPC's lock", true),
            (self.hosts_path(), "BackupPC's hosts", false),
            (self.journal.clone(), "the journal of registrations", false),
            (
                self.journal.with_file_name(crate::registry::SETTLE_LOCK_NAME),
                "bpc-register's lock beside the journal",
                true,
            ),
        ];
        let mut found = Vec::new();
        for (path, what, lock) in watched {
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if !meta.file_type().is_file() || may_write(&meta, account, &groups) || has_acl(&path) {
                continue;
            }
            let folder_owner = fs::metadata(files::parent_dir(&path)).ok().map(|folder| folder.uid());
            found.push(Finding::Unwritable {
                path,
                what,
                lock,
                owner: meta.uid(),
                account,
                identity: (meta.dev(), meta.ino()),
                size: meta.len(),
                mode: meta.mode() & 0o7777,
                folder_owner,
            });
        }
        found
    }

    /// `LOCK` held shared, when it exists; `None` when it does not (no
    /// registration and no save of BackupPC's web page ever took it).
    fn shared_lock(&self) -> Result<Option<File>, CheckError> {
        self.take_lock(false)
    }

    /// BackupPC's `LOCK`, opened without following a link and without
    /// waiting (a FIFO would block), used only as a regular file, and held
    /// shared or (`exclusive`, created if missing) exclusive. Whoever holds it
    /// (BackupPC's web page saving, a registration) is waited for at most
    /// `lock_wait`.
    fn take_lock(&self, exclusive: bool) -> Result<Option<File>, CheckError> {
        let path = self.conf_dir.join("LOCK");
        let opened = if exclusive {
            // Created when missing, and then given to the folder's owner as a
            // registration does: BackupPC and the forced command open it too.
            crate::shared_file::open(&path, OpenOptions::new().read(true).write(true), 0o644)
        } else {
            let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
            OpenOptions::new().read(true).custom_flags(flags).open(&path)
        };
        let file = match opened {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(CheckError::NotRegular { path, what: "LOCK" });
            }
            Err(error) if error.raw_os_error() == Some(nix::libc::EACCES) && !nix::unistd::geteuid().is_root() => {
                return Err(CheckError::LockDenied { path, source: error });
            }
            Err(source) => return Err(CheckError::Read { path, action: "open the lock", source }),
        };
        let meta = file.metadata().map_err(|source| CheckError::Read {
            path: path.clone(),
            action: "examine the lock",
            source,
        })?;
        if !meta.is_file() {
            return Err(CheckError::NotRegular { path, what: "LOCK" });
        }
        let deadline = std::time::Instant::now() + self.lock_wait;
        loop {
            let taken = if exclusive { file.try_lock() } else { file.try_lock_shared() };
            match taken {
                Ok(()) => return Ok(Some(file)),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(CheckError::Busy { path, seconds: self.lock_wait.as_secs() });
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(CheckError::Read { path, action: "take the lock", source });
                }
            }
        }
    }

    /// The files in the configuration folder that bpc-register wrote, by
    /// host, in one listing of the folder: regular files named `HOST.pl`
    /// (never `config.pl`) whose first line is [`hostconfig::HEADER_PREFIX`]
    /// and the same host, and `HOST.known_hosts` whose first line is
    /// [`pins::PINS_HEADER_PREFIX`] and the same host. Links are not
    /// followed and nothing is opened for writing.
    pub fn own_files(&self) -> Result<OwnFiles, CheckError> {
        let fail = |source| CheckError::Read { path: self.conf_dir.clone(), action: "list the folder", source };
        let mut found = OwnFiles::default();
        for entry in fs::read_dir(&self.conf_dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (host, pins) = match (name.strip_suffix(".pl"), name.strip_suffix(transaction::PINS_SUFFIX)) {
                (Some(host), _) if host != "config" => (host, false),
                (_, Some(host)) => (host, true),
                _ => continue,
            };
            if host.is_empty() || !entry.file_type().map_err(fail)?.is_file() {
                continue;
            }
            let path = entry.path();
            let Some(line) = first_line(&path) else { continue };
            let written_for = match pins {
                false => hostconfig::written_for(&line),
                true => pins::written_for(&line),
            };
            if written_for == Some(host) {
                let files = if pins { &mut found.pins } else { &mut found.configs };
                files.insert(host.to_owned(), path);
            }
        }
        Ok(found)
    }
}

/// The first line of a regular file (at most 512 bytes of it), read without
/// following a link and without waiting on a FIFO; `None` when it cannot be
/// read, which only means it is not one of bpc-register's files.
fn first_line(path: &Path) -> Option<String> {
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = Vec::new();
    file.take(512).read_to_end(&mut head).ok()?;
    let line = head.split(|b| *b == b'\n').next()?;
    String::from_utf8(line.to_vec()).ok()
}

/// A regular file's bytes, read without following a link; a missing file
/// is empty.
fn read_regular(path: &Path, what: &'static str) -> Result<Vec<u8>, CheckError> {
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    let mut file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(CheckError::NotRegular { path: path.to_owned(), what });
        }
        Err(source) => return Err(CheckError::Read { path: path.to_owned(), action: "read", source }),
    };
    let regular = file.metadata().map(|meta| meta.is_file());
    match regular {
        Ok(true) => {}
        Ok(false) => return Err(CheckError::NotRegular { path: path.to_owned(), what }),
        Err(source) => return Err(CheckError::Read { path: path.to_owned(), action: "examine", source }),
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|source| CheckError::Read {
        path: path.to_owned(),
        action: "read",
        source,
    })?;
    Ok(bytes)
}

/// What BackupPC's server-wide configuration says about owners' edits, as
/// a finding when it is not safe.
fn owner_edits_finding(conf_dir: &Path) -> Option<Finding> {
    match owner_edits::read(conf_dir) {
        Ok(edits) if edits.is_safe() => None,
        Ok(edits) => Some(Finding::OwnerEdits(edits)),
        Err(error) => Some(Finding::OwnerEditsUnknown(error.to_string())),
    }
}

/// `hosts`, line by line, as BackupPC's `HostInfoRead` reads it.
#[derive(Debug, Default)]
struct NumberedHosts {
    /// The first line BackupPC counts, and its fields.
    header: Option<(usize, Vec<u8>, Vec<String>)>,
    /// The host lines after it.
    hosts: Vec<(usize, HostLine)>,
    /// The lines that are neither blank nor comments and that BackupPC skips.
    ignored: Vec<(usize, Vec<u8>)>,
}

/// Numbers the lines of `hosts`, deciding each one with [`parse_hosts`]
/// itself: alone, a line BackupPC counts reads as a header; after the
/// header, as a host line.
fn number_lines(bytes: &[u8]) -> NumberedHosts {
    let mut numbered = NumberedHosts::default();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let Some(fields) = parse_hosts(raw).header else {
            if !blank_or_comment(raw) {
                numbered.ignored.push((line, raw.to_vec()));
            }
            continue;
        };
        match &numbered.header {
            None => numbered.header = Some((line, raw.to_vec(), fields)),
            Some((_, header, _)) => {
                let mut pair = header.clone();
                pair.push(b'\n');
                pair.extend_from_slice(raw);
                if let Some(host) = parse_hosts(&pair).hosts.into_iter().next() {
                    numbered.hosts.push((line, host));
                }
            }
        }
    }
    numbered
}

/// Whether BackupPC skips `raw` as blank: its first run of carriage returns
/// goes, then everything from `#`, and only white space is left.
fn blank_or_comment(raw: &[u8]) -> bool {
    let mut line = raw.to_vec();
    if let Some(start) = line.iter().position(|b| *b == b'\r') {
        let len = line.iter().skip(start).take_while(|b| **b == b'\r').count();
        line.drain(start..start + len);
    }
    let end = line.iter().position(|b| *b == b'#').unwrap_or(line.len());
    line.iter().take(end).all(|b| matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c))
}

/// Why BackupPC 4 mishandles `host` (as `HostInfoRead` gives it: unescaped,
/// lowercased), if it does.
fn name_problem(host: &str) -> Option<&'static str> {
    if host.chars().any(|c| c.is_whitespace() || c == '\\') {
        return Some(
            "holds white space or a backslash: BackupPC's web pages refuse a backslash in a host name, and its \
             server messages (hostMutex, backups) split a name at white space",
        );
    }
    if host.contains("..") || host.chars().all(|c| c == '.') {
        return Some(
            "names a folder at or above BackupPC's pc folder (TopDir/pc/HOST): its web page refuses the name, \
             and its tools would use the wrong folder",
        );
    }
    if host.starts_with('-') {
        return Some("starts with `-`: BackupPC's tools (BackupPC_dump -i HOST) would read it as an option");
    }
    if host == "config" {
        return Some(
            "is `config`: BackupPC reads config.pl as its per-host config, and its owner could edit BackupPC's \
             whole configuration from the web page",
        );
    }
    None
}

/// The findings about `hosts` (given), the journal (read) and the configs
/// that bpc-register wrote.
fn compare(conf_dir: &Path, journal_path: &Path, hosts: &[u8], journal: &Journal, own_files: &OwnFiles) -> Inspection {
    let numbered = number_lines(hosts);
    let mut findings = Vec::new();
    // The hosts BackupPC sees, plus one that a header put in front makes a
    // host again: its line is not lost.
    let mut present: BTreeSet<String> = numbered.hosts.iter().map(|(_, line)| line.host.clone()).collect();
    if let Some((line, raw, fields)) = &numbered.header {
        let usable = fields.first().is_some_and(|first| first == "host") && fields.iter().any(|f| f == "user");
        if !usable {
            let is_host = fields.first().is_some_and(|first| first != "host");
            if is_host && let Some(first) = fields.first() {
                present.insert(first.to_ascii_lowercase());
            }
            findings.push(Finding::BadHeader { line: *line, text: escape(raw.trim_ascii_end()), is_host });
        }
    }
    let mut all: Vec<(usize, Vec<u8>, Finding)> = Vec::new();
    for (line, raw) in &numbered.ignored {
        all.push((*line, raw.clone(), Finding::IgnoredLine { line: *line, text: escape(raw.trim_ascii_end()) }));
    }
    for (line, host) in &numbered.hosts {
        if let Some(reason) = name_problem(&host.host) {
            let finding = Finding::BadName { line: *line, host: host.host.clone(), reason };
            all.push((*line, Vec::new(), finding));
        }
    }
    all.sort_by_key(|(line, _, _)| *line);
    findings.extend(all.into_iter().map(|(_, _, finding)| finding));

    let mut registered: BTreeMap<String, &JournalRecord> = BTreeMap::new();
    for record in &journal.records {
        let host = record.host.to_ascii_lowercase();
        if REGISTERED.contains(&record.action.as_str()) {
            registered.insert(host, record);
        } else {
            registered.remove(&host);
        }
    }
    let mut by_host: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (line, host) in &numbered.hosts {
        by_host.entry(host.host.as_str()).or_default().push((*line, host.user.as_str()));
    }
    let mut duplicates: Vec<Finding> = by_host
        .iter()
        .filter(|(_, lines)| lines.len() > 1)
        .map(|(host, lines)| Finding::Duplicate {
            host: (*host).to_owned(),
            lines: lines.iter().map(|(line, _)| *line).collect(),
            owners: lines.iter().map(|(_, owner)| (*owner).to_owned()).collect(),
            journal_owner: registered.get(*host).map(|record| record.owner.clone()),
        })
        .collect();
    duplicates.sort_by_key(|finding| match finding {
        Finding::Duplicate { lines, .. } => lines.first().copied().unwrap_or_default(),
        _ => 0,
    });
    findings.extend(duplicates);

    for (host, record) in &registered {
        if !present.contains(host) {
            let config_present = conf_dir.join(format!("{host}.pl")).exists();
            findings.push(Finding::LostLine { host: host.clone(), record: (*record).clone(), config_present });
        }
    }
    let orphan = |host: &str| {
        let host = host.to_ascii_lowercase();
        !present.contains(&host) && !registered.contains_key(&host)
    };
    for (host, path) in &own_files.configs {
        if orphan(host) {
            findings.push(Finding::OrphanConfig { host: host.clone(), path: path.clone() });
        }
    }
    for (host, path) in &own_files.pins {
        if orphan(host) {
            findings.push(Finding::OrphanPins { host: host.clone(), path: path.clone() });
        }
    }
    if !journal.unreadable_lines.is_empty() {
        findings.push(Finding::UnreadableJournal {
            path: journal_path.to_owned(),
            lines: journal.unreadable_lines.clone(),
        });
    }
    Inspection {
        findings,
        host_lines: numbered.hosts.len(),
        journaled: registered.len(),
        own_configs: own_files.configs.len(),
    }
}

/// A repair that `check --fix` makes for one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Undo the change that was cut short, as the next registration would.
    Recover,
    /// Put BackupPC's header line at the top of `hosts`.
    AddHeader,
    /// Keep the last line of `host`, whose owner BackupPC's daemon and web
    /// page see, and remove the others.
    KeepLastLine {
        /// The host.
        host: String,
        /// The owner on its last line.
        owner: String,
    },
    /// Add `host`'s line back with the journal's owner, journal it as
    /// `restored`, and write its per-host config if it is gone too.
    RestoreLine {
        /// The host.
        host: HostName,
        /// The owner the journal names.
        owner: Logon,
        /// The journal's last record about the host.
        record: Box<JournalRecord>,
        /// Whether its config must be written again.
        write_config: bool,
    },
    /// Move a per-host config aside, under a name BackupPC never reads.
    MoveAside {
        /// The config.
        from: PathBuf,
        /// Where it goes.
        to: PathBuf,
    },
    /// Append lines to BackupPC's `config.pl`.
    AppendToConfigPl {
        /// `config.pl`.
        path: PathBuf,
        /// The lines.
        lines: Vec<String>,
    },
    /// Give an empty lock file of root's back to the account registrations
    /// run as (root only); its group and mode are kept.
    GiveBack {
        /// The file.
        path: PathBuf,
        /// The account it goes to.
        account: u32,
        /// The device and inode it must still have.
        identity: (u64, u64),
    },
}

impl Repair {
    /// Whether the repair changes `hosts`, which BackupPC's daemon must then
    /// re-read.
    pub fn changes_hosts(&self) -> bool {
        matches!(self, Repair::AddHeader | Repair::KeepLastLine { .. } | Repair::RestoreLine { .. })
    }

    /// The repair in one line: what it will do, or (`done`) what it did.
    pub fn describe(&self, done: bool) -> String {
        let verb = |will: &str, did: &str| if done { did.to_owned() } else { will.to_owned() };
        match self {
            Repair::Recover => {
                format!("{} the change that was cut short, as the next registration would", verb("undo", "undid"))
            }
            Repair::AddHeader => {
                format!("{} BackupPC's header line `host dhcp user moreUsers` at the top of hosts", verb("put", "put"))
            }
            Repair::KeepLastLine { host, owner } => format!(
                "{} only the last line of {} in hosts, owned by {}: the owner BackupPC's daemon and web page see",
                verb("keep", "kept"),
                escape(host.as_bytes()),
                shown_owner(owner)
            ),
            Repair::RestoreLine { host, owner, write_config, .. } => format!(
                "{} {host} back to hosts, owned by {owner} as the journal says, journaled as `restored`{}",
                verb("add", "added"),
                if *write_config { ", with its per-host config written again" } else { "" }
            ),
            Repair::MoveAside { from, to } => format!(
                "{} {} aside to {} ({})",
                verb("move", "moved"),
                from.display(),
                to.display(),
                match from.to_str().is_some_and(|from| from.ends_with(transaction::PINS_SUFFIX)) {
                    true => "only its host's config points ssh at it",
                    false => "BackupPC reads only HOST.pl",
                }
            ),
            Repair::AppendToConfigPl { path, lines } => format!(
                "{} {} at the end of {}, so that host owners can change only harmless settings",
                verb("add", "added"),
                if lines.len() == 1 { "the line above".to_owned() } else { format!("the {} lines above", lines.len()) },
                path.display()
            ),
            Repair::GiveBack { path, account, .. } => format!(
                "{} {} (an empty lock file of root's) to {}, so that registrations can take it again",
                verb("give", "gave"),
                path.display(),
                account_name(*account)
            ),
        }
    }
}

/// What `check --fix` does about one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A repair it makes.
    Repair(Repair),
    /// Nothing: the finding is left to the administrator, for this reason.
    Leave(String),
}

/// The steps for `findings`, in the order they are made: the header first,
/// then duplicate lines, lost lines, orphan configs and `config.pl`. `now`
/// (the journal's time format) names the configs moved aside.
pub fn plan(config: &crate::ServerConfig, findings: &[Finding], now: &str) -> Vec<Step> {
    let header_without_user = findings.iter().any(|f| matches!(f, Finding::BadHeader { is_host: false, .. }));
    let stamp: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let by_hand =
        |what: String| Step::Leave(format!("{what}: correct it by hand, in BackupPC's Hosts page or an editor"));
    let mut steps: Vec<(u8, Step)> = findings
        .iter()
        .map(|finding| match finding {
            Finding::PendingUndo { .. } => (0, Step::Repair(Repair::Recover)),
            Finding::BadHeader { is_host: true, .. } => (1, Step::Repair(Repair::AddHeader)),
            Finding::BadHeader { line, is_host: false, .. } => {
                (1, Step::Leave(format!("hosts line {line}: make the header `host dhcp user moreUsers` by hand")))
            }
            Finding::IgnoredLine { line, .. } | Finding::BadName { line, .. } => {
                (2, by_hand(format!("hosts line {line}")))
            }
            Finding::Duplicate { host, owners, .. } => (
                3,
                Step::Repair(Repair::KeepLastLine {
                    host: host.clone(),
                    owner: owners.last().cloned().unwrap_or_default(),
                }),
            ),
            Finding::LostLine { host, record, config_present } => {
                let parsed = (HostName::parse(host), Logon::parse(&record.owner));
                let address_unknown = !config_present
                    && config.backuppc.connect_to == crate::config::ConnectTo::Address
                    && record.client_ip.parse::<std::net::IpAddr>().is_err();
                let step = match parsed {
                    _ if header_without_user => Step::Leave(format!(
                        "{}: not added back while the header of hosts names no user column",
                        escape(host.as_bytes())
                    )),
                    _ if address_unknown => Step::Leave(format!(
                        "{}: its config must be written again with its address, which the journal does not hold; \
                         add its line and config by hand",
                        escape(host.as_bytes())
                    )),
                    (Ok(host), Ok(owner)) if host.as_str() == record.host.to_ascii_lowercase() => {
                        Step::Repair(Repair::RestoreLine {
                            host,
                            owner,
                            record: Box::new(record.clone()),
                            write_config: !config_present,
                        })
                    }
                    _ => Step::Leave(format!(
                        "{}: the journal's host or owner is not one bpc-register would register; add its line by hand",
                        escape(host.as_bytes())
                    )),
                };
                (4, step)
            }
            Finding::OrphanConfig { path, .. } | Finding::OrphanPins { path, .. } => {
                let mut to = path.clone().into_os_string();
                to.push(format!(".orphaned-{stamp}"));
                (5, Step::Repair(Repair::MoveAside { from: path.clone(), to: PathBuf::from(to) }))
            }
            Finding::UnreadableJournal { path, .. } => {
                (6, Step::Leave(format!("{}: look at those lines and repair or remove them by hand", path.display())))
            }
            Finding::OwnerEdits(edits) => {
                let step = match config_pl_writable(&edits.config_path) {
                    Ok(()) => Step::Repair(Repair::AppendToConfigPl {
                        path: edits.config_path.clone(),
                        lines: edits.fix_lines(),
                    }),
                    Err(reason) => Step::Leave(format!(
                        "{}: {reason}; add the lines above to it by hand",
                        edits.config_path.display()
                    )),
                };
                (7, step)
            }
            Finding::OwnerEditsUnknown(_) => {
                (7, Step::Leave("BackupPC's config.pl: make it readable and loadable first, then check again".into()))
            }
            Finding::Unwritable { .. } => (
                0,
                give_back_step(
                    finding,
                    nix::unistd::geteuid().is_root(),
                    hardlinks_protected(Path::new(PROTECTED_HARDLINKS)),
                ),
            ),
        })
        .collect();
    steps.sort_by_key(|(order, _)| *order);
    steps.into_iter().map(|(_, step)| step).collect()
}

/// Why bpc-register cannot safely rewrite `config.pl`, if it cannot: it
/// must be a regular file with one name (a rename would cut another link
/// off), whose owner and group the new version can keep.
pub fn config_pl_writable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).map_err(|error| format!("cannot examine it ({error})"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file (a link, or something else), which bpc-register does not replace".into());
    }
    if meta.nlink() != 1 {
        return Err(format!("it has {} names (hard links), which a new version would part", meta.nlink()));
    }
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return Ok(());
    }
    let in_group = nix::unistd::getegid().as_raw() == meta.gid()
        || nix::unistd::getgroups().is_ok_and(|groups| groups.iter().any(|gid| gid.as_raw() == meta.gid()));
    if euid.as_raw() == meta.uid() && in_group {
        Ok(())
    } else {
        Err(format!(
            "a new version written as uid {euid} could not keep its owner and group (uid {}, gid {}); run the fix as \
             root",
            meta.uid(),
            meta.gid()
        ))
    }
}

/// What `check --fix --yes` found and did.
#[derive(Debug)]
pub struct FixReport {
    /// Whether a change that was cut short was undone first.
    pub recovered: bool,
    /// What was found, under BackupPC's lock, after that.
    pub inspection: Inspection,
    /// The repairs made, in order; each one whole.
    pub made: Vec<Repair>,
    /// The findings left to the administrator.
    pub left: Vec<String>,
    /// The repair that failed, with why; it and those after it were not made.
    pub failed: Option<(Repair, FixError)>,
}

/// Why a repair was not made (nothing of it is left).
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// The files could not be read.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// A change that was cut short could not be undone.
    #[error("{path}: cannot undo the change that was cut short: {source}")]
    Recover {
        /// The configuration folder.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// `hosts`, a per-host config or the journal could not be changed.
    #[error(transparent)]
    Change(#[from] transaction::ChangeError),
    /// The edited `hosts` would not read as intended.
    #[error("{path}: {reason}; nothing was changed")]
    Hosts {
        /// `hosts`.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An orphan config or file of pinned keys could not be moved aside.
    #[error("cannot move {from} to {to}: {source}")]
    Move {
        /// The config.
        from: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// A file could not be given back to the account registrations run as.
    #[error("cannot give {path} back: {source}; it was not changed")]
    GiveBack {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// `config.pl` could not be rewritten safely.
    #[error("{path}: {reason}; it was not changed")]
    ConfigPl {
        /// `config.pl`.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Sources {
    /// Finds and repairs, under BackupPC's lock held throughout: undoes a
    /// change that was cut short, compares the files, then makes each
    /// repair of [`plan`] whole or not at all (`hosts`, a per-host config
    /// and a journal record through [`transaction::apply`]; a config moved
    /// aside by one rename that replaces nothing; `config.pl` by one atomic
    /// replacement keeping its owner, group and mode, checked with Perl
    /// first). It stops at the first repair that fails.
    pub fn fix(&self, config: &crate::ServerConfig) -> Result<FixReport, FixError> {
        let _lock = self.take_lock(true)?;
        let recovered = transaction::recover(&self.conf_dir, &self.journal)
            .map_err(|source| FixError::Recover { path: self.conf_dir.clone(), source })?;
        let mut hosts = read_regular(&self.hosts_path(), "hosts")?;
        let mut inspection = self.inspect_files(&hosts)?;
        inspection.findings.extend(owner_edits_finding(&self.conf_dir));
        let mut report = FixReport { recovered, inspection, made: Vec::new(), left: Vec::new(), failed: None };
        for step in plan(config, &report.inspection.findings, &journal::now()) {
            let mut repair = match step {
                Step::Repair(repair) => repair,
                Step::Leave(reason) => {
                    report.left.push(reason);
                    continue;
                }
            };
            if report.failed.is_some() {
                continue;
            }
            match self.make(config, &mut repair, &mut hosts) {
                Ok(()) => report.made.push(repair),
                Err(error) => report.failed = Some((repair, error)),
            }
        }
        if report.made.iter().any(Repair::changes_hosts) {
            self.settle_hosts_mtime();
        }
        Ok(report)
    }

    /// After the repairs, still under the lock: waits (a second or two at
    /// most) until the clock has passed the second of `hosts`'s mtime and
    /// moves the mtime there, so that BackupPC, told to reload, sees a
    /// second no earlier version had, however many repairs shared one.
    fn settle_hosts_mtime(&self) {
        let path = self.hosts_path();
        let Ok(Some(mtime)) = hosts_mtime::mtime_of(&path) else { return };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while hosts_mtime::whole_seconds(std::time::SystemTime::now()) <= hosts_mtime::whole_seconds(mtime)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if let Ok(file) = File::options().write(true).custom_flags(nix::libc::O_NOFOLLOW).open(&path) {
            let _ = file.set_modified(std::time::SystemTime::now().max(mtime));
        }
    }

    /// Makes one repair; `hosts` is the file's current body, kept current. A
    /// file moved aside whose planned name is taken goes to the first free
    /// one of that name followed by `.1` to `.9`, which `repair` then names.
    fn make(&self, config: &crate::ServerConfig, repair: &mut Repair, hosts: &mut Vec<u8>) -> Result<(), FixError> {
        let hosts_path = self.hosts_path();
        let hosts_error = |reason: String| FixError::Hosts { path: hosts_path.clone(), reason };
        match repair {
            Repair::Recover => Ok(()),
            Repair::AddHeader => {
                let mut body = crate::registry::HOSTS_HEADER.as_bytes().to_vec();
                body.extend_from_slice(hosts);
                self.change_hosts(hosts, body, None, None)
            }
            Repair::KeepLastLine { host, .. } => {
                let numbered = number_lines(hosts);
                let lines: Vec<usize> =
                    numbered.hosts.iter().filter(|(_, line)| &line.host == host).map(|(number, _)| *number).collect();
                let remove: BTreeSet<usize> = lines.iter().rev().skip(1).copied().collect();
                let body = without_lines(hosts, &remove).map_err(hosts_error)?;
                self.change_hosts(hosts, body, None, None)
            }
            Repair::RestoreLine { host, owner, record, write_config } => {
                let mut body = hosts.clone();
                if parse_hosts(&body).header.is_none() {
                    body = crate::registry::HOSTS_HEADER.as_bytes().iter().chain(hosts.iter()).copied().collect();
                }
                let header = parse_hosts(&body).header.unwrap_or_default();
                let line = crate::registry::host_line(&header, host, owner).ok_or_else(|| {
                    hosts_error(format!("the header `{}` does not start with host, dhcp, user", header.join(" ")))
                })?;
                if !body.is_empty() && !body.ends_with(b"\n") {
                    body.push(b'\n');
                }
                body.extend_from_slice(line.as_bytes());
                let restored = JournalRecord { time: journal::now(), action: "restored".into(), ..(**record).clone() };
                let restored = JournalRecord {
                    host: host.to_string(),
                    owner: owner.to_string(),
                    previous_owner: String::new(),
                    admin: crate::admin::invoking_admin(),
                    previous_host_keys: Vec::new(),
                    ..restored
                };
                let config_path = self.conf_dir.join(format!("{host}.pl"));
                // Used only with `connect-to = "address"`, for which `plan`
                // made sure that the journal's address parses.
                let client_ip = record.client_ip.parse().unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
                // A host whose keys are pinned keeps trusting them alone.
                let pins_path = crate::pins::pins_path(&self.conf_dir, host);
                let pinned = pins_path.exists().then_some(pins_path.as_path());
                let text = crate::register::host_config_text(config, host, owner, client_ip, pinned);
                let host_config = write_config.then_some((config_path.as_path(), Some(text.as_bytes())));
                self.change_hosts(hosts, body, host_config, Some(&restored))
            }
            Repair::MoveAside { from, to } => {
                // The planned name is known in advance (the second it was
                // planned in): one put there first only moves the file on.
                let planned = to.clone();
                let candidates = std::iter::once(planned.clone()).chain((1..10).map(|n| {
                    let mut name = planned.clone().into_os_string();
                    name.push(format!(".{n}"));
                    PathBuf::from(name)
                }));
                let mut moved = Err(io::Error::from(io::ErrorKind::AlreadyExists));
                for candidate in candidates {
                    *to = candidate;
                    moved = nix::fcntl::renameat2(
                        nix::fcntl::AT_FDCWD,
                        from.as_path(),
                        nix::fcntl::AT_FDCWD,
                        to.as_path(),
                        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
                    )
                    .map_err(io::Error::from);
                    if !matches!(&moved, Err(error) if error.kind() == io::ErrorKind::AlreadyExists) {
                        break;
                    }
                }
                let fail = |source| FixError::Move { from: from.clone(), to: to.clone(), source };
                moved.map_err(fail)?;
                File::open(&self.conf_dir).and_then(|dir| dir.sync_all()).map_err(fail)
            }
            Repair::AppendToConfigPl { path, lines } => append_to_config_pl(&self.conf_dir, path, lines),
            Repair::GiveBack { path, account, identity } => {
                give_back(path, *account, *identity).map_err(|source| FixError::GiveBack { path: path.clone(), source })
            }
        }
    }

    /// Puts `body` in place of `hosts` (with a per-host config and a journal
    /// record, when given) as one [`transaction::apply`].
    fn change_hosts(
        &self,
        hosts: &mut Vec<u8>,
        body: Vec<u8>,
        config: Option<(&Path, Option<&[u8]>)>,
        record: Option<&JournalRecord>,
    ) -> Result<(), FixError> {
        // BackupPC's daemon sees a change only when the whole second of the
        // modification time moves, as for a registration.
        let previous = fs::metadata(self.hosts_path()).and_then(|meta| meta.modified()).ok();
        let change = transaction::Change { hosts: Some(&body), config, record, ..Default::default() };
        transaction::apply(&self.conf_dir, &self.journal, &change)?;
        let _ = hosts_mtime::after_change(&self.hosts_path(), previous);
        *hosts = body;
        Ok(())
    }
}

/// What `check --fix` does about a file the registrations cannot write
/// (`Finding::Unwritable`), run by root (`root`) or not, on a kernel that
/// protects hard links (`protected`) or not. Root gives away only what can
/// reveal and open nothing: an empty lock file of its own, with one name,
/// writable by its owner, where no one may have hard-linked one of root's
/// files (a file with data, or planted, is left to the administrator, who
/// can look at it first).
fn give_back_step(finding: &Finding, root: bool, protected: bool) -> Step {
    let Finding::Unwritable { path, lock, owner, account, identity, size, mode, folder_owner, .. } = finding else {
        return Step::Leave(finding.describe());
    };
    let shown = path.display();
    let quoted = shell_quoted(path);
    // A name for the command line: an account without one is its number.
    let to = user_name(*account).unwrap_or_else(|| account.to_string());
    let by_hand = format!(
        "{shown}: give it to {} by hand once `namei -l {quoted}` and `ls -l {quoted}` show it is the file you \
         expect, in the folders you expect, with one link: `chown -h {to} {quoted}`{}",
        account_name(*account),
        if mode & 0o200 == 0 { format!(" and `chmod u+w {quoted}`") } else { String::new() }
    );
    if owner == account {
        return Step::Leave(format!("{shown}: its owner may not write it: `chmod u+w {quoted}`"));
    }
    if !lock || *size != 0 || *owner != 0 || mode & 0o200 == 0 || *folder_owner != Some(*account) {
        return Step::Leave(by_hand);
    }
    if !root {
        return Step::Leave(format!("{shown}: only root can give it back: run `check --fix --yes` as root"));
    }
    if !protected {
        return Step::Leave(format!(
            "{by_hand} (fs.protected_hardlinks is off: anyone may have linked one of root's files there, so root \
             gives none away itself)"
        ));
    }
    Step::Repair(Repair::GiveBack { path: path.clone(), account: *account, identity: *identity })
}

/// `path` as one word of a shell command line.
fn shell_quoted(path: &Path) -> String {
    let shown = path.to_string_lossy();
    shlex::try_quote(&shown).map_or_else(|_| shown.to_string(), |quoted| quoted.into_owned())
}

/// Gives the file at `path` to `account`, keeping its group and mode: only
/// the regular file examined (`identity`), in a folder of the account's,
/// reached without a link, still root's, empty and with one name (a second
/// name could be one of root's files elsewhere). It is opened as a path
/// only, so nothing that turned up there (a FIFO, a device) is really
/// opened.
fn give_back(path: &Path, account: u32, identity: (u64, u64)) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // The folder, resolved once, must be the account's: never one of root's
    // reached through a link the account put in the path.
    let folder_flags = nix::libc::O_PATH | nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC;
    let folder = OpenOptions::new().read(true).custom_flags(folder_flags).open(files::parent_dir(path))?;
    if folder.metadata()?.uid() != account {
        return Err(io::Error::other("its folder is not the account's; root gives nothing away elsewhere"));
    }
    let name = path.file_name().ok_or_else(|| io::Error::other("it names no file"))?;
    let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC;
    let file = File::from(nix::fcntl::openat(&folder, name, flags, nix::sys::stat::Mode::empty())?);
    let meta = file.metadata()?;
    if !meta.file_type().is_file() || (meta.dev(), meta.ino()) != identity {
        return Err(io::Error::other("it is not the file examined"));
    }
    if meta.nlink() != 1 {
        return Err(io::Error::other("it has other names (hard links); root gives away none"));
    }
    if meta.uid() != 0 || meta.len() != 0 {
        return Err(io::Error::other("it changed since it was examined"));
    }
    nix::unistd::fchownat(
        &file,
        "",
        Some(nix::unistd::Uid::from_raw(account)),
        None,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )?;
    // The new owner made durable: the same file, known to be a regular
    // one, opened again through its descriptor. Done all the same if that
    // fails: a crash would only have `check` report it again.
    if let Ok(opened) = File::open(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        let _ = opened.sync_all();
    }
    Ok(())
}

/// `hosts` without the lines numbered in `remove` (from 1), every other byte
/// kept; refused unless BackupPC reads the result as the same header and
/// host lines less exactly those.
fn without_lines(hosts: &[u8], remove: &BTreeSet<usize>) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(hosts.len());
    for (index, line) in hosts.split_inclusive(|b| *b == b'\n').enumerate() {
        if !remove.contains(&(index + 1)) {
            body.extend_from_slice(line);
        }
    }
    let before = number_lines(hosts);
    let expected: Vec<&HostLine> =
        before.hosts.iter().filter(|(number, _)| !remove.contains(number)).map(|(_, line)| line).collect();
    let after = parse_hosts(&body);
    let same_header = after.header == before.header.as_ref().map(|(_, _, fields)| fields.clone());
    if same_header && after.hosts.iter().collect::<Vec<_>>() == expected {
        Ok(body)
    } else {
        Err("BackupPC would read hosts differently than intended without those lines; edit it by hand".into())
    }
}

/// Appends `lines` to `config.pl`, under a comment that says why: the new
/// version is written beside it with its owner, group and mode (or not at
/// all), read with Perl as BackupPC reads it, and put in place only when
/// that reading finds it safe.
fn append_to_config_pl(conf_dir: &Path, path: &Path, lines: &[String]) -> Result<(), FixError> {
    use std::os::unix::fs::MetadataExt;
    let fail = |reason: String| FixError::ConfigPl { path: path.to_owned(), reason };
    config_pl_writable(path).map_err(fail)?;
    let old = read_regular(path, "config.pl")?;
    let old_meta = fs::symlink_metadata(path).map_err(|error| fail(format!("cannot examine it: {error}")))?;
    let mut body = old.clone();
    if !body.is_empty() && !body.ends_with(b"\n") {
        body.push(b'\n');
    }
    body.extend_from_slice(b"# Added by bpc-register check --fix: host owners may not change these in the web page.\n");
    for line in lines {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    let mode = old_meta.mode() & 0o7777;
    let new = files::AtomicWrite::prepare(path, &body, mode).map_err(|error| fail(format!("cannot write: {error}")))?;
    let new_meta = fs::symlink_metadata(new.temp_path()).map_err(|error| fail(format!("cannot write: {error}")))?;
    if (new_meta.uid(), new_meta.gid(), new_meta.mode() & 0o7777) != (old_meta.uid(), old_meta.gid(), mode) {
        return Err(fail("the new version could not keep the file's owner, group and mode".into()));
    }
    match owner_edits::read_candidate(conf_dir, new.temp_path()) {
        Ok(edits) if edits.is_safe() => {}
        Ok(edits) => {
            return Err(fail(format!(
                "with the lines added, Perl still reads {} as editable by owners (the file may stop before its end, \
                 at __END__)",
                edits.dangerous_editable().join(", ")
            )));
        }
        Err(error) => return Err(fail(format!("with the lines added, Perl cannot load it: {error}"))),
    }
    // Someone who changed the file since it was read would lose the change.
    if read_regular(path, "config.pl")? != old {
        return Err(fail("it changed while the new version was prepared; run the fix again".into()));
    }
    new.commit().map_err(|error| fail(format!("cannot put the new version in place: {error}")))
}

/// How long `check` waits for BackupPC's `LOCK`: its web page and a
/// registration hold it for milliseconds.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The journal's actions after which a host is registered; after any other
/// (`removed`, or an action this version does not know) it is not taken as
/// registered, so `check` never brings back a line on a guess.
pub const REGISTERED: &[&str] = &["added", "confirmed", "transferred", "restored"];

fn join(numbers: &[usize]) -> String {
    numbers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// An owner as a line shows it: a missing one is said so.
fn shown_owner(owner: &str) -> String {
    if owner.is_empty() { "(none)".to_owned() } else { escape(owner.as_bytes()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "host        dhcp    user    moreUsers     # <--- do not edit this line\n";

    fn record(host: &str, owner: &str, action: &str) -> JournalRecord {
        JournalRecord {
            time: "2026-01-02T03:04:05Z".into(),
            host: host.into(),
            owner: owner.into(),
            author: String::new(),
            client_ip: "192.0.2.2".into(),
            os: "linux".into(),
            action: action.into(),
            protocol: 2,
            previous_owner: String::new(),
            admin: String::new(),
            host_keys: Vec::new(),
            previous_host_keys: Vec::new(),
        }
    }

    /// A configuration folder with `hosts` and the journal's `records`.
    fn folder(hosts: &str, records: &[JournalRecord]) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), hosts).unwrap();
        let journal = dir.path().join(journal::JOURNAL_NAME);
        for record in records {
            journal::append(&journal, std::slice::from_ref(record)).unwrap();
        }
        // A child another test forks holds a copy of every descriptor until
        // it execs, BackupPC's lock among them: wait a little for it.
        let sources =
            Sources { conf_dir: dir.path().to_owned(), journal, lock_wait: std::time::Duration::from_secs(2) };
        (dir, sources)
    }

    /// The findings about the files alone (not config.pl).
    fn findings(sources: &Sources) -> Vec<Finding> {
        let hosts = fs::read(sources.hosts_path()).unwrap();
        sources.inspect_files(&hosts).unwrap().findings
    }

    fn own_config(dir: &Path, host: &str) -> PathBuf {
        let path = dir.join(format!("{host}.pl"));
        fs::write(
            &path,
            format!("{}{host}, registered to alice.\n$Conf{{XferMethod}} = 'rsync';\n", hostconfig::HEADER_PREFIX),
        )
        .unwrap();
        path
    }

    #[test]
    fn agreeing_files_give_no_finding() {
        let hosts = format!("# comment\n{HEADER}\nlocalhost 0 backuppc\npc.example.org\t0\talice\n");
        let (dir, sources) = folder(&hosts, &[record("pc.example.org", "alice", "added")]);
        own_config(dir.path(), "pc.example.org");
        let inspection = sources.inspect_files(hosts.as_bytes()).unwrap();
        assert_eq!(inspection.findings, []);
        assert_eq!((inspection.host_lines, inspection.journaled, inspection.own_configs), (2, 1, 1));
    }

    #[test]
    fn a_journaled_host_without_its_line_is_lost() {
        let (dir, sources) = folder(
            &format!("{HEADER}other 0 bob\n"),
            &[
                record("pc.example.org", "alice", "added"),
                record("pc.example.org", "alice", "confirmed"),
                record("gone.example.org", "bob", "added"),
                record("gone.example.org", "bob", "removed"),
                record("moved.example.org", "bob", "added"),
                record("moved.example.org", "carol", "transferred"),
            ],
        );
        own_config(dir.path(), "pc.example.org");
        let found = findings(&sources);
        assert_eq!(
            found,
            [
                Finding::LostLine {
                    host: "moved.example.org".into(),
                    record: record("moved.example.org", "carol", "transferred"),
                    config_present: false,
                },
                Finding::LostLine {
                    host: "pc.example.org".into(),
                    record: record("pc.example.org", "alice", "confirmed"),
                    config_present: true,
                },
            ]
        );
        assert_eq!(
            found[1].describe(),
            "pc.example.org is registered to alice in the journal (confirmed 2026-01-02T03:04:05Z) but has no line \
             in hosts, so BackupPC does not back it up (BackupPC's web host editor drops a host registered while its \
             page is open; or the line was removed by hand)"
        );
        assert!(found[0].describe().contains("back it up and its config file is gone too"), "{}", found[0].describe());
    }

    #[test]
    fn an_action_this_version_does_not_know_is_not_taken_as_registered() {
        let (_dir, sources) = folder(
            HEADER,
            &[record("pc.example.org", "alice", "added"), record("pc.example.org", "alice", "archived")],
        );
        assert_eq!(findings(&sources), []);
    }

    #[test]
    fn a_config_of_ours_without_a_line_is_an_orphan_and_other_files_are_not() {
        let (dir, sources) = folder(&format!("{HEADER}kept.example.org 0 alice\n"), &[]);
        let orphan = own_config(dir.path(), "old.example.org");
        own_config(dir.path(), "kept.example.org");
        fs::write(dir.path().join("seed.example.org.pl"), "$Conf{XferMethod} = 'rsync';\n").unwrap();
        fs::write(dir.path().join("config.pl"), format!("{}config, registered to x.\n", hostconfig::HEADER_PREFIX))
            .unwrap();
        let other = dir.path().join("copied.example.org.pl");
        fs::write(&other, format!("{}old.example.org, registered to alice.\n", hostconfig::HEADER_PREFIX)).unwrap();
        std::os::unix::fs::symlink(&orphan, dir.path().join("link.example.org.pl")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo.example.org.pl"), nix::sys::stat::Mode::from_bits_truncate(0o644))
            .unwrap();
        let found = findings(&sources);
        assert_eq!(found, [Finding::OrphanConfig { host: "old.example.org".into(), path: orphan.clone() }]);
        assert_eq!(
            found[0].describe(),
            format!(
                "{}: written by bpc-register for old.example.org, which has no line in hosts and no registration in \
                 the journal; a line added for old.example.org later would bring its old settings back",
                orphan.display()
            )
        );
    }

    fn own_pins(dir: &Path, host: &str) -> PathBuf {
        let path = dir.join(format!("{host}{}", transaction::PINS_SUFFIX));
        fs::write(&path, format!("{}{host} when it registered.\n{host} ssh-ed25519 AAAA\n", pins::PINS_HEADER_PREFIX))
            .unwrap();
        path
    }

    #[test]
    fn pinned_keys_of_ours_without_a_line_are_an_orphan_and_other_files_are_not() {
        let (dir, sources) = folder(&format!("{HEADER}kept.example.org 0 alice\n"), &[]);
        let orphan = own_pins(dir.path(), "old.example.org");
        own_pins(dir.path(), "kept.example.org");
        fs::write(dir.path().join("seed.example.org.known_hosts"), "seed.example.org ssh-ed25519 AAAA\n").unwrap();
        let copied = dir.path().join("copied.example.org.known_hosts");
        fs::write(&copied, format!("{}old.example.org when it registered.\n", pins::PINS_HEADER_PREFIX)).unwrap();
        std::os::unix::fs::symlink(&orphan, dir.path().join("link.example.org.known_hosts")).unwrap();
        let found = findings(&sources);
        assert_eq!(found, [Finding::OrphanPins { host: "old.example.org".into(), path: orphan.clone() }]);
        assert_eq!(
            found[0].describe(),
            format!(
                "{}: host keys pinned by bpc-register for old.example.org, which has no line in hosts and no \
                 registration in the journal; only old.example.org's config points ssh at them, so they are left over",
                orphan.display()
            )
        );
    }

    #[test]
    fn the_config_and_pinned_keys_of_a_lost_host_are_not_orphans() {
        let (dir, sources) = folder(HEADER, &[record("pc.example.org", "alice", "added")]);
        own_config(dir.path(), "pc.example.org");
        own_pins(dir.path(), "pc.example.org");
        let found = findings(&sources);
        assert!(matches!(found.as_slice(), [Finding::LostLine { config_present: true, .. }]), "{found:?}");
    }

    #[test]
    fn duplicate_lines_name_both_owners_and_who_sees_which() {
        let hosts = format!("{HEADER}pc.example.org 0 alice\nother 0 bob\nPC.example.org 0 mallory\n");
        let (_dir, sources) = folder(&hosts, &[]);
        let found = findings(&sources);
        assert_eq!(
            found,
            [Finding::Duplicate {
                host: "pc.example.org".into(),
                lines: vec![2, 4],
                owners: vec!["alice".into(), "mallory".into()],
                journal_owner: None,
            }]
        );
        assert_eq!(
            found[0].describe(),
            "pc.example.org has 2 lines in hosts, lines 2 (alice), 4 (mallory): BackupPC's daemon and web page see \
             mallory, BackupPC_dump sees alice"
        );
    }

    #[test]
    fn lines_backuppc_skips_and_names_it_mishandles_are_named_by_line() {
        let hosts = format!(
            "{HEADER}  indented 0 alice\nlonely\nr\u{e9}seau 0 bob\nok 0 carol # fine\n\
             a\\ b 0 dave\n.. 0 eve\n-v 0 frank\nconfig 0 grace\n\n# comment\n \t\n"
        );
        let (_dir, sources) = folder(&hosts, &[]);
        let found = findings(&sources);
        let summary: Vec<(usize, String)> = found
            .iter()
            .map(|finding| match finding {
                Finding::IgnoredLine { line, text } => (*line, text.clone()),
                Finding::BadName { line, host, .. } => (*line, host.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                (2, "  indented 0 alice".to_owned()),
                (3, "lonely".to_owned()),
                (4, "r\\xc3\\xa9seau 0 bob".to_owned()),
                (6, "a b".to_owned()),
                (7, "..".to_owned()),
                (8, "-v".to_owned()),
                (9, "config".to_owned()),
            ]
        );
        assert_eq!(
            found[0].describe(),
            "hosts line 2 (`  indented 0 alice`) is skipped by BackupPC: a host line starts in the first column with \
             a name of letters, digits, `_`, `.` or `-`, followed by white space and the other columns"
        );
        assert!(found[3].describe().starts_with("hosts line 6: host `a b` holds white space or a backslash"));
    }

    #[test]
    fn a_host_line_taken_for_the_header_is_named_and_not_lost() {
        let (_dir, sources) = folder(
            "# seed\npc.example.org 0 alice\nother.example.org 0 bob\n",
            &[record("pc.example.org", "alice", "added")],
        );
        let found = findings(&sources);
        assert_eq!(found, [Finding::BadHeader { line: 2, text: "pc.example.org 0 alice".into(), is_host: true }]);
        let (_dir, sources) = folder("host dhcp owner\npc 0 alice\n", &[]);
        assert_eq!(
            findings(&sources),
            [Finding::BadHeader { line: 1, text: "host dhcp owner".into(), is_host: false }]
        );
    }

    #[test]
    fn unreadable_journal_lines_are_named() {
        let (dir, sources) = folder(HEADER, &[]);
        fs::write(&sources.journal, "{\"cut\n").unwrap();
        let found = findings(&sources);
        assert_eq!(found, [Finding::UnreadableJournal { path: sources.journal.clone(), lines: vec![1] }]);
        assert!(
            found[0]
                .describe()
                .starts_with(&format!("{}: line 1 cannot be read", dir.path().join(journal::JOURNAL_NAME).display()))
        );
    }

    #[test]
    fn inspect_reads_config_pl_and_creates_no_lock() {
        let (dir, sources) = folder(HEADER, &[]);
        fs::write(
            dir.path().join("config.pl"),
            "$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit} = { RsyncSshArgs => 1 };\n",
        )
        .unwrap();
        let found = sources.inspect().unwrap().findings;
        assert!(
            matches!(found.as_slice(), [Finding::OwnerEdits(edits)] if edits.dangerous_editable() == ["RsyncSshArgs"]),
            "{found:?}"
        );
        assert!(!dir.path().join("LOCK").exists());
        fs::remove_file(dir.path().join("config.pl")).unwrap();
        let found = sources.inspect().unwrap().findings;
        assert!(
            matches!(found.as_slice(), [Finding::OwnerEditsUnknown(error)] if error.contains("config.pl")),
            "{found:?}"
        );
    }

    #[test]
    fn a_lock_held_elsewhere_is_waited_for_a_bounded_time_then_nothing_changes() {
        let (dir, sources) = folder(HEADER, &[record("pc.example.org", "alice", "added")]);
        let sources = Sources { lock_wait: std::time::Duration::from_millis(300), ..sources };
        let held = File::create(dir.path().join("LOCK")).unwrap();
        held.lock().unwrap();
        let error = sources.inspect().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: BackupPC's lock is held by another program (its web page saving, or a registration) for more \
                 than 0 s; nothing was read or changed, try again",
                dir.path().join("LOCK").display()
            )
        );
        let error = sources.fix(&server_config(dir.path(), "name")).unwrap_err();
        assert!(matches!(error, FixError::Check(CheckError::Busy { .. })), "{error}");
        assert_eq!(hosts_of(&sources), HEADER);
        drop(held);
        assert!(matches!(findings(&sources).as_slice(), [Finding::LostLine { .. }]));
    }

    #[test]
    fn a_hosts_or_lock_that_is_a_link_is_refused() {
        let (dir, sources) = folder(HEADER, &[]);
        fs::write(dir.path().join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 0;\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("LOCK")).unwrap();
        let error = sources.inspect().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: not a regular file; BackupPC's LOCK must be one, and bpc-register follows no link there",
                dir.path().join("LOCK").display()
            )
        );
        fs::remove_file(dir.path().join("LOCK")).unwrap();
        fs::rename(dir.path().join("hosts"), dir.path().join("hosts.real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("hosts.real"), dir.path().join("hosts")).unwrap();
        assert!(matches!(sources.inspect(), Err(CheckError::NotRegular { what: "hosts", .. })));
    }

    /// `server.toml` for a configuration folder at `dir`.
    fn server_config(dir: &Path, connect_to: &str) -> crate::ServerConfig {
        let text = testkit::server_toml::ServerToml::new()
            .backuppc("conf-dir", testkit::server_toml::path(dir))
            .backuppc("connect-to", connect_to)
            .render();
        files::parse_toml(&text, Path::new("/srv/server.toml")).unwrap()
    }

    const SAFE_CONFIG_PL: &str = "$Conf{CgiUserConfigEditEnable} = 0;\n";

    fn fix(sources: &Sources) -> FixReport {
        fs::write(sources.conf_dir.join("config.pl"), SAFE_CONFIG_PL).ok();
        let report = sources.fix(&server_config(&sources.conf_dir, "name")).unwrap();
        assert!(report.failed.is_none(), "{:?}", report.failed);
        report
    }

    fn hosts_of(sources: &Sources) -> String {
        fs::read_to_string(sources.hosts_path()).unwrap()
    }

    #[test]
    fn a_lost_line_comes_back_with_the_journaled_owner_and_a_restored_record() {
        let (dir, sources) = folder(&format!("{HEADER}other 0 bob"), &[record("pc.example.org", "alice", "added")]);
        own_config(dir.path(), "pc.example.org");
        let config_before = fs::read(dir.path().join("pc.example.org.pl")).unwrap();
        let report = fix(&sources);
        assert_eq!(report.inspection.findings.len(), 1);
        assert!(matches!(report.made.as_slice(), [Repair::RestoreLine { write_config: false, .. }]));
        assert_eq!(hosts_of(&sources), format!("{HEADER}other 0 bob\npc.example.org\t0\talice\n"));
        assert_eq!(fs::read(dir.path().join("pc.example.org.pl")).unwrap(), config_before, "its config is kept");
        let records = journal::read(&sources.journal).unwrap().records;
        let last = records.last().unwrap();
        assert_eq!(
            (last.host.as_str(), last.owner.as_str(), last.action.as_str(), last.os.as_str()),
            ("pc.example.org", "alice", "restored", "linux")
        );
        assert_eq!(sources.inspect().unwrap().findings, []);
        assert_eq!(
            report.made[0].describe(true),
            "added pc.example.org back to hosts, owned by alice as the journal says, journaled as `restored`"
        );
    }

    #[test]
    fn a_lost_line_whose_config_is_gone_gets_a_new_config_for_its_owner() {
        let (dir, sources) = folder(HEADER, &[record("pc.example.org", "alice", "added")]);
        fs::write(dir.path().join("config.pl"), SAFE_CONFIG_PL).unwrap();
        let report = sources.fix(&server_config(dir.path(), "address")).unwrap();
        assert!(matches!(report.made.as_slice(), [Repair::RestoreLine { write_config: true, .. }]), "{report:?}");
        let config = fs::read_to_string(dir.path().join("pc.example.org.pl")).unwrap();
        assert!(config.starts_with("# Written by bpc-register for host pc.example.org, registered to alice.\n"));
        assert!(config.contains("$Conf{ClientNameAlias}         = '192.0.2.2';"), "{config}");
        assert_eq!(sources.inspect().unwrap().findings, []);
    }

    #[test]
    fn a_lost_line_without_an_address_for_its_config_is_left() {
        let mut lost = record("pc.example.org", "alice", "added");
        lost.client_ip = "somewhere".into();
        let (dir, sources) = folder(HEADER, &[lost]);
        let config = server_config(dir.path(), "address");
        let steps = plan(&config, &findings(&sources), "2026-01-02T03:04:05Z");
        assert!(matches!(steps.as_slice(), [Step::Leave(reason)] if reason.contains("does not hold")), "{steps:?}");
        let by_name = plan(&server_config(dir.path(), "name"), &findings(&sources), "2026-01-02T03:04:05Z");
        assert!(matches!(by_name.as_slice(), [Step::Repair(Repair::RestoreLine { .. })]), "{by_name:?}");
    }

    #[test]
    fn duplicate_lines_say_whom_the_journal_registers_the_host_to() {
        let hosts = format!("{HEADER}pc.example.org 0 alice\npc.example.org 0 mallory\n");
        let (_dir, sources) = folder(&hosts, &[record("pc.example.org", "alice", "added")]);
        let found = findings(&sources);
        assert!(matches!(&found[..], [Finding::Duplicate { journal_owner: Some(owner), .. }] if owner == "alice"));
        assert!(found[0].describe().ends_with("BackupPC_dump sees alice; the journal registers it to alice"));
    }

    #[test]
    fn duplicates_keep_the_last_line_byte_for_byte() {
        let hosts = format!("{HEADER}pc.example.org 0 alice # first\nother 0 bob\nPC.example.org\t0\tmallory\tx,y\n");
        let (_dir, sources) = folder(&hosts, &[]);
        let report = fix(&sources);
        assert_eq!(report.made, [Repair::KeepLastLine { host: "pc.example.org".into(), owner: "mallory".into() }]);
        assert_eq!(hosts_of(&sources), format!("{HEADER}other 0 bob\nPC.example.org\t0\tmallory\tx,y\n"));
        assert_eq!(
            report.made[0].describe(false),
            "keep only the last line of pc.example.org in hosts, owned by mallory: the owner BackupPC's daemon and \
             web page see"
        );
    }

    #[test]
    fn orphan_pinned_keys_are_moved_aside_with_their_orphan_config() {
        let (dir, sources) = folder(HEADER, &[]);
        let config = own_config(dir.path(), "old.example.org");
        let pins = own_pins(dir.path(), "old.example.org");
        let body = fs::read(&pins).unwrap();
        let report = fix(&sources);
        let [Repair::MoveAside { from: first, .. }, Repair::MoveAside { from, to }] = report.made.as_slice() else {
            panic!("{report:?}")
        };
        assert_eq!((first, from), (&config, &pins));
        assert!(to.display().to_string().starts_with(&format!("{}.orphaned-20", pins.display())), "{to:?}");
        assert!(
            report.made[1].describe(true).ends_with("(only its host's config points ssh at it)"),
            "{}",
            report.made[1].describe(true)
        );
        assert!(!pins.exists() && !config.exists());
        assert_eq!(fs::read(to).unwrap(), body);
        assert_eq!(sources.inspect().unwrap().findings, []);
    }

    #[test]
    fn an_orphan_config_is_moved_aside_and_never_over_another_file() {
        let (dir, sources) = folder(HEADER, &[]);
        let orphan = own_config(dir.path(), "old.example.org");
        let body = fs::read(&orphan).unwrap();
        let report = fix(&sources);
        let [Repair::MoveAside { from, to }] = report.made.as_slice() else { panic!("{report:?}") };
        assert_eq!(from, &orphan);
        assert!(to.display().to_string().starts_with(&format!("{}.orphaned-20", orphan.display())), "{to:?}");
        assert!(!orphan.exists());
        assert_eq!(fs::read(to).unwrap(), body);
        assert_eq!(sources.inspect().unwrap().findings, []);

        let orphan = own_config(dir.path(), "old.example.org");
        // The planned name and the next one taken: the file goes to the one
        // after, and the repair names it.
        let occupied = dir.path().join("occupied");
        fs::write(&occupied, "precious\n").unwrap();
        fs::write(dir.path().join("occupied.1"), "precious too\n").unwrap();
        let mut repair = Repair::MoveAside { from: orphan.clone(), to: occupied.clone() };
        sources.make(&server_config(dir.path(), "name"), &mut repair, &mut Vec::new()).unwrap();
        assert_eq!(repair, Repair::MoveAside { from: orphan.clone(), to: dir.path().join("occupied.2") });
        assert_eq!(fs::read(dir.path().join("occupied.2")).unwrap(), body);
        assert_eq!(fs::read_to_string(&occupied).unwrap(), "precious\n");
        assert_eq!(fs::read_to_string(dir.path().join("occupied.1")).unwrap(), "precious too\n");
        // Every name taken: nothing is replaced and the file stays.
        let orphan = own_config(dir.path(), "old.example.org");
        for n in 2..10 {
            fs::write(dir.path().join(format!("occupied.{n}")), "taken\n").unwrap();
        }
        let mut repair = Repair::MoveAside { from: orphan.clone(), to: occupied.clone() };
        let error = sources.make(&server_config(dir.path(), "name"), &mut repair, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(&error, FixError::Move { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
            "{error}"
        );
        assert_eq!(fs::read_to_string(&occupied).unwrap(), "precious\n");
        assert_eq!(fs::read_to_string(dir.path().join("occupied.9")).unwrap(), "taken\n");
        assert!(orphan.exists());
    }

    #[test]
    fn a_host_taken_for_the_header_gets_the_header_above_it() {
        let (_dir, sources) = folder("# seed\npc.example.org 0 alice\n", &[record("pc.example.org", "alice", "added")]);
        let report = fix(&sources);
        assert_eq!(report.made, [Repair::AddHeader]);
        assert_eq!(hosts_of(&sources), format!("{}# seed\npc.example.org 0 alice\n", crate::registry::HOSTS_HEADER));
        assert_eq!(parse_hosts(hosts_of(&sources).as_bytes()).owner_of("pc.example.org"), Some("alice"));
    }

    #[test]
    fn what_cannot_be_fixed_is_left_and_nothing_changes() {
        let hosts = format!("{HEADER}  indented 0 alice\n-v 0 bob\n");
        let (_dir, sources) = folder(&hosts, &[]);
        fs::write(&sources.journal, "{\"cut\n").unwrap();
        let report = fix(&sources);
        assert_eq!(report.made, []);
        assert_eq!(
            report.left,
            [
                "hosts line 2: correct it by hand, in BackupPC's Hosts page or an editor".to_owned(),
                "hosts line 3: correct it by hand, in BackupPC's Hosts page or an editor".to_owned(),
                format!("{}: look at those lines and repair or remove them by hand", sources.journal.display()),
            ]
        );
        assert_eq!(hosts_of(&sources), hosts);
    }

    #[test]
    fn a_repair_that_fails_leaves_nothing_of_itself_and_stops_the_rest() {
        let (dir, sources) = folder(HEADER, &[record("pc.example.org", "alice", "added")]);
        own_config(dir.path(), "pc.example.org");
        let orphan = own_config(dir.path(), "old.example.org");
        // The journal can be read but not appended to: root appends to no
        // file with other names, anyone else to none it may not write.
        let real = sources.journal.clone();
        fs::hard_link(&real, dir.path().join("journal.other-name")).unwrap();
        if !nix::unistd::geteuid().is_root() {
            fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
        }
        let journal_before = fs::read(&real).unwrap();
        fs::write(dir.path().join("config.pl"), SAFE_CONFIG_PL).unwrap();
        let report = sources.fix(&server_config(dir.path(), "name")).unwrap();
        assert_eq!(report.made, []);
        let Some((Repair::RestoreLine { .. }, FixError::Change(error))) = &report.failed else { panic!("{report:?}") };
        assert_eq!(error.part, transaction::Part::Journal);
        assert_eq!(hosts_of(&sources), HEADER);
        assert_eq!(fs::read(&real).unwrap(), journal_before);
        assert!(orphan.exists(), "the repairs after the failed one were made");
        assert!(!dir.path().join(transaction::UNDO_NAME).exists());
    }

    #[test]
    fn a_change_cut_short_is_reported_and_undone_first() {
        let (dir, sources) = folder(HEADER, &[]);
        fs::write(dir.path().join(transaction::UNDO_NAME), "{\"cut").unwrap();
        let found = findings(&sources);
        assert_eq!(found, [Finding::PendingUndo { path: dir.path().join(transaction::UNDO_NAME) }]);
        let config = server_config(dir.path(), "name");
        assert_eq!(plan(&config, &found, "x"), [Step::Repair(Repair::Recover)]);
        let report = fix(&sources);
        assert!(report.recovered);
        assert_eq!(report.inspection.findings, []);
        assert!(!dir.path().join(transaction::UNDO_NAME).exists());
    }

    const UNSAFE_CONFIG_PL: &str =
        "$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit} = { FullPeriod => 1, RsyncSshArgs => 1 };";

    #[test]
    fn config_pl_gets_the_lines_check_prints_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, sources) = folder(HEADER, &[]);
        let config_pl = dir.path().join("config.pl");
        fs::write(&config_pl, UNSAFE_CONFIG_PL).unwrap();
        fs::set_permissions(&config_pl, fs::Permissions::from_mode(0o664)).unwrap();
        let report = sources.fix(&server_config(dir.path(), "name")).unwrap();
        let lines = vec!["$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 0;".to_owned()];
        assert_eq!(report.made, [Repair::AppendToConfigPl { path: config_pl.clone(), lines }]);
        assert_eq!(
            fs::read_to_string(&config_pl).unwrap(),
            format!(
                "{UNSAFE_CONFIG_PL}\n# Added by bpc-register check --fix: host owners may not change these in the web \
                 page.\n$Conf{{CgiUserConfigEdit}}{{RsyncSshArgs}} = 0;\n"
            )
        );
        assert_eq!(fs::metadata(&config_pl).unwrap().permissions().mode() & 0o777, 0o664);
        let edits = owner_edits::read(dir.path()).unwrap();
        assert!(edits.is_safe() && edits.editable.contains("FullPeriod"));
        assert_eq!(sources.inspect().unwrap().findings, []);
    }

    #[test]
    fn config_pl_that_perl_would_not_read_to_its_end_is_left_as_it_is() {
        let (dir, sources) = folder(HEADER, &[]);
        let config_pl = dir.path().join("config.pl");
        let text = format!("{UNSAFE_CONFIG_PL}\n__END__\n");
        fs::write(&config_pl, &text).unwrap();
        let report = sources.fix(&server_config(dir.path(), "name")).unwrap();
        let Some((Repair::AppendToConfigPl { .. }, error)) = &report.failed else { panic!("{report:?}") };
        assert!(error.to_string().contains("Perl still reads RsyncSshArgs as editable by owners"), "{error}");
        assert_eq!(fs::read_to_string(&config_pl).unwrap(), text);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!names.iter().any(|n| n.to_string_lossy().ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn config_pl_behind_a_link_or_with_two_names_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.pl");
        fs::write(&real, UNSAFE_CONFIG_PL).unwrap();
        let link = dir.path().join("config.pl");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(config_pl_writable(&link).unwrap_err().starts_with("not a regular file"));
        fs::remove_file(&link).unwrap();
        fs::hard_link(&real, &link).unwrap();
        assert_eq!(
            config_pl_writable(&link).unwrap_err(),
            "it has 2 names (hard links), which a new version would part"
        );
        fs::remove_file(&real).unwrap();
        assert_eq!(config_pl_writable(&link), Ok(()));
    }

    #[test]
    fn who_may_write_a_file_follows_its_owner_group_and_mode() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "").unwrap();
        let meta = |mode: u32| {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            fs::metadata(&path).unwrap()
        };
        let (me, my_group) = (nix::unistd::geteuid().as_raw(), fs::metadata(&path).unwrap().gid());
        let other = me.wrapping_add(1);
        // Its owner: the owner's bits alone.
        assert!(may_write(&meta(0o600), me, &[]));
        assert!(!may_write(&meta(0o466), me, &[my_group]));
        // In its group: the group's bits alone.
        assert!(may_write(&meta(0o460), other, &[my_group]));
        assert!(!may_write(&meta(0o646), other, &[my_group]));
        // Anyone else: the others' bits.
        assert!(may_write(&meta(0o442), other, &[]));
        assert!(!may_write(&meta(0o664), other, &[]));
    }

    /// A file of a server folder: chowned to `uid`:`gid`, with `mode`.
    fn give(path: &Path, uid: u32, gid: u32, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid))).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn an_empty_lock_of_roots_is_given_back_and_files_with_data_are_left_to_the_administrator() {
        use std::os::unix::fs::MetadataExt;
        testkit::require!(testkit::require_root_and(&["/usr/bin/setfacl"]).and_then(|()| hard_links_protected()));
        let (dir, sources) = folder(HEADER, &[]);
        let config = server_config(dir.path(), "name");
        // The folder and hosts are nobody's (standing for backuppc); LOCK
        // and the journal were made by root (group root, and the journal
        // holds a line); the settlers' lock is root's but nobody may write
        // it through an access control list.
        let lock = dir.path().join("LOCK");
        let settle = sources.journal.with_file_name(crate::registry::SETTLE_LOCK_NAME);
        fs::write(&lock, "").unwrap();
        fs::write(&sources.journal, "{}\n").unwrap();
        fs::write(&settle, "").unwrap();
        give(&lock, 0, 0, 0o664);
        give(&sources.journal, 0, 0, 0o640);
        give(&settle, 0, 0, 0o644);
        let acl = std::process::Command::new("/usr/bin/setfacl").arg("-m").arg("u:65534:rw").arg(&settle).status();
        assert!(acl.unwrap().success());
        give(&sources.hosts_path(), 65534, 65534, 0o644);
        give(dir.path(), 65534, 65534, 0o755);
        let found = sources.unwritable();
        let paths: Vec<&Path> = found
            .iter()
            .map(|finding| match finding {
                Finding::Unwritable { path, owner: 0, account: 65534, .. } => path.as_path(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(paths, [lock.as_path(), sources.journal.as_path()]);
        assert!(found[0].describe().contains("every registration fails"), "{}", found[0].describe());
        // As root, --fix gives the empty lock back and leaves the journal.
        let steps = plan(&config, &findings(&sources), "2026-01-02T03:04:05Z");
        assert!(matches!(&steps[0], Step::Repair(Repair::GiveBack { path, .. }) if *path == lock), "{steps:?}");
        let journal = sources.journal.display();
        assert_eq!(
            steps[1],
            Step::Leave(format!(
                "{journal}: give it to nobody by hand once `namei -l {journal}` and `ls -l {journal}` show it is the \
                 file you expect, in the folders you expect, with one link: `chown -h nobody {journal}`"
            ))
        );
        let report = sources.fix(&config).unwrap();
        assert!(report.failed.is_none(), "{report:?}");
        let meta = fs::metadata(&lock).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (65534, 0, 0o664), "group and mode kept");
        assert_eq!(fs::metadata(&sources.journal).unwrap().uid(), 0);
        assert_eq!(sources.unwritable().len(), 1);
    }

    /// Where the kernel lets an account hard-link one of root's files, root
    /// gives no lock back at all: the tests of what it gives need it on.
    fn hard_links_protected() -> Result<(), String> {
        match hardlinks_protected(Path::new(PROTECTED_HARDLINKS)) {
            true => Ok(()),
            false => Err("fs.protected_hardlinks is off here: `sysctl fs.protected_hardlinks=1`".into()),
        }
    }

    #[test]
    fn no_lock_of_roots_is_given_away_through_a_link_in_the_path() {
        use std::os::unix::fs::MetadataExt;
        testkit::require!(testkit::require_root_and(&[]).and_then(|()| hard_links_protected()));
        let (dir, mut sources) = folder(HEADER, &[]);
        let config = server_config(dir.path(), "name");
        give(&sources.hosts_path(), 65534, 65534, 0o644);
        give(dir.path(), 65534, 65534, 0o755);
        // The journal is under a folder of the account's, which put a link
        // to a folder of root's where the journal's folder was.
        let top = tempfile::tempdir().unwrap();
        give(top.path(), 65534, 65534, 0o755);
        let roots = tempfile::tempdir().unwrap();
        let victim = roots.path().join(crate::registry::SETTLE_LOCK_NAME);
        fs::write(&victim, "").unwrap();
        std::os::unix::fs::symlink(roots.path(), top.path().join("enroll")).unwrap();
        sources.journal = top.path().join("enroll/registrations.jsonl");
        let settle = sources.journal.with_file_name(crate::registry::SETTLE_LOCK_NAME);
        let steps = plan(&config, &findings(&sources), "2026-01-02T03:04:05Z");
        assert!(matches!(&steps[..], [Step::Leave(reason)] if reason.contains("namei -l")), "{steps:?}");
        let report = sources.fix(&config).unwrap();
        assert!(report.made.is_empty() && report.failed.is_none(), "{report:?}");
        // Nor when the link comes between the plan and the repair.
        let examined = fs::metadata(&victim).unwrap();
        let error = give_back(&settle, 65534, (examined.dev(), examined.ino())).unwrap_err();
        assert!(error.to_string().contains("its folder is not the account's"), "{error}");
        assert_eq!(fs::metadata(&victim).unwrap().uid(), 0, "root's file elsewhere was given away");
    }

    #[test]
    fn root_gives_away_no_second_name_and_no_file_but_the_one_examined() {
        use std::os::unix::fs::MetadataExt;
        testkit::require!(testkit::require_root_and(&[]).and_then(|()| hard_links_protected()));
        let (dir, sources) = folder(HEADER, &[]);
        let config = server_config(dir.path(), "name");
        give(dir.path(), 65534, 65534, 0o755);
        // The settlers' lock is a second name of an empty file of root's
        // elsewhere (as one planted where hard links are not protected).
        let victim = tempfile::NamedTempFile::new().unwrap();
        let settle = sources.journal.with_file_name(crate::registry::SETTLE_LOCK_NAME);
        fs::hard_link(victim.path(), &settle).unwrap();
        let report = sources.fix(&config).unwrap();
        let failed = report.failed.map(|(_, error)| error.to_string()).unwrap_or_default();
        assert!(failed.contains("other names"), "{failed}");
        assert_eq!(fs::metadata(victim.path()).unwrap().uid(), 0, "root's file was given away");
        // A file put in place of the one examined is not given away.
        fs::remove_file(&settle).unwrap();
        fs::write(&settle, "").unwrap();
        let examined = fs::metadata(&settle).unwrap();
        fs::rename(&settle, dir.path().join("kept")).unwrap();
        fs::write(&settle, "").unwrap();
        let error = give_back(&settle, 65534, (examined.dev(), examined.ino())).unwrap_err();
        assert!(error.to_string().contains("not the file examined"), "{error}");
        assert_eq!(fs::metadata(&settle).unwrap().uid(), 0);
        // Nor is a FIFO put there opened.
        fs::remove_file(&settle).unwrap();
        nix::unistd::mkfifo(&settle, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo = fs::metadata(&settle).unwrap();
        assert!(give_back(&settle, 65534, (fifo.dev(), fifo.ino())).is_err());
    }

    #[test]
    fn root_gives_back_only_an_empty_writable_lock_of_its_own_where_hard_links_are_protected() {
        let lock = |owner: u32, size: u64, mode: u32| Finding::Unwritable {
            path: PathBuf::from("/srv/backuppc/LOCK"),
            what: "BackupPC's lock",
            lock: true,
            owner,
            account: 65534,
            identity: (1, 2),
            size,
            mode,
            folder_owner: Some(65534),
        };
        let gives =
            |step: Step| matches!(step, Step::Repair(Repair::GiveBack { account: 65534, identity: (1, 2), .. }));
        assert!(gives(give_back_step(&lock(0, 0, 0o644), true, true)));
        let left = |finding: &Finding, root: bool, protected: bool| match give_back_step(finding, root, protected) {
            Step::Leave(reason) => reason,
            step => panic!("{step:?}"),
        };
        assert!(left(&lock(0, 0, 0o644), true, false).contains("fs.protected_hardlinks is off"));
        assert!(left(&lock(0, 0, 0o644), false, true).contains("run `check --fix --yes` as root"));
        assert!(left(&lock(0, 1, 0o644), true, true).contains("`chown -h nobody /srv/backuppc/LOCK`"));
        assert!(left(&lock(1000, 0, 0o644), true, true).contains("by hand"));
        assert!(left(&lock(0, 0, 0o444), true, true).contains("`chmod u+w /srv/backuppc/LOCK`"));
        let in_roots_folder = match lock(0, 0, 0o644) {
            Finding::Unwritable { folder_owner: _, path, what, lock, owner, account, identity, size, mode } => {
                Finding::Unwritable { path, what, lock, owner, account, identity, size, mode, folder_owner: Some(0) }
            }
            other => other,
        };
        assert!(left(&in_roots_folder, true, true).contains("`namei -l /srv/backuppc/LOCK`"));
        let odd = Finding::Unwritable {
            path: PathBuf::from("/srv/back up/LOCK"),
            what: "BackupPC's lock",
            lock: true,
            owner: 0,
            account: 4242,
            identity: (1, 2),
            size: 1,
            mode: 0o644,
            folder_owner: Some(4242),
        };
        assert!(left(&odd, true, true).ends_with("`chown -h 4242 '/srv/back up/LOCK'`"), "{}", left(&odd, true, true));
        assert_eq!(
            left(&lock(65534, 0, 0o444), true, true),
            "/srv/backuppc/LOCK: its owner may not write it: `chmod u+w /srv/backuppc/LOCK`"
        );
    }

    #[test]
    fn every_finding_has_a_step_in_the_planned_order() {
        let (dir, sources) = folder(
            &format!("# seed\nfirst 0 x\n{HEADER}lonely\npc 0 alice\npc 0 bob\n"),
            &[record("lost.example.org", "carol", "added")],
        );
        let orphan = own_config(dir.path(), "old.example.org");
        let config = server_config(dir.path(), "name");
        let found = findings(&sources);
        let steps = plan(&config, &found, "2026-01-02T03:04:05Z");
        let kinds: Vec<String> = steps
            .iter()
            .map(|step| match step {
                Step::Repair(repair) => repair.describe(false).split(' ').next().unwrap().to_owned(),
                Step::Leave(reason) => format!("leave {reason}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "put",
                "leave hosts line 4: correct it by hand, in BackupPC's Hosts page or an editor",
                "keep",
                "add",
                "move"
            ],
            "{found:?}"
        );
        assert_eq!(
            steps.last(),
            Some(&Step::Repair(Repair::MoveAside {
                from: orphan.clone(),
                to: PathBuf::from(format!("{}.orphaned-20260102T030405Z", orphan.display())),
            }))
        );
    }
}
