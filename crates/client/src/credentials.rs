//! Answering the server's challenge: the command line, then the per-realm
//! cache, then a prompt, the way Subversion's client does.

use crate::install::create_dirs;
use md5::{Digest, Md5};
use protocol::Secret;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
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
#[derive(Clone)]
pub struct CredentialCache {
    dir: PathBuf,
    os_store: Option<std::sync::Arc<dyn PasswordStore>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").field("dir", &self.dir).field("os_store", &self.os_store.is_some()).finish()
    }
}

/// One cached entry, as its keys say.
pub type CacheEntry = BTreeMap<String, String>;

impl CredentialCache {
    /// The cache in `dir` (the `svn.simple` folder), passwords in the file.
    pub fn new(dir: impl Into<PathBuf>) -> CredentialCache {
        CredentialCache { dir: dir.into(), os_store: None }
    }

    /// The same cache with passwords in `store`.
    pub fn with_os_store(mut self, store: std::sync::Arc<dyn PasswordStore>) -> CredentialCache {
        self.os_store = Some(store);
        self
    }

    /// `$XDG_CONFIG_HOME/bpc-enroll/auth/svn.simple`, or under `~/.config`
    /// when the variable is unset or empty.
    pub fn default_location() -> Option<CredentialCache> {
        let config =
            std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
                let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
                    nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|user| user.dir)
                })?;
                Some(home.join(".config"))
            })?;
        Some(CredentialCache::new(config.join("bpc-enroll/auth/svn.simple")))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `realm`: the lowercase hex MD5 of the realmstring.
    pub fn path_for(&self, realm: &str) -> PathBuf {
        let digest = Md5::digest(realm.as_bytes());
        self.dir.join(digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    /// The entry for `realm`, if there is one that reads, with its password
    /// fetched from the OS store when the file does not hold it.
    pub fn load(&self, realm: &str) -> Option<CacheEntry> {
        let bytes = fs::read(self.path_for(realm)).ok()?;
        let mut entry = parse_hash_dump(&bytes)?;
        if entry.get("svn:realmstring").map(String::as_str) != Some(realm) {
            return None;
        }
        if !entry.contains_key("password") && entry.get("passtype").map(String::as_str) == Some(OS_STORE_PASSTYPE) {
            let username = entry.get("username")?.clone();
            let password = self.os_store.as_ref()?.get(realm, &username)?;
            entry.insert("password".into(), password.expose().to_owned());
        }
        Some(entry)
    }

    /// Stores a name and password for `realm`: folders 0700 and the file
    /// 0600 from their creation, the file replaced atomically.
    pub fn store(&self, realm: &str, username: &str, password: &Secret) -> io::Result<PathBuf> {
        create_dirs(&self.dir, 0o700, None)?;
        let mut entry = CacheEntry::new();
        let in_os_store = self.os_store.as_ref().is_some_and(|store| store.set(realm, username, password).is_ok());
        if in_os_store {
            entry.insert("passtype".into(), OS_STORE_PASSTYPE.into());
        } else {
            entry.insert("passtype".into(), "simple".into());
            entry.insert("password".into(), password.expose().to_owned());
        }
        entry.insert("svn:realmstring".into(), realm.to_owned());
        entry.insert("username".into(), username.to_owned());
        let path = self.path_for(realm);
        files::write_atomic(&path, &render_hash_dump(&entry), 0o600)?;
        Ok(path)
    }

    /// Forgets `realm`, in the file and in the OS store.
    pub fn remove(&self, realm: &str) -> io::Result<()> {
        if let (Some(store), Some(entry)) = (&self.os_store, self.load(realm))
            && let Some(username) = entry.get("username")
        {
            store.delete(realm, username);
        }
        match fs::remove_file(self.path_for(realm)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Every readable entry, with its file.
    pub fn list(&self) -> Vec<(PathBuf, CacheEntry)> {
        let mut entries: Vec<(PathBuf, CacheEntry)> = fs::read_dir(&self.dir)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|e| Some((e.path(), parse_hash_dump(&fs::read(e.path()).ok()?)?)))
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        entries
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
        let entry = self.options.cache.as_ref()?.load(realm)?;
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
        if let (Some((Source::Cache, _, _)), Some(cache)) = (&self.current, &self.options.cache) {
            let _ = cache.remove(realm);
        }
        self.current = None;
    }

    fn accepted(&mut self, realm: &str) {
        self.events.push("accepted".into());
        let Some((source, username, password)) = self.current.take() else { return };
        if source == Source::Cache || !self.options.store {
            return;
        }
        if let Some(cache) = &self.options.cache {
            match cache.store(realm, &username, &password) {
                Ok(path) => self.events.push(format!("cached in {}", path.display())),
                Err(error) => self.events.push(format!("could not cache: {error}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_subversions_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CredentialCache::new(dir.path().join("a/b/svn.simple"));
        let realm = "<ssh://backup.example.org:22> Example backups";
        let path = cache.store(realm, "alice", &Secret::new("alice-demo")).unwrap();
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
        assert_eq!(cache.load(realm).unwrap()["username"], "alice");
        cache.remove(realm).unwrap();
        assert!(cache.load(realm).is_none());
    }

    #[test]
    fn a_file_for_another_realm_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CredentialCache::new(dir.path());
        cache.store("<a> one", "alice", &Secret::new("x")).unwrap();
        fs::rename(cache.path_for("<a> one"), cache.path_for("<b> two")).unwrap();
        assert!(cache.load("<b> two").is_none());
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
        let dir = tempfile::tempdir().unwrap();
        let cache = CredentialCache::new(dir.path()).with_os_store(std::sync::Arc::new(KeyringStore));
        let realm = "<ssh://backup.example.org:22> Example backups";
        let path = cache.store(realm, "alice", &Secret::new("alice-demo")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("alice-demo"), "{text}");
        assert!(text.contains(OS_STORE_PASSTYPE));
        assert_eq!(cache.load(realm).unwrap()["password"], "alice-demo");
        cache.remove(realm).unwrap();
        assert!(KeyringStore.get(realm, "alice").is_none());
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
    }
}
