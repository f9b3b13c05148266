//! `bpc-enroll setup`: register this machine and install the server's key.

use crate::config::ClientConfig;
use crate::credentials::Authenticator;
use crate::install::{
    Layout, Target, authorized_keys_line, create_dirs, install_authorized_key, install_client_config, key_blob,
    missing_dirs, secure_dir, take_over_keys_file,
};
use crate::manifest::{AddedKey, Manifest};
use crate::system::{self, Account, AccountOrigin, SystemError};
use crate::transport::{Transport, TransportError};
use crate::trust::changeable_by_others;
use protocol::text::printable;
use protocol::{Answer, ClientRequest, Logon, OsName, Request, is_web_url, parse_answer};
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
    /// Where to install: the real system, or a trial folder.
    pub target: Target,
    /// The client configuration in force.
    pub config: ClientConfig,
    /// The absolute path of `bpc-enroll`, whose `rsyncsend` the backup
    /// server's key is bound to.
    pub program: String,
    /// Whether an existing account that setup did not make may be taken
    /// over (`--take-over-account`); without it such an account is refused.
    pub take_over_account: bool,
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
    /// What taking over an existing account removed or disabled, told to
    /// the person.
    pub taken_over: Vec<String>,
    /// The SHA256 fingerprints of the machine's SSH host keys sent for
    /// pinning.
    pub host_keys: Vec<String>,
    /// Why no host key was sent, when none was.
    pub host_keys_note: Option<String>,
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
            SetupError::Transport(
                TransportError::HostKeyMismatch { .. }
                | TransportError::Certificate { .. }
                | TransportError::Http { .. },
            ) => 1,
            SetupError::Transport(TransportError::Credentials(_)) => 2,
            SetupError::Transport(_) => 2,
            SetupError::System(SystemError::BadAccountName(_)) | SetupError::NotReady(_) => 2,
            _ => 1,
        }
    }
}

/// Sets the machine up: the backup account first when changing the system
/// (ssh runs as it), then the registration through the transport `connect`
/// builds for that account, then the installation. Before the server's
/// `success` nothing changes on the machine but a missing account's
/// creation, which is undone when the registration fails: a refusal leaves
/// the machine as it was. An existing account is used only when an earlier
/// setup made it, or with `take_over_account`.
pub fn setup(
    options: &SetupOptions,
    connect: impl FnOnce(Option<&Account>) -> Result<Box<dyn Transport>, TransportError>,
    auth: &mut dyn Authenticator,
) -> Result<Enrollment, SetupError> {
    let layout = Layout::new(options.target.root(), &options.config.account);
    if options.target.changes_system() {
        preflight(&options.program, &layout.client_config(), &options.server)?;
    }
    let account = match options.target.changes_system() {
        true => {
            let manifest = Manifest::load(options.target.root()).ok().flatten();
            let made_by_setup = manifest.is_some_and(|manifest| {
                manifest.account == options.config.account && (manifest.account_created || manifest.account_taken_over)
            });
            let name = &options.config.account;
            Some(system::prepare_account(name, &layout.home(), made_by_setup, options.take_over_account)?)
        }
        false => None,
    };
    let result = connect(account.as_ref().map(|(account, _)| account))
        .map_err(SetupError::from)
        .and_then(|transport| enroll(options, transport.as_ref(), auth, account.as_ref()));
    if let (Err(_), Some((account, AccountOrigin::Created))) = (&result, &account) {
        let registered = Manifest::load(options.target.root()).ok().flatten().is_some();
        if !registered {
            let _ = system::remove_account(&account.name);
        }
    }
    result
}

