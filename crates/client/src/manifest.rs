//! What setup installed, so that uninstall removes exactly that.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The record setup keeps of what it added, in `var/lib/bpc-enroll/installed.toml`
/// under the installation root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manifest {
    /// The backup account.
    pub account: String,
    /// Whether setup created the account (and so uninstall removes it).
    #[serde(default)]
    pub account_created: bool,
    /// Whether setup took over an account it found (its keys and password
    /// were removed then); uninstall leaves such an account in place.
    #[serde(default)]
    pub account_taken_over: bool,
    /// The server the machine is registered with.
    #[serde(default)]
    pub server: String,
    /// The host name the server registered.
    #[serde(default)]
    pub host: Option<String>,
    /// The host's BackupPC page.
    #[serde(default)]
    pub url: String,
    /// Files setup created.
    #[serde(default)]
    pub created_files: Vec<PathBuf>,
    /// Folders setup created, parents first.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// Keys setup added to files that were there before.
    #[serde(default)]
    pub added_keys: Vec<AddedKey>,
}

/// A key line added to an `authorized_keys` that setup did not create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AddedKey {
    /// The `authorized_keys` file.
    pub file: PathBuf,
    /// The key's base64 blob, which identifies the line.
    pub key: String,
}

impl Manifest {
    /// The manifest's path under `root`.
    pub fn path(root: &Path) -> PathBuf {
        root.join("var/lib/bpc-enroll/installed.toml")
    }

    /// Reads the manifest under `root`; `None` when setup never ran there.
    pub fn load(root: &Path) -> Result<Option<Manifest>, files::TomlError> {
        let path = Manifest::path(root);
        if !path.exists() {
            return Ok(None);
        }
        files::load_toml(&path).map(Some)
    }

    /// Records a file setup created (once).
    pub fn created_file(&mut self, path: PathBuf) {
        if !self.created_files.contains(&path) {
            self.created_files.push(path);
        }
    }

    /// Records folders setup created (once each, in order).
    pub fn created_dirs(&mut self, dirs: Vec<PathBuf>) {
        for dir in dirs {
            if !self.created_dirs.contains(&dir) {
                self.created_dirs.push(dir);
            }
        }
    }

    /// What `self` lists that `before` did not: the additions of one run,
    /// which a failed run takes back.
    pub fn added_since(&self, before: Option<&Manifest>) -> Manifest {
        let empty = Manifest::default();
        let before = before.unwrap_or(&empty);
        Manifest {
            account: self.account.clone(),
            account_created: self.account_created && !before.account_created,
            account_taken_over: self.account_taken_over && !before.account_taken_over,
            created_files: self.created_files.iter().filter(|f| !before.created_files.contains(f)).cloned().collect(),
            created_dirs: self.created_dirs.iter().filter(|d| !before.created_dirs.contains(d)).cloned().collect(),
            added_keys: self.added_keys.iter().filter(|k| !before.added_keys.contains(k)).cloned().collect(),
            ..Manifest::default()
        }
    }

    /// The manifest as TOML.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        Ok(format!(
            "# What bpc-enroll setup installed; bpc-enroll uninstall removes exactly this.\n{}",
            toml::to_string(self)?
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_back() {
        let manifest = Manifest {
            account: "bckpciuem".into(),
            account_created: true,
            account_taken_over: false,
            server: "ssh://backup.example.org".into(),
            host: Some("pc.example.org".into()),
            url: "http://b/".into(),
            created_files: vec!["/etc/sudoers.d/bpc-enroll-bckpciuem".into()],
            created_dirs: vec!["/var/lib/bckpciuem".into()],
            added_keys: vec![AddedKey { file: "/x/authorized_keys".into(), key: "AAAA".into() }],
        };
        let text = manifest.to_toml().unwrap();
        assert_eq!(files::parse_toml::<Manifest>(&text, Path::new("m")).unwrap(), manifest);
    }
}
