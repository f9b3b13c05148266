//! What BackupPC's web page lets a host's owner change, read from BackupPC's
//! server-wide configuration the way BackupPC reads it.
//!
//! BackupPC 4's per-host editor (`CGI/EditConfig.pm`) opens for a host's
//! owner only when the server-wide `$Conf{CgiUserConfigEditEnable}` is true,
//! and then lets the owner save a key only when the server-wide
//! `$Conf{CgiUserConfigEdit}{KEY}` is true; a key absent from that hash is
//! not editable. Both come from `config.pl` (after Debian's optional
//! `localconfig.pl`), never from the host's own `HOST.pl`. The values are
//! Perl, so Perl reads them: `/usr/bin/perl` runs a fixed program that `do`es
//! each file, as BackupPC's `ConfigDataRead` does, and prints the two
//! settings as plain lines.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Perl interpreter BackupPC runs with.
pub const PERL: &str = "/usr/bin/perl";

/// The name of the cache file, kept beside the journal of registrations.
pub const CACHE_NAME: &str = "bpc-register-owner-edits.cache";

/// What a host's owner may change in BackupPC's web page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerEdits {
    /// The `config.pl` it was read from.
    pub config_path: PathBuf,
    /// `$Conf{CgiUserConfigEditEnable}`: whether owners may open the editor.
    pub enabled: bool,
    /// The keys whose `$Conf{CgiUserConfigEdit}{KEY}` is true.
    pub editable: BTreeSet<String>,
}

impl OwnerEdits {
    /// The dangerous keys a host's owner can change, in name order: none
    /// when the editor is closed to owners.
    pub fn dangerous_editable(&self) -> Vec<&str> {
        if !self.enabled {
            return Vec::new();
        }
        self.editable.iter().map(String::as_str).filter(|key| is_dangerous(key)).collect()
    }

    /// Whether no owner can change a command BackupPC runs, the paths or
    /// arguments it passes, or the machine it connects to.
    pub fn is_safe(&self) -> bool {
        self.dangerous_editable().is_empty()
    }

    /// The lines to add at the end of `config.pl` to make it safe while
    /// leaving owners their harmless settings (schedules, files, email).
    pub fn fix_lines(&self) -> Vec<String> {
        self.dangerous_editable().iter().map(|key| format!("$Conf{{CgiUserConfigEdit}}{{{key}}} = 0;")).collect()
    }

    /// One line for the log and for `check`: which keys, and what to add.
    pub fn problem(&self) -> String {
        let keys = self.dangerous_editable();
        format!(
            "{}: BackupPC's web page lets a host's owner change {} (commands, paths, arguments or the address \
             BackupPC uses as itself); add to that file `{}`, or turn the owners' editor off with \
             `$Conf{{CgiUserConfigEditEnable}} = 0;`",
            self.config_path.display(),
            keys.join(", "),
            self.fix_lines().join(" ")
        )
    }
}

/// Whether an owner who may change `key` in a host's config can make BackupPC
/// run another command, pass it other arguments or paths, or connect to
/// another machine (where the backup key would let it in).
///
/// Every `*Cmd` and every `*Path` (program paths) is dangerous, and so are
/// the keys below: the transfer method (it selects other commands), the
/// share names and the client paths they map to, the ssh, rsync and tar
/// arguments, the host name alias, the Perl modules BackupPC loads, and the
/// two settings that decide what owners may edit.
pub fn is_dangerous(key: &str) -> bool {
    key.ends_with("Cmd") || key.ends_with("Path") || DANGEROUS.contains(&key)
}

/// Dangerous keys that do not end in `Cmd` or `Path` (from BackupPC 4.4's
/// `Config/Meta.pm` and Debian's `config.pl`).
const DANGEROUS: &[&str] = &[
    "XferMethod",
    "ClientNameAlias",
    "RsyncShareName",
    "SmbShareName",
    "TarShareName",
    "FtpShareName",
    "ClientShareName2Path",
    "RsyncSshArgs",
    "RsyncArgs",
    "RsyncArgsExtra",
    "RsyncFullArgsExtra",
    "RsyncIncrArgsExtra",
    "RsyncRestoreArgs",
    "RsyncRestoreArgsExtra",
    "TarFullArgs",
    "TarIncrArgs",
    "PerlModuleLoad",
    "CgiUserConfigEdit",
    "CgiUserConfigEditEnable",
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
    /// Perl could not load the file, as BackupPC could not either.
    #[error("{path}: BackupPC cannot load it either: {reason}; fix the file")]
    Perl {
        /// The file.
        path: PathBuf,
        /// Perl's message, on one line.
        reason: String,
    },
}

/// Reads what owners may edit from `conf_dir/config.pl` (and Debian's
/// `localconfig.pl` when present), running Perl every time.
pub fn read(conf_dir: &Path) -> Result<OwnerEdits, OwnerEditsError> {
    let files = ConfigFiles::of(conf_dir)?;
    let output = run_perl(&files)?;
    parse_output(&files.config, &output)
}

/// Like [`read`], with the answer cached in `cache`: Perl runs again only
/// when one of the files' identities (device, inode, size, mtime and ctime in
/// nanoseconds, or absence) differs from the one recorded. A cache that
/// cannot be written only costs time.
pub fn read_cached(conf_dir: &Path, cache: &Path) -> Result<OwnerEdits, OwnerEditsError> {
    let files = ConfigFiles::of(conf_dir)?;
    let key = files.identity()?;
    if let Some(output) = cached_output(cache, &key) {
        return parse_output(&files.config, &output);
    }
    let output = run_perl(&files)?;
    let edits = parse_output(&files.config, &output)?;
    // Written only after the output parsed, and never trusted unless its
    // key line matches the files as they are now.
    let body = format!("{CACHE_HEADER}\n{key}\n{output}");
    let _ = files::write_atomic(cache, body.as_bytes(), 0o640);
    Ok(edits)
}

