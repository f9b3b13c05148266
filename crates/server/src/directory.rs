//! Who may register: the institution's user directory.

use crate::file_index::{self, FileIndex, PendingIndex};
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
///
/// A file written as above, one `[users.NAME]` table per user with plain
/// strings, is read by [`users_index`] in one pass that keeps only where
/// each user's name and hash lie in the text: a request then finds its one
/// user by binary search. Any other TOML is read by the TOML parser, which
/// gives the same users, or the error that names the file, line and key.
/// [`FileDirectory::open`] answers instead from an index of the file
/// ([`crate::file_index`]) while the file is the one indexed, reading a few
/// blocks of it per lookup.
#[derive(Debug, Clone)]
pub struct FileDirectory {
    path: PathBuf,
    users: Users,
}

/// The kind of a users file's index.
const INDEX_KIND: &[u8; 8] = b"users\0\0\0";

/// The name of the users file's index, kept beside the journal.
pub const INDEX_NAME: &str = "bpc-register-users.index";

#[derive(Debug, Clone)]
enum Users {
    /// The file's text and, sorted by logon, where each user's logon and
    /// password hash lie in it.
    Indexed { text: String, entries: Vec<IndexEntry> },
    /// Any other well-formed file, read by the TOML parser.
    Parsed(BTreeMap<Logon, UserEntry>),
    /// The file's index: a logon gives `0`, or `1` and its password hash.
    Stored(FileIndex),
}

/// Where one user's logon and password hash lie in the users file's text.
#[derive(Debug, Clone)]
struct IndexEntry {
    logon: std::ops::Range<usize>,
    password: Option<std::ops::Range<usize>>,
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
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(entries) = users_index(&text)
        {
            return Ok(FileDirectory { path: path.to_owned(), users: Users::Indexed { text, entries } });
        }
        FileDirectory::parse(path)
    }

    /// The directory of the users file at `path`, answering from its index
    /// at `index` when that index is of the file as it is now; otherwise the
    /// file is read and checked whole, as [`FileDirectory::load`] does, and
    /// the index to write is given too when the file has settled by `now` (see
    /// [`crate::file_index`]).
    pub fn open(
        path: &Path,
        index: &Path,
        now: std::time::SystemTime,
    ) -> Result<(FileDirectory, Option<PendingIndex>), DirectoryError> {
        let path_buf = path.to_owned();
        file_index::open_or_load(
            path,
            index,
            INDEX_KIND,
            now,
            |found| FileDirectory { path: path_buf, users: Users::Stored(found) },
            || FileDirectory::load(path),
            FileDirectory::index_records,
        )
    }

    /// What the index of a loaded file holds (see [`Users::Stored`]).
    fn index_records(&self) -> file_index::Records {
        let value = |password: Option<&str>| match password {
            Some(hash) => [b"\x01".as_slice(), hash.as_bytes()].concat(),
            None => vec![0],
        };
        // Both forms keep their users in logon order, each once.
        match &self.users {
            Users::Parsed(users) => users
                .iter()
                .map(|(logon, user)| (logon.as_str().as_bytes().to_vec(), value(user.password.as_deref())))
                .collect(),
            Users::Indexed { text, entries } => {
                let slice = |range: &std::ops::Range<usize>| text.get(range.clone()).unwrap_or_default();
                entries
                    .iter()
                    .map(|entry| (slice(&entry.logon).as_bytes().to_vec(), value(entry.password.as_ref().map(slice))))
                    .collect()
            }
            Users::Stored(_) => Vec::new(),
        }
    }

    /// Reads the users file with the TOML parser: any TOML, and the
    /// errors that name the file, line and key.
    fn parse(path: &Path) -> Result<FileDirectory, DirectoryError> {
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
        Ok(FileDirectory { path: path.to_owned(), users: Users::Parsed(users) })
    }

    /// Whether `logon` is a user, and its password hash if it has one.
    fn find(&self, logon: &Logon) -> Result<Option<Option<String>>, DirectoryError> {
        match &self.users {
            Users::Parsed(users) => Ok(users.get(logon).map(|user| user.password.clone())),
            Users::Indexed { text, entries } => {
                let slice = |range: &std::ops::Range<usize>| text.get(range.clone()).unwrap_or_default();
                let Ok(index) = entries.binary_search_by(|entry| slice(&entry.logon).cmp(logon.as_str())) else {
                    return Ok(None);
                };
                Ok(entries.get(index).map(|entry| entry.password.as_ref().map(|range| slice(range).to_owned())))
            }
            Users::Stored(index) => {
                let unreadable = |reason: String| DirectoryError::Setting {
                    path: self.path.clone(),
                    what: "users file's index (beside the journal)",
                    reason,
                };
                let found = index.get(logon.as_str().as_bytes()).map_err(|error| unreadable(error.to_string()))?;
                match found.as_deref().map(|value| value.split_first()) {
                    None => Ok(None),
                    Some(Some((0, []))) => Ok(Some(None)),
                    Some(Some((1, hash))) => match std::str::from_utf8(hash) {
                        Ok(hash) => Ok(Some(Some(hash.to_owned()))),
                        Err(error) => Err(unreadable(error.to_string())),
                    },
                    Some(_) => Err(unreadable("the index is damaged; remove it".to_owned())),
                }
            }
        }
    }
}

