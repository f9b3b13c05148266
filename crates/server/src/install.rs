//! `bpc-register install`: what a BackupPC server needs before machines can
//! enroll, made where it is missing and checked where it is not.
//!
//! [`plan`] looks at the system and lists the [`Change`]s to make (the
//! register key, BackupPC's own key, the register key's line in
//! `~backuppc/.ssh/authorized_keys`, a starting `server.toml`, the lines
//! BackupPC's `config.pl` needs) and the problems it cannot fix itself
//! (an sshd that would refuse the `backuppc` key); [`Plan::apply`] makes the
//! changes in order, each one whole. A second run finds nothing to change.
//!
//! As root in folders that `backuppc` owns (its home, `.ssh`, BackupPC's
//! configuration folder), files are read and replaced through a descriptor
//! of their folder opened without following links, never by a path that
//! account could have pointed elsewhere; keys are made by `ssh-keygen`, as
//! `backuppc` for its own.

use crate::authorized_keys;
use crate::config::{ConfigError, ServerConfig};
use crate::owner_edits;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The register key's file name, beside `server.toml`.
pub const REGISTER_KEY_NAME: &str = "register_ed25519";
/// The account BackupPC runs as, on Debian.
pub const BACKUPPC_ACCOUNT: &str = "backuppc";
/// Where Debian's BackupPC keeps its version.
pub const BACKUPPC_LIB: &str = "/usr/share/backuppc/lib/BackupPC/Lib.pm";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
const SETPRIV: &str = "/usr/bin/setpriv";
const SSHD: &str = "/usr/sbin/sshd";

/// What `install` was asked for.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// `server.toml` (absolute); the register key goes beside it.
    pub config_path: PathBuf,
    /// The example `server.toml` the package installs: while the file is
    /// that example, it is replaced by one made from these options.
    pub packaged_example: String,
    /// bpc-register's own path, for the `command=` of the register key.
    pub program: String,
    /// The machines' DNS domain (`domain`), needed for a new `server.toml`.
    pub domain: Option<String>,
    /// The hosts' page (`[backuppc] url`); by default on this machine's name.
    pub url: Option<String>,
    /// The machines' backup account (`[backuppc] account`).
    pub account: Option<String>,
    /// The addresses BackupPC connects from (`[backuppc] from`).
    pub from: Option<String>,
    /// The machines' sshd port (`[backuppc] client-port`).
    pub client_port: Option<u16>,
    /// BackupPC's configuration folder (`[backuppc] conf-dir`).
    pub conf_dir: PathBuf,
    /// `from=` on the register key's line: where machines enroll from.
    pub register_from: Option<String>,
    /// Add the lines `config.pl` needs, rather than only saying them.
    pub fix_backuppc_config: bool,
}

/// Why `install` stopped.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Not run as root.
    #[error("install changes the system and must run as root; --dry-run shows what it would do")]
    NotRoot,
    /// No BackupPC 4 here.
    #[error("BackupPC 4 is not installed here ({0}); install Debian's backuppc package first")]
    NoBackupPc(String),
    /// No `backuppc` account.
    #[error("there is no `{BACKUPPC_ACCOUNT}` account; install Debian's backuppc package first")]
    NoAccount,
    /// A new `server.toml` needs a domain.
    #[error("{0} is written from the options: give --domain DOMAIN, the DNS domain of the machines that may enroll")]
    NeedDomain(PathBuf),
    /// The options do not make a valid `server.toml`.
    #[error("the server.toml made from the options is not valid: {0}")]
    BadOption(String),
    /// The existing `server.toml` cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or folder could not be read, made or replaced.
    #[error("{path}: cannot {action}: {reason}")]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A program (ssh-keygen) failed.
    #[error("{program} failed ({status}): {output}")]
    Program {
        /// The program and its main argument.
        program: String,
        /// Its exit status.
        status: String,
        /// What it said.
        output: String,
    },
}

impl InstallError {
    /// The exit code: 2 for usage and configuration, 1 for the system.
    pub fn exit_code(&self) -> u8 {
        match self {
            InstallError::NotRoot
            | InstallError::NeedDomain(_)
            | InstallError::BadOption(_)
            | InstallError::Config(_) => 2,
            _ => 1,
        }
    }
}

/// The `backuppc` account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its home, which holds `.ssh`.
    pub home: PathBuf,
}

