//! `bpc-enroll setup`: register this machine and install the server's key.

use crate::config::ClientConfig;
use crate::credentials::Authenticator;
use crate::install::{
    Layout, authorized_keys_line, create_dirs, install_authorized_key, install_client_config, key_blob,
};
use crate::manifest::{AddedKey, Manifest};
use crate::system::{self, Account, SystemError};
use crate::transport::{Transport, TransportError};
use protocol::{Answer, Logon, OsName, Request, parse_answer};
use std::path::PathBuf;

/// What setup needs to know.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The server URL, as given (recorded in the installed client config).
    pub server: String,
    /// The directory login the host is registered to.
    pub logon: Logon,
    /// This machine's OS type.
    pub os: OsName,
    /// Where to install: `/` for real, another folder for a trial.
    pub root: PathBuf,
    /// The client configuration in force.
    pub config: ClientConfig,
    /// The absolute path of `bpc-enroll`, whose `rsyncsend` the backup
    /// server's key is bound to.
    pub program: String,
    /// Whether to change the system: create the backup account, give it the
    /// files it must read and install its sudo rule (setup as root, no `--root`).
    pub system: bool,
}

/// What an enrollment did.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The request sent.
    pub request: String,
    /// The answer received, as text.
    pub answer: String,
    /// The host's BackupPC page.
    pub url: String,
    /// The host name the server registered, when it said.
    pub host: Option<String>,
    /// The files setup wrote, with what each is.
    pub written: Vec<(PathBuf, &'static str)>,
}

/// Why setup did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The server could not be reached or the URL is unusable.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused; the text is its answer, made safe to print.
    #[error("the server refused the registration:\n{0}")]
    Refused(String),
    /// The server said `success` but its answer cannot be used.
    #[error("the server's answer cannot be used: {0}")]
    BadAnswer(String),
    /// The backup account or its sudo rule could not be set up.
    #[error(transparent)]
    System(#[from] SystemError),
    /// The machine lacks what a real installation needs, or the program is
    /// not safe to bind the backup key to.
    #[error("{0}")]
    NotReady(String),
    /// Something could not be installed on this machine.
    #[error("{path}: cannot install {what}: {source}")]
    Install {
        /// The file at fault.
        path: PathBuf,
        /// What it is.
        what: &'static str,
        /// The system's reason.
        source: std::io::Error,
    },
}

impl SetupError {
    /// The exit code: 1 refused or failed here, 2 unusable URL or options,
    /// 3 server unreachable.
    pub fn exit_code(&self) -> u8 {
        match self {
            SetupError::Transport(TransportError::Unreachable { .. }) => 3,
            SetupError::Transport(TransportError::HostKeyMismatch { .. }) => 1,
            SetupError::Transport(TransportError::Credentials(_)) => 2,
            SetupError::Transport(_) => 2,
            SetupError::System(SystemError::BadAccountName(_)) | SetupError::NotReady(_) => 2,
            _ => 1,
        }
    }
}

/// Sets the machine up: the backup account first when changing the system
/// (ssh runs as it), then the registration through the transport `connect`
/// builds for that account, then the installation. An account created here
/// is removed again when the registration fails, so a refusal changes nothing.
pub fn setup(
    options: &SetupOptions,
    connect: impl FnOnce(Option<&Account>) -> Result<Box<dyn Transport>, TransportError>,
    auth: &mut dyn Authenticator,
) -> Result<Enrollment, SetupError> {
    let layout = Layout::new(&options.root, &options.config.account);
    if options.system {
        preflight(&options.program)?;
    }
    let account = match options.system {
        true => Some(system::ensure_account(&options.config.account, &layout.home())?),
        false => None,
    };
    let result = connect(account.as_ref().map(|(account, _)| account))
        .map_err(SetupError::from)
        .and_then(|transport| enroll(options, transport.as_ref(), auth, account.as_ref()));
    if let (Err(_), Some((account, true))) = (&result, &account) {
        let registered = Manifest::load(&options.root).ok().flatten().is_some();
        if !registered {
            let _ = system::remove_account(&account.name);
        }
    }
    result
}

/// What a real installation needs, checked before anything changes: the
/// system tools it runs, and a program that only root can replace, since the
/// backup key (and through sudo, root) will run it.
fn preflight(program: &str) -> Result<(), SetupError> {
    use std::os::unix::fs::MetadataExt;
    for tool in [
        "/usr/sbin/useradd",
        "/usr/sbin/usermod",
        "/usr/sbin/visudo",
        "/usr/bin/sudo",
        "/usr/bin/setpriv",
        crate::transport::SSH,
    ] {
        if !std::path::Path::new(tool).is_file() {
            return Err(SetupError::NotReady(format!("{tool} is missing: install it first (nothing was changed)")));
        }
    }
    let program = std::path::Path::new(program);
    for path in program.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let meta = std::fs::metadata(path).map_err(|e| SetupError::NotReady(format!("{}: {e}", path.display())))?;
        // A sticky folder such as /tmp lets no one else rename what root owns in it.
        let others_can_write = meta.mode() & 0o022 != 0 && !(meta.is_dir() && meta.mode() & 0o1000 != 0);
        if meta.uid() != 0 || others_can_write {
            return Err(SetupError::NotReady(format!(
                "{} can be changed by someone other than root, and the backup key would run {}: \
                 install bpc-enroll in a root-owned folder such as /usr/local/bin first (nothing was changed)",
                path.display(),
                program.display()
            )));
        }
    }
    Ok(())
}