/// Indexes a users file written in the plain form: comments, blank lines,
/// an optional `[users]`, then `[users.NAME]` tables (NAME bare or a quoted
/// string without escapes) holding at most one `name` and one `password`,
/// each a one-line string without escapes. `None` for anything else (the
/// TOML parser then reads it), and for a file the parser would refuse or
/// whose users it would refuse (a duplicate table, a name that is not a
/// logon, a password that is not a hash), so that the parser gives the
/// error exactly as it would without the index.
fn users_index(text: &str) -> Option<Vec<IndexEntry>> {
    if text.starts_with('\u{feff}') {
        return None;
    }
    let mut entries: Vec<IndexEntry> = Vec::new();
    let mut keys_seen = (false, false);
    let mut users_table = false;
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw.len();
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut cursor = Cursor { text: line, at: 0 };
        cursor.skip_space();
        match cursor.peek() {
            None | Some('#') => {}
            Some('[') => {
                cursor.at += 1;
                cursor.skip_space();
                cursor.eat("users")?;
                cursor.skip_space();
                if cursor.eat("]").is_some() {
                    if users_table || !entries.is_empty() {
                        return None;
                    }
                    users_table = true;
                } else {
                    cursor.eat(".")?;
                    cursor.skip_space();
                    let logon = cursor.key()?;
                    cursor.skip_space();
                    cursor.eat("]")?;
                    entries.push(IndexEntry { logon: shift(logon, line_start), password: None });
                    keys_seen = (false, false);
                }
            }
            Some(_) => {
                let entry = entries.last_mut()?;
                let key = cursor.key()?;
                cursor.skip_space();
                cursor.eat("=")?;
                cursor.skip_space();
                let value = cursor.basic_string()?;
                match line.get(key.clone())? {
                    "name" if !keys_seen.0 => keys_seen.0 = true,
                    "password" if !keys_seen.1 => {
                        keys_seen.1 = true;
                        entry.password = Some(shift(value, line_start));
                    }
                    _ => return None,
                }
            }
        }
        cursor.skip_space();
        cursor.comment()?;
    }
    let logon_of = |entry: &IndexEntry| text.get(entry.logon.clone()).unwrap_or_default();
    entries.sort_by(|a, b| logon_of(a).cmp(logon_of(b)));
    let duplicate = entries.windows(2).any(|pair| pair.first().map(logon_of) == pair.get(1).map(logon_of));
    let valid = entries.iter().all(|entry| {
        let hash = entry.password.as_ref().map(|range| text.get(range.clone()).unwrap_or_default());
        Logon::parse(logon_of(entry)).is_ok()
            && hash.is_none_or(|hash| argon2::password_hash::PasswordHash::new(hash).is_ok())
    });
    (!duplicate && valid).then_some(entries)
}

fn shift(range: std::ops::Range<usize>, by: usize) -> std::ops::Range<usize> {
    range.start + by..range.end + by
}