/// What a real installation needs, checked before anything changes: the
/// system tools it runs, a program that only root can replace, since the
/// backup key (and through sudo, root) will run it, and a client
/// configuration (kept when it exists) that only root can change, since
/// the sudo rule lets rsyncsend as root trust its `allowed-paths` and
/// `allow-restore`.
fn preflight(program: &str, config: &std::path::Path, server: &str) -> Result<(), SetupError> {
    // ssh:// runs the system's ssh; https:// speaks for itself.
    let over_ssh = matches!(crate::transport::ServerUrl::parse(server), Ok(crate::transport::ServerUrl::Ssh { .. }));
    let tools = ["/usr/sbin/useradd", "/usr/sbin/usermod", "/usr/sbin/visudo", "/usr/bin/sudo", "/usr/bin/setpriv"];
    for tool in tools.into_iter().chain(over_ssh.then_some(crate::transport::SSH)) {
        if !std::path::Path::new(tool).is_file() {
            return Err(SetupError::NotReady(format!("{tool} is missing: install it first (nothing was changed)")));
        }
    }
    let program = std::path::Path::new(program);
    let not_ready =
        |path: &std::path::Path, e: std::io::Error| SetupError::NotReady(format!("{}: {e}", path.display()));
    if !program.exists() {
        return Err(not_ready(program, std::io::ErrorKind::NotFound.into()));
    }
    if let Some(path) = changeable_by_others(program, 0).map_err(|e| not_ready(program, e))?.first() {
        return Err(SetupError::NotReady(format!(
            "{} can be changed by someone other than root, and the backup key would run {}: \
             install bpc-enroll in a root-owned folder such as /usr/local/bin first (nothing was changed)",
            path.display(),
            program.display()
        )));
    }
    if let Some(path) = changeable_by_others(config, 0).map_err(|e| not_ready(config, e))?.first() {
        return Err(SetupError::NotReady(format!(
            "{} can be changed by someone other than root (it must be root's and writable by root alone), \
             and rsyncsend as root would trust {} for what backups may read and restores may write: \
             make it root's and not writable by group or others (chown root: / chmod go-w), or remove it, \
             then run setup again (nothing was changed)",
            path.display(),
            config.display()
        )));
    }
    Ok(())
}

/// Registers the machine through `transport` and installs the backup key;
/// `account` is the system account when changing the system, with how
/// setup came to use it.
pub fn enroll(
    options: &SetupOptions,
    transport: &dyn Transport,
    auth: &mut dyn Authenticator,
    account: Option<&(Account, AccountOrigin)>,
) -> Result<Enrollment, SetupError> {
    let own = crate::hostkeys::own_host_keys(&options.config).map_err(|e| SetupError::NotReady(e.to_string()))?;
    let key_lines: Vec<String> = own.keys.iter().map(protocol::hostkeys::HostKey::render).collect();
    let request = ClientRequest::Register(Request {
        protocol: 2,
        host_keys: u32::try_from(key_lines.len()).unwrap_or(0),
        ..Request::new(options.os.clone(), options.logon.clone())
    });
    let raw = transport.exchange(&request, &key_lines, auth)?;
    let answer_text = String::from_utf8_lossy(&raw).into_owned();
    let success = match parse_answer(&raw) {
        Answer::Success(success) => success,
        Answer::Error(text) if text.trim().is_empty() => return Err(SetupError::Refused("(empty answer)".into())),
        Answer::Error(text) => return Err(SetupError::Refused(printable(&text))),
    };
    let key_text = success.get("key").ok_or_else(|| SetupError::BadAnswer("it has no key: line".into()))?;
    let key = ssh_key::PublicKey::from_openssh(key_text)
        .map_err(|error| SetupError::BadAnswer(format!("key: is not an OpenSSH public key ({error})")))?;
    check_backup_key(&key).map_err(SetupError::BadAnswer)?;
    if let Some(account) = success.get("account")
        && account != options.config.account
    {
        return Err(SetupError::BadAnswer(format!(
            "the server's BackupPC logs in as `{}`, but this machine's backup account is `{}`: \
             backups could never log in. Set `account = \"{}\"` in client.toml, or ask the backup \
             administrator to change `[backuppc] account`",
            printable(account),
            options.config.account,
            printable(account)
        )));
    }
    let url = success.get("url").ok_or_else(|| SetupError::BadAnswer("it has no url: line".into()))?;
    if !is_web_url(url) {
        return Err(SetupError::BadAnswer(format!("url: is not an http(s) URL: {}", printable(url))));
    }
    let from = match success.get("from").map(protocol::AddressList::parse) {
        Some(Ok(from)) => Some(from.to_string()),
        Some(Err(_)) => {
            let from = success.get("from").unwrap_or_default();
            return Err(SetupError::BadAnswer(format!("from: is not a list of addresses: {}", printable(from))));
        }
        None => {
            let reached: Vec<String> = transport.reached_addresses().iter().map(|ip| ip.to_string()).collect();
            (!reached.is_empty()).then(|| reached.join(","))
        }
    };
    let installed = Installed { options, layout: Layout::new(options.target.root(), &options.config.account), account };
    let previous = Manifest::load(options.target.root()).map_err(|e| {
        installed.error("the manifest", &Manifest::path(options.target.root()), std::io::Error::other(e))
    })?;
    let mut manifest = previous.clone().unwrap_or_default();
    manifest.account = options.config.account.clone();
    manifest.account_created |= account.is_some_and(|(_, origin)| *origin == AccountOrigin::Created);
    manifest.account_taken_over |= account.is_some_and(|(_, origin)| *origin == AccountOrigin::TakeOver);
    let mut taken_over = Vec::new();
    // The manifest is the undo log: each addition is recorded in it before
    // it is made, so a failure takes back exactly this run's additions, and
    // a crash leaves nothing that `uninstall` does not know of.
    let outcome = installed.install(&mut manifest, &key, from.as_deref(), &mut taken_over).and_then(|written| {
        manifest.server = options.server.clone();
        // `host:` is shown to the person: only a valid host name is kept.
        manifest.host =
            success.get("host").and_then(|host| protocol::HostName::parse(host).ok()).map(|h| h.to_string());
        manifest.url = url.to_owned();
        installed.record(&manifest)?;
        Ok(written)
    });
    let written = match outcome {
        Ok(written) => written,
        Err(error) => {
            installed.undo(&manifest, previous.as_ref());
            return Err(error);
        }
    };
    Ok(Enrollment {
        request: request.render(),
        answer: answer_text,
        url: url.to_owned(),
        host: manifest.host.clone(),
        written,
        taken_over,
        host_keys: own.keys.iter().map(protocol::hostkeys::HostKey::fingerprint).collect(),
        host_keys_note: own.note,
    })
}

