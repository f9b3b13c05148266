//! The journal of registrations: one JSON object per line, appended and
//! flushed under BackupPC's lock, the record of who registered what and when.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

/// The journal's default name, beside `hosts`.
pub const JOURNAL_NAME: &str = "bpc-enroll-journal.jsonl";

/// The action of a record written when an administrator gives a host to
/// another owner.
pub const TRANSFERRED: &str = "transferred";

/// The action of a record written when an administrator removes a host.
pub const REMOVED: &str = "removed";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalRecord {
    /// When, RFC 3339 UTC.
    pub time: String,
    /// The host.
    pub host: String,
    /// The user it is registered to.
    pub owner: String,
    /// Who authenticated (empty without a challenge).
    pub author: String,
    /// The client's address.
    pub client_ip: String,
    /// The OS type sent, under its canonical name (`macos` for `mac`).
    pub os: String,
    /// `added` or `confirmed` (a registration), `transferred` or `removed`
    /// (an administrator's command), `restored` (a lost `hosts` line put
    /// back by `check --fix --yes`).
    pub action: String,
    /// The protocol version (0 for an administrator's command).
    pub protocol: u32,
    /// The owner before a `transferred` record; empty otherwise, and absent
    /// from the line when empty, so that older readers read it as before.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous_owner: String,
    /// The administrator who ran the command, for `transferred`, `removed`
    /// and `restored`; empty (and absent) for registrations.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub admin: String,
    /// The SHA256 fingerprints of the host keys pinned for the host after
    /// this record (`ssh-keygen -l`'s `SHA256:...`); empty (and absent)
    /// when none are pinned or the record does not change them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_keys: Vec<String>,
    /// The fingerprints pinned before, when a registration replaced them;
    /// empty (and absent) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_host_keys: Vec<String>,
}

/// The journal as read back: the records in file order, and the lines that
/// are not records (a line cut short by a crash, an edit by hand), by number.
#[derive(Debug, Default)]
pub struct Journal {
    /// The records, oldest first.
    pub records: Vec<JournalRecord>,
    /// The 1-based numbers of the lines that could not be read.
    pub unreadable_lines: Vec<usize>,
}

impl Journal {
    /// The records about `host`, oldest first.
    pub fn history<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a JournalRecord> + 'a {
        self.records.iter().filter(move |record| record.host.eq_ignore_ascii_case(host))
    }

    /// The last record about `host`.
    pub fn last_about(&self, host: &str) -> Option<&JournalRecord> {
        self.records.iter().rev().find(|record| record.host.eq_ignore_ascii_case(host))
    }

    /// The record that made `host`'s current registration: the last one
    /// about it that registered, confirmed or transferred it, unless a
    /// `removed` record came after it.
    pub fn registration_of(&self, host: &str) -> Option<&JournalRecord> {
        self.last_about(host).filter(|record| record.action != REMOVED)
    }
}

/// Reads the journal at `path`; a journal that does not exist is empty. It
/// is read as it is written: never through a link put in its place, and
/// only as a regular file (a FIFO would hold the reader, and BackupPC's
/// lock with it; a device would never end).
pub fn read(path: &Path) -> io::Result<Journal> {
    use std::io::Read;
    let mut file = match files::open_regular(path, std::fs::OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Journal::default()),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut journal = Journal::default();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<JournalRecord>(line) {
            Ok(record) => journal.records.push(record),
            Err(_) => journal.unreadable_lines.push(index + 1),
        }
    }
    Ok(journal)
}

/// The current time as the journal writes it.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Appends `records` to the journal at `path` in one write and flushes it to disk; the
/// returned mark takes it back (while BackupPC's lock is still held). The
/// journal is created 0640 (by root: given to the folder's owner), never
/// written through a link planted in its place, and only when it is a
/// regular file ([`crate::shared_file`]).
pub(crate) fn append(path: &Path, records: &[JournalRecord]) -> io::Result<JournalMark> {
    let mut line = String::new();
    for record in records {
        line.push_str(&serde_json::to_string(record).map_err(io::Error::other)?);
        line.push('\n');
    }
    let mut file = crate::shared_file::open(path, OpenOptions::new().append(true), 0o640)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let previous_len = file.metadata()?.len();
    let written = file.write_all(line.as_bytes()).and_then(|()| file.sync_data());
    let mark = JournalMark { file, previous_len };
    match written {
        Ok(()) => Ok(mark),
        Err(error) => {
            mark.undo();
            Err(error)
        }
    }
}