/// The first line of a cache file; a new format gets a new header.
const CACHE_HEADER: &str = "bpc-register owner-edits cache 1";

/// The files BackupPC reads for its server-wide configuration, in order.
struct ConfigFiles {
    local: PathBuf,
    config: PathBuf,
}

impl ConfigFiles {
    fn of(conf_dir: &Path) -> Result<ConfigFiles, OwnerEditsError> {
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
        Ok(ConfigFiles { local: conf_dir.join("localconfig.pl"), config })
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
}

/// The cached Perl output when the cache's key is `key`.
fn cached_output(cache: &Path, key: &str) -> Option<String> {
    let text = fs::read_to_string(cache).ok()?;
    let rest = text.strip_prefix(CACHE_HEADER)?.strip_prefix('\n')?;
    let (cached_key, output) = rest.split_once('\n')?;
    (cached_key == key).then(|| output.to_owned())
}

/// Loads the files in the package BackupPC loads them in, with `%Conf`
/// carried from one to the next, and prints `enable 0|1`, `hash 0|1` (whether
/// `CgiUserConfigEdit` is a hash) and `edit KEY 0|1` for each plain key. The
/// files' own output goes to /dev/null so it cannot pose as ours. The paths
/// arrive in `@ARGV`; nothing is interpolated into the program.
const PERL_PROGRAM: &str = r#"
package BackupPC::Storage::Text;
use vars qw(%Conf);
open(my $out, '>&', \*STDOUT) or die "cannot dup stdout: $!\n";
open(STDOUT, '>', '/dev/null') or die "cannot redirect stdout: $!\n";
my $conf = {};
foreach my $file (@ARGV) {
    next if ( !-f $file );
    %Conf = %$conf;
    $! = 0;
    if ( !defined(my $ret = do $file) && ($! || $@) ) {
        my $why = $@ ? "cannot execute $file: $@" : "cannot open $file: $!";
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
print $out "end\n";
"#;

/// Runs the reading program as whoever runs bpc-register, except root: the
/// file is code, and root (`bpc-register check` run by an administrator)
/// runs it as the file's owner, who could change that code anyway, so that
/// the owner of `config.pl` (`backuppc` on Debian) gains nothing by it.
fn perl_command(config: &Path) -> Result<Command, OwnerEditsError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(Command::new(PERL));
    }
    let meta = fs::metadata(config).map_err(|source| OwnerEditsError::Missing { path: config.to_owned(), source })?;
    if meta.uid() == 0 {
        return Ok(Command::new(PERL));
    }
    let mut command = Command::new(SETPRIV);
    command.arg(format!("--reuid={}", meta.uid())).arg(format!("--regid={}", meta.gid())).args([
        "--clear-groups",
        "--",
        PERL,
    ]);
    Ok(command)
}

/// util-linux's tool to drop root's identity before running Perl.
const SETPRIV: &str = "/usr/bin/setpriv";

fn run_perl(files: &ConfigFiles) -> Result<String, OwnerEditsError> {
    let output = perl_command(&files.config)?
        .arg("-e")
        .arg(PERL_PROGRAM)
        .arg("--")
        .arg(&files.local)
        .arg(&files.config)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| OwnerEditsError::Spawn { path: files.config.clone(), source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
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
            ["end"] => ended = true,
            _ => return Err(bad(&format!("unexpected line {line:?} from the reading program"))),
        }
    }
    match (enabled, ended) {
        (Some(enabled), true) => Ok(OwnerEdits { config_path: config.to_owned(), enabled, editable }),
        _ => Err(bad("the reading program's output is incomplete")),
    }
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
        for key in ["RsyncSshArgs", "RsyncArgs", "RsyncShareName", "ClientNameAlias", "XferMethod"] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
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
    fn the_files_own_output_cannot_pose_as_the_answer() {
        let dir = conf_dir(
            "print \"enable 0\\nend\\n\";\n$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 1;\n",
        );
        assert_eq!(read(dir.path()).unwrap().dangerous_editable(), ["RsyncSshArgs"]);
    }

    #[test]
    fn a_path_with_perl_syntax_is_data() {
        let base = tempfile::tempdir().unwrap();
        let odd = base.path().join("a'b\"c$d@e;f");
        fs::create_dir(&odd).unwrap();
        fs::write(odd.join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 0;\n").unwrap();
        assert!(read(&odd).unwrap().is_safe());
    }

    #[test]
    fn localconfig_is_read_first_and_config_pl_wins() {
        let dir = conf_dir("$Conf{CgiUserConfigEditEnable} = 0;\n");
        fs::write(
            dir.path().join("localconfig.pl"),
            "$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit}{RsyncSshArgs} = 1;\n",
        )
        .unwrap();
        assert!(read(dir.path()).unwrap().is_safe());
        fs::write(dir.path().join("config.pl"), "$Conf{CgiUserConfigEditEnable} = 1;\n").unwrap();
        assert_eq!(read(dir.path()).unwrap().dangerous_editable(), ["RsyncSshArgs"]);
    }

    #[test]
    fn root_runs_the_file_as_its_owner() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED root_runs_the_file_as_its_owner: needs root");
            assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
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
}
