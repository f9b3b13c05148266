//! Answering the server's challenge: the command line, then the per-realm
//! cache, then a prompt, the way Subversion's client does.

pub use crate::cachedir::CacheError;
use crate::cachedir::PrivateDir;
use crate::config::PlaintextPolicy;
use md5::{Digest, Md5};
use protocol::Secret;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

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
        Err(CredentialError::CannotAsk {
            realm: crate::setup::printable(realm),
            why: "this command cannot ask for one",
        })
    }
    fn rejected(&mut self, _realm: &str) {}
    fn accepted(&mut self, _realm: &str) {}
}

/// An OS credential store (Secret Service, Keychain, Credential Manager):
/// where passwords go when there is one, instead of the cache file.
pub trait PasswordStore {
    /// Stores `password` for `username` in `realm`.
    fn set(&self, realm: &str, username: &str, password: &Secret) -> Result<(), String>;
    /// The password for `username` in `realm`, if stored.
    fn get(&self, realm: &str, username: &str) -> Option<Secret>;
    /// Forgets it.
    fn delete(&self, realm: &str, username: &str);
}

/// The `passtype` of cache files whose password is in the OS store.
pub const OS_STORE_PASSTYPE: &str = "bpc-enroll-keyring";

/// The OS store through keyring-core's default store: one entry per realm
/// and user, under the service `bpc-enroll`.
#[derive(Debug, Default)]
pub struct KeyringStore;

impl KeyringStore {
    /// The system's store, when one answers here; `None` otherwise (no
    /// session bus, no Secret Service: the file keeps the password then).
    pub fn detect() -> Option<KeyringStore> {
        #[cfg(target_os = "linux")]
        {
            std::env::var_os("DBUS_SESSION_BUS_ADDRESS")?;
            let store = zbus_secret_service_keyring_store::Store::new().ok()?;
            keyring_core::set_default_store(store);
        }
        let probe = keyring_core::Entry::new("bpc-enroll", "probe").ok()?;
        match probe.get_password() {
            Ok(_) | Err(keyring_core::Error::NoEntry) => Some(KeyringStore),
            Err(_) => {
                keyring_core::unset_default_store();
                None
            }
        }
    }

    fn entry(realm: &str, username: &str) -> Option<keyring_core::Entry> {
        keyring_core::Entry::new(&format!("bpc-enroll {realm}"), username).ok()
    }
}

impl PasswordStore for KeyringStore {
    fn set(&self, realm: &str, username: &str, password: &Secret) -> Result<(), String> {
        let entry = KeyringStore::entry(realm, username).ok_or("no credential store")?;
        entry.set_password(password.expose()).map_err(|e| e.to_string())
    }

    fn get(&self, realm: &str, username: &str) -> Option<Secret> {
        KeyringStore::entry(realm, username)?.get_password().ok().map(Secret::new)
    }

    fn delete(&self, realm: &str, username: &str) {
        if let Some(entry) = KeyringStore::entry(realm, username) {
            let _ = entry.delete_credential();
        }
    }
}

/// Subversion's on-disk cache of simple credentials: one file per realm,
/// named by the MD5 of the realmstring, in hash-dump format. With an OS
/// store, the file keeps the name and the realm and the store the password.
///
/// Every file is reached through [`PrivateDir`]: no link is followed, and a
/// file or folder that is not the user's own is refused with the reason.
#[derive(Clone)]
pub struct CredentialCache {
    base: PathBuf,
    levels: Vec<OsString>,
    os_store: Option<std::sync::Arc<dyn PasswordStore>>,
    note: Option<String>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").field("dir", &self.dir()).field("os_store", &self.os_store.is_some()).finish()
    }
}

/// One cached entry, as its keys say.
pub type CacheEntry = BTreeMap<String, String>;

/// A file of the cache as `svn auth` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The file.
    pub path: PathBuf,
    /// What it holds.
    pub entry: CacheEntry,
}

impl Listed {
    /// The realmstring (present in every listed file).
    pub fn realm(&self) -> &str {
        self.entry.get("svn:realmstring").map_or("", String::as_str)
    }

    /// The username, when the file has one.
    pub fn username(&self) -> Option<&str> {
        self.entry.get("username").map(String::as_str)
    }
}

