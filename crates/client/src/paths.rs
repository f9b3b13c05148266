//! Where a user's own files are: the configuration folder
//! (`$XDG_CONFIG_HOME`, else `~/.config`), and below it
//! `bpc-enroll/config.toml` and the credential cache
//! `bpc-enroll/auth/svn.simple`.
//!
//! Both the per-user configuration and the credential cache find their
//! folder here, so neither derives its place from the other.

use std::path::{Path, PathBuf};

/// The per-user configuration file, below the configuration folder.
pub const USER_CONFIG_FILE: &str = "bpc-enroll/config.toml";

/// The credential cache's folder, below the configuration folder, laid out
/// as Subversion's `CONFIG/auth/svn.simple`.
pub const CREDENTIAL_CACHE_DIR: &str = "bpc-enroll/auth/svn.simple";

/// The configuration folder chosen for the user running, and why another
/// one was passed over, if one was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigHome {
    /// The folder (`~/.config` or `$XDG_CONFIG_HOME`).
    pub dir: PathBuf,
    /// Why it is not the one the environment points to, when it is not.
    pub note: Option<String>,
}

impl ConfigHome {
    /// `$XDG_CONFIG_HOME`, or `$HOME/.config` when the variable is unset or
    /// empty, or `.config` in the home folder of the password database.
    ///
    /// As root, a configuration folder that belongs to someone else (an
    /// `XDG_CONFIG_HOME` or `HOME` kept through `sudo`) is passed over: its
    /// owner could swap its folders for links while root writes secrets
    /// there. The next one that root owns is used, and [`ConfigHome::note`]
    /// says so. `None` when there is no candidate at all.
    pub fn detect() -> Option<ConfigHome> {
        let euid = nix::unistd::geteuid();
        let candidates = [
            std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map(|v| ("XDG_CONFIG_HOME", PathBuf::from(v))),
            std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|v| ("HOME", PathBuf::from(v).join(".config"))),
            nix::unistd::User::from_uid(euid)
                .ok()
                .flatten()
                .map(|user| ("the password database", user.dir.join(".config"))),
        ];
        choose(candidates.into_iter().flatten(), euid.is_root(), owner_of_nearest)
    }

    /// The per-user `config.toml`.
    pub fn user_config_file(&self) -> PathBuf {
        self.dir.join(USER_CONFIG_FILE)
    }

    /// The credential cache's folder (`svn.simple`).
    pub fn credential_cache_dir(&self) -> PathBuf {
        self.dir.join(CREDENTIAL_CACHE_DIR)
    }
}

/// The first candidate that may be used: any, unless running as root, when
/// a folder (or its nearest existing parent) owned by another user is
/// passed over with the reason.
fn choose<'a>(
    candidates: impl IntoIterator<Item = (&'a str, PathBuf)>,
    as_root: bool,
    owner_of: impl Fn(&Path) -> Option<u32>,
) -> Option<ConfigHome> {
    let mut passed_over = Vec::new();
    for (source, dir) in candidates {
        match owner_of(&dir) {
            Some(owner) if as_root && owner != 0 => {
                passed_over.push(format!("{} (from {source}) belongs to uid {owner}", dir.display()));
            }
            _ => {
                let note = (!passed_over.is_empty()).then(|| {
                    format!(
                        "running as root, the credential cache is kept under {}, not in a folder of another user: {}",
                        dir.display(),
                        passed_over.join("; ")
                    )
                });
                return Some(ConfigHome { dir, note });
            }
        }
    }
    None
}

/// The owner of `path`, or of its nearest existing parent.
fn owner_of_nearest(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    path.ancestors().find_map(|p| std::fs::metadata(p).ok()).map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owners as a table: `/home/alice` is uid 1000's, everything else root's.
    fn owner(path: &Path) -> Option<u32> {
        Some(if path.starts_with("/home/alice") { 1000 } else { 0 })
    }

    fn candidates() -> Vec<(&'static str, PathBuf)> {
        vec![
            ("XDG_CONFIG_HOME", PathBuf::from("/home/alice/.config")),
            ("HOME", PathBuf::from("/home/alice/.config")),
            ("the password database", PathBuf::from("/root/.config")),
        ]
    }

    #[test]
    fn a_user_gets_the_first_folder_the_environment_names() {
        let home = choose(candidates(), false, owner).unwrap();
        assert_eq!(home, ConfigHome { dir: PathBuf::from("/home/alice/.config"), note: None });
        assert_eq!(home.user_config_file(), Path::new("/home/alice/.config/bpc-enroll/config.toml"));
        assert_eq!(home.credential_cache_dir(), Path::new("/home/alice/.config/bpc-enroll/auth/svn.simple"));
    }

    #[test]
    fn root_passes_over_another_users_folder_and_says_so() {
        let home = choose(candidates(), true, owner).unwrap();
        assert_eq!(home.dir, Path::new("/root/.config"));
        assert_eq!(
            home.note.as_deref(),
            Some(
                "running as root, the credential cache is kept under /root/.config, not in a folder of another \
                 user: /home/alice/.config (from XDG_CONFIG_HOME) belongs to uid 1000; /home/alice/.config \
                 (from HOME) belongs to uid 1000"
            )
        );
        assert_eq!(home.user_config_file(), Path::new("/root/.config/bpc-enroll/config.toml"));
    }

    #[test]
    fn root_keeps_its_own_folder_and_a_folder_of_unknown_owner() {
        let own = vec![("XDG_CONFIG_HOME", PathBuf::from("/srv/config"))];
        assert_eq!(choose(own, true, owner).unwrap(), ConfigHome { dir: PathBuf::from("/srv/config"), note: None });
        let unknown = vec![("HOME", PathBuf::from("/home/alice/.config"))];
        assert_eq!(choose(unknown, true, |_| None).unwrap().dir, Path::new("/home/alice/.config"));
    }

    #[test]
    fn without_a_folder_root_may_use_there_is_none() {
        assert_eq!(choose(candidates().into_iter().take(2), true, owner), None);
        assert_eq!(choose(Vec::new(), false, owner), None);
    }
}
