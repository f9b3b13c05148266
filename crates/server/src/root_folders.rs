//! The folders root uses for bpc-register's files, reached only through
//! folders that no one but root may change.
//!
//! Root's commands (`check`, `hosts`, a registration made in-process by
//! root) open their files by path: BackupPC's `hosts` and `LOCK`, the
//! journal, the log, the users file. A folder passed through on the way to
//! one of them that another account may change lets that account put a
//! link in place of what follows, and root would then create, write or read
//! files wherever the link points: a journal line in `/etc/cron.d`, a
//! password file read as the users file. The folder that holds the files
//! may be BackupPC's account's (`/etc/backuppc` is on Debian), since a file
//! in it is never created or written through a link; every folder passed
//! through to reach it must be root's, and written by no one else, as
//! OpenSSH requires of the folders above `authorized_keys`. A link on the
//! way is followed only when a folder of that kind holds it, and the folders
//! its target passes through are held to the same rule. A folder of files
//! root reads by path (the users file, the static resolver, the LDAP
//! password and CA) must itself be root's alone ([`Reach::Whole`]), and so
//! must the configuration, which names every path root uses
//! ([`check_config`]).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The most links followed on the way to one folder, as the kernel's own
/// limit (`ELOOP`).
const MAX_LINKS: usize = 40;

/// How much of the way to a folder must be root's alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every folder passed through; the folder itself may be another
    /// account's, since root creates, writes and reads no file in it through
    /// a link, but not one that everyone may write.
    Through,
    /// The folder itself too: root reads files there by path.
    Whole,
}

/// Why root does not use a folder of the configuration.
#[derive(Debug, thiserror::Error)]
#[error("root does not use {what} {}: {problem}", folder.display())]
pub struct Untrusted {
    /// What the folder is for, as the message names it ("the journal's folder").
    pub what: &'static str,
    /// The folder, as configured.
    pub folder: PathBuf,
    /// What is wrong on the way to it.
    pub problem: Problem,
}

