//! Editing the lines of BackupPC's `hosts` in place: giving a host another
//! owner, or removing its lines, with every other byte of the file kept
//! (comments, blank lines, other hosts, the other columns of the edited
//! line, its separators).
//!
//! A [`HostsEditor`] holds BackupPC's `LOCK` from the moment it reads `hosts`
//! until it is dropped, so that a caller can decide from what it read, make
//! its other writes (a journal record, a per-host config set aside) and put
//! the new `hosts` in place, all under the one lock BackupPC's web page also
//! takes. Nothing is written until [`HostsEditor::commit`]; the edit itself
//! ([`HostsEditor::change_lines`]) is computed in memory and checked: the new
//! file must read, as BackupPC reads it ([`parse_hosts`]), exactly as the old
//! one with the asked changes and nothing else, or it is refused.

use super::{BackupPcRegistry, HostLine, HostsFile, RegistryError, parse_hosts};
use crate::journal::JournalRecord;
use crate::transaction::Change;
use protocol::{HostName, Logon};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// What becomes of one host line of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineChange {
    /// The line stays as it is.
    Keep,
    /// The line goes, with its line break.
    Remove,
    /// Every `user` column of the line (BackupPC reads the last) holds this
    /// owner; the rest of the line is kept byte for byte.
    SetOwner(Logon),
}

/// One line an edit changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedLine {
    /// Its number in the file, from 1.
    pub line: usize,
    /// The line as BackupPC read it before.
    pub before: HostLine,
    /// What was done to it (never [`LineChange::Keep`]).
    pub change: LineChange,
}

/// A new `hosts`, computed but not yet written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsEdit {
    /// The whole new file.
    pub body: Vec<u8>,
    /// The lines that changed, in file order; empty when nothing would.
    pub changed: Vec<ChangedLine>,
}

/// Why `hosts` could not be edited. Whatever the cause, nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A file could not be read or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// BackupPC's lock stayed taken.
    #[error(
        "{path}: BackupPC's lock is held by another program (its web page saving hosts, or a registration) for more than {seconds} s; nothing was changed, try again"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long was waited.
        seconds: u64,
    },
    /// `hosts` is not a regular file.
    #[error(
        "{path}: {what}; BackupPC's hosts must be a regular file, and bpc-register follows no link there; nothing was changed"
    )]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What was found.
        what: &'static str,
    },
    /// A line cannot be changed without risk of BackupPC reading the file
    /// differently.
    #[error("{path}:{line}: {reason}; nothing was changed: edit that line by hand")]
    Uneditable {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// `hosts` read under BackupPC's lock, held until this is dropped.
#[derive(Debug)]
pub struct HostsEditor<'a> {
    registry: &'a BackupPcRegistry,
    _lock: File,
    bytes: Vec<u8>,
    parsed: HostsFile,
    mtime: Option<SystemTime>,
}