/// A record just appended to the journal, which can be taken back while the
/// lock is held.
pub(crate) struct JournalMark {
    file: File,
    previous_len: u64,
}

impl JournalMark {
    /// Cuts the journal back to its length before the record.
    pub(crate) fn undo(self) {
        let _ = self.file.set_len(self.previous_len).and_then(|()| self.file.sync_data());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn record(host: &str, action: &str) -> JournalRecord {
        JournalRecord {
            time: "2026-01-02T03:04:05Z".into(),
            host: host.into(),
            owner: "alice".into(),
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

    #[test]
    fn a_line_written_before_the_administration_fields_still_reads() {
        let line = br#"{"time":"2026-01-02T03:04:05Z","host":"pc.example.org","owner":"alice","author":"","client_ip":"192.0.2.2","os":"linux","action":"added","protocol":2}"#;
        let old: JournalRecord = serde_json::from_slice(line).unwrap();
        assert_eq!(old, record("pc.example.org", "added"));
        assert_eq!(serde_json::to_vec(&old).unwrap(), line, "empty new fields are left out of the line");
        let transferred = JournalRecord {
            action: TRANSFERRED.into(),
            previous_owner: "alice".into(),
            owner: "bob".into(),
            admin: "carol".into(),
            ..record("pc.example.org", "")
        };
        let line = serde_json::to_string(&transferred).unwrap();
        assert!(line.ends_with(r#""previous_owner":"alice","admin":"carol"}"#), "{line}");
        assert_eq!(serde_json::from_str::<JournalRecord>(&line).unwrap(), transferred);
    }

    #[test]
    fn a_removed_host_has_no_current_registration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_NAME);
        append(&path, &[record("pc.example.org", "added")]).unwrap();
        assert_eq!(read(&path).unwrap().registration_of("pc.example.org").map(|r| r.action.as_str()), Some("added"));
        append(&path, &[record("pc.example.org", REMOVED)]).unwrap();
        assert!(read(&path).unwrap().registration_of("pc.example.org").is_none());
    }

    #[test]
    fn reads_back_what_was_appended_and_names_broken_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_NAME);
        append(&path, &[record("pc.example.org", "added")]).unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"time\": cut short\n").unwrap();
        append(&path, &[record("PC.example.org", "confirmed")]).unwrap();
        append(&path, &[record("other.example.org", "added")]).unwrap();
        let journal = read(&path).unwrap();
        assert_eq!(journal.records.len(), 3);
        assert_eq!(journal.unreadable_lines, vec![2]);
        let actions: Vec<&str> = journal.history("pc.example.org").map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["added", "confirmed"]);
        assert_eq!(journal.last_about("other.example.org").map(|r| r.action.as_str()), Some("added"));
        assert!(journal.last_about("nobody.example.org").is_none());
    }

    #[test]
    fn a_missing_journal_is_empty_and_an_undone_record_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_NAME);
        assert_eq!(read(&path).unwrap().records, []);
        append(&path, &[record("a.example.org", "added")]).unwrap();
        append(&path, &[record("b.example.org", "added")]).unwrap().undo();
        let hosts: Vec<String> = read(&path).unwrap().records.into_iter().map(|r| r.host).collect();
        assert_eq!(hosts, ["a.example.org"]);
    }

    #[test]
    fn a_journal_put_as_a_link_a_fifo_or_a_device_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_NAME);
        let secret = dir.path().join("secret");
        fs::write(&secret, "{\"secret\": 1}\n").unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(read(&path).is_err());
        fs::remove_file(&path).unwrap();
        // A FIFO would hold the reader, and BackupPC's lock with it.
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read(&path).unwrap_err().to_string(), "it is not a regular file");
    }
}