/// One change `install` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A folder, with its owner and mode.
    Folder {
        /// The folder.
        path: PathBuf,
        /// Its owner and group.
        owner: (u32, u32),
        /// Its mode.
        mode: u32,
    },
    /// An ed25519 key pair made by ssh-keygen (as `run_as` when given).
    KeyPair {
        /// The private key; the public one is beside it with `.pub`.
        path: PathBuf,
        /// What it is, for the output.
        what: &'static str,
        /// The account that makes (and owns) it; root when `None`.
        run_as: Option<Account>,
        /// The key's comment.
        comment: String,
    },
    /// A new file (it does not exist, or is the package's example).
    File {
        /// The file.
        path: PathBuf,
        /// What it is, for the output.
        what: &'static str,
        /// Its text.
        text: String,
        /// Its owner and group.
        owner: (u32, u32),
        /// Its mode.
        mode: u32,
    },
    /// The register key's line in `authorized_keys`, other lines kept.
    AuthorizedKey {
        /// `~backuppc/.ssh/authorized_keys`.
        keys_file: PathBuf,
        /// The register public key.
        public_key: PathBuf,
        /// The `command=` program and configuration, and `from=`.
        program: String,
        /// The configuration the command names.
        config: String,
        /// `from=`.
        from: Option<String>,
        /// The account that owns the file.
        account: Account,
    },
    /// Lines appended to BackupPC's `config.pl`, under its `LOCK`.
    BackupPcConfig {
        /// BackupPC's configuration folder.
        conf_dir: PathBuf,
        /// The lines.
        lines: Vec<String>,
    },
}

impl Change {
    /// What the change does, as one line.
    pub fn describe(&self) -> String {
        match self {
            Change::Folder { path, owner, mode } => {
                format!("create {} ({}, {mode:04o})", path.display(), owner_name(*owner))
            }
            Change::KeyPair { path, what, run_as, .. } => format!(
                "create {what} {} and {}.pub with ssh-keygen as {}",
                path.display(),
                path.display(),
                run_as.as_ref().map_or("root", |account| account.name.as_str())
            ),
            Change::File { path, what, owner, mode, .. } => {
                format!("write {} ({what}; {}, {mode:04o})", path.display(), owner_name(*owner))
            }
            Change::AuthorizedKey { keys_file, program, config, from, .. } => format!(
                "add the register key to {}, bound to `{program} --config {config}` with restrict{}, other lines kept",
                keys_file.display(),
                from.as_ref().map(|from| format!(" and from=\"{from}\"")).unwrap_or_default()
            ),
            Change::BackupPcConfig { conf_dir, lines } => {
                let keys: Vec<&str> = lines
                    .iter()
                    .filter_map(|line| line.strip_prefix("$Conf{CgiUserConfigEdit}{")?.split('}').next())
                    .collect();
                format!(
                    "append {} lines `$Conf{{CgiUserConfigEdit}}{{KEY}} = 0;` to {} so that host owners may change \
                     only harmless settings (KEY: {})",
                    lines.len(),
                    conf_dir.join("config.pl").display(),
                    keys.join(", ")
                )
            }
        }
    }

    fn apply(&self) -> Result<(), InstallError> {
        match self {
            Change::Folder { path, owner, mode } => make_folder(path, *owner, *mode),
            Change::KeyPair { path, run_as, comment, .. } => make_key_pair(path, run_as.as_ref(), comment),
            Change::File { path, text, owner, mode, .. } => {
                let (dir, name) = split(path)?;
                let folder = open_folder(dir)?;
                replace_in(&folder, dir, name, text.as_bytes(), *owner, *mode)
            }
            Change::AuthorizedKey { keys_file, public_key, program, config, from, account } => {
                let key = crate::register::read_public_key(public_key).map_err(|error| InstallError::File {
                    path: public_key.clone(),
                    action: "read the register key",
                    reason: error.to_string(),
                })?;
                let line = authorized_keys::register_key_line(program, config, &key, from.as_deref())
                    .map_err(|error| InstallError::BadOption(error.to_string()))?;
                add_authorized_key(keys_file, &line, account)
            }
            Change::BackupPcConfig { conf_dir, lines } => append_to_config_pl(conf_dir, lines),
        }
    }
}

/// What `install` found and will do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What it found: BackupPC's version, the account, the folders.
    pub found: String,
    /// The changes, in the order they are made.
    pub changes: Vec<Change>,
    /// What is already in place.
    pub in_place: Vec<String>,
    /// What it cannot fix, each with the fix.
    pub problems: Vec<String>,
    /// Options that had no effect, and why.
    pub notes: Vec<String>,
    /// What the administrator does next.
    pub next_steps: Vec<String>,
}

impl Plan {
    /// Makes the changes in order, calling `before` with each one first;
    /// stops at the first that fails (the ones before stay: each is whole,
    /// and a new run goes on from there).
    pub fn apply(&self, mut before: impl FnMut(&Change)) -> Result<(), InstallError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(InstallError::NotRoot);
        }
        for change in &self.changes {
            before(change);
            change.apply()?;
        }
        Ok(())
    }
}

