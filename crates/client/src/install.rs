//! What setup installs on the machine, and where.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where setup, status and uninstall act: the real system (as root: the
/// account, its sudo rule and the files under `/`), or a trial folder that
/// stands for `/` and changes nothing else (`--root DIR`, no root needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The real system.
    System,
    /// A trial installation under this folder.
    Trial(PathBuf),
}

impl Target {
    /// `--root DIR` given or not.
    pub fn from_root(root: Option<PathBuf>) -> Target {
        root.map_or(Target::System, Target::Trial)
    }

    /// The folder that stands for `/`.
    pub fn root(&self) -> &Path {
        match self {
            Target::System => Path::new("/"),
            Target::Trial(dir) => dir,
        }
    }

    /// Whether accounts, sudo rules and system tools are touched.
    pub fn changes_system(&self) -> bool {
        matches!(self, Target::System)
    }
}

/// Where setup installs things: under `/` for real, under any folder for a
/// trial or a test (`--root`).
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    account: String,
}

impl Layout {
    /// The layout for `account` under `root`.
    pub fn new(root: impl Into<PathBuf>, account: &str) -> Layout {
        Layout { root: root.into(), account: account.to_owned() }
    }

    /// The backup account's home.
    pub fn home(&self) -> PathBuf {
        self.root.join("var/lib").join(&self.account)
    }

    /// The backup account's `authorized_keys`.
    pub fn authorized_keys(&self) -> PathBuf {
        self.home().join(".ssh/authorized_keys")
    }

    /// The client configuration setup installs.
    pub fn client_config(&self) -> PathBuf {
        self.root.join("etc/bpc-enroll/client.toml")
    }
}

/// The `authorized_keys` line that lets the backup server in with `key` and
/// nothing but `command`: `restrict` turns off forwarding, ptys and user rc,
/// `from=` (when given) limits the addresses it is accepted from.
pub fn authorized_keys_line(key: &ssh_key::PublicKey, command: &str, from: Option<&str>) -> io::Result<String> {
    if command.contains(['"', '\\', '\n', '\r']) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the rsyncsend command holds a quote or a newline"));
    }
    let mut key = key.clone();
    let comment: String = key.comment().chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
    key.set_comment(comment.trim());
    let key_text = key.to_openssh().map_err(io::Error::other)?;
    let from = from.map(|from| format!("from=\"{from}\",")).unwrap_or_default();
    Ok(format!("{from}restrict,command=\"{command}\" {key_text}\n"))
}

/// Installs `line` in `path`, keeping other keys but replacing any line that
/// carries the same key, so that running setup again changes nothing. A new
/// file gets `mode`; with `group` (the backup account's, when setup changes
/// the system) the file is root's, in that group, with exactly `mode`,
/// whoever owned it before. Returns whether the file changed.
pub fn install_authorized_key(
    path: &Path,
    key: &ssh_key::PublicKey,
    line: &str,
    mode: u32,
    group: Option<u32>,
) -> io::Result<bool> {
    let old = read_keys_file(path)?;
    let blob = key_blob(key)?;
    let mut new = without_key(old.as_deref().unwrap_or_default(), &blob);
    new.push_str(line);
    write_keys_file(path, old.as_deref(), &new, mode, group)
}

/// The text of an `authorized_keys` file, read without following a link;
/// `None` when there is no such file, and empty when it is a link or not
/// a regular file (whatever it points to is not a key file of ours).
pub fn read_keys_file(path: &Path) -> io::Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    match fs::OpenOptions::new().read(true).custom_flags(flags.bits()).open(path) {
        Ok(mut file) if file.metadata()?.is_file() => {
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            Ok(Some(text))
        }
        Ok(_) => Ok(Some(String::new())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) if error.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => Ok(Some(String::new())),
        Err(error) => Err(error),
    }
}

/// Writes `new` over the keys file at `path` (which held `old`) when the
/// text, or with `group` its owner, group or mode, is not as it must be.
fn write_keys_file(path: &Path, old: Option<&str>, new: &str, mode: u32, group: Option<u32>) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let in_place = match (group, fs::symlink_metadata(path)) {
        (Some(gid), Ok(meta)) => {
            meta.is_file() && meta.uid() == 0 && meta.gid() == gid && meta.mode() & 0o7777 == mode && meta.nlink() == 1
        }
        (None, Ok(meta)) => meta.is_file(),
        (_, Err(_)) => false,
    };
    if old == Some(new) && in_place {
        return Ok(false);
    }
    let pending = files::AtomicWrite::prepare(path, new.as_bytes(), mode)?;
    if let Some(gid) = group {
        pending.set_owner_and_mode(0, gid, mode)?;
    }
    pending.commit()?;
    Ok(true)
}

