//! What BackupPC's web page lets a host's owner change, read from BackupPC's
//! server-wide configuration the way BackupPC reads it.
//!
//! BackupPC 4's per-host editor (`CGI/EditConfig.pm`) opens for a host's
//! owner only when the server-wide `$Conf{CgiUserConfigEditEnable}` is true,
//! and then lets the owner save a key only when the server-wide
//! `$Conf{CgiUserConfigEdit}{KEY}` is true; a key absent from that hash is
//! not editable. Both come from `config.pl` (after Debian's optional
//! `/etc/backuppc/localconfig.pl`, a path BackupPC hard-codes whatever its
//! `ConfDir`), never from the host's own `HOST.pl`. The values are Perl, so
//! Perl reads them: `/usr/bin/perl` runs a fixed program that `do`es each
//! file, as BackupPC's `ConfigDataRead` does, and prints the two settings as
//! plain lines.
//!
//! A key is safe to leave to owners only when it is on [`OWNER_EDITABLE`], a
//! short allow-list of settings that change nothing but the owner's own
//! backups (schedules, what to back up, when to be reminded): any other key
//! an owner may edit is reported, whatever its name.
//!
//! The same run reports the two other settings bpc-register needs from that
//! configuration, so that Perl runs once: `$Conf{TopDir}`, where BackupPC
//! keeps each host's backups, and `$Conf{BackupPCUser}`, the account its
//! programs must run as.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Perl interpreter BackupPC runs with.
pub const PERL: &str = "/usr/bin/perl";

/// The name of the cache file, kept beside the journal of registrations.
pub const CACHE_NAME: &str = "bpc-register-owner-edits.cache";

/// What a host's owner may change in BackupPC's web page, and where
/// BackupPC keeps its backups, from one reading of its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerEdits {
    /// The `config.pl` it was read from.
    pub config_path: PathBuf,
    /// `$Conf{CgiUserConfigEditEnable}`: whether owners may open the editor.
    pub enabled: bool,
    /// The keys whose `$Conf{CgiUserConfigEdit}{KEY}` is true.
    pub editable: BTreeSet<String>,
    /// `$Conf{TopDir}`, or [`DEFAULT_TOP_DIR`] when the configuration sets
    /// none, as `BackupPC::Lib` does: `pc/HOST` below it holds each host's
    /// backups.
    pub top_dir: PathBuf,
    /// `$Conf{BackupPCUser}`, the account BackupPC's programs insist on
    /// running as; `None` when the configuration sets none.
    pub backuppc_user: Option<String>,
}

/// The `TopDir` `BackupPC::Lib` falls back to when `$Conf{TopDir}` is empty
/// (Debian's build of BackupPC 4 writes it into `Lib.pm`).
pub const DEFAULT_TOP_DIR: &str = "/var/lib/backuppc";

impl OwnerEdits {
    /// The keys a host's owner can change that are not on
    /// [`OWNER_EDITABLE`], in name order: none when the editor is closed to
    /// owners.
    pub fn dangerous_editable(&self) -> Vec<&str> {
        if !self.enabled {
            return Vec::new();
        }
        self.editable.iter().map(String::as_str).filter(|key| !owners_may_edit(key)).collect()
    }

    /// Whether owners can change nothing but the settings on
    /// [`OWNER_EDITABLE`]: no command BackupPC runs, path or argument it
    /// passes, machine it connects to, or mail it sends.
    pub fn is_safe(&self) -> bool {
        self.dangerous_editable().is_empty()
    }

    /// The lines to add at the end of `config.pl` to make it safe while
    /// leaving owners their harmless settings (schedules, files, reminders).
    pub fn fix_lines(&self) -> Vec<String> {
        self.dangerous_editable().iter().map(|key| format!("$Conf{{CgiUserConfigEdit}}{{{key}}} = 0;")).collect()
    }

    /// One line for the log and for `check`: which keys, and what to add.
    pub fn problem(&self) -> String {
        let keys = self.dangerous_editable();
        format!(
            "{}: BackupPC's web page lets a host's owner change {} (not on bpc-register's list of harmless \
             settings: commands, paths, arguments, addresses or the mail BackupPC sends); add to that file `{}`, \
             or turn the owners' editor off with `$Conf{{CgiUserConfigEditEnable}} = 0;`",
            self.config_path.display(),
            keys.join(", "),
            self.fix_lines().join(" ")
        )
    }
}

/// Whether a host's owner may be left to change `key` in BackupPC's web
/// page: only when it is on [`OWNER_EDITABLE`].
pub fn owners_may_edit(key: &str) -> bool {
    OWNER_EDITABLE.contains(&key)
}

