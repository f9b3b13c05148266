//! The path rsync is handed, resolved and pinned as root sees it.
//!
//! The text check in [`crate::rsyncsend`] cannot see symlinks: `/home/alice/link/`
//! is inside `/home` as text, but not when `link -> /etc`. So, when the
//! allowed paths are narrower than `/`, the root stage of rsyncsend
//! resolves the requested path (every symlink followed, as root would),
//! checks that the result lies inside one of the allowed roots (themselves
//! resolved), then opens the result again one component at a time with
//! `O_NOFOLLOW` from `/`. A component that became a symlink in between is a
//! race and refuses the transfer. The last directory opened stays open
//! across `exec` and rsync is handed `/proc/self/fd/N/...`: whatever happens
//! to the path afterwards, rsync starts from the inode that was checked.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// Why a path cannot be handed to rsync.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The path resolves outside every allowed root.
    #[error("path `{requested}` resolves to `{resolved}`, outside the allowed paths")]
    Outside {
        /// What the server asked for.
        requested: String,
        /// Where it leads.
        resolved: String,
    },
    /// The path could not be resolved (a loop, `..` below a missing folder, an I/O error).
    #[error("path `{path}` cannot be resolved: {reason}")]
    Unresolvable {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A component changed between the check and the pin.
    #[error("path `{path}` changed while it was being checked (a symlink appeared at `{component}`); refused")]
    Raced {
        /// The resolved path.
        path: String,
        /// The component that is now a symlink or not a folder.
        component: String,
    },
}

/// A checked path, held open: rsync is handed [`PinnedPath::handed`], which
/// names the pinned folder through `/proc/self/fd`.
#[derive(Debug)]
pub struct PinnedPath {
    /// The open folder; it must stay open (and inheritable) until `exec`.
    pub fd: OwnedFd,
    /// What rsync receives as its path.
    pub handed: String,
    /// The requested path, resolved.
    pub resolved: String,
    /// The resolved allowed root it lies in (rsync's `--confine-root`).
    pub root: String,
}

/// Resolves `path` as root sees it: every symlink followed, `.` and `..`
/// applied. Components past the first missing one are kept as they are
/// (a restore may create its destination), but must be plain names.
pub fn resolve(path: &str) -> Result<PathBuf, PathError> {
    let unresolvable = |reason: String| PathError::Unresolvable { path: path.to_owned(), reason };
    let mut pending: Vec<std::ffi::OsString> = Path::new(path).components().rev().filter_map(component_name).collect();
    let mut resolved = PathBuf::from("/");
    let mut followed = 0;
    let mut missing = false;
    while let Some(name) = pending.pop() {
        if name == ".." {
            if missing {
                return Err(unresolvable("`..` below a missing folder".into()));
            }
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        if missing {
            resolved = candidate;
            continue;
        }
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(unresolvable("too many levels of symbolic links".into()));
                }
                let target = std::fs::read_link(&candidate).map_err(|e| unresolvable(e.to_string()))?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                pending.extend(target.components().rev().filter_map(component_name));
            }
            Ok(_) => resolved = candidate,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                missing = true;
                resolved = candidate;
            }
            Err(error) => return Err(unresolvable(error.to_string())),
        }
    }
    Ok(resolved)
}

/// `..` and plain names; the root and `.` say nothing.
fn component_name(component: Component<'_>) -> Option<std::ffi::OsString> {
    match component {
        Component::Normal(name) => Some(name.to_owned()),
        Component::ParentDir => Some("..".into()),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    }
}

/// Resolves `requested` and every allowed root, checks that the one lies in
/// the other, and pins it: see the module's documentation. A trailing `/`
/// on `requested` is kept, since rsync reads it (a folder's contents rather
/// than the folder). A backup (`must_exist`) needs the whole path to exist:
/// rsync's sender follows a symlink at its source root, so a name left for
/// rsync to look up could be planted as one after the check. A restore is
/// handed its destination folder itself (see `pin_restore`).
pub fn pin(requested: &str, allowed: &[String], must_exist: bool) -> Result<PinnedPath, PathError> {
    let resolved = resolve(requested)?;
    let resolved_text = text(&resolved, requested)?;
    let mut best: Option<String> = None;
    for root in allowed {
        let Ok(root) = resolve(root) else { continue };
        let Some(root) = root.to_str().map(str::to_owned) else { continue };
        if crate::rsyncsend::path_allowed(&resolved_text, std::slice::from_ref(&root))
            && best.as_ref().is_none_or(|best| best.len() < root.len())
        {
            best = Some(root);
        }
    }
    let Some(root) = best else {
        return Err(PathError::Outside { requested: requested.to_owned(), resolved: resolved_text });
    };
    match must_exist {
        true => pin_resolved(requested, &resolved, resolved_text, root, true),
        false => pin_restore(requested, &resolved, resolved_text, root),
    }
}

