//! Subversion's `svn.simple` cache on disk: one file per realm, named by
//! the MD5 of the realmstring, in hash-dump format, reached only through
//! [`PrivateDir`].

use super::cachedir::{CacheError, PrivateDir};
use super::hashdump::{HashDump, parse_hash_dump, render_hash_dump};
use super::store::PasswordStore;
use crate::paths::ConfigHome;
use md5::{Digest, Md5};
use protocol::Secret;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;

/// The credential kind `svn auth` names these files by.
pub const CREDENTIAL_KIND: &str = "svn.simple";

/// The `passtype` of cache files whose password is in the OS store.
pub const OS_STORE_PASSTYPE: &str = "bpc-enroll-keyring";

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
pub type CacheEntry = HashDump;

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

    /// The cache in the user's configuration folder
    /// ([`ConfigHome::detect`]): `bpc-enroll/auth/svn.simple` below it, all
    /// three levels the cache's own. As root, a configuration folder of
    /// another user is passed over, and [`CredentialCache::note`] says so.
    pub fn default_location() -> Option<CredentialCache> {
        let home = ConfigHome::detect()?;
        let mut cache = CredentialCache::with_levels(home.credential_cache_dir(), 3);
        cache.note = home.note;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::store::KeyringStore;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

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
            let listed = cache.list().unwrap_err().to_string();
            assert!(listed.contains("symbolic link") && listed.contains(planted), "{planted}: {listed}");
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
}
