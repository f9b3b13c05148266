//! `server.toml`: what the administrator decides.

use crate::root_folders::Reach;
use protocol::{Domain, OsName};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// Where the server configuration is read from when no `--config` is given
/// and `BPC_REGISTER_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/bpc-enroll/server.toml";

/// The server configuration, checked, with every path made absolute against
/// the folder of the file it came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// PTR names must be this domain or end in `.domain`.
    #[serde(deserialize_with = "domain")]
    pub domain: Domain,
    /// The OS types accepted in `OS:logon`.
    #[serde(default = "default_os", deserialize_with = "os_list")]
    pub os: Vec<OsName>,
    /// When the server asks for a password.
    #[serde(default)]
    pub auth: AuthPolicy,
    /// The realm named in challenges, after the server's URL.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Logons that may register hosts for others (besides the directory's
    /// administrators group).
    #[serde(default, deserialize_with = "logon_list")]
    pub admins: Vec<protocol::Logon>,
    /// Seconds bpc-register waits, in all, for the answers to its challenges
    /// (a person may be typing a password on the other end).
    #[serde(default = "default_challenge_timeout")]
    pub challenge_timeout: u64,
    /// The journal of registrations (JSON lines); beside `hosts` by default.
    #[serde(default)]
    pub journal: Option<PathBuf>,
    /// Where and how hosts are written for BackupPC.
    pub backuppc: BackupPcConfig,
    /// Who may register.
    pub directory: DirectoryConfig,
    /// How the client's address is turned into a host name.
    pub resolver: ResolverConfig,
    /// Where events are logged.
    #[serde(default)]
    pub log: LogConfig,
    /// The `https://` service (`bpc-register serve`); absent when unused.
    #[serde(default)]
    pub https: Option<HttpsConfig>,
}

/// The `[https]` table: `bpc-register serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpsConfig {
    /// The addresses to listen on (`IP:port`); unused under socket activation.
    #[serde(default, deserialize_with = "socket_addresses")]
    pub listen: Vec<std::net::SocketAddr>,
    /// The certificate chain, PEM; without it (and `key`), plain HTTP on loopback only.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Addresses whose `X-Forwarded-For` is believed.
    #[serde(default, deserialize_with = "ip_addresses")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Connections served at once; more wait in the kernel's queue.
    #[serde(default = "default_max_connections", deserialize_with = "positive")]
    pub max_connections: u64,
    /// Connections served at once from one client address (a trusted proxy
    /// aside); more are closed at once.
    #[serde(default = "default_max_connections_per_address", deserialize_with = "positive")]
    pub max_connections_per_address: u64,
    /// Seconds allowed for the TLS handshake, for the request's headers and
    /// for its body, each.
    #[serde(default = "default_https_timeout", deserialize_with = "positive")]
    pub timeout: u64,
    /// Failed authentications from one address within
    /// `failed-auth-window` after which it is answered `429`.
    #[serde(default = "default_max_failed_auth", deserialize_with = "positive")]
    pub max_failed_auth: u64,
    /// Seconds over which failed authentications are counted.
    #[serde(default = "default_failed_auth_window", deserialize_with = "positive")]
    pub failed_auth_window: u64,
}

/// When the server challenges the client for a password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthPolicy {
    /// Never challenge: the register key alone is enough (the seed's behaviour).
    #[default]
    Never,
    /// Always challenge.
    Password,
    /// Challenge unless the host is already registered to the logon.
    NewHosts,
}