/// Registers the machine through `transport` and installs the backup key;
/// `account` is the system account when changing the system, with whether
/// it was created now.
pub fn enroll(
    options: &SetupOptions,
    transport: &dyn Transport,
    auth: &mut dyn Authenticator,
    account: Option<&(Account, bool)>,
) -> Result<Enrollment, SetupError> {
    let request = Request { protocol: 2, ..Request::new(options.os.clone(), options.logon.clone()) };
    let raw = transport.exchange(&request, auth)?;
    let answer_text = String::from_utf8_lossy(&raw).into_owned();
    let success = match parse_answer(&raw) {
        Answer::Success(success) => success,
        Answer::Error(text) if text.trim().is_empty() => return Err(SetupError::Refused("(empty answer)".into())),
        Answer::Error(text) => return Err(SetupError::Refused(printable(&text))),
    };
    let key_text = success.get("key").ok_or_else(|| SetupError::BadAnswer("it has no key: line".into()))?;
    let key = ssh_key::PublicKey::from_openssh(key_text)
        .map_err(|error| SetupError::BadAnswer(format!("key: is not an OpenSSH public key ({error})")))?;
    let url = success.get("url").ok_or_else(|| SetupError::BadAnswer("it has no url: line".into()))?;
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(SetupError::BadAnswer(format!("url: is not an http(s) URL: {}", printable(url))));
    }
    let from = match success.get("from") {
        Some(from) if protocol::is_address_list(from) => Some(from.to_owned()),
        Some(from) => {
            return Err(SetupError::BadAnswer(format!("from: is not a list of addresses: {}", printable(from))));
        }
        None => {
            let reached: Vec<String> = transport.reached_addresses().iter().map(|ip| ip.to_string()).collect();
            (!reached.is_empty()).then(|| reached.join(","))
        }
    };
    let installed = Installed {
        options,
        layout: Layout::new(&options.root, &options.config.account),
        group: account.map(|(account, _)| account.gid),
    };
    let mut manifest = Manifest::load(&options.root)
        .map_err(|e| installed.error("the manifest", &Manifest::path(&options.root), std::io::Error::other(e)))?
        .unwrap_or_default();
    manifest.account = options.config.account.clone();
    manifest.account_created |= account.is_some_and(|(_, created)| *created);
    let written = installed.install(&mut manifest, &key, from.as_deref())?;
    manifest.server = options.server.clone();
    // `host:` is shown to the person: only a valid host name is kept.
    manifest.host = success.get("host").and_then(|host| protocol::HostName::parse(host).ok()).map(|h| h.to_string());
    manifest.url = url.to_owned();
    installed.write_manifest(&mut manifest)?;
    Ok(Enrollment {
        request: request.render(),
        answer: answer_text,
        url: url.to_owned(),
        host: manifest.host.clone(),
        written,
    })
}

/// One installation in progress.
struct Installed<'a> {
    options: &'a SetupOptions,
    layout: Layout,
    /// The backup account's group, which gets read access, when changing the system.
    group: Option<u32>,
}

