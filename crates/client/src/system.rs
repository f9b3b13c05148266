//! Changes to the system itself: the backup account and its sudo rule.
//! Only `setup` and `uninstall` running as root call these, each through
//! the system's own tools, by absolute path, without a shell.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The folder of sudo's drop-in rules.
pub const SUDOERS_DIR: &str = "/etc/sudoers.d";

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
    #[error("account {account} exists but {problem}; choose another `account` in client.toml")]
    UnusableAccount {
        /// The account.
        account: String,
        /// What is wrong with it.
        problem: String,
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
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= 32 { Ok(()) } else { Err(SystemError::BadAccountName(name.to_owned())) }
}

/// The account named `name`, if it exists.
pub fn find_account(name: &str) -> Result<Option<Account>, SystemError> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| SystemError::Io { path: "/etc/passwd".into(), source: e.into() })?;
    Ok(user.map(|user| Account { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw(), home: user.dir }))
}

/// Creates the backup account if it is missing: a system account with its
/// own group, `home` as its home (created by setup, not by useradd), `/bin/sh`
/// as its shell (sshd runs forced commands through it) and `*` as its
/// password, so that no password can ever log in while keys still can (a
/// locked `!` account is refused by sshd without PAM). Returns the account
/// and whether it was created now.
pub fn ensure_account(name: &str, home: &Path) -> Result<(Account, bool), SystemError> {
    check_account_name(name)?;
    if let Some(account) = find_account(name)? {
        if account.uid == 0 {
            return Err(SystemError::UnusableAccount { account: name.into(), problem: "has uid 0".into() });
        }
        if account.home != home {
            let problem = format!("has home {} instead of {}", account.home.display(), home.display());
            return Err(SystemError::UnusableAccount { account: name.into(), problem });
        }
        run("/usr/sbin/usermod", &["-p", "*", name])?;
        return Ok((account, false));
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
            "/bin/sh",
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
    Ok((account, true))
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

    #[test]
    fn account_names_are_checked() {
        assert!(check_account_name("bckpciuem").is_ok());
        for bad in ["", "Root", "a b", "-x", "a;b", "../x", &"a".repeat(33)] {
            assert!(check_account_name(bad).is_err(), "{bad:?}");
        }
    }
}