/// The `[backuppc]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupPcConfig {
    /// The folder that holds `hosts`, `LOCK` and the `HOST.pl` files.
    pub conf_dir: PathBuf,
    /// The host's web page; `{host}` is replaced by the host name.
    #[serde(deserialize_with = "url_template")]
    pub url: String,
    /// The public key BackupPC backs clients up with, sent as `key:`.
    pub key: PathBuf,
    /// The client's backup account, written into `RsyncSshArgs`.
    #[serde(default = "default_account", deserialize_with = "account")]
    pub account: String,
    /// The addresses BackupPC connects from, sent as `from:`.
    #[serde(default, deserialize_with = "from_list")]
    pub from: Option<String>,
    /// The port of the clients' sshd, written into `RsyncSshArgs`.
    #[serde(default = "default_client_port")]
    pub client_port: u16,
    /// The private key BackupPC's ssh uses; by default `key` without `.pub`.
    #[serde(default, deserialize_with = "ssh_arg_path")]
    pub identity: Option<PathBuf>,
    /// The known_hosts file BackupPC's ssh records clients' host keys in (one
    /// entry per host name, so that a laptop changing address keeps its key).
    #[serde(default, deserialize_with = "ssh_arg_path")]
    pub known_hosts: Option<PathBuf>,
    /// What BackupPC connects to: the host's DNS name, or the address it
    /// registered from (for clients whose names the server cannot resolve).
    #[serde(default)]
    pub connect_to: ConnectTo,
    /// The command that tells the BackupPC daemon to reload its hosts, run
    /// after a new registration without a shell; empty to skip.
    #[serde(default = "default_reload_command")]
    pub reload_command: Vec<String>,
    /// BackupPC's program that deletes one backup, run without a shell by
    /// `bpc-register hosts remove --purge` with `-h HOST -n NUM -f -r -p`
    /// appended.
    #[serde(default = "default_delete_command")]
    pub delete_command: Vec<String>,
}

impl BackupPcConfig {
    /// The private key BackupPC's ssh uses.
    pub fn identity_path(&self) -> PathBuf {
        match &self.identity {
            Some(path) => path.clone(),
            None => self.key.with_extension(""),
        }
    }
}

/// What `ClientNameAlias` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectTo {
    /// The host's DNS name (the default).
    #[default]
    Name,
    /// The address the registration came from.
    Address,
}

/// The `[directory]` table: which users exist.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DirectoryConfig {
    /// A TOML file of users (the embedded default).
    File {
        /// The users file.
        path: PathBuf,
    },
    /// An LDAP directory.
    Ldap(LdapConfig),
}

/// The `[directory]` table with `kind = "ldap"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    #[serde(deserialize_with = "ldap_url")]
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Where users are searched (subtree).
    pub base: String,
    /// The search filter; `{logon}` is replaced by the RFC 4515-escaped logon.
    #[serde(default = "default_ldap_filter", deserialize_with = "ldap_filter")]
    pub filter: String,
    /// The DN to bind as before searching; anonymous when absent.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// A file holding the bind password (never on the command line).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// The CA certificate(s), PEM, that sign the server's certificate; the
    /// system's roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A group (`member:` DNs) whose members are administrators.
    #[serde(default)]
    pub admin_group: Option<String>,
    /// Seconds allowed for connecting and for each operation.
    #[serde(default = "default_ldap_timeout")]
    pub timeout: u64,
}

/// The `[resolver]` table: address to name and back.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ResolverConfig {
    /// A file in `/etc/hosts` format (the embedded default).
    Static {
        /// The hosts file.
        path: PathBuf,
    },
    /// The DNS.
    Dns {
        /// The servers to ask (`IP` or `IP:port`); the system's resolv.conf when empty.
        #[serde(default, deserialize_with = "dns_servers")]
        servers: Vec<std::net::SocketAddr>,
        /// Seconds allowed for each lookup.
        #[serde(default = "default_dns_timeout")]
        timeout: u64,
    },
}

/// The `[log]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LogConfig {
    /// Standard error (the default).
    #[default]
    Stderr,
    /// A file, one line per event, level first.
    File {
        /// The log file, appended to.
        path: PathBuf,
    },
    /// The system log.
    Syslog {
        /// The facility.
        #[serde(default = "default_facility", deserialize_with = "facility")]
        facility: String,
        /// The datagram socket syslog listens on.
        #[serde(default = "default_syslog_socket")]
        socket: PathBuf,
    },
}

