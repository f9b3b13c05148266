//! Whether only root can change a file root relies on: the program the
//! backup key runs and the client configuration the sudo rule names.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Whether a file or folder with this owner and mode can be changed by
/// someone other than `owner`: another owner, or group or others allowed
/// to write. A sticky folder (such as `/tmp`) written by others still lets
/// no one else rename or remove what `owner` has in it, so it counts as
/// unchangeable when it is a parent on the way.
pub fn others_can_change(uid: u32, mode: u32, is_dir: bool, owner: u32) -> bool {
    let sticky_dir = is_dir && mode & 0o1000 != 0;
    uid != owner || (mode & 0o022 != 0 && !sticky_dir)
}

/// `path` and those of its parent folders (of the path as given, then of
/// the path with every link resolved) that someone other than `owner` can
/// change, deepest first; empty when only `owner` can change all of them.
/// Parts that do not exist yet are passed over: whoever could create one
/// there is caught at the first folder that exists.
pub fn changeable_by_others(path: &Path, owner: u32) -> io::Result<Vec<PathBuf>> {
    let resolved = match existing_part(path).canonicalize() {
        Ok(resolved) => Some(resolved),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for candidate in std::iter::once(path).chain(resolved.as_deref()) {
        for part in candidate.ancestors().filter(|p| !p.as_os_str().is_empty()) {
            let meta = match std::fs::metadata(part) {
                Ok(meta) => meta,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            if others_can_change(meta.uid(), meta.mode(), meta.is_dir(), owner) && !found.iter().any(|f| f == part) {
                found.push(part.to_owned());
            }
        }
    }
    Ok(found)
}

/// The longest part of `path` that exists.
fn existing_part(path: &Path) -> &Path {
    path.ancestors().find(|p| p.exists()).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_the_owner_writing_alone_or_a_sticky_folder_is_unchangeable() {
        let cases = [
            (0, 0o100644, false, false),
            (0, 0o100600, false, false),
            (0, 0o040755, true, false),
            (0, 0o041777, true, false),
            (0, 0o100664, false, true),
            (0, 0o100646, false, true),
            (0, 0o040775, true, true),
            (0, 0o040777, true, true),
            (0, 0o101777, false, true),
            (1000, 0o100644, false, true),
            (1000, 0o040755, true, true),
            (1000, 0o041777, true, true),
        ];
        for (uid, mode, is_dir, changeable) in cases {
            assert_eq!(others_can_change(uid, mode, is_dir, 0), changeable, "uid {uid} mode {mode:o}");
        }
    }

    #[test]
    fn a_group_writable_file_or_folder_on_the_way_is_named() {
        let me = nix::unistd::geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        // The test's own folders stand for root's: only what is below them counts.
        let owner_of_base = |found: Vec<PathBuf>| found.into_iter().find(|p| p.starts_with(&base) && *p != base);
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let config = base.join("etc/client.toml");
        fs::create_dir_all(config.parent().unwrap()).unwrap();
        fs::set_permissions(config.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(owner_of_base(changeable_by_others(&config, me).unwrap()), None, "a missing file");
        fs::write(&config, "").unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(owner_of_base(changeable_by_others(&config, me).unwrap()), None);
        fs::set_permissions(&config, fs::Permissions::from_mode(0o664)).unwrap();
        assert_eq!(owner_of_base(changeable_by_others(&config, me).unwrap()), Some(config.clone()));
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(config.parent().unwrap(), fs::Permissions::from_mode(0o777)).unwrap();
        let parent = Some(config.parent().unwrap().to_owned());
        assert_eq!(owner_of_base(changeable_by_others(&config, me).unwrap()), parent);
        fs::remove_file(&config).unwrap();
        assert_eq!(owner_of_base(changeable_by_others(&config, me).unwrap()), parent, "a missing file");
        fs::set_permissions(config.parent().unwrap(), fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(owner_of_base(changeable_by_others(&config, me).unwrap()), None, "a sticky folder");

        // A link is followed: what it points to and that one's folders count.
        let elsewhere = base.join("open");
        fs::create_dir(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(elsewhere.join("real.toml"), "").unwrap();
        fs::set_permissions(elsewhere.join("real.toml"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(config.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("real.toml"), &config).unwrap();
        assert_eq!(owner_of_base(changeable_by_others(&config, me).unwrap()), Some(elsewhere));
    }
}
