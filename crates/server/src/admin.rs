//! The backup administrator's commands: list and show registrations, give a
//! host to another owner, remove a host.
//!
//! Reads come from BackupPC's `hosts` (the owner, as BackupPC reads it), the
//! journal of registrations (who registered the host and when) and the
//! host's `backups` file under BackupPC's `TopDir` (the last backup). Writes
//! go through [`HostsEditor`], under BackupPC's lock: the journal record,
//! the per-host config and `hosts` change together or not at all.

use crate::backups::{self, Backup};
use crate::config::ServerConfig;
use crate::directory::Directory;
use crate::journal::{self, Journal, JournalRecord, REMOVED, TRANSFERRED};
use crate::log::{EventLog, Level};
use crate::owner_edits::{self, OwnerEdits};
use crate::registry::{BackupPcRegistry, EditError, HostsEditor, LineChange, Registry};
use protocol::text::one_line;
use protocol::{HostName, Logon};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a command waits for BackupPC's lock before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// What the administrator sees of one registered host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostSummary {
    /// The host, as BackupPC names it.
    pub host: String,
    /// The `user` column of its `hosts` line as BackupPC reads it; `None`
    /// when the host has no line.
    pub owner: Option<String>,
    /// Who made the current registration: the name the client authenticated
    /// as (empty without a challenge), or the administrator who transferred
    /// the host; `None` when the journal has no record of it.
    pub author: Option<String>,
    /// When the current registration was journaled (RFC 3339); `None` when
    /// the journal has no record of it.
    pub registered: Option<String>,
    /// When the last full or incremental backup started (RFC 3339); `None`
    /// when there is none or it cannot be read.
    #[serde(rename = "last-backup")]
    pub last_backup: Option<String>,
}

/// `hosts list`: a row per host, and what could not be read.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The hosts, in the order of their first line in `hosts`.
    pub hosts: Vec<HostSummary>,
    /// What could not be read (the journal, BackupPC's configuration, a
    /// host's backups), one line each, for standard error.
    pub notes: Vec<String>,
}

/// One pinned SSH host key, as `hosts show` gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinnedKey {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The key's type, such as `ssh-ed25519`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `hosts show`: the summary, the journal's history and the config file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostDetails {
    /// What `hosts list` shows.
    #[serde(flatten)]
    pub summary: HostSummary,
    /// The per-host config BackupPC reads.
    pub config: PathBuf,
    /// Whether that file exists.
    #[serde(rename = "config-exists")]
    pub config_exists: bool,
    /// Every journal record about the host, oldest first.
    pub history: Vec<JournalRecord>,
    /// The SSH host keys pinned for the host (`HOST.known_hosts`), each as
    /// its SHA256 fingerprint (as `ssh-keygen -l` prints it) and its type;
    /// `None` when none are pinned (BackupPC's ssh trusts the key it met
    /// at the first backup).
    #[serde(rename = "host-keys")]
    pub host_keys: Option<Vec<PinnedKey>>,
    /// What could not be read.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// What `hosts transfer` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// The host's lines now name the new owner.
    Done {
        /// The owner(s) before, as the lines had them.
        previous: Vec<String>,
        /// How many lines changed.
        lines: usize,
        /// Why BackupPC's daemon was not told, if it was not.
        reload_problem: Option<String>,
    },
    /// Every line already named that owner: nothing changed.
    AlreadyOwned,
}

/// What `hosts remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The owner the host had.
    pub owner: String,
    /// How many lines of `hosts` went.
    pub lines: usize,
    /// The per-host config removed, if there was one.
    pub config_removed: Option<PathBuf>,
    /// The backups BackupPC deleted (`--purge`), by number.
    pub purged: Vec<u64>,
    /// The folder that holds (or held) the host's backups.
    pub backups_folder: Option<PathBuf>,
    /// Why BackupPC's daemon was not told, if it was not.
    pub reload_problem: Option<String>,
}

