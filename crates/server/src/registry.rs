//! Registering a host in BackupPC: the `hosts` line and the per-host config.

use files::AtomicWrite;
use protocol::{HostName, Logon, Refusal};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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

/// One line of the journal of registrations.
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
    /// The OS type sent.
    pub os: String,
    /// `added` or `confirmed`.
    pub action: String,
    /// The protocol version.
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

    /// Appends one record and flushes it; the returned mark undoes it.
    fn append_journal(&self, registration: &Registration, action: &str) -> Result<JournalMark, RegistryError> {
        let record = JournalRecord {
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            host: registration.host.to_string(),
            owner: registration.owner.to_string(),
            author: registration.author.as_ref().map(ToString::to_string).unwrap_or_default(),
            client_ip: registration.client_ip.to_canonical().to_string(),
            os: registration.os.clone(),
            action: action.to_owned(),
            protocol: registration.protocol,
        };
        let error = |source| RegistryError::Journal { path: self.journal.clone(), source };
        let mut line = serde_json::to_string(&record).map_err(|e| error(io::Error::other(e)))?;
        line.push('\n');
        let mut file = OpenOptions::new().append(true).create(true).mode(0o640).open(&self.journal).map_err(error)?;
        let previous_len = file.metadata().map_err(error)?.len();
        let written = file.write_all(line.as_bytes()).and_then(|()| file.sync_data());
        let mark = JournalMark { file, previous_len };
        match written {
            Ok(()) => Ok(mark),
            Err(source) => {
                mark.undo();
                Err(error(source))
            }
        }
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
    fn lock(&self) -> Result<File, RegistryError> {
        let path = self.conf_dir.join("LOCK");
        let fail = |action, source| RegistryError::Hosts { path: path.clone(), action, source };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| fail("open the lock", e))?;
        file.lock().map_err(|e| fail("take the lock", e))?;
        Ok(file)
    }

    fn read_hosts(&self) -> Result<String, RegistryError> {
        let path = self.hosts_path();
        match fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| RegistryError::Hosts {
                path,
                action: "read it as text",
                source: io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8"),
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(RegistryError::Hosts { path, action: "read", source }),
        }
    }

    fn add(&self, registration: &Registration, hosts: &str, has_header: bool) -> Result<(), RegistryError> {
        // Everything is prepared first; then the journal, the config and
        // `hosts` change together, and any failure undoes the ones before.
        let hosts_path = self.hosts_path();
        let config_path = self.host_config_path(&registration.host);
        let mut body = hosts.to_owned();
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        if !has_header {
            body.push_str(HOSTS_HEADER);
        }
        body.push_str(&format!("{}\t0\t{}\n", registration.host, registration.owner));

        let hosts_error = |source| RegistryError::Hosts { path: hosts_path.clone(), action: "write", source };
        let config_error = |source| RegistryError::HostConfig { path: config_path.clone(), source };
        let new_hosts = AtomicWrite::prepare(&hosts_path, body.as_bytes(), 0o644).map_err(hosts_error)?;
        let new_config =
            AtomicWrite::prepare(&config_path, registration.host_config.as_bytes(), 0o644).map_err(config_error)?;
        let previous_config = fs::read(&config_path).ok();
        let previous_mtime = fs::metadata(&hosts_path).and_then(|m| m.modified()).ok();
        let journal = self.append_journal(registration, "added")?;
        if let Err(source) = new_config.commit() {
            journal.undo();
            return Err(config_error(source));
        }
        if let Err(source) = new_hosts.commit().and_then(|()| newer_than(&hosts_path, previous_mtime)) {
            // The host is not in `hosts`, so its config and journal must not change either.
            let _ = match previous_config {
                Some(old) => files::write_atomic(&config_path, &old, 0o644),
                None => fs::remove_file(&config_path),
            };
            journal.undo();
            return Err(hosts_error(source));
        }
        Ok(())
    }
}

impl Registry for BackupPcRegistry {
    fn register(&self, registration: &Registration) -> Result<Outcome, RegistryError> {
        let _lock = self.lock()?;
        let hosts = self.read_hosts()?;
        let (has_header, lines) = parse_hosts(&hosts);
        match lines.iter().find(|line| line.host == registration.host.as_str()) {
            Some(line) if line.user != registration.owner.as_str() => {
                Err(RegistryError::OwnedByOther { host: registration.host.clone(), owner: line.user.clone() })
            }
            Some(_) => {
                let journal = self.append_journal(registration, "confirmed")?;
                let config_path = self.host_config_path(&registration.host);
                if !config_path.exists()
                    && let Err(source) = files::write_atomic(&config_path, registration.host_config.as_bytes(), 0o644)
                {
                    journal.undo();
                    return Err(RegistryError::HostConfig { path: config_path, source });
                }
                Ok(Outcome::AlreadyRegistered)
            }
            None => self.add(registration, &hosts, has_header).map(|()| Outcome::Added),
        }
    }

    fn owner_of(&self, host: &HostName) -> Result<Option<String>, RegistryError> {
        let (_, lines) = parse_hosts(&self.read_hosts()?);
        Ok(lines.into_iter().find(|line| line.host == host.as_str()).map(|line| line.user))
    }
}

/// The journal's default name, beside `hosts`.
pub const JOURNAL_NAME: &str = "bpc-enroll-journal.jsonl";

/// A record just appended to the journal, which can be taken back while the
/// lock is held.
struct JournalMark {
    file: File,
    previous_len: u64,
}

impl JournalMark {
    fn undo(self) {
        let _ = self.file.set_len(self.previous_len).and_then(|()| self.file.sync_data());
    }
}

/// Makes sure `path`'s modification time, in whole seconds, is later than
/// `previous`: BackupPC re-reads `hosts` only when that number changes, so
/// two registrations within one second would otherwise leave the second one
/// unseen until some later change.
fn newer_than(path: &std::path::Path, previous: Option<SystemTime>) -> io::Result<()> {
    let Some(previous) = previous else { return Ok(()) };
    let seconds = |time: SystemTime| time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let current = fs::metadata(path)?.modified()?;
    if seconds(current) > seconds(previous) {
        return Ok(());
    }
    let bumped = UNIX_EPOCH + Duration::from_secs(seconds(previous) + 1);
    File::options().write(true).open(path)?.set_modified(bumped)
}

/// Reads a `hosts` file as BackupPC does: `#` starts a comment, blank lines
/// are skipped, the first remaining line is the header, fields are separated
/// by white space and host names compare lowercased. Returns whether a header
/// was found, and the host lines.
pub fn parse_hosts(text: &str) -> (bool, Vec<HostLine>) {
    let mut has_header = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        let content = line.split('#').next().unwrap_or_default();
        let fields: Vec<&str> = content.split_whitespace().collect();
        let Some(host) = fields.first() else { continue };
        if !has_header {
            has_header = true;
            continue;
        }
        let user = fields.get(2).copied().unwrap_or_default();
        lines.push(HostLine { host: host.to_lowercase(), user: user.to_owned() });
    }
    (has_header, lines)
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
        let text = fs::read_to_string(dir.join(JOURNAL_NAME)).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
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
    fn hosts_parsing_follows_backuppc() {
        let (header, lines) = parse_hosts(DEBIAN_HOSTS);
        assert!(header);
        assert_eq!(lines, [HostLine { host: "localhost".into(), user: "backuppc".into() }]);
        assert_eq!(parse_hosts("# only comments\n\n"), (false, vec![]));
    }
}
