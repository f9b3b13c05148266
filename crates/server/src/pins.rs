//! The host keys pinned for a host: `HOST.known_hosts` in BackupPC's
//! configuration folder, one line per key under the host's name (the
//! `HostKeyAlias` its per-host config gives ssh), read by BackupPC's ssh
//! for that host only.

use crate::transaction::PINS_SUFFIX;
use protocol::HostName;
use protocol::hostkeys::HostKey;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// How every pinned-keys file begins, the host's name after it.
pub const PINS_HEADER_PREFIX: &str = "# Written by bpc-register: the SSH host keys sent by ";

/// The host a pinned-keys file was written for, from its first line;
/// `None` when bpc-register did not write it.
pub fn written_for(first_line: &str) -> Option<&str> {
    first_line.strip_prefix(PINS_HEADER_PREFIX)?.strip_suffix(" when it registered.")
}

/// The file of `host`'s pinned keys in `conf_dir`.
pub fn pins_path(conf_dir: &Path, host: &HostName) -> PathBuf {
    conf_dir.join(format!("{host}{PINS_SUFFIX}"))
}

/// The body of `host`'s pinned-keys file: a comment, then one
/// `HOST TYPE BASE64` line per key.
pub fn pins_body(host: &HostName, keys: &[HostKey]) -> String {
    let mut body = format!("{PINS_HEADER_PREFIX}{host} when it registered.\n");
    for key in keys {
        body.push_str(&format!("{host} {}\n", key.render()));
    }
    body
}

/// The keys pinned in the file at `path`, `None` when there is none. The
/// file is opened without following a link or waiting on a FIFO, and only
/// as a regular file; a line that is not
/// `HOST TYPE BASE64` (edited by hand) is skipped.
pub fn read_pins(path: &Path) -> io::Result<Option<Vec<HostKey>>> {
    let file = files::open_regular(path, std::fs::OpenOptions::new().read(true));
    let mut file = match file {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    Read::by_ref(&mut file).take(256 * 1024).read_to_end(&mut bytes)?;
    let keys = bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.starts_with(b"#"))
        .filter_map(|line| {
            let at = line.iter().position(|b| *b == b' ')?;
            HostKey::parse(line.get(at + 1..)?).ok()
        })
        .collect();
    Ok(Some(keys))
}

/// The keys' SHA256 fingerprints, as `ssh-keygen -l` prints them.
pub fn fingerprints(keys: &[HostKey]) -> Vec<String> {
    keys.iter().map(HostKey::fingerprint).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOjHEgPPWML3UMMAud1JqyVNZC+DeLG8kIXd8twC5siD";

    #[test]
    fn pinned_keys_read_back_with_their_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostName::parse("pc-alice.example.org").unwrap();
        let keys = vec![HostKey::parse(ED25519.as_bytes()).unwrap()];
        let path = pins_path(dir.path(), &host);
        let body = pins_body(&host, &keys);
        assert_eq!(
            body,
            format!(
                "# Written by bpc-register: the SSH host keys sent by pc-alice.example.org when it registered.\n\
                 pc-alice.example.org {ED25519}\n"
            )
        );
        assert_eq!(read_pins(&path).unwrap(), None);
        std::fs::write(&path, body).unwrap();
        let read = read_pins(&path).unwrap().unwrap();
        assert_eq!(fingerprints(&read), ["SHA256:/H0EQRhPs6E8Y3S2xeHH1JQjYHZ6QGAydjHmxjaXZjM"]);
    }
}
