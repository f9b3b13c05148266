//! `client.toml`: how this machine enrolls.

pub use files::TomlError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the client configuration is read from when no `--config` is given
/// and `BPC_ENROLL_CONFIG` is unset. A missing default file means defaults.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/bpc-enroll/client.toml";

/// The client configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientConfig {
    /// The default for `--server`.
    #[serde(default)]
    pub server: Option<String>,
    /// The private key bound to `bpc-register` on the server.
    #[serde(default)]
    pub register_key: Option<PathBuf>,
    /// The server's pinned host key.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// The local backup account.
    #[serde(default = "default_account", deserialize_with = "account_name")]
    pub account: String,
    /// Whether rsyncsend accepts restores.
    #[serde(default = "yes")]
    pub allow_restore: bool,
    /// The folders BackupPC may back up and restore into (absolute paths).
    #[serde(default = "everything", deserialize_with = "absolute_paths")]
    pub allowed_paths: Vec<String>,
    /// Whether credentials may be cached.
    #[serde(default = "yes")]
    pub store_auth_creds: bool,
    /// Whether a password may be cached unencrypted when no OS credential
    /// store takes it (Subversion's option of the same name).
    #[serde(default)]
    pub store_plaintext_passwords: PlaintextPolicy,
    /// Seconds to wait for the server to answer the connection, and for a
    /// silent server, before giving up.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    /// The machine's SSH host public keys, sent for pinning; `None`: those
    /// that `sshd -T` names (`hostkey`, with `.pub`).
    #[serde(default)]
    pub host_keys: Option<Vec<PathBuf>>,
    /// For `https://`: a PEM file of the CA certificates that alone are
    /// trusted to sign the server's certificate; `None`: the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            server: None,
            register_key: None,
            known_hosts: None,
            account: default_account(),
            allow_restore: true,
            allowed_paths: everything(),
            store_auth_creds: true,
            store_plaintext_passwords: PlaintextPolicy::Ask,
            timeout: default_timeout(),
            host_keys: None,
            ca_file: None,
        }
    }
}

impl ClientConfig {
    /// Reads `path`, making its relative paths relative to its folder.
    pub fn load(path: &Path) -> Result<ClientConfig, files::TomlError> {
        let mut config: ClientConfig = files::load_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let host_keys = config.host_keys.iter_mut().flatten();
        let files = [&mut config.register_key, &mut config.known_hosts, &mut config.ca_file];
        for key in files.into_iter().flatten().chain(host_keys) {
            if key.is_relative() {
                *key = base.join(&*key);
            }
        }
        Ok(config)
    }

    /// Reads the configuration the way the programs do: an explicit path
    /// must exist; the default path may be absent.
    pub fn load_default_or(path: Option<&Path>) -> Result<ClientConfig, files::TomlError> {
        match path {
            Some(path) => ClientConfig::load(path),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => ClientConfig::load(Path::new(DEFAULT_CONFIG_PATH)),
            None => Ok(ClientConfig::default()),
        }
    }

    /// The configuration as TOML text, as setup installs it.
    pub fn to_toml(&self) -> String {
        toml_text(self)
    }
}

/// The per-user overrides in `~/.config/bpc-enroll/config.toml` (or under
/// `$XDG_CONFIG_HOME`): only what a user may decide for themself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserConfig {
    /// Whether credentials may be cached for this user.
    #[serde(default)]
    pub store_auth_creds: Option<bool>,
    /// This user's choice about unencrypted passwords; it takes precedence
    /// over `client.toml`'s, as Subversion's per-user `servers` file does.
    #[serde(default)]
    pub store_plaintext_passwords: Option<PlaintextPolicy>,
}

/// `store-plaintext-passwords`: what to do when a password can only be
/// kept unencrypted in the cache file (no OS credential store answered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlaintextPolicy {
    /// Ask on the terminal; without one, keep only the username.
    #[default]
    Ask,
    /// Store the password in the file.
    Yes,
    /// Never store the password in the file; keep only the username.
    No,
}

impl PlaintextPolicy {
    /// The value as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            PlaintextPolicy::Ask => "ask",
            PlaintextPolicy::Yes => "yes",
            PlaintextPolicy::No => "no",
        }
    }
}

impl UserConfig {
    /// The per-user file, when the user has a config folder
    /// ([`ConfigHome::detect`](crate::paths::ConfigHome::detect), which
    /// passes over another user's folder when running as root).
    pub fn path() -> Option<PathBuf> {
        Some(crate::paths::ConfigHome::detect()?.user_config_file())
    }

    /// Reads the per-user file; absent means no overrides.
    pub fn load() -> Result<UserConfig, files::TomlError> {
        match UserConfig::path() {
            Some(path) if path.exists() => files::load_toml(&path),
            _ => Ok(UserConfig::default()),
        }
    }
}