/// The pin of a restore's destination: the folder itself, held open and
/// handed as `/proc/self/fd/N/`, so that no name is left for rsync to look
/// up (a user who owns a folder on the way could swap such a name for a
/// root-owned symlink, which rsync's receiver follows). A missing last folder
/// is created here as root (0700; rsync then gives it the restored folder's
/// mode and owner) and opened without following a link; a path with more
/// than one missing folder is refused, and so is one that ends in a file.
fn pin_restore(requested: &str, resolved: &Path, resolved_text: String, root: String) -> Result<PinnedPath, PathError> {
    let names: Vec<&std::ffi::OsStr> = resolved.iter().skip(1).collect();
    let raced = |component: &std::ffi::OsStr| PathError::Raced {
        path: resolved_text.clone(),
        component: component.to_string_lossy().into_owned(),
    };
    let mut fd = open_dir(None, std::ffi::OsStr::new("/")).map_err(|_| raced(std::ffi::OsStr::new("/")))?;
    for (index, name) in names.iter().enumerate() {
        let last = index + 1 == names.len();
        match open_dir(Some(&fd), name) {
            Ok(next) => fd = next,
            Err(nix::errno::Errno::ENOENT) if last => {
                nix::sys::stat::mkdirat(&fd, *name, nix::sys::stat::Mode::from_bits_truncate(0o700))
                    .map_err(|_| raced(name))?;
                fd = open_dir(Some(&fd), name).map_err(|_| raced(name))?;
            }
            Err(nix::errno::Errno::ENOENT) => {
                return Err(PathError::Unresolvable {
                    path: requested.to_owned(),
                    reason: format!(
                        "`{}` does not exist: a restore creates at most the last folder of its path",
                        name.to_string_lossy()
                    ),
                });
            }
            Err(nix::errno::Errno::ENOTDIR) if last && is_plain_file(&fd, name) => {
                return Err(PathError::Unresolvable {
                    path: requested.to_owned(),
                    reason: "a restore writes into a folder, and this is a file".into(),
                });
            }
            Err(_) => return Err(raced(name)),
        }
    }
    let handed = format!("/proc/self/fd/{}/", fd.as_raw_fd());
    Ok(PinnedPath { fd, handed, resolved: resolved_text, root })
}

/// Opens the checked, resolved path from `/` without following any symlink
/// (the second half of [`pin`]): a symlink met here appeared after the check.
fn pin_resolved(
    requested: &str,
    resolved: &Path,
    resolved_text: String,
    root: String,
    must_exist: bool,
) -> Result<PinnedPath, PathError> {
    let names: Vec<&std::ffi::OsStr> = resolved.iter().skip(1).collect();
    let raced = |component: &std::ffi::OsStr| PathError::Raced {
        path: resolved_text.clone(),
        component: component.to_string_lossy().into_owned(),
    };
    // Open every existing folder of the resolved path, never following a symlink.
    let mut fd = open_dir(None, std::ffi::OsStr::new("/")).map_err(|_| raced(std::ffi::OsStr::new("/")))?;
    let mut opened = 0;
    for name in &names {
        match open_dir(Some(&fd), name) {
            Ok(next) => {
                fd = next;
                opened += 1;
            }
            Err(nix::errno::Errno::ENOENT) if !must_exist => break,
            Err(nix::errno::Errno::ENOENT) => {
                return Err(PathError::Unresolvable {
                    path: requested.to_owned(),
                    reason: format!("`{}` does not exist", name.to_string_lossy()),
                });
            }
            // The last component may be a file (a backup of one file): it is
            // handed by name below the pinned folder, and rsync opens it with
            // O_NOFOLLOW itself. A symlink there appeared after the check.
            Err(nix::errno::Errno::ENOTDIR)
                if opened + 1 == names.len() && !requested.ends_with('/') && is_plain_file(&fd, name) =>
            {
                break;
            }
            Err(_) => return Err(raced(name)),
        }
    }
    if opened == names.len() && !names.is_empty() && !requested.ends_with('/') {
        // A folder named without a trailing `/` would be sent as the magic
        // link itself: pin its parent and name it instead.
        return pin_parent(requested, &resolved_text, &names, root);
    }
    let mut handed = format!("/proc/self/fd/{}", fd.as_raw_fd());
    for name in names.iter().skip(opened) {
        handed.push('/');
        handed.push_str(&name.to_string_lossy());
    }
    if requested.ends_with('/') || opened == names.len() {
        handed.push('/');
    }
    Ok(PinnedPath { fd, handed, resolved: resolved_text, root })
}

