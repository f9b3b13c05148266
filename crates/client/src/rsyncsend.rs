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
//!
//! Short options come from an allow-list (rsync's letters that take no
//! value, as Debian's `rrsync` lists them, less `s`); when the allowed paths
//! are narrower than `/`, the letters that follow symlinks (`K`, `L`, `k`)
//! and, on restores, `X` (extended attributes, which as root include file
//! capabilities) are refused too. Paths are checked twice: here as text, and
//! in [`crate::rsyncpath`] after resolution, as root sees them.

use std::fmt;

/// The rsync program run for the backup server.
pub const RSYNC: &str = "/usr/bin/rsync";
/// The sudo program through which the backup account runs rsyncsend again as root.
pub const SUDO: &str = "/usr/bin/sudo";
/// The oldest rsync trusted with paths narrower than `/`: 3.5.0 brings
/// `--confine-root`, `--drop-D` and the ownership-checked walks this relies on.
pub const MIN_RSYNC_VERSION: (u32, u32, u32) = (3, 5, 0);
/// The short options rsync takes without a value (Debian's `rrsync` list),
/// less `s` (`--protect-args`). Anything else, in particular letters that
/// take a value (`B`, `T`, `f`, `M`, `@`...), is refused.
pub const SHORT_OPTIONS: &str = "ACDEHIJKLNORSUWXbcdgklmnopqrtuvxyz";
/// The letters that make rsync follow symlinks: refused when the allowed
/// paths are narrower than `/`, since a user's symlink would lead out of them.
pub const SYMLINK_FOLLOWING: &str = "KLk";
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
    /// Whether the allowed paths are narrower than `/`: then rsync is
    /// confined, and restores create no device, no setuid or setgid file.
    pub narrow: bool,
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
    /// A short option that is not on the allow-list, such as one that takes a value.
    #[error("rsync option -{0} is not allowed with this key")]
    Letter(char),
    /// A short option that follows symlinks, or (restores) sets extended
    /// attributes, while the allowed paths are narrower than `/`.
    #[error("rsync option -{0} is refused when allowed-paths is narrower than /")]
    NarrowLetter(char),
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
    let narrow = is_narrow(allowed_paths);
    check_flags(flags, mode, narrow)?;
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
    Ok(RsyncInvocation { mode, flags: flags.to_owned(), options, path: path.to_owned(), narrow })
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

/// Whether `allowed` stops short of the whole machine (no entry is `/`).
pub fn is_narrow(allowed: &[String]) -> bool {
    !allowed.iter().any(|root| root.trim_end_matches('/').is_empty())
}

/// One bundle: `-`, letters from [`SHORT_OPTIONS`], then optionally `e` and
/// rsync's capability string as `rrsync` accepts it (digits, `.`, then
/// letters, digits or `_`), which is how rsync's client tells its server
/// what it supports. No option here takes a value.
fn check_flags(word: &str, mode: RsyncMode, narrow: bool) -> Result<(), RsyncRefusal> {
    let Some(bundle) = word.strip_prefix('-') else {
        return Err(RsyncRefusal::BadFlags);
    };
    if bundle.starts_with('-') {
        return Err(RsyncRefusal::Forbidden(word.to_owned()));
    }
    let (letters, capabilities) = match bundle.split_once('e') {
        Some((before, after)) => (before, Some(after)),
        None => (bundle, None),
    };
    if bundle.is_empty() || !bundle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') {
        return Err(RsyncRefusal::BadFlags);
    }
    if let Some(capabilities) = capabilities {
        let (digits, rest) = capabilities.split_at(capabilities.bytes().take_while(u8::is_ascii_digit).count());
        let ok =
            rest.strip_prefix('.').is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !ok || digits.len() > 10 {
            return Err(RsyncRefusal::BadFlags);
        }
    }
    for letter in letters.chars() {
        if letter == 's' {
            return Err(RsyncRefusal::ProtectArgs);
        }
        if !SHORT_OPTIONS.contains(letter) {
            return Err(match letter.is_ascii_alphabetic() {
                true => RsyncRefusal::Letter(letter),
                false => RsyncRefusal::BadFlags,
            });
        }
        if narrow && (SYMLINK_FOLLOWING.contains(letter) || (mode == RsyncMode::Restore && letter == 'X')) {
            return Err(RsyncRefusal::NarrowLetter(letter));
        }
    }
    Ok(())
}