/// Why the server configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is unreadable or invalid.
    #[error(transparent)]
    Toml(#[from] files::TomlError),
    /// Run as root, a folder of its files can be changed by someone else.
    #[error(transparent)]
    Untrusted(#[from] crate::root_folders::Untrusted),
}

impl ServerConfig {
    /// Reads `path` and makes its relative paths relative to its folder.
    /// Run as root, it also checks that the folders of the files root opens
    /// are reached only through folders that no one else may change
    /// ([`crate::root_folders`]).
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let root = nix::unistd::geteuid().is_root();
        if root {
            crate::root_folders::check_config(path)?;
        }
        let mut config: ServerConfig = files::load_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.anchor_paths(base);
        if root {
            for (what, folder, reach) in config.folders_root_opens() {
                crate::root_folders::check(what, &folder, reach)?;
            }
        }
        Ok(config)
    }

    /// The folders of the files a command run as root creates, writes or
    /// reads as bpc-register's own, named for messages, with how much of the
    /// way must be root's alone: BackupPC's configuration folder, the
    /// journal's (where the indexes and caches go too) and the log's, whose
    /// files root never writes through a link, may be another account's;
    /// those of the files root reads by path (the users file, the static
    /// resolver, the LDAP password and CA) may not. BackupPC's key and its
    /// account's SSH files are the account's business, in its own home, and
    /// are not among them (the key is read as a regular file only).
    pub fn folders_root_opens(&self) -> Vec<(&'static str, PathBuf, Reach)> {
        let parent = |path: &Path| files::parent_dir(path).to_owned();
        let journal = self.journal.clone().unwrap_or_else(|| self.backuppc.conf_dir.join(crate::journal::JOURNAL_NAME));
        let mut folders = vec![
            ("BackupPC's configuration folder", self.backuppc.conf_dir.clone(), Reach::Through),
            ("the journal's folder", parent(&journal), Reach::Through),
        ];
        if let LogConfig::File { path } = &self.log {
            folders.push(("the log's folder", parent(path), Reach::Through));
        }
        match &self.directory {
            DirectoryConfig::File { path } => folders.push(("the users file's folder", parent(path), Reach::Whole)),
            DirectoryConfig::Ldap(ldap) => {
                if let Some(path) = &ldap.bind_password_file {
                    folders.push(("the LDAP password file's folder", parent(path), Reach::Whole));
                }
                if let Some(path) = &ldap.ca_file {
                    folders.push(("the LDAP CA file's folder", parent(path), Reach::Whole));
                }
            }
        }
        if let ResolverConfig::Static { path } = &self.resolver {
            folders.push(("the static resolver's folder", parent(path), Reach::Whole));
        }
        folders
    }

    pub(crate) fn anchor_paths(&mut self, base: &Path) {
        let anchor = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        anchor(&mut self.backuppc.conf_dir);
        if let Some(journal) = &mut self.journal {
            anchor(journal);
        }
        anchor(&mut self.backuppc.key);
        for path in [&mut self.backuppc.identity, &mut self.backuppc.known_hosts].into_iter().flatten() {
            anchor(path);
        }
        match &mut self.directory {
            DirectoryConfig::File { path } => anchor(path),
            DirectoryConfig::Ldap(ldap) => {
                for path in [&mut ldap.bind_password_file, &mut ldap.ca_file].into_iter().flatten() {
                    anchor(path);
                }
            }
        }
        match &mut self.resolver {
            ResolverConfig::Static { path } => anchor(path),
            ResolverConfig::Dns { .. } => {}
        }
        if let Some(https) = &mut self.https {
            for path in [&mut https.cert, &mut https.key].into_iter().flatten() {
                anchor(path);
            }
        }
        match &mut self.log {
            LogConfig::Stderr => {}
            LogConfig::File { path } => anchor(path),
            LogConfig::Syslog { socket, .. } => anchor(socket),
        }
    }
}

/// The OS names that the seed's shell setup sent, each with the name
/// bpc-register accepts and records it under: its clients send `mac:LOGON`.
pub const OS_ALIASES: &[(&str, &str)] = &[("mac", "macos")];

/// `os` under its canonical name: an alias of [`OS_ALIASES`] becomes the name
/// it stands for, any other name stays as it is. The `os` list of
/// `server.toml` and the requests are both read through it, so an alias is
/// accepted exactly when its canonical name is.
pub fn canonical_os(os: &OsName) -> OsName {
    OS_ALIASES
        .iter()
        .find(|(alias, _)| *alias == os.as_str())
        .and_then(|(_, canonical)| OsName::parse(canonical).ok())
        .unwrap_or_else(|| os.clone())
}

fn default_os() -> Vec<OsName> {
    ["linux", "macos", "windows"].into_iter().filter_map(|os| OsName::parse(os).ok()).collect()
}

fn default_realm() -> String {
    "BackupPC enrollment".to_owned()
}

fn default_challenge_timeout() -> u64 {
    300
}