/// The settings a host's owner may change without reaching beyond her own
/// host's backups, decided key by key from BackupPC 4.4's
/// `$Conf{CgiUserConfigEdit}` (Debian's `config.pl`): the schedules and how
/// long backups are kept, what is backed up, the blackout periods, when
/// BackupPC tells her that backups are missing, and the log level.
///
/// Left out, among the keys Debian lets owners edit: every command, program
/// path, share, client path, transfer method and ssh/rsync/tar argument
/// (`ClientCharset` becomes rsync's `--iconv`); `ClientNameAlias` (the
/// machine BackupPC connects to with its key); the mail templates
/// (`EMail*Mesg`: they hold the `To:` header, and BackupPC sends them with
/// `sendmail -t`), their subjects, `EMailHeaders`, `EMailUserDestDomain` and
/// `EMailFromUserName` (the recipients and the sender of the mail); the
/// settings of transfer methods these hosts do not use (`Ftp*`, `Smb*`,
/// `Rsyncd*`, `Archive*` but `ArchiveInfoKeepCnt`), and `ClientComment`
/// (text BackupPC's pages show).
pub const OWNER_EDITABLE: &[&str] = &[
    "ArchiveInfoKeepCnt",
    "BackupFilesExclude",
    "BackupFilesOnly",
    "BackupZeroFilesIsFatal",
    "BackupsDisable",
    "BlackoutBadPingLimit",
    "BlackoutGoodCnt",
    "BlackoutPeriods",
    "ClientTimeout",
    "CompressLevel",
    "EMailNotifyMinDays",
    "EMailNotifyOldBackupDays",
    "EMailNotifyOldOutlookDays",
    "FillCycle",
    "FixedIPNetBiosNameCheck",
    "FullAgeMax",
    "FullKeepCnt",
    "FullKeepCntMin",
    "FullPeriod",
    "IncrAgeMax",
    "IncrKeepCnt",
    "IncrKeepCntMin",
    "IncrPeriod",
    "MaxOldPerPCLogFiles",
    "PingMaxMsec",
    "RefCntFsck",
    "RestoreInfoKeepCnt",
    "XferLogLevel",
];

/// Why BackupPC's configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OwnerEditsError {
    /// `config.pl` is missing or cannot be examined.
    #[error(
        "{path}: cannot read BackupPC's configuration: {source}; bpc-register registers only into a BackupPC whose config.pl it can read"
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// Perl could not be started.
    #[error("cannot run {PERL} to read {path}: {source}; install perl (BackupPC needs it too)")]
    Spawn {
        /// The file it was to read.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// Perl, run as someone other than root, could not read a file.
    #[error(
        "{path}: {user} cannot read it ({reason}); bpc-register reads BackupPC's configuration as {user}: run as \
         root, it runs that Perl code as the configuration folder's owner, else config.pl's, else nobody, never \
         as root; make the file readable by {user}, or run `bpc-register check` as the backuppc user"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Who Perl ran as (`uid N`).
        user: String,
        /// Perl's reason.
        reason: String,
    },
    /// Perl could not load the file, as BackupPC could not either.
    #[error("{path}: BackupPC cannot load it either: {reason}; fix the file")]
    Perl {
        /// The file.
        path: PathBuf,
        /// Perl's message, on one line.
        reason: String,
    },
}

/// Where Debian's BackupPC looks for `localconfig.pl`, whatever its
/// `ConfDir` (`BackupPC::Storage::Text::ConfigDataRead`).
pub const LOCALCONFIG: &str = "/etc/backuppc/localconfig.pl";

/// Reads what owners may edit from `conf_dir/config.pl` (after
/// [`LOCALCONFIG`] when present), running Perl every time.
pub fn read(conf_dir: &Path) -> Result<OwnerEdits, OwnerEditsError> {
    read_files(&ConfigFiles::of(conf_dir, Path::new(LOCALCONFIG))?)
}

/// Like [`read`], with `candidate` loaded in place of `conf_dir/config.pl`
/// (which must exist): a new version of `config.pl`, checked before it is
/// put in place. The answer names `config.pl`.
pub fn read_candidate(conf_dir: &Path, candidate: &Path) -> Result<OwnerEdits, OwnerEditsError> {
    let mut files = ConfigFiles::of(conf_dir, Path::new(LOCALCONFIG))?;
    let config = std::mem::replace(&mut files.config, candidate.to_owned());
    let mut edits = read_files(&files)?;
    edits.config_path = config;
    Ok(edits)
}

fn read_files(files: &ConfigFiles) -> Result<OwnerEdits, OwnerEditsError> {
    let output = run_perl(files)?;
    parse_output(&files.config, &output)
}

/// Like [`read`], with the answer cached in `cache`: Perl runs again only
/// when one of the files' identities (device, inode, size, mtime and ctime in
/// nanoseconds, or absence) differs from the one recorded. A cache that
/// cannot be written only costs time.
pub fn read_cached(conf_dir: &Path, cache: &Path) -> Result<OwnerEdits, OwnerEditsError> {
    read_through_cache(conf_dir, cache, true)
}

/// Like [`read_cached`], but never writes the cache: for a reader that must
/// change nothing (a status request). While the cache is stale Perl runs
/// each time, until the next registration writes it again.
pub fn read_cached_without_writing(conf_dir: &Path, cache: &Path) -> Result<OwnerEdits, OwnerEditsError> {
    read_through_cache(conf_dir, cache, false)
}

fn read_through_cache(conf_dir: &Path, cache: &Path, write: bool) -> Result<OwnerEdits, OwnerEditsError> {
    let files = ConfigFiles::of(conf_dir, Path::new(LOCALCONFIG))?;
    let key = files.identity()?;
    if let Some(output) = cached_output(cache, &key) {
        return parse_output(&files.config, &output);
    }
    // One process runs Perl for the others: after config.pl changed, a
    // burst of registrations waits for its answer in the cache rather than
    // each starting Perl. A lock that cannot be had, or not in time, only
    // costs time; the cache is looked at again either way.
    let _computing = if write { computing_lock(cache) } else { None };
    if write && let Some(output) = cached_output(cache, &key) {
        return parse_output(&files.config, &output);
    }
    let output = run_perl(&files)?;
    let edits = parse_output(&files.config, &output)?;
    // Written only after the output parsed, and never trusted unless its
    // key line matches the files as they are now.
    if write {
        let _ = write_cache(cache, format!("{CACHE_HEADER}\n{key}\n{output}").as_bytes());
    }
    Ok(edits)
}

