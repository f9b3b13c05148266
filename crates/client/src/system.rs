//! Changes to the system itself: the backup account and its sudo rule.
//! Only `setup` and `uninstall` running as root call these, each through
//! the system's own tools, by absolute path, without a shell.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The folder of sudo's drop-in rules.
pub const SUDOERS_DIR: &str = "/etc/sudoers.d";

/// The backup account's shell, through which sshd runs the forced command.
/// A POSIX `sh` given a command (`sh -c`) reads no start-up file: Debian's
/// dash, and bash started as `sh`. bash started as `bash` reads `~/.bashrc`
/// whenever sshd starts it, forced command or not.
pub const ACCOUNT_SHELL: &str = "/bin/sh";

/// sshd, asked (`sshd -T`) where it reads the account's keys from.
const SSHD: &str = "/usr/sbin/sshd";

/// at's queue on Debian: one file per job, owned by whoever queued it.
const AT_JOBS: &str = "/var/spool/cron/atjobs";

/// systemd's lingering marks: a user manager runs for each account listed.
const LINGER: &str = "/var/lib/systemd/linger";

/// Why a system change failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// A system tool could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The tool.
        program: String,
        /// The system's reason.
        source: io::Error,
    },
    /// A system tool said no.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The tool.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// The account exists but is not one setup can use.
    #[error("account {account} exists but {problem}; nothing was changed")]
    UnusableAccount {
        /// The account.
        account: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The account exists and setup did not make it; taking it over needs
    /// the person's word.
    #[error(
        "account {account} exists but bpc-enroll setup did not make it (it is not in \
         /var/lib/bpc-enroll/installed.toml): its keys, password and files would stay in force next to \
         a sudo rule that is worth root. Nothing was changed. Either remove it after checking what it \
         holds (userdel {account}, and its home {home}), or run setup again with --take-over-account: \
         its home, .ssh and authorized_keys then belong to root, every key not bound to rsyncsend is \
         removed and its password is disabled"
    )]
    ForeignAccount {
        /// The account.
        account: String,
        /// Its home.
        home: PathBuf,
    },
    /// Something still runs as an account being taken over, once its keys
    /// and password are gone: the sudo rule was not installed.
    #[error(
        "account {account} still has {what} after its keys and password were removed; the sudo rule was \
         not installed: stop it and run setup again with --take-over-account"
    )]
    StillRunning {
        /// The account.
        account: String,
        /// What runs.
        what: String,
    },
    /// The account's home holds something the account owns or can change,
    /// which its shell or sshd could read and run as it.
    #[error(
        "the home of account {account}, {home}, holds what the account owns or can change, which a shell \
         or sshd may read (start-up files, .ssh/rc, .ssh/environment, .forward, .config/systemd...) and run \
         as the account at every backup connection, and from there rsyncsend as root: {found}. {outcome}: \
         remove them or move them out of the home, then run setup again"
    )]
    HomeLeftovers {
        /// The account.
        account: String,
        /// Its home.
        home: PathBuf,
        /// What is there, listed.
        found: String,
        /// What this run did about it.
        outcome: &'static str,
    },
    /// The account name cannot be a system account name.
    #[error("`{0}` is not a valid account name ([a-z_][a-z0-9_-]*, at most 32 characters)")]
    BadAccountName(String),
    /// The sudo rule did not pass `visudo -c`.
    #[error("the sudo rule for {account} does not pass visudo -c: {stderr}")]
    BadSudoers {
        /// The account.
        account: String,
        /// What visudo said.
        stderr: String,
    },
    /// A path that the sudo rule would have to quote.
    #[error(
        "`{0}` cannot go in a sudo rule (only letters, digits and /._+- are allowed): install bpc-enroll and its configuration under plain paths"
    )]
    UnplainPath(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
}

/// The local backup account, as the system knows it.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Its home.
    pub home: PathBuf,
}

/// Checks an account name the way `useradd` accepts it by default.
pub fn check_account_name(name: &str) -> Result<(), SystemError> {
    protocol::AccountName::parse(name).map(|_| ()).map_err(|_| SystemError::BadAccountName(name.to_owned()))
}

