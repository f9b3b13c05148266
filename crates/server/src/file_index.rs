//! A sorted table of keys and values on disk that stands for a file it was
//! built from (the users file, the static resolver) for as long as that
//! file keeps its identity, so that a request finds its one user or its one
//! address by reading a few blocks instead of reading and checking the
//! whole file.
//!
//! The table is written beside the journal, atomically and `0600` (the
//! users file's holds password hashes), and is believed only when its
//! header names the kind of table and the identity of the file as it is
//! now: device, inode, size, and mtime and ctime to the nanosecond. It is
//! written only from a file whose ctime and mtime lie [`SETTLED`] or more
//! in the past: a file changed again within its timestamps' granularity
//! (one second on some file systems, one clock tick on others), same size
//! and all, could otherwise keep the identity of the version indexed.
//!
//! Layout (integers little-endian): the magic, the kind (8 bytes), the
//! source's identity (7 × 8 bytes), the number of records, the table's
//! whole length; then one 8-byte offset per record, in key order; then the
//! records, each the key's length and the value's (4 bytes each), the key
//! and the value. A lookup is a binary search through the offsets.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long ago a file must have last changed to be indexed.
pub const SETTLED: Duration = Duration::from_secs(2);

const MAGIC: &[u8; 8] = b"bpcidx01";
const HEADER_LEN: u64 = 8 + 8 + 7 * 8 + 8 + 8;
/// No key or value of a users file or a resolver comes near this.
const MAX_RECORD: u32 = 1 << 20;

/// Which file a table was built from: its device, inode, size, and mtime
/// and ctime in seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity([u64; 7]);

impl Identity {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &fs::Metadata) -> Identity {
        // Timestamps before 1970 keep their bits; they only need to compare.
        Identity([
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime() as u64,
            meta.mtime_nsec() as u64,
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ])
    }

    /// The identity of the file at `path` now (links followed, as a read
    /// follows them).
    pub fn of_path(path: &Path) -> io::Result<Identity> {
        fs::metadata(path).map(|meta| Identity::of(&meta))
    }

    /// Whether the file last changed [`SETTLED`] or more before `now`, so
    /// that any later change gives it another identity.
    pub fn settled(&self, now: SystemTime) -> bool {
        let [_, _, _, mtime, _, ctime, _] = self.0;
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else { return false };
        let latest = (mtime as i64).max(ctime as i64);
        i64::try_from(now.as_secs()).is_ok_and(|now| now - latest > SETTLED.as_secs() as i64)
    }
}

/// A table found on disk, held open.
#[derive(Debug, Clone)]
pub struct FileIndex {
    file: Arc<File>,
    count: u64,
    len: u64,
}

impl FileIndex {
    /// The table at `path` when it is whole, was built as `kind` from the
    /// file whose identity is `source`, and was written by this process's
    /// user or by root; `None` otherwise (missing, another file, an older
    /// version of it, damaged, or someone else's).
    ///
    /// Anyone who may read the source can compute its identity, so a table
    /// is believed only from someone trusted: a regular file (opened without
    /// following a link or waiting on a FIFO) that belongs to the running
    /// user or to root and that no one else may write. Anyone else's would
    /// let them name users or addresses the source does not hold.
    pub fn open(path: &Path, kind: &[u8; 8], source: &Identity) -> Option<FileIndex> {
        let file = files::open_regular(path, fs::OpenOptions::new().read(true)).ok()?;
        let meta = file.metadata().ok()?;
        if !crate::shared_file::believable(&meta, || None) {
            return None;
        }
        let len = meta.len();
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0).ok()?;
        let mut expected = Vec::with_capacity(header.len());
        expected.extend_from_slice(MAGIC);
        expected.extend_from_slice(kind);
        for part in source.0 {
            expected.extend_from_slice(&part.to_le_bytes());
        }
        let (start, rest) = header.split_at(expected.len());
        if start != expected.as_slice() {
            return None;
        }
        let (count, whole) = rest.split_at(8);
        let count = u64::from_le_bytes(count.try_into().ok()?);
        let whole = u64::from_le_bytes(whole.try_into().ok()?);
        let table_end = count.checked_mul(8)?.checked_add(HEADER_LEN)?;
        (whole == len && table_end <= len).then(|| FileIndex { file: Arc::new(file), count, len })
    }

    /// The value recorded for `key`, if any.
    pub fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let (mut low, mut high) = (0u64, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            let (found, value) = self.record(middle)?;
            match found.as_slice().cmp(key) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Ok(Some(value)),
            }
        }
        Ok(None)
    }

    /// The key and value of the record at `position` in key order.
    fn record(&self, position: u64) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let damaged = || io::Error::new(io::ErrorKind::InvalidData, "the index is damaged; remove it");
        let mut offset = [0u8; 8];
        self.file.read_exact_at(&mut offset, HEADER_LEN + position * 8)?;
        let offset = u64::from_le_bytes(offset);
        let mut lengths = [0u8; 8];
        self.file.read_exact_at(&mut lengths, offset)?;
        let (key_len, value_len) = lengths.split_at(4);
        let key_len = u32::from_le_bytes(key_len.try_into().map_err(|_| damaged())?);
        let value_len = u32::from_le_bytes(value_len.try_into().map_err(|_| damaged())?);
        let end = offset + 8 + u64::from(key_len) + u64::from(value_len);
        if key_len > MAX_RECORD || value_len > MAX_RECORD || end > self.len {
            return Err(damaged());
        }
        let mut bytes = vec![0u8; (key_len + value_len) as usize];
        self.file.read_exact_at(&mut bytes, offset + 8)?;
        let value = bytes.split_off(key_len as usize);
        Ok((bytes, value))
    }
}