/// Puts a new cache in place, `0640` whatever the one it replaces had (a
/// cache others may write is not believed, see [`cached_output`]); root
/// gives it to the folder's owner, who reads it next.
fn write_cache(cache: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let new = files::AtomicWrite::prepare_with(cache, 0o640, |file| {
        file.set_permissions(fs::Permissions::from_mode(0o640))?;
        file.write_all(body)
    })?;
    if nix::unistd::geteuid().is_root() {
        let folder = fs::metadata(files::parent_dir(cache))?;
        new.set_owner_and_mode(folder.uid(), folder.gid(), 0o640)?;
    }
    new.commit()
}

/// The longest a process waits for another one to write the cache: well
/// within a client's whole exchange (10 s by default), for a Perl that
/// hangs or a lock held by someone else.
const COMPUTING_WAIT: Duration = Duration::from_secs(2);

/// The lock held while Perl runs to fill `cache`: `*.lock` beside it.
pub fn computing_lock_path(cache: &Path) -> PathBuf {
    cache.with_extension("lock")
}

/// Takes the lock on [`computing_lock_path`] (`0600`: only its owner, and
/// root, may hold it), waiting at most [`COMPUTING_WAIT`]; `None` when it
/// cannot be opened as a regular file or stays taken.
fn computing_lock(cache: &Path) -> Option<File> {
    let path = computing_lock_path(cache);
    let file = crate::shared_file::open(&path, fs::OpenOptions::new().write(true), 0o600).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let deadline = Instant::now() + COMPUTING_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
}

/// The first line of a cache file; a new format gets a new header.
const CACHE_HEADER: &str = "bpc-register owner-edits cache 2";

/// The files BackupPC reads for its server-wide configuration, in order.
struct ConfigFiles {
    conf_dir: PathBuf,
    local: PathBuf,
    config: PathBuf,
}

impl ConfigFiles {
    fn of(conf_dir: &Path, local: &Path) -> Result<ConfigFiles, OwnerEditsError> {
        let conf_dir = std::path::absolute(conf_dir)
            .map_err(|source| OwnerEditsError::Missing { path: conf_dir.join("config.pl"), source })?;
        let config = conf_dir.join("config.pl");
        if !config.is_file() {
            let source = match fs::metadata(&config) {
                Ok(_) => io::Error::other("not a regular file"),
                Err(error) => error,
            };
            return Err(OwnerEditsError::Missing { path: config, source });
        }
        Ok(ConfigFiles { conf_dir, local: local.to_owned(), config })
    }