/// The account named `name`, if it exists.
pub fn find_account(name: &str) -> Result<Option<Account>, SystemError> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| SystemError::Io { path: "/etc/passwd".into(), source: e.into() })?;
    Ok(user.map(|user| Account { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw(), home: user.dir }))
}

/// How setup came to use the backup account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOrigin {
    /// Created by this run; removed again if the registration fails.
    Created,
    /// Made, or taken over, by an earlier setup (its manifest says so).
    Setup,
    /// Found on the machine; taken over once the server has said `success`.
    TakeOver,
}

/// Gets the backup account ready for the registration without changing an
/// existing one: a missing account is created (a system account with its
/// own group, `home` as its home, created by setup, not by useradd,
/// `/bin/sh` as its shell since sshd runs forced commands through it, and
/// `*` as its password, so that no password can ever log in while keys
/// still can: sshd without PAM refuses a locked `!` account). An existing
/// account is used only when an earlier setup made or took it over
/// (`made_by_setup`) or when `take_over` allows it, and only when it is
/// safe to bind a root-equivalent sudo rule to it; what taking it over
/// changes happens after the server's `success`. Whichever it is, its home
/// must hold nothing it owns or can write ([`home_leftovers`]): a new
/// account whose home does is removed again.
pub fn prepare_account(
    name: &str,
    home: &Path,
    made_by_setup: bool,
    take_over: bool,
) -> Result<(Account, AccountOrigin), SystemError> {
    check_account_name(name)?;
    if let Some(account) = find_account(name)? {
        check_existing_account(&account, home)?;
        check_home(&account, home, "Nothing was changed")?;
        if made_by_setup {
            return Ok((account, AccountOrigin::Setup));
        }
        if !take_over {
            return Err(SystemError::ForeignAccount { account: name.into(), home: home.to_owned() });
        }
        check_nothing_runs_as(&account)?;
        check_sole_owner_of_uid(&account)?;
        check_sshd_reads_keys_from_home(&account)?;
        // A rule of setup's own may be left from a run that stopped half-way;
        // any other rule would stay in force beside the backup rule.
        if !sudoers_path(name).exists() && has_sudo_rules(name)? {
            return Err(SystemError::UnusableAccount {
                account: name.into(),
                problem: format!(
                    "has sudo rules already (sudo -l -U {name}); remove them first, since the backup rule \
                     would be added to them"
                ),
            });
        }
        return Ok((account, AccountOrigin::TakeOver));
    }
    let home_text = home.to_str().ok_or_else(|| SystemError::UnusableAccount {
        account: name.into(),
        problem: "would have a home that is not UTF-8".into(),
    })?;
    run(
        "/usr/sbin/useradd",
        &[
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            home_text,
            "--shell",
            ACCOUNT_SHELL,
            "--comment",
            "BackupPC client (bpc-enroll)",
            "--password",
            "*",
            name,
        ],
    )?;
    let account = find_account(name)?.ok_or_else(|| SystemError::UnusableAccount {
        account: name.into(),
        problem: "is missing right after useradd".into(),
    })?;
    // A home left by an earlier account of that name may hold its files,
    // and useradd may give the new account the old one's uid.
    if let Err(error) = check_home(&account, home, "The account was removed again") {
        remove_account(name)?;
        return Err(error);
    }
    Ok((account, AccountOrigin::Created))
}

/// The groups whose members sudo (or su, or the disk) already trusts: an
/// account in one of them has more than the backup rule.
const POWERFUL_GROUPS: [&str; 5] = ["root", "sudo", "wheel", "admin", "disk"];