/// The records of a table: keys and values, in key order, each key once.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// `records` in key order, records of one key in the order given. The keys'
/// first 16 bytes are compared as one number, the rest only on a tie: a
/// resolver's hundreds of thousands of keys sort in a few milliseconds.
pub fn sort_records(records: Records) -> Records {
    let prefix = |key: &[u8]| {
        let mut bytes = [0u8; 16];
        for (slot, byte) in bytes.iter_mut().zip(key) {
            *slot = *byte;
        }
        u128::from_be_bytes(bytes)
    };
    let key_of = |position: usize| records.get(position).map(|(key, _)| key.as_slice());
    let mut order: Vec<(u128, usize)> =
        records.iter().enumerate().map(|(position, (key, _))| (prefix(key), position)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| key_of(a.1).cmp(&key_of(b.1))).then(a.1.cmp(&b.1)));
    let mut slots: Vec<Option<(Vec<u8>, Vec<u8>)>> = records.into_iter().map(Some).collect();
    order.into_iter().filter_map(|(_, position)| slots.get_mut(position).and_then(Option::take)).collect()
}

/// The bytes of a table of `kind` built from the file whose identity is
/// `source`, holding `records`.
pub fn build(kind: &[u8; 8], source: &Identity, records: &Records) -> Vec<u8> {
    debug_assert!(records.windows(2).all(|pair| pair.first().map(|r| &r.0) < pair.get(1).map(|r| &r.0)));
    let count = records.len() as u64;
    let records_start = HEADER_LEN + count * 8;
    let mut table = Vec::with_capacity(records.len() * 8);
    let mut body = Vec::new();
    for (key, value) in records {
        table.extend_from_slice(&(records_start + body.len() as u64).to_le_bytes());
        body.extend_from_slice(&(key.len() as u32).to_le_bytes());
        body.extend_from_slice(&(value.len() as u32).to_le_bytes());
        body.extend_from_slice(key);
        body.extend_from_slice(value);
    }
    let whole = records_start + body.len() as u64;
    let mut bytes = Vec::with_capacity(whole as usize);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(kind);
    for part in source.0 {
        bytes.extend_from_slice(&part.to_le_bytes());
    }
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend_from_slice(&whole.to_le_bytes());
    bytes.extend_from_slice(&table);
    bytes.extend_from_slice(&body);
    bytes
}

/// What reads a file whole or through its index gives: from the index at
/// `index` when it is of the file at `path` as it is now (`from_index`);
/// otherwise the file read whole by `load`, and, when the file has settled
/// by `now`, the index of what `records` finds in it, to write. That index
/// is built only if it is written (a status request writes nothing).
pub fn open_or_load<T: Clone + 'static, E>(
    path: &Path,
    index: &Path,
    kind: &'static [u8; 8],
    now: SystemTime,
    from_index: impl FnOnce(FileIndex) -> T,
    load: impl FnOnce() -> Result<T, E>,
    records: fn(&T) -> Records,
) -> Result<(T, Option<PendingIndex>), E> {
    // Taken before the file is read: a change in between gives the file
    // another identity than the one the index is written under.
    let identity = Identity::of_path(path).ok();
    if let Some(found) = identity.as_ref().and_then(|identity| FileIndex::open(index, kind, identity)) {
        return Ok((from_index(found), None));
    }
    let loaded = load()?;
    let pending = identity.filter(|identity| identity.settled(now)).map(|identity| {
        let copy = loaded.clone();
        PendingIndex::new(index.to_owned(), move || build(kind, &identity, &records(&copy)))
    });
    Ok((loaded, pending))
}

/// A table to write once the request allows it (a status request writes
/// nothing): its path, and what builds its bytes.
pub struct PendingIndex {
    /// Where it goes.
    pub path: std::path::PathBuf,
    build: Box<dyn Fn() -> Vec<u8>>,
}

