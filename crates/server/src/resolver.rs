//! From the client's address to its host name, and back.

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
/// The file is kept as its text; loading parses each line's address once
/// (refusing a line without one) and keeps it with where the line's names
/// lie, so that a lookup compares addresses or borrowed names and builds
/// nothing per line.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    text: String,
    entries: Vec<(IpAddr, std::ops::Range<usize>)>,
}

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
        Ok(StaticResolver { text, entries })
    }

    /// The names of an entry's line.
    fn names(&self, range: &std::ops::Range<usize>) -> std::str::SplitWhitespace<'_> {
        self.text.get(range.clone()).unwrap_or_default().split_whitespace()
    }
}

impl Resolver for StaticResolver {
    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, ResolveError> {
        let ip = ip.to_canonical();
        let first =
            self.entries.iter().find_map(|(entry, names)| if *entry == ip { self.names(names).next() } else { None });
        Ok(first.map(str::to_owned).into_iter().collect())
    }

    /// A name matches as `HostName::parse` would normalise it: one trailing
    /// dot and the case do not count.
    fn forward(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
        let name = name.as_str().as_bytes();
        let matches = |candidate: &[u8]| candidate.strip_suffix(b".").unwrap_or(candidate).eq_ignore_ascii_case(name);
        let line_matches = |names: &std::ops::Range<usize>| {
            let text = self.text.get(names.clone()).unwrap_or_default();
            if text.is_ascii() {
                // Unicode's white space within ASCII, compared as bytes.
                text.as_bytes().split(|b| b.is_ascii_whitespace() || *b == 0x0b).any(matches)
            } else {
                text.split_whitespace().any(|candidate| matches(candidate.as_bytes()))
            }
        };
        Ok(self.entries.iter().filter(|(_, names)| line_matches(names)).map(|(ip, _)| *ip).collect())
    }
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

    #[test]
    fn a_line_without_an_address_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.static");
        std::fs::write(&path, "127.0.0.1 a\nnot-an-ip b\n").unwrap();
        let message = StaticResolver::load(&path).unwrap_err().to_string();
        assert!(message.ends_with("hosts.static:2: `not-an-ip` is not an IP address"), "{message}");
    }
}
