//! One change to BackupPC's configuration folder and the journal (`hosts`,
//! one `HOST.pl`, the host's pinned `HOST.known_hosts`, one journal record),
//! made whole or not at all even when the process is killed half-way, the
//! disk fills up or a write fails.
//!
//! The change is an undo log. Before anything visible changes, the current
//! `hosts`, `HOST.pl` and `HOST.known_hosts` are hard-linked to
//! `.bpc-enroll-undo.hosts`, `.bpc-enroll-undo.config` and
//! `.bpc-enroll-undo.pins` (a link costs no copy: the new versions are
//! renamed over the old names, so the old files stay whole under the links),
//! and the undo record `.bpc-enroll-undo` is written and flushed: the
//! journal's length, which files existed, and the identity (device, inode)
//! of the files this change puts in place. Then the journal record is
//! appended, `HOST.pl`, `HOST.known_hosts` and `hosts` are renamed into place, and removing the
//! undo record commits. A change that fails undoes itself at once; one that
//! was killed is undone by the next [`recover`], which every writer runs
//! under BackupPC's lock before it reads anything. Recovery puts back only
//! a file that is still the one this change wrote: if BackupPC's web
//! editor rewrote `hosts` in between, its version stays.
//!
//! A change that only adds a line at the end of `hosts` (a registration)
//! appends it in place instead, as the journal is appended to: the record
//! holds the file's identity and its length before and after, and undoing
//! cuts it back to the length before when it is still that file and no
//! longer than after. No copy of `hosts` is made or flushed, whatever its
//! size. BackupPC reads `hosts` under the same lock (`HostInfoRead`), so it
//! never sees the line half-written.

use crate::journal::{self, JournalRecord};
use files::AtomicWrite;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How the file of a host's pinned keys is named: `HOST.known_hosts`.
pub const PINS_SUFFIX: &str = ".known_hosts";

/// The undo record's name in the configuration folder.
pub const UNDO_NAME: &str = ".bpc-enroll-undo";
const UNDO_HOSTS: &str = ".bpc-enroll-undo.hosts";
const UNDO_CONFIG: &str = ".bpc-enroll-undo.config";
const UNDO_PINS: &str = ".bpc-enroll-undo.pins";
/// Where the files a change creates are written before they are linked
/// in: this followed by `.0`, `.1`, ... in the order of
/// [`Change::created`]. Written in that order, so that without an undo
/// record those left form a run from `.0`.
const NEW_CREATED: &str = ".bpc-enroll-new.created";
/// Every link to an old version a change may leave.
const UNDO_LINKS: [&str; 3] = [UNDO_HOSTS, UNDO_CONFIG, UNDO_PINS];
/// Where a change writes the new `hosts`, `HOST.pl` and `HOST.known_hosts`
/// before renaming them in: fixed names (one writer holds the lock at a
/// time), so that recovery finds what a killed writer left by name,
/// without listing a folder that holds a config per host.
const NEW_HOSTS: &str = ".bpc-enroll-new.hosts";
const NEW_CONFIG: &str = ".bpc-enroll-new.config";
const NEW_PINS: &str = ".bpc-enroll-new.pins";
/// Every file a change may leave besides the undo record: the links to
/// the old versions and the new versions not yet renamed.
const LEFTOVERS: [&str; 6] = [UNDO_HOSTS, UNDO_CONFIG, UNDO_PINS, NEW_HOSTS, NEW_CONFIG, NEW_PINS];

/// Writes the new `hosts` into the file it is given.
pub type WriteHosts<'a> = dyn Fn(&mut File) -> io::Result<()> + 'a;

/// What one change does; everything is optional.
#[derive(Default)]
pub struct Change<'a> {
    /// The new body of `hosts`.
    pub hosts: Option<&'a [u8]>,
    /// Or what writes the new `hosts` (streamed, as a registration copies
    /// the old file and adds its line when the file needs a header).
    pub hosts_written_by: Option<&'a WriteHosts<'a>>,
    /// Or bytes to append to the existing `hosts` in place (a
    /// registration's line, after a newline when the file ends without one).
    pub hosts_appended: Option<&'a [u8]>,
    /// The host's config file, and its new body (`None`: remove it).
    pub config: Option<(&'a Path, Option<&'a [u8]>)>,
    /// The host's pinned host keys (its `HOST.known_hosts`), and their new
    /// body (`None`: remove the file).
    pub pins: Option<(&'a Path, Option<&'a [u8]>)>,
    /// The record to append to the journal.
    pub record: Option<&'a JournalRecord>,
    /// More records, appended after `record` in the same write.
    pub more_records: &'a [JournalRecord],
    /// Files in the folder that do not exist yet, each with its body:
    /// written whole under a fixed temporary name and linked in without
    /// replacing anything (the configs and pinned keys of new hosts
    /// registered together). Undoing removes one if it is still the file
    /// linked in.
    pub created: &'a [(&'a Path, &'a [u8])],
}

/// Which of the files a failed change was writing, for the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `hosts` (or the folder, the undo record).
    Hosts,
    /// The host's config.
    Config,
    /// The host's pinned host keys.
    Pins,
    /// The journal.
    Journal,
}

