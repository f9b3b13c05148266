//! `bpc-enroll rsyncsend`: the only thing the backup server may run here.
//!
//! sshd starts it as the forced command of the backup server's key, with the
//! command BackupPC asked for in `SSH_ORIGINAL_COMMAND`. It accepts only the
//! rsync server invocations BackupPC 4 sends (backup: `--server --sender`;
//! restore: `--server`, when allowed), rebuilds the argument vector itself
//! from the checked parts, and replaces itself with rsync, so the connection
//! goes straight to rsync with no copy in between and no shell anywhere.
//!
//! rsync's `--protect-args` (`-s`) is refused: with it, the server reads
//! further options from the connection itself, where no forced command can
//! see them (`--remove-source-files`, `--log-file=/etc/...`). bpc-register's
//! host config therefore has BackupPC send its options on the command line,
//! where every one of them is checked here, together with the share's path.

use std::fmt;

/// The rsync program run for the backup server.
pub const RSYNC: &str = "/usr/bin/rsync";
/// The sudo program that gives rsync the rights to read and restore everything.
pub const SUDO: &str = "/usr/bin/sudo";
/// The longest command accepted; BackupPC's are under 100 bytes.
const MAX_COMMAND_LEN: usize = 512;

/// What the backup server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsyncMode {
    /// rsync sends files to the server.
    Backup,
    /// rsync receives files from the server.
    Restore,
}

impl fmt::Display for RsyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RsyncMode::Backup => "backup",
            RsyncMode::Restore => "restore",
        })
    }
}

/// A checked rsync server invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsyncInvocation {
    /// Backup or restore.
    pub mode: RsyncMode,
    /// The bundle of short options, e.g. `-lHogDtprcxe.iLsfxC`.
    pub flags: String,
    /// The long options, each one of [`LONG_OPTIONS`].
    pub options: Vec<String>,
    /// The share being backed up, or the folder restored into.
    pub path: String,
}

/// The long options BackupPC's rsync passes to the server side, and the only
/// ones accepted: none of them runs a program, names a file to write, or
/// removes sources.
pub const LONG_OPTIONS: &[&str] =
    &["--numeric-ids", "--super", "--delete", "--partial", "--stats", "--log-format=%i", "--delete-excluded"];

/// Long options accepted with a number as their value.
pub const NUMBER_OPTIONS: &[&str] = &["--timeout=", "--checksum-seed=", "--block-size="];

