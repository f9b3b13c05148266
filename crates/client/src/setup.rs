//! `bpc-enroll setup`: register this machine and install the server's key.

use crate::config::ClientConfig;
use crate::install::{Layout, authorized_keys_line, install_authorized_key, install_client_config};
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
    /// The command the backup server's key is bound to.
    pub rsyncsend_command: String,
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
            SetupError::Transport(_) => 2,
            SetupError::Refused(_) | SetupError::BadAnswer(_) | SetupError::Install { .. } => 1,
        }
    }
}

/// Registers the machine through `transport` and installs the backup key.
pub fn enroll(options: &SetupOptions, transport: &dyn Transport) -> Result<Enrollment, SetupError> {
    let request = Request::new(options.os.clone(), options.logon.clone());
    let raw = transport.exchange(&request)?;
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
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SetupError::BadAnswer(format!("url: is not an http(s) URL: {}", printable(url))));
    }
    let from = success.get("from");
    if let Some(from) = from {
        let ok = !from.is_empty() && from.chars().all(|c| c.is_ascii_alphanumeric() || ".:-/*?!_,".contains(c));
        if !ok {
            return Err(SetupError::BadAnswer(format!("from: is not a list of addresses: {}", printable(from))));
        }
    }

    let layout = Layout::new(&options.root, &options.config.account);
    let mut written = Vec::new();
    let keys_path = layout.authorized_keys();
    let line =
        authorized_keys_line(&key, &options.rsyncsend_command, from).map_err(install("the backup key", &keys_path))?;
    if install_authorized_key(&keys_path, &key, &line).map_err(install("the backup key", &keys_path))? {
        written.push((keys_path, "the backup server's key, bound to rsyncsend"));
    }
    let config_path = layout.client_config();
    let config = ClientConfig { server: Some(options.server.clone()), ..options.config.clone() };
    if install_client_config(&config_path, &config.to_toml()).map_err(install("the client config", &config_path))? {
        written.push((config_path, "the client configuration"));
    }
    Ok(Enrollment {
        request: request.render(),
        answer: answer_text,
        url: url.to_owned(),
        host: success.get("host").map(str::to_owned),
        written,
    })
}

fn install<'a>(what: &'static str, path: &'a std::path::Path) -> impl Fn(std::io::Error) -> SetupError + 'a {
    move |source| SetupError::Install { path: path.to_owned(), what, source }
}

/// Server text made safe for a terminal: no escape sequences, lines kept.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Canned(&'static str);
    impl Transport for Canned {
        fn exchange(&self, _: &Request) -> Result<Vec<u8>, TransportError> {
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
            rsyncsend_command: "/usr/bin/bpc-enroll rsyncsend".into(),
        }
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl backuppc";

    #[test]
    fn a_refusal_is_shown_as_is_and_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let error =
            enroll(&options(dir.path()), &Canned("1.2.3.4 5 6.7.8.9 22 bad user request\n\x1b[31mred\n")).unwrap_err();
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
        let enrollment = enroll(&options(dir.path()), &Canned(answer)).unwrap();
        assert_eq!(enrollment.url, "http://b/?host=pc");
        assert_eq!(enrollment.written.len(), 2);
        let keys = std::fs::read_to_string(dir.path().join("var/lib/bckpciuem/.ssh/authorized_keys")).unwrap();
        assert_eq!(keys, format!("restrict,command=\"/usr/bin/bpc-enroll rsyncsend\" {KEY}\n"));
    }

    #[test]
    fn a_success_without_a_valid_key_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for answer in ["success\nurl: http://b/\n", "success\nurl: http://b/\nkey: ssh-ed25519 nonsense\n"] {
            let error = enroll(&options(dir.path()), &Canned(answer)).unwrap_err();
            assert!(matches!(error, SetupError::BadAnswer(_)), "{error}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