/// A change that was not made; nothing of it is left.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ChangeError {
    /// The part at fault.
    pub part: Part,
    /// The file at fault.
    pub path: PathBuf,
    /// The system's reason.
    pub source: io::Error,
}

/// The undo record, as JSON. It names no path: the journal's comes from
/// the server's configuration and the config's is checked to be a plain name
/// in the folder, so a record planted by whoever owns the folder cannot make
/// a root-run bpc-register truncate or replace any other file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct UndoRecord {
    /// The journal's length before the change, when it appends a record.
    journal_len: Option<u64>,
    /// Whether `hosts` existed, when the change replaces it.
    hosts_existed: Option<bool>,
    /// The config file's name in the folder, and whether it existed.
    config: Option<(String, bool)>,
    /// (device, inode) of the `hosts` this change puts in place.
    new_hosts: Option<(u64, u64)>,
    /// (device, inode) of the `HOST.pl` this change puts in place.
    new_config: Option<(u64, u64)>,
    /// The pinned keys' file name in the folder, and whether it existed
    /// (absent from records written before keys were pinned).
    #[serde(default)]
    pins: Option<(String, bool)>,
    /// (device, inode) of the `HOST.known_hosts` this change puts in place.
    #[serde(default)]
    new_pins: Option<(u64, u64)>,
    /// (device, inode, length before, length after) of the `hosts` this
    /// change appends to in place.
    #[serde(default)]
    hosts_appended: Option<(u64, u64, u64, u64)>,
    /// The name, device and inode of each file this change creates.
    #[serde(default)]
    created: Vec<(String, u64, u64)>,
}

/// Makes `change` in `conf_dir` with its journal at `journal_path`. The
/// caller holds BackupPC's lock and has run [`recover`].
pub fn apply(conf_dir: &Path, journal_path: &Path, change: &Change<'_>) -> Result<(), ChangeError> {
    apply_until(conf_dir, journal_path, change, Step::Commit)
}

/// The steps of a change, in order: a test stops after one as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Undo,
    Journal,
    Config,
    Pins,
    Hosts,
    Commit,
}