/// What the cache holds, and what it had to leave aside.
#[derive(Debug, Default)]
pub struct Listing {
    /// The credential files, by file name.
    pub entries: Vec<Listed>,
    /// Files that were not read, with the reason.
    pub ignored: Vec<CacheError>,
}

/// Where a stored password went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPlace {
    /// The OS credential store holds it; the file holds the rest.
    OsStore,
    /// The file holds it, unencrypted.
    File,
    /// Only the username was kept.
    NotStored,
}

impl CredentialCache {
    /// The cache in `dir`, laid out as Subversion's `CONFIG/auth/svn.simple`:
    /// the last two levels are the cache's own (checked, made 0700 when
    /// missing), passwords in the file.
    pub fn new(dir: impl Into<PathBuf>) -> CredentialCache {
        CredentialCache::with_levels(dir.into(), 2)
    }

    /// The cache in `dir`, whose last `levels` folders are the cache's own.
    fn with_levels(dir: PathBuf, levels: usize) -> CredentialCache {
        let mut base = dir;
        let mut own = Vec::new();
        while own.len() < levels {
            match (base.file_name().map(OsStr::to_owned), base.parent()) {
                (Some(name), Some(parent)) => {
                    own.push(name);
                    base = parent.to_owned();
                }
                _ => break,
            }
        }
        own.reverse();
        CredentialCache { base, levels: own, os_store: None, note: None }
    }

    /// The same cache with passwords in `store`.
    pub fn with_os_store(mut self, store: std::sync::Arc<dyn PasswordStore>) -> CredentialCache {
        self.os_store = Some(store);
        self
    }