/// What makes an existing account unfit to carry the backup key and its
/// sudo rule, checked before anything changes.
fn check_existing_account(account: &Account, home: &Path) -> Result<(), SystemError> {
    let unusable = |problem: String| SystemError::UnusableAccount { account: account.name.clone(), problem };
    if account.uid == 0 || account.gid == 0 {
        return Err(unusable("has uid or group 0 (root); choose another `account` in client.toml".into()));
    }
    if account.home != home {
        return Err(unusable(format!(
            "has home {} instead of {}; choose another `account` in client.toml",
            account.home.display(),
            home.display()
        )));
    }
    match std::fs::symlink_metadata(home) {
        Ok(meta) if !meta.is_dir() => {
            return Err(unusable(format!("has a home {} that is not a folder", home.display())));
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(SystemError::Io { path: home.to_owned(), source }),
    }
    let passwd = read_system_file(Path::new("/etc/passwd"))?;
    let sharing = passwd.lines().map(|line| line.split(':').collect::<Vec<_>>()).find(|fields| {
        fields.first().is_some_and(|name| *name != account.name) && fields.get(5).map(Path::new) == Some(home)
    });
    if let Some(other) = sharing.and_then(|fields| fields.first().copied()) {
        return Err(unusable(format!("shares its home {} with the account {other}", home.display())));
    }
    let shell = passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&account.name.as_str())).then(|| fields.get(6).copied().unwrap_or_default())
        })
        .unwrap_or_default()
        .to_owned();
    let shells = read_system_file(Path::new("/etc/shells")).unwrap_or_default();
    let listed = shells.lines().any(|line| line.trim() == shell);
    if !listed || shell.ends_with("/nologin") || shell.ends_with("/false") {
        return Err(unusable(format!(
            "has the shell `{shell}`, through which sshd cannot run rsyncsend; give it /bin/sh \
             (usermod --shell /bin/sh {})",
            account.name
        )));
    }
    let user = std::ffi::CString::new(account.name.as_str()).map_err(|e| unusable(e.to_string()))?;
    let groups = nix::unistd::getgrouplist(&user, nix::unistd::Gid::from_raw(account.gid))
        .map_err(|e| SystemError::Io { path: "/etc/group".into(), source: e.into() })?;
    for gid in groups {
        let name = nix::unistd::Group::from_gid(gid).ok().flatten().map(|group| group.name).unwrap_or_default();
        if gid.as_raw() == 0 || POWERFUL_GROUPS.contains(&name.as_str()) {
            return Err(unusable(format!(
                "is in the group {name}, which gives it more than the backup rule; remove it from that group \
                 (gpasswd --delete {} {name})",
                account.name
            )));
        }
    }
    Ok(())
}

/// An account taken over must have nothing of its own running or
/// scheduled: once it holds the sudo rule, whatever runs as it is root.
/// Checked before the registration (this) and again, with
/// [`running_as`], once its keys and password are gone, just before the
/// rule is installed.
fn check_nothing_runs_as(account: &Account) -> Result<(), SystemError> {
    let unusable = |problem: String| SystemError::UnusableAccount { account: account.name.clone(), problem };
    if let Some(what) = running_as(account)? {
        return Err(unusable(format!("has {what}; stop or remove it first")));
    }
    Ok(())
}

/// What of the account's own is scheduled (a crontab, an at job, systemd
/// lingering, which starts its user manager and its units) or running (a
/// live process), if anything, with the advice to stop it.
pub fn running_as(account: &Account) -> Result<Option<String>, SystemError> {
    for spool in ["/var/spool/cron/crontabs", "/var/spool/cron"] {
        let crontab = Path::new(spool).join(&account.name);
        if crontab.is_file() {
            return Ok(Some(format!("a crontab, {} (crontab -r -u {})", crontab.display(), account.name)));
        }
    }
    let linger = Path::new(LINGER).join(&account.name);
    if linger.exists() {
        return Ok(Some(format!("systemd lingering, {} (loginctl disable-linger {})", linger.display(), account.name)));
    }
    if let Ok(jobs) = std::fs::read_dir(AT_JOBS) {
        use std::os::unix::fs::MetadataExt;
        for job in jobs.flatten() {
            let queued = !job.file_name().to_string_lossy().starts_with('.');
            if queued && job.metadata().is_ok_and(|meta| meta.is_file() && meta.uid() == account.uid) {
                return Ok(Some(format!("an at job, {} (atq; atrm)", job.path().display())));
            }
        }
    }
    let processes = std::fs::read_dir("/proc").map_err(|source| SystemError::Io { path: "/proc".into(), source })?;
    for entry in processes.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let field = |name: &str| status.lines().find_map(|line| line.strip_prefix(name)).unwrap_or_default();
        // A zombie has finished and can do nothing; it waits for its parent.
        let finished = field("State:").trim_start().starts_with(['Z', 'X']);
        if !finished && field("Uid:").split_whitespace().any(|uid| uid == account.uid.to_string()) {
            let name = field("Name:").trim();
            let pid = entry.file_name().to_string_lossy().into_owned();
            return Ok(Some(format!("a running process, {pid} `{name}` (pkill -u {})", account.name)));
        }
    }
    Ok(None)
}