/// The version in the first line of `rsync --version`
/// (`rsync  version 3.5.0  protocol version 32`), if it has one.
pub fn parse_rsync_version(output: &str) -> Option<(u32, u32, u32)> {
    let mut words = output.lines().next()?.split_whitespace();
    if words.next()? != "rsync" || words.next()? != "version" {
        return None;
    }
    let version = words.next()?;
    let mut numbers = version.split('.').map(|part| {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = numbers.next()??;
    let minor = numbers.next()??;
    let patch = numbers.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

impl RsyncInvocation {
    /// The argument vector to run as root: rsync's fixed path and the checked
    /// parts, never the text as received, with `path` (the resolved, pinned
    /// spelling of [`RsyncInvocation::path`]) as the path. When the allowed
    /// paths are narrower than `/`, rsync is confined to `confine_root` for
    /// the paths it opens itself (merge files), and a restore creates no
    /// device or special file and drops setuid and setgid bits.
    pub fn argv(&self, path: &str, confine_root: Option<&str>) -> Vec<String> {
        let mut argv = vec![RSYNC.to_owned()];
        if self.narrow {
            if let Some(root) = confine_root {
                argv.push(format!("--confine-root={root}"));
            }
            if self.mode == RsyncMode::Restore {
                argv.extend(["--drop-D", "--chmod=ug-s"].map(str::to_owned));
            }
        }
        argv.push("--server".to_owned());
        if self.mode == RsyncMode::Backup {
            argv.push("--sender".to_owned());
        }
        argv.push(self.flags.clone());
        argv.extend(self.options.iter().cloned());
        argv.push(".".to_owned());
        argv.push(path.to_owned());
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
            invocation.argv("/", None),
            ["/usr/bin/rsync", "--server", "--sender", "-lHogDtprcxe.iLsfxC", "--numeric-ids", ".", "/"]
        );
        assert_eq!(
            check(RESTORE, true).unwrap().argv("/tmp/restore/", Some("/tmp"))[..3],
            ["/usr/bin/rsync", "--server", "-lHogDtpre.iLsfxCIvu"]
        );
    }

    #[test]
    fn narrow_paths_confine_rsync_and_defuse_restores() {
        let allowed = vec!["/home".to_owned()];
        let restore = "/usr/bin/rsync --server -lHogDtpre.iLsfxCIvu --numeric-ids . /home/alice/";
        let invocation = check_command(Some(restore.as_bytes()), true, &allowed).unwrap();
        assert!(invocation.narrow);
        assert_eq!(
            invocation.argv("/proc/self/fd/3/", Some("/home")),
            [
                "/usr/bin/rsync",
                "--confine-root=/home",
                "--drop-D",
                "--chmod=ug-s",
                "--server",
                "-lHogDtpre.iLsfxCIvu",
                "--numeric-ids",
                ".",
                "/proc/self/fd/3/"
            ]
        );
        let backup = "/usr/bin/rsync --server --sender -lHogDtprcxe.iLsfxC . /home/";
        assert_eq!(
            check_command(Some(backup.as_bytes()), false, &allowed).unwrap().argv("/proc/self/fd/3/", Some("/home"))
                [..3],
            ["/usr/bin/rsync", "--confine-root=/home", "--server"]
        );
    }

    #[test]
    fn only_letters_without_a_value_pass_and_symlink_followers_only_for_the_whole_machine() {
        let home = vec!["/home".to_owned()];
        let backup = |flags: &str, allowed: &[String]| {
            check_command(Some(format!("rsync --server --sender {flags} . /home/").as_bytes()), true, allowed)
        };
        let restore = |flags: &str, allowed: &[String]| {
            check_command(Some(format!("rsync --server {flags} . /home/").as_bytes()), true, allowed)
        };
        for flags in ["-lHogDtprcxe.iLsfxC", "-lHogDtprRe.iLsfxCIvu", "-vlogDtpre31.iLsfxC_v", "-r"] {
            assert!(backup(flags, &home).is_ok(), "{flags}");
            assert!(restore(flags, &home).is_ok(), "{flags}");
        }
        for letter in ['L', 'k', 'K'] {
            let flags = format!("-rl{letter}tpe.iLsfxC");
            assert_eq!(backup(&flags, &home), Err(RsyncRefusal::NarrowLetter(letter)));
            assert!(backup(&flags, &everywhere()).is_ok(), "{flags}");
        }
        assert_eq!(restore("-rlXe.iLsfxC", &home), Err(RsyncRefusal::NarrowLetter('X')));
        assert!(backup("-rlXe.iLsfxC", &home).is_ok());
        for letter in ['B', 'T', 'f', 'M', 'F', 'P', 'a', 'h', 'i', 'w', 'Z'] {
            let flags = format!("-rl{letter}tmp");
            assert_eq!(backup(&flags, &everywhere()), Err(RsyncRefusal::Letter(letter)), "{flags}");
        }
        for flags in ["-e", "-re", "-re.x/y", "-re1x", "-r.e.x", "-r_"] {
            assert_eq!(backup(flags, &everywhere()), Err(RsyncRefusal::BadFlags), "{flags}");
        }
    }

    #[test]
    fn reads_rsyncs_version() {
        assert_eq!(parse_rsync_version("rsync  version 3.5.0  protocol version 32\nCopyright"), Some((3, 5, 0)));
        assert_eq!(parse_rsync_version("rsync  version v3.2.7  protocol version 31"), None);
        assert_eq!(parse_rsync_version("rsync  version 3.4.1-dev  protocol version 32"), Some((3, 4, 1)));
        assert_eq!(parse_rsync_version("rsync version 3.10"), Some((3, 10, 0)));
        assert!(parse_rsync_version("rsync  version 3.4.1").unwrap() < MIN_RSYNC_VERSION);
        assert_eq!(parse_rsync_version("openrsync: protocol version 29"), None);
        assert_eq!(parse_rsync_version(""), None);
    }

    #[test]
    fn refuses_a_corpus_of_hostile_commands() {
        let cases: &[(&str, RsyncRefusal)] = &[
            ("", RsyncRefusal::NoCommand),
            ("/bin/sh", RsyncRefusal::NotRsync),
            ("sh -c id", RsyncRefusal::NotRsync),
            ("rsync-evil --server --sender -a . /", RsyncRefusal::NotRsync),
            ("/tmp/rsync2 --server --sender -r . /", RsyncRefusal::NotRsync),
            ("rsync --sender -r . /", RsyncRefusal::NotServer),
            ("rsync --daemon --server", RsyncRefusal::NotServer),
            ("rsync --server -lHogDtpre.iLsfxC . /", RsyncRefusal::RestoreDisabled),
            ("rsync --server --sender -slHogDtprcxe.iLsfxC", RsyncRefusal::ProtectArgs),
            ("rsync --server --sender -lse.iLsfxC . /", RsyncRefusal::ProtectArgs),
            ("rsync --server --sender -e sh . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender --rsh=sh -r . /", RsyncRefusal::Forbidden("--rsh=sh".into())),
            (
                "rsync --server --sender -r --remove-source-files . /",
                RsyncRefusal::Forbidden("--remove-source-files".into()),
            ),
            (
                "rsync --server --sender -r --log-file=/etc/crontab . /",
                RsyncRefusal::Forbidden("--log-file=/etc/crontab".into()),
            ),
            (
                "rsync --server --sender -r --write-batch=/tmp/x . /",
                RsyncRefusal::Forbidden("--write-batch=/tmp/x".into()),
            ),
            ("rsync --server --sender -r --daemon . /", RsyncRefusal::Forbidden("--daemon".into())),
            ("rsync --server --sender -r . / /etc/shadow", RsyncRefusal::Forbidden("/etc/shadow".into())),
            ("rsync --server --sender -r .", RsyncRefusal::Forbidden("(no path)".into())),
            ("rsync --server --sender -r", RsyncRefusal::Forbidden("(no path)".into())),
            ("rsync --server --sender -r . relative/path", RsyncRefusal::PathNotAllowed("relative/path".into())),
            ("rsync --server --sender -r . /home/../etc", RsyncRefusal::PathNotAllowed("/home/../etc".into())),
            ("rsync --server --sender -r . /home/some\\ share", RsyncRefusal::Forbidden("share".into())),
            (
                "rsync --server --sender -r . /home/some\\share",
                RsyncRefusal::PathNotAllowed("/home/some\\share".into()),
            ),
            ("rsync --server --sender -r . ~root", RsyncRefusal::PathNotAllowed("~root".into())),
            ("rsync --server --sender -r;id . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -r$(id) . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -B1024 . /", RsyncRefusal::Letter('B')),
            ("rsync --server --sender -lT/tmp . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -lTetc . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -rfPxe.iLsfxC . /", RsyncRefusal::Letter('f')),
            ("rsync --server --sender -rMxe.iLsfxC . /", RsyncRefusal::Letter('M')),
            ("rsync --server --sender -r --timeout=1;id . /", RsyncRefusal::Forbidden("--timeout=1;id".into())),
            ("rsync --server --sender -r --timeout=x . /", RsyncRefusal::Forbidden("--timeout=x".into())),
            ("rsync --server --sender -r\t. /", RsyncRefusal::BadCharacters),
            ("rsync --server --sender -r\n. /", RsyncRefusal::BadCharacters),
            ("rsync --server --sender -r  . /", RsyncRefusal::Forbidden("".into())),
            ("rsync --server --sender - . /", RsyncRefusal::BadFlags),
            ("rsync --server --sender -e.iLs/x . /", RsyncRefusal::BadFlags),
        ];
        for (command, refusal) in cases {
            assert_eq!(check(command, false).as_ref(), Err(refusal), "{command:?}");
        }
        assert_eq!(check_command(None, true, &everywhere()), Err(RsyncRefusal::NoCommand));
        assert_eq!(
            check_command(Some(b"rsync --server -r . /\xff"), true, &everywhere()),
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
                for word in invocation.argv(&invocation.path, None) {
                    prop_assert!(!word.contains([';', '|', '&', '$', '`', '<', '>', ' ', '\'', '"', '\\']));
                }
            }
        }

        #[test]
        fn accepted_bundles_hold_only_allowed_letters(
            letters in "[A-Za-z0-9]{1,12}",
            capabilities in proptest::option::of("[0-9]{0,3}\\.[A-Za-z0-9_]{0,10}"),
            restore in any::<bool>(),
            narrow in any::<bool>(),
        ) {
            let flags = format!("-{letters}{}", capabilities.map(|c| format!("e{c}")).unwrap_or_default());
            let allowed = if narrow { vec!["/home".to_owned()] } else { everywhere() };
            let command = format!("rsync --server {}{flags} . /home/x", if restore { "" } else { "--sender " });
            if let Ok(invocation) = check_command(Some(command.as_bytes()), true, &allowed) {
                let bundle = invocation.flags.trim_start_matches('-');
                let letters = bundle.split('e').next().unwrap_or_default();
                prop_assert!(letters.chars().all(|c| SHORT_OPTIONS.contains(c)));
                prop_assert!(!letters.contains('s'));
                prop_assert_eq!(invocation.narrow, narrow);
                if narrow {
                    prop_assert!(!letters.contains(['K', 'L', 'k']));
                    prop_assert!(!restore || !letters.contains('X'));
                    prop_assert!(invocation.argv("/home/x", Some("/home")).contains(&"--confine-root=/home".to_owned()));
                }
            }
        }
    }
}
