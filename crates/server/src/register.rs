//! The register command: checks a request in the contract's order and answers.

use crate::challenge::{Challenge, Challenger, NoChallenger};
use crate::config::{AuthPolicy, ConnectTo, DirectoryConfig, ResolverConfig, ServerConfig};
use crate::directory::{Directory, FileDirectory};
use crate::dns::DnsResolver;
use crate::hostconfig::{HostConfig, SshSettings};
use crate::ldap::LdapDirectory;
use crate::log::{EventLog, Level, escape};
use crate::owner_edits;
use crate::registry::{BackupPcRegistry, Outcome, Registration, Registry};
use crate::resolver::{Resolver, StaticResolver};
use protocol::auth::{AuthResponse, MAX_ATTEMPTS};
use protocol::{HostName, Logon, Refusal, Request, SshConnection, parse_request, render_error, render_success};
use std::net::IpAddr;
use std::path::PathBuf;

/// A ready server: its configuration, its backends and its log.
pub struct Server {
    config: ServerConfig,
    directory: Box<dyn Directory>,
    resolver: Box<dyn Resolver>,
    registry: Box<dyn Registry>,
    log: EventLog,
    backup_key: String,
}

/// Why a server could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The users file is unreadable or invalid.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// The static hosts file is unreadable or invalid.
    #[error(transparent)]
    Resolver(#[from] crate::resolver::ResolveError),
    /// The backup key could not be read.
    #[error("{path}: cannot read the backup public key ([backuppc] key): {source}")]
    KeyRead {
        /// The key file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The backup key is not an OpenSSH public key.
    #[error("{path}: not an OpenSSH public key ([backuppc] key): {source}")]
    KeyInvalid {
        /// The key file.
        path: PathBuf,
        /// The parser's reason.
        source: ssh_key::Error,
    },
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The host is registered.
    Success,
    /// A check failed: the client's mistake or a policy.
    Refused,
    /// The server could not do its part.
    ServerFault,
}

/// The answer to send and how the request ended.
#[derive(Debug, Clone)]
pub struct Response {
    /// The whole answer, as sent to the client.
    pub text: String,
    /// How the request ended.
    pub status: Status,
}

/// Texts for the server's own faults, which the contract's table leaves open.
/// They never pretend to be the client's mistake.
const DIRECTORY_DOWN: &str = "the user directory cannot be consulted; try again later or tell the backup administrator";
const RESOLVER_DOWN: &str = "the DNS cannot be consulted; try again later or tell the backup administrator";

impl Server {
    /// Builds the server the configuration describes.
    pub fn from_config(config: ServerConfig) -> Result<Server, ServerError> {
        let directory: Box<dyn Directory> = match &config.directory {
            DirectoryConfig::File { path } => Box::new(FileDirectory::load(path)?),
            DirectoryConfig::Ldap(ldap) => Box::new(LdapDirectory::new(ldap)?),
        };
        let resolver: Box<dyn Resolver> = match &config.resolver {
            ResolverConfig::Static { path } => Box::new(StaticResolver::load(path)?),
            ResolverConfig::Dns { servers, timeout } => {
                Box::new(DnsResolver::new(servers, std::time::Duration::from_secs((*timeout).max(1)))?)
            }
        };
        let mut registry = BackupPcRegistry::new(&config.backuppc.conf_dir);
        if let Some(journal) = &config.journal {
            registry = registry.with_journal(journal);
        }
        let registry = Box::new(registry);
        let log = EventLog::from_config(&config.log);
        let backup_key = read_public_key(&config.backuppc.key)?;
        Ok(Server { config, directory, resolver, registry, log, backup_key })
    }

    /// Builds a server from parts, for tests and embedders.
    pub fn with_parts(
        config: ServerConfig,
        directory: Box<dyn Directory>,
        resolver: Box<dyn Resolver>,
        registry: Box<dyn Registry>,
        log: EventLog,
        backup_key: String,
    ) -> Server {
        Server { config, directory, resolver, registry, log, backup_key }
    }

    /// Answers one request that cannot be challenged (see [`Server::handle_with`]).
    pub fn handle(&self, command: Option<&[u8]>, connection: &SshConnection) -> Response {
        let origin = protocol::auth::realm_origin("ssh", &connection.server_ip.to_string(), connection.server_port);
        self.handle_with(command, connection, &origin, &mut NoChallenger)
    }

    /// Answers one request. `command` is `SSH_ORIGINAL_COMMAND` (`None` when
    /// unset); it is data, parsed by `protocol` and never executed. When the
    /// policy asks for a password, `challenger` carries the challenge, whose
    /// realmstring is `<origin> realm`.
    pub fn handle_with(
        &self,
        command: Option<&[u8]>,
        connection: &SshConnection,
        origin: &str,
        challenger: &mut dyn Challenger,
    ) -> Response {
        let mut exchange = Exchange { connection, origin, challenger };
        match self.check_and_register(command, &mut exchange) {
            Ok(text) => Response { text, status: Status::Success },
            Err(failure) => {
                self.log.log(failure.level, &format!("{connection} {}: {}", failure.answer, failure.detail));
                let status = if failure.level == Level::Err { Status::ServerFault } else { Status::Refused };
                Response { text: render_error(connection, &failure.answer), status }
            }
        }
    }

    fn check_and_register(&self, command: Option<&[u8]>, exchange: &mut Exchange<'_>) -> Result<String, Failure> {
        let connection = exchange.connection;
        let command = command.ok_or_else(|| Failure::refusal(Refusal::OstypeUnknown, "no command was sent"))?;
        let request = parse_request(command)
            .map_err(|error| Failure::refusal(error.refusal(), format!("{error} in {:?}", escape(command))))?;
        self.check_os(&request)?;
        let mut author = match self.config.auth {
            AuthPolicy::Password => Some(self.authenticate(&request, exchange)?),
            AuthPolicy::Never | AuthPolicy::NewHosts => None,
        };
        self.check_user(&request.logon)?;
        let host = self.host_name_of(connection.client_ip)?;
        if self.config.auth == AuthPolicy::NewHosts {
            let owner = self.registry.owner_of(&host).map_err(|error| registry_failure(&error))?;
            if owner.as_deref() != Some(request.logon.as_str()) {
                author = Some(self.authenticate(&request, exchange)?);
            }
        }
        if let Some(author) = &author {
            self.authorize(author, &request.logon)?;
        }
        let outcome = self.register(&host, &request, author.as_ref(), connection.client_ip)?;
        if outcome == Outcome::Added {
            self.reload_backuppc(connection);
        }
        let verb = match outcome {
            Outcome::Added => "registered",
            Outcome::AlreadyRegistered => "confirmed",
        };
        let by = author.as_ref().map(|author| format!(" by {author}")).unwrap_or_default();
        self.log.log(
            Level::Info,
            &format!(
                "{connection} {verb} host {host} for {}{by} ({}, protocol {})",
                request.logon, request.os, request.protocol
            ),
        );
        Ok(self.success_answer(&host, &request.logon, author.as_ref()))
    }

    /// Challenges the client until it proves who it is, at most
    /// `MAX_ATTEMPTS` times. Unknown users and wrong passwords look the same.
    fn authenticate(&self, request: &Request, exchange: &mut Exchange<'_>) -> Result<Logon, Failure> {
        let connection = exchange.connection;
        if request.protocol < 2 {
            return Err(Failure::refusal(Refusal::AuthenticationRequired, "a protocol-1 client met a password policy"));
        }
        let realmstring = protocol::auth::realmstring(exchange.origin, &self.config.realm);
        for attempt in 1..=MAX_ATTEMPTS {
            let reason = match exchange.challenger.ask(&realmstring) {
                Challenge::Answer(Ok(AuthResponse::Plain { username, password })) => {
                    let logon = Logon::parse(&username).ok();
                    let right = match &logon {
                        Some(logon) => self
                            .directory
                            .check_password(logon, &password)
                            .map_err(|error| Failure::fault(DIRECTORY_DOWN, error.to_string()))?,
                        None => false,
                    };
                    if let (true, Some(logon)) = (right, logon) {
                        return Ok(logon);
                    }
                    format!("wrong password or unknown user {:?}", escape(username.as_bytes()))
                }
                Challenge::Answer(Ok(AuthResponse::Cancel)) => {
                    return Err(Failure::refusal(Refusal::AuthenticationFailed, "the client cancelled the challenge"));
                }
                Challenge::Answer(Err(error)) => error.to_string(),
                Challenge::Gone => {
                    return Err(Failure::refusal(
                        Refusal::AuthenticationFailed,
                        "the client left during the challenge",
                    ));
                }
            };
            self.log.log(Level::Notice, &format!("{connection} authentication failed (attempt {attempt}): {reason}"));
            // Said after the last attempt too, so that the client knows its
            // last credentials were wrong (and drops them from its cache).
            exchange.challenger.failed(Refusal::AuthenticationFailed.text());
        }
        Err(Failure::refusal(Refusal::AuthenticationFailed, format!("{MAX_ATTEMPTS} failed attempts")))
    }

    /// The authenticated user may register for itself; an administrator
    /// (configured, or in the directory's group) for anyone.
    fn authorize(&self, author: &Logon, logon: &Logon) -> Result<(), Failure> {
        if author == logon || self.config.admins.contains(author) {
            return Ok(());
        }
        match self.directory.is_admin(author) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure {
                answer: format!("{author} may not register a host for {logon}"),
                detail: "not an administrator".into(),
                level: Level::Notice,
            }),
            Err(error) => Err(Failure::fault(DIRECTORY_DOWN, error.to_string())),
        }
    }

    fn check_os(&self, request: &Request) -> Result<(), Failure> {
        if self.config.os.contains(&request.os) {
            Ok(())
        } else {
            Err(Failure::refusal(Refusal::OstypeUnknown, format!("OS `{}` is not accepted", request.os)))
        }
    }

    fn check_user(&self, logon: &Logon) -> Result<(), Failure> {
        match self.directory.user_exists(logon) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::refusal(Refusal::BadUserRequest, format!("no user `{logon}` in the directory"))),
            Err(error) => Err(Failure::fault(DIRECTORY_DOWN, error.to_string())),
        }
    }

    /// The client's host name: a PTR name of its address that lies in the
    /// configured domain and resolves back to the same address.
    fn host_name_of(&self, ip: IpAddr) -> Result<HostName, Failure> {
        let ip = ip.to_canonical();
        let names = self.resolver.reverse(ip).map_err(|error| Failure::fault(RESOLVER_DOWN, error.to_string()))?;
        let mut reasons = Vec::new();
        for name in &names {
            let host = match HostName::parse(name) {
                Ok(host) => host,
                Err(error) => {
                    reasons.push(format!("PTR {:?} is not a host name ({error})", escape(name.as_bytes())));
                    continue;
                }
            };
            if !host.is_within(&self.config.domain) {
                reasons.push(format!("PTR {host} is outside {}", self.config.domain));
                continue;
            }
            let addresses =
                self.resolver.forward(&host).map_err(|error| Failure::fault(RESOLVER_DOWN, error.to_string()))?;
            if addresses.iter().any(|address| address.to_canonical() == ip) {
                return Ok(host);
            }
            reasons.push(format!("{host} does not resolve back to {ip}"));
        }
        if reasons.is_empty() {
            reasons.push(format!("{ip} has no PTR name"));
        }
        Err(Failure::refusal(Refusal::InvalidDnsName, reasons.join("; ")))
    }

    fn register(
        &self,
        host: &HostName,
        request: &Request,
        author: Option<&Logon>,
        client_ip: IpAddr,
    ) -> Result<Outcome, Failure> {
        self.check_owner_edits()?;
        let owner = &request.logon;
        let backuppc = &self.config.backuppc;
        let ssh = SshSettings {
            account: backuppc.account.clone(),
            port: backuppc.client_port,
            identity: backuppc.identity_path(),
            known_hosts: backuppc.known_hosts.clone(),
        };
        let address = client_ip.to_canonical().to_string();
        let client_name_alias = match backuppc.connect_to {
            ConnectTo::Name => host.as_str(),
            ConnectTo::Address => address.as_str(),
        };
        let host_config = HostConfig { host, owner, client_name_alias, ssh: &ssh }.render();
        let registration = Registration {
            host: host.clone(),
            owner: owner.clone(),
            host_config,
            author: author.cloned(),
            client_ip,
            os: request.os.to_string(),
            protocol: request.protocol,
        };
        self.registry.register(&registration).map_err(|error| registry_failure(&error))
    }

    /// Refuses to register into a BackupPC whose web page would let the
    /// host's owner change the commands BackupPC runs as itself (BackupPC
    /// reads that permission from its server-wide `config.pl` only).
    fn check_owner_edits(&self) -> Result<(), Failure> {
        let conf_dir = &self.config.backuppc.conf_dir;
        let journal = match &self.config.journal {
            Some(journal) => journal.clone(),
            None => BackupPcRegistry::new(conf_dir).journal_path().to_owned(),
        };
        let cache = owner_edits::cache_path_beside(&journal);
        match owner_edits::read_cached(conf_dir, &cache) {
            Ok(edits) if edits.is_safe() => Ok(()),
            Ok(edits) => Err(Failure::refusal(Refusal::CouldNotRegister, edits.problem())),
            Err(error) => Err(Failure::refusal(Refusal::CouldNotRegister, error.to_string())),
        }
    }

    /// Whether the last registration changed `hosts` in the same second as
    /// the change before it, so that [`Server::settle`] must still run.
    pub fn settle_owed(&self) -> bool {
        self.registry.settle_owed()
    }

    /// Waits (about a second at most) until the clock has passed the second
    /// of the last change of `hosts`, moves its mtime on and tells BackupPC
    /// to reload, so that BackupPC sees a change it could not tell from the
    /// one before by its mtime. The forced command runs it after answering,
    /// in a process of its own, so that the client does not wait.
    pub fn settle(&self, connection: &SshConnection) {
        match self.registry.settle() {
            Ok(true) => self.reload_backuppc(connection),
            Ok(false) => {}
            Err(error) => self.log.log(
                Level::Warning,
                &format!("{connection} BackupPC may see the last registration only at the next change: {error}"),
            ),
        }
    }

    /// Tells the BackupPC daemon to re-read its hosts. The registration is
    /// made already, and BackupPC re-reads `hosts` every hour by itself, so a
    /// failure here is only a warning.
    fn reload_backuppc(&self, connection: &SshConnection) {
        let Some((program, args)) = self.config.backuppc.reload_command.split_first() else { return };
        let result = std::process::Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output();
        let problem = match result {
            Ok(output) if output.status.success() => return,
            Ok(output) => format!("{}: {}", output.status, escape(output.stderr.trim_ascii())),
            Err(error) => error.to_string(),
        };
        self.log.log(
            Level::Warning,
            &format!(
                "{connection} could not tell BackupPC to reload ({program}): {problem}; it will notice within the hour"
            ),
        );
    }

    fn success_answer(&self, host: &HostName, owner: &Logon, author: Option<&Logon>) -> String {
        let url = self.config.backuppc.url.replace("{host}", host.as_str());
        let mut fields = vec![("key", self.backup_key.as_str()), ("url", url.as_str())];
        if let Some(from) = &self.config.backuppc.from {
            fields.push(("from", from.as_str()));
        }
        fields.push(("host", host.as_str()));
        fields.push(("account", self.config.backuppc.account.as_str()));
        fields.push(("user", owner.as_str()));
        if let Some(author) = author {
            fields.push(("author", author.as_str()));
        }
        render_success(fields)
    }
}