impl Installed<'_> {
    fn error(&self, what: &'static str, path: &std::path::Path, source: std::io::Error) -> SetupError {
        SetupError::Install { path: path.to_owned(), what, source }
    }

    fn dirs(
        &self,
        manifest: &mut Manifest,
        dir: &std::path::Path,
        mode: u32,
        group: Option<u32>,
    ) -> Result<(), SetupError> {
        let created = create_dirs(dir, mode, group).map_err(|e| self.error("a folder", dir, e))?;
        manifest.created_dirs(created);
        Ok(())
    }

    /// The key, the client config and (when changing the system) the sudo rule.
    fn install(
        &self,
        manifest: &mut Manifest,
        key: &ssh_key::PublicKey,
        from: Option<&str>,
    ) -> Result<Vec<(PathBuf, &'static str)>, SetupError> {
        let mut written = Vec::new();
        let keys_path = self.layout.authorized_keys();
        let ssh_dir = self.layout.home().join(".ssh");
        // The account reads its keys through its group and cannot change them;
        // in a trial install the files are simply private.
        let (dir_mode, key_mode) = if self.group.is_some() { (0o750, 0o640) } else { (0o700, 0o600) };
        self.dirs(manifest, &self.layout.home(), 0o750, self.group)?;
        self.dirs(manifest, &ssh_dir, dir_mode, self.group)?;
        let config_path = self.layout.client_config();
        let command = format!("{} rsyncsend --config {}", self.options.program, config_path.display());
        let key_error = |e| self.error("the backup key", &keys_path, e);
        let line = authorized_keys_line(key, &command, from).map_err(key_error)?;
        let existed = keys_path.exists();
        if install_authorized_key(&keys_path, key, &line, key_mode, self.group).map_err(key_error)? {
            written.push((keys_path.clone(), "the backup server's key, bound to rsyncsend"));
        }
        if existed {
            let added = AddedKey { file: keys_path.clone(), key: key_blob(key).map_err(key_error)? };
            if !manifest.created_files.contains(&keys_path) && !manifest.added_keys.contains(&added) {
                manifest.added_keys.push(added);
            }
        } else {
            manifest.created_file(keys_path.clone());
        }

        if let Some(dir) = config_path.parent() {
            self.dirs(manifest, dir, 0o755, None)?;
        }
        let config = ClientConfig { server: Some(self.options.server.clone()), ..self.options.config.clone() };
        let config_error = |e| self.error("the client config", &config_path, e);
        if install_client_config(&config_path, &config.to_toml()).map_err(config_error)? {
            manifest.created_file(config_path.clone());
            written.push((config_path, "the client configuration"));
        }
        if self.options.system {
            let existed = system::sudoers_path(&self.options.config.account).exists();
            let path = system::install_sudoers(
                &self.options.config.account,
                &self.options.program,
                &self.layout.client_config(),
            )?;
            if !existed {
                manifest.created_file(path.clone());
            }
            written.push((path, "the backup account's sudo rule (rsyncsend as root only)"));
        }
        Ok(written)
    }

    fn write_manifest(&self, manifest: &mut Manifest) -> Result<(), SetupError> {
        let path = Manifest::path(&self.options.root);
        if let Some(dir) = path.parent() {
            self.dirs(manifest, dir, 0o755, None)?;
        }
        let text = manifest.to_toml().map_err(|e| self.error("the manifest", &path, std::io::Error::other(e)))?;
        files::write_atomic(&path, text.as_bytes(), 0o644).map_err(|e| self.error("the manifest", &path, e))
    }
}

/// Server text made safe for a terminal: no escape sequences, lines kept.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::NoCredentials;

    struct Canned(&'static str);
    impl Transport for Canned {
        fn exchange(&self, _: &Request, _: &mut dyn Authenticator) -> Result<Vec<u8>, TransportError> {
            Ok(self.0.as_bytes().to_vec())
        }
    }

    fn options(root: &std::path::Path) -> SetupOptions {
        SetupOptions {
            server: "file:///srv/server.toml".into(),
            logon: Logon::parse("alice").unwrap(),
            os: OsName::parse("linux").unwrap(),
            root: root.to_owned(),
            config: ClientConfig::default(),
            program: "/usr/bin/bpc-enroll".into(),
            system: false,
        }
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl backuppc";

    #[test]
    fn a_refusal_is_shown_as_is_and_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let error = enroll(
            &options(dir.path()),
            &Canned("1.2.3.4 5 6.7.8.9 22 bad user request\n\x1b[31mred\n"),
            &mut NoCredentials,
            None,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the server refused the registration:\n1.2.3.4 5 6.7.8.9 22 bad user request\n?[31mred"
        );
        assert_eq!(error.exit_code(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn success_installs_the_key_and_ignores_unknown_keywords() {
        let dir = tempfile::tempdir().unwrap();
        let answer: &'static str =
            Box::leak(format!("success\nflavour: mint\nurl: http://b/?host=pc\nkey: {KEY}\n").into_boxed_str());
        let enrollment = enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap();
        assert_eq!(enrollment.url, "http://b/?host=pc");
        assert_eq!(enrollment.written.len(), 2);
        let keys = std::fs::read_to_string(dir.path().join("var/lib/bckpciuem/.ssh/authorized_keys")).unwrap();
        let config = dir.path().join("etc/bpc-enroll/client.toml");
        assert_eq!(
            keys,
            format!("restrict,command=\"/usr/bin/bpc-enroll rsyncsend --config {}\" {KEY}\n", config.display())
        );
        let manifest = Manifest::load(dir.path()).unwrap().unwrap();
        assert_eq!(manifest.created_files.len(), 2);
        assert_eq!(manifest.url, "http://b/?host=pc");
    }

    #[test]
    fn a_success_without_a_valid_key_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for answer in ["success\nurl: http://b/\n", "success\nurl: http://b/\nkey: ssh-ed25519 nonsense\n"] {
            let error = enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap_err();
            assert!(matches!(error, SetupError::BadAnswer(_)), "{error}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
