//! From the client's address to its host name, and back.

use crate::file_index::{self, FileIndex, PendingIndex};
use protocol::HostName;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Address-to-name lookups: the DNS in production, a static file in the demo.
pub trait Resolver {
    /// The PTR names of `ip`, as the resolver gave them (any case, maybe a
    /// trailing dot). Empty when there are none.
    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, ResolveError>;
    /// The addresses `name` resolves to. Empty when there are none.
    fn forward(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError>;
}

/// Why the resolver could not answer (as opposed to answering "no name").
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The static hosts file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The hosts file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A line of the static hosts file does not start with an address.
    #[error("{path}:{line}: `{field}` is not an IP address")]
    BadAddress {
        /// The hosts file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The first field of that line.
        field: String,
    },
    /// The DNS resolver could not be set up.
    #[error("{reason}")]
    Setup {
        /// What went wrong.
        reason: String,
    },
    /// A DNS lookup got no answer in time.
    #[error("{what}: no answer within {seconds} s")]
    Timeout {
        /// The lookup.
        what: String,
        /// The timeout.
        seconds: f32,
    },
    /// A DNS lookup failed (as opposed to finding no such name).
    #[error("{what}: {reason}")]
    Failed {
        /// The lookup.
        what: String,
        /// The resolver's reason.
        reason: String,
    },
}

/// A resolver reading a file in `/etc/hosts` format: `IP name [alias...]`,
/// `#` comments. The first name of an address's first line is its PTR; every
/// name of a line resolves forward to that line's address.
///
/// Read whole, the file is kept as its text; loading parses each line's
/// address once (refusing a line without one) and keeps it with where the
/// line's names lie, so that a lookup compares addresses or borrowed names
/// and builds nothing per line. [`StaticResolver::open`] answers instead
/// from an index of the file ([`crate::file_index`]) while the file is the
/// one indexed, reading a few blocks of it per lookup.
#[derive(Debug, Clone)]
pub struct StaticResolver {
    path: PathBuf,
    lookup: Lookup,
}

#[derive(Debug, Clone)]
enum Lookup {
    /// The file read whole: its text and each line's address and names.
    Loaded { text: String, entries: Vec<(IpAddr, std::ops::Range<usize>)> },
    /// The file's index: `R` and an address's bytes give its PTR name; `F`
    /// and a name (lowercased, without one trailing dot) give the
    /// addresses of the lines that name it, in file order.
    Indexed(FileIndex),
}

/// The kind of a static resolver's index.
const INDEX_KIND: &[u8; 8] = b"resolver";

/// The name of the static resolver's index, kept beside the journal.
pub const INDEX_NAME: &str = "bpc-register-resolver.index";