/// One exchange with a client: where it came from and how to challenge it.
struct Exchange<'a> {
    connection: &'a SshConnection,
    origin: &'a str,
    challenger: &'a mut dyn Challenger,
}

fn registry_failure(error: &crate::registry::RegistryError) -> Failure {
    let level = if error.refusal().is_server_fault() { Level::Err } else { Level::Notice };
    Failure { answer: error.refusal().text().to_owned(), detail: error.to_string(), level }
}

/// A failed check: what the client is told, what the log says and how bad it is.
#[derive(Debug)]
struct Failure {
    answer: String,
    detail: String,
    level: Level,
}

impl Failure {
    fn refusal(refusal: Refusal, detail: impl Into<String>) -> Failure {
        let level = if refusal.is_server_fault() { Level::Err } else { Level::Notice };
        Failure { answer: refusal.text().to_owned(), detail: detail.into(), level }
    }

    fn fault(answer: &str, detail: String) -> Failure {
        Failure { answer: answer.to_owned(), detail, level: Level::Err }
    }
}

/// Reads and checks an OpenSSH public key, returning it as one clean line.
pub fn read_public_key(path: &std::path::Path) -> Result<String, ServerError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ServerError::KeyRead { path: path.to_owned(), source })?;
    let key = ssh_key::PublicKey::from_openssh(text.trim())
        .map_err(|source| ServerError::KeyInvalid { path: path.to_owned(), source })?;
    key.to_openssh().map_err(|source| ServerError::KeyInvalid { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::DirectoryError;
    use crate::registry::RegistryError;
    use crate::resolver::ResolveError;
    use std::cell::RefCell;
    use std::path::Path;

    struct FakeDirectory(Option<&'static [&'static str]>);
    impl Directory for FakeDirectory {
        fn user_exists(&self, logon: &Logon) -> Result<bool, DirectoryError> {
            match self.0 {
                Some(users) => Ok(users.contains(&logon.as_str())),
                None => Err(DirectoryError::Unavailable { url: "ldap://fake".into(), reason: "down".into() }),
            }
        }
        fn check_password(&self, _: &Logon, _: &protocol::Secret) -> Result<bool, DirectoryError> {
            Ok(false)
        }
        fn is_admin(&self, _: &Logon) -> Result<bool, DirectoryError> {
            Ok(false)
        }
    }

    /// PTR records, then A records.
    struct FakeResolver(Vec<(IpAddr, &'static str)>, Vec<(IpAddr, &'static str)>);
    impl Resolver for FakeResolver {
        fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, ResolveError> {
            Ok(self.0.iter().filter(|(a, _)| *a == ip).map(|(_, n)| n.to_string()).collect())
        }
        fn forward(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
            Ok(self.1.iter().filter(|(_, n)| HostName::parse(n).is_ok_and(|h| &h == name)).map(|(a, _)| *a).collect())
        }
    }

    #[derive(Default)]
    struct FakeRegistry(RefCell<Vec<(String, String)>>);
    impl Registry for std::rc::Rc<FakeRegistry> {
        fn register(&self, registration: &Registration) -> Result<Outcome, RegistryError> {
            let mut hosts = self.0.borrow_mut();
            match hosts.iter().find(|(h, _)| h == registration.host.as_str()) {
                Some((_, owner)) if owner != registration.owner.as_str() => {
                    Err(RegistryError::OwnedByOther { host: registration.host.clone(), owner: owner.clone() })
                }
                Some(_) => Ok(Outcome::AlreadyRegistered),
                None => {
                    hosts.push((registration.host.to_string(), registration.owner.to_string()));
                    Ok(Outcome::Added)
                }
            }
        }
        fn owner_of(&self, host: &HostName) -> Result<Option<String>, RegistryError> {
            Ok(self.0.borrow().iter().find(|(h, _)| h == host.as_str()).map(|(_, owner)| owner.clone()))
        }
    }

    /// A BackupPC configuration folder whose `config.pl` keeps owners out
    /// of the web page's editor.
    fn conf_dir(config_pl: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.pl"), config_pl).unwrap();
        dir
    }

    const SAFE_CONFIG_PL: &str = "$Conf{CgiUserConfigEditEnable} = 0;\n";

    fn server(users: Option<&'static [&'static str]>) -> (Server, std::rc::Rc<FakeRegistry>, tempfile::TempDir) {
        server_with(users, SAFE_CONFIG_PL)
    }

    fn server_with(
        users: Option<&'static [&'static str]>,
        config_pl: &str,
    ) -> (Server, std::rc::Rc<FakeRegistry>, tempfile::TempDir) {
        let dir = conf_dir(config_pl);
        let text = "domain = \"example.org\"\n[backuppc]\nconf-dir = \"CONF\"\nurl = \"http://b/?host={host}\"\nkey = \"k\"\nreload-command = []\n\
                    [directory]\nkind = \"file\"\npath = \"u\"\n[resolver]\nkind = \"static\"\npath = \"h\"\n";
        let text = text.replace("CONF", &dir.path().display().to_string());
        let config: ServerConfig = files::parse_toml(&text, Path::new("server.toml")).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let resolver = FakeResolver(
            vec![
                (ip("127.0.0.2"), "PC-Alice.Example.org."),
                (ip("127.0.0.9"), "evil.example.net"),
                (ip("127.0.0.5"), "moved.example.org"),
            ],
            vec![
                (ip("127.0.0.2"), "pc-alice.example.org"),
                (ip("127.0.0.9"), "evil.example.net"),
                (ip("127.0.0.6"), "moved.example.org"),
            ],
        );
        let registry = std::rc::Rc::new(FakeRegistry::default());
        let server = Server::with_parts(
            config,
            Box::new(FakeDirectory(users)),
            Box::new(resolver),
            Box::new(registry.clone()),
            EventLog::Stderr,
            "ssh-ed25519 AAAA test".into(),
        );
        (server, registry, dir)
    }

    fn ask(server: &Server, command: &str, from: &str) -> Response {
        let connection = SshConnection::parse(&format!("{from} 5000 127.0.0.1 22")).unwrap();
        server.handle(Some(command.as_bytes()), &connection)
    }

    #[test]
    fn good_request_registers_the_lowercased_ptr_name() {
        let (server, registry, _dir) = server(Some(&["alice"]));
        let response = ask(&server, "linux:alice", "127.0.0.2");
        assert_eq!(response.status, Status::Success);
        assert_eq!(
            response.text,
            "success\nkey: ssh-ed25519 AAAA test\nurl: http://b/?host=pc-alice.example.org\nhost: pc-alice.example.org\naccount: bckpciuem\nuser: alice\n"
        );
        assert_eq!(registry.0.borrow().as_slice(), [("pc-alice.example.org".to_string(), "alice".to_string())]);
    }

    #[test]
    fn checks_run_in_the_contract_order() {
        let (server, registry, _dir) = server(Some(&["alice"]));
        assert_eq!(ask(&server, "beos:nobody", "127.0.0.9").text, "127.0.0.9 5000 127.0.0.1 22 ostype is unknown\n");
        assert_eq!(ask(&server, "linux:nobody", "127.0.0.9").text, "127.0.0.9 5000 127.0.0.1 22 bad user request\n");
        let refused = ask(&server, "linux:alice", "127.0.0.9");
        assert_eq!(refused.text, "127.0.0.9 5000 127.0.0.1 22 invalid DNS name for this IP\n");
        assert_eq!(refused.status, Status::Refused);
        assert!(registry.0.borrow().is_empty());
    }

    #[test]
    fn a_name_that_does_not_resolve_back_is_refused() {
        let (server, _, _dir) = server(Some(&["alice"]));
        assert!(ask(&server, "linux:alice", "127.0.0.5").text.ends_with(" invalid DNS name for this IP\n"));
        assert!(ask(&server, "linux:alice", "127.0.0.77").text.ends_with(" invalid DNS name for this IP\n"));
    }

    #[test]
    fn another_owner_cannot_take_the_host() {
        let (server, _, _dir) = server(Some(&["alice", "bob"]));
        assert_eq!(ask(&server, "linux:alice", "127.0.0.2").status, Status::Success);
        assert_eq!(ask(&server, "linux:alice", "127.0.0.2").status, Status::Success);
        let refused = ask(&server, "macos:bob", "127.0.0.2");
        assert!(refused.text.ends_with(" refusing to re-register client host with username\n"));
    }

    #[test]
    fn a_directory_that_cannot_answer_is_the_servers_fault() {
        let (server, _, _dir) = server(None);
        let response = ask(&server, "linux:alice", "127.0.0.2");
        assert_eq!(response.status, Status::ServerFault);
        assert!(response.text.contains(DIRECTORY_DOWN));
        assert!(!response.text.contains("bad user request"));
    }

    #[test]
    fn a_missing_command_is_an_unknown_ostype() {
        let (server, _, _dir) = server(Some(&["alice"]));
        let connection = SshConnection::parse("127.0.0.2 1 127.0.0.1 22").unwrap();
        assert_eq!(server.handle(None, &connection).text, "127.0.0.2 1 127.0.0.1 22 ostype is unknown\n");
    }

    #[test]
    fn a_backuppc_that_lets_owners_change_the_ssh_command_gets_no_registration() {
        let unsafe_pl =
            "$Conf{CgiUserConfigEditEnable} = 1;\n$Conf{CgiUserConfigEdit} = { FullPeriod => 1, RsyncSshArgs => 1 };\n";
        let (server, registry, _dir) = server_with(Some(&["alice"]), unsafe_pl);
        let response = ask(&server, "linux:alice", "127.0.0.2");
        assert_eq!(response.status, Status::ServerFault);
        assert_eq!(response.text, "127.0.0.2 5000 127.0.0.1 22 Could not register\n");
        assert!(registry.0.borrow().is_empty());
    }

    #[test]
    fn a_backuppc_without_config_pl_gets_no_registration() {
        let (server, registry, dir) = server(Some(&["alice"]));
        std::fs::remove_file(dir.path().join("config.pl")).unwrap();
        let response = ask(&server, "linux:alice", "127.0.0.2");
        assert_eq!(response.status, Status::ServerFault);
        assert!(response.text.ends_with(" Could not register\n"));
        assert!(registry.0.borrow().is_empty());
    }
}