fn toml_text(config: &ClientConfig) -> String {
    let mut out = String::from("# bpc-enroll client configuration, written by `bpc-enroll setup`.\n");
    if let Some(server) = &config.server {
        out.push_str(&format!("server = {}\n", quote(server)));
    }
    if let Some(path) = &config.register_key {
        out.push_str(&format!("register-key = {}\n", quote(&path.to_string_lossy())));
    }
    if let Some(path) = &config.known_hosts {
        out.push_str(&format!("known-hosts = {}\n", quote(&path.to_string_lossy())));
    }
    if let Some(path) = &config.ca_file {
        out.push_str(&format!("ca-file = {}\n", quote(&path.to_string_lossy())));
    }
    out.push_str(&format!("account = {}\n", quote(&config.account)));
    out.push_str(&format!("allow-restore = {}\n", config.allow_restore));
    let paths: Vec<String> = config.allowed_paths.iter().map(|p| quote(p)).collect();
    out.push_str(&format!("allowed-paths = [{}]\n", paths.join(", ")));
    out.push_str(&format!("store-auth-creds = {}\n", config.store_auth_creds));
    out.push_str(&format!("store-plaintext-passwords = {}\n", quote(config.store_plaintext_passwords.as_str())));
    out.push_str(&format!("timeout = {}\n", config.timeout));
    out
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The backup account, checked as the one rule both sides share: a value
/// that reached the configuration can become a system account, a path and a
/// sudo rule.
fn account_name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    protocol::AccountName::parse(&text).map(|name| name.to_string()).map_err(serde::de::Error::custom)
}

fn default_account() -> String {
    "bckpciuem".to_owned()
}

fn everything() -> Vec<String> {
    vec!["/".to_owned()]
}

fn absolute_paths<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let paths = Vec::<String>::deserialize(deserializer)?;
    match paths.iter().find(|p| !crate::rsyncsend::path_allowed(p, &everything())) {
        Some(bad) => Err(serde::de::Error::custom(format!("`{bad}` is not a plain absolute path"))),
        None => Ok(paths),
    }
}

fn default_timeout() -> u32 {
    10
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_file_means_defaults() {
        let config: ClientConfig = files::parse_toml("", Path::new("c.toml")).unwrap();
        assert_eq!(config, ClientConfig::default());
    }

    #[test]
    fn a_relative_ca_file_is_relative_to_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(&path, "server = \"https://backup.example.org\"\nca-file = \"site/ca.pem\"\n").unwrap();
        let config = ClientConfig::load(&path).unwrap();
        assert_eq!(config.ca_file, Some(dir.path().join("site/ca.pem")));
        assert!(config.to_toml().contains(&format!("ca-file = \"{}\"\n", dir.path().join("site/ca.pem").display())));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = files::parse_toml::<ClientConfig>("acount = \"x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(error.to_string().contains("acount"), "{error}");
    }

    #[test]
    fn a_backup_account_that_could_not_be_a_system_account_is_refused_at_load() {
        for bad in ["Root", "a b", "../x", "a\\\"b", "x,y"] {
            let text = format!("account = {}\n", quote(bad));
            let error = files::parse_toml::<ClientConfig>(&text, Path::new("c.toml")).unwrap_err();
            assert!(error.to_string().contains("account"), "{bad:?}: {error}");
        }
        let config: ClientConfig = files::parse_toml("account = \"backup_1\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(config.account, "backup_1");
    }

    #[test]
    fn plaintext_passwords_take_subversions_three_values() {
        for (text, policy) in
            [("ask", PlaintextPolicy::Ask), ("yes", PlaintextPolicy::Yes), ("no", PlaintextPolicy::No)]
        {
            let config: ClientConfig =
                files::parse_toml(&format!("store-plaintext-passwords = \"{text}\"\n"), Path::new("c.toml")).unwrap();
            assert_eq!(config.store_plaintext_passwords, policy);
            let user: UserConfig =
                files::parse_toml(&format!("store-plaintext-passwords = \"{text}\"\n"), Path::new("u.toml")).unwrap();
            assert_eq!(user.store_plaintext_passwords, Some(policy));
        }
        let error =
            files::parse_toml::<ClientConfig>("store-plaintext-passwords = true\n", Path::new("c.toml")).unwrap_err();
        assert!(error.to_string().contains("store-plaintext-passwords"), "{error}");
        let error = files::parse_toml::<UserConfig>("account = \"x\"\n", Path::new("u.toml")).unwrap_err();
        assert!(error.to_string().contains("account"), "{error}");
    }

    proptest! {
        #[test]
        fn written_configuration_reads_back(server in any::<String>(), account in "[a-z_][a-z0-9_-]{0,31}", restore in any::<bool>(), plaintext in prop::sample::select(vec![PlaintextPolicy::Ask, PlaintextPolicy::Yes, PlaintextPolicy::No]), ca_file in proptest::option::of("/[a-z0-9/._-]{1,30}")) {
            let config = ClientConfig { server: Some(server), account, allow_restore: restore, store_plaintext_passwords: plaintext, ca_file: ca_file.map(PathBuf::from), ..ClientConfig::default() };
            let back: ClientConfig = files::parse_toml(&config.to_toml(), Path::new("c.toml")).unwrap();
            prop_assert_eq!(back, config);
        }
    }
}