/// Looks at the system and says what `install` would change.
pub fn plan(options: &InstallOptions) -> Result<Plan, InstallError> {
    let version = backuppc_version(Path::new(BACKUPPC_LIB))?;
    let account = backuppc_account()?;
    let root = (0, 0);
    let mut plan = Plan {
        found: format!("BackupPC {version}; account {} (home {})", account.name, account.home.display()),
        changes: Vec::new(),
        in_place: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        next_steps: Vec::new(),
    };
    let config_dir = options.config_path.parent().unwrap_or(Path::new("/")).to_owned();
    let ssh_dir = account.home.join(".ssh");

    // server.toml: written from the options while absent or the example.
    let existing = read_optional(&options.config_path)?;
    let write_config = existing.as_deref().is_none_or(|text| text == options.packaged_example);
    let config = if write_config {
        let text = starting_config(options, &ssh_dir)?;
        let config = check_starting_config(&text, &options.config_path)?;
        plan.changes.push(Change::File {
            path: options.config_path.clone(),
            what: if existing.is_some() {
                "bpc-register's configuration, replacing the package's example"
            } else {
                "bpc-register's configuration"
            },
            text,
            owner: root,
            mode: 0o644,
        });
        config
    } else {
        let given = [
            ("--domain", options.domain.is_some()),
            ("--url", options.url.is_some()),
            ("--account", options.account.is_some()),
            ("--from", options.from.is_some()),
            ("--client-port", options.client_port.is_some()),
        ];
        let ignored: Vec<&str> = given.iter().filter(|(_, given)| *given).map(|(name, _)| *name).collect();
        if !ignored.is_empty() {
            plan.notes.push(format!(
                "{} exists and is kept: {} change only a new one; edit the file instead",
                options.config_path.display(),
                ignored.join(", ")
            ));
        }
        plan.in_place.push(format!("{} (kept as it is)", options.config_path.display()));
        ServerConfig::load(&options.config_path)?
    };
    if !config_dir.exists() {
        plan.changes.insert(0, Change::Folder { path: config_dir.clone(), owner: root, mode: 0o755 });
    }
    if let crate::config::DirectoryConfig::File { path } = &config.directory
        && write_config
        && !path.exists()
    {
        plan.changes.push(Change::File {
            path: path.clone(),
            what: "the users who may enroll, none yet",
            text: USERS_TEMPLATE.to_owned(),
            owner: (0, account.gid),
            mode: 0o640,
        });
    }

    // BackupPC's own key, with which it logs in to the machines.
    let identity = config.backuppc.identity_path();
    let key_dir = identity.parent().unwrap_or(Path::new("/")).to_owned();
    if !key_dir.exists() {
        if key_dir == ssh_dir {
            plan.changes.push(Change::Folder { path: ssh_dir.clone(), owner: (account.uid, account.gid), mode: 0o700 });
        } else {
            plan.problems.push(format!("{}: no such folder for BackupPC's key ([backuppc] key)", key_dir.display()));
        }
    }
    key_pair(&mut plan, &identity, &config.backuppc.key, "BackupPC's key", Some(&account), &host_name());

    // The register key, and its line for the backuppc account.
    let register_key = config_dir.join(REGISTER_KEY_NAME);
    let register_public = register_key.with_extension("pub");
    key_pair(
        &mut plan,
        &register_key,
        &register_public,
        "the register key",
        None,
        &format!("bpc-enroll register key for {}", host_name()),
    );
    if !ssh_dir.exists()
        && !plan.changes.iter().any(|change| matches!(change, Change::Folder { path, .. } if *path == ssh_dir))
    {
        plan.changes.push(Change::Folder { path: ssh_dir.clone(), owner: (account.uid, account.gid), mode: 0o700 });
    }
    let authorize = Change::AuthorizedKey {
        keys_file: ssh_dir.join("authorized_keys"),
        public_key: register_public.clone(),
        program: options.program.clone(),
        config: options.config_path.display().to_string(),
        from: options.register_from.clone(),
        account: account.clone(),
    };
    if authorized_key_missing(&authorize)? {
        plan.changes.push(authorize);
    } else {
        plan.in_place.push(format!("the register key's line in {}", ssh_dir.join("authorized_keys").display()));
    }

    // BackupPC's configuration: host owners kept away from its commands.
    let conf_dir = &config.backuppc.conf_dir;
    match owner_edits::read(conf_dir) {
        Ok(edits) if edits.is_safe() => plan
            .in_place
            .push(format!("{}: host owners can change only harmless settings", edits.config_path.display())),
        Ok(edits) if options.fix_backuppc_config => {
            plan.changes.push(Change::BackupPcConfig { conf_dir: conf_dir.clone(), lines: edits.fix_lines() })
        }
        Ok(edits) => plan.problems.push(edits.problem()),
        Err(error) => plan.problems.push(error.to_string()),
    }

    // sshd must accept the backuppc account's keys.
    match sshd_settings(&account.name) {
        Ok(settings) => {
            let locked = account_locked(&account.name);
            match sshd_problems(&settings, &account.name, locked) {
                problems if problems.is_empty() => plan.in_place.push(format!(
                    "sshd accepts keys for {} (UsePAM {}{})",
                    account.name,
                    settings.get("usepam").map_or("?", String::as_str),
                    if locked { ", account locked for passwords" } else { "" }
                )),
                problems => plan.problems.extend(problems),
            }
        }
        Err(problem) => plan.problems.push(problem),
    }

    let host = host_name();
    plan.next_steps = vec![
        format!(
            "Edit {}: who may enroll ([directory]: a users file or LDAP) and how addresses become names \
             ([resolver]); see server.toml(5). `bpc-register check` says what is still wrong.",
            options.config_path.display()
        ),
        format!("Build the site bundle: bpc-register bundle --server ssh://{host} --out bpc-enroll-site.deb"),
        "Hand it out: on each machine, apt-get install ./bpc-enroll-site.deb && bpc-enroll setup --user LOGON"
            .to_owned(),
    ];
    Ok(plan)
}