/// The most entries [`HomeLeftovers`](SystemError::HomeLeftovers) lists.
const LISTED_AT_MOST: usize = 20;

/// Refuses a home holding what the account owns or can change (see
/// [`home_leftovers`]); `outcome` says what this run did about it.
pub fn check_home(account: &Account, home: &Path, outcome: &'static str) -> Result<(), SystemError> {
    let found = home_leftovers(account, home)?;
    if found.is_empty() {
        return Ok(());
    }
    let mut listed: Vec<String> = found.iter().take(LISTED_AT_MOST).map(|path| path.display().to_string()).collect();
    if found.len() > LISTED_AT_MOST {
        listed.push(format!("and {} more", found.len() - LISTED_AT_MOST));
    }
    Err(SystemError::HomeLeftovers {
        account: account.name.clone(),
        home: home.to_owned(),
        found: listed.join(", "),
        outcome,
    })
}

/// Everything in `home`, at any depth, that the account owns or can write
/// (as its owner, through one of its groups, or as anyone), and every
/// symbolic link it owns or that points to something it can write; the
/// home itself, `.ssh` and the two keys files are left out, since setup
/// makes them root's. A shell reads its start-up files there (`.bashrc`,
/// `.profile`...), sshd reads `.ssh/rc` and `.ssh/environment`, mail
/// `.forward`, systemd `.config/systemd/user`: whatever the account could
/// put there would run as it, and the account may run rsyncsend as root.
pub fn home_leftovers(account: &Account, home: &Path) -> Result<Vec<PathBuf>, SystemError> {
    use std::os::unix::fs::MetadataExt;
    fn io_error(path: &Path) -> impl Fn(io::Error) -> SystemError + '_ {
        move |source| SystemError::Io { path: path.to_owned(), source }
    }
    match std::fs::symlink_metadata(home) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Ok(vec![home.to_owned()]),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SystemError::Io { path: home.to_owned(), source }),
    }
    let groups = account_groups(account)?;
    let writable = |meta: &std::fs::Metadata| {
        meta.uid() == account.uid
            || meta.mode() & 0o002 != 0
            || (meta.mode() & 0o020 != 0 && groups.contains(&meta.gid()))
    };
    let ssh = home.join(".ssh");
    let setups_own = [ssh.clone(), ssh.join("authorized_keys"), ssh.join("authorized_keys2")];
    let mut found = Vec::new();
    let mut pending = vec![home.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let path = entry.map_err(io_error(&dir))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io_error(&path))?;
            let changeable = if meta.file_type().is_symlink() {
                meta.uid() == account.uid || std::fs::metadata(&path).is_ok_and(|target| writable(&target))
            } else {
                writable(&meta)
            };
            if changeable && !setups_own.contains(&path) {
                found.push(path.clone());
            }
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The account's group ids: its own and those it is a member of.
fn account_groups(account: &Account) -> Result<Vec<u32>, SystemError> {
    let user = std::ffi::CString::new(account.name.as_str())
        .map_err(|e| SystemError::UnusableAccount { account: account.name.clone(), problem: e.to_string() })?;
    let groups = nix::unistd::getgrouplist(&user, nix::unistd::Gid::from_raw(account.gid))
        .map_err(|e| SystemError::Io { path: "/etc/group".into(), source: e.into() })?;
    Ok(groups.into_iter().map(|gid| gid.as_raw()).collect())
}

/// Sets the account's shell to [`ACCOUNT_SHELL`] unless it is already;
/// run after the server's `success`, as [`disable_password`]. Returns
/// whether it changed.
pub fn set_shell(name: &str) -> Result<bool, SystemError> {
    check_account_name(name)?;
    let passwd = read_system_file(Path::new("/etc/passwd"))?;
    let current = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name)).then(|| fields.get(6).copied().unwrap_or_default())
    });
    if current == Some(ACCOUNT_SHELL) {
        return Ok(false);
    }
    run("/usr/sbin/usermod", &["--shell", ACCOUNT_SHELL, name])?;
    Ok(true)
}

