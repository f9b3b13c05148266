//! Subversion's hash-dump format, as its credential files use it:
//!
//! ```text
//! K 8
//! username
//! V 5
//! alice
//! END
//! ```
//!
//! Bytes in, a map out, and back; no I/O here.

use std::collections::BTreeMap;

/// The keys and values of one file.
pub type HashDump = BTreeMap<String, String>;

/// Subversion's hash-dump format: `K len`, key, `V len`, value, ..., `END`.
pub fn render_hash_dump(entry: &HashDump) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in entry {
        out.extend_from_slice(format!("K {}\n{key}\nV {}\n{value}\n", key.len(), value.len()).as_bytes());
    }
    out.extend_from_slice(b"END\n");
    out
}

/// Reads the hash-dump format; `None` when it is not well formed.
pub fn parse_hash_dump(bytes: &[u8]) -> Option<HashDump> {
    let mut entry = HashDump::new();
    let mut rest = bytes;
    loop {
        let (line, after) = split_line(rest)?;
        if line == b"END" {
            return Some(entry);
        }
        let (key, after) = counted(line, b"K ", after)?;
        let (value_line, after) = split_line(after)?;
        let (value, after) = counted(value_line, b"V ", after)?;
        entry.insert(String::from_utf8(key.to_vec()).ok()?, String::from_utf8(value.to_vec()).ok()?);
        rest = after;
    }
}

fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|b| *b == b'\n')?;
    Some((bytes.get(..end)?, bytes.get(end + 1..)?))
}

/// `K 8` or `V 8` then eight bytes and a newline.
fn counted<'a>(line: &[u8], tag: &[u8], after: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let length: usize = std::str::from_utf8(line.strip_prefix(tag)?).ok()?.parse().ok()?;
    let data = after.get(..length)?;
    (after.get(length) == Some(&b'\n')).then_some(())?;
    Some((data, after.get(length + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn malformed_dumps_are_refused() {
        for bad in
            [&b""[..], b"K 3\nab\nV 1\nx\nEND\n", b"K 1\na\nV 5\nxy\nEND\n", b"K 1\na\nV 1\nx\n", b"X 1\na\nEND\n"]
        {
            assert!(parse_hash_dump(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    proptest! {
        #[test]
        fn hash_dumps_round_trip(entry in prop::collection::btree_map(any::<String>(), any::<String>(), 0..8)) {
            prop_assert_eq!(parse_hash_dump(&render_hash_dump(&entry)), Some(entry));
        }

        #[test]
        fn parser_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_hash_dump(&bytes);
        }
    }
}