/// Takes over the keys file of an account setup did not make: keeps only
/// the lines that bind a key to `command` the way setup writes them, and
/// leaves the file root's, in `group`, with `mode`. Returns a description
/// of each line removed (key type, fingerprint and comment).
pub fn take_over_keys_file(path: &Path, command: &str, mode: u32, group: u32) -> io::Result<Vec<String>> {
    let Some(old) = read_keys_file(path)? else { return Ok(Vec::new()) };
    let mut kept = String::new();
    let mut removed = Vec::new();
    for line in old.lines() {
        if bound_to(line, command) {
            kept.push_str(line);
            kept.push('\n');
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            removed.push(describe_key_line(line));
        }
    }
    if fs::symlink_metadata(path).is_ok_and(|meta| !meta.is_file()) {
        removed.push("(the file was not a regular file; replaced)".into());
    }
    write_keys_file(path, Some(&old), &kept, mode, Some(group))?;
    Ok(removed)
}

/// Whether `line` is `[from="ADDRESSES",]restrict,command="COMMAND" KEY`,
/// as [`authorized_keys_line`] writes it.
pub fn bound_to(line: &str, command: &str) -> bool {
    let mut rest = line.trim();
    if let Some(after) = rest.strip_prefix("from=\"") {
        let Some((from, after)) = after.split_once("\",") else { return false };
        if protocol::AddressList::parse(from).is_err() {
            return false;
        }
        rest = after;
    }
    rest.strip_prefix(&format!("restrict,command=\"{command}\" "))
        .is_some_and(|key| ssh_key::PublicKey::from_openssh(key.trim()).is_ok())
}

/// A key line told to the person: type, SHA-256 fingerprint and comment.
fn describe_key_line(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    for (index, pair) in fields.windows(2).enumerate() {
        if let Ok(key) = ssh_key::PublicKey::from_openssh(&pair.join(" ")) {
            let comment = fields.get(index + 2..).unwrap_or_default().join(" ");
            let comment: String = comment.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(60).collect();
            let options = if index > 0 { ", with options" } else { ", unrestricted" };
            return format!("{} {} {comment}{options}", key.algorithm(), key.fingerprint(ssh_key::HashAlg::Sha256));
        }
    }
    "a line that holds no key sshd would read".into()
}

/// Makes an existing folder root's, in `group`, with `mode`, through a
/// descriptor opened without following a link; a folder setup just made is
/// already so. Returns whether it changed.
pub fn secure_dir(dir: &Path, mode: u32, group: u32) -> io::Result<bool> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::{Mode, fchmod, fstat};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = open(dir, flags, Mode::empty()).map_err(io::Error::from)?;
    let stat = fstat(&fd).map_err(io::Error::from)?;
    if stat.st_uid == 0 && stat.st_gid == group && stat.st_mode & 0o7777 == mode {
        return Ok(false);
    }
    nix::unistd::fchown(&fd, Some(nix::unistd::Uid::from_raw(0)), Some(nix::unistd::Gid::from_raw(group)))
        .map_err(io::Error::from)?;
    fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(io::Error::from)?;
    Ok(true)
}

/// The base64 blob of a key, which identifies its lines whatever their options.
pub fn key_blob(key: &ssh_key::PublicKey) -> io::Result<String> {
    let text = key.to_openssh().map_err(io::Error::other)?;
    Ok(text.split(' ').nth(1).unwrap_or_default().to_owned())
}

/// `text` without the lines that carry `blob`.
pub fn without_key(text: &str, blob: &str) -> String {
    text.lines()
        .filter(|line| blob.is_empty() || !line.split_whitespace().any(|field| field == blob))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Writes the client configuration unless one is there already: a file the
/// administrator shipped (with the register key and known hosts) wins.
/// Returns whether it was written.
pub fn install_client_config(path: &Path, text: &str) -> io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    files::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// The folders `create_dirs(dir, ...)` would create, parents first.
pub fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> =
        dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).map(Path::to_owned).collect();
    missing.reverse();
    missing
}