/// What is wrong on the way to a folder.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A folder passed through belongs to another account.
    #[error(
        "{} belongs to {owner}, who could put a link in place of what it holds and have root write or read \
         elsewhere; keep it where only folders of root's that no one else may write lead (as /etc leads to \
         /etc/backuppc), or run bpc-register as that account",
        through.display()
    )]
    NotRoots {
        /// The folder passed through.
        through: PathBuf,
        /// Its owner, by name when it has one.
        owner: String,
    },
    /// A folder passed through is root's, but others may write it.
    #[error(
        "others than root may write {} (mode {mode:04o}) and put a link in place of what it holds, to have root \
         write or read elsewhere; keep it where only folders of root's that no one else may write lead (as /etc \
         leads to /etc/backuppc)",
        through.display()
    )]
    Writable {
        /// The folder passed through.
        through: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The folder itself may be written by everyone.
    #[error(
        "everyone may write it (mode {mode:04o}) and plant files in it for root to use; give bpc-register a \
         folder of its own"
    )]
    OpenToAll {
        /// Its mode.
        mode: u32,
    },
    /// The configuration belongs to another account.
    #[error("it belongs to {owner}, who could name the files root writes; make it root's, written by root alone")]
    FileNotRoots {
        /// Its owner, by name when it has one.
        owner: String,
    },
    /// The configuration is root's, but others may write it.
    #[error(
        "others than root may write it (mode {mode:04o}) and name the files root writes; make it written by root \
         alone"
    )]
    FileWritable {
        /// Its mode.
        mode: u32,
    },
    /// The way goes through more links than the kernel would follow.
    #[error("reaching it follows more than {MAX_LINKS} links")]
    TooManyLinks,
    /// Something on the way cannot be examined.
    #[error("{}: {source}", path.display())]
    Unreadable {
        /// What could not be examined.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Checks that `folder` is reached only through folders that no one but
/// root may change, following links found in such folders, and with
/// [`Reach::Whole`] that it is one of them (see the module's
/// documentation). A relative `folder` is taken from the working folder. A
/// folder that does not exist yet passes when only root could make it.
pub fn check(what: &'static str, folder: &Path, reach: Reach) -> Result<(), Untrusted> {
    let refused = |problem| Untrusted { what, folder: folder.to_owned(), problem };
    let Some(reached) = walk(folder).map_err(refused)? else { return Ok(()) };
    let meta =
        fs::metadata(&reached).map_err(|source| refused(Problem::Unreadable { path: reached.clone(), source }))?;
    match reach {
        Reach::Whole => only_root_changes(meta.uid(), meta.mode(), None).map_err(|why| refused(why.at(reached))),
        // Its owner's, but not everyone's: anyone could plant files in it.
        Reach::Through if meta.mode() & 0o002 != 0 => Err(refused(Problem::OpenToAll { mode: meta.mode() & 0o7777 })),
        Reach::Through => Ok(()),
    }
}

/// Checks that the configuration at `path` is root's, written by no one
/// else, and reached only through folders of the same kind: whoever could
/// change it could name any file for root to write. A missing file passes
/// (reading it fails next).
pub fn check_config(path: &Path) -> Result<(), Untrusted> {
    let what = "the configuration";
    let refused = |problem| Untrusted { what, folder: path.to_owned(), problem };
    let Some(reached) = walk(path).map_err(refused)? else { return Ok(()) };
    let meta =
        fs::metadata(&reached).map_err(|source| refused(Problem::Unreadable { path: reached.clone(), source }))?;
    match only_root_changes(meta.uid(), meta.mode() & 0o777, None) {
        Ok(()) => Ok(()),
        Err(Holder::NotRoots(uid)) => Err(refused(Problem::FileNotRoots { owner: account(uid) })),
        Err(Holder::Writable(mode)) => Err(refused(Problem::FileWritable { mode })),
    }
}

/// Walks to `folder` (see [`check`]): where it leads, without links, or
/// `None` when something on the way does not exist yet.
fn walk(folder: &Path) -> Result<Option<PathBuf>, Problem> {
    let start = if folder.is_absolute() {
        folder.to_owned()
    } else {
        let here = std::env::current_dir().map_err(|source| Problem::Unreadable { path: ".".into(), source })?;
        here.join(folder)
    };
    // What is left to walk, last component first; a link's target is put
    // in front of what followed the link.
    let mut left: Vec<PathBuf> = start.components().rev().map(|c| PathBuf::from(c.as_os_str())).collect();
    // The folder reached so far, without links in it: its parent is `..`.
    let mut here = PathBuf::from("/");
    let mut links = 0;
    while let Some(next) = left.pop() {
        let Some(component) = next.components().next() else { continue };
        match component {
            Component::RootDir => here = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                here.pop();
            }
            Component::Normal(name) => {
                let entry = here.join(name);
                let found = match fs::symlink_metadata(&entry) {
                    Ok(meta) => Some(meta),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                    Err(source) => return Err(Problem::Unreadable { path: entry, source }),
                };
                let holder =
                    fs::symlink_metadata(&here).map_err(|source| Problem::Unreadable { path: here.clone(), source })?;
                if let Err(why) = only_root_changes(holder.uid(), holder.mode(), found.as_ref().map(MetadataExt::uid)) {
                    return Err(why.at(here));
                }
                match found {
                    // Nothing below a missing entry: only root could make it.
                    None => return Ok(None),
                    Some(meta) if meta.file_type().is_symlink() => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(Problem::TooManyLinks);
                        }
                        let target = fs::read_link(&entry)
                            .map_err(|source| Problem::Unreadable { path: entry.clone(), source })?;
                        left.extend(target.components().rev().map(|c| PathBuf::from(c.as_os_str())));
                    }
                    Some(_) => here = entry,
                }
            }
        }
    }
    Ok(Some(here))
}

/// Why a folder passed through is not one that only root may change.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// It belongs to this uid.
    NotRoots(u32),
    /// It is root's, with this mode, which lets others write it.
    Writable(u32),
}

