//! A demo server folder per test, and the real `bpc-register` run against it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `SSH_CONNECTION` as sshd sets it for a client at `ip`.
pub fn connection_from(ip: &str) -> String {
    format!("{ip} 50000 127.0.0.1 22")
}

/// The real `bpc-register`, with nothing inherited from this process's
/// environment.
pub fn bpc_register() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bpc-register"));
    command.env_clear();
    command
}

/// The levels a log line may start with.
const LEVELS: [&str; 4] = ["err ", "warning ", "notice ", "info "];

/// A server folder made by `bpc-enroll demo`: users alice and bob,
/// `pc-alice.example.org` (127.0.0.2) already registered to alice,
/// `pc-bob.example.org` (127.0.0.3) free, `evil.example.net` (127.0.0.9).
pub struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    /// Builds the demo in a new temporary folder.
    pub fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        client::demo::run(Some(dir.path()), "/usr/bin/bpc-enroll", "never").unwrap();
        Demo { dir }
    }

    /// A path inside the demo folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `bpc-register --config DIR/server.toml` with `SSH_ORIGINAL_COMMAND`
    /// and `SSH_CONNECTION` set as given; `None` leaves a variable unset.
    pub fn command(&self, request: Option<&OsStr>, connection: Option<&OsStr>) -> Command {
        let mut command = bpc_register();
        command.arg("--config").arg(self.path("server.toml"));
        if let Some(request) = request {
            command.env("SSH_ORIGINAL_COMMAND", request);
        }
        if let Some(connection) = connection {
            command.env("SSH_CONNECTION", connection);
        }
        command
    }

    /// Runs `bpc-register` as sshd would for `request` from `connection`.
    pub fn register(&self, request: &str, connection: &str) -> assert_cmd::assert::Assert {
        self.register_raw(Some(request.as_ref()), Some(connection.as_ref()))
    }

    /// Like [`Demo::register`], for values that are not text or are unset.
    pub fn register_raw(&self, request: Option<&OsStr>, connection: Option<&OsStr>) -> assert_cmd::assert::Assert {
        assert_cmd::Command::from_std(self.command(request, connection)).assert()
    }

    /// Appends `text` to a file of the demo folder.
    pub fn append(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        let mut body = fs::read_to_string(&path).unwrap();
        body.push_str(text);
        fs::write(&path, body).unwrap();
    }

    /// BackupPC's `hosts` file, as text.
    pub fn hosts(&self) -> String {
        fs::read_to_string(self.path("backuppc/hosts")).unwrap()
    }

    /// Everything under `DIR/backuppc`, to compare before and after.
    pub fn backuppc(&self) -> Tree {
        let root = self.path("backuppc");
        let mut tree = Tree::default();
        tree.walk(&root, &root);
        tree
    }

    /// Asserts that the event log has a line at `level` about `connection`
    /// saying `text`.
    pub fn assert_logged(&self, level: &str, connection: &str, text: &str) {
        let log = self.log();
        let found = log
            .lines()
            .any(|line| line.starts_with(&format!("{level} ")) && line.contains(connection) && line.contains(text));
        assert!(found, "no `{level}` line with {connection:?} and {text:?} in the log:\n{log}");
    }

    /// Asserts that every log line starts with a level: nothing the client
    /// sent could start a line of its own.
    pub fn assert_log_lines_are_whole(&self) {
        let log = self.log();
        for line in log.lines() {
            assert!(LEVELS.iter().any(|level| line.starts_with(level)), "forged log line {line:?} in:\n{log}");
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("register.log")).unwrap_or_default()
    }
}

/// The files (with their bytes) and folders under a folder, by relative path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tree(BTreeMap<PathBuf, Option<Vec<u8>>>);

impl Tree {
    fn walk(&mut self, root: &Path, dir: &Path) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_owned();
            if path.is_dir() {
                self.0.insert(relative, None);
                self.walk(root, &path);
            } else {
                self.0.insert(relative, Some(fs::read(&path).unwrap()));
            }
        }
    }

    /// The relative paths, files and folders alike.
    pub fn names(&self) -> Vec<&Path> {
        self.0.keys().map(PathBuf::as_path).collect()
    }

    /// Asserts that `hosts` is byte for byte what it was, that no file
    /// appeared or went away, and that no other file changed.
    pub fn assert_unchanged_since(&self, before: &Tree) {
        let hosts = Path::new("hosts");
        assert_eq!(self.text_of(hosts), before.text_of(hosts), "BackupPC's hosts changed");
        assert_eq!(self.names(), before.names(), "files appeared or went away in backuppc/");
        for (path, bytes) in &self.0 {
            assert_eq!(bytes, &before.0[path], "{} changed", path.display());
        }
    }

    /// The file at `path` as text for messages; `None` for a folder or nothing.
    fn text_of(&self, path: &Path) -> Option<String> {
        let bytes = self.0.get(path)?.as_ref()?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}