/// The pin of a folder named without a trailing `/`: its parent, held open,
/// and its name, which rsync then opens without following a symlink.
fn pin_parent(
    requested: &str,
    resolved: &str,
    names: &[&std::ffi::OsStr],
    root: String,
) -> Result<PinnedPath, PathError> {
    let raced = |component: &std::ffi::OsStr| PathError::Raced {
        path: resolved.to_owned(),
        component: component.to_string_lossy().into_owned(),
    };
    let Some((leaf, parents)) = names.split_last() else {
        return Err(PathError::Unresolvable { path: requested.to_owned(), reason: "no folder to pin".into() });
    };
    let mut fd = open_dir(None, std::ffi::OsStr::new("/")).map_err(|_| raced(std::ffi::OsStr::new("/")))?;
    for name in parents {
        fd = open_dir(Some(&fd), name).map_err(|_| raced(name))?;
    }
    let handed = format!("/proc/self/fd/{}/{}", fd.as_raw_fd(), leaf.to_string_lossy());
    Ok(PinnedPath { fd, handed, resolved: resolved.to_owned(), root })
}

/// Opens folder `name` (below `parent`, or the absolute `name`) without
/// following a symlink. The descriptor is inheritable on purpose: rsync
/// reaches the folder through it after `exec`.
fn open_dir(parent: Option<&OwnedFd>, name: &std::ffi::OsStr) -> Result<OwnedFd, nix::errno::Errno> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    match parent {
        Some(parent) => openat(parent.as_fd(), name, flags, Mode::empty()),
        None => open(name, flags, Mode::empty()),
    }
}

/// Whether `name` below `parent` is neither a folder nor a symlink.
fn is_plain_file(parent: &OwnedFd, name: &std::ffi::OsStr) -> bool {
    use nix::fcntl::AtFlags;
    use nix::sys::stat::{SFlag, fstatat};
    fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|stat| {
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        kind != SFlag::S_IFLNK && kind != SFlag::S_IFDIR
    })
}