fn option_allowed(option: &str) -> bool {
    LONG_OPTIONS.contains(&option)
        || NUMBER_OPTIONS.iter().any(|prefix| {
            option
                .strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RsyncRefusal {
    /// No command was given (an interactive login was attempted).
    #[error("no command given; this key only runs rsync for backups")]
    NoCommand,
    /// The command has bytes other than plain printable ASCII, or is too long.
    #[error("the command holds characters rsync's server mode never uses")]
    BadCharacters,
    /// The program is not rsync.
    #[error("only rsync may run with this key")]
    NotRsync,
    /// rsync without `--server`.
    #[error("only rsync's server mode may run with this key")]
    NotServer,
    /// A restore while restores are turned off.
    #[error("restores are turned off on this machine (allow-restore = false)")]
    RestoreDisabled,
    /// A bundle of short options that is not one.
    #[error("rsync's options must be a single bundle of short options")]
    BadFlags,
    /// Any other option or argument.
    #[error("rsync argument `{0}` is not allowed with this key")]
    Forbidden(String),
    /// `--protect-args`, which would hide options from this check.
    #[error("rsync's --protect-args (-s) is refused: it hides options from this check")]
    ProtectArgs,
    /// The path is not a plain absolute path inside the allowed ones.
    #[error("path `{0}` is not inside the allowed paths")]
    PathNotAllowed(String),
}

/// Checks `command` (the text of `SSH_ORIGINAL_COMMAND`) against the shapes
/// BackupPC 4 sends:
///
/// ```text
/// RSYNC --server --sender -FLAGS [OPTION]... . PATH   backup (full or incremental)
/// RSYNC --server -FLAGS [OPTION]... . PATH            restore, only when allowed
/// ```
///
/// where RSYNC is `rsync` or an absolute path ending in `/rsync`, FLAGS is one
/// bundle of letters without `s` (and, after `e`, the `.iLsfxC` capability
/// string), each OPTION is one of [`LONG_OPTIONS`] or [`NUMBER_OPTIONS`] with
/// digits, and PATH is an absolute
/// path inside one of `allowed_paths`.
pub fn check_command(
    command: Option<&[u8]>,
    allow_restore: bool,
    allowed_paths: &[String],
) -> Result<RsyncInvocation, RsyncRefusal> {
    let command = command.ok_or(RsyncRefusal::NoCommand)?;
    if command.is_empty() {
        return Err(RsyncRefusal::NoCommand);
    }
    if command.len() > MAX_COMMAND_LEN || !command.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(RsyncRefusal::BadCharacters);
    }
    let text = std::str::from_utf8(command).map_err(|_| RsyncRefusal::BadCharacters)?;
    let mut words = text.split(' ');
    let program = words.next().unwrap_or_default();
    if program != "rsync" && !(program.starts_with('/') && program.ends_with("/rsync")) {
        return Err(RsyncRefusal::NotRsync);
    }
    if words.next() != Some("--server") {
        return Err(RsyncRefusal::NotServer);
    }
    let mut next = words.next();
    let mode = if next == Some("--sender") {
        next = words.next();
        RsyncMode::Backup
    } else {
        RsyncMode::Restore
    };
    if mode == RsyncMode::Restore && !allow_restore {
        return Err(RsyncRefusal::RestoreDisabled);
    }
    let flags = next.ok_or(RsyncRefusal::BadFlags)?;
    if !is_flag_bundle(flags) {
        return Err(match flags.starts_with("--") {
            true => RsyncRefusal::Forbidden(flags.to_owned()),
            false => RsyncRefusal::BadFlags,
        });
    }
    if flags.split('e').next().is_some_and(|letters| letters.contains('s')) {
        return Err(RsyncRefusal::ProtectArgs);
    }
    let mut options = Vec::new();
    loop {
        match words.next() {
            Some(option) if option_allowed(option) => options.push(option.to_owned()),
            Some(".") => break,
            Some(other) => return Err(RsyncRefusal::Forbidden(other.to_owned())),
            None => return Err(RsyncRefusal::Forbidden("(no path)".into())),
        }
    }
    let path = words.next().ok_or_else(|| RsyncRefusal::Forbidden("(no path)".into()))?;
    if let Some(extra) = words.next() {
        return Err(RsyncRefusal::Forbidden(extra.to_owned()));
    }
    if !path_allowed(path, allowed_paths) {
        return Err(RsyncRefusal::PathNotAllowed(path.to_owned()));
    }
    Ok(RsyncInvocation { mode, flags: flags.to_owned(), options, path: path.to_owned() })
}

/// Whether `path` is absolute, plain (no `.` or `..` component, no
/// backslash, quote or `~`) and at or below one of `allowed`.
pub fn path_allowed(path: &str, allowed: &[String]) -> bool {
    let plain = path.starts_with('/')
        && !path.contains(['\\', '\'', '"', '~', '*', '?', '['])
        && !path.split('/').any(|component| component == "." || component == "..");
    let inside = |root: &String| {
        let root = root.trim_end_matches('/');
        root.is_empty() || path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
    };
    plain && allowed.iter().any(inside)
}

/// `-` then letters; an `e` may be followed by rsync's capability string
/// (`.` and letters), which is how rsync's client tells its server what it
/// supports. No digits, `=`, `/` or second dash: no option takes a value here.
fn is_flag_bundle(word: &str) -> bool {
    let Some(bundle) = word.strip_prefix('-') else { return false };
    let (letters, capabilities) = match bundle.split_once('e') {
        Some((before, after)) => (before, Some(after)),
        None => (bundle, None),
    };
    let letters_ok = letters.chars().all(|c| c.is_ascii_alphabetic());
    let capabilities_ok = capabilities.is_none_or(|c| c.chars().all(|c| c == '.' || c.is_ascii_alphabetic()));
    !bundle.is_empty() && letters_ok && capabilities_ok
}

impl RsyncInvocation {
    /// The argument vector to run: rsync's fixed path and the checked parts,
    /// never the text as received. Root runs rsync itself; the backup account
    /// goes through `sudo -n`, whose rule allows exactly these invocations.
    pub fn argv(&self, as_root: bool) -> Vec<String> {
        let mut argv = Vec::new();
        if !as_root {
            argv.extend([SUDO, "-n"].map(str::to_owned));
        }
        argv.extend([RSYNC, "--server"].map(str::to_owned));
        if self.mode == RsyncMode::Backup {
            argv.push("--sender".to_owned());
        }
        argv.push(self.flags.clone());
        argv.extend(self.options.iter().cloned());
        argv.push(".".to_owned());
        argv.push(self.path.clone());
        argv
    }
}

/// Writes one line to the system log (facility `auth`, as `bpc-enroll-rsyncsend`).
/// Without a reachable syslog the line is lost, but the message on standard
/// error, which BackupPC keeps in the backup's log, is not.
pub fn log_event(refused: bool, message: &str) {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_AUTH,
        hostname: None,
        process: "bpc-enroll-rsyncsend".into(),
        pid: std::process::id(),
    };
    if let Ok(mut logger) = syslog::unix(formatter) {
        let _ = if refused { logger.warning(message) } else { logger.info(message) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = "/usr/bin/rsync --server --sender -lHogDtprcxe.iLsfxCIvu --numeric-ids . /";
    const INCREMENTAL: &str = "/usr/bin/rsync --server --sender -lHogDtprxe.iLsfxCIvu --numeric-ids . /home/";
    const RESTORE: &str = "/usr/bin/rsync --server -lHogDtpre.iLsfxCIvu --log-format=%i --delete --super --stats --partial --numeric-ids . /tmp/restore/";

    fn everywhere() -> Vec<String> {
        vec!["/".to_owned()]
    }

    fn check(command: &str, allow_restore: bool) -> Result<RsyncInvocation, RsyncRefusal> {
        check_command(Some(command.as_bytes()), allow_restore, &everywhere())
    }

    #[test]
    fn accepts_what_backuppc_sends() {
        assert_eq!(check(FULL, false).unwrap().mode, RsyncMode::Backup);
        assert_eq!(check(INCREMENTAL, false).unwrap().path, "/home/");
        assert_eq!(check(RESTORE, true).unwrap().mode, RsyncMode::Restore);
        assert_eq!(check("rsync --server --sender -vlogDtpre.iLsfxC . /srv", false).unwrap().options.len(), 0);
        let with_timeout = "/usr/bin/rsync --server --sender -lHogDtprcxe.iLsfxC --timeout=72000 --numeric-ids . /srv/";
        assert_eq!(check(with_timeout, false).unwrap().options, ["--timeout=72000", "--numeric-ids"]);
    }

    #[test]
    fn rebuilds_the_command_from_checked_parts() {
        let invocation =
            check("/opt/evil/rsync --server --sender -lHogDtprcxe.iLsfxC --numeric-ids . /", false).unwrap();
        assert_eq!(
            invocation.argv(false),
            [
                "/usr/bin/sudo",
                "-n",
                "/usr/bin/rsync",
                "--server",
                "--sender",
                "-lHogDtprcxe.iLsfxC",
                "--numeric-ids",
                ".",
                "/"
            ]
        );
        assert_eq!(
            check(RESTORE, true).unwrap().argv(true)[..3],
            ["/usr/bin/rsync", "--server", "-lHogDtpre.iLsfxCIvu"]
        );
    }

    #[test]
    fn refuses_a_corpus_of_hostile_commands() {
        let cases: &[(&str, RsyncRefusal)] = &[
            ("", RsyncRefusal::NoCommand),
            ("/bin/sh", RsyncRefusal::NotRsync),
            ("sh -c id", RsyncRefusal::NotRsync),
            ("rsync-evil --server --sender -a . /", RsyncRefusal::NotRsync),
            ("/tmp/rsync2 --server --sender -a . /", RsyncRefusal::NotRsync),
            ("rsync --sender -a . /", RsyncRefusal::NotServer),
            ("rsync --daemon --server", RsyncRefusal::NotServer),
            ("rsync --server -lHogDtpre.iLsfxC . /", RsyncRefusal::RestoreDisabled),
            ("rsync --server --sender -slHogDtprcxe.iLsfxC", RsyncRefusal::ProtectArgs),
            ("rsync --server --sender -lse.iLsfxC . /", RsyncRefusal::ProtectArgs),
            ("rsync --server --sender -e sh . /", RsyncRefusal::Forbidden("sh".into())),
            ("rsync --server --sender --rsh=sh -a . /", RsyncRefusal::Forbidden("--rsh=sh".into())),
            (
                "rsync --server --sender -a --remove-source-files . /",
                RsyncRefusal::Forbidden("--remove-source-files".into()),
            ),
            (
                "rsync --server --sender -a --log-file=/etc/crontab . /",
                RsyncRefusal::Forbidden("--log-file=/etc/crontab".into()),
            ),
            (
                "rsync --server --sender -a --write-batch=/tmp/x . /",
                RsyncRefusal::Forbidden("--write-batch=/tmp/x".into()),
            ),
            ("rsync --server --sender -a --daemon . /", RsyncRefusal::Forbidden("--daemon".into())),
            ("rsync --server --sender -a . / /etc/shadow", RsyncRefusal::Forbidden("/etc/shadow".into())),
            ("rsync --server --sender -a .", RsyncRefusal::Forbidden("(no path)".into())),
            ("rsync --server --sender -a", RsyncRefusal::Forbidden("(no path)".into())),
            ("rsync --server --sender -a . relative/path", RsyncRefusal::PathNotAllowed("relative/path".into())),
            ("rsync --server --sender -a . /home/../etc", RsyncRefusal::PathNotAllowed("/home/../etc".into())),
            ("rsync --server --sender -a . /home/some\\ share", RsyncRefusal::Forbidden("share".into())),
            (
                "rsync --server --sender -a . /home/some\\share",
                RsyncRefusal::PathNotAllowed("/home/some\\share".into()),
            ),
            ("rsync --server --sender -a . ~root", RsyncRefusal::PathNotAllowed("~root".into())),
            ("rsync --server --sender -a;id . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -a$(id) . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -B1024 . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -a --timeout=1;id . /", RsyncRefusal::Forbidden("--timeout=1;id".into())),
            ("rsync --server --sender -a --timeout=x . /", RsyncRefusal::Forbidden("--timeout=x".into())),
            ("rsync --server --sender -a\t. /", RsyncRefusal::BadCharacters),
            ("rsync --server --sender -a\n. /", RsyncRefusal::BadCharacters),
            ("rsync --server --sender -a  . /", RsyncRefusal::Forbidden("".into())),
            ("rsync --server --sender - . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -e.iLs/x . /", RsyncRefusal::BadFlags),
        ];
        for (command, refusal) in cases {
            assert_eq!(check(command, false).as_ref(), Err(refusal), "{command:?}");
        }
        assert_eq!(check_command(None, true, &everywhere()), Err(RsyncRefusal::NoCommand));
        assert_eq!(
            check_command(Some(b"rsync --server -a . /\xff"), true, &everywhere()),
            Err(RsyncRefusal::BadCharacters)
        );
        assert_eq!(check(&format!("{FULL}{}", "/x".repeat(300)), true), Err(RsyncRefusal::BadCharacters));
    }

    #[test]
    fn paths_stay_inside_the_allowed_ones() {
        let allowed = vec!["/home".to_owned(), "/srv/data/".to_owned()];
        for path in ["/home", "/home/", "/home/alice/docs", "/srv/data", "/srv/data/x"] {
            assert!(path_allowed(path, &allowed), "{path}");
        }
        for path in ["/", "/homeless", "/etc", "/srv", "/home/../etc", "/home/./x", "home"] {
            assert!(!path_allowed(path, &allowed), "{path}");
        }
        let command = "rsync --server --sender -lHogDtprxe.iLsfxC . /etc/";
        assert_eq!(
            check_command(Some(command.as_bytes()), false, &allowed),
            Err(RsyncRefusal::PathNotAllowed("/etc/".into()))
        );
    }

    proptest! {
        #[test]
        fn checker_never_panics_and_never_passes_a_shell_character(input in any::<Vec<u8>>(), restore in any::<bool>()) {
            if let Ok(invocation) = check_command(Some(&input), restore, &everywhere()) {
                for word in invocation.argv(false) {
                    prop_assert!(!word.contains([';', '|', '&', '$', '`', '<', '>', ' ', '\'', '"', '\\']));
                }
            }
        }
    }
}