/// The users file a new configuration points at: comments only.
const USERS_TEMPLATE: &str = "# Who may enroll machines: one table per logon (see server.toml(5)).\n\
# [users.alice]\n\
# name = \"Alice Example\"\n\
# password = \"$argon2id$...\"   # needed only when server.toml asks for passwords\n";

/// The `server.toml` a first install writes.
fn starting_config(options: &InstallOptions, ssh_dir: &Path) -> Result<String, InstallError> {
    let domain = options.domain.as_deref().ok_or_else(|| InstallError::NeedDomain(options.config_path.clone()))?;
    let url = options.url.clone().unwrap_or_else(|| format!("http://{}/backuppc/index.cgi?host={{host}}", host_name()));
    let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let mut text = String::from("# Written by `bpc-register install`; every key is described in server.toml(5).\n\n");
    text.push_str(&format!("domain = {}\nauth = \"never\"\n\n[backuppc]\n", quote(domain)));
    text.push_str(&format!("conf-dir = {}\n", quote(&options.conf_dir.display().to_string())));
    text.push_str(&format!("url = {}\n", quote(&url)));
    text.push_str(&format!("key = {}\n", quote(&ssh_dir.join("id_ed25519.pub").display().to_string())));
    if let Some(account) = &options.account {
        text.push_str(&format!("account = {}\n", quote(account)));
    }
    if let Some(from) = &options.from {
        text.push_str(&format!("from = {}\n", quote(from)));
    }
    if let Some(port) = options.client_port {
        text.push_str(&format!("client-port = {port}\n"));
    }
    text.push_str(
        "\n# Who may enroll: the users file, or an LDAP directory:\n\
         [directory]\n\
         kind = \"file\"\n\
         path = \"users.toml\"\n\
         # kind = \"ldap\"\n\
         # url = \"ldaps://ldap.example.org\"\n\
         # base = \"ou=people,dc=example,dc=org\"\n\n\
         # The machines' names: the DNS (forward-confirmed), or a file in /etc/hosts format.\n\
         [resolver]\n\
         kind = \"dns\"\n\n\
         # One line per registration and refusal; the fail2ban filter reads them.\n\
         [log]\n\
         kind = \"syslog\"\n",
    );
    Ok(text)
}

/// Parses the starting configuration as bpc-register will.
fn check_starting_config(text: &str, path: &Path) -> Result<ServerConfig, InstallError> {
    let mut config: ServerConfig =
        files::parse_toml(text, path).map_err(|error| InstallError::BadOption(error.to_string()))?;
    config.anchor_paths(path.parent().unwrap_or(Path::new("/")));
    Ok(config)
}

/// Plans the key pair at `private` and `public` when neither exists.
fn key_pair(
    plan: &mut Plan,
    private: &Path,
    public: &Path,
    what: &'static str,
    run_as: Option<&Account>,
    comment: &str,
) {
    match (private.exists(), public.exists()) {
        (true, true) => plan.in_place.push(format!("{what} {}", private.display())),
        (false, false) => plan.changes.push(Change::KeyPair {
            path: private.to_owned(),
            what,
            run_as: run_as.cloned(),
            comment: comment.to_owned(),
        }),
        (true, false) => plan.problems.push(format!(
            "{} exists without {}: write it with `ssh-keygen -y -f {} > {}`",
            private.display(),
            public.display(),
            private.display(),
            public.display()
        )),
        (false, true) => plan.problems.push(format!(
            "{} exists without its private key {}: restore it, or remove the public one to make a new pair",
            public.display(),
            private.display()
        )),
    }
}