fn apply_until(conf_dir: &Path, journal_path: &Path, change: &Change<'_>, last: Step) -> Result<(), ChangeError> {
    let hosts_path = conf_dir.join("hosts");
    let undo_path = conf_dir.join(UNDO_NAME);
    let fail = |part, path: &Path| {
        let path = path.to_owned();
        move |source| ChangeError { part, path, source }
    };
    let config_name = match change.config {
        Some((path, _)) => Some(plain_name_in(conf_dir, path).map_err(fail(Part::Config, path))?),
        None => None,
    };
    let pins_name = match change.pins {
        Some((path, _)) => Some(plain_name_in(conf_dir, path).map_err(fail(Part::Pins, path))?),
        None => None,
    };
    let created_names = change
        .created
        .iter()
        .map(|(path, _)| plain_name_in(conf_dir, path).map_err(fail(Part::Config, path)))
        .collect::<Result<Vec<_>, _>>()?;
    // Everything new is written beside its file first, flushed, invisible.
    let mut created = CreatedTemps { conf_dir, made: Vec::new() };
    for (path, body) in change.created {
        let temp = conf_dir.join(created_temp(created.made.len()));
        let id = write_new(&temp, body).map_err(fail(Part::Config, path))?;
        created.made.push(id);
    }
    let prepare = |path: &Path, temp: &str, write: &dyn Fn(&mut File) -> io::Result<()>| {
        AtomicWrite::prepare_at(path, &conf_dir.join(temp), 0o644, write)
    };
    let new_hosts = match (change.hosts, change.hosts_written_by) {
        (_, Some(write)) => Some(prepare(&hosts_path, NEW_HOSTS, write).map_err(fail(Part::Hosts, &hosts_path))?),
        (Some(body), None) => Some(
            prepare(&hosts_path, NEW_HOSTS, &|file: &mut File| file.write_all(body))
                .map_err(fail(Part::Hosts, &hosts_path))?,
        ),
        (None, None) => None,
    };
    let changes_hosts = new_hosts.is_some();
    let records: Vec<JournalRecord> = change.record.into_iter().chain(change.more_records).cloned().collect();
    // Appending: `hosts` opened now, never through a link, and only as a
    // regular file; its length says where undoing cuts it back to.
    let appended = match change.hosts_appended {
        Some(bytes) => Some(open_for_append(&hosts_path, bytes).map_err(fail(Part::Hosts, &hosts_path))?),
        None => None,
    };
    let new_config = match change.config {
        Some((path, Some(body))) => {
            Some(prepare(path, NEW_CONFIG, &|file: &mut File| file.write_all(body)).map_err(fail(Part::Config, path))?)
        }
        _ => None,
    };
    let new_pins = match change.pins {
        Some((path, Some(body))) => {
            Some(prepare(path, NEW_PINS, &|file: &mut File| file.write_all(body)).map_err(fail(Part::Pins, path))?)
        }
        _ => None,
    };
    // The old versions stay whole under the undo links, named by the record.
    let recorded = (|| {
        let hosts_existed = match changes_hosts {
            true => Some(link_old(conf_dir, &hosts_path, UNDO_HOSTS).map_err(fail(Part::Hosts, &hosts_path))?),
            false => None,
        };
        let config = match (change.config, config_name) {
            (Some((path, _)), Some(name)) => {
                Some((name, link_old(conf_dir, path, UNDO_CONFIG).map_err(fail(Part::Config, path))?))
            }
            _ => None,
        };
        let pins = match (change.pins, pins_name) {
            (Some((path, _)), Some(name)) => {
                Some((name, link_old(conf_dir, path, UNDO_PINS).map_err(fail(Part::Pins, path))?))
            }
            _ => None,
        };
        let undo = UndoRecord {
            journal_len: match records.is_empty() {
                false => Some(journal_length(journal_path).map_err(fail(Part::Journal, journal_path))?),
                true => None,
            },
            hosts_existed,
            config,
            new_hosts: identity(new_hosts.as_ref()).map_err(fail(Part::Hosts, &hosts_path))?,
            new_config: identity(new_config.as_ref()).map_err(fail(Part::Config, conf_dir))?,
            pins,
            new_pins: identity(new_pins.as_ref()).map_err(fail(Part::Pins, conf_dir))?,
            hosts_appended: appended.as_ref().map(|(_, span)| *span),
            created: created_names.iter().zip(&created.made).map(|(name, id)| (name.clone(), id.0, id.1)).collect(),
        };
        write_undo(conf_dir, &undo).map_err(fail(Part::Hosts, &undo_path))
    })();
    if let Err(error) = recorded {
        let _ = remove_if_present(&undo_path);
        for link in UNDO_LINKS {
            let _ = remove_if_present(&conf_dir.join(link));
        }
        return Err(error);
    }
    if last == Step::Undo {
        // Stopped as a crash would: nothing is cleaned up.
        created.made.clear();
        return Ok(());
    }

    let applied = (|| {
        if !records.is_empty() {
            journal::append(journal_path, &records).map_err(fail(Part::Journal, journal_path))?;
        }
        if last == Step::Journal {
            return Ok(false);
        }
        put_in_place(change.config, new_config).map_err(|(path, e)| fail(Part::Config, path)(e))?;
        // Every file linked in first, then the temporary names removed
        // from the last: those left are always a run from `.0`, and each
        // inode stays taken by one of its names until the record is gone.
        for (n, (path, _)) in change.created.iter().enumerate() {
            fs::hard_link(conf_dir.join(created_temp(n)), path).map_err(fail(Part::Config, path))?;
        }
        remove_created_temps(conf_dir, change.created.len()).map_err(fail(Part::Config, conf_dir))?;
        if last == Step::Config {
            return Ok(false);
        }
        put_in_place(change.pins, new_pins).map_err(|(path, e)| fail(Part::Pins, path)(e))?;
        if last == Step::Pins {
            return Ok(false);
        }
        if let Some(write) = new_hosts {
            write.commit_unsynced().map_err(fail(Part::Hosts, &hosts_path))?;
        }
        if let (Some((mut file, _)), Some(bytes)) = (appended, change.hosts_appended) {
            file.write_all(bytes).and_then(|()| file.sync_data()).map_err(fail(Part::Hosts, &hosts_path))?;
        }
        // One flush of the folder makes the renames (or removals) durable
        // before the commit.
        sync_dir(conf_dir).map_err(fail(Part::Hosts, conf_dir))?;
        if last == Step::Hosts {
            return Ok(false);
        }
        // Removing the undo record is the commit.
        remove_durably(conf_dir, UNDO_NAME).map_err(fail(Part::Hosts, &undo_path))?;
        Ok(true)
    })();
    match applied {
        Ok(false) => {
            created.made.clear();
            Ok(())
        }
        Ok(true) => {
            created.made.clear();
            // Only the links to the old versions are left; a crash here
            // leaves them for the next recovery to remove.
            for link in UNDO_LINKS {
                let _ = remove_if_present(&conf_dir.join(link));
            }
            Ok(())
        }
        Err(error) => {
            let _ = recover(conf_dir, journal_path);
            Err(error)
        }
    }
}

/// Puts a host file's new version (prepared as `write`) in place, or
/// removes the file when the change says so; the path with the error.
fn put_in_place<'a>(
    file: Option<(&'a Path, Option<&[u8]>)>,
    write: Option<AtomicWrite>,
) -> Result<(), (&'a Path, io::Error)> {
    match (file, write) {
        (Some((path, _)), Some(write)) => write.commit_unsynced().map_err(|e| (path, e)),
        (Some((path, None)), None) => remove_if_present(path).map_err(|e| (path, e)),
        _ => Ok(()),
    }
}

/// Whether a change was cut short, or left the links to its old files or
/// its new ones: [`recover`] has something to do.
pub fn pending(conf_dir: &Path) -> bool {
    let first_created = created_temp(0);
    std::iter::once(UNDO_NAME)
        .chain(LEFTOVERS)
        .chain([first_created.as_str()])
        .any(|name| fs::symlink_metadata(conf_dir.join(name)).is_ok())
}

