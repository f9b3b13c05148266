//! `bpc-enroll uninstall` and `bpc-enroll status`.

use crate::config::ClientConfig;
use crate::credentials::{Authenticator, CredentialError};
use crate::install::{Layout, Target, without_key};
use crate::manifest::Manifest;
use crate::system::{self, Account};
use crate::transport::{Transport, TransportError};
use protocol::text::printable;
use protocol::{Answer, ClientRequest, HostInfo, InfoRequest, LastBackup, Refusal, parse_answer};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why uninstall could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The manifest cannot be read.
    #[error(transparent)]
    Manifest(#[from] files::TomlError),
    /// Something could not be removed.
    #[error("{path}: cannot remove: {source}")]
    Remove {
        /// The file or folder.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The account could not be removed.
    #[error(transparent)]
    System(#[from] system::SystemError),
}

/// What uninstall removed; `None` when setup never ran under this root.
pub fn uninstall(target: &Target) -> Result<Option<Vec<PathBuf>>, ManageError> {
    let root = target.root();
    let Some(manifest) = Manifest::load(root)? else { return Ok(None) };
    let mut removed = remove_keys_and_files(&manifest)?;
    let manifest_path = Manifest::path(root);
    remove_one(&manifest_path, fs::remove_file(&manifest_path), &mut removed)?;
    removed.extend(remove_empty_dirs(&manifest)?);
    if target.changes_system() && manifest.account_created && system::find_account(&manifest.account)?.is_some() {
        system::remove_account(&manifest.account)?;
        removed.push(PathBuf::from(format!("account {}", manifest.account)));
    }
    Ok(Some(removed))
}

/// Takes the keys `listed` records out of the files they were added to
/// (keeping each file's mode and owner) and removes the files it records.
pub(crate) fn remove_keys_and_files(listed: &Manifest) -> Result<Vec<PathBuf>, ManageError> {
    use std::os::unix::fs::PermissionsExt;
    let mut removed = Vec::new();
    for added in &listed.added_keys {
        let Ok(text) = fs::read_to_string(&added.file) else { continue };
        let kept = without_key(&text, &added.key);
        if kept != text {
            let mode = fs::metadata(&added.file).map_or(0o600, |meta| meta.permissions().mode() & 0o7777);
            files::write_atomic(&added.file, kept.as_bytes(), mode)
                .map_err(|source| ManageError::Remove { path: added.file.clone(), source })?;
            removed.push(added.file.clone());
        }
    }
    for file in listed.created_files.iter().rev() {
        remove_one(file, fs::remove_file(file), &mut removed)?;
    }
    Ok(removed)
}

/// Removes the folders `listed` records, deepest first; one that holds
/// something setup did not put there stays, since it is not setup's to remove.
pub(crate) fn remove_empty_dirs(listed: &Manifest) -> Result<Vec<PathBuf>, ManageError> {
    let mut removed = Vec::new();
    for dir in listed.created_dirs.iter().rev() {
        if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none()) {
            remove_one(dir, fs::remove_dir(dir), &mut removed)?;
        }
    }
    Ok(removed)
}

fn remove_one(path: &Path, result: io::Result<()>, removed: &mut Vec<PathBuf>) -> Result<(), ManageError> {
    match result {
        Ok(()) => {
            removed.push(path.to_owned());
            Ok(())
        }
        // Gone already, or under something that is not a folder: not there.
        Err(error) if matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(()),
        Err(source) => Err(ManageError::Remove { path: path.to_owned(), source }),
    }
}

/// How a line of `status` came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// As setup left it, or as the server should know it.
    Ok,
    /// Missing or wrong: setup should run again, or the server be asked why.
    Missing,
    /// Not known: the server does not say.
    Unknown,
}

impl CheckState {
    /// The word `status` prints for it.
    pub fn word(self) -> &'static str {
        match self {
            CheckState::Ok => "ok",
            CheckState::Missing => "MISSING",
            CheckState::Unknown => "unknown",
        }
    }
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// How it came out.
    pub state: CheckState,
    /// What was found, safe to print.
    pub detail: String,
}

/// What `status` found, and the exit code it adds up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The lines to print, in order.
    pub checks: Vec<Check>,
    /// 0 when all is in place and the server knows this machine, 1 when
    /// something is missing or refused, 2 when the server cannot be asked
    /// as configured, 3 when it cannot be reached.
    pub exit_code: u8,
}