/// Whether `authorized_keys` lacks the register key's line (always, while
/// the register key is still to be made).
fn authorized_key_missing(change: &Change) -> Result<bool, InstallError> {
    let Change::AuthorizedKey { keys_file, public_key, program, config, from, .. } = change else { return Ok(true) };
    let Ok(key) = crate::register::read_public_key(public_key) else { return Ok(true) };
    let line = authorized_keys::register_key_line(program, config, &key, from.as_deref())
        .map_err(|error| InstallError::BadOption(error.to_string()))?;
    let (dir, name) = split(keys_file)?;
    let existing = match open_folder(dir) {
        Ok(folder) => read_in(&folder, dir, name)?.map(|read| read.text).unwrap_or_default(),
        Err(_) => String::new(),
    };
    Ok(authorized_keys::merge(&existing, &line).is_some())
}

/// BackupPC's version, from `BackupPC::Lib`; refused unless 4 or later.
fn backuppc_version(lib: &Path) -> Result<String, InstallError> {
    let text = std::fs::read_to_string(lib).map_err(|_| InstallError::NoBackupPc(format!("no {}", lib.display())))?;
    let version = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Version")?.trim_start().strip_prefix("=>"))
        .map(|rest| rest.trim().trim_start_matches(['\'', '"']).split(['\'', '"']).next().unwrap_or("").to_owned())
        .ok_or_else(|| InstallError::NoBackupPc(format!("no version in {}", lib.display())))?;
    let major: u32 = version.split('.').next().and_then(|major| major.parse().ok()).unwrap_or(0);
    if major < 4 {
        return Err(InstallError::NoBackupPc(format!("{} says version {version}", lib.display())));
    }
    Ok(version)
}

fn backuppc_account() -> Result<Account, InstallError> {
    let user = nix::unistd::User::from_name(BACKUPPC_ACCOUNT).ok().flatten().ok_or(InstallError::NoAccount)?;
    Ok(Account { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw(), home: user.dir })
}