impl Holder {
    /// The problem, with the folder passed through.
    fn at(self, through: PathBuf) -> Problem {
        match self {
            Holder::NotRoots(uid) => Problem::NotRoots { through, owner: account(uid) },
            Holder::Writable(mode) => Problem::Writable { through, mode },
        }
    }
}

/// Whether a folder of `uid` and `mode` lets no one but root change its
/// entry of `entry_uid` (`None`: no such entry yet): root's, written by no
/// one else, or written by others but sticky (as `/tmp` is) with an entry
/// of root's, which others may then neither rename nor remove. An access
/// ACL is covered by the mode: its mask shows in the group bits.
fn only_root_changes(uid: u32, mode: u32, entry_uid: Option<u32>) -> Result<(), Holder> {
    if uid != 0 {
        return Err(Holder::NotRoots(uid));
    }
    let sticky_and_roots = mode & 0o1000 != 0 && entry_uid == Some(0);
    if mode & 0o022 != 0 && !sticky_and_roots {
        return Err(Holder::Writable(mode & 0o7777));
    }
    Ok(())
}

/// An account's name, or `uid N` when it has none.
fn account(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn only_a_folder_of_roots_that_no_one_else_writes_or_a_sticky_one_with_roots_entry_is_trusted() {
        let cases = [
            (0, 0o755, Some(0), Ok(())),
            (0, 0o700, Some(65534), Ok(())),
            (0, 0o755, None, Ok(())),
            (65534, 0o755, Some(0), Err(Holder::NotRoots(65534))),
            (65534, 0o700, None, Err(Holder::NotRoots(65534))),
            (0, 0o775, Some(0), Err(Holder::Writable(0o775))),
            (0, 0o757, Some(0), Err(Holder::Writable(0o757))),
            (0, 0o1777, Some(0), Ok(())),
            (0, 0o1777, Some(65534), Err(Holder::Writable(0o1777))),
            (0, 0o1777, None, Err(Holder::Writable(0o1777))),
            (0, 0o777, Some(0), Err(Holder::Writable(0o777))),
        ];
        for (uid, mode, entry, expected) in cases {
            assert_eq!(only_root_changes(uid, mode, entry), expected, "{uid} {mode:o} {entry:?}");
        }
    }

    /// A folder of root's, 0755, for tests run as root.
    fn roots_folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn chown_to_nobody(path: &Path) {
        std::os::unix::fs::lchown(path, Some(65534), Some(65534)).unwrap();
    }

    #[test]
    fn a_folder_under_roots_folders_is_used_even_when_it_is_anothers_or_missing() {
        testkit::require!(testkit::require_root_and(&[]));
        let dir = roots_folder();
        let backuppc = dir.path().join("backuppc");
        fs::create_dir(&backuppc).unwrap();
        chown_to_nobody(&backuppc);
        check("conf-dir", &backuppc, Reach::Through).unwrap();
        check("the journal's folder", &dir.path().join("not-yet/deeper"), Reach::Whole).unwrap();
        // A link of root's in a folder of root's, as Debian's /etc/backuppc/pc.
        symlink(&backuppc, dir.path().join("pc")).unwrap();
        check("conf-dir", &dir.path().join("pc"), Reach::Through).unwrap();
        check("conf-dir", &dir.path().join("pc/../backuppc"), Reach::Through).unwrap();
        // Root reads no file in it by path: its folder is another's.
        let error = check("the users file's folder", &backuppc, Reach::Whole).unwrap_err();
        assert!(matches!(error.problem, Problem::NotRoots { ref through, .. } if *through == backuppc), "{error}");
    }

    #[test]
    fn a_folder_under_anothers_folder_is_refused_with_the_folder_and_its_owner() {
        testkit::require!(testkit::require_root_and(&[]));
        let dir = roots_folder();
        let theirs = dir.path().join("theirs");
        fs::create_dir_all(theirs.join("enroll")).unwrap();
        chown_to_nobody(&theirs);
        let error = check("the journal's folder", &theirs.join("enroll"), Reach::Through).unwrap_err();
        let said = error.to_string();
        assert!(
            said.starts_with(&format!(
                "root does not use the journal's folder {}: {} belongs to nobody, who could put a link",
                theirs.join("enroll").display(),
                theirs.display()
            )),
            "{said}"
        );
        // Nor a folder that is not there yet: they could make it a link.
        assert!(matches!(
            check("x", &theirs.join("later"), Reach::Through).unwrap_err().problem,
            Problem::NotRoots { .. }
        ));
    }

    #[test]
    fn a_link_put_in_anothers_folder_is_not_followed_even_to_a_folder_of_roots() {
        testkit::require!(testkit::require_root_and(&[]));
        let dir = roots_folder();
        let roots = dir.path().join("roots");
        fs::create_dir(&roots).unwrap();
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        chown_to_nobody(&theirs);
        // A link of root's in a folder of root's leads into their folder.
        symlink(theirs.join("enroll"), dir.path().join("way")).unwrap();
        symlink(&roots, theirs.join("enroll")).unwrap();
        chown_to_nobody(&theirs.join("enroll"));
        let error = check("the journal's folder", &dir.path().join("way"), Reach::Through).unwrap_err();
        match error.problem {
            Problem::NotRoots { through, owner } => assert_eq!((through, owner.as_str()), (theirs, "nobody")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn folders_others_may_write_are_refused_unless_sticky_with_an_entry_of_roots() {
        testkit::require!(testkit::require_root_and(&[]));
        let dir = roots_folder();
        let shared = dir.path().join("shared");
        fs::create_dir_all(shared.join("mine")).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o775)).unwrap();
        let error = check("conf-dir", &shared.join("mine"), Reach::Through).unwrap_err();
        assert!(error.to_string().contains(&format!("others than root may write {} (mode 0775)", shared.display())));
        // Sticky, as /tmp: root's own entry cannot be renamed by others.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        check("conf-dir", &shared.join("mine"), Reach::Through).unwrap();
        // But a folder that everyone may write is not one to use itself.
        let error = check("the journal's folder", &shared, Reach::Through).unwrap_err();
        assert!(matches!(error.problem, Problem::OpenToAll { mode: 0o1777 }), "{error}");
        chown_to_nobody(&shared.join("mine"));
        assert!(matches!(
            check("conf-dir", &shared.join("mine"), Reach::Through).unwrap_err().problem,
            Problem::Writable { .. }
        ));
    }

    #[test]
    fn a_loop_of_links_ends() {
        testkit::require!(testkit::require_root_and(&[]));
        let dir = roots_folder();
        symlink(dir.path().join("b"), dir.path().join("a")).unwrap();
        symlink(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert!(matches!(
            check("conf-dir", &dir.path().join("a/x"), Reach::Through).unwrap_err().problem,
            Problem::TooManyLinks
        ));
    }

    #[test]
    fn root_reads_only_a_configuration_of_its_own_that_no_one_else_writes() {
        testkit::require!(testkit::require_root_and(&[]));
        let dir = roots_folder();
        let config = dir.path().join("server.toml");
        fs::write(&config, "domain = \"example.org\"\n").unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        check_config(&config).unwrap();
        check_config(&dir.path().join("missing.toml")).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o664)).unwrap();
        let said = check_config(&config).unwrap_err().to_string();
        assert_eq!(
            said,
            format!(
                "root does not use the configuration {}: others than root may write it (mode 0664) and name the \
                 files root writes; make it written by root alone",
                config.display()
            )
        );
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        chown_to_nobody(&config);
        assert!(matches!(check_config(&config).unwrap_err().problem, Problem::FileNotRoots { .. }));
        // Root's own file, in a folder of someone else's, who could swap it.
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::write(theirs.join("server.toml"), "").unwrap();
        chown_to_nobody(&theirs);
        let error = check_config(&theirs.join("server.toml")).unwrap_err();
        assert!(matches!(error.problem, Problem::NotRoots { ref through, .. } if *through == theirs), "{error}");
    }
}
