//! Opening a file that someone else may have replaced: never through a
//! link put in its place, never waiting on a FIFO, and only when it is a
//! regular file (a device could block or never end).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens the regular file at `path` with `options` (see the module's
/// documentation): a link or anything but a regular file is an error that
/// says so.
pub fn open_regular(path: &Path, options: &OpenOptions) -> io::Result<File> {
    open(path, options, nix::libc::O_NOFOLLOW)
}

fn open(path: &Path, options: &OpenOptions, follow: i32) -> io::Result<File> {
    let flags = follow | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    let file = options.clone().custom_flags(flags).open(path).map_err(|error| {
        if error.raw_os_error() == Some(nix::libc::ELOOP) {
            io::Error::other("it is a symbolic link, which is not followed")
        } else {
            error
        }
    })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    Ok(file)
}

/// The bytes of the regular file at `path` (as [`open_regular`] opens it),
/// refused when it holds more than `max`; `None` when there is no such file.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    read(path, max, nix::libc::O_NOFOLLOW)
}

/// Like [`read_regular`], through a link put in its place: for a reader
/// that may open whatever the link leads to anyway (not root), where links
/// are a common practice. What it leads to must still be a regular file.
pub fn read_regular_through_links(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    read(path, max, 0)
}

fn read(path: &Path, max: u64, follow: i32) -> io::Result<Option<Vec<u8>>> {
    let file = match open(path, OpenOptions::new().read(true), follow) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!("it holds more than {max} bytes")));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_a_regular_file_in_place_is_read_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        assert_eq!(read_regular(&path, 10).unwrap(), None);
        fs::write(&path, "0123456789").unwrap();
        assert_eq!(read_regular(&path, 10).unwrap().unwrap(), b"0123456789");
        assert_eq!(read_regular(&path, 9).unwrap_err().to_string(), "it holds more than 9 bytes");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read_regular(&link, 10).unwrap_err().to_string(), "it is a symbolic link, which is not followed");
        assert_eq!(read_regular_through_links(&link, 10).unwrap().unwrap(), b"0123456789");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read_regular(&fifo, 10).unwrap_err().to_string(), "it is not a regular file");
        let to_fifo = dir.path().join("to-fifo");
        std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
        assert_eq!(read_regular_through_links(&to_fifo, 10).unwrap_err().to_string(), "it is not a regular file");
        // Nor is a FIFO without a reader waited on when opened to write.
        let error = open_regular(&fifo, OpenOptions::new().write(true)).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(nix::libc::ENXIO), "{error}");
        assert_eq!(read_regular(Path::new("/dev/zero"), 10).unwrap_err().to_string(), "it is not a regular file");
    }
}