/// A position in one line of the users file.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        self.text.get(self.at..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        self.at += self.rest().len() - self.rest().trim_start_matches([' ', '\t']).len();
    }

    fn eat(&mut self, expected: &str) -> Option<()> {
        self.rest().starts_with(expected).then(|| self.at += expected.len())
    }

    /// A bare key, or a quoted one without escapes: where its text lies.
    fn key(&mut self) -> Option<std::ops::Range<usize>> {
        if self.peek() == Some('"') {
            return self.basic_string();
        }
        let len = self.rest().bytes().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')).count();
        (len > 0).then(|| {
            self.at += len;
            self.at - len..self.at
        })
    }

    /// A one-line basic string without escapes: where its content lies.
    fn basic_string(&mut self) -> Option<std::ops::Range<usize>> {
        self.eat("\"")?;
        let start = self.at;
        let len = self.rest().find(['"', '\\'])?;
        let content = self.rest().get(..len)?;
        if content.chars().any(|c| c.is_control() && c != '\t') || self.rest().get(len..)?.starts_with('\\') {
            return None;
        }
        self.at += len + 1;
        Some(start..start + len)
    }

    /// Nothing, or a comment without control characters, to the end.
    fn comment(&mut self) -> Option<()> {
        match self.peek() {
            None => Some(()),
            Some('#') => (!self.rest().chars().any(|c| c.is_control() && c != '\t')).then_some(()),
            Some(_) => None,
        }
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
        Ok(self.find(logon)?.is_some())
    }

    fn check_password(&self, logon: &Logon, password: &Secret) -> Result<bool, DirectoryError> {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        if password.is_empty() {
            return Ok(false);
        }
        // Unknown users cost the same hash as known ones, so that the time of
        // the answer does not tell which logons exist.
        let stored = self.find(logon)?.flatten();
        let Ok(hash) = PasswordHash::new(stored.as_deref().unwrap_or(TIMING_GUARD_HASH)) else { return Ok(false) };
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
    use std::os::unix::fs::PermissionsExt;

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

    /// The users and hashes the index finds, or `None` when it leaves the file to the parser.
    fn indexed(text: &str) -> Option<Vec<(String, Option<String>)>> {
        let entries = users_index(text)?;
        let slice = |range: &std::ops::Range<usize>| text[range.clone()].to_owned();
        Some(entries.iter().map(|entry| (slice(&entry.logon), entry.password.as_ref().map(slice))).collect())
    }

    /// The users and hashes the TOML parser finds.
    fn parsed(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, text).unwrap();
        match FileDirectory::parse(&path).map_err(|e| e.to_string())?.users {
            Users::Parsed(users) => {
                Ok(users.into_iter().map(|(logon, user)| (logon.to_string(), user.password)).collect())
            }
            Users::Indexed { .. } | Users::Stored(_) => unreachable!(),
        }
    }

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$qyNA4FgBT6uUVzXBFOPAFQ$ZkVH4SB/sZDiNCqiYIVcRhBtywAnxO8mWcmxK3x6sBY";

    #[test]
    fn the_index_finds_what_the_parser_finds_and_leaves_it_the_rest() {
        let plain = [
            format!("# users\n\n[users]\n[users.bob]\n[users.alice]\nname = \"Alice #1\" # x\npassword = \"{HASH}\"\n"),
            format!("[users.\"carol\"]\r\n  password=\"{HASH}\"\r\n\tname = \"C\"\r\n[ users . dave ]"),
            String::new(),
        ];
        for text in &plain {
            assert_eq!(indexed(text).map(Ok), Some(parsed(text)), "{text}");
        }
        let others = [
            "users.alice.name = \"A\"\n".to_owned(),
            "[users]\nalice = { name = \"A\" }\n".to_owned(),
            "[users.alice]\nname = 'A'\n".to_owned(),
            "[users.alice]\nname = \"A\\u0041\"\n".to_owned(),
            "[users.alice]\n[users.alice]\n".to_owned(),
            "[users.alice]\n[users.\"alice\"]\n".to_owned(),
            "[users.alice]\nname = \"A\"\nname = \"B\"\n".to_owned(),
            "[users.alice]\ncolour = \"blue\"\n".to_owned(),
            "[users.alice]\npassword = \"plain text\"\n".to_owned(),
            "[users.\"a b\"]\n".to_owned(),
            "[users.alice]\nname = \"A\" trailing\n".to_owned(),
            "[users.alice]\nname = \"A\x01\"\n".to_owned(),
            "[users.alice]\n[users]\n".to_owned(),
            "[users.alice.x]\n".to_owned(),
        ];
        for text in &others {
            assert_eq!(indexed(text), None, "{text}");
        }
        let good = parsed("users.alice.name = \"A\"\n").unwrap();
        assert_eq!(good, [("alice".to_owned(), None)]);
        assert!(parsed("[users.alice]\n[users.alice]\n").unwrap_err().contains("users.toml"));
    }

    proptest::proptest! {
        #[test]
        fn whatever_the_index_takes_the_parser_reads_the_same(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just("[users]"), proptest::prelude::Just("[users.alice]"),
                    proptest::prelude::Just("[users.\"bob\"]"), proptest::prelude::Just("[users.alice]"),
                    proptest::prelude::Just("name = \"A\""), proptest::prelude::Just("password = \"HASH\""),
                    proptest::prelude::Just("password = \"x\""), proptest::prelude::Just("# c"),
                    proptest::prelude::Just(""), proptest::prelude::Just("  name=\"B\" # c"),
                    proptest::prelude::Just("x = 1"), proptest::prelude::Just("[users.a.b]"),
                ],
                0..8,
            ),
        ) {
            let text = lines.join("\n").replace("HASH", HASH);
            if let Some(found) = indexed(&text) {
                proptest::prop_assert_eq!(Ok(found), parsed(&text));
            }
        }
    }

    #[test]
    fn the_index_answers_as_the_file_read_whole_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let index = dir.path().join(INDEX_NAME);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        let hash = hash_password(&Secret::new("alice-demo")).unwrap();
        // Both forms: the plain one the one-pass reader takes, and one left
        // to the TOML parser.
        for text in [
            format!("[users.alice]\npassword = \"{hash}\"\n[users.bob]\nname = \"Bob\"\n"),
            format!("users.alice.password = \"{hash}\"\nusers.bob.name = 'Bob'\n"),
        ] {
            std::fs::write(&path, &text).unwrap();
            let _ = std::fs::remove_file(&index);
            let (loaded, pending) = FileDirectory::open(&path, &index, later).unwrap();
            pending.expect("a settled file gives an index to write").write().unwrap();
            assert_eq!(std::fs::metadata(&index).unwrap().permissions().mode() & 0o777, 0o600);
            let (indexed, pending) = FileDirectory::open(&path, &index, later).unwrap();
            assert!(matches!(indexed.users, Users::Stored(_)) && pending.is_none(), "{text}");
            for directory in [&loaded, &indexed] {
                let logon = |name: &str| Logon::parse(name).unwrap();
                assert!(directory.user_exists(&logon("alice")).unwrap());
                assert!(directory.user_exists(&logon("bob")).unwrap());
                assert!(!directory.user_exists(&logon("carol")).unwrap());
                assert!(directory.check_password(&logon("alice"), &Secret::new("alice-demo")).unwrap());
                assert!(!directory.check_password(&logon("alice"), &Secret::new("alice-dem0")).unwrap());
                assert!(!directory.check_password(&logon("bob"), &Secret::new("anything")).unwrap());
            }
        }
        // carol is added: the file is another, read whole again.
        std::fs::write(&path, "[users.carol]\n").unwrap();
        let (directory, _) = FileDirectory::open(&path, &index, later).unwrap();
        assert!(directory.user_exists(&Logon::parse("carol").unwrap()).unwrap());
        assert!(!directory.user_exists(&Logon::parse("alice").unwrap()).unwrap());
        // Not settled yet: no index to write.
        assert!(FileDirectory::open(&path, &index, std::time::SystemTime::now()).unwrap().1.is_none());
        // A malformed file is refused as without the index.
        std::fs::write(&path, "[users.\"a b\"]\n").unwrap();
        let message = FileDirectory::open(&path, &index, later).unwrap_err().to_string();
        assert!(message.contains("a b") && message.contains("users.toml"), "{message}");
    }

    #[test]
    fn an_index_planted_by_someone_else_names_no_user() {
        use std::os::unix::fs::PermissionsExt;
        // Anyone who may read the users file can compute its identity and
        // write a table naming mallory, without a password.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let index = dir.path().join(INDEX_NAME);
        std::fs::write(&path, "[users.alice]\n").unwrap();
        let identity = file_index::Identity::of_path(&path).unwrap();
        let planted = file_index::build(INDEX_KIND, &identity, &vec![(b"mallory".to_vec(), vec![0])]);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        let mallory = Logon::parse("mallory").unwrap();
        let finds_mallory = || FileDirectory::open(&path, &index, later).unwrap().0.user_exists(&mallory).unwrap();
        std::fs::write(&index, &planted).unwrap();
        std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(finds_mallory(), "the running user's own table is believed");
        // One that others may write.
        std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!finds_mallory(), "a table others may write was believed");
        // One of someone else's, as root sees it.
        if nix::unistd::geteuid().is_root() {
            std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&index, Some(65534), Some(65534)).unwrap();
            assert!(!finds_mallory(), "a table of nobody's was believed by root");
        }
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