/// Undoes a change that was cut short, if there is one, and removes what is
/// left of one that completed. Returns whether a change was undone. Run it
/// under BackupPC's lock, with the journal the server is configured with.
pub fn recover(conf_dir: &Path, journal_path: &Path) -> io::Result<bool> {
    let bytes = match read_no_follow(&conf_dir.join(UNDO_NAME)) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let undone = bytes.is_some();
    // A record that does not parse was cut short before it was flushed, so
    // nothing after it happened.
    if let Some(undo) = bytes.and_then(|bytes| serde_json::from_slice::<UndoRecord>(&bytes).ok()) {
        if let Some(len) = undo.journal_len {
            truncate_to(journal_path, len)?;
        }
        if let Some(existed) = undo.hosts_existed {
            put_back(conf_dir, "hosts", UNDO_HOSTS, existed, undo.new_hosts)?;
        }
        if let Some(span) = undo.hosts_appended {
            cut_back(&conf_dir.join("hosts"), span)?;
        }
        if let Some((name, existed)) = &undo.config
            && is_plain_name(name)
        {
            put_back(conf_dir, name, UNDO_CONFIG, *existed, undo.new_config)?;
        }
        if let Some((name, existed)) = &undo.pins
            && is_plain_name(name)
        {
            put_back(conf_dir, name, UNDO_PINS, *existed, undo.new_pins)?;
        }
        for (name, dev, ino) in &undo.created {
            if is_plain_name(name) {
                remove_if_still(&conf_dir.join(name), (*dev, *ino))?;
            }
        }
        // Gone for good before the record that says to remove them.
        if !undo.created.is_empty() {
            sync_dir(conf_dir)?;
        }
        remove_durably(conf_dir, UNDO_NAME)?;
    } else if undone {
        remove_durably(conf_dir, UNDO_NAME)?;
    }
    for name in LEFTOVERS {
        remove_if_present(&conf_dir.join(name))?;
    }
    // The temporary names of the files a change creates: a run from `.0`,
    // removed from its last, so that what a recovery cut short leaves is a
    // run still (and only once the record is gone, whose inodes they keep
    // taken until then).
    let run = (0..).take_while(|n| fs::symlink_metadata(conf_dir.join(created_temp(*n))).is_ok()).count();
    remove_created_temps(conf_dir, run)?;
    // Temporary files named at random, as versions before the fixed names
    // made them, are looked for only after a crash: listing a folder of
    // one config per host costs time growing with the hosts.
    if undone {
        remove_stale_temp_files(conf_dir)?;
    }
    Ok(undone)
}