impl StaticResolver {
    /// Reads the hosts file and checks that every line starts with an address.
    pub fn load(path: &Path) -> Result<StaticResolver, ResolveError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ResolveError::Read { path: path.to_owned(), source })?;
        let mut entries = Vec::new();
        let mut line_start = 0;
        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let content_start = line_start;
            line_start += raw.len();
            let content = raw.split('#').next().unwrap_or_default();
            let trimmed = content.trim_start();
            let first_len = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
            let first = trimmed.get(..first_len).unwrap_or_default();
            if first.is_empty() {
                continue;
            }
            let ip = first.parse::<IpAddr>().map_err(|_| ResolveError::BadAddress {
                path: path.to_owned(),
                line: index + 1,
                field: first.to_owned(),
            })?;
            let names_start = content_start + (content.len() - trimmed.len()) + first_len;
            entries.push((ip.to_canonical(), names_start..content_start + content.len()));
        }
        Ok(StaticResolver { path: path.to_owned(), lookup: Lookup::Loaded { text, entries } })
    }

    /// The resolver of the hosts file at `path`, answering from its index at
    /// `index` when that index is of the file as it is now; otherwise the
    /// file is read and checked whole, as [`StaticResolver::load`] does, and
    /// the index to write is given too when the file has settled by `now` (see
    /// [`crate::file_index`]).
    pub fn open(
        path: &Path,
        index: &Path,
        now: std::time::SystemTime,
    ) -> Result<(StaticResolver, Option<PendingIndex>), ResolveError> {
        let path_buf = path.to_owned();
        file_index::open_or_load(
            path,
            index,
            INDEX_KIND,
            now,
            |found| StaticResolver { path: path_buf, lookup: Lookup::Indexed(found) },
            || StaticResolver::load(path),
            StaticResolver::index_records,
        )
    }

    /// What the index of a loaded file holds (see [`Lookup::Indexed`]).
    fn index_records(&self) -> file_index::Records {
        let mut records = Vec::new();
        let Lookup::Loaded { text, entries } = &self.lookup else { return records };
        let mut keys = Vec::new();
        for (ip, names) in entries {
            let line = text.get(names.clone()).unwrap_or_default();
            if let Some(first) = line.split_whitespace().next() {
                records.push((reverse_key(*ip), first.as_bytes().to_vec()));
            }
            // One address per line, however often the line names it.
            keys.clear();
            keys.extend(line_names(line).map(|name| {
                let mut key = Vec::with_capacity(name.len() + 1);
                key.push(b'F');
                key.extend(name.strip_suffix(b".").unwrap_or(name).iter().map(u8::to_ascii_lowercase));
                key
            }));
            keys.sort_unstable();
            keys.dedup();
            for key in keys.drain(..) {
                let mut address = Vec::with_capacity(17);
                encode_address(&mut address, *ip);
                records.push((key, address));
            }
        }
        // The lines' order is kept among records of one key: an address's
        // first line gives its PTR, a name's lines their addresses in file
        // order.
        let sorted = file_index::sort_records(records);
        let mut merged: file_index::Records = Vec::with_capacity(sorted.len());
        for (key, value) in sorted {
            match merged.last_mut() {
                Some((last, addresses)) if *last == key => {
                    if key.first() == Some(&b'F') {
                        addresses.extend_from_slice(&value);
                    }
                }
                _ => merged.push((key, value)),
            }
        }
        merged
    }

    fn index_error(&self, source: std::io::Error) -> ResolveError {
        ResolveError::Read { path: self.path.clone(), source }
    }
}

impl Resolver for StaticResolver {
    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, ResolveError> {
        let ip = ip.to_canonical();
        match &self.lookup {
            Lookup::Loaded { text, entries } => {
                let names_of = |range: &std::ops::Range<usize>| text.get(range.clone()).unwrap_or_default();
                let first = entries.iter().find_map(|(entry, names)| {
                    if *entry == ip { names_of(names).split_whitespace().next() } else { None }
                });
                Ok(first.map(str::to_owned).into_iter().collect())
            }
            Lookup::Indexed(index) => {
                let found = index.get(&reverse_key(ip)).map_err(|source| self.index_error(source))?;
                Ok(found.map(|name| String::from_utf8_lossy(&name).into_owned()).into_iter().collect())
            }
        }
    }

    /// A name matches as `HostName::parse` would normalise it: one trailing
    /// dot and the case do not count.
    fn forward(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
        let name = name.as_str().as_bytes();
        match &self.lookup {
            Lookup::Loaded { text, entries } => {
                let matches =
                    |candidate: &[u8]| candidate.strip_suffix(b".").unwrap_or(candidate).eq_ignore_ascii_case(name);
                let line_matches = |names: &std::ops::Range<usize>| {
                    line_names(text.get(names.clone()).unwrap_or_default()).any(matches)
                };
                Ok(entries.iter().filter(|(_, names)| line_matches(names)).map(|(ip, _)| *ip).collect())
            }
            Lookup::Indexed(index) => {
                let key = [b"F".as_slice(), &name.to_ascii_lowercase()].concat();
                let found = index.get(&key).map_err(|source| self.index_error(source))?;
                decode_addresses(&found.unwrap_or_default()).ok_or_else(|| {
                    self.index_error(std::io::Error::new(std::io::ErrorKind::InvalidData, "the index is damaged"))
                })
            }
        }
    }
}