fn logon_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<protocol::Logon>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts.iter().map(|text| protocol::Logon::parse(text).map_err(serde::de::Error::custom)).collect()
}

fn default_ldap_filter() -> String {
    "(uid={logon})".to_owned()
}

fn default_ldap_timeout() -> u64 {
    5
}

fn default_dns_timeout() -> u64 {
    2
}

fn default_facility() -> String {
    "local3".to_owned()
}

fn default_syslog_socket() -> PathBuf {
    PathBuf::from("/dev/log")
}

fn ldap_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.starts_with("ldap://") || text.starts_with("ldaps://") {
        Ok(text)
    } else {
        Err(serde::de::Error::custom("must be an ldap:// or ldaps:// URL"))
    }
}

fn ldap_filter<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.starts_with('(') && text.ends_with(')') && text.contains("{logon}") {
        Ok(text)
    } else {
        Err(serde::de::Error::custom("must be a parenthesised LDAP filter holding {logon}"))
    }
}

fn dns_servers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<std::net::SocketAddr>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| {
            text.parse::<std::net::SocketAddr>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 53)))
                .map_err(|_| serde::de::Error::custom(format!("`{text}` is not IP or IP:port")))
        })
        .collect()
}

fn facility<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse::<syslog::Facility>()
        .map(|_| text.clone())
        .map_err(|_| serde::de::Error::custom("must be a syslog facility such as local3, daemon or auth"))
}

fn default_max_connections() -> u64 {
    256
}

fn default_max_connections_per_address() -> u64 {
    16
}

fn default_https_timeout() -> u64 {
    10
}

fn default_max_failed_auth() -> u64 {
    10
}

fn default_failed_auth_window() -> u64 {
    600
}

fn positive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if value == 0 { Err(serde::de::Error::custom("must be at least 1")) } else { Ok(value) }
}

fn socket_addresses<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<std::net::SocketAddr>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| {
            text.parse::<std::net::SocketAddr>().map_err(|_| {
                serde::de::Error::custom(format!("`{text}` is not IP:port (an IPv6 address in brackets: [::1]:8443)"))
            })
        })
        .collect()
}

fn ip_addresses<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<std::net::IpAddr>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| {
            text.parse::<std::net::IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| serde::de::Error::custom(format!("`{text}` is not an IP address")))
        })
        .collect()
}

fn default_client_port() -> u16 {
    22
}

fn default_reload_command() -> Vec<String> {
    ["/usr/share/backuppc/bin/BackupPC_serverMesg", "server", "reload"].map(str::to_owned).to_vec()
}

fn default_delete_command() -> Vec<String> {
    vec!["/usr/share/backuppc/bin/BackupPC_backupDelete".to_owned()]
}

/// A path that goes into `RsyncSshArgs`, which BackupPC splits on white
/// space and in which it substitutes `$name` variables.
fn ssh_arg_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control() || "$'\\\"`".contains(c)) {
        return Err(serde::de::Error::custom("must be a path without spaces, quotes, backslashes or `$`"));
    }
    Ok(Some(PathBuf::from(text)))
}

fn default_account() -> String {
    "bckpciuem".to_owned()
}

fn domain<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Domain, D::Error> {
    let text = String::deserialize(deserializer)?;
    Domain::parse(&text).map_err(serde::de::Error::custom)
}

/// The OS list, each name under its canonical name (`mac` is `macos`), once.
/// `info` names the status request (`info:`), so it is no OS a host could
/// be registered with.
fn os_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<OsName>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    if texts.iter().any(|text| text == protocol::INFO) {
        return Err(serde::de::Error::custom(format!(
            "`{}` names the status request, not an OS: remove it",
            protocol::INFO
        )));
    }
    let mut list: Vec<OsName> = Vec::new();
    for text in &texts {
        let os = canonical_os(&OsName::parse(text).map_err(serde::de::Error::custom)?);
        if !list.contains(&os) {
            list.push(os);
        }
    }
    Ok(list)
}

fn url_template<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    let scheme_ok = text.starts_with("http://") || text.starts_with("https://");
    if !scheme_ok || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(serde::de::Error::custom("must be an http:// or https:// URL without spaces"));
    }
    Ok(text)
}

