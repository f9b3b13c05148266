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
use crate::journal::{self, Journal, JournalRecord};
use crate::owner_edits::{self, OwnerEdits};
use crate::registry::{HostLine, parse_hosts};
use protocol::text::escape;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
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
            Finding::BadName { line, host, reason } => format!("hosts line {line}: host `{host}` {reason}"),
            Finding::Duplicate { host, lines, owners } => {
                let first = owners.first().map(String::as_str).unwrap_or_default();
                let last = owners.last().map(String::as_str).unwrap_or_default();
                format!(
                    "{host} has {} lines in hosts (lines {}, owners {}): BackupPC's daemon and web page see {}, \
                     BackupPC_dump sees {}",
                    lines.len(),
                    join(lines),
                    owners.iter().map(|owner| shown_owner(owner)).collect::<Vec<_>>().join(", "),
                    shown_owner(last),
                    shown_owner(first)
                )
            }
            Finding::LostLine { host, record, config_present } => format!(
                "{host} is registered to {} in the journal ({} {}) but has no line in hosts, so BackupPC does not \
                 back it up{} (BackupPC's web host editor drops a host registered while its page was open)",
                escape(record.owner.as_bytes()),
                escape(record.action.as_bytes()),
                escape(record.time.as_bytes()),
                if *config_present { "" } else { " and its config file is gone too" }
            ),
            Finding::OrphanConfig { host, path } => format!(
                "{}: written by bpc-register for {host}, which has no line in hosts and no registration in the \
                 journal; a line added for {host} later would bring its old settings back",
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
        }
    }
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
}

impl Sources {
    /// The sources `config` names.
    pub fn of(config: &crate::ServerConfig) -> Sources {
        let conf_dir = config.backuppc.conf_dir.clone();
        let journal = config.journal.clone().unwrap_or_else(|| conf_dir.join(journal::JOURNAL_NAME));
        Sources { conf_dir, journal }
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
        let own_configs = self.own_configs()?;
        Ok(compare(&self.conf_dir, &self.journal, hosts, &journal, &own_configs))
    }

    /// `LOCK` held shared, when it exists; `None` when it does not (no
    /// registration and no save of BackupPC's web page ever took it).
    fn shared_lock(&self) -> Result<Option<File>, CheckError> {
        let path = self.conf_dir.join("LOCK");
        let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
        let file = match OpenOptions::new().read(true).custom_flags(flags).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(CheckError::NotRegular { path, what: "LOCK" });
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
        file.lock_shared().map_err(|source| CheckError::Read { path, action: "take the lock", source })?;
        Ok(Some(file))
    }

    /// The per-host configs in the configuration folder that bpc-register
    /// wrote, by host: regular files named `HOST.pl` (never `config.pl`)
    /// whose first line is [`hostconfig::HEADER_PREFIX`] and the same host.
    /// Links are not followed and nothing else is opened for writing.
    pub fn own_configs(&self) -> Result<BTreeMap<String, PathBuf>, CheckError> {
        let fail = |source| CheckError::Read { path: self.conf_dir.clone(), action: "list the folder", source };
        let mut found = BTreeMap::new();
        for entry in fs::read_dir(&self.conf_dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name();
            let Some(host) = name.to_str().and_then(|name| name.strip_suffix(".pl")) else { continue };
            if host.is_empty() || host == "config" || !entry.file_type().map_err(fail)?.is_file() {
                continue;
            }
            let path = entry.path();
            if first_line(&path).as_deref().and_then(hostconfig::written_for) == Some(host) {
                found.insert(host.to_owned(), path);
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
fn compare(
    conf_dir: &Path,
    journal_path: &Path,
    hosts: &[u8],
    journal: &Journal,
    own_configs: &BTreeMap<String, PathBuf>,
) -> Inspection {
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
            let finding = Finding::BadName { line: *line, host: escape(host.host.as_bytes()), reason };
            all.push((*line, Vec::new(), finding));
        }
    }
    all.sort_by_key(|(line, _, _)| *line);
    findings.extend(all.into_iter().map(|(_, _, finding)| finding));

    let mut by_host: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (line, host) in &numbered.hosts {
        by_host.entry(host.host.as_str()).or_default().push((*line, host.user.as_str()));
    }
    let mut duplicates: Vec<Finding> = by_host
        .iter()
        .filter(|(_, lines)| lines.len() > 1)
        .map(|(host, lines)| Finding::Duplicate {
            host: escape(host.as_bytes()),
            lines: lines.iter().map(|(line, _)| *line).collect(),
            owners: lines.iter().map(|(_, owner)| (*owner).to_owned()).collect(),
        })
        .collect();
    duplicates.sort_by_key(|finding| match finding {
        Finding::Duplicate { lines, .. } => lines.first().copied().unwrap_or_default(),
        _ => 0,
    });
    findings.extend(duplicates);

    let mut registered: BTreeMap<String, &JournalRecord> = BTreeMap::new();
    for record in &journal.records {
        let host = record.host.to_ascii_lowercase();
        if REGISTERED.contains(&record.action.as_str()) {
            registered.insert(host, record);
        } else {
            registered.remove(&host);
        }
    }
    for (host, record) in &registered {
        if !present.contains(host) {
            let config_present = conf_dir.join(format!("{host}.pl")).exists();
            findings.push(Finding::LostLine { host: host.clone(), record: (*record).clone(), config_present });
        }
    }
    for (host, path) in own_configs {
        let host_lower = host.to_ascii_lowercase();
        if !present.contains(&host_lower) && !registered.contains_key(&host_lower) {
            findings.push(Finding::OrphanConfig { host: escape(host.as_bytes()), path: path.clone() });
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
        own_configs: own_configs.len(),
    }
}

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
        }
    }

    /// A configuration folder with `hosts` and the journal's `records`.
    fn folder(hosts: &str, records: &[JournalRecord]) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts"), hosts).unwrap();
        let journal = dir.path().join(journal::JOURNAL_NAME);
        for record in records {
            journal::append(&journal, record).unwrap();
        }
        let sources = Sources { conf_dir: dir.path().to_owned(), journal };
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
             page was open)"
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

    #[test]
    fn the_config_of_a_lost_host_is_not_an_orphan() {
        let (dir, sources) = folder(HEADER, &[record("pc.example.org", "alice", "added")]);
        own_config(dir.path(), "pc.example.org");
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
                owners: vec!["alice".into(), "mallory".into()]
            }]
        );
        assert_eq!(
            found[0].describe(),
            "pc.example.org has 2 lines in hosts (lines 2, 4, owners alice, mallory): BackupPC's daemon and web page \
             see mallory, BackupPC_dump sees alice"
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
}
