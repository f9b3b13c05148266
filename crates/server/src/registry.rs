//! Registering a host in BackupPC: the `hosts` line and the per-host config.

use crate::hosts_mtime::{self, Settled};
use crate::hosts_scan::{self, HostLookup, is_space};
use crate::journal::{self, JOURNAL_NAME, JournalRecord};
use crate::pins;
use crate::transaction::{self, Change, Part};
use protocol::hostkeys::HostKey;
use protocol::{HostName, Logon, Refusal};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::SystemTime;

mod group;
mod hosts_edit;
pub use group::QUEUE_NAME;
pub use hosts_edit::{ChangedLine, EditError, HostsEdit, HostsEditor, LineChange};

/// What a per-host config that trusts the host key seen at the first
/// backup says: one written for a host that sent no keys.
const UNPINNED: &[u8] = b"StrictHostKeyChecking=accept-new";

/// The most of a per-host config read back: bpc-register writes a few KiB.
const MAX_HOST_CONFIG: u64 = 1024 * 1024;

/// The header BackupPC expects as the first non-comment line of `hosts`.
pub const HOSTS_HEADER: &str = "host\tdhcp\tuser\tmoreUsers\n";

/// Where registrations are kept: BackupPC's configuration folder in
/// production, a fake in unit tests.
pub trait Registry {
    /// Registers `registration.host` to `registration.owner`, or confirms an
    /// earlier registration to the same owner. Either everything is written
    /// or nothing is.
    fn register(&self, registration: &Registration) -> Result<Outcome, RegistryError>;

    /// The user `host` is registered to, if it is registered.
    fn owner_of(&self, host: &HostName) -> Result<Option<String>, RegistryError>;

    /// Whether a change this registry made shares its second with the one
    /// before, so that BackupPC may not see it until [`Registry::settle`]
    /// has run (see [`crate::hosts_mtime`]).
    fn settle_owed(&self) -> bool {
        false
    }

    /// Waits for the clock to pass the last change's second and moves the
    /// mtime of `hosts` on; `true` when BackupPC must now be told to reload.
    fn settle(&self) -> Result<bool, RegistryError> {
        Ok(false)
    }

    /// The SSH host keys pinned for `host`, `None` when none are.
    fn pinned_keys(&self, host: &HostName) -> Result<Option<Vec<HostKey>>, RegistryError>;
}

/// One host to register.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The BackupPC host name.
    pub host: HostName,
    /// The user the host belongs to (the `user` column of `hosts`).
    pub owner: Logon,
    /// The body of the per-host config file.
    pub host_config: String,
    /// Who authenticated for this registration (empty without a challenge).
    pub author: Option<Logon>,
    /// Where the request came from.
    pub client_ip: std::net::IpAddr,
    /// The OS type the client sent.
    pub os: String,
    /// The protocol version the client spoke.
    pub protocol: u32,
    /// The client's own SSH host keys, to pin; empty when it sent none
    /// (an older client), which leaves any keys pinned earlier as they are.
    pub host_keys: Vec<HostKey>,
}

/// What a successful registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The host was new: its line, its config and its pinned keys were written.
    Added,
    /// The host was already registered to the same owner; nothing in `hosts`
    /// changed, and the per-host config was kept (or rewritten if missing).
    AlreadyRegistered,
    /// The host was already registered to the same owner, and the host keys
    /// it sent replaced the pinned ones (whose fingerprints are given; none
    /// when it had none pinned).
    Repinned {
        /// The SHA256 fingerprints pinned before.
        previous: Vec<String>,
    },
}

