//! Who may register: the institution's user directory.

use protocol::{Logon, Secret};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The institution's user directory: LDAP in production, a TOML file in the demo.
pub trait Directory {
    /// Whether `logon` names a user. `Err` only when the directory cannot answer,
    /// which is the server's fault and must never read as "no such user".
    fn user_exists(&self, logon: &Logon) -> Result<bool, DirectoryError>;

    /// Whether `password` is `logon`'s. An empty password is never right,
    /// and is refused before the directory is asked.
    fn check_password(&self, logon: &Logon, password: &Secret) -> Result<bool, DirectoryError>;

    /// Whether `logon` is in the directory's administrators group.
    fn is_admin(&self, logon: &Logon) -> Result<bool, DirectoryError>;
}

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The users file is unreadable or invalid.
    #[error(transparent)]
    File(#[from] files::TomlError),
    /// A user in the users file has a name that cannot be a logon.
    #[error("{path}: user `{name}` is not a valid logon: {reason}")]
    BadLogon {
        /// The users file.
        path: PathBuf,
        /// The name given.
        name: String,
        /// Why it is not a logon.
        reason: protocol::NameError,
    },
    /// The directory server could not be reached or did not answer.
    #[error("the directory {url} cannot be consulted: {reason}")]
    Unavailable {
        /// The directory's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A file the directory needs (bind password, CA) cannot be read.
    #[error("{path}: cannot read the {what}: {reason}")]
    Setting {
        /// The file.
        path: PathBuf,
        /// What it holds.
        what: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
}

/// A directory kept in a TOML file, one table per user:
///
/// ```toml
/// [users.alice]
/// name = "Alice Example"
/// password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # optional, a PHC hash
/// ```
#[derive(Debug, Clone)]
pub struct FileDirectory {
    users: BTreeMap<Logon, UserEntry>,
}

/// What the users file says about one user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserEntry {
    /// The person's name, for people reading the file.
    #[serde(default)]
    pub name: Option<String>,
    /// The password's hash in PHC form (argon2id); no password can be right
    /// without one.
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: BTreeMap<String, UserEntry>,
}

impl FileDirectory {
    /// Reads the users file once; the forced command lives for one request.
    pub fn load(path: &Path) -> Result<FileDirectory, DirectoryError> {
        let file: UsersFile = files::load_toml(path)?;
        let mut users = BTreeMap::new();
        for (name, entry) in file.users {
            if let Some(hash) = &entry.password {
                argon2::password_hash::PasswordHash::new(hash).map_err(|error| DirectoryError::Setting {
                    path: path.to_owned(),
                    what: "password hash",
                    reason: format!("user `{name}`: {error}"),
                })?;
            }
            let logon = Logon::parse(&name).map_err(|reason| DirectoryError::BadLogon {
                path: path.to_owned(),
                name: name.clone(),
                reason,
            })?;
            users.insert(logon, entry);
        }
        Ok(FileDirectory { users })
    }
}

/// An argon2id hash of a password no user has, checked for unknown users.
const TIMING_GUARD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$qyNA4FgBT6uUVzXBFOPAFQ$ZkVH4SB/sZDiNCqiYIVcRhBtywAnxO8mWcmxK3x6sBY";

/// Hashes `password` for a users file (argon2id, random salt).
pub fn hash_password(password: &Secret) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

impl Directory for FileDirectory {
    fn user_exists(&self, logon: &Logon) -> Result<bool, DirectoryError> {
        Ok(self.users.contains_key(logon))
    }

    fn check_password(&self, logon: &Logon, password: &Secret) -> Result<bool, DirectoryError> {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        if password.is_empty() {
            return Ok(false);
        }
        // Unknown users cost the same hash as known ones, so that the time of
        // the answer does not tell which logons exist.
        let stored = self.users.get(logon).and_then(|user| user.password.as_deref());
        let Ok(hash) = PasswordHash::new(stored.unwrap_or(TIMING_GUARD_HASH)) else { return Ok(false) };
        let matches = argon2::Argon2::default().verify_password(password.expose().as_bytes(), &hash).is_ok();
        Ok(matches && stored.is_some())
    }

    fn is_admin(&self, _logon: &Logon) -> Result<bool, DirectoryError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_users_of_its_file_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, "[users.alice]\nname = \"Alice\"\n[users.bob]\n").unwrap();
        let directory = FileDirectory::load(&path).unwrap();
        let exists = |name: &str| directory.user_exists(&Logon::parse(name).unwrap()).unwrap();
        assert!(exists("alice"));
        assert!(exists("bob"));
        assert!(!exists("Alice"));
        assert!(!exists("carol"));
    }

    #[test]
    fn checks_hashed_passwords_and_refuses_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let hash = hash_password(&Secret::new("alice-demo")).unwrap();
        std::fs::write(&path, format!("[users.alice]\npassword = \"{hash}\"\n[users.bob]\n")).unwrap();
        let directory = FileDirectory::load(&path).unwrap();
        let check = |name: &str, password: &str| {
            directory.check_password(&Logon::parse(name).unwrap(), &Secret::new(password)).unwrap()
        };
        assert!(check("alice", "alice-demo"));
        assert!(!check("alice", "alice-dem0"));
        assert!(!check("alice", ""));
        assert!(!check("bob", ""));
        assert!(!check("bob", "anything"));
        assert!(!check("carol", "alice-demo"));
        std::fs::write(&path, "[users.alice]\npassword = \"plain text\"\n").unwrap();
        assert!(FileDirectory::load(&path).is_err(), "a password that is not a hash was accepted");
    }

    #[test]
    fn refuses_a_file_with_an_impossible_logon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, "[users.\"a b\"]\n").unwrap();
        let message = FileDirectory::load(&path).unwrap_err().to_string();
        assert!(message.contains("a b") && message.contains("users.toml"), "{message}");
    }
}
