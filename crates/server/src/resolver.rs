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
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    entries: Vec<(IpAddr, Vec<String>)>,
}

impl StaticResolver {
    /// Reads the hosts file.
    pub fn load(path: &Path) -> Result<StaticResolver, ResolveError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ResolveError::Read { path: path.to_owned(), source })?;
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or_default();
            let mut fields = content.split_whitespace();
            let Some(first) = fields.next() else { continue };
            let ip = first.parse::<IpAddr>().map_err(|_| ResolveError::BadAddress {
                path: path.to_owned(),
                line: index + 1,
                field: first.to_owned(),
            })?;
            entries.push((ip.to_canonical(), fields.map(str::to_owned).collect()));
        }
        Ok(StaticResolver { entries })
    }
}

impl Resolver for StaticResolver {
    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, ResolveError> {
        let ip = ip.to_canonical();
        let first = self.entries.iter().find(|(entry, names)| *entry == ip && !names.is_empty());
        Ok(first.and_then(|(_, names)| names.first().cloned()).into_iter().collect())
    }

    fn forward(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
        let matches = |candidate: &String| HostName::parse(candidate).is_ok_and(|c| &c == name);
        Ok(self.entries.iter().filter(|(_, names)| names.iter().any(matches)).map(|(ip, _)| *ip).collect())
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