/// What the server said when asked what it knows of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerView {
    /// It answered the status request.
    Known(HostInfo),
    /// It answered with an error (made safe to print).
    Refused(String),
    /// It asked for a password, which a status request never needs: its
    /// realm (made safe to print); nothing was sent.
    Challenged(String),
    /// It predates status requests: it read `info:` as a registration
    /// with an empty logon and refused it.
    Predates,
}

/// Why the server's view could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The server could not be reached, or the transport not set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server said `success` but not what a status answer says.
    #[error("the server's answer to the status request cannot be used: {0}")]
    BadAnswer(#[from] protocol::InfoAnswerError),
}

impl StatusError {
    /// The exit code, as setup's for the same transport failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            StatusError::Transport(TransportError::Unreachable { .. }) => 3,
            StatusError::Transport(
                TransportError::HostKeyMismatch { .. }
                | TransportError::Certificate { .. }
                | TransportError::Http { .. },
            )
            | StatusError::BadAnswer(_) => 1,
            StatusError::Transport(_) => 2,
        }
    }
}

/// Sends a status request (`info:`) through `transport` and reads what the
/// server knows of this machine. It never sends credentials: a server that
/// asks for them is answered `cancel`, and said to have asked.
pub fn ask_server(transport: &dyn Transport) -> Result<ServerView, StatusError> {
    let mut never = NeverAnswer::default();
    let raw = transport.exchange(&ClientRequest::Info(InfoRequest { protocol: 2 }), &[], &mut never)?;
    if let Some(realm) = never.asked {
        return Ok(ServerView::Challenged(printable(&realm)));
    }
    match parse_answer(&raw) {
        Answer::Success(success) => Ok(ServerView::Known(HostInfo::from_answer(&success)?)),
        Answer::Error(text) if predates_status_requests(&text) => Ok(ServerView::Predates),
        Answer::Error(text) if text.trim().is_empty() => Ok(ServerView::Refused("(empty answer)".into())),
        Answer::Error(text) => Ok(ServerView::Refused(printable(&text))),
    }
}

/// Whether an error answer to `info:` is what a server that knows only
/// `OS:logon` says of it: `bad user request` (the empty logon), or
/// `ostype is unknown` (an older parser). A server that knows `info:` never
/// answers either to it.
fn predates_status_requests(text: &str) -> bool {
    let last = text.lines().last().unwrap_or_default().trim_end();
    [Refusal::BadUserRequest, Refusal::OstypeUnknown]
        .iter()
        .any(|refusal| last == refusal.text() || last.ends_with(&format!(" {}", refusal.text())))
}

/// The answer to every challenge of a status request: none, and a note of
/// the realm that asked.
#[derive(Debug, Default)]
struct NeverAnswer {
    asked: Option<String>,
}

impl Authenticator for NeverAnswer {
    fn credentials(&mut self, realm: &str) -> Result<Option<(String, protocol::Secret)>, CredentialError> {
        self.asked = Some(realm.to_owned());
        Ok(None)
    }
    fn rejected(&mut self, _realm: &str) {}
    fn accepted(&mut self, _realm: &str) {}
}

