//! The register command: checks a registration in the contract's order, or
//! answers a status request, and answers.

use crate::backups;
use crate::challenge::{Challenge, Challenger, NoChallenger};
use crate::config::{AuthPolicy, ConnectTo, DirectoryConfig, ResolverConfig, ServerConfig, canonical_os};
use crate::directory::{Directory, FileDirectory};
use crate::dns::DnsResolver;
use crate::file_index::PendingIndex;
use crate::hostconfig::{HostConfig, SshSettings};
use crate::ldap::LdapDirectory;
use crate::log::{EventLog, Level, escape};
use crate::owner_edits;
use crate::pins;
use crate::registry::{BackupPcRegistry, Outcome, Registration, Registry};
use crate::resolver::{Resolver, StaticResolver};
use protocol::auth::{AuthResponse, MAX_ATTEMPTS};
use protocol::hostkeys::{self, HostKey, HostKeyError};
use protocol::{
    ClientRequest, HostInfo, HostName, InfoRequest, LastBackup, Logon, OsName, Refusal, Registered, Request,
    SshConnection, parse_client_request, render_error, render_success,
};
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
    /// Indexes of the embedded backends' files to write once a request
    /// that may write arrives (a status request writes nothing); written
    /// once, however many requests a server that lives on answers.
    pending_indexes: std::cell::RefCell<Vec<PendingIndex>>,
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
    /// The policy asks for a password the request did not carry (or
    /// carried wrong): the client asks again with credentials (HTTP's `401`).
    Challenged,
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
const HOSTS_UNREADABLE: &str =
    "BackupPC's list of hosts cannot be read; try again later or tell the backup administrator";

impl Server {
    /// Builds the server the configuration describes.
    ///
    /// A users file and a static resolver are read through their indexes
    /// beside the journal while those are current ([`crate::file_index`]):
    /// a request then reads a few blocks of each, whatever their size.
    /// Otherwise they are read and checked whole, and a malformed one is an
    /// error here, as without the indexes.
    pub fn from_config(config: ServerConfig) -> Result<Server, ServerError> {
        let journal = journal_path(&config);
        let now = std::time::SystemTime::now();
        let mut pending_indexes = Vec::new();
        let directory: Box<dyn Directory> = match &config.directory {
            DirectoryConfig::File { path } => {
                let (directory, pending) =
                    FileDirectory::open(path, &journal.with_file_name(crate::directory::INDEX_NAME), now)?;
                pending_indexes.extend(pending);
                Box::new(directory)
            }
            ldap @ DirectoryConfig::Ldap { .. } => directory_from_config(ldap)?,
        };
        let resolver: Box<dyn Resolver> = match &config.resolver {
            ResolverConfig::Static { path } => {
                let (resolver, pending) =
                    StaticResolver::open(path, &journal.with_file_name(crate::resolver::INDEX_NAME), now)?;
                pending_indexes.extend(pending);
                Box::new(resolver)
            }
            ResolverConfig::Dns { servers, timeout } => {
                Box::new(DnsResolver::new(servers, std::time::Duration::from_secs((*timeout).max(1)))?)
            }
        };
        let mut registry = BackupPcRegistry::new(&config.backuppc.conf_dir);
        if let Some(journal) = &config.journal {
            registry = registry.with_journal(journal);
        }
        let registry = Box::new(registry.grouped());
        let log = EventLog::from_config(&config.log);
        let backup_key = read_public_key(&config.backuppc.key)?;
        let pending_indexes = std::cell::RefCell::new(pending_indexes);
        Ok(Server { config, directory, resolver, registry, log, backup_key, pending_indexes })
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
        Server { config, directory, resolver, registry, log, backup_key, pending_indexes: Default::default() }
    }

    /// Answers one request that cannot be challenged (see [`Server::handle_with`]).
    pub fn handle(&self, command: Option<&[u8]>, connection: &SshConnection) -> Response {
        let origin = protocol::auth::realm_origin("ssh", &connection.server_ip.to_string(), connection.server_port);
        self.handle_with(command, connection, &origin, &mut NoChallenger)
    }

    /// Answers one request. `command` is `SSH_ORIGINAL_COMMAND` (`None` when
    /// unset); it is data, parsed by `protocol` and never executed. When the
    /// policy asks for a password, `challenger` carries the challenge, whose
    /// realmstring is `<origin> realm`; a status request is never challenged.
    pub fn handle_with(
        &self,
        command: Option<&[u8]>,
        connection: &SshConnection,
        origin: &str,
        challenger: &mut dyn Challenger,
    ) -> Response {
        self.answer(parse(command), connection, origin, challenger)
    }