/// Why a registration was not made.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The host is registered to somebody else.
    #[error("host {host} is already registered to {owner}")]
    OwnedByOther {
        /// The host asked for.
        host: HostName,
        /// The `user` column of its line.
        owner: String,
    },
    /// The hosts file or its lock could not be read or written.
    #[error("{path}: cannot {action}: {source}")]
    Hosts {
        /// The file at fault.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The system's reason.
        source: io::Error,
    },
    /// The journal of registrations could not be written.
    #[error("{path}: cannot append to the journal: {source}")]
    Journal {
        /// The journal.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The per-host config could not be read back or written.
    #[error("{path}: cannot read or write the host's config: {source}")]
    HostConfig {
        /// The config file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The host's pinned keys could not be read or written.
    #[error("{path}: cannot write the host's pinned SSH host keys: {source}")]
    Pins {
        /// The pinned-keys file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
}

impl RegistryError {
    /// The answer the client gets for this error.
    pub fn refusal(&self) -> Refusal {
        match self {
            RegistryError::OwnedByOther { .. } => Refusal::ReRegisterRefused,
            RegistryError::Hosts { .. } | RegistryError::Journal { .. } => Refusal::CouldNotRegister,
            RegistryError::HostConfig { .. } | RegistryError::Pins { .. } => Refusal::CouldNotGenerateConfig,
        }
    }
}

/// BackupPC 4's configuration folder (`/etc/backuppc` on Debian): `hosts`,
/// `LOCK` and one `HOST.pl` per host.
#[derive(Debug, Clone)]
pub struct BackupPcRegistry {
    conf_dir: PathBuf,
    journal: PathBuf,
    settle_owed: std::cell::Cell<bool>,
    queue: Option<group::Queue>,
}

/// The settlers' lock file, beside the journal (see [`crate::hosts_mtime`]).
pub const SETTLE_LOCK_NAME: &str = "bpc-enroll-settle.lock";

/// One host line of BackupPC's `hosts` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLine {
    /// The host name, lowercased as BackupPC compares it.
    pub host: String,
    /// The `user` column.
    pub user: String,
}

impl BackupPcRegistry {
    /// A registry writing in `conf_dir`, with its journal in the same folder.
    pub fn new(conf_dir: impl Into<PathBuf>) -> BackupPcRegistry {
        let conf_dir = conf_dir.into();
        let journal = conf_dir.join(JOURNAL_NAME);
        BackupPcRegistry { conf_dir, journal, settle_owed: std::cell::Cell::new(false), queue: None }
    }

    /// The same registry committing the new hosts of registrations that
    /// wait for BackupPC's lock at the same time together (see
    /// [`group`]); not for root, nor when the queue's folder beside the
    /// journal is not this account's alone.
    pub fn grouped(mut self) -> BackupPcRegistry {
        self.queue = group::Queue::beside(&self.journal);
        self
    }

    /// The same registry grouping through the queue in `dir`, whoever runs it.
    #[cfg(test)]
    fn grouped_at(mut self, dir: &std::path::Path) -> BackupPcRegistry {
        self.queue = Some(group::Queue::at(dir));
        self
    }

    /// The same registry with its journal at `journal`.
    pub fn with_journal(mut self, journal: impl Into<PathBuf>) -> BackupPcRegistry {
        self.journal = journal.into();
        self
    }

    /// The journal of registrations.
    pub fn journal_path(&self) -> &std::path::Path {
        &self.journal
    }

    /// The journal's record of `registration` with `action`.
    fn journal_record(registration: &Registration, action: &str) -> JournalRecord {
        JournalRecord {
            time: journal::now(),
            host: registration.host.to_string(),
            owner: registration.owner.to_string(),
            author: registration.author.as_ref().map(ToString::to_string).unwrap_or_default(),
            client_ip: registration.client_ip.to_canonical().to_string(),
            os: registration.os.clone(),
            action: action.to_owned(),
            protocol: registration.protocol,
            previous_owner: String::new(),
            admin: String::new(),
            host_keys: pins::fingerprints(&registration.host_keys),
            previous_host_keys: Vec::new(),
        }
    }

    /// Makes `change` whole or not at all (see [`transaction`]).
    pub(crate) fn apply(&self, change: &Change<'_>) -> Result<(), RegistryError> {
        transaction::apply(&self.conf_dir, &self.journal, change).map_err(|error| match error.part {
            Part::Hosts => RegistryError::Hosts { path: error.path, action: "write", source: error.source },
            Part::Config => RegistryError::HostConfig { path: error.path, source: error.source },
            Part::Pins => RegistryError::Pins { path: error.path, source: error.source },
            Part::Journal => RegistryError::Journal { path: error.path, source: error.source },
        })
    }

    /// Takes BackupPC's lock and undoes any change a killed process left
    /// half-made, so that what is read next is whole.
    fn lock_and_recover(&self) -> Result<File, RegistryError> {
        let lock = self.lock()?;
        self.recover()?;
        Ok(lock)
    }

    /// Moves the new `hosts`'s mtime on as [`hosts_mtime::after_change`]
    /// says, given the previous version's; when the change shares its
    /// second with an earlier one (or the mtime cannot be set), a settle is
    /// owed (see [`crate::Server::settle`]).
    pub(crate) fn after_change(&self, previous_mtime: Option<SystemTime>) {
        match hosts_mtime::after_change(&self.hosts_path(), previous_mtime) {
            Ok(hosts_mtime::Change::Seen) => {}
            Ok(hosts_mtime::Change::Unsettled) | Err(_) => self.settle_owed.set(true),
        }
    }

    /// Undoes any change a killed process left half-made; the caller holds
    /// the lock.
    pub(crate) fn recover(&self) -> Result<bool, RegistryError> {
        transaction::recover(&self.conf_dir, &self.journal).map_err(|source| RegistryError::Hosts {
            path: self.conf_dir.join(transaction::UNDO_NAME),
            action: "undo an interrupted change",
            source,
        })
    }

    /// The `hosts` file.
    pub fn hosts_path(&self) -> PathBuf {
        self.conf_dir.join("hosts")
    }

    /// The per-host config file of `host`.
    pub fn host_config_path(&self, host: &HostName) -> PathBuf {
        self.conf_dir.join(format!("{host}.pl"))
    }

    /// The file of `host`'s pinned SSH host keys.
    pub fn pins_path(&self, host: &HostName) -> PathBuf {
        pins::pins_path(&self.conf_dir, host)
    }

    /// The host keys pinned for `host`, read as the caller holds the lock.
    fn read_pinned_keys(&self, host: &HostName) -> Result<Option<Vec<HostKey>>, RegistryError> {
        let path = self.pins_path(host);
        pins::read_pins(&path).map_err(|source| RegistryError::Pins { path, source })
    }

    /// Takes BackupPC's own lock, the one its CGI holds while it rewrites
    /// `hosts`; it is released when the returned file is closed.
    ///
    /// The folder belongs to `backuppc`, and bpc-register may run as root (an
    /// administrator, or an in-process `file://` setup): a link planted at
    /// `LOCK` is never followed, so root creates or opens nothing elsewhere,
    /// and anything but a regular file (a FIFO would block the open, a device
    /// would be opened) is refused.
    fn lock(&self) -> Result<File, RegistryError> {
        let file = self.open_lock_for_writing()?;
        file.lock().map_err(|e| self.lock_error("take the lock", e))?;
        Ok(file)
    }

    /// `LOCK` opened (created when missing) for an exclusive lock, not yet
    /// locked. When root creates it in a folder someone else owns, it is
    /// given to that owner: BackupPC and the forced command open it too
    /// ([`crate::shared_file`]).
    fn open_lock_for_writing(&self) -> Result<File, RegistryError> {
        let file = crate::shared_file::open(&self.lock_path(), OpenOptions::new().write(true), 0o644)
            .map_err(|e| self.lock_error("open the lock", e))?;
        self.regular_lock(file)
    }

    /// Shares BackupPC's lock for a read: waits while the CGI rewrites
    /// `hosts` (it renames files in turn, and for an instant there is no
    /// `hosts`) or a registration writes. Opened read-only and never
    /// created, with the same care as [`Self::lock`]: a read changes
    /// nothing in the folder. `None` when there is no `LOCK`, which the
    /// first writer makes.
    fn lock_shared(&self) -> Result<Option<File>, RegistryError> {
        match self.open_lock(OpenOptions::new().read(true)) {
            Ok(file) => {
                file.lock_shared().map_err(|e| self.lock_error("take the lock", e))?;
                Ok(Some(file))
            }
            Err(RegistryError::Hosts { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Opens `LOCK` with `options`, never through a link, never blocking
    /// on a FIFO, and only if it is a regular file.
    fn open_lock(&self, options: &mut OpenOptions) -> Result<File, RegistryError> {
        let flags = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK;
        let file =
            options.custom_flags(flags).open(self.lock_path()).map_err(|e| self.lock_error("open the lock", e))?;
        self.regular_lock(file)
    }

    /// `file`, opened as `LOCK`, when it is a regular file.
    fn regular_lock(&self, file: File) -> Result<File, RegistryError> {
        let file_type = file.metadata().map_err(|e| self.lock_error("examine the lock", e))?.file_type();
        if !file_type.is_file() {
            let source = io::Error::other("not a regular file; BackupPC's LOCK must be one");
            return Err(self.lock_error("use the lock", source));
        }
        Ok(file)
    }

    fn lock_path(&self) -> PathBuf {
        self.conf_dir.join("LOCK")
    }

    fn lock_error(&self, action: &'static str, source: io::Error) -> RegistryError {
        RegistryError::Hosts { path: self.lock_path(), action, source }
    }

    /// The settlers' lock file, opened as carefully as `LOCK`.
    fn settle_lock(&self) -> Result<File, RegistryError> {
        open_lock_file(&self.journal.with_file_name(SETTLE_LOCK_NAME), "the settlers' lock")
    }

    /// Opens `hosts` (`None` when it does not exist yet) and finds `host`'s
    /// lines in it as the file streams by, holding none of it in memory.
    fn find_host(&self, host: &HostName) -> Result<(Option<File>, HostLookup), RegistryError> {
        let (file, mut lookups) = self.find_hosts(&[host.as_str()])?;
        Ok((file, lookups.pop().unwrap_or_default()))
    }

    /// [`Self::find_host`] for several hosts in one reading: a lookup each,
    /// in the order given.
    fn find_hosts(&self, hosts: &[&str]) -> Result<(Option<File>, Vec<HostLookup>), RegistryError> {
        let path = self.hosts_path();
        let fail = |source| RegistryError::Hosts { path: path.clone(), action: "read", source };
        // Never through a link put in its place (its bytes would be copied
        // into the new `hosts`), nor a FIFO that would hold BackupPC's lock.
        let mut file = match files::open_regular(&path, fs::OpenOptions::new().read(true)) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok((None, hosts_scan::find_hosts(io::empty(), hosts).map_err(fail)?));
            }
            Err(source) => return Err(fail(source)),
        };
        // A buffer no larger than the file: a small `hosts` costs no heap
        // growth and shrinking at every registration.
        let len = file.metadata().map_or(0, |meta| meta.len());
        let capacity = usize::try_from(len).unwrap_or(usize::MAX).clamp(4096, 64 * 1024);
        let reader = io::BufReader::with_capacity(capacity, &mut file);
        let lookups = hosts_scan::find_hosts(reader, hosts).map_err(fail)?;
        Ok((Some(file), lookups))
    }

    /// Adds the host's line to `hosts` (`found` says under which header,
    /// and whether BackupPC's must be put in front): appended in place to a
    /// file that has its header, else in a new version that copies the open
    /// file after the header; and writes its config and journal record.
    fn add(&self, registration: &Registration, hosts: Option<File>, found: &HostLookup) -> Result<(), RegistryError> {
        let header = &found.header;
        // Everything is prepared first; then the journal, the config and
        // `hosts` change together, and any failure undoes the ones before.
        let hosts_path = self.hosts_path();
        let config_path = self.host_config_path(&registration.host);
        let line = host_line(header, &registration.host, &registration.owner).ok_or_else(|| RegistryError::Hosts {
            path: hosts_path.clone(),
            action: "add a line under its header",
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the header `{}` does not start with host, dhcp, user", header.join(" ")),
            ),
        })?;
        // A file with its header gets the line appended in place; one
        // without (or no file) is written anew with BackupPC's in front.
        let mut appended = Vec::new();
        if hosts.is_some() && !found.header_missing {
            if !found.empty && !found.ends_with_newline {
                appended.push(b'\n');
            }
            appended.extend_from_slice(line.as_bytes());
        }
        let write_hosts = |out: &mut File| -> io::Result<()> {
            if found.header_missing {
                out.write_all(HOSTS_HEADER.as_bytes())?;
            }
            if let Some(mut old) = hosts.as_ref() {
                old.seek(io::SeekFrom::Start(0))?;
                io::copy(&mut old, out)?;
            }
            if !found.empty && !found.ends_with_newline {
                out.write_all(b"\n")?;
            }
            out.write_all(line.as_bytes())
        };
        let record = Self::journal_record(registration, "added");
        let previous_mtime = fs::metadata(&hosts_path).and_then(|m| m.modified()).ok();
        // A file of pinned keys left by an earlier registration of the host
        // goes: only what this one sent is trusted.
        let pins_path = self.pins_path(&registration.host);
        let pins =
            (!registration.host_keys.is_empty()).then(|| pins::pins_body(&registration.host, &registration.host_keys));
        let append = !appended.is_empty();
        self.apply(&Change {
            hosts_written_by: (!append).then_some(&write_hosts as &transaction::WriteHosts<'_>),
            hosts_appended: append.then_some(appended.as_slice()),
            config: Some((&config_path, Some(registration.host_config.as_bytes()))),
            pins: Some((&pins_path, pins.as_deref().map(str::as_bytes))),
            record: Some(&record),
            ..Change::default()
        })?;
        self.after_change(previous_mtime);
        Ok(())
    }

    /// Confirms the registration of a host already registered to the same
    /// owner: its config is written when missing, and the keys it sent (if
    /// any) replace those pinned, with the config of a host that had none
    /// pinned (written as `accept-new`) rewritten to trust them alone.
    fn confirm(&self, registration: &Registration) -> Result<Outcome, RegistryError> {
        let mut record = Self::journal_record(registration, "confirmed");
        let config_path = self.host_config_path(&registration.host);
        let pins_path = self.pins_path(&registration.host);
        let config = read_host_config(&config_path)
            .map_err(|source| RegistryError::HostConfig { path: config_path.clone(), source })?;
        let new_pins = pins::pins_body(&registration.host, &registration.host_keys);
        let pinned = self.read_pinned_keys(&registration.host)?;
        let repin = !registration.host_keys.is_empty() && pinned.as_ref() != Some(&registration.host_keys);
        let unpinned_config =
            config.as_ref().is_some_and(|bytes| bytes.windows(UNPINNED.len()).any(|window| window == UNPINNED));
        let write_config = config.is_none() || (repin && unpinned_config);
        let previous = pinned.as_deref().map(pins::fingerprints).unwrap_or_default();
        if repin {
            record.previous_host_keys = previous.clone();
        } else {
            record.host_keys = Vec::new();
        }
        self.apply(&Change {
            config: write_config.then_some((config_path.as_path(), Some(registration.host_config.as_bytes()))),
            pins: repin.then_some((pins_path.as_path(), Some(new_pins.as_bytes()))),
            record: Some(&record),
            ..Change::default()
        })?;
        Ok(if repin { Outcome::Repinned { previous } } else { Outcome::AlreadyRegistered })
    }
}

impl BackupPcRegistry {
    /// Registers `registration` alone, or with the new hosts of other
    /// processes waiting in the queue.
    fn register_grouped(&self, registration: &Registration, queue: &group::Queue) -> Result<Outcome, RegistryError> {
        let own = self.queued(registration);
        let lock = self.open_lock_for_writing()?;
        // A free lock: nobody to wait for, and no request to write.
        match lock.try_lock() {
            Ok(()) => return self.commit_group(registration, own, queue, None),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(error)) => return Err(self.lock_error("take the lock", error)),
        }
        let Ok(waiting) = queue.enqueue(&own) else {
            lock.lock().map_err(|e| self.lock_error("take the lock", e))?;
            return self.commit_group(registration, own, queue, None);
        };
        lock.lock().map_err(|e| self.lock_error("take the lock", e))?;
        let outcome = if waiting.is_done() {
            Ok(Outcome::Added)
        } else {
            self.commit_group(registration, own, queue, Some(&waiting))
        };
        // Out of the queue before the lock goes.
        drop(waiting);
        drop(lock);
        outcome
    }

    /// `registration` as the queue holds it, as a new host.
    fn queued(&self, registration: &Registration) -> group::Queued {
        group::Queued {
            host: registration.host.to_string(),
            owner: registration.owner.to_string(),
            host_config: registration.host_config.clone(),
            pins: (!registration.host_keys.is_empty())
                .then(|| pins::pins_body(&registration.host, &registration.host_keys)),
            record: Self::journal_record(registration, "added"),
            conf_dir: self.conf_dir.clone(),
            journal: self.journal.clone(),
        }
    }

    /// Under the lock: commits `own` with the waiting requests that can go
    /// with it, or decides it alone.
    fn commit_group(
        &self,
        registration: &Registration,
        own: group::Queued,
        queue: &group::Queue,
        waiting: Option<&group::Waiting>,
    ) -> Result<Outcome, RegistryError> {
        self.recover()?;
        // Only those for this BackupPC and this journal.
        let others = queue.others(waiting, group::MOST_OTHERS, |other| {
            other.conf_dir == own.conf_dir && other.journal == own.journal
        });
        let names: Vec<&str> =
            std::iter::once(own.host.as_str()).chain(others.iter().map(|other| other.queued.host.as_str())).collect();
        let (hosts, lookups) = self.find_hosts(&names)?;
        let own_lookup = lookups.first().cloned().unwrap_or_default();
        if hosts.is_none() || own_lookup.header_missing {
            return self.decide(registration, hosts, &own_lookup);
        }
        let header = &own_lookup.header;
        // Each new host once, with no line, no config and no keys yet: its
        // request (none for this process's own), its name, its line.
        let mut picked: Vec<(Option<&group::Other>, &group::Queued, HostName, String)> = Vec::new();
        let candidates = std::iter::once((None, &own)).chain(others.iter().map(|other| (Some(other), &other.queued)));
        for ((other, queued), lookup) in candidates.zip(&lookups) {
            let names = HostName::parse(&queued.host).ok().zip(Logon::parse(&queued.owner).ok());
            let line = names.filter(|(host, _)| {
                lookup.owners.is_empty()
                    && !picked.iter().any(|(_, _, taken, _)| taken == host)
                    && self.host_files_absent(host)
            });
            match line.and_then(|(host, owner)| host_line(header, &host, &owner).map(|line| (host, line))) {
                Some((host, line)) => picked.push((other, queued, host, line)),
                None if other.is_none() => return self.decide(registration, hosts, &own_lookup),
                None => {}
            }
        }
        if picked.len() < 2 {
            return self.decide(registration, hosts, &own_lookup);
        }
        let mut appended = Vec::new();
        if !own_lookup.empty && !own_lookup.ends_with_newline {
            appended.push(b'\n');
        }
        let mut paths = Vec::new();
        for (_, queued, host, line) in &picked {
            appended.extend_from_slice(line.as_bytes());
            paths.push((self.host_config_path(host), queued.host_config.as_bytes()));
            if let Some(pins) = &queued.pins {
                paths.push((self.pins_path(host), pins.as_bytes()));
            }
        }
        let created: Vec<(&std::path::Path, &[u8])> =
            paths.iter().map(|(path, body)| (path.as_path(), *body)).collect();
        let records: Vec<JournalRecord> = picked.iter().map(|(_, queued, _, _)| queued.record.clone()).collect();
        let previous_mtime = fs::metadata(self.hosts_path()).and_then(|m| m.modified()).ok();
        // A change that fails is undone, or (when only its last flush
        // failed) made: either way `hosts` is no longer what was read, and
        // the others, left unmarked, find out for themselves.
        self.apply(&Change {
            hosts_appended: Some(&appended),
            more_records: &records,
            created: &created,
            ..Change::default()
        })?;
        self.after_change(previous_mtime);
        for other in picked.iter().filter_map(|(other, _, _, _)| *other) {
            queue.mark_done(other);
        }
        Ok(Outcome::Added)
    }

    /// Whether `host` has neither a config nor pinned keys in the folder.
    fn host_files_absent(&self, host: &HostName) -> bool {
        let absent =
            |path: PathBuf| matches!(fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound);
        absent(self.host_config_path(host)) && absent(self.pins_path(host))
    }

    /// Decides `registration` alone, under the lock, from what `hosts`
    /// says of its host.
    fn decide(
        &self,
        registration: &Registration,
        hosts: Option<File>,
        found: &HostLookup,
    ) -> Result<Outcome, RegistryError> {
        // BackupPC reads duplicate lines both ways: the daemon and the web
        // page (`HostInfoRead()`) keep the last, `BackupPC_dump`
        // (`HostInfoRead($host)`) the first. A host is this owner's only when
        // every one of its lines says so.
        let owners = &found.owners;
        let others: Vec<&str> =
            owners.iter().map(String::as_str).filter(|owner| *owner != registration.owner.as_str()).collect();
        match owners.first() {
            Some(_) if !others.is_empty() => {
                Err(RegistryError::OwnedByOther { host: registration.host.clone(), owner: others.join(", ") })
            }
            Some(_) => self.confirm(registration),
            None => self.add(registration, hosts, found).map(|()| Outcome::Added),
        }
    }
}

impl Registry for BackupPcRegistry {
    fn register(&self, registration: &Registration) -> Result<Outcome, RegistryError> {
        if let Some(queue) = &self.queue {
            return self.register_grouped(registration, queue);
        }
        let _lock = self.lock_and_recover()?;
        let (hosts, found) = self.find_host(&registration.host)?;
        self.decide(registration, hosts, &found)
    }

    fn owner_of(&self, host: &HostName) -> Result<Option<String>, RegistryError> {
        let _shared = self.lock_shared()?;
        let (_, found) = self.find_host(host)?;
        Ok(found.owner().map(str::to_owned))
    }

    /// Not when a settler is waiting already: it holds the settlers' lock
    /// until it has taken BackupPC's `LOCK`, after this change, and moves
    /// the mtime past it.
    fn settle_owed(&self) -> bool {
        self.settle_owed.get() && !self.settle_lock().is_ok_and(|lock| lock.try_lock().is_err())
    }

    fn settle(&self) -> Result<bool, RegistryError> {
        let settled = hosts_mtime::settle(&self.hosts_path(), self.settle_lock()?, || self.lock())?;
        self.settle_owed.set(false);
        Ok(settled == Settled::Moved)
    }

    fn pinned_keys(&self, host: &HostName) -> Result<Option<Vec<HostKey>>, RegistryError> {
        let _shared = self.lock_shared()?;
        self.read_pinned_keys(host)
    }
}

/// Opens a lock file (`what`) without following a link planted in its
/// place, and uses it only when it is a regular file: a FIFO would block the
/// open, a device would be opened.
fn open_lock_file(path: &std::path::Path, what: &str) -> Result<File, RegistryError> {
    let fail = |action, source| RegistryError::Hosts { path: path.to_owned(), action, source };
    let file =
        crate::shared_file::open(path, OpenOptions::new().write(true), 0o644).map_err(|e| fail("open the lock", e))?;
    let file_type = file.metadata().map_err(|e| fail("examine the lock", e))?.file_type();
    if !file_type.is_file() {
        let source = io::Error::other(format!("not a regular file; {what} must be one"));
        return Err(fail("use the lock", source));
    }
    Ok(file)
}

/// `hosts` as BackupPC's `HostInfoRead` sees it: the header (the first line
/// it accepts) and the host lines after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    /// The header's field names, when the file has an accepted line at all.
    pub header: Option<Vec<String>>,
    /// The host lines, in file order.
    pub hosts: Vec<HostLine>,
}

impl HostsFile {
    /// The owner BackupPC's daemon and web page see for `host`: of duplicate
    /// lines, `HostInfoRead()` keeps the last.
    pub fn owner_of(&self, host: &str) -> Option<&str> {
        self.hosts.iter().rev().find(|line| line.host == host).map(|line| line.user.as_str())
    }

    /// The owner of every line for `host`, in file order: more than one when
    /// the file has duplicate lines, of which `BackupPC_dump`
    /// (`HostInfoRead($host)`) keeps the first and the daemon the last.
    pub fn owners_of(&self, host: &str) -> Vec<&str> {
        self.hosts.iter().filter(|line| line.host == host).map(|line| line.user.as_str()).collect()
    }

    /// Whether the header names the `host` and `user` columns, so that BackupPC
    /// reads an owner from the lines below it (a file whose first line is a
    /// host line has that line taken as its header, and no owner at all).
    pub fn has_usable_header(&self) -> bool {
        self.header.as_ref().is_some_and(|header| {
            header.first().is_some_and(|first| first == "host") && header.iter().any(|field| field == "user")
        })
    }
}

/// Reads a `hosts` file as BackupPC 4's `HostInfoRead` does, byte for byte:
/// the first run of CR/LF goes, `#` starts a comment, trailing white space
/// goes, and only lines that start with a name (`[\w.\\-]+`) followed by white
/// space count, so an indented line does not. Fields are split on white space
/// not preceded by a backslash, then a backslash before any white space byte
/// (CR included) goes. The first counted line is the header, and each later
/// line's fields are named by it, as a Perl hash slice does: when the header
/// names `user` twice, the last of those columns is the owner. Host names
/// compare lowercased. Bytes that are not UTF-8 (in a comment, say) are
/// no reason to stop: BackupPC reads bytes too.
pub fn parse_hosts(bytes: &[u8]) -> HostsFile {
    let mut file = HostsFile::default();
    for raw in bytes.split(|b| *b == b'\n') {
        let Some(fields) = host_fields(raw) else { continue };
        match &file.header {
            None => file.header = Some(fields),
            Some(header) => {
                let host = fields.first().map(|h| h.to_ascii_lowercase()).unwrap_or_default();
                let user = header
                    .iter()
                    .rposition(|name| name == "user")
                    .and_then(|index| fields.get(index))
                    .cloned()
                    .unwrap_or_default();
                file.hosts.push(HostLine { host, user });
            }
        }
    }
    file
}

/// The fields of one line, or `None` when BackupPC skips it.
pub(crate) fn host_fields(raw: &[u8]) -> Option<Vec<String>> {
    let mut line = Vec::with_capacity(raw.len());
    hosts_scan::clean_line(raw, &mut line)?;
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut index = 0;
    while let Some(&byte) = line.get(index) {
        let escaped = index > 0 && line.get(index - 1) == Some(&b'\\');
        if is_space(byte) && !escaped {
            fields.push(unescape(&field));
            field.clear();
            while line.get(index).is_some_and(|b| is_space(*b)) {
                index += 1;
            }
            continue;
        }
        field.push(byte);
        index += 1;
    }
    fields.push(unescape(&field));
    Some(fields)
}

/// `s{\\(\s)}{$1}g`, then the bytes as text (BackupPC's names are ASCII;
/// anything else can match no checked name). Perl's `\s` on bytes is space,
/// tab, LF, VT, FF and CR: a CR that survived `s/[\n\r]+//` (only the first
/// run goes) loses the backslash before it too.
fn unescape(field: &[u8]) -> String {
    let mut out = Vec::with_capacity(field.len());
    let mut index = 0;
    while let Some(&byte) = field.get(index) {
        let next_is_space =
            field.get(index + 1).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
        if byte == b'\\' && next_is_space {
            index += 1;
            continue;
        }
        out.push(byte);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The line to append for `host` and `owner` under `header`, its fields in the
/// header's order, `owner` in every `user` column (BackupPC takes the last);
/// `None` when a column before the last `user` is not one this line can fill
/// (BackupPC's fields cannot be left empty in the middle).
pub(crate) fn host_line(header: &[String], host: &HostName, owner: &Logon) -> Option<String> {
    let user_index = header.iter().rposition(|name| name == "user")?;
    let mut fields = Vec::new();
    for name in header.iter().take(user_index + 1) {
        fields.push(match name.as_str() {
            "host" => host.to_string(),
            "dhcp" => "0".to_owned(),
            "user" => owner.to_string(),
            _ => return None,
        });
    }
    (fields.first().map(String::as_str) == Some(host.as_str())).then(|| fields.join("\t") + "\n")
}

/// A host's config read back, `None` when there is none. A config that is
/// a link (to a template, as some sites keep them) is followed by anyone
/// but root, to a regular file only; root, which could be led to open a
/// device (opening some has effects), takes it as present without reading
/// it, and keeps it.
fn read_host_config(path: &std::path::Path) -> io::Result<Option<Vec<u8>>> {
    if !nix::unistd::geteuid().is_root() {
        return files::read_regular_through_links(path, MAX_HOST_CONFIG);
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Ok(Some(Vec::new())),
        _ => files::read_regular(path, MAX_HOST_CONFIG),
    }
}

/// Takes BackupPC's lock on `conf_dir` for another writer of its files
/// (`bpc-register install` appending to `config.pl`, as BackupPC's own
/// editor writes it under that lock; the server writing the backends'
/// indexes beside a journal kept there), with the same care as a
/// registration.
pub(crate) fn take_lock(conf_dir: &std::path::Path) -> Result<File, RegistryError> {
    BackupPcRegistry::new(conf_dir).lock()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn registration(host: &str, owner: &str) -> Registration {
        Registration {
            host: HostName::parse(host).unwrap(),
            owner: Logon::parse(owner).unwrap(),
            host_config: format!("# {host}\n"),
            author: None,
            client_ip: "127.0.0.2".parse().unwrap(),
            os: "linux".into(),
            protocol: 1,
            host_keys: Vec::new(),
        }
    }

    /// A folder with `hosts` (its header and `lines`) and a registry
    /// grouping through the queue in `queue` beside it.
    fn grouped_folder(lines: &str) -> (tempfile::TempDir, BackupPcRegistry, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), format!("{HOSTS_HEADER}{lines}")).unwrap();
        let queue = dir.path().join("queue");
        let registry = BackupPcRegistry::new(dir.path()).grouped_at(&queue);
        (dir, registry, queue)
    }

    /// Another process's registration, waiting in the queue in `queue`.
    fn waiting(queue: &std::path::Path, registration: &Registration) -> group::Waiting {
        group::Queue::at(queue).enqueue(&BackupPcRegistry::new(queue.parent().unwrap()).queued(registration)).unwrap()
    }

    fn journal_actions(dir: &std::path::Path) -> Vec<(String, String)> {
        let journal = journal::read(&dir.join(JOURNAL_NAME)).unwrap();
        journal.records.iter().map(|r| (r.host.clone(), r.action.clone())).collect()
    }

    #[test]
    fn new_hosts_waiting_in_the_queue_are_committed_with_the_registration_that_holds_the_lock() {
        let (dir, registry, queue) = grouped_folder("old.example.org\t0\tcarol\n");
        let bob = waiting(&queue, &registration("b.example.org", "bob"));
        let keys = waiting(&queue, &pinning("c.example.org", "carol", &[ED25519]));
        assert!(!bob.is_done() && !keys.is_done());
        assert_eq!(registry.register(&registration("a.example.org", "alice")).unwrap(), Outcome::Added);
        assert!(bob.is_done() && keys.is_done());
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        for line in ["old.example.org\t0\tcarol\n", "a.example.org\t0\talice\n", "b.example.org\t0\tbob\n"] {
            assert_eq!(hosts.matches(line).count(), 1, "{hosts}");
        }
        assert_eq!(
            BackupPcRegistry::new(dir.path()).owner_of(&HostName::parse("c.example.org").unwrap()).unwrap().as_deref(),
            Some("carol")
        );
        assert_eq!(fs::read_to_string(dir.path().join("b.example.org.pl")).unwrap(), "# b.example.org\n");
        assert!(fs::read_to_string(dir.path().join("c.example.org.known_hosts")).unwrap().contains(ED25519));
        let mut actions = journal_actions(dir.path());
        actions.sort();
        assert_eq!(
            actions,
            [("a.example.org", "added"), ("b.example.org", "added"), ("c.example.org", "added")]
                .map(|(h, a)| (h.to_owned(), a.to_owned()))
        );
        assert!(!transaction::pending(dir.path()), "a change left something behind");
        // A waiting process that finds its mark answers without writing.
        drop((bob, keys));
        assert_eq!(fs::read_dir(&queue).unwrap().count(), 0, "requests are removed by their processes");
    }

    #[test]
    fn processes_waiting_for_the_lock_are_committed_by_the_first_that_gets_it() {
        let (dir, _, queue) = grouped_folder("");
        // Someone holds BackupPC's lock (its web editor, say) while two
        // registrations arrive.
        let held = fs::File::create(dir.path().join("LOCK")).unwrap();
        held.lock().unwrap();
        let outcomes = std::thread::scope(|scope| {
            let threads: Vec<_> = ["b.example.org", "c.example.org"]
                .into_iter()
                .map(|host| {
                    let (dir, queue) = (dir.path(), &queue);
                    scope.spawn(move || {
                        let registry = BackupPcRegistry::new(dir).grouped_at(queue);
                        registry.register(&registration(host, "bob")).unwrap()
                    })
                })
                .collect();
            // Both wait in the queue before the lock is let go.
            let both_waiting = || {
                let requests = fs::read_dir(&queue).into_iter().flatten().flatten();
                requests.filter(|e| e.file_name().to_string_lossy().ends_with(".req")).count() == 2
            };
            let waited = (0..1000).any(|_| {
                let ready = both_waiting();
                if !ready {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                ready
            });
            assert!(waited, "the two registrations never waited in the queue");
            held.unlock().unwrap();
            threads.into_iter().map(|thread| thread.join().unwrap()).collect::<Vec<_>>()
        });
        assert_eq!(outcomes, [Outcome::Added, Outcome::Added]);
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        let mut lines: Vec<&str> = hosts.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["b.example.org\t0\tbob", "c.example.org\t0\tbob", HOSTS_HEADER.trim_end()], "{hosts}");
        assert_eq!(journal_actions(dir.path()).len(), 2);
        assert_eq!(fs::read_dir(&queue).unwrap().count(), 0, "requests are removed by their processes");
    }

    #[test]
    fn only_new_hosts_go_together_and_the_rest_wait_for_their_own_process() {
        let (dir, registry, queue) = grouped_folder("taken.example.org\t0\tmallory\nmine.example.org\t0\tbob\n");
        fs::write(dir.path().join("leftover.example.org.pl"), "# left\n").unwrap();
        let hijack = waiting(&queue, &registration("taken.example.org", "bob"));
        let again = waiting(&queue, &registration("mine.example.org", "bob"));
        let same = waiting(&queue, &registration("a.example.org", "bob"));
        let leftover = waiting(&queue, &registration("leftover.example.org", "bob"));
        let fine = waiting(&queue, &registration("fine.example.org", "bob"));
        assert_eq!(registry.register(&registration("a.example.org", "alice")).unwrap(), Outcome::Added);
        assert!(fine.is_done());
        for (name, request) in [("hijack", &hijack), ("again", &again), ("same", &same), ("leftover", &leftover)] {
            assert!(!request.is_done(), "{name} was taken with the group");
        }
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(hosts.contains("a.example.org\t0\talice\n") && hosts.contains("fine.example.org\t0\tbob\n"), "{hosts}");
        assert!(!hosts.contains("a.example.org\t0\tbob") && !hosts.contains("leftover"), "{hosts}");
        assert_eq!(fs::read_to_string(dir.path().join("leftover.example.org.pl")).unwrap(), "# left\n");
        // Each then decides its own, alone, as without the queue.
        drop((hijack, again, same, leftover, fine));
        let error = registry.register(&registration("taken.example.org", "bob")).unwrap_err();
        assert!(matches!(error, RegistryError::OwnedByOther { .. }), "{error}");
        assert_eq!(registry.register(&registration("mine.example.org", "bob")).unwrap(), Outcome::AlreadyRegistered);
    }

    #[test]
    fn a_request_nobody_waits_for_or_that_does_not_read_is_never_committed() {
        let (dir, registry, queue) = grouped_folder("");
        let gone = BackupPcRegistry::new(dir.path()).queued(&registration("gone.example.org", "bob"));
        fs::write(queue.join("1-2-3.req"), serde_json::to_vec(&gone).unwrap()).unwrap();
        fs::write(queue.join(".1-2-4.new"), b"{\"host\"").unwrap();
        // A waiting process whose request says something no registration
        // of this server would: a record of another host.
        let mut odd = BackupPcRegistry::new(dir.path()).queued(&registration("odd.example.org", "bob"));
        odd.record.host = "elsewhere.example.org".into();
        let odd = group::Queue::at(&queue).enqueue(&odd).unwrap();
        let fine = waiting(&queue, &registration("fine.example.org", "bob"));
        assert_eq!(registry.register(&registration("a.example.org", "alice")).unwrap(), Outcome::Added);
        assert!(fine.is_done() && !odd.is_done());
        assert!(!queue.join("1-2-3.req").exists(), "the request of a process that is gone stays");
        assert!(!queue.join(".1-2-4.new").exists(), "the request a process was killed writing stays");
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(!hosts.contains("gone") && !hosts.contains("odd") && !hosts.contains("elsewhere"), "{hosts}");
    }

    #[test]
    fn a_request_for_another_backuppc_or_journal_is_left_to_its_own_server() {
        let (dir, registry, queue) = grouped_folder("");
        let elsewhere = tempfile::tempdir().unwrap();
        let other = BackupPcRegistry::new(elsewhere.path()).queued(&registration("y.example.org", "bob"));
        let other_server = group::Queue::at(&queue).enqueue(&other).unwrap();
        let mut journal = registry.queued(&registration("j.example.org", "bob"));
        journal.journal = dir.path().join("another-journal.jsonl");
        let other_journal = group::Queue::at(&queue).enqueue(&journal).unwrap();
        let fine = waiting(&queue, &registration("fine.example.org", "bob"));
        assert_eq!(registry.register(&registration("a.example.org", "alice")).unwrap(), Outcome::Added);
        assert!(fine.is_done() && !other_server.is_done() && !other_journal.is_done());
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(!hosts.contains("y.example.org") && !hosts.contains("j.example.org"), "{hosts}");
    }

    #[test]
    fn a_made_request_whose_process_is_gone_is_cleared_away() {
        let (dir, registry, queue) = grouped_folder("");
        // A process marked done died before it read its mark: its request,
        // no longer locked, beside its mark; and a mark left alone.
        let made = registry.queued(&registration("b.example.org", "bob"));
        fs::write(queue.join("01-7-0.req"), serde_json::to_vec(&made).unwrap()).unwrap();
        fs::write(queue.join("01-7-0.done"), "").unwrap();
        fs::write(queue.join("02-7-1.done"), "").unwrap();
        // A live one, made and not yet answered, stays.
        let live = waiting(&queue, &registration("c.example.org", "carol"));
        fs::write(queue.join(format!("{}.done", live_stem(&queue))), "").unwrap();
        assert_eq!(registry.register(&registration("a.example.org", "alice")).unwrap(), Outcome::Added);
        let mut names: Vec<String> =
            fs::read_dir(&queue).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        let stem = live_stem(&queue);
        assert_eq!(names, [format!("{stem}.done"), format!("{stem}.req")]);
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(!hosts.contains("b.example.org") && !hosts.contains("c.example.org"), "{hosts}");
        assert!(live.is_done());
    }

    /// The name, without `.req`, of the one request in `queue` that is not
    /// a planted one.
    fn live_stem(queue: &std::path::Path) -> String {
        fs::read_dir(queue)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find_map(|name| name.strip_suffix(".req").filter(|stem| !stem.starts_with("01-")).map(str::to_owned))
            .unwrap()
    }

    #[test]
    fn a_queue_folder_that_is_not_the_accounts_alone_is_never_read() {
        // Anyone may write it (or it is a link to such a folder): a
        // request planted there, locked as a waiting one is, is not taken.
        for how in ["open to all", "a link"] {
            let (dir, _, queue) = grouped_folder("");
            let planted = waiting(&queue, &registration("planted.example.org", "mallory"));
            let registry = match how {
                "open to all" => {
                    fs::set_permissions(&queue, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
                    BackupPcRegistry::new(dir.path()).grouped_at(&queue)
                }
                _ => {
                    let link = dir.path().join("linked-queue");
                    std::os::unix::fs::symlink(&queue, &link).unwrap();
                    BackupPcRegistry::new(dir.path()).grouped_at(&link)
                }
            };
            assert_eq!(registry.register(&registration("a.example.org", "alice")).unwrap(), Outcome::Added);
            assert!(!planted.is_done(), "{how}");
            let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
            assert!(!hosts.contains("planted"), "{how}: {hosts}");
        }
    }

    #[test]
    fn root_never_uses_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let queue = group::Queue::beside(&dir.path().join(JOURNAL_NAME));
        assert_eq!(queue.is_none(), nix::unistd::geteuid().is_root());
    }

    #[test]
    fn a_group_that_cannot_be_written_changes_nothing_and_leaves_the_others_waiting() {
        let (dir, registry, queue) = grouped_folder("");
        let fine = waiting(&queue, &registration("fine.example.org", "bob"));
        // The journal cannot be written: the group's change is undone whole.

        fs::create_dir(dir.path().join(JOURNAL_NAME)).unwrap();
        let before = fs::read(dir.path().join("hosts")).unwrap();
        assert!(registry.register(&registration("a.example.org", "alice")).is_err());
        assert!(!fine.is_done());
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), before);
        assert!(!dir.path().join("fine.example.org.pl").exists() && !dir.path().join("a.example.org.pl").exists());
    }

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOjHEgPPWML3UMMAud1JqyVNZC+DeLG8kIXd8twC5siD";
    const ED25519_SHA256: &str = "SHA256:/H0EQRhPs6E8Y3S2xeHH1JQjYHZ6QGAydjHmxjaXZjM";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDTt3lufq2j0wdZqSHGyrQauiepseyzAbJ3TXpWCsuA6MDE5XKp8LpuuGsXnNiSPAblAKRwVXIyv4qzYmbIGOqI=";
    const ECDSA_SHA256: &str = "SHA256:9VcjTPeKH0rS9DU7T7qMzsML/cN3ExW0TIUjG3hq89k";

    /// A registration that sends `keys`, with a config that says whether it pins.
    fn pinning(host: &str, owner: &str, keys: &[&str]) -> Registration {
        let host_keys: Vec<HostKey> = keys.iter().map(|key| HostKey::parse(key.as_bytes()).unwrap()).collect();
        let host_config = if host_keys.is_empty() { "# StrictHostKeyChecking=accept-new\n" } else { "# pinned\n" };
        Registration { host_keys, host_config: host_config.into(), ..registration(host, owner) }
    }

    #[test]
    fn a_hosts_or_host_config_put_as_a_link_a_fifo_or_a_device_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let hosts = dir.path().join("hosts");
        // A link to a secret without BackupPC's header: its bytes would be
        // copied into the new hosts, under the secret's owner and mode.
        let secret = dir.path().join("secret");
        fs::write(&secret, "TOKEN=3f9a1c\n").unwrap();
        std::os::unix::fs::symlink(&secret, &hosts).unwrap();
        let error = registry.register(&registration("pc.example.org", "alice")).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        assert!(fs::symlink_metadata(&hosts).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&secret).unwrap(), "TOKEN=3f9a1c\n");
        // A FIFO would hold the registration, and BackupPC's lock with it.
        fs::remove_file(&hosts).unwrap();
        nix::unistd::mkfifo(&hosts, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let error = registry.register(&registration("pc.example.org", "alice")).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
        // A re-registration reads the host's config back: not a FIFO.
        fs::remove_file(&hosts).unwrap();
        registry.register(&registration("pc.example.org", "alice")).unwrap();
        let config = dir.path().join("pc.example.org.pl");
        fs::remove_file(&config).unwrap();
        nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let error = registry.register(&registration("pc.example.org", "alice")).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
        // A config linked to a template is kept; the link is followed by
        // anyone but root, to a regular file only (not a device that never
        // ends), and root, which opening a device could harm, opens none.
        fs::remove_file(&config).unwrap();
        let template = dir.path().join("template.pl");
        fs::write(&template, "# template\n").unwrap();
        std::os::unix::fs::symlink(&template, &config).unwrap();
        let again = registry.register(&registration("pc.example.org", "alice")).unwrap();
        assert_eq!(again, Outcome::AlreadyRegistered);
        assert!(fs::symlink_metadata(&config).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&template).unwrap(), "# template\n");
        fs::remove_file(&config).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
        let to_device = registry.register(&registration("pc.example.org", "alice"));
        if nix::unistd::geteuid().is_root() {
            assert_eq!(to_device.unwrap(), Outcome::AlreadyRegistered);
        } else {
            assert!(to_device.unwrap_err().to_string().contains("not a regular file"));
        }
        // Nor the pinned keys.
        fs::remove_file(&config).unwrap();
        fs::write(&config, "# pc.example.org\n").unwrap();
        let pins = dir.path().join("pc.example.org.known_hosts");
        nix::unistd::mkfifo(&pins, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(registry.register(&pinning("pc.example.org", "alice", &[ED25519])).is_err());
    }

    #[test]
    fn a_new_host_gets_its_keys_pinned_and_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        assert_eq!(registry.register(&pinning("pc.example.org", "alice", &[ED25519])).unwrap(), Outcome::Added);
        assert_eq!(
            fs::read_to_string(dir.path().join("pc.example.org.known_hosts")).unwrap(),
            format!(
                "# Written by bpc-register: the SSH host keys sent by pc.example.org when it registered.\n\
                 pc.example.org {ED25519}\n"
            )
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.path().join("pc.example.org.known_hosts")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(journal(dir.path())[0].host_keys, [ED25519_SHA256]);
        let host = HostName::parse("pc.example.org").unwrap();
        assert_eq!(pins::fingerprints(&registry.pinned_keys(&host).unwrap().unwrap()), [ED25519_SHA256]);
    }

    #[test]
    fn the_same_owner_replaces_the_pinned_keys_and_the_journal_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        registry.register(&pinning("pc.example.org", "alice", &[ED25519])).unwrap();
        let config = fs::read(dir.path().join("pc.example.org.pl")).unwrap();
        assert_eq!(
            registry.register(&pinning("pc.example.org", "alice", &[ED25519])).unwrap(),
            Outcome::AlreadyRegistered
        );
        assert_eq!(
            registry.register(&pinning("pc.example.org", "alice", &[ECDSA])).unwrap(),
            Outcome::Repinned { previous: vec![ED25519_SHA256.into()] }
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("pc.example.org.known_hosts")).unwrap().lines().nth(1),
            Some(format!("pc.example.org {ECDSA}").as_str())
        );
        assert_eq!(fs::read(dir.path().join("pc.example.org.pl")).unwrap(), config, "a pinned config stays");
        let records = journal(dir.path());
        let summary: Vec<_> = records
            .iter()
            .map(|r| (r.action.as_str(), r.host_keys.join(","), r.previous_host_keys.join(",")))
            .collect();
        assert_eq!(
            summary,
            [
                ("added", ED25519_SHA256.to_owned(), String::new()),
                ("confirmed", String::new(), String::new()),
                ("confirmed", ECDSA_SHA256.to_owned(), ED25519_SHA256.to_owned()),
            ]
        );
    }

    #[test]
    fn keys_sent_for_a_host_registered_without_them_pin_it_and_rewrite_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        registry.register(&pinning("pc.example.org", "alice", &[])).unwrap();
        assert!(!dir.path().join("pc.example.org.known_hosts").exists());
        assert_eq!(
            registry.register(&pinning("pc.example.org", "alice", &[ED25519])).unwrap(),
            Outcome::Repinned { previous: vec![] }
        );
        assert_eq!(fs::read_to_string(dir.path().join("pc.example.org.pl")).unwrap(), "# pinned\n");
        // A client that sends no keys leaves them pinned.
        registry.register(&pinning("pc.example.org", "alice", &[])).unwrap();
        assert!(dir.path().join("pc.example.org.known_hosts").exists());
        assert_eq!(fs::read_to_string(dir.path().join("pc.example.org.pl")).unwrap(), "# pinned\n");
    }

    #[test]
    fn another_owner_sending_keys_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        registry.register(&pinning("pc.example.org", "alice", &[ED25519])).unwrap();
        let before = fs::read(dir.path().join("pc.example.org.known_hosts")).unwrap();
        let error = registry.register(&pinning("pc.example.org", "bob", &[ECDSA])).unwrap_err();
        assert_eq!(error.refusal(), Refusal::ReRegisterRefused);
        assert_eq!(fs::read(dir.path().join("pc.example.org.known_hosts")).unwrap(), before);
        assert_eq!(journal(dir.path()).len(), 1);
    }

    fn journal(dir: &std::path::Path) -> Vec<JournalRecord> {
        journal::read(&dir.join(JOURNAL_NAME)).unwrap().records
    }

    const DEBIAN_HOSTS: &str = "#\n# comment\n#\nhost        dhcp    user    moreUsers     # <--- do not edit this line\n#farside    0       craig   jill,jeff     # <--- example static IP host entry\nlocalhost   0       backuppc\n";

    #[test]
    fn adds_a_line_and_a_config_keeping_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), DEBIAN_HOSTS).unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        assert_eq!(registry.register(&registration("pc.example.org", "alice")).unwrap(), Outcome::Added);
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert_eq!(hosts, format!("{DEBIAN_HOSTS}pc.example.org\t0\talice\n"));
        assert_eq!(fs::read_to_string(dir.path().join("pc.example.org.pl")).unwrap(), "# pc.example.org\n");
        let records = journal(dir.path());
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].action.as_str(), records[0].owner.as_str(), records[0].author.as_str()),
            ("added", "alice", "")
        );
        assert_eq!(registry.owner_of(&HostName::parse("pc.example.org").unwrap()).unwrap().as_deref(), Some("alice"));
        assert_eq!(registry.owner_of(&HostName::parse("other.example.org").unwrap()).unwrap(), None);
    }

    #[test]
    fn same_owner_again_changes_nothing_and_keeps_an_edited_config() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        registry.register(&registration("pc.example.org", "alice")).unwrap();
        fs::write(dir.path().join("pc.example.org.pl"), "# edited by the admin\n").unwrap();
        let before = fs::read(dir.path().join("hosts")).unwrap();
        assert_eq!(registry.register(&registration("pc.example.org", "alice")).unwrap(), Outcome::AlreadyRegistered);
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), before);
        assert_eq!(fs::read_to_string(dir.path().join("pc.example.org.pl")).unwrap(), "# edited by the admin\n");
    }

    #[test]
    fn another_owner_is_refused_whatever_the_case_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), "host dhcp user moreUsers\nPC.Example.org 0 alice\n").unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let error = registry.register(&registration("pc.example.org", "bob")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::ReRegisterRefused);
        assert!(!dir.path().join("pc.example.org.pl").exists());
    }

    #[test]
    fn a_new_hosts_file_gets_the_header() {
        let dir = tempfile::tempdir().unwrap();
        BackupPcRegistry::new(dir.path()).register(&registration("a.example.org", "alice")).unwrap();
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert_eq!(hosts, format!("{HOSTS_HEADER}a.example.org\t0\talice\n"));
    }

    #[test]
    fn a_config_that_cannot_be_put_in_place_leaves_hosts_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), DEBIAN_HOSTS).unwrap();
        fs::create_dir(dir.path().join("pc.example.org.pl")).unwrap();
        fs::write(dir.path().join("pc.example.org.pl").join("x"), "").unwrap();
        let error = BackupPcRegistry::new(dir.path()).register(&registration("pc.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotGenerateConfig);
        assert_eq!(fs::read_to_string(dir.path().join("hosts")).unwrap(), DEBIAN_HOSTS);
        assert!(journal(dir.path()).is_empty(), "the journal kept a registration that did not happen");
        let mut leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        leftovers.retain(|name| name != JOURNAL_NAME);
        assert_eq!(leftovers.len(), 3, "{leftovers:?}");
    }

    #[test]
    fn unreadable_hosts_is_could_not_register() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("hosts")).unwrap();
        let error = BackupPcRegistry::new(dir.path()).register(&registration("pc.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotRegister);
        assert!(!dir.path().join("pc.example.org.pl").exists());
    }

    #[test]
    fn a_change_in_the_same_second_is_owed_a_settle_that_moves_the_mtime_on() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let seconds =
            || hosts_mtime::whole_seconds(fs::metadata(dir.path().join("hosts")).unwrap().modified().unwrap());
        registry.register(&registration("h0.example.org", "alice")).unwrap();
        let mut seen = vec![seconds()];
        // Registrations until one lands in the same second as the one before.
        while !registry.settle_owed() {
            registry.register(&registration(&format!("h{}.example.org", seen.len()), "alice")).unwrap();
            seen.push(seconds());
            assert!(seen.len() < 1000, "a thousand registrations, each in its own second");
        }
        assert_eq!(seen[seen.len() - 1], seen[seen.len() - 2]);
        assert!(registry.settle().unwrap(), "the settle did not move the mtime");
        assert!(!registry.settle_owed());
        let settled = seconds();
        assert!(seen.iter().all(|earlier| *earlier < settled), "{seen:?} then {settled}");
        let now = hosts_mtime::whole_seconds(std::time::SystemTime::now());
        assert!(settled <= now + 1, "the mtime {settled} is ahead of the clock {now}");
        assert!(dir.path().join(SETTLE_LOCK_NAME).is_file());
    }

    #[test]
    fn a_settlers_lock_replaced_by_a_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        registry.register(&registration("h0.example.org", "alice")).unwrap();
        let absent = dir.path().join("absent-target");
        std::os::unix::fs::symlink(&absent, dir.path().join(SETTLE_LOCK_NAME)).unwrap();
        let error = registry.settle().unwrap_err();
        assert!(error.to_string().contains(SETTLE_LOCK_NAME), "{error}");
        assert!(!absent.exists(), "the link's target was created");
    }

    #[test]
    fn a_journal_that_cannot_be_written_leaves_hosts_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), DEBIAN_HOSTS).unwrap();
        let registry = BackupPcRegistry::new(dir.path()).with_journal(dir.path().join("no/such/dir/journal"));
        let error = registry.register(&registration("pc.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotRegister);
        assert_eq!(fs::read_to_string(dir.path().join("hosts")).unwrap(), DEBIAN_HOSTS);
        assert!(!dir.path().join("pc.example.org.pl").exists());
    }

    #[test]
    fn a_journal_replaced_by_a_link_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), DEBIAN_HOSTS).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(JOURNAL_NAME)).unwrap();
        let error = BackupPcRegistry::new(dir.path()).register(&registration("pc.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotRegister);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(fs::read_to_string(dir.path().join("hosts")).unwrap(), DEBIAN_HOSTS);
        assert!(!dir.path().join("pc.example.org.pl").exists());
    }

    #[test]
    fn a_lock_replaced_by_a_link_is_neither_followed_nor_created() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), DEBIAN_HOSTS).unwrap();
        let absent = dir.path().join("absent-target");
        std::os::unix::fs::symlink(&absent, dir.path().join("LOCK")).unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let error = registry.register(&registration("pc.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotRegister);
        assert!(!absent.exists(), "the link's target was created");
        assert_eq!(fs::read_to_string(dir.path().join("hosts")).unwrap(), DEBIAN_HOSTS);
        assert!(!dir.path().join("pc.example.org.pl").exists());

        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(dir.path().join("LOCK")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("LOCK")).unwrap();
        let error = registry.register(&registration("pc.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotRegister);
        assert!(error.to_string().contains("LOCK"), "{error}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_lock_that_is_not_a_regular_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("LOCK"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let error = BackupPcRegistry::new(dir.path()).register(&registration("pc.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotRegister);
        assert!(!dir.path().join("hosts").exists());
    }

    #[test]
    fn a_read_creates_no_lock_and_waits_while_backuppc_rewrites_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        fs::write(&hosts, format!("{DEBIAN_HOSTS}pc.example.org 0 alice\n")).unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let host = HostName::parse("pc.example.org").unwrap();
        assert_eq!(registry.owner_of(&host).unwrap().as_deref(), Some("alice"));
        assert!(!dir.path().join("LOCK").exists(), "a read made BackupPC's LOCK");

        // BackupPC's CGI, under the lock, renames hosts away and back.
        let lock = File::create(dir.path().join("LOCK")).unwrap();
        lock.lock().unwrap();
        fs::rename(&hosts, dir.path().join("hosts.old")).unwrap();
        let (sender, answers) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || sender.send(registry.owner_of(&host).unwrap()).unwrap());
        let early = answers.recv_timeout(Duration::from_millis(300));
        assert!(early.is_err(), "the read went ahead while BackupPC held its lock: {early:?}");
        fs::rename(dir.path().join("hosts.old"), &hosts).unwrap();
        lock.unlock().unwrap();
        assert_eq!(answers.recv().unwrap().as_deref(), Some("alice"));
        reader.join().unwrap();
    }

    #[test]
    fn a_read_refuses_a_lock_that_is_a_link_or_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), DEBIAN_HOSTS).unwrap();
        let host = HostName::parse("pc.example.org").unwrap();
        std::os::unix::fs::symlink(dir.path().join("hosts"), dir.path().join("LOCK")).unwrap();
        let error = BackupPcRegistry::new(dir.path()).owner_of(&host).unwrap_err();
        assert!(error.to_string().contains("LOCK: cannot open the lock"), "{error}");
        fs::remove_file(dir.path().join("LOCK")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("LOCK"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let error = BackupPcRegistry::new(dir.path()).owner_of(&host).unwrap_err();
        assert!(error.to_string().contains("LOCK: cannot use the lock: not a regular file"), "{error}");
    }

    #[test]
    fn hosts_parsing_follows_backuppc() {
        let file = parse_hosts(DEBIAN_HOSTS.as_bytes());
        assert!(file.has_usable_header());
        assert_eq!(file.hosts, [HostLine { host: "localhost".into(), user: "backuppc".into() }]);
        assert_eq!(parse_hosts(b"# only comments\n\n"), HostsFile::default());
        let odd = parse_hosts(b"host dhcp user\n  indented 0 x\nA\\ b 0 bob\\ smith\nlonely\n");
        assert_eq!(odd.hosts, [HostLine { host: "a b".into(), user: "bob smith".into() }]);
    }

    #[test]
    fn a_comment_that_is_not_utf8_does_not_stop_registrations() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = b"# r\xe9serv\xe9 \xff\nhost dhcp user moreUsers\nold 0 carol # caf\xe9\n";
        fs::write(dir.path().join("hosts"), hosts).unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        assert_eq!(registry.register(&registration("pc.example.org", "alice")).unwrap(), Outcome::Added);
        let mut expected = hosts.to_vec();
        expected.extend_from_slice(b"pc.example.org\t0\talice\n");
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), expected, "the other bytes are kept as they were");
        assert_eq!(registry.owner_of(&HostName::parse("old").unwrap()).unwrap().as_deref(), Some("carol"));
    }

    #[test]
    fn a_hosts_without_its_header_gets_one_so_the_owner_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), "old.example.org 0 carol\n").unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let error = registry.register(&registration("old.example.org", "bob")).unwrap_err();
        assert_eq!(
            error.refusal(),
            Refusal::ReRegisterRefused,
            "the line BackupPC took for a header still has an owner"
        );
        registry.register(&registration("pc.example.org", "alice")).unwrap();
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert_eq!(hosts, format!("{HOSTS_HEADER}old.example.org 0 carol\npc.example.org\t0\talice\n"));
        let file = parse_hosts(hosts.as_bytes());
        assert_eq!(file.owner_of("pc.example.org"), Some("alice"));
    }

    #[test]
    fn the_owner_column_is_found_by_its_header_name() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), "host dhcp user\npc.example.org 0 carol\n").unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        assert_eq!(registry.register(&registration("pc.example.org", "carol")).unwrap(), Outcome::AlreadyRegistered);
        fs::write(dir.path().join("hosts"), "host user dhcp\npc.example.org carol 0\n").unwrap();
        assert_eq!(registry.register(&registration("pc.example.org", "carol")).unwrap(), Outcome::AlreadyRegistered);
        registry.register(&registration("new.example.org", "alice")).unwrap();
        let hosts = fs::read(dir.path().join("hosts")).unwrap();
        assert_eq!(parse_hosts(&hosts).owner_of("new.example.org"), Some("alice"));
        fs::write(dir.path().join("hosts"), "host moreUsers user\n").unwrap();
        let error = registry.register(&registration("third.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::CouldNotRegister);
    }

    #[test]
    fn of_duplicate_lines_the_last_one_wins_as_in_backuppc() {
        let file = parse_hosts(b"host dhcp user\npc 0 alice\nPC 0 mallory\n");
        assert_eq!(file.owner_of("pc"), Some("mallory"));
        assert_eq!(file.owners_of("pc"), ["alice", "mallory"]);
    }

    #[test]
    fn a_host_whose_duplicate_lines_disagree_belongs_to_nobody_who_asks() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = "host dhcp user\npc.example.org 0 alice\npc.example.org 0 mallory\n";
        fs::write(dir.path().join("hosts"), hosts).unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        for owner in ["alice", "mallory", "bob"] {
            let error = registry.register(&registration("pc.example.org", owner)).unwrap_err();
            assert_eq!(error.refusal(), Refusal::ReRegisterRefused, "{owner}");
        }
        assert_eq!(fs::read_to_string(dir.path().join("hosts")).unwrap(), hosts);
        assert!(!dir.path().join("pc.example.org.pl").exists());
        assert!(journal(dir.path()).is_empty());

        let agreeing = "host dhcp user\npc.example.org 0 alice\nPC.example.org 0 alice\n";
        fs::write(dir.path().join("hosts"), agreeing).unwrap();
        assert_eq!(registry.register(&registration("pc.example.org", "alice")).unwrap(), Outcome::AlreadyRegistered);
    }

    #[test]
    fn with_user_named_twice_in_the_header_the_last_column_is_the_owner() {
        let file = parse_hosts(b"host dhcp user user\npc1 0 alice mallory\npc2 0 bob\n");
        assert_eq!(file.owner_of("pc1"), Some("mallory"));
        assert_eq!(file.owner_of("pc2"), Some(""), "BackupPC sees no owner when the last column is missing");

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), "host dhcp user user\npc1.example.org 0 alice mallory\n").unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let error = registry.register(&registration("pc1.example.org", "alice")).unwrap_err();
        assert_eq!(error.refusal(), Refusal::ReRegisterRefused);
        registry.register(&registration("new.example.org", "carol")).unwrap();
        let hosts = fs::read(dir.path().join("hosts")).unwrap();
        assert_eq!(parse_hosts(&hosts).owner_of("new.example.org"), Some("carol"));
    }

    #[test]
    fn a_backslash_before_a_carriage_return_goes_as_in_backuppc() {
        // The first run of CR goes with `s/[\n\r]+//`; the second CR is white
        // space escaped by the backslash before it, which then goes.
        let file = parse_hosts(b"host dhcp user\npc1 0 a\\\rb\\\rc\n");
        assert_eq!(file.owner_of("pc1"), Some("a\\b\rc"));
    }

    proptest::proptest! {
        #[test]
        fn hosts_parsing_never_panics(input in proptest::prelude::any::<Vec<u8>>()) {
            let _ = parse_hosts(&input);
        }
    }
}
