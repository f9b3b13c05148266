//! Registrations that arrive together, committed together.
//!
//! sshd starts one forced command per request, so registrations arriving at
//! the same moment are separate processes waiting, one after the other, for
//! BackupPC's `LOCK`; each would then pay the flushes of a whole change on
//! its own. Instead each puts its registration in a queue before it waits: a
//! file `NANOS-PID-N.req` in the folder `bpc-enroll-queue` beside the journal
//! (made 0700 by the account that registers), which it keeps locked
//! (`flock`) for as long as it waits. The process that gets `LOCK` commits
//! its own registration and those of the waiting processes in one change
//! ([`crate::transaction`]: one journal write, one append to `hosts`, one
//! new file per config and keys, one undo record), then leaves
//! `NANOS-PID-N.done` beside each request it committed. A waiting process
//! that gets `LOCK` and finds its `.done` answers at once; one that does not
//! commits its own (and any others waiting) as before.
//!
//! Only what is known never to conflict goes with another: a new host
//! (no line in `hosts`, no config, no pinned keys), into a `hosts` that has
//! its header, each host once. Anything else (a host registered already,
//! to its owner or another, a re-registration, a `hosts` to rewrite) is
//! left to its own process, which decides it alone under the lock as
//! always, as is one for another `conf-dir` or journal (two servers whose
//! journals share a folder share the queue). A request whose file is no
//! longer locked belongs to a process that is gone: it is removed, never
//! committed. A process that finds `LOCK` free writes no request. Every request is read
//! again, checked and decided under the lock, as the process's own would
//! be; the queue is the account's alone, as `hosts` is. Root never uses it.
//!
//! The queue costs no flush: a request lost in a crash was never answered.

use crate::journal::JournalRecord;
use protocol::{HostName, Logon};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The queue's folder, beside the journal. Requests are named
/// `NANOS-PID-N.req` (the time, zero-padded, so that names sort in the
/// order the requests came), their marks `NANOS-PID-N.done`.
pub const QUEUE_NAME: &str = "bpc-enroll-queue";

/// The most registrations of other processes one change takes with its own.
pub const MOST_OTHERS: usize = 31;

/// The largest request read back: a config of a few KiB and a few keys.
const MOST_REQUEST_BYTES: u64 = 1024 * 1024;

/// A new host as the queue holds it: what a change needs to add it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Queued {
    /// The host's name.
    pub host: String,
    /// Its owner, the `user` column of its line.
    pub owner: String,
    /// The body of its config.
    pub host_config: String,
    /// The body of its pinned keys' file, when it sent keys.
    pub pins: Option<String>,
    /// Its journal record (action `added`).
    pub record: JournalRecord,
    /// The BackupPC folder and the journal it is for: two servers whose
    /// journals share a folder share the queue, and each takes only its own.
    pub conf_dir: PathBuf,
    /// See `conf_dir`.
    pub journal: PathBuf,
}

impl Queued {
    /// Whether the request says what a registration of this server would:
    /// names that parse as themselves, a record of the same host and owner
    /// that adds it.
    fn is_well_formed(&self) -> bool {
        HostName::parse(&self.host).is_ok_and(|host| host.as_str() == self.host)
            && Logon::parse(&self.owner).is_ok_and(|owner| owner.as_str() == self.owner)
            && self.record.host == self.host
            && self.record.owner == self.owner
            && self.record.action == "added"
    }
}

/// The queue, in the folder `dir`.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

impl Queue {
    /// The queue beside `journal`; `None` for root. Nothing is made or
    /// read until a registration has to wait (a status request writes
    /// nothing).
    pub fn beside(journal: &Path) -> Option<Queue> {
        (!nix::unistd::geteuid().is_root()).then(|| Queue { dir: journal.with_file_name(QUEUE_NAME) })
    }