/// Removes the temporary files a killed writer of an earlier version left:
/// `.hosts.XXXXXX.tmp`, `.HOST.pl.XXXXXX.tmp` and
/// `.HOST.known_hosts.XXXXXX.tmp`, the names [`AtomicWrite::prepare`] gives
/// them. The lock is held, so no writer of ours is using one.
fn remove_stale_temp_files(conf_dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(conf_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { continue };
        let Some((target, random)) = inner.rsplit_once('.') else { continue };
        let host_file = target.ends_with(".pl") || target.ends_with(PINS_SUFFIX);
        let ours = (target == "hosts" || (host_file && is_plain_name(target)))
            && random.len() == 6
            && random.bytes().all(|b| b.is_ascii_alphanumeric());
        if ours && entry.file_type()?.is_file() {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// Puts the old version of `name` back, if the file there is still the one
/// the change wrote (`new`): a file someone else put there since stays.
fn put_back(conf_dir: &Path, name: &str, link: &str, existed: bool, new: Option<(u64, u64)>) -> io::Result<()> {
    let path = conf_dir.join(name);
    let current = match fs::symlink_metadata(&path) {
        Ok(meta) => Some((meta.dev(), meta.ino())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let link_path = conf_dir.join(link);
    let old_is_file =
        fs::symlink_metadata(&link_path).is_ok_and(|meta| meta.file_type().is_file() || meta.file_type().is_symlink());
    match new {
        // The change put its file in place: the old one goes back, or none.
        Some(_) if current == new && existed && old_is_file => fs::rename(&link_path, &path)?,
        Some(_) if current == new && !existed => fs::remove_file(&path)?,
        // The change removed the file: it comes back.
        None if current.is_none() && existed && old_is_file => fs::rename(&link_path, &path)?,
        // Not changed yet, or changed by someone else since: it stays.
        _ => {}
    }
    sync_dir(conf_dir)
}

/// `hosts` opened to append `bytes`, never through a link, never blocking
/// on a FIFO, and only as a regular file; with (device, inode, length
/// before, length after).
fn open_for_append(path: &Path, bytes: &[u8]) -> io::Result<(File, (u64, u64, u64, u64))> {
    use std::os::unix::fs::OpenOptionsExt;
    let file =
        fs::OpenOptions::new().append(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, (meta.dev(), meta.ino(), meta.len(), meta.len() + bytes.len() as u64)))
}

/// Cuts `hosts` back to the length it had before a change appended to it,
/// if it is still the file appended to (`span`: device, inode, length
/// before, length after) and no longer than the change left it: a file
/// someone else wrote since stays.
fn cut_back(path: &Path, (dev, ino, before, after): (u64, u64, u64, u64)) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && (meta.dev(), meta.ino()) == (dev, ino) && meta.len() > before => {
            if meta.len() > after {
                return Ok(());
            }
        }
        Ok(_) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    }
    let file =
        fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino()) != (dev, ino) {
        return Ok(());
    }
    file.set_len(before)?;
    file.sync_all()
}

/// Hard-links `path` (when it exists) to `link` in `conf_dir`; returns
/// whether it existed.
fn link_old(conf_dir: &Path, path: &Path, link: &str) -> io::Result<bool> {
    let link_path = conf_dir.join(link);
    remove_if_present(&link_path)?;
    match fs::symlink_metadata(path) {
        // A link to a symbolic link is to the link itself: what it points
        // to is never touched.
        Ok(meta) if meta.file_type().is_file() || meta.file_type().is_symlink() => {
            fs::hard_link(path, &link_path)?;
            Ok(true)
        }
        Ok(_) => Err(io::Error::other("not a regular file")),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// The temporary name of the `n`th file a change creates.
fn created_temp(n: usize) -> String {
    format!("{NEW_CREATED}.{n}")
}

/// The temporary files of the files a change creates, written so far
/// (their device and inode); dropped, it removes those still there, the
/// last first, so that what a failed removal leaves is still a run from
/// `.0`.
struct CreatedTemps<'a> {
    conf_dir: &'a Path,
    made: Vec<(u64, u64)>,
}

impl Drop for CreatedTemps<'_> {
    fn drop(&mut self) {
        let _ = remove_created_temps(self.conf_dir, self.made.len());
    }
}

/// Removes the temporary names `.0` to `.count - 1` of the files a change
/// creates, the last first: whatever stops it leaves a run from `.0`.
fn remove_created_temps(conf_dir: &Path, count: usize) -> io::Result<()> {
    for n in (0..count).rev() {
        remove_if_present(&conf_dir.join(created_temp(n)))?;
    }
    Ok(())
}

/// Removes the file at `path` if it is still the file `id` (device,
/// inode): one someone else put there since stays.
fn remove_if_still(path: &Path, id: (u64, u64)) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if (meta.dev(), meta.ino()) == id => fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Writes `body` to the new file `temp` (one left by a failed change goes
/// first), mode 0644 as BackupPC's per-host configs are, flushed; its
/// (device, inode).
fn write_new(temp: &Path, body: &[u8]) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    remove_if_present(temp)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(temp)?;
    let written = file
        .set_permissions(fs::Permissions::from_mode(0o644))
        .and_then(|()| file.write_all(body))
        .and_then(|()| file.sync_all())
        .and_then(|()| file.metadata());
    match written {
        Ok(meta) => Ok((meta.dev(), meta.ino())),
        Err(error) => {
            // Gone at once, so that the files left stay a run from `.0`.
            let _ = remove_if_present(temp);
            Err(error)
        }
    }
}

/// Writes the undo record, new, flushed, its creation flushed too.
fn write_undo(conf_dir: &Path, undo: &UndoRecord) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let body = serde_json::to_vec(undo).map_err(io::Error::other)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(conf_dir.join(UNDO_NAME))?;
    file.write_all(&body)?;
    file.sync_all()?;
    sync_dir(conf_dir)
}

fn identity(write: Option<&AtomicWrite>) -> io::Result<Option<(u64, u64)>> {
    write.map(|w| fs::symlink_metadata(w.temp_path()).map(|m| (m.dev(), m.ino()))).transpose()
}

/// The journal's length; 0 when it does not exist yet.
fn journal_length(path: &Path) -> io::Result<u64> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// Cuts the journal back to `len` bytes, never through a link; anything
/// but a longer regular file is not one this change wrote to.
fn truncate_to(path: &Path, len: u64) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() && meta.len() > len => {}
        Ok(_) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    }
    let file = files::open_regular(path, fs::OpenOptions::new().write(true))?;
    file.set_len(len)?;
    file.sync_all()
}