    /// `$XDG_CONFIG_HOME/bpc-enroll/auth/svn.simple`, or under `$HOME/.config`
    /// when the variable is unset or empty, or under the home folder of the
    /// password database.
    ///
    /// As root, a configuration folder that belongs to someone else (an
    /// `XDG_CONFIG_HOME` or `HOME` kept through `sudo`) is passed over: its
    /// owner could swap its folders for links while root writes secrets
    /// there. The next one that root owns is used, and
    /// [`CredentialCache::note`] says so.
    pub fn default_location() -> Option<CredentialCache> {
        let euid = nix::unistd::geteuid();
        let candidates: Vec<(&str, PathBuf)> = [
            std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map(|v| ("XDG_CONFIG_HOME", PathBuf::from(v))),
            std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|v| ("HOME", PathBuf::from(v).join(".config"))),
            nix::unistd::User::from_uid(euid)
                .ok()
                .flatten()
                .map(|user| ("the password database", user.dir.join(".config"))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut passed_over = Vec::new();
        let mut chosen = None;
        for (source, config) in candidates {
            match owner_of_nearest(&config) {
                Some(owner) if euid.is_root() && owner != 0 => {
                    passed_over.push(format!("{} (from {source}) belongs to uid {owner}", config.display()));
                }
                _ => {
                    chosen = Some(config);
                    break;
                }
            }
        }
        let config = chosen?;
        let mut cache = CredentialCache::with_levels(config.join("bpc-enroll/auth/svn.simple"), 3);
        if !passed_over.is_empty() {
            cache.note = Some(format!(
                "running as root, the credential cache is kept under {}, not in a folder of another user: {}",
                config.display(),
                passed_over.join("; ")
            ));
        }
        Some(cache)
    }

    /// Why the cache is not where the environment points, if it is not.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The folder.
    pub fn dir(&self) -> PathBuf {
        let mut dir = self.base.clone();
        dir.extend(&self.levels);
        dir
    }

    /// The name of `realm`'s file: the lowercase hex MD5 of the realmstring.
    pub fn file_name_for(realm: &str) -> OsString {
        let digest = Md5::digest(realm.as_bytes());
        OsString::from(digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    /// The file of `realm`.
    pub fn path_for(&self, realm: &str) -> PathBuf {
        self.dir().join(CredentialCache::file_name_for(realm))
    }

    fn open(&self, create: bool) -> Result<Option<PrivateDir>, CacheError> {
        PrivateDir::open(&self.base, &self.levels, create)
    }

    /// The entry for `realm`, if there is one that reads, with its password
    /// fetched from the OS store when the file does not hold it. A file that
    /// is not the user's own (a link, someone else's, readable by others) is
    /// an error that says why; it is not read.
    pub fn load(&self, realm: &str) -> Result<Option<CacheEntry>, CacheError> {
        let Some(dir) = self.open(false)? else { return Ok(None) };
        let Some(bytes) = dir.read(&CredentialCache::file_name_for(realm))? else { return Ok(None) };
        let Some(mut entry) = parse_hash_dump(&bytes) else { return Ok(None) };
        if entry.get("svn:realmstring").map(String::as_str) != Some(realm) {
            return Ok(None);
        }
        if !entry.contains_key("password") && entry.get("passtype").map(String::as_str) == Some(OS_STORE_PASSTYPE) {
            let password = entry.get("username").and_then(|username| self.os_store.as_ref()?.get(realm, username));
            if let Some(password) = password {
                entry.insert("password".into(), password.expose().to_owned());
            }
        }
        Ok(Some(entry))
    }

    /// Stores a name and password for `realm`: folders 0700 and the file
    /// 0600 from their creation, the file replaced atomically. The password
    /// goes to the OS store when one takes it; otherwise into the file only
    /// if `may_write_plaintext` says so, else the file keeps the username
    /// alone (as Subversion does).
    pub fn store(
        &self,
        realm: &str,
        username: &str,
        password: &Secret,
        may_write_plaintext: impl FnOnce() -> bool,
    ) -> Result<(PathBuf, PasswordPlace), CacheError> {
        let Some(dir) = self.open(true)? else {
            return Err(CacheError::Io { path: self.dir(), source: io::ErrorKind::NotFound.into() });
        };
        let mut entry = CacheEntry::new();
        let in_os_store = self.os_store.as_ref().is_some_and(|store| store.set(realm, username, password).is_ok());
        let place = if in_os_store {
            entry.insert("passtype".into(), OS_STORE_PASSTYPE.into());
            PasswordPlace::OsStore
        } else if may_write_plaintext() {
            entry.insert("passtype".into(), "simple".into());
            entry.insert("password".into(), password.expose().to_owned());
            PasswordPlace::File
        } else {
            PasswordPlace::NotStored
        };
        entry.insert("svn:realmstring".into(), realm.to_owned());
        entry.insert("username".into(), username.to_owned());
        let path = dir.write(&CredentialCache::file_name_for(realm), &render_hash_dump(&entry))?;
        Ok((path, place))
    }

    /// Forgets `realm`: its file (named by the realm's MD5) and its password
    /// in the OS store. A file that is not the user's own is left alone.
    pub fn remove(&self, realm: &str) -> Result<(), CacheError> {
        let Some(dir) = self.open(false)? else { return Ok(()) };
        let name = CredentialCache::file_name_for(realm);
        if let Some(entry) = dir.read(&name)?.as_deref().and_then(parse_hash_dump) {
            self.forget_password(&entry);
        }
        dir.remove(&name).map(|_| ())
    }

    /// Removes the file that [`CredentialCache::list`] listed, whatever its
    /// name, as `svn auth --remove` does, and its password in the OS store.
    pub fn remove_listed(&self, listed: &Listed) -> Result<(), CacheError> {
        let Some(dir) = self.open(false)? else { return Ok(()) };
        let name = listed
            .path
            .file_name()
            .ok_or_else(|| CacheError::Untrusted { path: listed.path.clone(), why: "it has no file name".into() })?;
        self.forget_password(&listed.entry);
        dir.remove(name).map(|_| ())
    }

    fn forget_password(&self, entry: &CacheEntry) {
        if let (Some(store), Some(realm), Some(username)) =
            (&self.os_store, entry.get("svn:realmstring"), entry.get("username"))
        {
            store.delete(realm, username);
        }
    }

    /// Every credential file (one with a realmstring, as `svn auth` lists),
    /// and the files left aside with the reason.
    pub fn list(&self) -> Result<Listing, CacheError> {
        let Some(dir) = self.open(false)? else { return Ok(Listing::default()) };
        let mut listing = Listing::default();
        for name in dir.names()? {
            let path = dir.path().join(&name);
            match dir.read(&name) {
                Ok(Some(bytes)) => match parse_hash_dump(&bytes) {
                    Some(entry) if entry.contains_key("svn:realmstring") => {
                        listing.entries.push(Listed { path, entry });
                    }
                    _ => listing
                        .ignored
                        .push(CacheError::Untrusted { path, why: "it is not a Subversion credential file".into() }),
                },
                Ok(None) => {}
                Err(error) => listing.ignored.push(error),
            }
        }
        Ok(listing)
    }
}

/// The owner of `path`, or of its nearest existing parent.
fn owner_of_nearest(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    path.ancestors().find_map(|p| fs::metadata(p).ok()).map(|m| m.uid())
}

/// The credential kind `svn auth` names these files by.
pub const CREDENTIAL_KIND: &str = "svn.simple";

/// Whether `entry` matches every pattern, as `svn auth PATTERN...` decides:
/// each pattern, as the glob `*PATTERN*`, must match the credential kind,
/// the realmstring or the username.
pub fn matches_all(entry: &CacheEntry, patterns: &[String]) -> bool {
    let fields: Vec<&str> = [Some(CREDENTIAL_KIND), entry.get("svn:realmstring").map(String::as_str)]
        .into_iter()
        .chain([entry.get("username").map(String::as_str)])
        .flatten()
        .collect();
    patterns.iter().all(|pattern| {
        let glob = format!("*{pattern}*");
        fields.iter().any(|field| glob_matches(&glob, field))
    })
}

/// Case-sensitive glob matching as Subversion does it (APR's `fnmatch`
/// without flags, byte by byte): `*` any text (slashes too), `?` one character, `[...]`
/// one of a set with ranges (`[!...]` or `[^...]` for none of it), `\`
/// takes the next character literally; a `[` without its `]` is itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text
    // position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match pattern.get(p..).unwrap_or_default() {
            [b'*', ..] => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            rest if !rest.is_empty() => {
                if let Some(used) = match_one(rest, c) {
                    p += used;
                    t += 1;
                    continue;
                }
            }
            _ => {}
        }
        match star {
            Some((after_star, swallowed)) => {
                p = after_star;
                t = swallowed + 1;
                star = Some((after_star, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(|c| *c == b'*')
}

/// Whether the pattern's first element (not `*`) matches `c`, and how many
/// pattern characters it took.
fn match_one(pattern: &[u8], c: u8) -> Option<usize> {
    match pattern {
        [b'?', ..] => Some(1),
        [b'\\', escaped, ..] => (*escaped == c).then_some(2),
        [b'[', rest @ ..] => match bracket(rest, c) {
            Some((matched, used)) => matched.then_some(used + 1),
            None => (b'[' == c).then_some(1),
        },
        [literal, ..] => (*literal == c).then_some(1),
        [] => None,
    }
}

/// A bracket expression after its `[`: whether `c` is in it and how many
/// characters it took with its `]`; `None` when it has no `]`.
fn bracket(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let (negated, mut i) = match pattern.first() {
        Some(b'!' | b'^') => (true, 1),
        _ => (false, 0),
    };
    let mut found = false;
    let mut first = true;
    loop {
        let mut low = *pattern.get(i)?;
        if low == b']' && !first {
            return Some((found != negated, i + 1));
        }
        first = false;
        if low == b'\\' {
            i += 1;
            low = *pattern.get(i)?;
        }
        i += 1;
        let high = match (pattern.get(i), pattern.get(i + 1)) {
            (Some(b'-'), Some(&high)) if high != b']' => {
                i += 2;
                if high == b'\\' {
                    let escaped = *pattern.get(i)?;
                    i += 1;
                    escaped
                } else {
                    high
                }
            }
            _ => low,
        };
        found |= low <= c && c <= high;
    }
}

/// Subversion's hash-dump format: `K len`, key, `V len`, value, ..., `END`.
pub fn render_hash_dump(entry: &CacheEntry) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in entry {
        out.extend_from_slice(format!("K {}\n{key}\nV {}\n{value}\n", key.len(), value.len()).as_bytes());
    }
    out.extend_from_slice(b"END\n");
    out
}

/// Reads the hash-dump format; `None` when it is not well formed.
pub fn parse_hash_dump(bytes: &[u8]) -> Option<CacheEntry> {
    let mut entry = CacheEntry::new();
    let mut rest = bytes;
    loop {
        let (line, after) = split_line(rest)?;
        if line == b"END" {
            return Some(entry);
        }
        let (key, after) = counted(line, b"K ", after)?;
        let (value_line, after) = split_line(after)?;
        let (value, after) = counted(value_line, b"V ", after)?;
        entry.insert(String::from_utf8(key.to_vec()).ok()?, String::from_utf8(value.to_vec()).ok()?);
        rest = after;
    }
}

fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|b| *b == b'\n')?;
    Some((bytes.get(..end)?, bytes.get(end + 1..)?))
}

/// `K 8` or `V 8` then eight bytes and a newline.
fn counted<'a>(line: &[u8], tag: &[u8], after: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let length: usize = std::str::from_utf8(line.strip_prefix(tag)?).ok()?.parse().ok()?;
    let data = after.get(..length)?;
    (after.get(length) == Some(&b'\n')).then_some(())?;
    Some((data, after.get(length + 1..)?))
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
        let cannot = |why| CredentialError::CannotAsk { realm: crate::setup::printable(realm), why };
        if self.options.non_interactive {
            return Err(cannot("--non-interactive forbids a prompt"));
        }
        if fs::File::open("/dev/tty").is_err() {
            return Err(cannot("there is no terminal to ask on"));
        }
        self.prompts += 1;
        let username = self.username();
        let shown = crate::setup::printable(realm);
        let password = rpassword::prompt_password(format!("Password for '{username}' at {shown}: "))
            .map_err(CredentialError::Read)?;
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
            PlaintextPolicy::Ask => match ask_plaintext(realm) {
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
        let shown = crate::setup::printable(realm);
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

/// Asks on the terminal, as Subversion does, whether the password may be
/// stored unencrypted; `None` when there is no terminal to ask on.
fn ask_plaintext(realm: &str) -> Option<bool> {
    let tty = fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
    let mut out = tty.try_clone().ok()?;
    let mut input = io::BufReader::new(tty);
    let rule = "-".repeat(71);
    let shown = crate::setup::printable(realm);
    write!(
        out,
        "{rule}\nATTENTION!  Your password for authentication realm:\n\n   {shown}\n\n\
         can only be stored to disk unencrypted!  No system credential store\n\
         answered (under sudo the desktop's is out of reach).  You can avoid\n\
         this question by setting store-plaintext-passwords to \"yes\" or \"no\"\n\
         in client.toml or in your config.toml.\n{rule}\nStore password unencrypted (yes/no)? "
    )
    .ok()?;
    loop {
        out.flush().ok()?;
        let mut line = String::new();
        if input.read_line(&mut line).ok()? == 0 {
            return Some(false);
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "yes" => return Some(true),
            "no" => return Some(false),
            _ => write!(out, "Please type 'yes' or 'no': ").ok()?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    const REALM: &str = "<ssh://backup.example.org:22> Example backups";

    /// A cache in a fresh folder, laid out as Subversion's CONFIG/auth/svn.simple.
    fn fresh_cache() -> (tempfile::TempDir, CredentialCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = CredentialCache::new(dir.path().join("config/auth/svn.simple"));
        (dir, cache)
    }

    fn store(cache: &CredentialCache, realm: &str, username: &str, password: &str) -> PathBuf {
        cache.store(realm, username, &Secret::new(password), || true).unwrap().0
    }

    #[test]
    fn writes_subversions_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CredentialCache::with_levels(dir.path().join("a/b/svn.simple"), 3);
        let path = store(&cache, REALM, "alice", "alice-demo");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "K 8\npasstype\nV 6\nsimple\nK 8\npassword\nV 10\nalice-demo\nK 15\nsvn:realmstring\nV 45\n\
             <ssh://backup.example.org:22> Example backups\nK 8\nusername\nV 5\nalice\nEND\n"
        );
        assert_eq!(path.file_name().unwrap().len(), 32);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        for level in [dir.path().join("a"), dir.path().join("a/b"), dir.path().join("a/b/svn.simple")] {
            assert_eq!(fs::metadata(level).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(cache.load(REALM).unwrap().unwrap()["username"], "alice");
        cache.remove(REALM).unwrap();
        assert!(cache.load(REALM).unwrap().is_none());
    }

    #[test]
    fn without_leave_to_write_it_the_file_keeps_the_username_alone_as_subversion_does() {
        let (_dir, cache) = fresh_cache();
        let (path, place) = cache.store(REALM, "alice", &Secret::new("alice-demo"), || false).unwrap();
        assert_eq!(place, PasswordPlace::NotStored);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("K 15\nsvn:realmstring\nV 45\n{REALM}\nK 8\nusername\nV 5\nalice\nEND\n")
        );
    }

    #[test]
    fn a_file_for_another_realm_is_ignored() {
        let (_dir, cache) = fresh_cache();
        store(&cache, "<a> one", "alice", "x");
        fs::rename(cache.path_for("<a> one"), cache.path_for("<b> two")).unwrap();
        assert!(cache.load("<b> two").unwrap().is_none());
    }

    /// A cache with alice's entry, and a file outside it that a planted link points to.
    fn cache_with_planted_link() -> (tempfile::TempDir, CredentialCache, PathBuf) {
        let (dir, cache) = fresh_cache();
        store(&cache, REALM, "alice", "alice-demo");
        let outside = dir.path().join("outside");
        fs::write(&outside, "not the cache's\n").unwrap();
        fs::remove_file(cache.path_for(REALM)).unwrap();
        std::os::unix::fs::symlink(&outside, cache.path_for(REALM)).unwrap();
        (dir, cache, outside)
    }

    #[test]
    fn a_link_planted_for_a_cache_file_is_never_read_written_or_removed_through() {
        let (_dir, cache, outside) = cache_with_planted_link();
        let error = cache.load(REALM).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        let error = cache.store(REALM, "alice", &Secret::new("alice-new"), || true).unwrap_err().to_string();
        assert!(
            error.contains("symbolic link") && error.contains(&cache.path_for(REALM).display().to_string()),
            "{error}"
        );
        let error = cache.remove(REALM).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "not the cache's\n");
        assert!(fs::symlink_metadata(cache.path_for(REALM)).unwrap().file_type().is_symlink());
        let listing = cache.list().unwrap();
        assert!(listing.entries.is_empty());
        assert!(listing.ignored.iter().any(|e| e.to_string().contains("symbolic link")));
    }

    #[test]
    fn a_link_planted_for_a_cache_folder_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
        for planted in ["config/bpc-enroll", "config/bpc-enroll/auth", "config/bpc-enroll/auth/svn.simple"] {
            let config = dir.path().join("config");
            let _ = fs::remove_dir_all(&config);
            fs::create_dir_all(dir.path().join(planted).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&elsewhere, dir.path().join(planted)).unwrap();
            let cache = CredentialCache::with_levels(config.join("bpc-enroll/auth/svn.simple"), 3);
            let error = cache.store(REALM, "alice", &Secret::new("alice-demo"), || true).unwrap_err().to_string();
            assert!(error.contains("symbolic link") && error.contains(planted), "{planted}: {error}");
            assert!(cache.list().is_err());
            assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "{planted}: something was written through");
        }
    }

    #[test]
    fn files_others_could_read_or_change_are_left_aside() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CredentialCache::new(dir.path().join("config/auth/svn.simple"));
        let path = store(&cache, REALM, "alice", "alice-demo");
        // Subversion writes 0644 files inside a 0700 auth folder: private enough.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(cache.load(REALM).unwrap().is_some());
        // Once that folder lets others in, the file is no longer trusted.
        fs::set_permissions(dir.path().join("config/auth"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.path().join("config/auth/svn.simple"), fs::Permissions::from_mode(0o755)).unwrap();
        let error = cache.load(REALM).unwrap_err().to_string();
        assert!(error.contains("others may read it (mode 0644)"), "{error}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cache.load(REALM).unwrap().is_some());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o622)).unwrap();
        assert!(cache.load(REALM).unwrap_err().to_string().contains("others may change it"));
        // The configuration folder above the cache may be shared: what is planted there is caught below.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(dir.path().join("config"), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(cache.load(REALM).unwrap().is_some());
        fs::set_permissions(dir.path().join("config/auth/svn.simple"), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            cache
                .store(REALM, "alice", &Secret::new("x"), || true)
                .unwrap_err()
                .to_string()
                .contains("others may change it")
        );
    }

    #[test]
    fn listing_names_the_files_it_found_and_removing_one_removes_that_file() {
        let (_dir, cache) = fresh_cache();
        store(&cache, REALM, "alice", "alice-demo");
        let odd = cache.dir().join("not-the-md5-of-its-realm");
        fs::rename(cache.path_for(REALM), &odd).unwrap();
        fs::write(cache.dir().join("garbage"), "not a dump").unwrap();
        let listing = cache.list().unwrap();
        assert_eq!(listing.entries.len(), 1);
        assert_eq!(listing.entries[0].path, odd);
        assert!(listing.ignored.iter().any(|e| e.to_string().contains("not a Subversion credential file")));
        cache.remove_listed(&listing.entries[0]).unwrap();
        assert!(!odd.exists());
    }

    #[test]
    fn patterns_match_as_subversions_globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]bc", "abc", true),
            ("[!a]bc", "abc", false),
            ("[^a]bc", "bbc", true),
            ("[a-c]", "b", true),
            ("[]]", "]", true),
            ("[", "[", true),
            ("a[", "a[", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a\\lice", "alice", true),
            ("ABC", "abc", false),
            ("*/*", "<ssh://h:22> r", true),
            ("*x*y*z*", "axbyczd", true),
            ("*x*y*z*", "axbzcy", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), *expected, "{pattern:?} against {text:?}");
        }
        let entry: CacheEntry =
            [("svn:realmstring", REALM), ("username", "alice"), ("password", "secret"), ("passtype", "simple")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let matches =
            |patterns: &[&str]| matches_all(&entry, &patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert!(matches(&[]));
        assert!(matches(&["simple"]), "the credential kind svn.simple");
        assert!(matches(&["backup", "ali"]));
        assert!(!matches(&["backup", "bob"]), "every pattern must match");
        assert!(!matches(&["secret"]), "never the password");
        assert!(!matches(&["passtype"]), "never the key names");
    }

    #[test]
    fn malformed_dumps_are_refused() {
        for bad in
            [&b""[..], b"K 3\nab\nV 1\nx\nEND\n", b"K 1\na\nV 5\nxy\nEND\n", b"K 1\na\nV 1\nx\n", b"X 1\na\nEND\n"]
        {
            assert!(parse_hash_dump(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn with_an_os_store_the_file_holds_no_password() {
        let mock = keyring_core::mock::Store::new().unwrap();
        keyring_core::set_default_store(mock);
        let (_dir, cache) = fresh_cache();
        let cache = cache.with_os_store(std::sync::Arc::new(KeyringStore));
        let (path, place) = cache.store(REALM, "alice", &Secret::new("alice-demo"), || panic!("not asked")).unwrap();
        assert_eq!(place, PasswordPlace::OsStore);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("alice-demo"), "{text}");
        assert!(text.contains(OS_STORE_PASSTYPE));
        assert_eq!(cache.load(REALM).unwrap().unwrap()["password"], "alice-demo");
        cache.remove(REALM).unwrap();
        assert!(KeyringStore.get(REALM, "alice").is_none());
        assert!(!path.exists());
        keyring_core::unset_default_store();
    }

    proptest! {
        #[test]
        fn hash_dumps_round_trip(entry in prop::collection::btree_map("[a-z:]{1,12}", any::<String>(), 0..6)) {
            prop_assert_eq!(parse_hash_dump(&render_hash_dump(&entry)), Some(entry));
        }

        #[test]
        fn parser_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_hash_dump(&bytes);
        }

        #[test]
        fn glob_matching_never_panics_and_a_plain_pattern_is_a_substring_search(
            pattern in "[a-z\\[\\]!^*?\\\\-]{0,8}", text in ".{0,12}", plain in "[a-z]{0,4}",
        ) {
            let _ = glob_matches(&pattern, &text);
            prop_assert_eq!(glob_matches(&format!("*{plain}*"), &text), text.contains(&plain));
        }
    }
}