/// Another name with the same uid is the same account to the kernel, with
/// its own password, keys and home.
fn check_sole_owner_of_uid(account: &Account) -> Result<(), SystemError> {
    let passwd = read_system_file(Path::new("/etc/passwd"))?;
    if let Some(other) = other_name_with_uid(&passwd, account) {
        return Err(SystemError::UnusableAccount {
            account: account.name.clone(),
            problem: format!("shares its uid {} with the account {other}; remove that entry first", account.uid),
        });
    }
    Ok(())
}

/// The first name of `passwd` other than the account's with its uid.
fn other_name_with_uid<'a>(passwd: &'a str, account: &Account) -> Option<&'a str> {
    let uid = account.uid.to_string();
    passwd.lines().map(|line| line.split(':').collect::<Vec<_>>()).find_map(|fields| {
        let name = fields.first().copied()?;
        (name != account.name && fields.get(2) == Some(&uid.as_str())).then_some(name)
    })
}

/// Refuses an account whose keys sshd reads from elsewhere than the home's
/// `.ssh/authorized_keys` and `.ssh/authorized_keys2` (which setup takes
/// over), or asks a command for: such keys would stay in force. sshd's
/// configuration for the account comes from `sshd -T -C user=ACCOUNT`;
/// without sshd there is nothing to ask.
fn check_sshd_reads_keys_from_home(account: &Account) -> Result<(), SystemError> {
    if !Path::new(SSHD).exists() {
        return Ok(());
    }
    let output = Command::new(SSHD)
        .args(["-T", "-C", &format!("user={}", account.name)])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SystemError::Spawn { program: SSHD.into(), source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(SystemError::Failed { program: format!("{SSHD} -T"), status: output.status, stderr });
    }
    match sshd_key_sources_problem(&String::from_utf8_lossy(&output.stdout), account) {
        Some(problem) => Err(SystemError::UnusableAccount { account: account.name.clone(), problem }),
        None => Ok(()),
    }
}

/// What in `sshd -T`'s output lets keys in for `account` other than those
/// of its home's `.ssh/authorized_keys` and `.ssh/authorized_keys2`.
pub fn sshd_key_sources_problem(sshd_t: &str, account: &Account) -> Option<String> {
    let setting = |key: &str| {
        sshd_t.lines().find_map(|line| {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            name.eq_ignore_ascii_case(key).then(|| value.trim().to_owned())
        })
    };
    if let Some(command) = setting("authorizedkeyscommand").filter(|value| value != "none") {
        return Some(format!(
            "gets keys from sshd's AuthorizedKeysCommand `{command}`, which setup cannot take over; \
             choose another `account` in client.toml"
        ));
    }
    let ssh = account.home.join(".ssh");
    let allowed = [ssh.join("authorized_keys"), ssh.join("authorized_keys2")];
    let files = setting("authorizedkeysfile").unwrap_or_default();
    for file in files.split_whitespace().filter(|file| *file != "none") {
        let expanded = expand_sshd_tokens(file, account);
        let path = account.home.join(&expanded);
        if !allowed.contains(&path) {
            return Some(format!(
                "gets keys from {} (sshd's AuthorizedKeysFile `{file}`), which setup cannot take over; \
                 choose another `account` in client.toml",
                path.display()
            ));
        }
    }
    None
}

/// `%%`, `%h`, `%u` and `%U` of an sshd path, as sshd expands them.
fn expand_sshd_tokens(text: &str, account: &Account) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(&account.home.to_string_lossy()),
            Some('u') => out.push_str(&account.name),
            Some('U') => out.push_str(&account.uid.to_string()),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Whether sudo lets the account run anything, as `sudo -l -U` lists it.
fn has_sudo_rules(name: &str) -> Result<bool, SystemError> {
    let output = Command::new("/usr/bin/sudo")
        .args(["-n", "-l", "-U", name])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SystemError::Spawn { program: "/usr/bin/sudo".into(), source })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(SystemError::Failed { program: "/usr/bin/sudo -l".into(), status: output.status, stderr });
    }
    Ok(text.contains("may run the following commands"))
}