/// The state of the installation under the target's root, then what the
/// server knows of this machine, asked through the transport `connect`
/// builds for the server URL (the manifest's, else `server` in
/// client.toml) and the backup account, when there is one to run ssh as.
pub fn status(
    target: &Target,
    config: &ClientConfig,
    connect: impl FnOnce(&str, Option<&Account>) -> Result<Box<dyn Transport>, TransportError>,
) -> StatusReport {
    let (root, system) = (target.root(), target.changes_system());
    let mut checks = Vec::new();
    let mut check =
        |what: &str, state: CheckState, detail: String| checks.push(Check { what: what.into(), state, detail });
    let ok = |found: bool| if found { CheckState::Ok } else { CheckState::Missing };
    let manifest = Manifest::load(root);
    let manifest = match manifest {
        Ok(Some(manifest)) => {
            let host = manifest.host.as_deref().unwrap_or("?");
            check("registration", CheckState::Ok, format!("{host} at {} ({})", manifest.server, manifest.url));
            Some(manifest)
        }
        Ok(None) => {
            check("registration", CheckState::Missing, "setup has not run here".into());
            None
        }
        Err(error) => {
            check("registration", CheckState::Missing, error.to_string());
            None
        }
    };
    let account = manifest.as_ref().map_or(config.account.as_str(), |m| m.account.as_str());
    let layout = Layout::new(root, account);
    let mut run_as = None;
    if system {
        match system::find_account(account) {
            Ok(Some(found)) => {
                let detail = format!("{account} (uid {}, home {})", found.uid, found.home.display());
                check("account", CheckState::Ok, detail);
                run_as = nix::unistd::geteuid().is_root().then_some(found);
            }
            Ok(None) => check("account", CheckState::Missing, format!("{account} does not exist")),
            Err(error) => check("account", CheckState::Missing, error.to_string()),
        }
        let sudoers = system::sudoers_path(account);
        check("sudo rule", ok(sudoers.exists()), sudoers.display().to_string());
    }
    let keys = fs::read_to_string(layout.authorized_keys()).unwrap_or_default();
    let bound = keys.lines().filter(|line| line.contains(" rsyncsend")).count();
    check(
        "backup key",
        ok(bound > 0),
        format!("{} key(s) bound to rsyncsend in {}", bound, layout.authorized_keys().display()),
    );
    let local_complete = checks.iter().all(|check| check.state == CheckState::Ok);
    let Some(server) = manifest.as_ref().map(|m| m.server.clone()).or_else(|| config.server.clone()) else {
        return StatusReport { checks, exit_code: if local_complete { 0 } else { 1 } };
    };
    let view = connect(&server, run_as.as_ref()).map_err(StatusError::from).and_then(|t| ask_server(t.as_ref()));
    let registered_host = manifest.as_ref().and_then(|m| m.host.as_deref());
    let server_code = server_checks(&server, registered_host, view, &mut checks);
    StatusReport { checks, exit_code: if local_complete { server_code } else { 1 } }
}