/// A local account name as `useradd` accepts it by default, so that it can be
/// written into `RsyncSshArgs` (a Perl string run by BackupPC) unquoted.
fn account<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    protocol::AccountName::parse(&text).map(|name| name.to_string()).map_err(serde::de::Error::custom)
}

/// Addresses or patterns as sshd's `from=` option takes them, comma-separated.
fn from_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    protocol::AddressList::parse(&text).map(|list| Some(list.to_string())).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
domain = ".Example.ORG"
os = ["linux", "macos"]

[backuppc]
conf-dir = "backuppc"
url = "http://backup.example.org/backuppc/index.cgi?host={host}"
key = "/var/lib/backuppc/.ssh/id_ed25519.pub"

[directory]
kind = "file"
path = "users.toml"

[resolver]
kind = "static"
path = "hosts.static"
"#;

    fn parse(text: &str) -> Result<ServerConfig, String> {
        let mut config: ServerConfig =
            files::parse_toml(text, Path::new("/srv/server.toml")).map_err(|e| e.to_string())?;
        config.anchor_paths(Path::new("/srv"));
        Ok(config)
    }

    #[test]
    fn reads_a_full_configuration_and_anchors_relative_paths() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.domain.as_str(), "example.org");
        assert_eq!(config.os.len(), 2);
        assert_eq!(config.backuppc.conf_dir, Path::new("/srv/backuppc"));
        assert_eq!(config.backuppc.key, Path::new("/var/lib/backuppc/.ssh/id_ed25519.pub"));
        assert_eq!(config.backuppc.account, "bckpciuem");
        assert!(matches!(config.log, LogConfig::Stderr));
        assert_eq!(config.auth, AuthPolicy::Never);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let message = parse(&GOOD.replace("[directory]\n", "[directory]\ncolour = 1\n")).unwrap_err();
        assert!(message.contains("/srv/server.toml:"), "{message}");
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn bad_values_are_named_with_their_key() {
        for (from, to, key) in [
            ("domain = \".Example.ORG\"", "domain = \"exa mple.org\"", "domain"),
            ("os = [\"linux\", \"macos\"]", "os = [\"Linux\"]", "os"),
            ("key = \"/var", "account = \"root; rm\"\nkey = \"/var", "backuppc.account"),
            ("url = \"http://", "url = \"javascript://", "backuppc.url"),
            ("kind = \"static\"", "kind = \"nis\"", "resolver.kind"),
        ] {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "replacement of {from} did nothing");
            let message = parse(&text).unwrap_err();
            assert!(message.contains(&format!("key `{key}`")), "{key}: {message}");
        }
    }

    #[test]
    fn info_is_not_an_os_since_it_names_the_status_request() {
        let message = parse(&GOOD.replace("os = [\"linux\", \"macos\"]", "os = [\"linux\", \"info\"]")).unwrap_err();
        assert!(message.contains("key `os`") && message.contains("`info` names the status request"), "{message}");
    }

    #[test]
    fn reads_the_real_backends() {
        let text = GOOD
            .replace("kind = \"file\"\npath = \"users.toml\"", "kind = \"ldap\"\nurl = \"ldaps://ldap.example.org\"\nbase = \"ou=people,dc=example,dc=org\"\nbind-dn = \"cn=reader,dc=example,dc=org\"\nbind-password-file = \"ldap.secret\"")
            .replace("kind = \"static\"\npath = \"hosts.static\"", "kind = \"dns\"\nservers = [\"127.0.0.1:5353\", \"::1\"]")
            + "[log]\nkind = \"syslog\"\n";
        let config = parse(&text).unwrap();
        let DirectoryConfig::Ldap(ldap) = &config.directory else { panic!("not ldap") };
        assert_eq!(ldap.filter, "(uid={logon})");
        assert_eq!(ldap.bind_password_file.as_deref(), Some(Path::new("/srv/ldap.secret")));
        let ResolverConfig::Dns { servers, timeout } = &config.resolver else { panic!("not dns") };
        assert_eq!(servers.iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["127.0.0.1:5353", "[::1]:53"]);
        assert_eq!(*timeout, 2);
        let LogConfig::Syslog { facility, socket } = &config.log else { panic!("not syslog") };
        assert_eq!((facility.as_str(), socket.as_path()), ("local3", Path::new("/dev/log")));

        for (bad, key) in [
            ("url = \"ldaps://ldap.example.org\"", "url = \"http://ldap\""),
            ("base = ", "filter = \"uid=x\"\nbase = "),
            ("servers = [\"127.0.0.1:5353\", \"::1\"]", "servers = [\"dns.example.org\"]"),
            ("kind = \"syslog\"\n", "kind = \"syslog\"\nfacility = \"local9\"\n"),
        ] {
            assert!(parse(&text.replace(bad, key)).is_err(), "{key} was accepted");
        }
    }

    #[test]
    fn reads_the_authentication_policy() {
        let config =
            parse(&format!("auth = \"new-hosts\"\nrealm = \"Example backups\"\nadmins = [\"carol\"]\n{GOOD}")).unwrap();
        assert_eq!(config.auth, AuthPolicy::NewHosts);
        assert_eq!(config.realm, "Example backups");
        assert_eq!(config.admins[0].as_str(), "carol");
        let message = parse(&format!("auth = \"sometimes\"\n{GOOD}")).unwrap_err();
        assert!(message.contains("key `auth`"), "{message}");
        let message = parse(&format!("admins = [\"carol;x\"]\n{GOOD}")).unwrap_err();
        assert!(message.contains("admins"), "{message}");
    }

    #[test]
    fn the_seeds_os_names_stand_for_their_canonical_name_in_the_list() {
        let names = |config: &ServerConfig| config.os.iter().map(|os| os.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&parse(&GOOD.replace("\"macos\"]", "\"mac\", \"macos\"]")).unwrap()), ["linux", "macos"]);
        assert_eq!(names(&parse(&GOOD.replace("\"macos\"]", "\"mac\"]")).unwrap()), ["linux", "macos"]);
        let default = parse(&GOOD.replace("os = [\"linux\", \"macos\"]\n", "")).unwrap();
        assert_eq!(names(&default), ["linux", "macos", "windows"]);
        let mac = OsName::parse("mac").unwrap();
        assert_eq!(canonical_os(&mac).as_str(), "macos");
        assert_eq!(canonical_os(&OsName::parse("beos").unwrap()).as_str(), "beos");
    }

    #[test]
    fn reads_the_https_table_with_its_defaults() {
        let text = format!(
            "{GOOD}[https]\nlisten = [\"127.0.0.1:8443\", \"[::1]:8443\"]\ncert = \"https.crt\"\nkey = \"/etc/k\"\n\
             trusted-proxies = [\"127.0.0.1\", \"::ffff:10.0.0.1\"]\n"
        );
        let https = parse(&text).unwrap().https.unwrap();
        assert_eq!(https.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(), ["127.0.0.1:8443", "[::1]:8443"]);
        assert_eq!(https.cert.as_deref(), Some(Path::new("/srv/https.crt")));
        assert_eq!(https.key.as_deref(), Some(Path::new("/etc/k")));
        assert_eq!(https.trusted_proxies.iter().map(|a| a.to_string()).collect::<Vec<_>>(), ["127.0.0.1", "10.0.0.1"]);
        assert_eq!((https.max_connections, https.max_connections_per_address, https.timeout), (256, 16, 10));
        assert_eq!((https.max_failed_auth, https.failed_auth_window), (10, 600));
        assert!(parse(GOOD).unwrap().https.is_none());
        for (bad, key) in [
            ("listen = [\"localhost:8443\"]", "https.listen"),
            ("trusted-proxies = [\"10.0.0.0/8\"]", "https.trusted-proxies"),
            ("timeout = 0", "https.timeout"),
        ] {
            let message = parse(&format!("{GOOD}[https]\n{bad}\n")).unwrap_err();
            assert!(message.contains(&format!("key `{key}`")), "{bad}: {message}");
        }
    }

    #[test]
    fn from_must_be_a_plain_address_list() {
        let text = GOOD.replace("key = \"/var", "from = \"192.0.2.10,2001:db8::/32\"\nkey = \"/var");
        assert_eq!(parse(&text).unwrap().backuppc.from.as_deref(), Some("192.0.2.10,2001:db8::/32"));
        let text = GOOD.replace("key = \"/var", "from = \"1.2.3.4\\\" ,command=\\\"x\"\nkey = \"/var");
        let message = parse(&text).unwrap_err();
        assert!(message.contains("from"), "{message}");
    }
}