impl PendingIndex {
    /// The table at `path` whose bytes `build` gives (see [`build`]).
    pub fn new(path: std::path::PathBuf, build: impl Fn() -> Vec<u8> + 'static) -> PendingIndex {
        PendingIndex { path, build: Box::new(build) }
    }

    /// Builds the table and writes it atomically, `0600` and the writer's
    /// own whatever was there before (the users file's table holds the
    /// password hashes: a file planted in its place must lend it neither its
    /// mode nor, when root writes, its owner); a table that cannot be written
    /// only costs time at the next request.
    pub fn write(&self) -> io::Result<()> {
        let new = files::AtomicWrite::prepare(&self.path, &(self.build)(), 0o600)?;
        new.set_owner_and_mode(nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw(), 0o600)?;
        new.commit()
    }
}

impl std::fmt::Debug for PendingIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingIndex").field("path", &self.path).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: &[u8; 8] = b"testkind";

    fn identity_of(path: &Path) -> Identity {
        Identity::of_path(path).unwrap()
    }

    #[test]
    fn finds_every_key_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, "anything").unwrap();
        let identity = identity_of(&source);
        let mut records: Records =
            (0..1000u32).map(|n| (format!("key{n}").into_bytes(), format!("value {n}").into_bytes())).collect();
        records.sort();
        let path = dir.path().join("index");
        let bytes = build(KIND, &identity, &records);
        PendingIndex::new(path.clone(), move || bytes.clone()).write().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let index = FileIndex::open(&path, KIND, &identity).unwrap();
        for (key, value) in &records {
            assert_eq!(index.get(key).unwrap().as_ref(), Some(value));
        }
        for missing in [&b""[..], b"key", b"key1000", b"kez", b"\xff"] {
            assert_eq!(index.get(missing).unwrap(), None);
        }
        let empty = dir.path().join("empty");
        fs::write(&empty, build(KIND, &identity, &Vec::new())).unwrap();
        assert_eq!(FileIndex::open(&empty, KIND, &identity).unwrap().get(b"key1").unwrap(), None);
    }

    proptest::proptest! {
        #[test]
        fn records_sort_as_their_keys_and_keep_the_order_of_one_key(
            keys in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::prop_oneof![
                    proptest::prelude::Just(0u8), proptest::prelude::Just(b'a'), proptest::prelude::Just(b'b'),
                ], 0..20),
                0..40,
            ),
        ) {
            let records: Records =
                keys.iter().enumerate().map(|(n, key)| (key.clone(), n.to_le_bytes().to_vec())).collect();
            let mut expected = records.clone();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            proptest::prop_assert_eq!(sort_records(records), expected);
        }
    }

    #[test]
    fn a_table_is_written_as_the_writers_own_0600_whatever_was_planted_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, "x").unwrap();
        let identity = identity_of(&source);
        let path = dir.path().join("index");
        fs::write(&path, "planted").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
        let bytes = build(KIND, &identity, &vec![(b"alice".to_vec(), b"hash".to_vec())]);
        PendingIndex::new(path.clone(), move || bytes.clone()).write().unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600, "the planted file lent its mode");
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw(), "the planted file lent its owner");
        assert!(FileIndex::open(&path, KIND, &identity).is_some());
    }

    #[test]
    fn is_believed_only_for_the_same_kind_and_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, "one").unwrap();
        let identity = identity_of(&source);
        let records = vec![(b"a".to_vec(), b"1".to_vec())];
        let path = dir.path().join("index");
        let bytes = build(KIND, &identity, &records);
        fs::write(&path, &bytes).unwrap();
        assert!(FileIndex::open(&path, KIND, &identity).is_some());
        assert!(FileIndex::open(&path, b"anything", &identity).is_none());
        // The same size, written again: another ctime at least, so another file.
        fs::write(&source, "two").unwrap();
        let mut changed = identity_of(&source);
        if changed == identity {
            changed.0[6] += 1;
        }
        assert!(FileIndex::open(&path, KIND, &changed).is_none());
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(FileIndex::open(&path, KIND, &identity).is_none(), "a cut table was believed");
        assert!(FileIndex::open(&dir.path().join("missing"), KIND, &identity).is_none());
    }

    #[test]
    fn only_a_file_that_has_not_changed_for_a_while_is_settled() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, "x").unwrap();
        let identity = identity_of(&source);
        let now = SystemTime::now();
        assert!(!identity.settled(now));
        assert!(!identity.settled(now + Duration::from_secs(1)));
        assert!(identity.settled(now + SETTLED + Duration::from_secs(1)));
        assert!(!identity.settled(SystemTime::UNIX_EPOCH));
    }
}