    /// One line naming each file and its identity.
    fn identity(&self) -> Result<String, OwnerEditsError> {
        let mut key = String::new();
        for path in [&self.local, &self.config] {
            let part = match fs::metadata(path) {
                Ok(meta) => format!(
                    "{}:{}:{}:{}:{}.{}:{}.{}",
                    path.display(),
                    meta.dev(),
                    meta.ino(),
                    meta.size(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.ctime(),
                    meta.ctime_nsec()
                ),
                Err(error) if error.kind() == io::ErrorKind::NotFound => format!("{}:absent", path.display()),
                Err(source) => return Err(OwnerEditsError::Missing { path: path.clone(), source }),
            };
            key.push_str(&part);
            key.push(' ');
        }
        // A path holding a line break cannot be told apart in the file.
        Ok(key.replace(['\n', '\r'], "?"))
    }

    /// The files, opened now: what Perl reads and what decides whom it runs
    /// as are the same inodes, whatever is renamed afterwards.
    fn open(&self) -> Result<OpenedFiles, OwnerEditsError> {
        let missing = |path: &Path| {
            let path = path.to_owned();
            move |source| OwnerEditsError::Missing { path, source }
        };
        let folder = File::open(&self.conf_dir).map_err(missing(&self.conf_dir))?;
        let folder = folder.metadata().map_err(missing(&self.conf_dir))?;
        let mut loaded = Vec::new();
        match open_loaded(&self.local) {
            Ok(file) => loaded.push((regular(file, &self.local)?, self.local.clone())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(OwnerEditsError::Missing { path: self.local.clone(), source }),
        }
        let config = open_loaded(&self.config).map_err(missing(&self.config))?;
        let config = regular(config, &self.config)?;
        let config_owner = config.metadata().map_err(missing(&self.config))?.uid();
        loaded.push((config, self.config.clone()));
        Ok(OpenedFiles { folder_owner: folder.uid(), config_owner, loaded })
    }
}

/// Opens a file BackupPC loads, for Perl to read through the descriptor,
/// without waiting on a FIFO. Run as root, bpc-register hands it to Perl
/// run as the folder's owner, whose own `localconfig.pl` is loaded first
/// and could read whatever root opened: root then follows no link put in
/// its place and opens no file of root's with other names (either could
/// lead to a secret). Run as anyone else, a link is followed as BackupPC
/// follows it.
fn open_loaded(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let root = nix::unistd::geteuid().is_root();
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    if root {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = fs::OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|error| {
        if root && error.raw_os_error() == Some(nix::libc::ELOOP) {
            io::Error::other(
                "a symbolic link, which bpc-register run as root does not follow (run it as the account that owns \
                 BackupPC's configuration)",
            )
        } else {
            error
        }
    })?;
    let meta = file.metadata()?;
    if root && meta.uid() == 0 && meta.nlink() != 1 {
        return Err(io::Error::other("a file of root's with other names (hard links), which root does not hand on"));
    }
    Ok(file)
}

/// `file` when it is a regular file, as BackupPC's `-f` wants.
fn regular(file: File, path: &Path) -> Result<File, OwnerEditsError> {
    let meta = file.metadata().map_err(|source| OwnerEditsError::Missing { path: path.to_owned(), source })?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(OwnerEditsError::Missing { path: path.to_owned(), source: io::Error::other("not a regular file") })
    }
}

/// The configuration files held open, in the order BackupPC loads them.
struct OpenedFiles {
    folder_owner: u32,
    config_owner: u32,
    loaded: Vec<(File, PathBuf)>,
}

impl OpenedFiles {
    /// Whom Perl runs as when bpc-register runs as root: never root, since
    /// the files are code that others may write. The configuration folder's
    /// owner (`backuppc` on Debian) can replace any file in it and already
    /// has BackupPC run them as `backuppc`, so running them as that owner
    /// gives no one anything; when root owns the folder, `config.pl`'s owner,
    /// for the same reason; when root owns both, `nobody`, which can read
    /// Debian's files (0644) and write nothing of BackupPC's.
    fn perl_identity(&self) -> (u32, u32) {
        let uid = [self.folder_owner, self.config_owner].into_iter().find(|uid| *uid != 0).unwrap_or(NOBODY);
        let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or(NOBODY, |user| user.gid.as_raw());
        (uid, if gid == 0 { NOBODY } else { gid })
    }
}

/// The uid and gid of `nobody` and `nogroup` on Debian.
const NOBODY: u32 = 65534;

/// The most of the cache read: Perl's answer is a few hundred bytes.
const MAX_CACHE: u64 = 64 * 1024;

/// The cached Perl output when the cache's key is `key`. The cache is
/// believed only when it is a regular file (opened without following a link
/// or waiting on a FIFO) of at most [`MAX_CACHE`] bytes, belongs to root, to
/// this process's user or to its folder's owner, and no one else may write
/// it: anyone can compute the key of the files as they are.
fn cached_output(cache: &Path, key: &str) -> Option<String> {
    use std::io::Read;
    let file = files::open_regular(cache, fs::OpenOptions::new().read(true)).ok()?;
    let meta = file.metadata().ok()?;
    let folder_owner = || fs::metadata(files::parent_dir(cache)).ok().map(|folder| folder.uid());
    if meta.len() > MAX_CACHE || !crate::shared_file::believable(&meta, folder_owner) {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_CACHE).read_to_string(&mut text).ok()?;
    let rest = text.strip_prefix(CACHE_HEADER)?.strip_prefix('\n')?;
    let (cached_key, output) = rest.split_once('\n')?;
    (cached_key == key).then(|| output.to_owned())
}

/// Loads the files in the package BackupPC loads them in, with `%Conf`
/// carried from one to the next, and prints `enable 0|1`, `hash 0|1` (whether
/// `CgiUserConfigEdit` is a hash), `edit KEY 0|1` for each plain key, and
/// `topdir HEX` and `user HEX` (the bytes of `TopDir` and `BackupPCUser`
/// in hexadecimal, so that no byte of theirs can end a line). The
/// files' own output goes to /dev/null so it cannot pose as ours. The files
/// arrive in `@ARGV` as pairs: the descriptor's path (`/proc/self/fd/N`,
/// opened by bpc-register) and the name to report; nothing is interpolated
/// into the program. The Nth file (from 0) that it cannot open ends it with
/// status 4 + N.
const PERL_PROGRAM: &str = r#"
package BackupPC::Storage::Text;
use vars qw(%Conf);
open(my $out, '>&', \*STDOUT) or die "cannot dup stdout: $!\n";
open(STDOUT, '>', '/dev/null') or die "cannot redirect stdout: $!\n";
my $conf = {};
my $index = 0;
while ( my($file, $name) = splice(@ARGV, 0, 2) ) {
    if ( !open(my $probe, '<', $file) ) {
        print STDERR "$!\n";
        exit(4 + $index);
    }
    $index++;
    %Conf = %$conf;
    $! = 0;
    if ( !defined(my $ret = do $file) && ($! || $@) ) {
        my $why = $@ ? "cannot execute $name: $@" : "cannot open $name: $!";
        $why =~ s/\Q$file\E/$name/g;
        $why =~ s/[\n\r]+/ /g;
        print STDERR "$why\n";
        exit 3;
    }
    %$conf = %Conf;
}
my $edit = $conf->{CgiUserConfigEdit};
print $out "enable ", ($conf->{CgiUserConfigEditEnable} ? 1 : 0), "\n";
print $out "hash ", ((!defined($edit) || ref($edit) eq 'HASH') ? 1 : 0), "\n";
if ( ref($edit) eq 'HASH' ) {
    foreach my $key ( sort(keys(%$edit)) ) {
        next if ( $key !~ /^\w+$/ );
        print $out "edit $key ", ($edit->{$key} ? 1 : 0), "\n";
    }
}
print $out "topdir ", unpack("H*", $conf->{TopDir} // ""), "\n";
print $out "user ", unpack("H*", $conf->{BackupPCUser} // ""), "\n";
print $out "end\n";
"#;

/// util-linux's tool to drop root's identity before running Perl.
const SETPRIV: &str = "/usr/bin/setpriv";

/// Runs the reading program on the files held open: as whoever runs
/// bpc-register, or, as root, as [`OpenedFiles::perl_identity`].
fn run_perl(files: &ConfigFiles) -> Result<String, OwnerEditsError> {
    let opened = files.open()?;
    let (mut command, user) = if nix::unistd::geteuid().is_root() {
        let (uid, gid) = opened.perl_identity();
        let mut command = Command::new(SETPRIV);
        command.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).args(["--clear-groups", "--", PERL]);
        (command, format!("uid {uid}"))
    } else {
        (Command::new(PERL), format!("uid {}", nix::unistd::geteuid()))
    };
    command.arg("-e").arg(PERL_PROGRAM).arg("--");
    let names: Vec<PathBuf> = opened.loaded.iter().map(|(_, name)| name.clone()).collect();
    for (file, name) in &opened.loaded {
        // Perl inherits the descriptor and reads the very file examined
        // here. It is closed right after this spawn; a process spawned by
        // another thread meanwhile may inherit it too, read-only.
        nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))
            .map_err(|errno| OwnerEditsError::Missing { path: name.clone(), source: errno.into() })?;
        command.arg(format!("/proc/self/fd/{}", file.as_raw_fd())).arg(name);
    }
    let output = command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| OwnerEditsError::Spawn { path: files.config.clone(), source });
    drop(opened);
    let output = output?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(path) = output.status.code().and_then(|code| names.get(usize::try_from(code).ok()?.checked_sub(4)?)) {
        return Err(OwnerEditsError::Unreadable { path: path.clone(), user, reason });
    }
    if !output.status.success() {
        let reason = if reason.is_empty() { format!("perl ended with {}", output.status) } else { reason };
        return Err(OwnerEditsError::Perl { path: files.config.clone(), reason });
    }
    String::from_utf8(output.stdout).map_err(|_| OwnerEditsError::Perl {
        path: files.config.clone(),
        reason: "perl printed something that is not UTF-8".into(),
    })
}

