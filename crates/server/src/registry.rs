//! Registering a host in BackupPC: the `hosts` line and the per-host config.

use crate::journal::{self, JOURNAL_NAME, JournalRecord};
use crate::transaction::{self, Change, Part};
use protocol::{HostName, Logon, Refusal};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}

/// What a successful registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The host was new: its line and its config were written.
    Added,
    /// The host was already registered to the same owner; nothing in `hosts`
    /// changed, and the per-host config was kept (or rewritten if missing).
    AlreadyRegistered,
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
    /// The per-host config could not be written.
    #[error("{path}: cannot write the host's config: {source}")]
    HostConfig {
        /// The config file.
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
            RegistryError::HostConfig { .. } => Refusal::CouldNotGenerateConfig,
        }
    }
}

/// BackupPC 4's configuration folder (`/etc/backuppc` on Debian): `hosts`,
/// `LOCK` and one `HOST.pl` per host.
#[derive(Debug, Clone)]
pub struct BackupPcRegistry {
    conf_dir: PathBuf,
    journal: PathBuf,
}

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
        BackupPcRegistry { conf_dir, journal }
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
        }
    }

    /// Makes `change` whole or not at all (see [`transaction`]).
    fn apply(&self, change: &Change<'_>) -> Result<(), RegistryError> {
        transaction::apply(&self.conf_dir, &self.journal, change).map_err(|error| match error.part {
            Part::Hosts => RegistryError::Hosts { path: error.path, action: "write", source: error.source },
            Part::Config => RegistryError::HostConfig { path: error.path, source: error.source },
            Part::Journal => RegistryError::Journal { path: error.path, source: error.source },
        })
    }

    /// Takes BackupPC's lock and undoes any change a killed process left
    /// half-made, so that what is read next is whole.
    fn lock_and_recover(&self) -> Result<File, RegistryError> {
        let lock = self.lock()?;
        transaction::recover(&self.conf_dir, &self.journal).map_err(|source| RegistryError::Hosts {
            path: self.conf_dir.join(transaction::UNDO_NAME),
            action: "undo an interrupted change",
            source,
        })?;
        Ok(lock)
    }

    /// The `hosts` file.
    pub fn hosts_path(&self) -> PathBuf {
        self.conf_dir.join("hosts")
    }

    /// The per-host config file of `host`.
    pub fn host_config_path(&self, host: &HostName) -> PathBuf {
        self.conf_dir.join(format!("{host}.pl"))
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
        let path = self.conf_dir.join("LOCK");
        let fail = |action, source| RegistryError::Hosts { path: path.clone(), action, source };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| fail("open the lock", e))?;
        let file_type = file.metadata().map_err(|e| fail("examine the lock", e))?.file_type();
        if !file_type.is_file() {
            let source = io::Error::other("not a regular file; BackupPC's LOCK must be one");
            return Err(fail("use the lock", source));
        }
        file.lock().map_err(|e| fail("take the lock", e))?;
        Ok(file)
    }

    fn read_hosts(&self) -> Result<Vec<u8>, RegistryError> {
        let path = self.hosts_path();
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(RegistryError::Hosts { path, action: "read", source }),
        }
    }

    /// Appends the host's line to `hosts` (given with a usable header, see
    /// [`with_usable_header`]) and writes its config and journal record.
    fn add(&self, registration: &Registration, hosts: &[u8], header: &[String]) -> Result<(), RegistryError> {
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
        let mut body = hosts.to_vec();
        if !body.is_empty() && !body.ends_with(b"\n") {
            body.push(b'\n');
        }
        body.extend_from_slice(line.as_bytes());

        let record = Self::journal_record(registration, "added");
        let previous_mtime = fs::metadata(&hosts_path).and_then(|m| m.modified()).ok();
        self.apply(&Change {
            hosts: Some(&body),
            hosts_modified: later_second(previous_mtime),
            config: Some((&config_path, Some(registration.host_config.as_bytes()))),
            record: Some(&record),
        })
    }
}