/// The shortest RSA modulus accepted for the backup key, in bits: shorter
/// ones are breakable, and OpenSSH itself refuses RSA keys under 1024 bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Whether the client's sshd can accept `key` for unattended backups:
/// Ed25519, ECDSA on the NIST curves, or RSA of at least
/// [`MIN_RSA_BITS`]. DSA is disabled in OpenSSH, security-key (`sk-`)
/// types need a touch on every login, and unknown algorithms would never
/// log in: taking any of them would report a success that backs nothing up.
fn check_backup_key(key: &ssh_key::PublicKey) -> Result<(), String> {
    use ssh_key::Algorithm;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(()),
        Algorithm::Rsa { .. } => {
            let bits = key.key_data().rsa().and_then(|rsa| rsa.n.as_positive_bytes()).map_or(0, |n| {
                let leading = n.iter().take_while(|byte| **byte == 0).count();
                let first = n.get(leading).map_or(0, |byte| 8 - byte.leading_zeros() as usize);
                (n.len() - leading).saturating_sub(1) * 8 + first
            });
            if bits < MIN_RSA_BITS {
                return Err(format!("key: is an RSA key of {bits} bits; at least {MIN_RSA_BITS} are needed"));
            }
            Ok(())
        }
        other => Err(format!(
            "key: is of type {}, which this machine's sshd would not accept for unattended backups \
             (ed25519, ecdsa-sha2-nistp256/384/521 or rsa of at least {MIN_RSA_BITS} bits are)",
            printable(other.as_str())
        )),
    }
}

/// One installation in progress.
struct Installed<'a> {
    options: &'a SetupOptions,
    layout: Layout,
    /// The system account, when changing the system: its group gets read
    /// access, and what is done to it depends on how setup came to use it.
    account: Option<&'a (Account, AccountOrigin)>,
}