/// Creates `dir` and its missing parents with `mode` (and `group`, when
/// given) and returns the folders it created, parents first.
pub fn create_dirs(dir: &Path, mode: u32, group: Option<u32>) -> io::Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    for dir in missing_dirs(dir) {
        DirBuilder::new().mode(mode).create(&dir)?;
        if let Some(gid) = group {
            nix::unistd::chown(&dir, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(io::Error::from)?;
        }
        created.push(dir);
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl backuppc@server";

    #[test]
    fn the_line_binds_the_key_to_the_command() {
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        let line = authorized_keys_line(&key, "/usr/bin/bpc-enroll rsyncsend", Some("192.0.2.10")).unwrap();
        assert_eq!(line, format!("from=\"192.0.2.10\",restrict,command=\"/usr/bin/bpc-enroll rsyncsend\" {KEY}\n"));
        let error = authorized_keys_line(&key, "/x\" ,no-restrict", None).unwrap_err();
        assert_eq!(error.to_string(), "the rsyncsend command holds a quote or a newline");
    }

    #[test]
    fn installing_twice_changes_nothing_and_modes_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path(), "bckpciuem");
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        let line = authorized_keys_line(&key, "/usr/bin/bpc-enroll rsyncsend", None).unwrap();
        let created = create_dirs(&layout.home().join(".ssh"), 0o700, None).unwrap();
        assert_eq!(created.last().unwrap(), &layout.home().join(".ssh"));
        assert!(install_authorized_key(&layout.authorized_keys(), &key, &line, 0o600, None).unwrap());
        assert!(!install_authorized_key(&layout.authorized_keys(), &key, &line, 0o600, None).unwrap());
        assert_eq!(fs::read_to_string(layout.authorized_keys()).unwrap(), line);
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(layout.authorized_keys()), 0o600);
        assert_eq!(mode(layout.home().join(".ssh")), 0o700);
    }

    #[test]
    fn other_keys_are_kept_and_an_old_binding_of_the_same_key_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ssh/authorized_keys");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7bFyfdhU/nD2AAWl3DjR3pOYY8iwBXDh+z6kuZTy5E other\n";
        fs::write(&path, format!("{other}command=\"/old\" {KEY}\n")).unwrap();
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        let line = authorized_keys_line(&key, "/new rsyncsend", None).unwrap();
        install_authorized_key(&path, &key, &line, 0o600, None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{other}{line}"));
    }

    #[test]
    fn only_lines_written_as_setup_writes_them_count_as_bound_to_rsyncsend() {
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        let command = "/usr/bin/bpc-enroll rsyncsend --config /etc/bpc-enroll/client.toml";
        for from in [None, Some("192.0.2.10"), Some("192.0.2.10,2001:db8::1")] {
            assert!(bound_to(authorized_keys_line(&key, command, from).unwrap().trim_end(), command), "{from:?}");
        }
        for line in [
            KEY.to_owned(),
            format!("command=\"{command}\" {KEY}"),
            format!("restrict,command=\"/home/bckpciuem/rsyncsend.sh\" {KEY}"),
            format!("restrict,command=\"{command}\",port-forwarding {KEY}"),
            format!("from=\"a b\",restrict,command=\"{command}\" {KEY}"),
            format!("restrict,command=\"{command}\" ssh-ed25519 nonsense"),
        ] {
            assert!(!bound_to(&line, command), "{line}");
        }
    }

    #[test]
    fn a_keys_file_that_is_a_link_is_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, format!("{KEY}\n")).unwrap();
        let link = dir.path().join("authorized_keys");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_keys_file(&link).unwrap().as_deref(), Some(""));
        assert_eq!(read_keys_file(&dir.path().join("missing")).unwrap(), None);
        assert_eq!(read_keys_file(&target).unwrap(), Some(format!("{KEY}\n")));
    }

    #[test]
    fn removed_keys_are_told_by_type_fingerprint_and_comment() {
        let told = describe_key_line(&format!("no-pty,command=\"a b\" {KEY}"));
        assert!(told.starts_with("ssh-ed25519 SHA256:") && told.ends_with(" backuppc@server, with options"), "{told}");
        assert!(describe_key_line(KEY).ends_with("backuppc@server, unrestricted"));
        assert_eq!(describe_key_line("garbage"), "a line that holds no key sshd would read");
    }
}