fn parse_output(config: &Path, output: &str) -> Result<OwnerEdits, OwnerEditsError> {
    let bad = |what: &str| OwnerEditsError::Perl { path: config.to_owned(), reason: what.to_owned() };
    let mut enabled = None;
    let mut editable = BTreeSet::new();
    let mut top_dir = None;
    let mut backuppc_user = None;
    let mut ended = false;
    for line in output.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["enable", value] => enabled = Some(*value == "1"),
            ["hash", "1"] => {}
            ["hash", _] => return Err(bad("$Conf{CgiUserConfigEdit} is not a hash")),
            ["edit", key, "1"] => {
                editable.insert((*key).to_owned());
            }
            ["edit", _, _] => {}
            ["topdir", hex] => top_dir = Some(from_hex(hex).ok_or_else(|| bad("TopDir came back garbled"))?),
            ["user", hex] => backuppc_user = Some(from_hex(hex).ok_or_else(|| bad("BackupPCUser came back garbled"))?),
            ["end"] => ended = true,
            _ => return Err(bad(&format!("unexpected line {line:?} from the reading program"))),
        }
    }
    match (enabled, top_dir, backuppc_user, ended) {
        (Some(enabled), Some(top_dir), Some(user), true) => Ok(OwnerEdits {
            config_path: config.to_owned(),
            enabled,
            editable,
            top_dir: if top_dir.is_empty() {
                PathBuf::from(DEFAULT_TOP_DIR)
            } else {
                PathBuf::from(std::ffi::OsString::from_vec(top_dir))
            },
            backuppc_user: (!user.is_empty()).then(|| String::from_utf8_lossy(&user).into_owned()),
        }),
        _ => Err(bad("the reading program's output is incomplete")),
    }
}

/// The bytes that Perl's `unpack("H*", ...)` wrote as `hex`.
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok()).collect()
}