/// Disables the account's password (`*`: no password logs in, keys still
/// do) unless it already is; run only after the server's `success`, so
/// that a refused registration leaves `/etc/shadow` as it was.
pub fn disable_password(name: &str) -> Result<bool, SystemError> {
    check_account_name(name)?;
    let shadow = read_system_file(Path::new("/etc/shadow"))?;
    let current = shadow.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name)).then(|| fields.next().unwrap_or_default())
    });
    if current == Some("*") {
        return Ok(false);
    }
    run("/usr/sbin/usermod", &["--password", "*", name])?;
    Ok(true)
}

fn read_system_file(path: &Path) -> Result<String, SystemError> {
    std::fs::read_to_string(path).map_err(|source| SystemError::Io { path: path.to_owned(), source })
}

/// Removes the account (not its home: setup's manifest removes what it made).
pub fn remove_account(name: &str) -> Result<(), SystemError> {
    check_account_name(name)?;
    run("/usr/sbin/userdel", &[name])
}

/// The path of the account's sudo rule.
pub fn sudoers_path(account: &str) -> PathBuf {
    Path::new(SUDOERS_DIR).join(format!("bpc-enroll-{account}"))
}

/// The sudo rule: the account may run `PROGRAM rsyncsend --config CONFIG`
/// as root, with these exact arguments (no wildcard), without a password,
/// and nothing else; sudo keeps `SSH_ORIGINAL_COMMAND` and `SSH_CONNECTION`
/// for it. rsyncsend then checks BackupPC's command and resolves its path as
/// root, and execs rsync itself with no sudo in between. Both Debian's sudo
/// and sudo-rs accept the rule. `program` and `config` must be plain paths:
/// sudoers gives spaces, commas, colons, `=` and `\` a meaning.
pub fn sudoers_rule(account: &str, program: &str, config: &Path) -> Result<String, SystemError> {
    check_account_name(account)?;
    let config = config.to_str().unwrap_or_default();
    for path in [program, config] {
        let plain = path.starts_with('/') && path.chars().all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c));
        if !plain {
            return Err(SystemError::UnplainPath(path.to_owned()));
        }
    }
    Ok(format!(
        "# Written by bpc-enroll setup: the backup account may run rsyncsend as root, nothing else.\n\
         Defaults:{account} env_keep += \"SSH_ORIGINAL_COMMAND SSH_CONNECTION\"\n\
         {account} ALL=(root) NOPASSWD: {program} rsyncsend --config {config}\n"
    ))
}

/// Checks the rule with `visudo -c` in a temp file, then installs it
/// atomically with mode 0440 (what sudo requires).
pub fn install_sudoers(account: &str, program: &str, config: &Path) -> Result<PathBuf, SystemError> {
    let path = sudoers_path(account);
    let body = sudoers_rule(account, program, config)?;
    let io_error = |source| SystemError::Io { path: path.clone(), source };
    let pending = files::AtomicWrite::prepare(&path, body.as_bytes(), 0o440).map_err(io_error)?;
    let output = Command::new("/usr/sbin/visudo")
        .arg("-c")
        .arg("-q")
        .arg("-f")
        .arg(pending.temp_path())
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SystemError::Spawn { program: "/usr/sbin/visudo".into(), source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).trim().to_owned();
        return Err(SystemError::BadSudoers { account: account.into(), stderr });
    }
    pending.commit().map_err(io_error)?;
    Ok(path)
}

