//! Answering the server's challenge: the command line, then the per-realm
//! cache, then a prompt, the way Subversion's client does.
//!
//! One file per concern: [`CredentialChain`] here; the terminal prompts in
//! `prompt`; the `svn.simple` cache on disk in `cache` (its folders and
//! files through `cachedir`, its format in `hashdump`); the OS store in
//! `store`; `svn auth`'s patterns in `pattern`.

mod cache;
pub mod cachedir;
mod hashdump;
mod pattern;
mod prompt;
mod store;

pub use cache::{CREDENTIAL_KIND, CacheEntry, CredentialCache, Listed, Listing, OS_STORE_PASSTYPE, PasswordPlace};
pub use cachedir::CacheError;
pub use hashdump::{HashDump, parse_hash_dump, render_hash_dump};
pub use pattern::{glob_matches, matches_all};
pub use store::{KeyringStore, PasswordStore};

use crate::config::PlaintextPolicy;
use protocol::Secret;
use protocol::text::printable;
use std::io::{self, Read};

/// Why no credentials could be given.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A password is needed and there is no way to ask for one.
    #[error(
        "the server {realm} asks for a password and {why}: give --username NAME and --password-stdin \
         (the password on standard input), or run on a terminal without --non-interactive"
    )]
    CannotAsk {
        /// The realmstring.
        realm: String,
        /// Why no prompt is possible.
        why: &'static str,
    },
    /// Reading the password failed.
    #[error("cannot read the password: {0}")]
    Read(io::Error),
}

/// Answers challenges and learns whether the answer was right.
pub trait Authenticator {
    /// The next name and password to try for `realm`; `None` when there is
    /// nothing left to try (the client then cancels).
    fn credentials(&mut self, realm: &str) -> Result<Option<(String, Secret)>, CredentialError>;
    /// The last credentials were rejected.
    fn rejected(&mut self, realm: &str);
    /// The last credentials were accepted.
    fn accepted(&mut self, realm: &str);
}

/// For exchanges that must never be challenged.
#[derive(Debug, Default)]
pub struct NoCredentials;

impl Authenticator for NoCredentials {
    fn credentials(&mut self, realm: &str) -> Result<Option<(String, Secret)>, CredentialError> {
        Err(CredentialError::CannotAsk { realm: printable(realm), why: "this command cannot ask for one" })
    }
    fn rejected(&mut self, _realm: &str) {}
    fn accepted(&mut self, _realm: &str) {}
}

/// Where the current credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    CommandLine,
    Cache,
    Prompt,
}

/// How the chain may find and keep credentials.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// `--username`; the logon when absent.
    pub username: Option<String>,
    /// The name used when none is given.
    pub default_username: String,
    /// `--password-stdin`: read the password from standard input when challenged.
    pub password_stdin: bool,
    /// `--non-interactive`: never prompt.
    pub non_interactive: bool,
    /// Whether accepted credentials may be written to the cache.
    pub store: bool,
    /// `store-plaintext-passwords`: whether the password may go into the
    /// file when no OS store takes it.
    pub plaintext: PlaintextPolicy,
    /// The cache, if there is a place for one.
    pub cache: Option<CredentialCache>,
    /// How many times to prompt before giving up.
    pub max_prompts: usize,
}

/// The client's credential chain: command line, then cache, then prompt.
pub struct CredentialChain {
    options: ChainOptions,
    tried_command_line: bool,
    tried_cache: bool,
    prompts: usize,
    current: Option<(Source, String, Secret)>,
    /// What happened, for people reading along (never a password).
    pub events: Vec<String>,
    /// What the person should be told: where the password was kept, cache
    /// files that were left aside and why.
    pub notices: Vec<String>,
}

impl CredentialChain {
    /// A chain with these options.
    pub fn new(options: ChainOptions) -> CredentialChain {
        CredentialChain {
            options,
            tried_command_line: false,
            tried_cache: false,
            prompts: 0,
            current: None,
            events: Vec::new(),
            notices: Vec::new(),
        }
    }

    fn username(&self) -> String {
        self.options.username.clone().unwrap_or_else(|| self.options.default_username.clone())
    }

    fn try_command_line(&mut self) -> Result<Option<(String, Secret)>, CredentialError> {
        if self.tried_command_line || !self.options.password_stdin {
            return Ok(None);
        }
        self.tried_command_line = true;
        let mut text = String::new();
        io::stdin().read_to_string(&mut text).map_err(CredentialError::Read)?;
        let password = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        Ok(Some((self.username(), Secret::new(password))))
    }