/// Why an administrator's command failed. Nothing was changed, except
/// where [`AdminError::PurgeFailed`] says which backups are gone.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The host has no line in `hosts`.
    #[error("{host}: no such host in {hosts}; `bpc-register hosts list` shows the registered hosts")]
    UnknownHost {
        /// The host asked for.
        host: HostName,
        /// The `hosts` file.
        hosts: PathBuf,
    },
    /// The new owner is not in the directory.
    #[error("{logon}: no such user in the directory; nothing was changed")]
    UnknownUser {
        /// The logon given.
        logon: Logon,
    },
    /// The directory could not answer.
    #[error("the directory cannot be consulted: {0}; nothing was changed")]
    Directory(#[from] crate::directory::DirectoryError),
    /// `hosts` could not be edited.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The journal could not be read.
    #[error("{path}: cannot read the journal of registrations: {source}")]
    Journal {
        /// The journal.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// BackupPC's configuration could not be read, so its backups cannot be
    /// found.
    #[error("{0}; nothing was changed")]
    Configuration(#[from] owner_edits::OwnerEditsError),
    /// The host's backups could not be read.
    #[error("{0}; nothing was changed")]
    Backups(#[from] backups::BackupsError),
    /// BackupPC refused to delete a backup.
    #[error(
        "BackupPC could not delete backup #{num} of {host}: {reason}; {done}the host is still registered (its line and config are kept)"
    )]
    PurgeFailed {
        /// The host.
        host: HostName,
        /// The backup that was not deleted.
        num: u64,
        /// What BackupPC said.
        reason: String,
        /// The backups deleted before, said as a sentence start.
        done: String,
    },
}

impl AdminError {
    /// Whether the error is the administrator's to fix in the command line
    /// or the configuration (exit status 2) rather than a refusal (1).
    pub fn is_usage(&self) -> bool {
        matches!(self, AdminError::Configuration(_))
    }
}

/// The administrator's view of one server configuration.
#[derive(Debug)]
pub struct Admin {
    config: ServerConfig,
    registry: BackupPcRegistry,
}

impl Admin {
    /// The commands over the BackupPC folder and journal of `config`.
    pub fn new(config: ServerConfig) -> Admin {
        let mut registry = BackupPcRegistry::new(&config.backuppc.conf_dir);
        if let Some(journal) = &config.journal {
            registry = registry.with_journal(journal);
        }
        Admin { config, registry }
    }

    /// The server configuration the commands work on.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Every host in `hosts`, one row each (a host with duplicate lines
    /// once, with the owner BackupPC's daemon sees: the last line's).
    pub fn list(&self) -> Result<Listing, AdminError> {
        let hosts = self.registry.hosts_file()?;
        let mut notes = Vec::new();
        let journal = self.journal(&mut notes);
        let top_dir = self.top_dir(&mut notes);
        // One pass over each file, whatever their sizes: the owner BackupPC's
        // daemon sees is the last line's, the registration the last record's.
        let owners: HashMap<&str, &str> =
            hosts.hosts.iter().map(|line| (line.host.as_str(), line.user.as_str())).collect();
        let mut records: HashMap<String, &JournalRecord> = HashMap::new();
        for record in &journal.records {
            records.insert(record.host.to_ascii_lowercase(), record);
        }
        let mut listed = HashSet::new();
        let mut listing = Listing::default();
        for line in &hosts.hosts {
            if !listed.insert(line.host.as_str()) {
                continue;
            }
            let last_backup = match (&top_dir, HostName::parse(&line.host)) {
                (Some(top_dir), Ok(host)) => self.last_backup(top_dir, &host, &mut notes),
                _ => None,
            };
            let record = records.get(&line.host).copied().filter(|record| record.action != REMOVED);
            listing.hosts.push(summary(&line.host, owners.get(line.host.as_str()).copied(), record, last_backup));
        }
        listing.notes = notes;
        Ok(listing)
    }

    /// `host`'s summary, history and config file. A host that is not in
    /// `hosts` but has a history in the journal (a removed one) is shown
    /// without an owner.
    pub fn show(&self, host: &HostName) -> Result<HostDetails, AdminError> {
        let hosts = self.registry.hosts_file()?;
        let mut notes = Vec::new();
        let journal = self.journal(&mut notes);
        let owner = hosts.owner_of(host.as_str());
        let history: Vec<JournalRecord> = journal.history(host.as_str()).cloned().collect();
        if owner.is_none() && history.is_empty() {
            return Err(AdminError::UnknownHost { host: host.clone(), hosts: self.registry.hosts_path() });
        }
        let last_backup = self.top_dir(&mut notes).and_then(|top_dir| self.last_backup(&top_dir, host, &mut notes));
        let config = self.registry.host_config_path(host);
        let host_keys = match self.registry.pinned_keys(host) {
            Ok(keys) => keys.map(|keys| {
                keys.iter().map(|key| PinnedKey { fingerprint: key.fingerprint(), kind: key.kind() }).collect()
            }),
            Err(error) => {
                notes.push(error.to_string());
                None
            }
        };
        Ok(HostDetails {
            summary: summary(host.as_str(), owner, journal.registration_of(host.as_str()), last_backup),
            config_exists: config.symlink_metadata().is_ok(),
            config,
            history,
            host_keys,
            notes,
        })
    }

    /// Gives `host` to `logon`, who must be in `directory`: every line of
    /// the host names the new owner, and the journal says who ran it.
    pub fn transfer(
        &self,
        directory: &dyn Directory,
        host: &HostName,
        logon: &Logon,
        admin: &str,
    ) -> Result<Transfer, AdminError> {
        if !directory.user_exists(logon)? {
            return Err(AdminError::UnknownUser { logon: logon.clone() });
        }
        let editor = self.registry.edit_hosts(LOCK_WAIT)?;
        let previous = self.owners(&editor, host)?;
        if previous.iter().all(|owner| owner == logon.as_str()) {
            return Ok(Transfer::AlreadyOwned);
        }
        let edit = editor.change_host(host, &LineChange::SetOwner(logon.clone()))?;
        let record = JournalRecord {
            previous_owner: previous.join(","),
            ..admin_record(host, logon.as_str(), TRANSFERRED, admin)
        };
        editor.apply(Some(&edit), None, Some(&record))?;
        drop(editor);
        self.log(&format!("transferred host {host} from {} to {logon} by {admin}", previous.join(",")));
        Ok(Transfer::Done { previous, lines: edit.changed.len(), reload_problem: self.reload() })
    }

    /// Removes `host`'s lines from `hosts` and its per-host config, and
    /// journals it. With `purge`, BackupPC first deletes each of its backups
    /// (`delete-command`, oldest first), while the host is still in `hosts`
    /// (BackupPC's delete refuses a host it does not know).
    pub fn remove(&self, host: &HostName, purge: bool, admin: &str) -> Result<Removal, AdminError> {
        if self.registry.hosts_file()?.owner_of(host.as_str()).is_none() {
            return Err(AdminError::UnknownHost { host: host.clone(), hosts: self.registry.hosts_path() });
        }
        let mut notes = Vec::new();
        let backuppc = if purge { Some(self.backuppc_configuration()?) } else { None };
        let purged = match &backuppc {
            Some(backuppc) => self.purge(backuppc, host)?,
            None => Vec::new(),
        };
        let backups_folder = match &backuppc {
            Some(backuppc) => Some(backuppc.top_dir.clone()),
            None => self.top_dir(&mut notes),
        }
        .map(|top_dir| top_dir.join("pc").join(host.as_str()));

        let editor = self.registry.edit_hosts(LOCK_WAIT)?;
        let owners = self.owners(&editor, host)?;
        let owner = owners.last().cloned().unwrap_or_default();
        let edit = editor.change_host(host, &LineChange::Remove)?;
        let config_path = self.registry.host_config_path(host);
        let had_config = std::fs::symlink_metadata(&config_path).is_ok();
        editor.apply(Some(&edit), Some((host, None)), Some(&admin_record(host, &owner, REMOVED, admin)))?;
        let config_removed = had_config.then_some(config_path);
        drop(editor);
        self.log(&format!("removed host {host} of {owner} by {admin}{}", if purge { " with its backups" } else { "" }));
        Ok(Removal {
            owner,
            lines: edit.changed.len(),
            config_removed,
            purged,
            backups_folder,
            reload_problem: self.reload(),
        })
    }

    /// The owners of `host`'s lines, or the error for a host not in `hosts`.
    fn owners(&self, editor: &HostsEditor<'_>, host: &HostName) -> Result<Vec<String>, AdminError> {
        let owners: Vec<String> = editor.hosts().owners_of(host.as_str()).into_iter().map(str::to_owned).collect();
        if owners.is_empty() {
            return Err(AdminError::UnknownHost { host: host.clone(), hosts: self.registry.hosts_path() });
        }
        Ok(owners)
    }

    /// Has BackupPC delete every backup of `host`, oldest first (a V4
    /// backup depends on the newer ones, never on older ones, so each
    /// deletion is a plain removal), and checks that none is left.
    fn purge(&self, backuppc: &OwnerEdits, host: &HostName) -> Result<Vec<u64>, AdminError> {
        let mut nums: Vec<u64> = backups::read(&backuppc.top_dir, host)?.iter().map(|backup| backup.num).collect();
        nums.sort_unstable();
        let mut deleted = Vec::new();
        for num in nums {
            let mut argv = self.config.backuppc.delete_command.clone();
            argv.extend(["-h".into(), host.to_string(), "-n".into(), num.to_string(), "-f".into(), "-r".into()]);
            argv.push("-p".into());
            if let Err(reason) = run_as_backuppc(&argv, backuppc.backuppc_user.as_deref(), self.configuration_owner()) {
                return Err(purge_failed(host, num, reason, &deleted));
            }
            deleted.push(num);
        }
        if let Some(left) = backups::read(&backuppc.top_dir, host)?.first() {
            let reason = "it is still listed in the host's backups file".to_owned();
            return Err(purge_failed(host, left.num, reason, &deleted));
        }
        Ok(deleted)
    }

    /// Tells BackupPC's daemon to re-read `hosts` (`reload-command`); the
    /// problem, if it could not. The daemon also notices by itself within
    /// the hour, from `hosts`'s modification time.
    fn reload(&self) -> Option<String> {
        let command = &self.config.backuppc.reload_command;
        if command.is_empty() {
            return None;
        }
        let user = self.backuppc_configuration().ok().and_then(|backuppc| backuppc.backuppc_user);
        let problem = run_as_backuppc(command, user.as_deref(), self.configuration_owner()).err()?;
        self.log_at(Level::Warning, &format!("could not tell BackupPC to reload: {problem}"));
        Some(problem)
    }

    fn log(&self, event: &str) {
        self.log_at(Level::Info, event);
    }

    fn log_at(&self, level: Level, event: &str) {
        EventLog::from_config(&self.config.log).log(level, event);
    }

    /// The journal, or an empty one and a note when it cannot be read.
    fn journal(&self, notes: &mut Vec<String>) -> Journal {
        let path = self.registry.journal_path();
        match journal::read(path) {
            Ok(journal) => {
                if !journal.unreadable_lines.is_empty() {
                    notes.push(format!(
                        "{}: lines {:?} are not journal records and were skipped",
                        path.display(),
                        journal.unreadable_lines
                    ));
                }
                journal
            }
            Err(source) => {
                notes.push(AdminError::Journal { path: path.to_owned(), source }.to_string());
                Journal::default()
            }
        }
    }

    /// Whom root may run BackupPC's programs as, from who may change the
    /// Perl they load (the configuration folder, `config.pl` and, when
    /// present, `localconfig.pl`): `Ok(Some(uid))` when one account besides
    /// root owns them, only that account; `Ok(None)` when root owns them all
    /// and no one else may write them, any account but root; an error (the
    /// reason) when they belong to several accounts, others may write
    /// root's, or one cannot be examined.
    fn configuration_owner(&self) -> Result<Option<u32>, String> {
        use std::os::unix::fs::MetadataExt;
        let conf_dir = &self.config.backuppc.conf_dir;
        let localconfig = Path::new(owner_edits::LOCALCONFIG);
        let mut paths = vec![conf_dir.clone(), conf_dir.join("config.pl")];
        if localconfig.exists() {
            paths.push(localconfig.to_owned());
        }
        let mut owner = None;
        for path in &paths {
            let meta =
                std::fs::metadata(path).map_err(|error| format!("cannot examine {}: {error}", path.display()))?;
            match (meta.uid(), owner) {
                (0, _) if meta.mode() & 0o022 != 0 => {
                    return Err(format!("{} is root's but others may write it", path.display()));
                }
                (0, _) => {}
                (uid, None) => owner = Some(uid),
                (uid, Some(first)) if uid != first => {
                    return Err(format!("BackupPC's configuration belongs to both uid {first} and uid {uid}"));
                }
                _ => {}
            }
        }
        Ok(owner)
    }

    /// BackupPC's effective configuration, read as registrations read it
    /// (cached beside the journal).
    fn backuppc_configuration(&self) -> Result<OwnerEdits, AdminError> {
        let cache = owner_edits::cache_path_beside(self.registry.journal_path());
        Ok(owner_edits::read_cached(&self.config.backuppc.conf_dir, &cache)?)
    }

    /// BackupPC's `TopDir`, or a note saying why the backups are unknown.
    fn top_dir(&self, notes: &mut Vec<String>) -> Option<PathBuf> {
        match self.backuppc_configuration() {
            Ok(backuppc) => Some(backuppc.top_dir),
            Err(error) => {
                notes.push(format!("last backups unknown: {error}"));
                None
            }
        }
    }

    fn last_backup(&self, top_dir: &Path, host: &HostName, notes: &mut Vec<String>) -> Option<Backup> {
        match backups::last_backup_of(top_dir, host) {
            Ok(backup) => backup,
            Err(error) => {
                notes.push(format!("{host}: last backup unknown: {error}"));
                None
            }
        }
    }
}

/// A row from the `hosts` owner, the journal's record of the current
/// registration and the last backup.
fn summary(
    host: &str,
    owner: Option<&str>,
    record: Option<&JournalRecord>,
    last_backup: Option<Backup>,
) -> HostSummary {
    HostSummary {
        host: host.to_owned(),
        owner: owner.map(str::to_owned),
        author: record
            .map(|record| if record.author.is_empty() { record.admin.clone() } else { record.author.clone() }),
        registered: record.map(|record| record.time.clone()),
        last_backup: last_backup.and_then(|backup| backup.started()).map(rfc3339),
    }
}

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A journal record for an administrator's command.
fn admin_record(host: &HostName, owner: &str, action: &str, admin: &str) -> JournalRecord {
    JournalRecord {
        time: journal::now(),
        host: host.to_string(),
        owner: owner.to_owned(),
        author: String::new(),
        client_ip: String::new(),
        os: String::new(),
        action: action.to_owned(),
        protocol: 0,
        previous_owner: String::new(),
        admin: admin.to_owned(),
        host_keys: Vec::new(),
        previous_host_keys: Vec::new(),
    }
}

fn purge_failed(host: &HostName, num: u64, reason: String, deleted: &[u64]) -> AdminError {
    let done = if deleted.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = deleted.iter().map(|num| format!("#{num}")).collect();
        format!("backups {} were deleted; ", list.join(", "))
    };
    AdminError::PurgeFailed { host: host.clone(), num, reason, done }
}