/// Runs a system tool with a clean environment; its failure is an error
/// carrying what it said.
fn run(program: &str, args: &[&str]) -> Result<(), SystemError> {
    let output = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SystemError::Spawn { program: program.into(), source })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SystemError::Failed {
            program: program.into(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_allows_rsyncsend_with_its_configuration_only() {
        let rule = sudoers_rule("bckpciuem", "/usr/bin/bpc-enroll", Path::new("/etc/bpc-enroll/client.toml")).unwrap();
        assert_eq!(
            rule,
            "# Written by bpc-enroll setup: the backup account may run rsyncsend as root, nothing else.\n\
             Defaults:bckpciuem env_keep += \"SSH_ORIGINAL_COMMAND SSH_CONNECTION\"\n\
             bckpciuem ALL=(root) NOPASSWD: /usr/bin/bpc-enroll rsyncsend --config /etc/bpc-enroll/client.toml\n"
        );
        assert!(!rule.contains('*') && !rule.contains("requiretty"));
        for (program, config) in [("/usr/bin/bpc enroll", "/etc/c.toml"), ("/usr/bin/x", "/etc/a,b"), ("x", "/etc/c")] {
            assert!(sudoers_rule("bckpciuem", program, Path::new(config)).is_err(), "{program} {config}");
        }
    }

    fn account() -> Account {
        Account { name: "bckpciuem".into(), uid: 999, gid: 999, home: "/var/lib/bckpciuem".into() }
    }

    #[test]
    fn sshd_may_read_keys_only_from_the_two_files_setup_takes_over() {
        let with = |files: &str, command: &str| {
            let text = format!("port 22\nauthorizedkeyscommand {command}\nauthorizedkeysfile {files}\nusepam yes\n");
            sshd_key_sources_problem(&text, &account())
        };
        for files in [
            ".ssh/authorized_keys .ssh/authorized_keys2",
            ".ssh/authorized_keys",
            "%h/.ssh/authorized_keys",
            "/var/lib/%u/.ssh/authorized_keys2",
            "none",
        ] {
            assert_eq!(with(files, "none"), None, "{files}");
        }
        for files in [
            "/etc/ssh/authorized_keys/%u",
            ".ssh/authorized_keys .ssh/other_keys",
            "/var/lib/%U/keys",
            "%%h/.ssh/authorized_keys",
            ".ssh/../.ssh2/authorized_keys",
        ] {
            let problem = with(files, "none").unwrap_or_default();
            assert!(problem.contains("AuthorizedKeysFile"), "{files}: {problem}");
        }
        let problem = with(".ssh/authorized_keys", "/usr/bin/sss_ssh_authorizedkeys %u").unwrap_or_default();
        assert!(problem.contains("AuthorizedKeysCommand `/usr/bin/sss_ssh_authorizedkeys %u`"), "{problem}");
        assert_eq!(expand_sshd_tokens("%h/%u/%U/%%/%x%", &account()), "/var/lib/bckpciuem/bckpciuem/999/%/%x%");
    }

    #[test]
    fn another_passwd_entry_with_the_same_uid_is_found() {
        let passwd = "root:x:0:0::/root:/bin/bash\nbckpciuem:x:999:999::/var/lib/bckpciuem:/bin/sh\n";
        assert_eq!(other_name_with_uid(passwd, &account()), None);
        let shared = format!("{passwd}toor:x:999:0::/root:/bin/bash\n");
        assert_eq!(other_name_with_uid(&shared, &account()), Some("toor"));
    }

    #[test]
    fn what_the_account_owns_or_can_write_in_its_home_is_listed_but_the_keys_setup_takes_over() {
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let mode = |path: &Path, mode: u32| fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::create_dir_all(home.join(".config/systemd")).unwrap();
        for (file, file_mode) in [("notes", 0o644), (".ssh/rc", 0o664), (".ssh/authorized_keys", 0o666)] {
            fs::write(home.join(file), "").unwrap();
            mode(&home.join(file), file_mode);
        }
        mode(&home.join(".ssh"), 0o755);
        mode(&home.join(".config"), 0o777);
        mode(&home.join(".config/systemd"), 0o755);
        fs::write(dir.path().join("open"), "").unwrap();
        mode(&dir.path().join("open"), 0o666);
        std::os::unix::fs::symlink(dir.path().join("open"), home.join(".profile")).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let my_group = nix::unistd::getegid().as_raw();
        // Another uid in the files' group: what that group or anyone may write.
        let other = Account { name: "bpce-nosuch".into(), uid: me + 1, gid: my_group, home: home.clone() };
        let listed = home_leftovers(&other, &home).unwrap();
        assert_eq!(listed, [".config", ".profile", ".ssh/rc"].map(|name| home.join(name)));
        // The owner of everything: all of it but .ssh and its keys.
        let owner = Account { uid: me, ..other };
        let listed = home_leftovers(&owner, &home).unwrap();
        let expected = [".config", ".config/systemd", ".profile", ".ssh/rc", "notes"].map(|name| home.join(name));
        assert_eq!(listed, expected);
        assert!(home_leftovers(&owner, &dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn account_names_are_checked() {
        assert!(check_account_name("bckpciuem").is_ok());
        for bad in ["", "Root", "a b", "-x", "a;b", "../x", &"a".repeat(33)] {
            assert!(check_account_name(bad).is_err(), "{bad:?}");
        }
    }
}