    /// Answers one request read already (the `https://` transport reads it
    /// from a form, [`protocol::form::parse_form`]); `sent` is what the
    /// client sent, quoted in the log when it is malformed. Otherwise as
    /// [`Server::handle_with`]: the same checks, answers and log lines.
    pub fn handle_request_with(
        &self,
        request: Result<ClientRequest, protocol::RequestError>,
        sent: &[u8],
        connection: &SshConnection,
        origin: &str,
        challenger: &mut dyn Challenger,
    ) -> Response {
        let request = request.map_err(|error| malformed(&error, sent));
        self.answer(request, connection, origin, challenger)
    }

    fn answer(
        &self,
        request: Result<ClientRequest, Failure>,
        connection: &SshConnection,
        origin: &str,
        challenger: &mut dyn Challenger,
    ) -> Response {
        let mut exchange = Exchange { connection, origin, challenger };
        let answered = request.and_then(|request| match request {
            ClientRequest::Register(request) => {
                let answered = self.check_and_register(&request, &mut exchange);
                self.write_indexes(connection);
                answered
            }
            ClientRequest::Info(request) => self.answer_info(&request, connection),
        });
        match answered {
            Ok(text) => Response { text, status: Status::Success },
            Err(failure) if failure.challenged => {
                // Not a failure: the first request of a challenged exchange
                // carries no credentials (the line is not fail2ban's).
                self.log.log(Level::Info, &format!("{connection} {}", failure.detail));
                Response { text: render_error(connection, &failure.answer), status: Status::Challenged }
            }
            Err(failure) => {
                self.log.log(failure.level, &format!("{connection} {}: {}", failure.answer, failure.detail));
                let status = if failure.level == Level::Err { Status::ServerFault } else { Status::Refused };
                Response { text: render_error(connection, &failure.answer), status }
            }
        }
    }

    fn check_and_register(&self, request: &Request, exchange: &mut Exchange<'_>) -> Result<String, Failure> {
        let connection = exchange.connection;
        let os = self.check_os(request)?;
        let host_keys = receive_host_keys(request, exchange)?;
        let mut author = match self.config.auth {
            AuthPolicy::Password => Some(self.authenticate(request, exchange)?),
            AuthPolicy::Never | AuthPolicy::NewHosts => None,
        };
        self.check_user(&request.logon)?;
        let host = self.host_name_of(connection.client_ip)?;
        if self.config.auth == AuthPolicy::NewHosts {
            let owner = self.registry.owner_of(&host).map_err(|error| registry_failure(&error))?;
            // Whoever answers on the host's address could send other keys:
            // replacing pinned keys asks for the owner's password too.
            let repins = !host_keys.is_empty()
                && self.registry.pinned_keys(&host).map_err(|error| registry_failure(&error))?.as_ref()
                    != Some(&host_keys);
            if owner.as_deref() != Some(request.logon.as_str()) || repins {
                author = Some(self.authenticate(request, exchange)?);
            }
        }
        if let Some(author) = &author {
            self.authorize(author, &request.logon)?;
        }
        let outcome = self.register(&host, request, &os, author.as_ref(), connection.client_ip, &host_keys)?;
        if outcome == Outcome::Added {
            self.reload_backuppc(connection);
        }
        let verb = match outcome {
            Outcome::Added => "registered",
            Outcome::AlreadyRegistered | Outcome::Repinned { .. } => "confirmed",
        };
        let new_fingerprints = pins::fingerprints(&host_keys).join(" ");
        match &outcome {
            Outcome::Repinned { previous } => self.log.log(
                Level::Notice,
                &format!(
                    "{connection} host keys of {host} replaced for {}: was [{}], now [{new_fingerprints}]",
                    request.logon,
                    previous.join(" ")
                ),
            ),
            _ if host_keys.is_empty() => self.log.log(
                Level::Info,
                &format!(
                    "{connection} host {host} sent no SSH host keys (an older client): BackupPC's ssh trusts \
                     the host key it meets at the first backup"
                ),
            ),
            Outcome::Added => {
                self.log.log(Level::Info, &format!("{connection} host keys of {host} pinned: [{new_fingerprints}]"))
            }
            Outcome::AlreadyRegistered => {}
        }
        let by = author.as_ref().map(|author| format!(" by {author}")).unwrap_or_default();
        let sent_as = if os == request.os { String::new() } else { format!(", sent as {}", request.os) };
        self.log.log(
            Level::Info,
            &format!(
                "{connection} {verb} host {host} for {}{by} ({os}{sent_as}, protocol {})",
                request.logon, request.protocol
            ),
        );
        Ok(self.success_answer(&host, &request.logon, author.as_ref()))
    }