impl Installed<'_> {
    fn error(&self, what: &'static str, path: &std::path::Path, source: std::io::Error) -> SetupError {
        SetupError::Install { path: path.to_owned(), what, source }
    }

    /// Creates `dir` and its missing parents, recorded before they are made.
    fn dirs(
        &self,
        manifest: &mut Manifest,
        dir: &std::path::Path,
        mode: u32,
        group: Option<u32>,
    ) -> Result<(), SetupError> {
        let missing = missing_dirs(dir);
        if !missing.is_empty() {
            manifest.created_dirs(missing);
            self.record(manifest)?;
        }
        create_dirs(dir, mode, group).map_err(|e| self.error("a folder", dir, e))?;
        Ok(())
    }

    /// Records a file about to be created.
    fn will_create(&self, manifest: &mut Manifest, path: &std::path::Path) -> Result<(), SetupError> {
        if !path.exists() && !manifest.created_files.iter().any(|file| file == path) {
            manifest.created_file(path.to_owned());
            self.record(manifest)?;
        }
        Ok(())
    }

    /// The key, the client config and (when changing the system) the
    /// account's password and its sudo rule, the rule last: it is worth root,
    /// so it comes once nothing but the backup key can act as the account.
    fn install(
        &self,
        manifest: &mut Manifest,
        key: &ssh_key::PublicKey,
        from: Option<&str>,
        taken_over: &mut Vec<String>,
    ) -> Result<Vec<(PathBuf, &'static str)>, SetupError> {
        let mut written = Vec::new();
        // The manifest's own folder first (recorded once it exists): every
        // later step is recorded there before it is made.
        if let Some(dir) = Manifest::path(self.options.target.root()).parent() {
            let created = create_dirs(dir, 0o755, None).map_err(|e| self.error("a folder", dir, e))?;
            manifest.created_dirs(created);
            self.record(manifest)?;
        }
        let keys_path = self.layout.authorized_keys();
        let ssh_dir = self.layout.home().join(".ssh");
        let group = self.account.map(|(account, _)| account.gid);
        // The account reads its keys through its group and cannot change them;
        // in a trial install the files are simply private.
        let (dir_mode, key_mode) = if group.is_some() { (0o750, 0o640) } else { (0o700, 0o600) };
        self.dirs(manifest, &self.layout.home(), 0o750, group)?;
        self.dirs(manifest, &ssh_dir, dir_mode, group)?;
        let config_path = self.layout.client_config();
        let command = format!("{} rsyncsend --config {}", self.options.program, config_path.display());
        if let Some((account, origin)) = self.account {
            // Home first: once it is root's, the account can no longer swap
            // `.ssh` for a link while the rest is made root's.
            for dir in [self.layout.home(), ssh_dir.clone()] {
                if secure_dir(&dir, dir_mode, account.gid).map_err(|e| self.error("a folder", &dir, e))? {
                    written.push((dir, "a folder of the backup account, now root's (the account may only read it)"));
                }
            }
            if *origin == AccountOrigin::TakeOver {
                for file in [keys_path.clone(), ssh_dir.join("authorized_keys2")] {
                    let removed = take_over_keys_file(&file, &command, key_mode, account.gid)
                        .map_err(|e| self.error("the account's keys", &file, e))?;
                    let name = file.display();
                    taken_over.extend(removed.into_iter().map(|key| format!("removed from {name}: {key}")));
                }
            }
        }
        let key_error = |e| self.error("the backup key", &keys_path, e);
        let line = authorized_keys_line(key, &command, from).map_err(key_error)?;
        if keys_path.exists() {
            let added = AddedKey { file: keys_path.clone(), key: key_blob(key).map_err(key_error)? };
            if !manifest.created_files.contains(&keys_path) && !manifest.added_keys.contains(&added) {
                manifest.added_keys.push(added);
                self.record(manifest)?;
            }
        } else {
            self.will_create(manifest, &keys_path)?;
        }
        if install_authorized_key(&keys_path, key, &line, key_mode, group).map_err(key_error)? {
            written.push((keys_path.clone(), "the backup server's key, bound to rsyncsend"));
        }

        if let Some(dir) = config_path.parent() {
            self.dirs(manifest, dir, 0o755, None)?;
        }
        let config = ClientConfig { server: Some(self.options.server.clone()), ..self.options.config.clone() };
        let config_error = |e| self.error("the client config", &config_path, e);
        self.will_create(manifest, &config_path)?;
        if install_client_config(&config_path, &config.to_toml()).map_err(config_error)? {
            written.push((config_path, "the client configuration"));
        }
        if let Some((account, origin)) = self.account {
            if system::disable_password(&account.name)? {
                taken_over.push(format!("disabled the password of {} (keys only from now on)", account.name));
            }
            if system::set_shell(&account.name)? {
                taken_over.push(format!(
                    "set the shell of {} to {} (it reads no start-up file for the forced command)",
                    account.name,
                    system::ACCOUNT_SHELL
                ));
            }
            // What the account could have put in its home before it became
            // root's must not be there to run as it once the rule is in.
            system::check_home(account, &self.layout.home(), "The sudo rule was not installed")?;
            // Nothing can log in as the account any more; what was started
            // before must not be there to use the rule.
            if *origin == AccountOrigin::TakeOver
                && let Some(what) = system::running_as(account)?
            {
                return Err(SystemError::StillRunning { account: account.name.clone(), what }.into());
            }
        }
        if self.options.target.changes_system() {
            self.will_create(manifest, &system::sudoers_path(&self.options.config.account))?;
            let path = system::install_sudoers(
                &self.options.config.account,
                &self.options.program,
                &self.layout.client_config(),
            )?;
            written.push((path, "the backup account's sudo rule (rsyncsend as root only)"));
        }
        Ok(written)
    }

    /// Writes the manifest as it stands (atomically: a crash leaves the
    /// previous record or this one, never half of one).
    fn record(&self, manifest: &Manifest) -> Result<(), SetupError> {
        let path = Manifest::path(self.options.target.root());
        let text = manifest.to_toml().map_err(|e| self.error("the manifest", &path, std::io::Error::other(e)))?;
        files::write_atomic(&path, text.as_bytes(), 0o644).map_err(|e| self.error("the manifest", &path, e))
    }

    /// Takes back what this run added (`manifest` less `previous`), and puts
    /// the previous manifest back, or none. Best effort: the run has failed
    /// already, and what cannot be removed stays listed for `uninstall`.
    fn undo(&self, manifest: &Manifest, previous: Option<&Manifest>) {
        let added = manifest.added_since(previous);
        if crate::manage::remove_keys_and_files(&added).is_err() {
            return;
        }
        let restored = match previous {
            Some(previous) => self.record(previous).is_ok(),
            None => {
                let path = Manifest::path(self.options.target.root());
                std::fs::remove_file(&path).is_ok() || !path.exists()
            }
        };
        if restored {
            let _ = crate::manage::remove_empty_dirs(&added);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::NoCredentials;

    struct Canned(&'static str);
    impl Transport for Canned {
        fn exchange(
            &self,
            _: &ClientRequest,
            _: &[String],
            _: &mut dyn Authenticator,
        ) -> Result<Vec<u8>, TransportError> {
            Ok(self.0.as_bytes().to_vec())
        }
    }

    fn options(root: &std::path::Path) -> SetupOptions {
        SetupOptions {
            server: "file:///srv/server.toml".into(),
            logon: Logon::parse("alice").unwrap(),
            os: OsName::parse("linux").unwrap(),
            target: Target::Trial(root.to_owned()),
            config: ClientConfig::default(),
            program: "/usr/bin/bpc-enroll".into(),
            take_over_account: false,
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

    /// Every file and folder under `root`, with the bytes of each file.
    fn tree(root: &std::path::Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path.clone());
                    found.push((path, None));
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    found.push((path, Some(bytes)));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_late_step_that_fails_takes_back_this_runs_additions() {
        let answer: &'static str = Box::leak(format!("success\nurl: http://b/?host=pc\nkey: {KEY}\n").into_boxed_str());
        // The client config's folder cannot be made: a file stands in its way.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/bpc-enroll"), "in the way\n").unwrap();
        let before = tree(dir.path());
        let error = enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap_err();
        assert!(matches!(error, SetupError::Install { .. }), "{error}");
        assert_eq!(tree(dir.path()), before, "the failed run left something behind");

        // The same with keys the account had already: they stay as they were.
        let keys = dir.path().join("var/lib/bckpciuem/.ssh/authorized_keys");
        std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
        std::fs::write(
            &keys,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA0000000000000000000000000000000000000000000 theirs\n",
        )
        .unwrap();
        let before = tree(dir.path());
        enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap_err();
        assert_eq!(tree(dir.path()), before, "the failed run left something behind");

        // Once the way is clear the run succeeds; a later run that fails
        // keeps what the first one installed, and its manifest as it was.
        std::fs::remove_file(dir.path().join("etc/bpc-enroll")).unwrap();
        enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap();
        let manifest = Manifest::load(dir.path()).unwrap().unwrap();
        assert_eq!(manifest.added_keys.len(), 1);
        assert!(manifest.created_files.iter().any(|f| f.ends_with("etc/bpc-enroll/client.toml")));
        let config = dir.path().join("etc/bpc-enroll/client.toml");
        std::fs::rename(&config, dir.path().join("kept.toml")).unwrap();
        std::fs::create_dir(&config).unwrap();
        std::fs::write(config.join("in-the-way"), "").unwrap();
        std::fs::rename(&keys, dir.path().join("kept_keys")).unwrap();
        std::fs::create_dir(&keys).unwrap();
        let before = tree(dir.path());
        let error = enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap_err();
        assert!(matches!(error, SetupError::Install { .. }), "{error}");
        assert_eq!(tree(dir.path()), before, "the failed run changed what an earlier one installed");
    }

    #[test]
    fn an_answer_for_another_backup_account_is_refused_and_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let answer: &'static str =
            Box::leak(format!("success\nurl: http://b/\naccount: backup\nkey: {KEY}\n").into_boxed_str());
        let error = enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap_err();
        assert!(matches!(error, SetupError::BadAnswer(_)), "{error}");
        assert!(error.to_string().contains("`backup`") && error.to_string().contains("`bckpciuem`"), "{error}");
        assert_eq!(error.exit_code(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let same: &'static str =
            Box::leak(format!("success\nurl: http://b/\naccount: bckpciuem\nkey: {KEY}\n").into_boxed_str());
        enroll(&options(dir.path()), &Canned(same), &mut NoCredentials, None).unwrap();
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

    #[test]
    fn only_keys_the_clients_sshd_accepts_for_unattended_logins_are_installed() {
        for line in include_str!("../testdata/backup-keys.txt").lines().filter(|l| !l.starts_with('#')) {
            let (verdict, key) = line.split_once(' ').unwrap();
            let dir = tempfile::tempdir().unwrap();
            let answer: &'static str = Box::leak(format!("success\nurl: http://b/\nkey: {key}\n").into_boxed_str());
            let result = enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None);
            match verdict {
                "accept" => assert!(result.is_ok(), "{key}: {:?}", result.err()),
                _ => {
                    let error = result.unwrap_err();
                    assert!(matches!(error, SetupError::BadAnswer(_)), "{key}: {error}");
                    assert_eq!(error.exit_code(), 1);
                    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{key} installed something");
                }
            }
        }
    }

    #[test]
    fn a_short_rsa_key_is_refused_with_its_size() {
        let short =
            include_str!("../testdata/backup-keys.txt").lines().find(|l| l.starts_with("refuse ssh-rsa")).unwrap();
        let key = ssh_key::PublicKey::from_openssh(short.trim_start_matches("refuse ")).unwrap();
        assert_eq!(check_backup_key(&key).unwrap_err(), "key: is an RSA key of 1024 bits; at least 2048 are needed");
    }

    #[test]
    fn bidirectional_controls_from_the_server_are_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let refusal =
            "1.2.3.4 5 6.7.8.9 22 bad user request \u{202E}txt.exe\u{202C} \u{2066}a\u{2069}\u{200E}\u{200F}\u{061C}\n";
        let error = enroll(&options(dir.path()), &Canned(refusal), &mut NoCredentials, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the server refused the registration:\n1.2.3.4 5 6.7.8.9 22 bad user request ?txt.exe? ?a????"
        );
        for c in ['\u{202A}', '\u{202B}', '\u{202D}', '\u{2067}', '\u{2068}'] {
            assert_eq!(printable(&format!("a{c}b")), "a?b");
        }
        assert_eq!(printable("é ü 中文 עברית\tok\n"), "é ü 中文 עברית\tok\n");
        let answer = "success\nurl: http://b/?host=\u{202E}gro.elpmaxe\nkey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n";
        let error = enroll(&options(dir.path()), &Canned(answer), &mut NoCredentials, None).unwrap_err();
        assert!(matches!(error, SetupError::BadAnswer(_)), "{error}");
        assert!(!error.to_string().contains('\u{202E}'), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
