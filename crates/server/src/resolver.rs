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
/// The file is kept as its text, checked once (every line starts with an
/// address), and each lookup walks it borrowing what it compares, so that a
/// file of any size costs no owned structure per line.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    text: String,
}

impl StaticResolver {
    /// Reads the hosts file and checks that every line starts with an address.
    pub fn load(path: &Path) -> Result<StaticResolver, ResolveError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ResolveError::Read { path: path.to_owned(), source })?;
        for (index, line) in text.lines().enumerate() {
            let Some(first) = line_fields(line).next() else { continue };
            if first.parse::<IpAddr>().is_err() {
                return Err(ResolveError::BadAddress {
                    path: path.to_owned(),
                    line: index + 1,
                    field: first.to_owned(),
                });
            }
        }
        Ok(StaticResolver { text })
    }

    /// Each line's address and the names after it.
    fn entries(&self) -> impl Iterator<Item = (IpAddr, std::str::SplitWhitespace<'_>)> {
        self.text.lines().filter_map(|line| {
            let mut fields = line_fields(line);
            let ip = fields.next()?.parse::<IpAddr>().ok()?;
            Some((ip.to_canonical(), fields))
        })
    }
}

/// The fields of a line, its comment left out.
fn line_fields(line: &str) -> std::str::SplitWhitespace<'_> {
    line.split('#').next().unwrap_or_default().split_whitespace()
}

impl Resolver for StaticResolver {
    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, ResolveError> {
        let ip = ip.to_canonical();
        let first = self.entries().find_map(|(entry, mut names)| if entry == ip { names.next() } else { None });
        Ok(first.map(str::to_owned).into_iter().collect())
    }

    /// A name matches as `HostName::parse` would normalise it: one trailing
    /// dot and the case do not count.
    fn forward(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
        let matches =
            |candidate: &str| candidate.strip_suffix('.').unwrap_or(candidate).eq_ignore_ascii_case(name.as_str());
        Ok(self.entries().filter_map(|(ip, mut names)| names.any(matches).then_some(ip)).collect())
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
    fn a_line_without_an_address_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.static");
        std::fs::write(&path, "127.0.0.1 a\nnot-an-ip b\n").unwrap();
        let message = StaticResolver::load(&path).unwrap_err().to_string();
        assert!(message.ends_with("hosts.static:2: `not-an-ip` is not an IP address"), "{message}");
    }
}