    /// Answers a status request: what `hosts` says of the host the request
    /// comes from, named exactly as a registration names it. The request
    /// carries no name, so no one learns anything of another host; nothing
    /// is written, no one is challenged, whatever the policy.
    fn answer_info(&self, request: &InfoRequest, connection: &SshConnection) -> Result<String, Failure> {
        let host = self.host_name_of(connection.client_ip)?;
        let owner =
            self.registry.owner_of(&host).map_err(|error| Failure::fault(HOSTS_UNREADABLE, error.to_string()))?;
        let registered = owner.map(|owner| Registered {
            owner: Some(owner),
            url: Some(self.config.backuppc.url.replace("{host}", host.as_str())),
            last_backup: self.last_backup_of(&host, connection),
        });
        let said = match &registered {
            Some(Registered { owner, last_backup, .. }) => format!(
                "registered to {}, last backup {}",
                escape(owner.as_deref().unwrap_or_default().as_bytes()),
                last_backup.as_ref().map_or("unknown", LastBackup::as_str)
            ),
            None => "not registered".to_owned(),
        };
        self.log.log(
            Level::Info,
            &format!("{connection} status of host {host} asked: {said} (protocol {})", request.protocol),
        );
        Ok(HostInfo { host, registered }.render())
    }

    /// When the host's last full or incremental backup started, from
    /// `TopDir/pc/HOST/backups` (`TopDir` from BackupPC's configuration, as
    /// registrations read it, its cache left as it is). `None` (unknown)
    /// when either cannot be read: the reason is for the administrator and
    /// goes to the log at `warning`, the client is only not told.
    fn last_backup_of(&self, host: &HostName, connection: &SshConnection) -> Option<LastBackup> {
        let conf_dir = &self.config.backuppc.conf_dir;
        let read = owner_edits::read_cached_without_writing(conf_dir, &self.owner_edits_cache())
            .map_err(|error| error.to_string())
            .and_then(|edits| backups::last_backup_of(&edits.top_dir, host).map_err(|error| error.to_string()));
        match read {
            Ok(None) => Some(LastBackup::None),
            Ok(Some(backup)) => backup
                .started()
                .map(|started| LastBackup::Started(humantime::format_rfc3339_seconds(started).to_string())),
            Err(reason) => {
                self.log.log(Level::Warning, &format!("{connection} last backup of {host} unknown: {reason}"));
                None
            }
        }
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
                Challenge::Deferred => {
                    let mut failure = Failure::refusal(
                        Refusal::AuthenticationFailed,
                        format!("password asked for {realmstring}, for {}", request.logon),
                    );
                    failure.challenged = true;
                    return Err(failure);
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
                challenged: false,
            }),
            Err(error) => Err(Failure::fault(DIRECTORY_DOWN, error.to_string())),
        }
    }

    /// The request's OS under its canonical name (the seed's `mac` is
    /// `macos`), when the configuration accepts it.
    fn check_os(&self, request: &Request) -> Result<OsName, Failure> {
        let os = canonical_os(&request.os);
        if self.config.os.contains(&os) {
            Ok(os)
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
        os: &OsName,
        author: Option<&Logon>,
        client_ip: IpAddr,
        host_keys: &[HostKey],
    ) -> Result<Outcome, Failure> {
        self.check_owner_edits()?;
        let owner = &request.logon;
        let pins_path = pins::pins_path(&self.config.backuppc.conf_dir, host);
        let pinned = (!host_keys.is_empty()).then_some(pins_path.as_path());
        let host_config = host_config_text(&self.config, host, owner, client_ip, pinned);
        let registration = Registration {
            host: host.clone(),
            owner: owner.clone(),
            host_config,
            author: author.cloned(),
            client_ip,
            os: os.to_string(),
            protocol: request.protocol,
            host_keys: host_keys.to_vec(),
        };
        self.registry.register(&registration).map_err(|error| registry_failure(&error))
    }

    /// Refuses to register into a BackupPC whose web page would let the
    /// host's owner change the commands BackupPC runs as itself (BackupPC
    /// reads that permission from its server-wide `config.pl` only).
    fn check_owner_edits(&self) -> Result<(), Failure> {
        match owner_edits::read_cached(&self.config.backuppc.conf_dir, &self.owner_edits_cache()) {
            Ok(edits) if edits.is_safe() => Ok(()),
            Ok(edits) => Err(Failure::refusal(Refusal::CouldNotRegister, edits.problem())),
            Err(error) => Err(Failure::refusal(Refusal::CouldNotRegister, error.to_string())),
        }
    }

    /// Where the reading of BackupPC's `config.pl` is cached: beside the journal.
    fn owner_edits_cache(&self) -> PathBuf {
        owner_edits::cache_path_beside(&journal_path(&self.config))
    }

    /// Writes the embedded backends' indexes that were out of date; one
    /// that cannot be written costs only time, and is said at `warning`.
    /// They go beside the journal, which is in BackupPC's configuration
    /// folder unless configured elsewhere: they are written under
    /// BackupPC's `LOCK`, as everything written there is.
    fn write_indexes(&self, connection: &SshConnection) {
        let pending_indexes = self.pending_indexes.take();
        if pending_indexes.is_empty() {
            return;
        }
        let _lock = match crate::registry::take_lock(&self.config.backuppc.conf_dir) {
            Ok(lock) => lock,
            Err(error) => {
                self.log.log(Level::Warning, &format!("{connection} the indexes are not written: {error}"));
                return;
            }
        };
        for pending in &pending_indexes {
            if let Err(error) = pending.write() {
                self.log.log(
                    Level::Warning,
                    &format!("{connection} cannot write the index {}: {error}", pending.path.display()),
                );
            }
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
        if let Err(problem) = reload_backuppc(&self.config.backuppc) {
            self.log.log(Level::Warning, &format!("{connection} {problem}"));
        }
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

/// The journal of registrations `config` names, by default in `conf-dir`;
/// the caches and indexes go beside it.
fn journal_path(config: &ServerConfig) -> PathBuf {
    match &config.journal {
        Some(journal) => journal.clone(),
        None => BackupPcRegistry::new(&config.backuppc.conf_dir).journal_path().to_owned(),
    }
}

/// The request in `command`, or the refusal a malformed one gets.
fn parse(command: Option<&[u8]>) -> Result<ClientRequest, Failure> {
    let command = command.ok_or_else(|| Failure::refusal(Refusal::OstypeUnknown, "no command was sent"))?;
    parse_client_request(command).map_err(|error| malformed(&error, command))
}

/// The refusal a malformed request gets, quoting what was sent.
fn malformed(error: &protocol::RequestError, sent: &[u8]) -> Failure {
    Failure::refusal(error.refusal(), format!("{error} in {:?}", escape(sent)))
}

/// Runs `reload-command` (without a shell), which tells the BackupPC daemon
/// to re-read `hosts`; `Err` says, in one line, why it could not. An empty
/// command does nothing.
pub fn reload_backuppc(backuppc: &crate::config::BackupPcConfig) -> Result<(), String> {
    let Some((program, args)) = backuppc.reload_command.split_first() else { return Ok(()) };
    let result = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    let problem = match result {
        Ok(output) if output.status.success() => return Ok(()),
        Ok(output) => format!("{}: {}", output.status, escape(output.stderr.trim_ascii())),
        Err(error) => error.to_string(),
    };
    Err(format!("could not tell BackupPC to reload ({program}): {problem}; it will notice within the hour"))
}

/// The per-host config `config` asks for, for `host` registered to `owner`
/// from `client_ip`, trusting only the host keys pinned in `pinned` if given.
pub(crate) fn host_config_text(
    config: &ServerConfig,
    host: &HostName,
    owner: &Logon,
    client_ip: IpAddr,
    pinned: Option<&std::path::Path>,
) -> String {
    let backuppc = &config.backuppc;
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
    HostConfig { host, owner, client_name_alias, ssh: &ssh, pinned }.render()
}

/// The client's own SSH host keys, when its request announced some: asked
/// for on the channel and checked, every one, before anything is written.
fn receive_host_keys(request: &Request, exchange: &mut Exchange<'_>) -> Result<Vec<HostKey>, Failure> {
    if request.host_keys == 0 {
        return Ok(Vec::new());
    }
    let refused = |error: HostKeyError| Failure {
        answer: format!("host keys refused: {error}"),
        detail: error.to_string(),
        level: Level::Notice,
        challenged: false,
    };
    hostkeys::check_count(request.host_keys).map_err(refused)?;
    let lines = exchange.challenger.host_keys(request.host_keys);
    hostkeys::parse_host_keys(request.host_keys, &lines).map_err(refused)
}

/// One exchange with a client: where it came from and how to challenge it.
struct Exchange<'a> {
    connection: &'a SshConnection,
    origin: &'a str,
    challenger: &'a mut dyn Challenger,
}

fn registry_failure(error: &crate::registry::RegistryError) -> Failure {
    let level = if error.refusal().is_server_fault() { Level::Err } else { Level::Notice };
    Failure { answer: error.refusal().text().to_owned(), detail: error.to_string(), level, challenged: false }
}

/// A failed check: what the client is told, what the log says and how bad
/// it is; `challenged` when the request only awaits credentials.
#[derive(Debug)]
struct Failure {
    answer: String,
    detail: String,
    level: Level,
    challenged: bool,
}

impl Failure {
    fn refusal(refusal: Refusal, detail: impl Into<String>) -> Failure {
        let level = if refusal.is_server_fault() { Level::Err } else { Level::Notice };
        Failure { answer: refusal.text().to_owned(), detail: detail.into(), level, challenged: false }
    }

    fn fault(answer: &str, detail: String) -> Failure {
        Failure { answer: answer.to_owned(), detail, level: Level::Err, challenged: false }
    }
}

/// The directory the configuration's `[directory]` table describes.
pub fn directory_from_config(config: &DirectoryConfig) -> Result<Box<dyn Directory>, ServerError> {
    Ok(match config {
        DirectoryConfig::File { path } => Box::new(FileDirectory::load(path)?),
        DirectoryConfig::Ldap(ldap) => Box::new(LdapDirectory::new(ldap)?),
    })
}

/// Reads and checks an OpenSSH public key, returning it as one clean line.
pub fn read_public_key(path: &std::path::Path) -> Result<String, ServerError> {
    let read = || -> std::io::Result<String> {
        let bytes = files::read_regular_through_links(path, MAX_PUBLIC_KEY)?
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        String::from_utf8(bytes).map_err(|_| std::io::Error::other("it is not UTF-8 text"))
    };
    let text = read().map_err(|source| ServerError::KeyRead { path: path.to_owned(), source })?;
    let key = ssh_key::PublicKey::from_openssh(text.trim())
        .map_err(|source| ServerError::KeyInvalid { path: path.to_owned(), source })?;
    key.to_openssh().map_err(|source| ServerError::KeyInvalid { path: path.to_owned(), source })
}

/// The most of a public key file read (a regular file, through a link if
/// need be, never a FIFO or a device): an RSA key of 16,384 bits is under
/// 3 KiB.
const MAX_PUBLIC_KEY: u64 = 64 * 1024;

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

    /// The hosts and owners registered, and the OS of every registration.
    #[derive(Default)]
    struct FakeRegistry(RefCell<Vec<(String, String)>>, RefCell<Vec<String>>);
    impl Registry for std::rc::Rc<FakeRegistry> {
        fn register(&self, registration: &Registration) -> Result<Outcome, RegistryError> {
            self.1.borrow_mut().push(registration.os.clone());
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
        fn pinned_keys(&self, _: &HostName) -> Result<Option<Vec<HostKey>>, RegistryError> {
            Ok(None)
        }
    }

    /// A BackupPC configuration folder whose `config.pl` keeps owners out
    /// of the web page's editor.
    /// A BackupPC configuration folder whose `config.pl` is `config_pl`,
    /// with `TopDir` set to `top` inside it (made empty).
    fn conf_dir(config_pl: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let top_dir = format!("$Conf{{TopDir}} = '{}';\n", dir.path().join("top").display());
        std::fs::write(dir.path().join("config.pl"), format!("{config_pl}{top_dir}")).unwrap();
        std::fs::create_dir_all(dir.path().join("top/pc")).unwrap();
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
        let registry = std::rc::Rc::new(FakeRegistry::default());
        let (server, dir) = server_of(users, config_pl, "never", Box::new(registry.clone()));
        (server, registry, dir)
    }

    /// A server with the policy `auth` and `registry`, logging to `DIR/register.log`.
    fn server_of(
        users: Option<&'static [&'static str]>,
        config_pl: &str,
        auth: &str,
        registry: Box<dyn Registry>,
    ) -> (Server, tempfile::TempDir) {
        let dir = conf_dir(config_pl);
        let text = "auth = \"AUTH\"\ndomain = \"example.org\"\n[backuppc]\nconf-dir = \"CONF\"\nurl = \"http://b/?host={host}\"\nkey = \"k\"\nreload-command = []\n\
                    [directory]\nkind = \"file\"\npath = \"u\"\n[resolver]\nkind = \"static\"\npath = \"h\"\n";
        let text = text.replace("CONF", &dir.path().display().to_string()).replace("AUTH", auth);
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
        let server = Server::with_parts(
            config,
            Box::new(FakeDirectory(users)),
            Box::new(resolver),
            registry,
            EventLog::File(dir.path().join("register.log")),
            "ssh-ed25519 AAAA test".into(),
        );
        (server, dir)
    }

    fn ask(server: &Server, command: &str, from: &str) -> Response {
        let connection = SshConnection::parse(&format!("{from} 5000 127.0.0.1 22")).unwrap();
        server.handle(Some(command.as_bytes()), &connection)
    }

    #[test]
    fn the_backuppc_key_is_read_only_from_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key.pub");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let error = read_public_key(&fifo).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
        assert!(read_public_key(Path::new("/dev/zero")).unwrap_err().to_string().contains("not a regular file"));
        let big = dir.path().join("big.pub");
        std::fs::write(&big, vec![b'a'; 70 * 1024]).unwrap();
        assert!(read_public_key(&big).unwrap_err().to_string().contains("more than 65536 bytes"));
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
    fn the_seeds_mac_is_registered_as_macos() {
        let (server, registry, _dir) = server(Some(&["alice"]));
        assert_eq!(ask(&server, "mac:alice", "127.0.0.2").status, Status::Success);
        assert_eq!(ask(&server, "macos:alice", "127.0.0.2").status, Status::Success);
        assert_eq!(registry.1.borrow().as_slice(), ["macos", "macos"]);
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

    /// A challenger that records every challenge and never answers one.
    #[derive(Default)]
    struct CountingChallenger(usize);
    impl Challenger for CountingChallenger {
        fn ask(&mut self, _realmstring: &str) -> Challenge {
            self.0 += 1;
            Challenge::Gone
        }
        fn failed(&mut self, _reason: &str) {}
        fn host_keys(&mut self, _count: u32) -> Vec<Vec<u8>> {
            Vec::new()
        }
    }

    /// A registry whose `hosts` cannot be read.
    struct UnreadableRegistry;
    impl Registry for UnreadableRegistry {
        fn register(&self, _: &Registration) -> Result<Outcome, RegistryError> {
            panic!("a status request tried to register")
        }
        fn owner_of(&self, _: &HostName) -> Result<Option<String>, RegistryError> {
            Err(RegistryError::Hosts {
                path: "/srv/backuppc/hosts".into(),
                action: "read",
                source: std::io::ErrorKind::PermissionDenied.into(),
            })
        }
        fn pinned_keys(&self, _: &HostName) -> Result<Option<Vec<HostKey>>, RegistryError> {
            Ok(None)
        }
    }

    fn log_of(dir: &tempfile::TempDir) -> String {
        std::fs::read_to_string(dir.path().join("register.log")).unwrap_or_default()
    }

    #[test]
    fn a_status_request_says_whom_the_host_it_comes_from_is_registered_to() {
        let (server, registry, dir) = server(Some(&["alice", "bob"]));
        registry.0.borrow_mut().push(("pc-alice.example.org".into(), "alice".into()));
        let before = registry.0.borrow().clone();
        let response = ask(&server, "info: proto=2", "127.0.0.2");
        assert_eq!(response.status, Status::Success);
        assert_eq!(
            response.text,
            "success\nhost: pc-alice.example.org\nregistered: yes\nowner: alice\nurl: http://b/?host=pc-alice.example.org\n\
             last-backup: none\n"
        );
        assert_eq!(*registry.0.borrow(), before, "a status request changed the registry");
        let log = log_of(&dir);
        assert!(
            log.lines().any(|line| line.starts_with("info ")
                && line.ends_with(": 127.0.0.2 5000 127.0.0.1 22 status of host pc-alice.example.org asked: registered to alice, last backup none (protocol 2)")),
            "{log}"
        );
    }

    #[test]
    fn a_status_request_says_when_the_last_backup_started() {
        let (server, registry, dir) = server(Some(&["alice"]));
        registry.0.borrow_mut().push(("pc-alice.example.org".into(), "alice".into()));
        let host_dir = dir.path().join("top/pc/pc-alice.example.org");
        std::fs::create_dir_all(&host_dir).unwrap();
        // A full, a later incremental, and a later partial that BackupPC does not count.
        let backups = "0\tfull\t1700000000\t1700000100\t10\n\
                       1\tincr\t1700086400\t1700086460\t2\n\
                       2\tpartial\t1700172800\t1700172900\t1\n";
        std::fs::write(host_dir.join("backups"), backups).unwrap();
        let text = ask(&server, "info: proto=2", "127.0.0.2").text;
        assert!(text.ends_with("\nlast-backup: 2023-11-15T22:13:20Z\n"), "{text}");

        // Unreadable: not said, and the administrator is told why.
        std::fs::remove_file(host_dir.join("backups")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", host_dir.join("backups")).unwrap();
        let response = ask(&server, "info: proto=2", "127.0.0.2");
        assert_eq!(response.status, Status::Success);
        assert!(!response.text.contains("last-backup"), "{}", response.text);
        let log = log_of(&dir);
        assert!(
            log.lines().any(|line| line.starts_with("warning ")
                && line.contains("last backup of pc-alice.example.org unknown: ")
                && line.contains("backups: a symbolic link")),
            "{log}"
        );
        assert!(log.contains("asked: registered to alice, last backup unknown (protocol 2)"), "{log}");
        assert!(!dir.path().join("bpc-register-owner-edits.cache").exists(), "a status request wrote the cache");
    }

    #[test]
    fn a_status_request_for_a_host_without_a_line_says_so() {
        let (server, registry, _dir) = server(Some(&["alice"]));
        registry.0.borrow_mut().push(("pc-bob.example.org".into(), "bob".into()));
        let response = ask(&server, "info:", "127.0.0.2");
        assert_eq!(response.status, Status::Success);
        assert_eq!(response.text, "success\nhost: pc-alice.example.org\nregistered: no\n");
        assert_eq!(registry.0.borrow().len(), 1);
    }

    #[test]
    fn a_status_request_answers_only_about_the_host_it_comes_from() {
        // Bob asks from the address whose name is alice's host: he learns
        // what anyone on that machine may learn, and nothing of his own.
        let (server, registry, _dir) = server(Some(&["alice", "bob"]));
        registry.0.borrow_mut().push(("pc-alice.example.org".into(), "alice".into()));
        registry.0.borrow_mut().push(("pc-bob.example.org".into(), "bob".into()));
        for request in ["info: proto=2", "info: host=pc-bob.example.org logon=bob proto=2"] {
            let answer = ask(&server, request, "127.0.0.2").text;
            assert!(answer.contains("host: pc-alice.example.org\n") && answer.contains("owner: alice\n"), "{answer}");
            assert!(!answer.contains("bob"), "{request}: {answer}");
        }
        // A name after the colon makes a registration for an OS called
        // `info`, which is refused before anything is looked up.
        let refused = ask(&server, "info:pc-bob.example.org proto=2", "127.0.0.2");
        assert_eq!(refused.text, "127.0.0.2 5000 127.0.0.1 22 ostype is unknown\n");
        // An address outside the domain, or without a name, learns nothing.
        for from in ["127.0.0.9", "127.0.0.5", "127.0.0.77"] {
            let refused = ask(&server, "info: proto=2", from);
            assert_eq!(refused.text, format!("{from} 5000 127.0.0.1 22 invalid DNS name for this IP\n"));
            assert_eq!(refused.status, Status::Refused);
        }
        assert_eq!(registry.0.borrow().len(), 2);
    }

    #[test]
    fn only_a_registration_writes_the_indexes_of_the_backends_files() {
        let (mut server, registry, dir) = server(Some(&["alice"]));
        registry.0.borrow_mut().push(("pc-alice.example.org".into(), "alice".into()));
        let index = dir.path().join(crate::resolver::INDEX_NAME);
        server.pending_indexes = vec![PendingIndex::new(index.clone(), || b"an index".to_vec())].into();
        assert_eq!(ask(&server, "info: proto=2", "127.0.0.2").status, Status::Success);
        assert!(!index.exists(), "a status request wrote an index");
        // Refused or not, a registration writes it, once.
        assert_eq!(ask(&server, "linux:carol", "127.0.0.2").status, Status::Refused);
        assert_eq!(std::fs::read(&index).unwrap(), b"an index");
        std::fs::remove_file(&index).unwrap();
        assert_eq!(ask(&server, "linux:carol", "127.0.0.2").status, Status::Refused);
        assert!(!index.exists(), "the index was written again");
    }

    #[test]
    fn a_status_request_is_never_challenged_whatever_the_policy() {
        for policy in ["password", "new-hosts"] {
            let registry = std::rc::Rc::new(FakeRegistry::default());
            registry.0.borrow_mut().push(("pc-alice.example.org".into(), "alice".into()));
            let (server, _dir) = server_of(Some(&["alice", "bob"]), SAFE_CONFIG_PL, policy, Box::new(registry.clone()));
            for request in ["info: proto=2", "info:"] {
                let connection = SshConnection::parse("127.0.0.2 5000 127.0.0.1 22").unwrap();
                let mut challenger = CountingChallenger::default();
                let response = server.handle_with(Some(request.as_bytes()), &connection, "ssh://b:22", &mut challenger);
                assert_eq!(challenger.0, 0, "{policy}: {request} was challenged");
                assert_eq!(response.status, Status::Success, "{policy}: {request}: {}", response.text);
                assert!(response.text.contains("owner: alice\n"), "{}", response.text);
            }
            // A registration under the same policy is challenged.
            let mut challenger = CountingChallenger::default();
            let connection = SshConnection::parse("127.0.0.2 5000 127.0.0.1 22").unwrap();
            server.handle_with(Some(b"linux:bob proto=2"), &connection, "ssh://b:22", &mut challenger);
            assert_eq!(challenger.0, 1, "{policy}");
        }
    }

    #[test]
    fn over_http_a_request_without_credentials_is_asked_and_a_wrong_one_fails_once() {
        use crate::challenge::HttpChallenger;
        let registry = std::rc::Rc::new(FakeRegistry::default());
        let (server, dir) = server_of(Some(&["bob"]), SAFE_CONFIG_PL, "password", Box::new(registry.clone()));
        let connection = SshConnection::parse("127.0.0.2 5000 127.0.0.1 443").unwrap();
        let body = b"os=linux&logon=bob&proto=2";
        let request = || protocol::form::parse_form(body).map(|form| form.request);

        let mut asked = HttpChallenger::new(None, Vec::new());
        let response = server.handle_request_with(request(), body, &connection, "https://b:443", &mut asked);
        assert_eq!(
            (response.status, response.text.as_str()),
            (Status::Challenged, "127.0.0.2 5000 127.0.0.1 443 authentication failed\n")
        );
        assert!(!asked.rejected());
        let log = log_of(&dir);
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(
            log.starts_with("info ")
                && log.trim_end().ends_with(
                    ": 127.0.0.2 5000 127.0.0.1 443 password asked for <https://b:443> BackupPC enrollment, for bob"
                ),
            "{log}"
        );

        let wrong = AuthResponse::Plain { username: "bob".into(), password: protocol::Secret::new("wrong".to_owned()) };
        let mut rejected = HttpChallenger::new(Some(Ok(wrong)), Vec::new());
        let response = server.handle_request_with(request(), body, &connection, "https://b:443", &mut rejected);
        assert_eq!(response.status, Status::Challenged);
        assert!(rejected.rejected());
        let log = log_of(&dir);
        let failed: Vec<&str> = log.lines().filter(|line| line.contains(" authentication failed")).collect();
        assert_eq!(failed.len(), 1, "{log}");
        assert!(
            failed[0].starts_with("notice ")
                && failed[0].ends_with("authentication failed (attempt 1): wrong password or unknown user \"bob\""),
            "{log}"
        );
        assert!(registry.0.borrow().is_empty());

        // A malformed form gets the SSH refusal, quoting what was sent.
        let mut challenger = HttpChallenger::new(None, Vec::new());
        let malformed = protocol::form::parse_form(b"os=Linux&logon=bob").map(|form| form.request);
        let response =
            server.handle_request_with(malformed, b"os=Linux&logon=bob", &connection, "https://b:443", &mut challenger);
        assert_eq!(
            (response.status, response.text.as_str()),
            (Status::Refused, "127.0.0.2 5000 127.0.0.1 443 ostype is unknown\n")
        );
        assert!(log_of(&dir).contains("in \"os=Linux&logon=bob\""), "{}", log_of(&dir));
    }

    #[test]
    fn hosts_that_cannot_be_read_is_the_servers_fault() {
        let (server, dir) = server_of(Some(&["alice"]), SAFE_CONFIG_PL, "never", Box::new(UnreadableRegistry));
        let response = ask(&server, "info: proto=2", "127.0.0.2");
        assert_eq!(response.status, Status::ServerFault);
        assert_eq!(response.text, format!("127.0.0.2 5000 127.0.0.1 22 {HOSTS_UNREADABLE}\n"));
        let log = log_of(&dir);
        assert!(log.starts_with("err ") && log.contains("/srv/backuppc/hosts: cannot read"), "{log}");
    }
}