fn text(path: &Path, requested: &str) -> Result<String, PathError> {
    path.to_str().map(str::to_owned).ok_or_else(|| PathError::Unresolvable {
        path: requested.to_owned(),
        reason: "the resolved path is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap().to_str().unwrap().to_owned();
        std::fs::create_dir_all(format!("{base}/home/alice/docs")).unwrap();
        std::fs::create_dir_all(format!("{base}/etc")).unwrap();
        std::fs::write(format!("{base}/home/alice/file"), "x").unwrap();
        symlink(format!("{base}/etc"), format!("{base}/home/alice/link")).unwrap();
        symlink("docs", format!("{base}/home/alice/inside")).unwrap();
        (dir, base)
    }

    #[test]
    fn resolves_symlinks_and_keeps_a_missing_tail() {
        let (_dir, base) = tree();
        assert_eq!(resolve(&format!("{base}/home/alice/link/x")).unwrap(), Path::new(&format!("{base}/etc/x")));
        assert_eq!(
            resolve(&format!("{base}/home/alice/inside/")).unwrap(),
            Path::new(&format!("{base}/home/alice/docs"))
        );
        assert!(matches!(resolve(&format!("{base}/home/missing/../x")), Err(PathError::Unresolvable { .. })));
        symlink("loop", format!("{base}/home/loop")).unwrap();
        assert!(matches!(resolve(&format!("{base}/home/loop/x")), Err(PathError::Unresolvable { .. })));
    }

    #[test]
    fn refuses_a_symlink_out_of_the_allowed_root_and_pins_what_stays_inside() {
        let (_dir, base) = tree();
        let allowed = vec![format!("{base}/home")];
        let outside = pin(&format!("{base}/home/alice/link/"), &allowed, true).unwrap_err();
        assert!(matches!(outside, PathError::Outside { .. }), "{outside}");
        let inside = pin(&format!("{base}/home/alice/inside/"), &allowed, true).unwrap();
        assert_eq!(inside.resolved, format!("{base}/home/alice/docs"));
        assert_eq!(inside.root, format!("{base}/home"));
        assert_eq!(inside.handed, format!("/proc/self/fd/{}/", inside.fd.as_raw_fd()));
        let named = pin(&format!("{base}/home/alice/docs"), &allowed, true).unwrap();
        assert_eq!(named.handed, format!("/proc/self/fd/{}/docs", named.fd.as_raw_fd()));
        let file = pin(&format!("{base}/home/alice/file"), &allowed, true).unwrap();
        assert_eq!(file.handed, format!("/proc/self/fd/{}/file", file.fd.as_raw_fd()));
        // A backup of a missing folder would leave its name for a user to plant.
        assert!(matches!(pin(&format!("{base}/home/alice/new/"), &allowed, true), Err(PathError::Unresolvable { .. })));
        assert!(matches!(
            pin(&format!("{base}/home/alice/file/"), &allowed, true),
            Err(PathError::Unresolvable { .. } | PathError::Raced { .. })
        ));
        // A restore's missing folder is made and held itself.
        let new = pin(&format!("{base}/home/alice/new/"), &allowed, false).unwrap();
        assert_eq!(new.handed, format!("/proc/self/fd/{}/", new.fd.as_raw_fd()));
        assert_eq!(
            std::fs::read_link(format!("/proc/self/fd/{}", new.fd.as_raw_fd())).unwrap(),
            Path::new(&format!("{base}/home/alice/new"))
        );
    }

    #[test]
    fn a_component_swapped_for_a_symlink_after_the_pin_changes_nothing() {
        let (_dir, base) = tree();
        std::fs::write(format!("{base}/home/alice/docs/notes"), "mine").unwrap();
        std::fs::write(format!("{base}/etc/shadow"), "secret").unwrap();
        let pinned = pin(&format!("{base}/home/alice/docs/"), &[format!("{base}/home")], true).unwrap();
        std::fs::rename(format!("{base}/home/alice"), format!("{base}/home/moved")).unwrap();
        std::fs::create_dir(format!("{base}/home/alice")).unwrap();
        symlink(format!("{base}/etc"), format!("{base}/home/alice/docs")).unwrap();
        let names: Vec<_> =
            std::fs::read_dir(&pinned.handed).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names, ["notes"]);
    }

    #[test]
    fn a_restore_is_handed_its_folder_itself_so_no_swapped_name_leads_out() {
        let (_dir, base) = tree();
        let allowed = [format!("{base}/home")];
        // An existing folder, named with or without the trailing slash, and
        // one the pin creates: each is held, and a name swapped afterwards
        // for a symlink out of the tree leads nowhere.
        for (requested, existing) in [("home/alice/docs", true), ("home/alice/docs/", true), ("home/alice/new", false)]
        {
            let path = format!("{base}/{requested}");
            let pinned = pin(&path, &allowed, false).unwrap();
            assert!(pinned.handed.ends_with('/'), "{}", pinned.handed);
            assert!(std::path::Path::new(&path).is_dir(), "{requested}");
            let folder = path.trim_end_matches('/').to_owned();
            std::fs::rename(&folder, format!("{folder}.moved")).unwrap();
            symlink(format!("{base}/etc"), &folder).unwrap();
            std::fs::write(format!("{}restored", pinned.handed), "x").unwrap();
            assert!(!std::path::Path::new(&format!("{base}/etc/restored")).exists(), "{requested}: wrote outside");
            assert!(std::path::Path::new(&format!("{folder}.moved/restored")).exists(), "{requested}");
            std::fs::remove_file(&folder).unwrap();
            if existing {
                std::fs::rename(format!("{folder}.moved"), &folder).unwrap();
                std::fs::remove_file(format!("{folder}/restored")).unwrap();
            }
        }
    }

    #[test]
    fn a_restore_creates_at_most_its_last_folder_and_never_into_a_file() {
        let (_dir, base) = tree();
        let allowed = [format!("{base}/home")];
        let deep = format!("{base}/home/alice/a/b/");
        assert!(matches!(pin(&deep, &allowed, false), Err(PathError::Unresolvable { .. })));
        assert!(!std::path::Path::new(&format!("{base}/home/alice/a")).exists());
        std::fs::write(format!("{base}/home/alice/file"), "").unwrap();
        assert!(matches!(
            pin(&format!("{base}/home/alice/file"), &allowed, false),
            Err(PathError::Unresolvable { .. })
        ));
    }

    #[test]
    fn a_symlink_that_appears_between_the_check_and_the_pin_is_refused() {
        let (_dir, base) = tree();
        // As if `link` had been a folder when it was resolved and checked.
        for requested in ["home/alice/link/", "home/alice/link/x/", "home/alice/link"] {
            let requested = format!("{base}/{requested}");
            let resolved = PathBuf::from(&requested);
            match pin_resolved(&requested, &resolved, requested.clone(), format!("{base}/home"), true) {
                Err(PathError::Raced { component, .. }) => assert_eq!(component, "link", "{requested}"),
                other => panic!("{requested}: {other:?}"),
            }
        }
    }
}