    /// Whether the queue's folder is this account's alone (made first when
    /// `make`): not a link, no other owner, written by no one else.
    /// Otherwise registrations go alone.
    fn usable(&self, make: bool) -> bool {
        if make {
            match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(_) => return false,
            }
        }
        fs::symlink_metadata(&self.dir).is_ok_and(|meta| {
            meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0
        })
    }

    /// The queue in `dir`, made when missing, whoever runs it.
    #[cfg(test)]
    pub fn at(dir: &Path) -> Queue {
        let _ = fs::DirBuilder::new().mode(0o700).create(dir);
        Queue { dir: dir.to_owned() }
    }

    /// Puts `queued` in the queue; the returned request stays locked, and
    /// in the queue, until it is dropped.
    pub fn enqueue(&self, queued: &Queued) -> io::Result<Waiting> {
        if !self.usable(true) {
            return Err(io::Error::other("the queue's folder is not this account's alone"));
        }
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // In the order they come when sorted as text.
        let stem = format!("{nanos:039}-{}-{count}", std::process::id());
        let temp = self.dir.join(format!(".{stem}.new"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp)?;
        // Locked before it is written: a holder never takes a request
        // being written for one whose process is gone.
        let written = file
            .try_lock()
            .map_err(io::Error::from)
            .and_then(|()| serde_json::to_vec(queued).map_err(io::Error::other))
            .and_then(|bytes| file.write_all(&bytes))
            .and_then(|()| fs::rename(&temp, self.dir.join(format!("{stem}.req"))));
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err(error);
        }
        Ok(Waiting { queue: self.clone(), stem, _file: file })
    }

    /// Up to `most` requests of other processes still waiting and not yet
    /// committed, besides `own` (this process's, if it waited), well formed
    /// and `for_us`; requests left by processes that are gone are removed.
    /// The caller holds BackupPC's lock.
    pub fn others(&self, own: Option<&Waiting>, most: usize, for_us: impl Fn(&Queued) -> bool) -> Vec<Other> {
        if !self.usable(false) {
            return Vec::new();
        }
        let Ok(entries) = fs::read_dir(&self.dir) else { return Vec::new() };
        // In the order they came (their names start with the time), so
        // that the journal says the same whatever the folder.
        let mut entries: Vec<fs::DirEntry> = entries.flatten().collect();
        entries.sort_by_key(fs::DirEntry::file_name);
        let mut others = Vec::new();
        for entry in entries {
            if others.len() >= most {
                break;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // A request a process was killed writing.
            if name.starts_with('.') && name.ends_with(".new") {
                if files::open_regular(&entry.path(), OpenOptions::new().read(true))
                    .is_ok_and(|file| file.try_lock().is_ok())
                {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            // A mark whose request is gone: its process was done with it.
            if let Some(stem) = name.strip_suffix(".done") {
                if !self.dir.join(format!("{stem}.req")).exists() {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            let Some(stem) = name.strip_suffix(".req") else { continue };
            if own.is_some_and(|own| own.stem == stem) {
                continue;
            }
            let Ok(mut file) = files::open_regular(&entry.path(), OpenOptions::new().read(true)) else { continue };
            match file.try_lock() {
                // Nobody waits for it any more: never made, or made and
                // its process gone before it read its mark.
                Ok(()) => {
                    let _ = fs::remove_file(entry.path());
                    let _ = fs::remove_file(self.done_path(stem));
                    continue;
                }
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(_)) => continue,
            }
            // Made; its process answers once it has the lock.
            if self.done_path(stem).exists() {
                continue;
            }
            let mut bytes = Vec::new();
            if Read::by_ref(&mut file).take(MOST_REQUEST_BYTES).read_to_end(&mut bytes).is_err() {
                continue;
            }
            match serde_json::from_slice::<Queued>(&bytes) {
                Ok(queued) if queued.is_well_formed() && for_us(&queued) => {
                    others.push(Other { stem: stem.to_owned(), queued });
                }
                _ => {}
            }
        }
        others
    }

    /// Says to the process waiting on `other` that its registration is
    /// made. A mark that cannot be left costs that process a re-registration
    /// of its host, which it then finds made.
    pub fn mark_done(&self, other: &Other) {
        let _ = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.done_path(&other.stem));
    }

    fn done_path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}.done"))
    }
}

/// A request of another process, read under BackupPC's lock.
#[derive(Debug)]
pub struct Other {
    stem: String,
    /// What it asks.
    pub queued: Queued,
}

/// This process's request, in the queue and locked while it lives.
#[derive(Debug)]
pub struct Waiting {
    queue: Queue,
    stem: String,
    _file: File,
}

impl Waiting {
    /// Whether another process committed this registration.
    pub fn is_done(&self) -> bool {
        fs::symlink_metadata(self.queue.done_path(&self.stem)).is_ok()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.queue.dir.join(format!("{}.req", self.stem)));
        let _ = fs::remove_file(self.queue.done_path(&self.stem));
    }
}