impl Registry for BackupPcRegistry {
    fn register(&self, registration: &Registration) -> Result<Outcome, RegistryError> {
        let _lock = self.lock_and_recover()?;
        let hosts = with_usable_header(self.read_hosts()?);
        let parsed = parse_hosts(&hosts);
        // BackupPC reads duplicate lines both ways: the daemon and the web
        // page (`HostInfoRead()`) keep the last, `BackupPC_dump`
        // (`HostInfoRead($host)`) the first. A host is this owner's only when
        // every one of its lines says so.
        let owners = parsed.owners_of(registration.host.as_str());
        let others: Vec<&str> = owners.iter().copied().filter(|owner| *owner != registration.owner.as_str()).collect();
        match owners.first() {
            Some(_) if !others.is_empty() => {
                Err(RegistryError::OwnedByOther { host: registration.host.clone(), owner: others.join(", ") })
            }
            Some(_) => {
                let record = Self::journal_record(registration, "confirmed");
                let config_path = self.host_config_path(&registration.host);
                let missing = !config_path.exists();
                self.apply(&Change {
                    config: missing.then_some((config_path.as_path(), Some(registration.host_config.as_bytes()))),
                    record: Some(&record),
                    ..Change::default()
                })?;
                Ok(Outcome::AlreadyRegistered)
            }
            None => {
                let header = parsed.header.unwrap_or_default();
                self.add(registration, &hosts, &header).map(|()| Outcome::Added)
            }
        }
    }

    fn owner_of(&self, host: &HostName) -> Result<Option<String>, RegistryError> {
        let hosts = with_usable_header(self.read_hosts()?);
        Ok(parse_hosts(&hosts).owner_of(host.as_str()).map(str::to_owned))
    }
}

/// The modification time the new `hosts` must have, when the time it gets
/// by being written is not enough: BackupPC re-reads `hosts` only when its
/// modification time, in whole seconds, changes, so two registrations within
/// one second would otherwise leave the second one unseen until some later
/// change.
fn later_second(previous: Option<SystemTime>) -> Option<SystemTime> {
    let previous = previous?;
    let seconds = |time: SystemTime| time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (seconds(SystemTime::now()) <= seconds(previous)).then(|| UNIX_EPOCH + Duration::from_secs(seconds(previous) + 1))
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
fn host_fields(raw: &[u8]) -> Option<Vec<String>> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut line = raw.to_vec();
    // `s/[\n\r]+//`: the first run of CR or LF, wherever it is.
    if let Some(start) = line.iter().position(|b| *b == b'\r' || *b == b'\n') {
        let len = line.iter().skip(start).take_while(|b| **b == b'\r' || **b == b'\n').count();
        line.drain(start..start + len);
    }
    if let Some(comment) = line.iter().position(|b| *b == b'#') {
        line.truncate(comment);
    }
    while line.last().is_some_and(|b| is_space(*b)) {
        line.pop();
    }
    let name_len =
        line.iter().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'\\' | b'-')).count();
    if name_len == 0 || !line.get(name_len).is_some_and(|b| is_space(*b)) {
        return None;
    }
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

/// `hosts` with BackupPC's standard header in front when the file has none
/// that names the `user` column: without one, BackupPC takes the first host
/// line for the header and sees no owner at all, so the line this
/// registration adds would give the host to nobody.
fn with_usable_header(hosts: Vec<u8>) -> Vec<u8> {
    if parse_hosts(&hosts).has_usable_header() {
        return hosts;
    }
    let mut fixed = HOSTS_HEADER.as_bytes().to_vec();
    fixed.extend_from_slice(&hosts);
    fixed
}

/// The line to append for `host` and `owner` under `header`, its fields in the
/// header's order, `owner` in every `user` column (BackupPC takes the last);
/// `None` when a column before the last `user` is not one this line can fill
/// (BackupPC's fields cannot be left empty in the middle).
fn host_line(header: &[String], host: &HostName, owner: &Logon) -> Option<String> {
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

/// Takes BackupPC's lock on `conf_dir` for another writer of its files
/// (`bpc-register install` appending to `config.pl`, as BackupPC's own
/// editor writes it under that lock), with the same care as a registration.
pub(crate) fn take_lock(conf_dir: &std::path::Path) -> Result<File, RegistryError> {
    BackupPcRegistry::new(conf_dir).lock()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(host: &str, owner: &str) -> Registration {
        Registration {
            host: HostName::parse(host).unwrap(),
            owner: Logon::parse(owner).unwrap(),
            host_config: format!("# {host}\n"),
            author: None,
            client_ip: "127.0.0.2".parse().unwrap(),
            os: "linux".into(),
            protocol: 1,
        }
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
    fn every_change_of_hosts_moves_its_mtime_to_a_later_second() {
        let dir = tempfile::tempdir().unwrap();
        let registry = BackupPcRegistry::new(dir.path());
        let mut seen = Vec::new();
        for n in 0..3 {
            registry.register(&registration(&format!("h{n}.example.org"), "alice")).unwrap();
            let mtime = fs::metadata(dir.path().join("hosts")).unwrap().modified().unwrap();
            seen.push(mtime.duration_since(UNIX_EPOCH).unwrap().as_secs());
        }
        assert!(seen.windows(2).all(|pair| pair[1] > pair[0]), "{seen:?}");
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