    fn try_cache(&mut self, realm: &str) -> Option<(String, Secret)> {
        if self.tried_cache {
            return None;
        }
        self.tried_cache = true;
        let entry = match self.options.cache.as_ref()?.load(realm) {
            Ok(entry) => entry?,
            Err(error) => {
                self.notices.push(format!("the cached credentials were not used: {error}"));
                return None;
            }
        };
        let username = entry.get("username")?.clone();
        let password = entry.get("password")?.clone();
        if self.options.username.as_ref().is_some_and(|wanted| wanted != &username) {
            return None;
        }
        Some((username, Secret::new(password)))
    }

    fn try_prompt(&mut self, realm: &str) -> Result<Option<(String, Secret)>, CredentialError> {
        if self.prompts >= self.options.max_prompts {
            return Ok(None);
        }
        let cannot = |why| CredentialError::CannotAsk { realm: printable(realm), why };
        if self.options.non_interactive {
            return Err(cannot("--non-interactive forbids a prompt"));
        }
        if !prompt::has_terminal() {
            return Err(cannot("there is no terminal to ask on"));
        }
        self.prompts += 1;
        let username = self.username();
        let password = prompt::ask_password(&username, realm).map_err(CredentialError::Read)?;
        Ok(Some((username, Secret::new(password))))
    }
}

impl Authenticator for CredentialChain {
    fn credentials(&mut self, realm: &str) -> Result<Option<(String, Secret)>, CredentialError> {
        let (source, found) = if let Some(found) = self.try_command_line()? {
            (Source::CommandLine, found)
        } else if let Some(found) = self.try_cache(realm) {
            (Source::Cache, found)
        } else {
            match self.try_prompt(realm)? {
                Some(found) => (Source::Prompt, found),
                None => {
                    self.events.push("no more credentials to try: cancelled".into());
                    return Ok(None);
                }
            }
        };
        self.events.push(format!("answered as {} (from {source:?})", found.0));
        self.current = Some((source, found.0.clone(), found.1.clone()));
        Ok(Some(found))
    }

    /// A cached credential that the server rejects is removed from the cache.
    fn rejected(&mut self, realm: &str) {
        self.events.push("rejected".into());
        if let (Some((Source::Cache, _, _)), Some(cache)) = (&self.current, &self.options.cache)
            && let Err(error) = cache.remove(realm)
        {
            self.notices.push(format!("the rejected credentials stay cached: {error}"));
        }
        self.current = None;
    }

    fn accepted(&mut self, realm: &str) {
        self.events.push("accepted".into());
        let Some((source, username, password)) = self.current.take() else { return };
        if source == Source::Cache || !self.options.store {
            return;
        }
        let Some(cache) = self.options.cache.clone() else { return };
        let policy = self.options.plaintext;
        let non_interactive = self.options.non_interactive;
        let mut why_not = "store-plaintext-passwords is \"no\"";
        let decide = || match policy {
            PlaintextPolicy::Yes => true,
            PlaintextPolicy::No => false,
            PlaintextPolicy::Ask if non_interactive => {
                why_not = "--non-interactive forbids asking whether to store it unencrypted";
                false
            }
            PlaintextPolicy::Ask => match prompt::ask_plaintext(realm) {
                Some(answer) => {
                    why_not = "you answered no";
                    answer
                }
                None => {
                    why_not = "there was no terminal to ask whether to store it unencrypted";
                    false
                }
            },
        };
        let shown = printable(realm);
        if let Some(note) = cache.note() {
            self.notices.push(note.to_owned());
        }
        match cache.store(realm, &username, &password, decide) {
            Ok((path, place)) => {
                self.events.push(format!("cached in {}", path.display()));
                let file = path.display();
                self.notices.push(match place {
                    PasswordPlace::OsStore => {
                        format!(
                            "the password for {shown} is in the system's credential store; {file} holds the username"
                        )
                    }
                    PasswordPlace::File => format!(
                        "the password for {shown} is stored unencrypted in {file} (readable only by its owner): \
                         no system credential store answered (under sudo the desktop's is out of reach); \
                         `bpc-enroll auth --remove PATTERN` forgets it"
                    ),
                    PasswordPlace::NotStored => format!(
                        "only the username for {shown} was cached, in {file}; the password was not stored because \
                         {why_not} (store-plaintext-passwords = \"yes\" in client.toml or the per-user config.toml \
                         stores it)"
                    ),
                });
            }
            Err(error) => {
                self.events.push(format!("could not cache: {error}"));
                self.notices.push(format!("the credentials were not cached: {error}"));
            }
        }
    }
}