/// This machine's name, fully qualified when the system knows it.
pub fn host_name() -> String {
    let fqdn = Command::new("/usr/bin/hostname")
        .arg("--fqdn")
        .env_clear()
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c)));
    fqdn.or_else(|| Some(std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_owned()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn owner_name((uid, gid): (u32, u32)) -> String {
    let user = nix::unistd::User::from_uid(Uid::from_raw(uid)).ok().flatten().map_or(uid.to_string(), |u| u.name);
    let group = nix::unistd::Group::from_gid(Gid::from_raw(gid)).ok().flatten().map_or(gid.to_string(), |g| g.name);
    format!("{user}:{group}")
}

/// `sshd -T` for a connection of `user`: its settings, lowercase keys.
fn sshd_settings(user: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    if !Path::new(SSHD).exists() {
        return Err(format!(
            "{SSHD} is not installed: machines reach bpc-register through sshd (apt-get install openssh-server)"
        ));
    }
    let output = Command::new(SSHD)
        .args(["-T", "-C", &format!("user={user},host=localhost,addr=127.0.0.1")])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {SSHD} -T: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{SSHD} -T` fails, so sshd would not start: {}",
            protocol::text::one_line(&String::from_utf8_lossy(&output.stderr))
        ));
    }
    Ok(parse_sshd_settings(&String::from_utf8_lossy(&output.stdout)))
}

fn parse_sshd_settings(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut settings = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(' ') {
            settings
                .entry(key.to_ascii_lowercase())
                .and_modify(|old: &mut String| {
                    old.push(' ');
                    old.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
    }
    settings
}

/// Whether `user`'s password field is locked (`!...`): sshd then refuses
/// its keys unless PAM decides.
fn account_locked(user: &str) -> bool {
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    shadow.lines().filter_map(|line| line.strip_prefix(user)?.strip_prefix(':')).any(|rest| rest.starts_with('!'))
}

/// Why sshd, as configured, would refuse `user`'s register key.
fn sshd_problems(settings: &std::collections::BTreeMap<String, String>, user: &str, locked: bool) -> Vec<String> {
    let setting = |key: &str| settings.get(key).map(String::as_str).unwrap_or("");
    let mut problems = Vec::new();
    if setting("pubkeyauthentication") == "no" {
        problems.push(format!("sshd has PubkeyAuthentication no for {user}: set it to yes"));
    }
    if setting("usepam") == "no" && locked {
        problems.push(format!(
            "sshd has UsePAM no and the {user} account is locked (`!` in /etc/shadow), so sshd refuses its keys: \
             set UsePAM yes, or unlock the account for keys only with `usermod -p '*' {user}`"
        ));
    }
    let files = setting("authorizedkeysfile");
    if !files
        .split_whitespace()
        .any(|file| matches!(file, ".ssh/authorized_keys" | "%h/.ssh/authorized_keys" | "~/.ssh/authorized_keys"))
    {
        problems.push(format!(
            "sshd reads {user}'s keys from `{files}`, not ~{user}/.ssh/authorized_keys: add the register key's \
             line there yourself (bpc-register authorized-keys prints it)"
        ));
    }
    let names = |key: &str| -> Vec<String> {
        setting(key).split_whitespace().map(|entry| entry.split('@').next().unwrap_or("").to_owned()).collect()
    };
    let allows = names("allowusers");
    if !allows.is_empty() && !allows.iter().any(|name| name == user || name.contains(['*', '?'])) {
        problems.push(format!("sshd's AllowUsers does not name {user}: add it"));
    }
    if names("denyusers").iter().any(|name| name == user || name == "*") {
        problems.push(format!("sshd's DenyUsers refuses {user}: remove it from there"));
    }
    problems
}

fn read_optional(path: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(file_error(path, "read", error)),
    }
}

fn file_error(path: &Path, action: &'static str, error: impl std::fmt::Display) -> InstallError {
    InstallError::File { path: path.to_owned(), action, reason: error.to_string() }
}

fn split(path: &Path) -> Result<(&Path, &str), InstallError> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name =
        path.file_name().and_then(|name| name.to_str()).ok_or_else(|| file_error(path, "name", "no file name"))?;
    Ok((dir, name))
}

/// A folder opened without following a link at its last component (the
/// one its owner could replace; the folders above are root's).
fn open_folder(dir: &Path) -> Result<OwnedFd, InstallError> {
    nix::fcntl::open(dir, OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY, Mode::empty())
        .map_err(|error| file_error(dir, "open the folder (a link is not followed)", error))
}

/// A file read through its folder's descriptor, with its owner and mode.
#[derive(Debug)]
struct FileRead {
    text: String,
    owner: (u32, u32),
    mode: u32,
}

/// `name` in `folder`, read through a descriptor opened without following
/// a link, with its owner and mode; `None` when absent.
fn read_in(folder: &OwnedFd, dir: &Path, name: &str) -> Result<Option<FileRead>, InstallError> {
    let path = dir.join(name);
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match openat(folder, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(error) => return Err(file_error(&path, "open (a link is not followed)", error)),
    };
    let stat = fstat(&fd).map_err(|error| file_error(&path, "examine", error))?;
    if stat.st_mode & nix::libc::S_IFMT != nix::libc::S_IFREG {
        return Err(file_error(&path, "read", "not a regular file"));
    }
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text).map_err(|error| file_error(&path, "read", error))?;
    Ok(Some(FileRead { text, owner: (stat.st_uid, stat.st_gid), mode: stat.st_mode & 0o7777 }))
}

/// Replaces (or creates) `name` in `folder` with `body`, owned by `owner`
/// with `mode` from the start: a temporary file beside it, flushed, renamed
/// over it, the rename flushed.
fn replace_in(
    folder: &OwnedFd,
    dir: &Path,
    name: &str,
    body: &[u8],
    (uid, gid): (u32, u32),
    mode: u32,
) -> Result<(), InstallError> {
    let path = dir.join(name);
    let temp = format!(".{name}.bpc-register-install");
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // A temporary file left by an interrupted run is ours to replace.
    let _ = unlinkat(folder, temp.as_str(), UnlinkatFlags::NoRemoveDir);
    let fd = openat(folder, temp.as_str(), flags, Mode::from_bits_truncate(0o600))
        .map_err(|error| file_error(&path, "create a temporary file beside", error))?;
    let written = (|| -> Result<(), nix::Error> {
        fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        fchmod(&fd, Mode::from_bits_truncate(mode))?;
        let mut file = File::from(fd);
        file.write_all(body).map_err(|_| nix::errno::Errno::EIO)?;
        fsync(&file)?;
        renameat(folder, temp.as_str(), folder, name)?;
        fsync(folder)
    })();
    written.map_err(|error| {
        let _ = unlinkat(folder, temp.as_str(), UnlinkatFlags::NoRemoveDir);
        file_error(&path, "replace", error)
    })
}

fn make_folder(path: &Path, (uid, gid): (u32, u32), mode: u32) -> Result<(), InstallError> {
    let (dir, name) = split(path)?;
    let parent = open_folder(dir)?;
    match mkdirat(&parent, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(error) => return Err(file_error(path, "create the folder", error)),
    }
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let folder = openat(&parent, name, flags, Mode::empty()).map_err(|error| file_error(path, "open", error))?;
    fchown(&folder, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .and_then(|()| fchmod(&folder, Mode::from_bits_truncate(mode)))
        .map_err(|error| file_error(path, "give the folder its owner and mode", error))
}

fn make_key_pair(path: &Path, run_as: Option<&Account>, comment: &str) -> Result<(), InstallError> {
    let mut command = match run_as {
        Some(account) => {
            let mut command = Command::new(SETPRIV);
            command
                .arg(format!("--reuid={}", account.uid))
                .arg(format!("--regid={}", account.gid))
                .arg("--init-groups")
                .arg("--")
                .arg(SSH_KEYGEN)
                .env("HOME", &account.home);
            command
        }
        None => Command::new(SSH_KEYGEN),
    };
    command.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path);
    let output = command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| file_error(path, "run ssh-keygen for", error))?;
    if !output.status.success() {
        return Err(InstallError::Program {
            program: format!("{SSH_KEYGEN} -f {}", path.display()),
            status: output.status.to_string(),
            output: protocol::text::one_line(&String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(())
}

fn add_authorized_key(keys_file: &Path, line: &str, account: &Account) -> Result<(), InstallError> {
    let (dir, name) = split(keys_file)?;
    let folder = open_folder(dir)?;
    let existing = read_in(&folder, dir, name)?.unwrap_or(FileRead {
        text: String::new(),
        owner: (account.uid, account.gid),
        mode: 0o600,
    });
    match authorized_keys::merge(&existing.text, line) {
        Some(merged) => replace_in(&folder, dir, name, merged.as_bytes(), existing.owner, existing.mode),
        None => Ok(()),
    }
}

/// Appends `lines` to `config.pl` under BackupPC's `LOCK`, keeping the
/// file's owner, group and mode, as BackupPC's own editor writes it.
fn append_to_config_pl(conf_dir: &Path, lines: &[String]) -> Result<(), InstallError> {
    let folder = open_folder(conf_dir)?;
    let lock_path = conf_dir.join("LOCK");
    // Made by root when missing, it is the folder owner's
    // (`shared_file::open`): BackupPC and bpc-register open it too.
    let _lock =
        crate::registry::take_lock(conf_dir).map_err(|error| file_error(&lock_path, "take BackupPC's lock", error))?;
    let FileRead { mut text, owner, mode } = read_in(&folder, conf_dir, "config.pl")?
        .ok_or_else(|| file_error(&conf_dir.join("config.pl"), "read", "no such file"))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&config_pl_addition(lines));
    replace_in(&folder, conf_dir, "config.pl", text.as_bytes(), owner, mode)
}

/// The block appended to `config.pl`.
fn config_pl_addition(lines: &[String]) -> String {
    let mut block = String::from(
        "\n# Added by `bpc-register install`: a host's owner may change only the settings that touch\n\
         # nothing but her own backups, never a command, path, argument, address or mail.\n",
    );
    for line in lines {
        block.push_str(line);
        block.push('\n');
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(domain: Option<&str>) -> InstallOptions {
        InstallOptions {
            config_path: PathBuf::from("/etc/bpc-enroll/server.toml"),
            packaged_example: String::new(),
            program: "/usr/bin/bpc-register".into(),
            domain: domain.map(str::to_owned),
            url: Some("https://backup.example.org/backuppc/index.cgi?host={host}".into()),
            account: None,
            from: Some("192.0.2.10".into()),
            client_port: Some(2222),
            conf_dir: PathBuf::from("/etc/backuppc"),
            register_from: None,
            fix_backuppc_config: true,
        }
    }

    #[test]
    fn the_starting_configuration_is_one_the_server_loads() {
        let text = starting_config(&options(Some("example.org")), Path::new("/var/lib/backuppc/.ssh")).unwrap();
        let config = check_starting_config(&text, Path::new("/etc/bpc-enroll/server.toml")).unwrap();
        assert_eq!(config.domain.to_string(), "example.org");
        assert_eq!(config.backuppc.key, Path::new("/var/lib/backuppc/.ssh/id_ed25519.pub"));
        assert_eq!(config.backuppc.client_port, 2222);
        assert_eq!(config.backuppc.from.as_deref(), Some("192.0.2.10"));
        assert!(
            matches!(&config.directory, crate::config::DirectoryConfig::File { path } if path == Path::new("/etc/bpc-enroll/users.toml"))
        );
    }

    #[test]
    fn a_starting_configuration_needs_a_domain_and_valid_values() {
        let ssh = Path::new("/var/lib/backuppc/.ssh");
        let error = starting_config(&options(None), ssh).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/bpc-enroll/server.toml is written from the options: give --domain DOMAIN, the DNS domain of the \
             machines that may enroll"
        );
        assert_eq!(error.exit_code(), 2);
        let mut bad = options(Some("example.org"));
        bad.url = Some("ftp://backup/".into());
        let text = starting_config(&bad, ssh).unwrap();
        let error = check_starting_config(&text, Path::new("/etc/bpc-enroll/server.toml")).unwrap_err();
        assert!(error.to_string().starts_with("the server.toml made from the options is not valid: "), "{error}");
        assert!(error.to_string().contains("backuppc.url"), "{error}");
        let quoted = starting_config(&options(Some("a\"b\nc")), ssh).unwrap();
        assert!(check_starting_config(&quoted, Path::new("/etc/s.toml")).is_err(), "{quoted}");
    }

    #[test]
    fn sshd_settings_that_refuse_the_backuppc_key_are_problems() {
        let debian = parse_sshd_settings(
            "usepam yes\npubkeyauthentication yes\nauthorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\n",
        );
        assert_eq!(sshd_problems(&debian, "backuppc", true), Vec::<String>::new());
        let no_pam =
            parse_sshd_settings("usepam no\npubkeyauthentication yes\nauthorizedkeysfile .ssh/authorized_keys\n");
        assert_eq!(sshd_problems(&no_pam, "backuppc", false), Vec::<String>::new());
        assert_eq!(
            sshd_problems(&no_pam, "backuppc", true),
            ["sshd has UsePAM no and the backuppc account is locked (`!` in /etc/shadow), so sshd refuses its keys: \
              set UsePAM yes, or unlock the account for keys only with `usermod -p '*' backuppc`"]
        );
        let elsewhere = parse_sshd_settings(
            "usepam yes\npubkeyauthentication no\nauthorizedkeysfile /etc/ssh/keys/%u\nallowusers alice bob@10.0.0.1\ndenyusers backuppc\n",
        );
        assert_eq!(
            sshd_problems(&elsewhere, "backuppc", true),
            [
                "sshd has PubkeyAuthentication no for backuppc: set it to yes",
                "sshd reads backuppc's keys from `/etc/ssh/keys/%u`, not ~backuppc/.ssh/authorized_keys: add the \
                 register key's line there yourself (bpc-register authorized-keys prints it)",
                "sshd's AllowUsers does not name backuppc: add it",
                "sshd's DenyUsers refuses backuppc: remove it from there",
            ]
        );
    }

    #[test]
    fn backuppc_3_and_a_missing_backuppc_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("Lib.pm");
        std::fs::write(&lib, "    my $bpc = bless {\n        Version => '4.4.0'    # updated by makeDist\n").unwrap();
        assert_eq!(backuppc_version(&lib).unwrap(), "4.4.0");
        std::fs::write(&lib, "        Version => '3.3.2',\n").unwrap();
        assert_eq!(
            backuppc_version(&lib).unwrap_err().to_string(),
            format!(
                "BackupPC 4 is not installed here ({} says version 3.3.2); install Debian's backuppc package first",
                lib.display()
            )
        );
        let missing = dir.path().join("none.pm");
        assert_eq!(
            backuppc_version(&missing).unwrap_err().to_string(),
            format!(
                "BackupPC 4 is not installed here (no {}); install Debian's backuppc package first",
                missing.display()
            )
        );
    }

    #[test]
    fn files_are_replaced_whole_with_their_owner_and_mode_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let folder = open_folder(dir.path()).unwrap();
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        replace_in(&folder, dir.path(), "authorized_keys", b"one\n", me, 0o600).unwrap();
        let read = read_in(&folder, dir.path(), "authorized_keys").unwrap().unwrap();
        assert_eq!((read.text.as_str(), read.owner, read.mode), ("one\n", me, 0o600));
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "not yours\n").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("config.pl")).unwrap();
        let error = read_in(&folder, dir.path(), "config.pl").unwrap_err();
        assert!(error.to_string().contains("a link is not followed"), "{error}");
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path(), &linked).unwrap();
        assert!(open_folder(&linked).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4, "no temporary file is left");
    }

    #[test]
    fn the_config_pl_addition_says_where_it_comes_from() {
        let block = config_pl_addition(&["$Conf{CgiUserConfigEdit}{RsyncArgs} = 0;".to_owned()]);
        assert!(block.starts_with("\n# Added by `bpc-register install`"), "{block}");
        assert!(block.ends_with("\n$Conf{CgiUserConfigEdit}{RsyncArgs} = 0;\n"), "{block}");
    }
}