fn read_no_follow(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = files::open_regular(path, fs::OpenOptions::new().read(true))?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut file).take(64 * 1024).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn remove_durably(conf_dir: &Path, name: &str) -> io::Result<()> {
    remove_if_present(&conf_dir.join(name))?;
    sync_dir(conf_dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `path`'s file name, when `path` is that name directly in `conf_dir`.
fn plain_name_in(conf_dir: &Path, path: &Path) -> io::Result<String> {
    let name = path.file_name().and_then(|n| n.to_str()).filter(|n| is_plain_name(n));
    match name {
        Some(name) if path.parent() == Some(conf_dir) => Ok(name.to_owned()),
        _ => Err(io::Error::other("not a file directly in BackupPC's configuration folder")),
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/') && name != "hosts"
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE_HOSTS: &[u8] = b"host dhcp user\nold.example.org 0 alice\n";
    const AFTER_HOSTS: &[u8] = b"host dhcp user\nold.example.org 0 alice\nnew.example.org 0 bob\n";

    fn record() -> JournalRecord {
        JournalRecord {
            time: "2026-01-02T03:04:05Z".into(),
            host: "new.example.org".into(),
            owner: "bob".into(),
            author: String::new(),
            client_ip: "192.0.2.3".into(),
            os: "linux".into(),
            action: "added".into(),
            protocol: 2,
            previous_owner: String::new(),
            admin: String::new(),
            host_keys: Vec::new(),
            previous_host_keys: Vec::new(),
        }
    }

    /// A folder with `hosts`, a journal of one line and, when `old_config`,
    /// a config left from an earlier registration of the new host.
    fn folder(old_config: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), BEFORE_HOSTS).unwrap();
        fs::write(dir.path().join("journal"), "{\"earlier\": 1}\n").unwrap();
        if old_config {
            fs::write(dir.path().join("new.example.org.pl"), "# old\n").unwrap();
            fs::write(dir.path().join("new.example.org.known_hosts"), "new.example.org ssh-rsa OLD\n").unwrap();
        }
        dir
    }

    /// Every file of the folder with its bytes.
    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.file_name().to_string_lossy().into_owned(), fs::read(entry.path()).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    fn add(dir: &Path, last: Step) -> Result<(), ChangeError> {
        let config = dir.join("new.example.org.pl");
        let pins = dir.join("new.example.org.known_hosts");
        let record = record();
        let change = Change {
            hosts: Some(AFTER_HOSTS),
            config: Some((&config, Some(b"# new\n"))),
            pins: Some((&pins, Some(b"new.example.org ssh-ed25519 AAAA\n"))),
            record: Some(&record),
            ..Change::default()
        };
        apply_until(dir, &dir.join("journal"), &change, last)
    }

    #[test]
    fn a_change_cut_short_after_any_step_is_undone_by_the_next_recovery() {
        for old_config in [false, true] {
            for last in [Step::Undo, Step::Journal, Step::Config, Step::Pins, Step::Hosts] {
                let dir = folder(old_config);
                let before = snapshot(dir.path());
                add(dir.path(), last).unwrap();
                assert_ne!(snapshot(dir.path()), before, "{last:?}: nothing happened");
                assert!(recover(dir.path(), &dir.path().join("journal")).unwrap(), "{last:?}");
                assert_eq!(snapshot(dir.path()), before, "{last:?}, old config {old_config}");
                assert!(!recover(dir.path(), &dir.path().join("journal")).unwrap());
            }
        }
    }

    /// A registration's change: its line appended to `hosts` in place.
    fn append(dir: &Path, last: Step) -> Result<(), ChangeError> {
        let config = dir.join("new.example.org.pl");
        let record = record();
        let line = AFTER_HOSTS.strip_prefix(BEFORE_HOSTS).unwrap();
        let change = Change {
            hosts_appended: Some(line),
            config: Some((&config, Some(b"# new\n"))),
            record: Some(&record),
            ..Change::default()
        };
        apply_until(dir, &dir.join("journal"), &change, last)
    }

    #[test]
    fn a_line_appended_in_place_is_undone_after_any_step_and_kept_once_committed() {
        for last in [Step::Undo, Step::Journal, Step::Config, Step::Pins, Step::Hosts] {
            let dir = folder(false);
            let before = snapshot(dir.path());
            let inode = fs::metadata(dir.path().join("hosts")).unwrap().ino();
            append(dir.path(), last).unwrap();
            assert_ne!(snapshot(dir.path()), before, "{last:?}: nothing happened");
            assert!(recover(dir.path(), &dir.path().join("journal")).unwrap(), "{last:?}");
            assert_eq!(snapshot(dir.path()), before, "{last:?}");
            assert_eq!(fs::metadata(dir.path().join("hosts")).unwrap().ino(), inode);
        }
        let dir = folder(false);
        let inode = fs::metadata(dir.path().join("hosts")).unwrap().ino();
        append(dir.path(), Step::Commit).unwrap();
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), AFTER_HOSTS);
        assert_eq!(fs::metadata(dir.path().join("hosts")).unwrap().ino(), inode, "hosts was replaced, not appended to");
        assert_eq!(snapshot_names(dir.path()), ["hosts", "journal", "new.example.org.pl"]);
        assert!(!recover(dir.path(), &dir.path().join("journal")).unwrap());
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), AFTER_HOSTS);
    }

    #[test]
    fn undoing_an_append_keeps_a_hosts_file_someone_else_wrote_since() {
        // BackupPC's web editor saved its own list (a new file, renamed in).
        let dir = folder(false);
        append(dir.path(), Step::Hosts).unwrap();
        let theirs = b"host dhcp user\nweb.example.org 0 carol\n";
        fs::write(dir.path().join("hosts.new"), theirs).unwrap();
        fs::rename(dir.path().join("hosts.new"), dir.path().join("hosts")).unwrap();
        recover(dir.path(), &dir.path().join("journal")).unwrap();
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), theirs);
        // Or someone appended after the change: the file is longer than the
        // change left it, and stays.
        let dir = folder(false);
        append(dir.path(), Step::Hosts).unwrap();
        let mut longer = AFTER_HOSTS.to_vec();
        longer.extend_from_slice(b"hand.example.org 0 dave\n");
        fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("hosts"))
            .unwrap()
            .write_all(b"hand.example.org 0 dave\n")
            .unwrap();
        recover(dir.path(), &dir.path().join("journal")).unwrap();
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), longer);
        assert_eq!(fs::read_to_string(dir.path().join("journal")).unwrap(), "{\"earlier\": 1}\n");
    }

    #[test]
    fn an_append_to_anything_but_a_regular_hosts_changes_nothing() {
        let dir = folder(false);
        let target = dir.path().join("elsewhere");
        fs::write(&target, BEFORE_HOSTS).unwrap();
        fs::remove_file(dir.path().join("hosts")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("hosts")).unwrap();
        let before = snapshot_names(dir.path());
        let error = append(dir.path(), Step::Commit).unwrap_err();
        assert_eq!(error.part, Part::Hosts);
        assert_eq!(snapshot_names(dir.path()), before);
        assert_eq!(fs::read(&target).unwrap(), BEFORE_HOSTS);
        assert_eq!(fs::read_to_string(dir.path().join("journal")).unwrap(), "{\"earlier\": 1}\n");
    }

    #[test]
    fn recovery_removes_the_temporary_files_of_a_killed_writer_and_only_those() {
        let dir = folder(false);
        let plant = |names: &[&str]| {
            for name in names {
                fs::write(dir.path().join(name), "x").unwrap();
            }
        };
        let earlier_versions =
            [".hosts.a1B2c3.tmp", ".pc.example.org.pl.Zz9yY8.tmp", ".pc.example.org.known_hosts.Ab3dE6.tmp"];
        let others = [".hosts.tmp", "hosts.new", ".config.pl.abc.tmp"];
        plant(&[NEW_HOSTS, NEW_CONFIG, NEW_PINS]);
        plant(&earlier_versions);
        plant(&others);
        assert!(pending(dir.path()));
        // Found by their fixed names, without listing the folder.
        assert!(!recover(dir.path(), &dir.path().join("journal")).unwrap());
        let mut left: Vec<&str> = earlier_versions.iter().chain(&others).copied().chain(["hosts", "journal"]).collect();
        left.sort();
        assert_eq!(snapshot_names(dir.path()), left);
        assert!(!pending(dir.path()));
        // After a crash, the folder is listed for the randomly named ones.
        plant(&[UNDO_NAME]);
        assert!(recover(dir.path(), &dir.path().join("journal")).unwrap());
        assert_eq!(snapshot_names(dir.path()), [".config.pl.abc.tmp", ".hosts.tmp", "hosts", "hosts.new", "journal"]);
    }

    #[test]
    fn a_completed_change_leaves_only_its_files() {
        let dir = folder(true);
        add(dir.path(), Step::Commit).unwrap();
        let files = snapshot(dir.path());
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["hosts", "journal", "new.example.org.known_hosts", "new.example.org.pl"]);
        assert_eq!(
            fs::read(dir.path().join("new.example.org.known_hosts")).unwrap(),
            b"new.example.org ssh-ed25519 AAAA\n"
        );
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), AFTER_HOSTS);
        assert_eq!(fs::read(dir.path().join("new.example.org.pl")).unwrap(), b"# new\n");
        let journal = journal::read(&dir.path().join("journal")).unwrap();
        assert_eq!((journal.records.len(), journal.unreadable_lines.as_slice()), (1, &[1][..]));
        assert!(!recover(dir.path(), &dir.path().join("journal")).unwrap());
        assert_eq!(snapshot(dir.path()), files);
    }

    #[test]
    fn a_failed_step_undoes_the_change_at_once() {
        let dir = folder(false);
        let before = snapshot(dir.path());
        let record = record();
        // The journal is a folder: appending fails after the undo record.
        fs::remove_file(dir.path().join("journal")).unwrap();
        fs::create_dir(dir.path().join("journal")).unwrap();
        let before_dir = snapshot_names(dir.path());
        let config = dir.path().join("new.example.org.pl");
        let change = Change {
            hosts: Some(AFTER_HOSTS),
            config: Some((&config, Some(b"# new\n"))),
            record: Some(&record),
            ..Change::default()
        };
        let error = apply(dir.path(), &dir.path().join("journal"), &change).unwrap_err();
        assert_eq!(error.part, Part::Journal);
        assert_eq!(snapshot_names(dir.path()), before_dir);
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), before[0].1);
    }

    fn snapshot_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn recovery_keeps_a_hosts_file_someone_else_wrote_since() {
        let dir = folder(false);
        add(dir.path(), Step::Hosts).unwrap();
        // BackupPC's web editor saves its own list (a new file, renamed in).
        let theirs = b"host dhcp user\nweb.example.org 0 carol\n";
        fs::write(dir.path().join("hosts.new"), theirs).unwrap();
        fs::rename(dir.path().join("hosts.new"), dir.path().join("hosts")).unwrap();
        recover(dir.path(), &dir.path().join("journal")).unwrap();
        assert_eq!(fs::read(dir.path().join("hosts")).unwrap(), theirs);
        assert!(!dir.path().join("new.example.org.pl").exists());
        assert_eq!(fs::read_to_string(dir.path().join("journal")).unwrap(), "{\"earlier\": 1}\n");
    }

    #[test]
    fn a_planted_undo_record_names_no_file_outside_the_folder() {
        let dir = folder(false);
        let victim = dir.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join("precious"), "keep me\n").unwrap();
        let planted = format!(
            "{{\"journal_len\":0,\"hosts_existed\":null,\"config\":[\"../victim/precious\",false],\
             \"new_hosts\":null,\"new_config\":{}}}",
            {
                let meta = fs::metadata(victim.join("precious")).unwrap();
                format!("[{},{}]", meta.dev(), meta.ino())
            }
        );
        fs::write(dir.path().join(UNDO_NAME), planted).unwrap();
        assert!(recover(dir.path(), &dir.path().join("journal")).unwrap());
        assert_eq!(fs::read_to_string(victim.join("precious")).unwrap(), "keep me\n");
        assert!(!dir.path().join(UNDO_NAME).exists());
        // The journal is the configured one, cut back as the record says:
        // what a planted record can do is what the folder's owner can do.
        assert_eq!(fs::read(dir.path().join("journal")).unwrap(), b"");
    }

    #[test]
    fn a_config_outside_the_folder_is_refused_before_anything_changes() {
        let dir = folder(false);
        let before = snapshot(dir.path());
        let outside = tempfile::tempdir().unwrap();
        let config = outside.path().join("x.pl");
        let change = Change { config: Some((&config, Some(b"# x\n"))), ..Change::default() };
        let error = apply(dir.path(), &dir.path().join("journal"), &change).unwrap_err();
        assert_eq!(error.part, Part::Config);
        assert_eq!(snapshot(dir.path()), before);
        assert!(!config.exists());
    }

    /// A group of registrations' change: their lines appended to `hosts`,
    /// their configs and pinned keys created, their records in one write.
    fn group(dir: &Path, last: Step) -> Result<(), ChangeError> {
        let (first, second, keys) =
            (dir.join("new.example.org.pl"), dir.join("two.example.org.pl"), dir.join("two.example.org.known_hosts"));
        let records = [record(), JournalRecord { host: "two.example.org".into(), ..record() }];
        let created: [(&Path, &[u8]); 3] =
            [(&first, b"# new\n"), (&second, b"# two\n"), (&keys, b"two ssh-ed25519 A\n")];
        let change = Change {
            hosts_appended: Some(b"new.example.org 0 bob\ntwo.example.org 0 bob\n"),
            more_records: &records,
            created: &created,
            ..Change::default()
        };
        apply_until(dir, &dir.join("journal"), &change, last)
    }

    #[test]
    fn files_created_together_are_undone_after_any_step_and_leave_nothing_behind() {
        for last in [Step::Undo, Step::Journal, Step::Config, Step::Pins, Step::Hosts] {
            let dir = folder(false);
            let before = snapshot(dir.path());
            group(dir.path(), last).unwrap();
            assert_ne!(snapshot(dir.path()), before, "{last:?}: nothing happened");
            assert!(recover(dir.path(), &dir.path().join("journal")).unwrap(), "{last:?}");
            assert_eq!(snapshot(dir.path()), before, "{last:?}");
        }
        let dir = folder(false);
        group(dir.path(), Step::Commit).unwrap();
        assert_eq!(
            snapshot_names(dir.path()),
            ["hosts", "journal", "new.example.org.pl", "two.example.org.known_hosts", "two.example.org.pl"]
        );
        assert_eq!(fs::read(dir.path().join("two.example.org.pl")).unwrap(), b"# two\n");
        let mode = fs::metadata(dir.path().join("two.example.org.pl")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let journal = fs::read_to_string(dir.path().join("journal")).unwrap();
        assert_eq!(journal.lines().count(), 3, "{journal}");
        assert!(journal.lines().nth(2).unwrap().contains("two.example.org"), "{journal}");
        assert!(!recover(dir.path(), &dir.path().join("journal")).unwrap());
        assert_eq!(fs::read(dir.path().join("two.example.org.pl")).unwrap(), b"# two\n");
    }

    #[test]
    fn a_file_to_create_that_exists_fails_the_change_and_is_kept() {
        let dir = folder(true);
        let before = snapshot(dir.path());
        let error = group(dir.path(), Step::Commit).unwrap_err();
        assert_eq!(error.part, Part::Config);
        assert_eq!(error.source.kind(), io::ErrorKind::AlreadyExists, "{error}");
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn files_a_killed_change_was_writing_before_its_record_are_removed_by_recovery() {
        let dir = folder(false);
        let before = snapshot(dir.path());
        // Killed while writing the third of the files it creates.
        for n in 0..3 {
            fs::write(dir.path().join(created_temp(n)), "# half\n").unwrap();
        }
        assert!(pending(dir.path()));
        assert!(!recover(dir.path(), &dir.path().join("journal")).unwrap());
        assert_eq!(snapshot(dir.path()), before);
        assert!(!pending(dir.path()));
    }

    #[test]
    fn undoing_keeps_a_created_file_someone_replaced_since() {
        let dir = folder(false);
        group(dir.path(), Step::Hosts).unwrap();
        fs::write(dir.path().join("two.example.org.new"), "# theirs\n").unwrap();
        fs::rename(dir.path().join("two.example.org.new"), dir.path().join("two.example.org.pl")).unwrap();
        recover(dir.path(), &dir.path().join("journal")).unwrap();
        assert_eq!(fs::read(dir.path().join("two.example.org.pl")).unwrap(), b"# theirs\n");
        assert!(!dir.path().join("new.example.org.pl").exists());
    }
}