/// The name of whoever runs the command: with sudo, the user who ran sudo;
/// else the real user's name (its number when it has none).
pub fn invoking_admin() -> String {
    let uid = nix::unistd::getuid();
    if uid.is_root()
        && let Some(name) = std::env::var("SUDO_USER").ok().filter(|name| Logon::parse(name).is_ok())
    {
        return name;
    }
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

/// Runs one of BackupPC's programs without a shell: as `user` (BackupPC's
/// `BackupPCUser`, which its programs insist on) through util-linux's
/// `setpriv` when run as root, else as whoever runs this. The problem, on
/// one line, when it fails.
///
/// BackupPC's programs load `config.pl`, Perl that whoever owns BackupPC's
/// configuration may write, and `BackupPCUser` comes from that file: root
/// runs them neither as root nor as any account but the configuration's
/// owner (`owner`, see `Admin::configuration_owner`), without supplementary
/// groups, so that the owner of `config.pl` gains nothing by naming another
/// account there.
fn run_as_backuppc(argv: &[String], user: Option<&str>, owner: Result<Option<u32>, String>) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else { return Ok(()) };
    let mut command = if nix::unistd::geteuid().is_root() {
        let user = user.unwrap_or("backuppc");
        let account = match nix::unistd::User::from_name(user) {
            Ok(Some(account)) => account,
            _ => return Err(format!("no account {user} ($Conf{{BackupPCUser}}) to run {program} as")),
        };
        if account.uid.is_root() || account.gid.as_raw() == 0 {
            return Err(format!("$Conf{{BackupPCUser}} is {user}, of root's: {program} is not run as root"));
        }
        let owner = owner.map_err(|reason| format!("{program} is not run: {reason}"))?;
        if let Some(owner) = owner.filter(|owner| *owner != account.uid.as_raw()) {
            return Err(format!(
                "$Conf{{BackupPCUser}} is {user}, but BackupPC's configuration belongs to uid {owner}: \
                 {program} is run only as the configuration's owner"
            ));
        }
        let mut command = Command::new("/usr/bin/setpriv");
        command.args([
            format!("--reuid={}", account.uid),
            format!("--regid={}", account.gid),
            "--clear-groups".into(),
            "--".into(),
        ]);
        command.arg(program);
        command
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(if output.stderr.is_empty() { &output.stdout } else { &output.stderr });
    Err(format!("{program} ended with {}: {}", output.status, one_line(said.trim())))
}

/// `value` as pretty-printed JSON, with a final line break.
pub fn to_json(value: &impl serde::Serialize) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(text) => text + "\n",
        // Only a map with non-string keys fails, and these have none.
        Err(error) => format!("{{\"error\": {:?}}}\n", error.to_string()),
    }
}