/// The names of a line, each as its bytes: split on Unicode's white space,
/// compared as bytes when the line is ASCII.
fn line_names(line: &str) -> Box<dyn Iterator<Item = &[u8]> + '_> {
    if line.is_ascii() {
        // Unicode's white space within ASCII, compared as bytes.
        Box::new(line.as_bytes().split(|b| b.is_ascii_whitespace() || *b == 0x0b).filter(|name| !name.is_empty()))
    } else {
        Box::new(line.split_whitespace().map(str::as_bytes))
    }
}

/// An index key for `ip`'s PTR: `R` and its bytes (4 or 16).
fn reverse_key(ip: IpAddr) -> Vec<u8> {
    let mut key = vec![b'R'];
    match ip.to_canonical() {
        IpAddr::V4(v4) => key.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => key.extend_from_slice(&v6.octets()),
    }
    key
}

/// Appends `ip` to an index value: its length (4 or 16), then its bytes.
fn encode_address(value: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            value.push(4);
            value.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            value.push(16);
            value.extend_from_slice(&v6.octets());
        }
    }
}

/// The addresses [`encode_address`] wrote; `None` when the bytes are not that.
fn decode_addresses(mut value: &[u8]) -> Option<Vec<IpAddr>> {
    let mut addresses = Vec::new();
    while let Some((&len, rest)) = value.split_first() {
        let bytes = rest.get(..usize::from(len))?;
        addresses.push(match len {
            4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
            _ => return None,
        });
        value = rest.get(usize::from(len)..)?;
    }
    Some(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(text: &str) -> StaticResolver {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.static");
        std::fs::write(&path, text).unwrap();
        StaticResolver::load(&path).unwrap()
    }

    #[test]
    fn reverse_gives_the_first_name_and_forward_every_address() {
        let resolver = resolver(
            "# demo\n127.0.0.2 PC-Alice.example.org. alias\n\n::1 six.example.org\n127.0.0.7 pc-alice.example.org\n",
        );
        assert_eq!(resolver.reverse("127.0.0.2".parse().unwrap()).unwrap(), ["PC-Alice.example.org."]);
        assert_eq!(resolver.reverse("::ffff:127.0.0.2".parse().unwrap()).unwrap(), ["PC-Alice.example.org."]);
        assert!(resolver.reverse("127.0.0.99".parse().unwrap()).unwrap().is_empty());
        let host = HostName::parse("pc-alice.example.org").unwrap();
        let addresses: Vec<String> = resolver.forward(&host).unwrap().iter().map(|ip| ip.to_string()).collect();
        assert_eq!(addresses, ["127.0.0.2", "127.0.0.7"]);
    }

    #[test]
    fn comments_crlf_and_lines_without_names_are_read_as_before() {
        let resolver = resolver(
            "192.0.2.1\r\n192.0.2.1 one.example.org # 192.0.2.9 x\r\n  192.0.2.9\tnine.example.org\tNINE.example.org.",
        );
        assert_eq!(resolver.reverse("192.0.2.1".parse().unwrap()).unwrap(), ["one.example.org"]);
        let nine = HostName::parse("nine.example.org").unwrap();
        assert_eq!(resolver.forward(&nine).unwrap(), ["192.0.2.9".parse::<IpAddr>().unwrap()]);
        assert!(resolver.forward(&HostName::parse("x").unwrap()).unwrap().is_empty());
    }

    /// The resolver of `text` answering from its index, and the one that
    /// read it whole.
    fn indexed_and_loaded(text: &str) -> (StaticResolver, StaticResolver, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.static");
        std::fs::write(&path, text).unwrap();
        let index = dir.path().join(INDEX_NAME);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        let (loaded, pending) = StaticResolver::open(&path, &index, later).unwrap();
        assert!(matches!(loaded.lookup, Lookup::Loaded { .. }));
        pending.expect("a settled file gives an index to write").write().unwrap();
        let (indexed, pending) = StaticResolver::open(&path, &index, later).unwrap();
        assert!(matches!(indexed.lookup, Lookup::Indexed(_)) && pending.is_none());
        (indexed, loaded, dir)
    }

    fn assert_same_answers(text: &str, addresses: &[&str], names: &[&str]) {
        let (indexed, loaded, _dir) = indexed_and_loaded(text);
        for address in addresses {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(indexed.reverse(ip).unwrap(), loaded.reverse(ip).unwrap(), "{text:?}: reverse {address}");
        }
        for name in names {
            let host = HostName::parse(name).unwrap();
            assert_eq!(indexed.forward(&host).unwrap(), loaded.forward(&host).unwrap(), "{text:?}: forward {name}");
        }
    }

    #[test]
    fn the_index_answers_as_the_file_read_whole() {
        let text = "# demo\n127.0.0.2 PC-Alice.example.org. alias alias\n127.0.0.2 second.example.org\n\n::1 six\n\
                    127.0.0.7 pc-alice.example.org\n192.0.2.1\n192.0.2.1 one # 192.0.2.9 x\n::ffff:192.0.2.5 mapped\n\
                    192.0.2.6 caf\u{e9}.example.org\u{a0}nbsp.example.org\u{2003}\tem\n";
        let addresses =
            ["127.0.0.2", "::ffff:127.0.0.2", "127.0.0.7", "127.0.0.99", "::1", "192.0.2.1", "192.0.2.5", "192.0.2.6"];
        let names = [
            "pc-alice.example.org",
            "alias",
            "second.example.org",
            "six",
            "one",
            "x",
            "mapped",
            "nbsp.example.org",
            "em",
            "none",
        ];
        assert_same_answers(text, &addresses, &names);
        let (indexed, _, _dir) = indexed_and_loaded(text);
        let host = HostName::parse("pc-alice.example.org").unwrap();
        let found: Vec<String> = indexed.forward(&host).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(found, ["127.0.0.2", "127.0.0.7"]);
        assert_eq!(indexed.reverse("192.0.2.5".parse().unwrap()).unwrap(), ["mapped"]);
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_malformed_one_refused_whatever_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.static");
        let index = dir.path().join(INDEX_NAME);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        std::fs::write(&path, "127.0.0.2 old.example.org\n").unwrap();
        StaticResolver::open(&path, &index, later).unwrap().1.unwrap().write().unwrap();
        std::fs::write(&path, "127.0.0.2 newer.example.org\n").unwrap();
        let (resolver, pending) = StaticResolver::open(&path, &index, later).unwrap();
        assert!(matches!(resolver.lookup, Lookup::Loaded { .. }) && pending.is_some());
        assert_eq!(resolver.reverse("127.0.0.2".parse().unwrap()).unwrap(), ["newer.example.org"]);
        // Not settled yet: read whole, no index to write.
        let (_, pending) = StaticResolver::open(&path, &index, std::time::SystemTime::now()).unwrap();
        assert!(pending.is_none(), "an index was offered for a file that just changed");
        std::fs::write(&path, "127.0.0.2 newer.example.org\nnot-an-ip b\n").unwrap();
        let message = StaticResolver::open(&path, &index, later).unwrap_err().to_string();
        assert!(message.ends_with("hosts.static:2: `not-an-ip` is not an IP address"), "{message}");
    }

    proptest::proptest! {
        #[test]
        fn the_index_never_answers_otherwise(
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["192.0.2.1", "192.0.2.2", "::ffff:192.0.2.1", "2001:db8::1", "# 192.0.2.3"]),
                    proptest::collection::vec(
                        proptest::sample::select(vec!["a.example.org", "A.example.org.", "b", "b.", "#", "c\u{a0}d", "."]),
                        0..4,
                    ),
                ),
                0..6,
            ),
        ) {
            let text: String =
                lines.iter().map(|(ip, names)| format!("{ip} {}\n", names.join("\t"))).collect();
            assert_same_answers(
                &text,
                &["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1"],
                &["a.example.org", "b", "c", "d", "example.org"],
            );
        }
    }

    #[test]
    fn a_line_without_an_address_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.static");
        std::fs::write(&path, "127.0.0.1 a\nnot-an-ip b\n").unwrap();
        let message = StaticResolver::load(&path).unwrap_err().to_string();
        assert!(message.ends_with("hosts.static:2: `not-an-ip` is not an IP address"), "{message}");
    }
}