/// The lines of what the server said, and the exit code it deserves.
fn server_checks(
    server: &str,
    registered_host: Option<&str>,
    view: Result<ServerView, StatusError>,
    checks: &mut Vec<Check>,
) -> u8 {
    let mut check =
        |what: &str, state: CheckState, detail: String| checks.push(Check { what: what.into(), state, detail });
    let info = match view {
        Err(error) => {
            check("server", CheckState::Missing, error.to_string());
            return error.exit_code();
        }
        Ok(ServerView::Predates) => {
            let detail = format!(
                "{server} answers, but this server does not answer status requests \
                 (its bpc-register predates them): what it knows of this machine cannot be shown"
            );
            check("server", CheckState::Unknown, detail);
            return 0;
        }
        Ok(ServerView::Challenged(realm)) => {
            let detail = format!(
                "{server} asked for a password ({realm}) to answer a status request, which needs none; \
                 nothing was sent"
            );
            check("server", CheckState::Missing, detail);
            return 1;
        }
        Ok(ServerView::Refused(text)) => {
            check("server", CheckState::Ok, format!("{server} answers"));
            check("registered", CheckState::Missing, format!("the server refused to say:\n{text}"));
            return 1;
        }
        Ok(ServerView::Known(info)) => info,
    };
    check("server", CheckState::Ok, format!("{server} answers"));
    let mut code = 0;
    if let Some(registered) = registered_host.filter(|registered| *registered != info.host.as_str()) {
        let detail = format!(
            "the server names this machine {} now, but setup registered {registered}: \
             its address or name changed; run setup again here",
            info.host
        );
        check("host", CheckState::Missing, detail);
        code = 1;
    }
    let Some(registration) = &info.registered else {
        let detail = format!("{} is not in the server's list of hosts: run setup again", info.host);
        check("registered", CheckState::Missing, detail);
        return 1;
    };
    check("registered", CheckState::Ok, format!("{}, in the server's list of hosts", info.host));
    match &registration.owner {
        Some(owner) => check("owner", CheckState::Ok, printable(owner)),
        None => check("owner", CheckState::Unknown, "the server does not say".into()),
    }
    if let Some(url) = &registration.url {
        check("page", CheckState::Ok, url.clone());
    }
    match &registration.last_backup {
        Some(LastBackup::Started(time)) => check("last backup", CheckState::Ok, format!("started {time}")),
        Some(LastBackup::None) => check("last backup", CheckState::Ok, "none yet".into()),
        None => check("last backup", CheckState::Unknown, "the server does not say".into()),
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::AddedKey;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A server that answers `answer` (after asking for a password, when
    /// `challenge` is set) and keeps the requests it received.
    struct Canned {
        answer: Result<&'static str, fn() -> TransportError>,
        challenge: bool,
        received: RefCell<Vec<String>>,
    }

    impl Canned {
        fn new(answer: &'static str) -> Canned {
            Canned { answer: Ok(answer), challenge: false, received: RefCell::default() }
        }
    }

    impl Transport for Rc<Canned> {
        fn exchange(
            &self,
            request: &ClientRequest,
            _host_keys: &[String],
            auth: &mut dyn Authenticator,
        ) -> Result<Vec<u8>, TransportError> {
            self.received.borrow_mut().push(request.render());
            if self.challenge {
                assert!(auth.credentials("<ssh://b:22> Example").unwrap().is_none(), "credentials were offered");
            }
            self.answer.map(|text| text.as_bytes().to_vec()).map_err(|error| error())
        }
    }

    const ALICE: &str = "success\nhost: pc-alice.example.org\nregistered: yes\nowner: alice\n\
                         url: http://b/?host=pc-alice.example.org\nlast-backup: 2026-12-02T18:36:44Z\n";

    /// `status` of a trial installation of `pc-alice.example.org` against `server`.
    fn status_with(server: Canned) -> StatusReport {
        let server = Rc::new(server);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let manifest = Manifest {
            account: "bckpciuem".into(),
            server: "ssh://backup.example.org".into(),
            host: Some("pc-alice.example.org".into()),
            url: "http://b/?host=pc-alice.example.org".into(),
            ..Manifest::default()
        };
        fs::create_dir_all(Manifest::path(root).parent().unwrap()).unwrap();
        fs::write(Manifest::path(root), manifest.to_toml().unwrap()).unwrap();
        let keys = Layout::new(root, "bckpciuem").authorized_keys();
        fs::create_dir_all(keys.parent().unwrap()).unwrap();
        fs::write(&keys, "restrict,command=\"/usr/bin/bpc-enroll rsyncsend\" ssh-ed25519 AAAA x\n").unwrap();
        let report = status(&Target::Trial(root.to_owned()), &ClientConfig::default(), |url, account| {
            assert_eq!((url, account.is_none()), ("ssh://backup.example.org", true));
            Ok(Box::new(server.clone()))
        });
        assert_eq!(*server.received.borrow(), ["info: proto=2"], "the request sent");
        report
    }

    /// The lines of `report` from `server` on, as `status` prints them.
    fn server_lines(report: &StatusReport) -> Vec<String> {
        let from = report.checks.iter().position(|check| check.what == "server").unwrap();
        let lines = report.checks.iter().skip(from);
        lines.map(|check| format!("{} {} {}", check.what, check.state.word(), check.detail)).collect()
    }

    #[test]
    fn status_says_whom_the_server_has_this_machine_registered_to() {
        let report = status_with(Canned::new(ALICE));
        assert_eq!(
            server_lines(&report),
            [
                "server ok ssh://backup.example.org answers",
                "registered ok pc-alice.example.org, in the server's list of hosts",
                "owner ok alice",
                "page ok http://b/?host=pc-alice.example.org",
                "last backup ok started 2026-12-02T18:36:44Z",
            ]
        );
        assert_eq!(report.exit_code, 0);

        let report =
            status_with(Canned::new("success\nhost: pc-alice.example.org\nregistered: yes\nlast-backup: none\n"));
        assert_eq!(
            server_lines(&report)[1..],
            [
                "registered ok pc-alice.example.org, in the server's list of hosts",
                "owner unknown the server does not say",
                "last backup ok none yet"
            ]
        );
        assert_eq!(report.exit_code, 0);

        let report = status_with(Canned::new("success\nhost: pc-alice.example.org\nregistered: yes\nowner: alice\n"));
        assert_eq!(server_lines(&report).last().unwrap(), "last backup unknown the server does not say");
        assert_eq!(report.exit_code, 0);
    }

    #[test]
    fn a_machine_the_server_does_not_have_is_missing() {
        let report = status_with(Canned::new("success\nhost: pc-alice.example.org\nregistered: no\n"));
        assert_eq!(
            server_lines(&report)[1..],
            ["registered MISSING pc-alice.example.org is not in the server's list of hosts: run setup again"]
        );
        assert_eq!(report.exit_code, 1);

        let report = status_with(Canned::new("success\nhost: laptop.example.org\nregistered: no\n"));
        assert_eq!(
            server_lines(&report)[1..],
            [
                "host MISSING the server names this machine laptop.example.org now, but setup registered \
                 pc-alice.example.org: its address or name changed; run setup again here",
                "registered MISSING laptop.example.org is not in the server's list of hosts: run setup again",
            ]
        );
        assert_eq!(report.exit_code, 1);
    }

    #[test]
    fn an_old_servers_refusal_says_it_does_not_answer_status_requests() {
        for answer in
            ["192.0.2.7 50000 192.0.2.1 22 bad user request\n", "192.0.2.7 50000 192.0.2.1 22 ostype is unknown\n"]
        {
            let report = status_with(Canned::new(answer));
            assert_eq!(
                server_lines(&report),
                ["server unknown ssh://backup.example.org answers, but this server does not answer status requests \
                  (its bpc-register predates them): what it knows of this machine cannot be shown"]
            );
            assert_eq!(report.exit_code, 0, "{answer}");
        }
    }

    #[test]
    fn a_refusal_is_shown_as_the_server_wrote_it() {
        let report = status_with(Canned::new("192.0.2.7 50000 192.0.2.1 22 invalid DNS name for this IP\n\x1b[2J"));
        assert_eq!(
            server_lines(&report)[1..],
            [
                "registered MISSING the server refused to say:\n192.0.2.7 50000 192.0.2.1 22 invalid DNS name for this IP\n?[2J"
            ]
        );
        assert_eq!(report.exit_code, 1);
    }

    #[test]
    fn a_server_that_asks_for_a_password_gets_none() {
        let server = Canned {
            answer: Ok("192.0.2.7 50000 192.0.2.1 22 authentication failed\n"),
            challenge: true,
            received: RefCell::default(),
        };
        let report = status_with(server);
        assert_eq!(
            server_lines(&report),
            ["server MISSING ssh://backup.example.org asked for a password (<ssh://b:22> Example) to answer a status \
              request, which needs none; nothing was sent"]
        );
        assert_eq!(report.exit_code, 1);
    }

    #[test]
    fn what_the_server_says_is_checked_before_it_is_shown() {
        let report =
            status_with(Canned::new("success\nhost: pc-alice.example.org\nregistered: yes\nowner: al\u{202E}ice\n"));
        assert_eq!(
            server_lines(&report),
            ["server MISSING the server's answer to the status request cannot be used: owner: is not plain text"]
        );
        assert_eq!(report.exit_code, 1);
    }

    #[test]
    fn transport_failures_keep_setups_exit_codes() {
        let unreachable = || TransportError::Unreachable { server: "ssh://b".into(), reason: "refused".into() };
        let mismatch = || TransportError::HostKeyMismatch { known_hosts: "/etc/bpc-enroll/known_hosts".into() };
        let misconfigured = || TransportError::MissingClientIp;
        for (error, code) in [(unreachable as fn() -> TransportError, 3), (mismatch, 1), (misconfigured, 2)] {
            let report = status_with(Canned { answer: Err(error), challenge: false, received: RefCell::default() });
            assert_eq!(server_lines(&report), [format!("server MISSING {}", error())]);
            assert_eq!(report.exit_code, code);
        }
    }

    #[test]
    fn uninstall_removes_exactly_what_the_manifest_lists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("home/.ssh")).unwrap();
        fs::write(root.join("home/.ssh/authorized_keys"), "ssh-ed25519 OTHER x\nrestrict ssh-ed25519 OURS y\n")
            .unwrap();
        fs::create_dir_all(root.join("made/inner")).unwrap();
        fs::write(root.join("made/inner/file"), "x").unwrap();
        fs::create_dir_all(root.join("shared")).unwrap();
        fs::write(root.join("shared/theirs"), "keep").unwrap();
        let manifest = Manifest {
            account: "bckpciuem".into(),
            created_files: vec![root.join("made/inner/file")],
            created_dirs: vec![root.join("made"), root.join("made/inner"), root.join("shared")],
            added_keys: vec![AddedKey { file: root.join("home/.ssh/authorized_keys"), key: "OURS".into() }],
            ..Manifest::default()
        };
        fs::create_dir_all(Manifest::path(root).parent().unwrap()).unwrap();
        fs::write(Manifest::path(root), manifest.to_toml().unwrap()).unwrap();

        let removed = uninstall(&Target::Trial(root.to_owned())).unwrap().unwrap();
        assert!(removed.contains(&root.join("made")));
        assert!(!root.join("made").exists());
        assert_eq!(fs::read_to_string(root.join("shared/theirs")).unwrap(), "keep");
        assert_eq!(fs::read_to_string(root.join("home/.ssh/authorized_keys")).unwrap(), "ssh-ed25519 OTHER x\n");
        assert!(!Manifest::path(root).exists());
        assert!(uninstall(&Target::Trial(root.to_owned())).unwrap().is_none());
    }
}