/// `hosts list` as an aligned table, `-` where a value is unknown or empty.
pub fn render_table(hosts: &[HostSummary]) -> String {
    let rows: Vec<[String; 5]> = hosts
        .iter()
        .map(|host| {
            let shown = |value: &Option<String>| match value.as_deref() {
                None | Some("") => "-".to_owned(),
                Some(text) => one_line(text),
            };
            [
                one_line(&host.host),
                shown(&host.owner),
                shown(&host.author),
                shown(&host.registered),
                shown(&host.last_backup),
            ]
        })
        .collect();
    let header = ["HOST", "OWNER", "AUTHOR", "REGISTERED", "LAST BACKUP"].map(str::to_owned);
    let mut widths = header.clone().map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `hosts show` for a person.
pub fn render_details(details: &HostDetails) -> String {
    let summary = &details.summary;
    let shown = |value: &Option<String>, none: &str| match value.as_deref() {
        None | Some("") => none.to_owned(),
        Some(text) => one_line(text),
    };
    let mut out = format!(
        "host:        {}\nowner:       {}\nauthor:      {}\nregistered:  {}\nlast backup: {}\nconfig:      {}{}\nhistory:\n",
        one_line(&summary.host),
        shown(&summary.owner, "- (not in hosts)"),
        shown(&summary.author, "-"),
        shown(&summary.registered, if summary.owner.is_some() { "- (not in the journal)" } else { "- (removed)" }),
        shown(&summary.last_backup, "- (none recorded)"),
        one_line(&details.config.display().to_string()),
        if details.config_exists { "" } else { " (missing)" },
    );
    match details.host_keys.as_deref() {
        None | Some([]) => out.insert_str(
            out.len() - "history:\n".len(),
            "host keys:   - (none pinned: BackupPC's ssh trusts the key it met at the first backup)\n",
        ),
        Some(keys) => {
            let lines: Vec<String> =
                keys.iter().map(|key| format!("{} ({})", one_line(&key.fingerprint), one_line(&key.kind))).collect();
            let text = format!("host keys:   {}\n", lines.join("\n             "));
            out.insert_str(out.len() - "history:\n".len(), &text);
        }
    }
    if details.history.is_empty() {
        out.push_str("  (no record in the journal)\n");
    }
    for record in &details.history {
        out.push_str(&format!("  {}\n", one_line(&describe(record))));
    }
    out
}

/// One journal record as a sentence.
fn describe(record: &JournalRecord) -> String {
    let by = |name: &str| if name.is_empty() { String::new() } else { format!(" by {name}") };
    match record.action.as_str() {
        TRANSFERRED => format!(
            "{} transferred from {} to {}{}",
            record.time,
            record.previous_owner,
            record.owner,
            by(&record.admin)
        ),
        REMOVED => format!("{} removed (owner {}){}", record.time, record.owner, by(&record.admin)),
        action => format!(
            "{} {action} for {}{} from {} ({}, protocol {}){}",
            record.time,
            record.owner,
            by(&record.author),
            record.client_ip,
            record.os,
            record.protocol,
            pinned_keys(record)
        ),
    }
}

/// What a registration record says of the host keys it pinned, if any.
fn pinned_keys(record: &JournalRecord) -> String {
    match (record.host_keys.is_empty(), record.previous_host_keys.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("; host keys {}", record.host_keys.join(" ")),
        (false, false) => {
            format!("; host keys {} (were {})", record.host_keys.join(" "), record.previous_host_keys.join(" "))
        }
    }
}

/// What `hosts remove` tells the administrator about the host's backups,
/// as BackupPC 4 behaves (read in its code): the line gone, its daemon
/// drops the host from its list at the next reload (`HostsUpdate`), and
/// nothing removes `TopDir/pc/HOST`. But `BackupPC_nightly` runs
/// `BackupPC_refCountUpdate`, which counts the pool's references for the
/// hosts in `hosts` only: the pool files that only this host's backups use
/// fall to zero references, are marked by one nightly run and deleted by a
/// later one (once a week old). The backups left in `pc/HOST` then lose
/// their contents.
pub fn kept_backups_warning(folder: &Path) -> String {
    format!(
        "Its backups are kept in {}, but BackupPC no longer counts them: its nightly run \
         (BackupPC_nightly, BackupPC_refCountUpdate) counts pool references only for the hosts in hosts, \
         so the pool files that only these backups use are marked by one nightly run and deleted by a later \
         one, and the backups stop being restorable. Register the host again before then to keep them whole; \
         to have BackupPC delete them now, put its line back and remove it with --purge.",
        one_line(&folder.display().to_string())
    )
}