/// Where the cache goes: beside `journal`.
pub fn cache_path_beside(journal: &Path) -> PathBuf {
    journal.with_file_name(CACHE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's stock config.pl, as the backuppc package installs it.
    const DEBIAN_DEFAULTS: &str = "/usr/share/backuppc/conf/config.pl";

    fn conf_dir(body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.pl"), body).unwrap();
        dir
    }

    /// A config.pl that loads Debian's stock one, then `extra`.
    fn debian_plus(extra: &str) -> Option<tempfile::TempDir> {
        if !Path::new(DEBIAN_DEFAULTS).exists() || !Path::new(PERL).exists() {
            eprintln!("SKIPPED: Debian's backuppc package or perl is not installed");
            assert!(std::env::var_os("CI").is_none(), "CI must have the backuppc package");
            return None;
        }
        Some(conf_dir(&format!("do '{DEBIAN_DEFAULTS}' or die \"cannot load: $@ $!\";\n{extra}")))
    }

    #[test]
    fn debians_stock_config_lets_owners_change_the_ssh_command() {
        let Some(dir) = debian_plus("") else { return };
        let edits = read(dir.path()).unwrap();
        assert!(!edits.is_safe());
        let keys = edits.dangerous_editable();
        let mail = [
            "EMailNoBackupEverMesg",
            "EMailNoBackupRecentMesg",
            "EMailOutlookBackupMesg",
            "EMailHeaders",
            "EMailUserDestDomain",
            "EMailFromUserName",
        ];
        for key in ["RsyncSshArgs", "RsyncArgs", "RsyncShareName", "ClientNameAlias", "XferMethod"].iter().chain(&mail)
        {
            assert!(keys.contains(key), "{key} missing from {keys:?}");
        }
        for harmless in ["FullPeriod", "BackupFilesExclude", "EMailNotifyMinDays", "RsyncClientPath"] {
            assert!(!keys.contains(&harmless), "{harmless} in {keys:?}");
        }
        assert!(edits.problem().contains("$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 0;"), "{}", edits.problem());
        assert!(edits.problem().contains("$Conf{CgiUserConfigEditEnable} = 0;"));
    }

    #[test]
    fn the_editor_turned_off_is_safe() {
        let Some(dir) = debian_plus("$Conf{CgiUserConfigEditEnable} = 0;\n") else { return };
        assert!(read(dir.path()).unwrap().is_safe());
    }

    #[test]
    fn the_fix_lines_make_debians_config_safe_and_keep_harmless_keys() {
        let Some(dir) = debian_plus("") else { return };
        let lines = read(dir.path()).unwrap().fix_lines().join("\n");
        let Some(fixed) = debian_plus(&lines) else { return };
        let edits = read(fixed.path()).unwrap();
        assert!(edits.is_safe(), "{}", edits.problem());
        assert!(edits.enabled);
        assert!(edits.editable.contains("BackupFilesExclude") && edits.editable.contains("FullPeriod"));
    }

    #[test]
    fn one_dangerous_key_left_is_unsafe_and_named() {
        let Some(dir) = debian_plus("") else { return };
        let lines: Vec<String> = read(dir.path()).unwrap().fix_lines();
        let all_but_one: Vec<&String> = lines.iter().filter(|line| !line.contains("{RsyncSshArgs}")).collect();
        assert_eq!(all_but_one.len() + 1, lines.len());
        let text = all_but_one.iter().map(|line| line.as_str()).collect::<Vec<_>>().join("\n");
        let Some(fixed) = debian_plus(&text) else { return };
        let edits = read(fixed.path()).unwrap();
        assert_eq!(edits.dangerous_editable(), ["RsyncSshArgs"]);
    }

    #[test]
    fn a_key_not_on_the_allow_list_is_reported_whatever_its_name() {
        let dir = conf_dir(
            "$Conf{CgiUserConfigEditEnable} = 1;\n\
             $Conf{CgiUserConfigEdit} = { FullPeriod => 1, EMailNoBackupEverMesg => 1, SomeFutureKey => 1 };\n",
        );
        let edits = read(dir.path()).unwrap();
        assert_eq!(edits.dangerous_editable(), ["EMailNoBackupEverMesg", "SomeFutureKey"]);
        assert_eq!(
            edits.fix_lines(),
            ["$Conf{CgiUserConfigEdit}{EMailNoBackupEverMesg} = 0;", "$Conf{CgiUserConfigEdit}{SomeFutureKey} = 0;"]
        );
    }

    #[test]
    fn every_allowed_key_is_one_debian_lets_owners_edit() {
        let Some(dir) = debian_plus("") else { return };
        let edits = read(dir.path()).unwrap();
        for key in OWNER_EDITABLE {
            assert!(edits.editable.contains(*key), "{key} is not a key BackupPC's editor offers owners");
        }
    }

    #[test]
    fn a_key_absent_from_the_hash_is_not_editable() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit} = { FullPeriod => 1 };\n");
        let edits = read(dir.path()).unwrap();
        assert!(edits.is_safe());
        assert_eq!(edits.editable.iter().collect::<Vec<_>>(), ["FullPeriod"]);
    }

    #[test]
    fn a_missing_or_broken_config_is_an_error() {
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(read(empty.path()), Err(OwnerEditsError::Missing { .. })));
        let broken = conf_dir("$Conf{CgiUserConfigEditEnable} = ;\n");
        assert!(matches!(read(broken.path()), Err(OwnerEditsError::Perl { .. })));
        let not_hash = conf_dir("$Conf{CgiUserConfigEdit} = 'all';\n");
        assert!(matches!(read(not_hash.path()), Err(OwnerEditsError::Perl { .. })));
    }

    #[test]
    fn top_dir_and_the_backuppc_user_come_from_the_same_reading() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        let edits = read(dir.path()).unwrap();
        assert_eq!(edits.top_dir, Path::new(DEFAULT_TOP_DIR), "BackupPC's own default when config.pl sets none");
        assert_eq!(edits.backuppc_user, None);
        let dir = conf_dir(
            "$Conf{CgiUserConfigEditEnable} = 0;\n$Conf{TopDir} = \"/srv/back ups\\n\\xff\";\n$Conf{BackupPCUser} = 'bpc';\n",
        );
        let edits = read(dir.path()).unwrap();
        assert_eq!(edits.top_dir.as_os_str().as_encoded_bytes(), b"/srv/back ups\n\xff");
        assert_eq!(edits.backuppc_user.as_deref(), Some("bpc"));
        let Some(debian) = debian_plus("") else { return };
        let edits = read(debian.path()).unwrap();
        assert_eq!(edits.top_dir, Path::new("/var/lib/backuppc"));
        assert_eq!(edits.backuppc_user.as_deref(), Some("backuppc"));
    }

    #[test]
    fn the_files_own_output_cannot_pose_as_the_answer() {
        let dir = conf_dir(
            "print \"enable 0\\nend\\n\";\n$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 1;\n",
        );
        assert_eq!(read(dir.path()).unwrap().dangerous_editable(), ["RsyncSshArgs"]);
    }

    #[test]
    fn root_hands_perl_no_config_pl_or_localconfig_put_as_a_link() {
        testkit::require!(testkit::require_root_and(&[PERL, SETPRIV]));
        // A secret of root's stands where the links lead: Perl, run as the
        // folder's owner, would read what root opened.
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        let secret = dir.path().join("secret");
        fs::write(&secret, "root:$y$j9T$SECRET:19000:0:99999:7:::\n").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("localconfig.pl")).unwrap();
        let error = read_with_local_in(dir.path()).unwrap_err().to_string();
        assert!(error.contains("a symbolic link, which bpc-register run as root does not follow"), "{error}");
        assert!(!error.contains("SECRET"), "{error}");
        fs::remove_file(dir.path().join("localconfig.pl")).unwrap();
        fs::rename(dir.path().join("config.pl"), dir.path().join("config.pl.real")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("config.pl")).unwrap();
        let error = read_with_local_in(dir.path()).unwrap_err().to_string();
        assert!(error.contains("a symbolic link, which bpc-register run as root does not follow"), "{error}");
        // Nor a second name of a file of root's.
        fs::remove_file(dir.path().join("config.pl")).unwrap();
        fs::hard_link(&secret, dir.path().join("config.pl")).unwrap();
        let error = read_with_local_in(dir.path()).unwrap_err().to_string();
        assert!(error.contains("a file of root's with other names"), "{error}");
    }

    #[test]
    fn a_fifo_in_place_of_localconfig_holds_no_one() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        nix::unistd::mkfifo(&dir.path().join("localconfig.pl"), nix::sys::stat::Mode::from_bits_truncate(0o600))
            .unwrap();
        let error = read_with_local_in(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
    }

    #[test]
    fn a_path_with_perl_syntax_is_data() {
        let base = tempfile::tempdir().unwrap();
        let odd = base.path().join("a'b\"c$d@e;f");
        fs::create_dir(&odd).unwrap();
        fs::write(odd.join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 0;\n").unwrap();
        assert!(read(&odd).unwrap().is_safe());
    }

    /// [`read`] with `localconfig.pl` in `dir` instead of [`LOCALCONFIG`].
    fn read_with_local_in(dir: &Path) -> Result<OwnerEdits, OwnerEditsError> {
        read_files(&ConfigFiles::of(dir, &dir.join("localconfig.pl"))?)
    }

    #[test]
    fn localconfig_is_read_first_and_config_pl_wins() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        fs::write(
            dir.path().join("localconfig.pl"),
            "$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 1;\n",
        )
        .unwrap();
        assert!(read_with_local_in(dir.path()).unwrap().is_safe());
        fs::write(dir.path().join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 1;\n").unwrap();
        assert_eq!(read_with_local_in(dir.path()).unwrap().dangerous_editable(), ["RsyncSshArgs"]);
    }

    #[test]
    fn the_localconfig_read_is_the_one_backuppc_loads_not_one_beside_config_pl() {
        // BackupPC loads /etc/backuppc/localconfig.pl whatever its ConfDir.
        let dir = conf_dir("$Conf{CgiUserConfigEdit} = { RsyncSshArgs => 1 };\n");
        fs::write(dir.path().join("localconfig.pl"), "$Conf{CgiUserConfigEditEnable} = 0;\n").unwrap();
        let files = ConfigFiles::of(dir.path(), Path::new(LOCALCONFIG)).unwrap();
        assert_eq!(files.local, Path::new("/etc/backuppc/localconfig.pl"));
        if Path::new(LOCALCONFIG).exists() {
            eprintln!("SKIPPED the behaviour half: this machine has its own {LOCALCONFIG}");
            return;
        }
        fs::write(dir.path().join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 1;\n").unwrap();
        fs::write(
            dir.path().join("localconfig.pl"),
            "$Conf{CgiUserConfigEditEnable} = 0;\n$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 1;\n",
        )
        .unwrap();
        assert!(read(dir.path()).unwrap().is_safe(), "a localconfig.pl beside config.pl was read");
    }

    fn needs_root(name: &str) -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        eprintln!("SKIPPED {name}: needs root");
        assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
        false
    }

    #[test]
    fn root_runs_perl_as_the_folders_owner_when_root_owns_config_pl() {
        if !needs_root("root_runs_perl_as_the_folders_owner_when_root_owns_config_pl") {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        // The folder's owner cannot change config.pl (root's), but BackupPC
        // also loads localconfig.pl in the same Perl, and she can write that.
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        let marker = dir.path().join("marker");
        let local =
            format!("open(my $m, '>', '{}') or die \"marker: $!\"; print $m \"$<\"; close($m);\n", marker.display());
        fs::write(dir.path().join("localconfig.pl"), local).unwrap();
        std::os::unix::fs::chown(dir.path().join("localconfig.pl"), Some(NOBODY), Some(NOBODY)).unwrap();
        assert!(read_with_local_in(dir.path()).unwrap().is_safe());
        assert_eq!(fs::read_to_string(&marker).unwrap(), NOBODY.to_string(), "localconfig.pl ran as root");
    }

    #[test]
    fn root_runs_perl_as_nobody_when_root_owns_the_folder_and_the_file() {
        if !needs_root("root_runs_perl_as_nobody_when_root_owns_the_folder_and_the_file") {
            return;
        }
        // The folder stays 0700: Perl reads the file through the descriptor
        // bpc-register opened, which a later rename cannot change either.
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit}{\"uid$<\"} = 1;\n");
        assert_eq!(read(dir.path()).unwrap().editable.iter().collect::<Vec<_>>(), ["uid65534"]);
    }

    #[test]
    fn a_file_perl_cannot_read_as_nobody_is_refused_with_what_to_do() {
        if !needs_root("a_file_perl_cannot_read_as_nobody_is_refused_with_what_to_do") {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        fs::set_permissions(dir.path().join("config.pl"), fs::Permissions::from_mode(0o600)).unwrap();
        let error = read(dir.path()).unwrap_err();
        assert!(matches!(error, OwnerEditsError::Unreadable { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("uid 65534") && message.contains("as the backuppc user"), "{message}");
    }

    #[test]
    fn root_runs_the_file_as_its_owner() {
        if !needs_root("root_runs_the_file_as_its_owner") {
            return;
        }
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit}{\"uid$<\"} = 1;\n");
        fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(dir.path().join("config.pl"), Some(65534), Some(65534)).unwrap();
        assert_eq!(read(dir.path()).unwrap().editable.iter().collect::<Vec<_>>(), ["uid65534"]);
    }

    #[test]
    fn the_cache_is_used_only_while_the_file_is_the_same() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        let cache = dir.path().join(CACHE_NAME);
        assert!(read_cached(dir.path(), &cache).unwrap().is_safe());
        let text = fs::read_to_string(&cache).unwrap();
        assert!(text.starts_with(CACHE_HEADER));
        // A forged answer under the right key is believed (it is the cache),
        // which shows the second call did not run Perl...
        let forged = text.replace("enable 0", "enable 1\nedit RsyncSshArgs 1");
        fs::write(&cache, &forged).unwrap();
        assert!(!read_cached(dir.path(), &cache).unwrap().is_safe());
        // ...and once the file changes, the cache no longer counts.
        fs::write(dir.path().join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 0;\n# edited\n").unwrap();
        assert!(read_cached(dir.path(), &cache).unwrap().is_safe());
        assert_eq!(fs::metadata(&cache).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn a_cache_others_may_write_or_that_is_no_plain_file_is_not_believed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        let cache = dir.path().join(CACHE_NAME);
        read_cached(dir.path(), &cache).unwrap();
        let forged = fs::read_to_string(&cache).unwrap().replace("enable 0", "enable 1\nedit RsyncSshArgs 1");
        fs::write(&cache, &forged).unwrap();
        assert!(!read_cached_without_writing(dir.path(), &cache).unwrap().is_safe(), "the cache was not used");
        // Writable by its group or by anyone: Perl is asked instead.
        for mode in [0o660, 0o646] {
            fs::set_permissions(&cache, fs::Permissions::from_mode(mode)).unwrap();
            assert!(read_cached_without_writing(dir.path(), &cache).unwrap().is_safe(), "{mode:o} believed");
        }
        // Behind a link, or a FIFO (which a read would wait on forever).
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o640)).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::rename(&cache, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &cache).unwrap();
        assert!(read_cached_without_writing(dir.path(), &cache).unwrap().is_safe(), "a link was followed");
        fs::remove_file(&cache).unwrap();
        nix::unistd::mkfifo(&cache, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(read_cached_without_writing(dir.path(), &cache).unwrap().is_safe());
        // Too long to be Perl's answer.
        fs::remove_file(&cache).unwrap();
        fs::write(&cache, format!("{forged}{}", "#".repeat(MAX_CACHE as usize))).unwrap();
        assert!(read_cached_without_writing(dir.path(), &cache).unwrap().is_safe());
        // A registration replaces it with one it believes, whatever the mode
        // of the one it replaces.
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(read_cached(dir.path(), &cache).unwrap().is_safe());
        assert_eq!(fs::metadata(&cache).unwrap().mode() & 0o777, 0o640);
        assert!(
            cached_output(&cache, &ConfigFiles::of(dir.path(), Path::new(LOCALCONFIG)).unwrap().identity().unwrap())
                .is_some()
        );
    }

    #[test]
    fn a_process_finding_perl_already_running_waits_for_its_answer() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        let cache = dir.path().join(CACHE_NAME);
        read_cached(dir.path(), &cache).unwrap();
        let forged = fs::read_to_string(&cache).unwrap().replace("enable 0", "enable 1\nedit RsyncSshArgs 1");
        fs::remove_file(&cache).unwrap();
        // Another process is running Perl: it holds the lock until it has
        // written the cache.
        let other = File::create(computing_lock_path(&cache)).unwrap();
        other.lock().unwrap();
        let waiting = std::thread::spawn({
            let (conf_dir, cache) = (dir.path().to_owned(), cache.clone());
            move || read_cached(&conf_dir, &cache).unwrap()
        });
        // Perl takes tens of milliseconds: a waiter that did not wait would
        // be done by now.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiting.is_finished(), "it did not wait for the lock");
        fs::write(&cache, &forged).unwrap();
        other.unlock().unwrap();
        // The forged answer, not Perl's: the waiter read what the other wrote.
        assert!(!waiting.join().unwrap().is_safe());
        // A reader that must change nothing takes no lock and creates none.
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        let cache = dir.path().join(CACHE_NAME);
        read_cached_without_writing(dir.path(), &cache).unwrap();
        assert!(!computing_lock_path(&cache).exists());
        // A writer's lock is its owner's alone: nobody else can hold it.
        read_cached(dir.path(), &cache).unwrap();
        assert_eq!(fs::metadata(computing_lock_path(&cache)).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_reader_that_must_change_nothing_uses_the_cache_but_never_writes_it() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n$Conf{TopDir} = '/srv/backuppc';\n");
        let cache = dir.path().join(CACHE_NAME);
        let edits = read_cached_without_writing(dir.path(), &cache).unwrap();
        assert_eq!(edits.top_dir, Path::new("/srv/backuppc"));
        assert!(!cache.exists(), "a read wrote the cache");
        read_cached(dir.path(), &cache).unwrap();
        let forged = fs::read_to_string(&cache).unwrap().replace("enable 0", "enable 1\nedit RsyncSshArgs 1");
        fs::write(&cache, &forged).unwrap();
        assert!(!read_cached_without_writing(dir.path(), &cache).unwrap().is_safe(), "the cache was not used");
        fs::write(dir.path().join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 0;\n# edited\n").unwrap();
        assert!(read_cached_without_writing(dir.path(), &cache).unwrap().is_safe());
        assert_eq!(fs::read_to_string(&cache).unwrap(), forged, "a read rewrote the cache");
    }
}
