//! What `bpc-enroll rsyncsend` execs, decided in one place: as the backup
//! account, itself again through `sudo -n` (the only thing the sudo rule
//! allows); as root, rsync on the checked command, with a narrow path
//! resolved and held open. The binary only logs and execs the result.

use crate::config::{ClientConfig, DEFAULT_CONFIG_PATH};
use crate::rsyncpath::{PinnedPath, pin};
use crate::rsyncsend::{MIN_RSYNC_VERSION, RSYNC, RsyncMode, SUDO, check_command, parse_rsync_version};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The environment every exec'd program gets, and nothing else of ours.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A program ready to replace rsyncsend.
#[derive(Debug)]
pub struct Launch {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, OsString)>,
    /// What the system log records for an accepted transfer.
    pub log: Option<String>,
    /// The folder a narrow path was resolved to, held open until the exec:
    /// rsync reaches it through `/proc/self/fd/N`.
    pub pinned: Option<PinnedPath>,
}

/// The request as sshd handed it over.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `--config` or `BPC_ENROLL_CONFIG`; `None` means the default path.
    pub config: Option<&'a Path>,
    /// `SSH_ORIGINAL_COMMAND`.
    pub command: Option<&'a std::ffi::OsStr>,
    /// `SSH_CONNECTION`, made safe for a log line.
    pub connection: &'a str,
    /// The absolute path of this program, which the sudo rule names.
    pub program: &'a str,
    /// Whether this runs as root.
    pub as_root: bool,
}

/// Decides what to exec for `request`, or why nothing may run.
pub fn prepare(request: Request<'_>) -> Result<Launch, String> {
    if request.as_root {
        check_config_is_roots(request.config)?;
    }
    let config = ClientConfig::load_default_or(request.config)
        .map_err(|error| format!("cannot read the client configuration: {error}"))?;
    let command = request.command;
    let invocation = check_command(command.map(|c| c.as_bytes()), config.allow_restore, &config.allowed_paths)
        .map_err(|refusal| {
            let shown = command.map(|c| protocol::text::escape(c.as_bytes())).unwrap_or_default();
            format!("{refusal}: {shown}")
        })?;
    if !request.as_root {
        // The backup account: the sudo rule lets it run exactly this program,
        // this subcommand and this configuration as root, which checks again
        // and resolves the path as root sees it.
        let config_path =
            request.config.ok_or("the backup account must name its configuration with --config".to_owned())?;
        let mut argv = vec![SUDO.to_owned(), "-n".into(), request.program.to_owned(), "rsyncsend".into()];
        argv.extend(["--config".to_owned(), config_path.to_string_lossy().into_owned()]);
        let mut env = vec![("PATH".to_owned(), OsString::from(PATH))];
        env.push(("SSH_CONNECTION".to_owned(), OsString::from(request.connection)));
        if let Some(command) = command {
            env.push(("SSH_ORIGINAL_COMMAND".to_owned(), command.to_owned()));
        }
        return Ok(Launch { argv, env, log: None, pinned: None });
    }
    let pinned = match invocation.narrow {
        true => {
            rsync_is_recent_enough()?;
            let must_exist = invocation.mode == RsyncMode::Backup;
            Some(pin(&invocation.path, &config.allowed_paths, must_exist).map_err(|error| error.to_string())?)
        }
        false => None,
    };
    let path = pinned.as_ref().map_or(invocation.path.as_str(), |pinned| pinned.handed.as_str());
    let argv = invocation.argv(path, pinned.as_ref().map(|pinned| pinned.root.as_str()));
    let log = format!("{} {} ({}) {}", request.connection, invocation.mode, invocation.flags, invocation.path);
    Ok(Launch { argv, env: vec![("PATH".to_owned(), OsString::from(PATH))], log: Some(log), pinned })
}

/// Root trusts the configuration's `allowed-paths` and `allow-restore`: only
/// root may be able to change it (or, missing, create it).
fn check_config_is_roots(config: Option<&Path>) -> Result<(), String> {
    let path = config.map_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH), Path::to_owned);
    let shown = |path: &Path| protocol::text::escape(path.as_os_str().as_bytes());
    match crate::trust::changeable_by_others(&path, 0) {
        Ok(found) if found.is_empty() => Ok(()),
        Ok(found) => {
            let found = found.iter().map(|p| shown(p)).collect::<Vec<_>>().join(", ");
            Err(format!(
                "the client configuration {} can be changed by someone other than root ({found}: not root's, \
                 or writable by group or others)",
                shown(&path)
            ))
        }
        Err(error) => Err(format!("cannot check the client configuration {}: {error}", shown(&path))),
    }
}

/// Refuses an rsync older than the one whose options a narrow path relies on.
fn rsync_is_recent_enough() -> Result<(), String> {
    let (major, minor, patch) = MIN_RSYNC_VERSION;
    let output = std::process::Command::new(RSYNC)
        .arg("--version")
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {RSYNC} --version: {error}"))?;
    match parse_rsync_version(&String::from_utf8_lossy(&output.stdout)) {
        Some(version) if version >= MIN_RSYNC_VERSION => Ok(()),
        found => Err(format!(
            "{RSYNC} is {}, older than {major}.{minor}.{patch}, which allowed-paths narrower than / needs \
             (--confine-root, --drop-D, symlink-safe opens): upgrade rsync or set allowed-paths = [\"/\"]",
            found.map_or("of an unknown version".to_owned(), |(a, b, c)| format!("version {a}.{b}.{c}"))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKUP: &str = "/usr/bin/rsync --server --sender -lHogDtprxe.iLsfxC --numeric-ids . /home/";

    fn request<'a>(config: Option<&'a Path>, command: &'a str, as_root: bool) -> Request<'a> {
        Request {
            config,
            command: Some(std::ffi::OsStr::new(command)),
            connection: "192.0.2.1 5 192.0.2.2 22",
            program: "/usr/bin/bpc-enroll",
            as_root,
        }
    }

    #[test]
    fn the_backup_account_runs_only_itself_again_through_sudo() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("client.toml");
        std::fs::write(&config, "allowed-paths = [\"/home\"]\n").unwrap();
        let launch = prepare(request(Some(&config), BACKUP, false)).unwrap();
        let config_text = config.display().to_string();
        assert_eq!(launch.argv, [SUDO, "-n", "/usr/bin/bpc-enroll", "rsyncsend", "--config", config_text.as_str()]);
        let names: Vec<&str> = launch.env.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["PATH", "SSH_CONNECTION", "SSH_ORIGINAL_COMMAND"]);
        assert!(launch.log.is_none() && launch.pinned.is_none());
    }

    #[test]
    fn a_refused_command_or_an_unnamed_configuration_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("client.toml");
        std::fs::write(&config, "allow-restore = false\n").unwrap();
        let error = prepare(request(Some(&config), "/bin/sh -c id", false)).unwrap_err();
        assert!(error.contains("only rsync may run"), "{error}");
        let restore = "/usr/bin/rsync --server -lHogDtpre.iLsfxC . /tmp/";
        let error = prepare(request(Some(&config), restore, false)).unwrap_err();
        assert!(error.contains("restores are turned off"), "{error}");
        let error = prepare(request(None, BACKUP, false)).unwrap_err();
        assert!(error.contains("--config"), "{error}");
    }
}