impl BackupPcRegistry {
    /// Takes BackupPC's lock, waiting at most `wait` for whoever holds it,
    /// and reads `hosts` under it. `hosts` is opened without following a
    /// link, and must be a regular file (a missing one reads as empty).
    pub fn edit_hosts(&self, wait: Duration) -> Result<HostsEditor<'_>, EditError> {
        let lock = self.open_lock_for_writing()?;
        let lock_path = self.conf_dir.join("LOCK");
        let deadline = Instant::now() + wait;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(EditError::Busy { path: lock_path, seconds: wait.as_secs() });
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(RegistryError::Hosts { path: lock_path, action: "take the lock", source }.into());
                }
            }
        }
        self.recover()?;
        let (bytes, mtime) = self.read_hosts_without_links()?;
        let parsed = parse_hosts(&bytes);
        Ok(HostsEditor { registry: self, _lock: lock, bytes, parsed, mtime })
    }

    /// `hosts` as BackupPC reads it, for a command that only reads: under
    /// BackupPC's lock held shared when `LOCK` exists (its writers rename
    /// `hosts` away for an instant under the lock), waiting for it at most
    /// a few seconds; opened as [`BackupPcRegistry::edit_hosts`] opens it.
    /// Nothing is created, unless a change was cut short: that is undone
    /// first.
    pub fn hosts_file(&self) -> Result<HostsFile, EditError> {
        // A change cut short is undone first (under the exclusive lock), so
        // that what is read is whole.
        if crate::transaction::pending(&self.conf_dir) {
            drop(self.edit_hosts(Duration::from_secs(5))?);
        }
        let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
        let lock = OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(self.conf_dir.join("LOCK"))
            .ok()
            .filter(|lock| lock.metadata().is_ok_and(|meta| meta.is_file()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(lock) = &lock {
            match lock.try_lock_shared() {
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
        let (bytes, _) = self.read_hosts_without_links()?;
        Ok(parse_hosts(&bytes))
    }

    /// `hosts`'s bytes and modification time, opened without following a
    /// link or blocking on a FIFO; empty when there is no file.
    fn read_hosts_without_links(&self) -> Result<(Vec<u8>, Option<SystemTime>), EditError> {
        let path = self.hosts_path();
        let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
        match OpenOptions::new().read(true).custom_flags(flags).open(&path) {
            Ok(mut file) => {
                let meta = file.metadata().map_err(|source| RegistryError::Hosts {
                    path: path.clone(),
                    action: "examine",
                    source,
                })?;
                if !meta.is_file() {
                    return Err(EditError::NotRegular { path, what: "not a regular file" });
                }
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(|source| RegistryError::Hosts {
                    path: path.clone(),
                    action: "read",
                    source,
                })?;
                Ok((bytes, meta.modified().ok()))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok((Vec::new(), None)),
            Err(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
                Err(EditError::NotRegular { path, what: "a symbolic link" })
            }
            Err(source) => Err(RegistryError::Hosts { path, action: "read", source }.into()),
        }
    }
}

impl HostsEditor<'_> {
    /// `hosts` as BackupPC reads it, as it was when the lock was taken.
    pub fn hosts(&self) -> &HostsFile {
        &self.parsed
    }

    /// `hosts`'s bytes, as they were when the lock was taken.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The new `hosts` with `change` applied to the lines of `host` (all of
    /// them, when the file has duplicates).
    pub fn change_host(&self, host: &HostName, change: &LineChange) -> Result<HostsEdit, EditError> {
        self.change_lines(|line| if line.host == host.as_str() { change.clone() } else { LineChange::Keep })
    }

    /// The new `hosts`, with `change` deciding each host line in file order
    /// (the header and the lines BackupPC skips are kept as they are).
    ///
    /// The result is checked before it is returned: read as BackupPC reads
    /// it, it must have the same header and the same host lines, less those
    /// removed and with the new owners. A line whose owner cannot be
    /// replaced in place (it has no `user` column, or a carriage return
    /// inside it, which BackupPC's reading moves around) is refused.
    pub fn change_lines(&self, mut change: impl FnMut(&HostLine) -> LineChange) -> Result<HostsEdit, EditError> {
        let path = self.registry.hosts_path();
        let uneditable = |line: usize, reason: String| EditError::Uneditable { path: path.clone(), line, reason };
        let mut body = Vec::with_capacity(self.bytes.len());
        let mut changed = Vec::new();
        let mut expected = Vec::with_capacity(self.parsed.hosts.len());
        let mut header: Option<(&[u8], Vec<String>)> = None;
        for (index, with_break) in self.bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            let number = index + 1;
            let raw = with_break.strip_suffix(b"\n").unwrap_or(with_break);
            // The line as BackupPC reads it: alone it would be a header,
            // after the header a host line.
            let Some(fields) = parse_hosts(raw).header else {
                body.extend_from_slice(with_break);
                continue;
            };
            let Some((header_raw, header_fields)) = &header else {
                header = Some((raw, fields));
                body.extend_from_slice(with_break);
                continue;
            };
            let mut pair = header_raw.to_vec();
            pair.push(b'\n');
            pair.extend_from_slice(raw);
            let Some(line) = parse_hosts(&pair).hosts.into_iter().next() else {
                body.extend_from_slice(with_break);
                continue;
            };
            match change(&line) {
                LineChange::Keep => {
                    body.extend_from_slice(with_break);
                    expected.push(line);
                }
                LineChange::Remove => {
                    changed.push(ChangedLine { line: number, before: line, change: LineChange::Remove })
                }
                LineChange::SetOwner(owner) => {
                    let new = with_owner(raw, header_fields, &owner).map_err(|reason| uneditable(number, reason))?;
                    body.extend_from_slice(&new);
                    body.extend_from_slice(with_break.get(raw.len()..).unwrap_or_default());
                    expected.push(HostLine { host: line.host.clone(), user: owner.to_string() });
                    changed.push(ChangedLine { line: number, before: line, change: LineChange::SetOwner(owner) });
                }
            }
        }
        let after = parse_hosts(&body);
        if after.header != self.parsed.header || after.hosts != expected {
            let line = changed.first().map_or(0, |changed| changed.line);
            return Err(uneditable(line, "BackupPC would read the edited file differently than intended".into()));
        }
        Ok(HostsEdit { body, changed })
    }

    /// Makes the change whole or not at all, while the lock is held (see
    /// [`transaction`]): `edit` in place of `hosts` (its modification time
    /// moved to a later second than before when needed, as a registration
    /// does, so that BackupPC's daemon sees the change), `host`'s per-host
    /// config written or removed (a link is removed itself, never what it
    /// points to), and `record` appended to the journal.
    pub fn apply(
        &self,
        edit: Option<&HostsEdit>,
        config: Option<(&HostName, Option<&[u8]>)>,
        record: Option<&JournalRecord>,
    ) -> Result<(), EditError> {
        let config_path = config.map(|(host, _)| self.registry.host_config_path(host));
        // A host's config removed takes its pinned keys with it.
        let pins_path = match config {
            Some((host, None)) => Some(self.registry.pins_path(host)),
            _ => None,
        };
        let change = Change {
            hosts: edit.map(|edit| edit.body.as_slice()),
            config: config_path.as_deref().zip(config.map(|(_, body)| body)),
            pins: pins_path.as_deref().map(|path| (path, None)),
            record,
            ..Change::default()
        };
        self.registry.apply(&change)?;
        if edit.is_some() {
            self.registry.after_change(self.mtime);
        }
        Ok(())
    }
}

/// `raw` with every `user` column of `header` replaced by `owner`, every
/// other byte kept.
fn with_owner(raw: &[u8], header: &[String], owner: &Logon) -> Result<Vec<u8>, String> {
    let spans = field_spans(raw)?;
    let columns: Vec<usize> = header.iter().enumerate().filter(|(_, name)| *name == "user").map(|(i, _)| i).collect();
    let Some(last) = columns.last() else {
        return Err("the header names no user column, so BackupPC sees no owner on any line".into());
    };
    if *last >= spans.len() {
        return Err("the line has no user column to change".into());
    }
    let mut out = Vec::with_capacity(raw.len() + owner.as_str().len());
    let mut at = 0;
    for column in columns {
        let Some(span) = spans.get(column) else { continue };
        out.extend_from_slice(raw.get(at..span.start).unwrap_or_default());
        out.extend_from_slice(owner.as_str().as_bytes());
        at = span.end;
    }
    out.extend_from_slice(raw.get(at..).unwrap_or_default());
    Ok(out)
}

/// Where each field of a host line lies in `raw`, split as BackupPC's
/// `HostInfoRead` splits it: the comment and trailing white space go, and
/// white space not preceded by a backslash separates fields. A carriage
/// return anywhere but at the end would be removed by BackupPC before it
/// splits, shifting what follows: such a line is refused.
fn field_spans(raw: &[u8]) -> Result<Vec<std::ops::Range<usize>>, String> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | 0x0b | 0x0c);
    let content_len = raw.len() - raw.iter().rev().take_while(|b| **b == b'\r').count();
    let content = raw.get(..content_len).unwrap_or_default();
    if content.contains(&b'\r') {
        return Err("the line holds a carriage return, which BackupPC's reading moves around".into());
    }
    let mut end = content.iter().position(|b| *b == b'#').unwrap_or(content.len());
    while end > 0 && content.get(end - 1).is_some_and(|b| is_space(*b)) {
        end -= 1;
    }
    let mut spans = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < end {
        let byte = content.get(index).copied().unwrap_or_default();
        let escaped = index > 0 && content.get(index - 1) == Some(&b'\\');
        if is_space(byte) && !escaped {
            spans.push(start..index);
            while index < end && content.get(index).is_some_and(|b| is_space(*b)) {
                index += 1;
            }
            start = index;
            continue;
        }
        index += 1;
    }
    spans.push(start..end);
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::os::unix::fs::symlink;

    const DEBIAN_HOSTS: &str = "#\n# comment\n#\nhost        dhcp    user    moreUsers     # <--- do not edit this line\n#farside    0       craig   jill,jeff     # <--- example static IP host entry\nlocalhost   0       backuppc\n";

    fn host(name: &str) -> HostName {
        HostName::parse(name).unwrap()
    }

    fn logon(name: &str) -> Logon {
        Logon::parse(name).unwrap()
    }

    /// A registry over a folder whose `hosts` holds `hosts`.
    fn folder(hosts: &[u8]) -> (tempfile::TempDir, BackupPcRegistry) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), hosts).unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        (dir, registry)
    }

    /// `change` applied to the lines of `host_name` (which, as BackupPC
    /// reads it, may hold an escaped space no `HostName` holds).
    fn edited(hosts: &[u8], host_name: &str, change: LineChange) -> Result<HostsEdit, EditError> {
        let (_dir, registry) = folder(hosts);
        let editor = registry.edit_hosts(Duration::ZERO).unwrap();
        editor.change_lines(|line| if line.host == host_name { change.clone() } else { LineChange::Keep })
    }

    #[test]
    fn a_new_owner_replaces_the_user_column_and_nothing_else() {
        let hosts = format!("{DEBIAN_HOSTS}pc.example.org  0\talice  moreusers # laptop\r\nother 1 bob\n");
        let edit = edited(hosts.as_bytes(), "pc.example.org", LineChange::SetOwner(logon("carol"))).unwrap();
        let expected = format!("{DEBIAN_HOSTS}pc.example.org  0\tcarol  moreusers # laptop\r\nother 1 bob\n");
        assert_eq!(String::from_utf8(edit.body).unwrap(), expected);
        assert_eq!(
            edit.changed,
            [ChangedLine {
                line: 7,
                before: HostLine { host: "pc.example.org".into(), user: "alice".into() },
                change: LineChange::SetOwner(logon("carol")),
            }]
        );
    }

    #[test]
    fn removing_takes_every_line_of_the_host_and_keeps_the_rest() {
        let hosts = b"# r\xe9serv\xe9\nhost dhcp user\npc 0 alice\nkeep 0 bob # stays\nPC 0 mallory\n#pc 0 comment\n";
        let edit = edited(hosts, "pc", LineChange::Remove).unwrap();
        assert_eq!(edit.body, b"# r\xe9serv\xe9\nhost dhcp user\nkeep 0 bob # stays\n#pc 0 comment\n");
        assert_eq!(edit.changed.iter().map(|c| c.line).collect::<Vec<_>>(), [3, 5]);
        let last = edited(b"host dhcp user\nkeep 0 bob\npc 0 alice", "pc", LineChange::Remove).unwrap();
        assert_eq!(last.body, b"host dhcp user\nkeep 0 bob\n");
    }

    #[test]
    fn every_user_column_gets_the_owner_and_backuppc_reads_the_last() {
        let edit =
            edited(b"host dhcp user user\npc 0 alice mallory\n", "pc", LineChange::SetOwner(logon("bob"))).unwrap();
        assert_eq!(edit.body, b"host dhcp user user\npc 0 bob bob\n");
        let edit = edited(b"host user dhcp\npc\\ 1 alice\\ b 0\n", "pc 1", LineChange::SetOwner(logon("bob"))).unwrap();
        assert_eq!(edit.body, b"host user dhcp\npc\\ 1 bob 0\n");
    }

    #[test]
    fn a_line_that_cannot_be_changed_in_place_is_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"host dhcp user\npc 0\n", "no user column"),
            (b"host dhcp moreUsers\npc 0 x\n", "names no user column"),
            (b"host dhcp user\npc 0 al\rice\n", "carriage return"),
        ];
        for (hosts, reason) in cases {
            let error = edited(hosts, "pc", LineChange::SetOwner(logon("bob"))).unwrap_err();
            assert!(matches!(&error, EditError::Uneditable { line: 2, .. }), "{error}");
            assert!(error.to_string().contains(reason), "{error}");
        }
    }

    #[test]
    fn an_unknown_host_changes_nothing() {
        let edit = edited(DEBIAN_HOSTS.as_bytes(), "absent.example.org", LineChange::Remove).unwrap();
        assert_eq!(edit.body, DEBIAN_HOSTS.as_bytes());
        assert_eq!(edit.changed, []);
    }

    #[test]
    fn a_commit_writes_the_edit_and_never_moves_the_mtime_back() {
        let (dir, registry) = folder(DEBIAN_HOSTS.as_bytes());
        let path = dir.path().join("hosts");
        // An mtime ahead of the clock (set by hand) is kept, never moved
        // back to a second BackupPC may have stored, and a settle is owed.
        let future = SystemTime::UNIX_EPOCH + Duration::from_secs(hosts_mtime_seconds(SystemTime::now()) + 100);
        File::options().write(true).open(&path).unwrap().set_modified(future).unwrap();
        let editor = registry.edit_hosts(Duration::ZERO).unwrap();
        let edit = editor.change_host(&host("localhost"), &LineChange::SetOwner(logon("carol"))).unwrap();
        editor.apply(Some(&edit), None, None).unwrap();
        drop(editor);
        assert_eq!(fs::read(&path).unwrap(), DEBIAN_HOSTS.replace("0       backuppc", "0       carol").as_bytes());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), future);
        assert!(registry.settle_owed.get());
        assert_eq!(registry.owner_of(&host("localhost")).unwrap().as_deref(), Some("carol"));
    }

    fn hosts_mtime_seconds(time: SystemTime) -> u64 {
        time.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn the_lock_is_held_until_the_editor_goes_and_a_second_editor_is_told_busy() {
        let (dir, registry) = folder(DEBIAN_HOSTS.as_bytes());
        let editor = registry.edit_hosts(Duration::ZERO).unwrap();
        let error = registry.edit_hosts(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(error, EditError::Busy { .. }), "{error}");
        assert!(error.to_string().contains(&dir.path().join("LOCK").display().to_string()), "{error}");
        drop(editor);
        registry.edit_hosts(Duration::ZERO).unwrap();
    }

    #[test]
    fn a_hosts_replaced_by_a_link_is_neither_read_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "host dhcp user\nsecret 0 root\n").unwrap();
        symlink(&victim, dir.path().join("hosts")).unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let error = registry.edit_hosts(Duration::ZERO).unwrap_err();
        assert!(matches!(error, EditError::NotRegular { what: "a symbolic link", .. }), "{error}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "host dhcp user\nsecret 0 root\n");
        assert!(fs::symlink_metadata(dir.path().join("hosts")).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_fifo_in_place_of_hosts_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("hosts"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let error = BackupPcRegistry::new(dir.path()).edit_hosts(Duration::ZERO).unwrap_err();
        assert!(matches!(error, EditError::NotRegular { what: "not a regular file", .. }), "{error}");
    }

    #[test]
    fn a_config_removed_with_its_line_is_a_link_removed_never_what_it_points_to() {
        let (dir, registry) = folder(format!("{DEBIAN_HOSTS}pc.example.org 0 alice\n").as_bytes());
        let config = dir.path().join("pc.example.org.pl");
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        symlink(&victim, &config).unwrap();
        let editor = registry.edit_hosts(Duration::ZERO).unwrap();
        let edit = editor.change_host(&host("pc.example.org"), &LineChange::Remove).unwrap();
        editor.apply(Some(&edit), Some((&host("pc.example.org"), None)), None).unwrap();
        drop(editor);
        assert!(fs::symlink_metadata(&config).is_err(), "the link is gone");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(fs::read_to_string(dir.path().join("hosts")).unwrap(), DEBIAN_HOSTS);
        let mut names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["LOCK", "hosts", "victim"]);
    }

    proptest::proptest! {
        #[test]
        fn an_edit_either_reads_as_intended_or_is_refused(
            lines in proptest::collection::vec("[ a-cA-C0-9#\\\\\t\r.]{0,16}", 0..8),
            remove in proptest::prelude::any::<bool>(),
        ) {
            let hosts = format!("host dhcp user\n{}", lines.join("\n"));
            let change = if remove { LineChange::Remove } else { LineChange::SetOwner(logon("zed")) };
            let (_dir, registry) = folder(hosts.as_bytes());
            let editor = registry.edit_hosts(Duration::ZERO).unwrap();
            for line in editor.hosts().hosts.clone() {
                let Ok(name) = HostName::parse(&line.host) else { continue };
                if let Ok(edit) = editor.change_host(&name, &change) {
                    let after = parse_hosts(&edit.body);
                    let owners = after.owners_of(name.as_str());
                    let as_intended = if remove { owners.is_empty() } else { owners.iter().all(|o| *o == "zed") };
                    proptest::prop_assert!(as_intended, "{:?}", String::from_utf8_lossy(&edit.body));
                }
            }
        }
    }
}
