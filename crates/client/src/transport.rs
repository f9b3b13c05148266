//! How the request reaches the server, chosen by the server URL's scheme.

use protocol::{Request, SshConnection};
use server::{Server, ServerConfig};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Carries one request to the server and brings back its answer.
pub trait Transport {
    /// Sends `request` and returns the server's answer, unparsed.
    fn exchange(&self, request: &Request) -> Result<Vec<u8>, TransportError>;
}

/// Why the request could not be carried.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server URL cannot be used.
    #[error("bad server URL `{url}`: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `file://` needs the address the server should see.
    #[error("a file:// server needs --client-ip: the address whose DNS name the server checks")]
    MissingClientIp,
    /// The server could not be reached (or, for `file://`, started).
    #[error("cannot reach the server {server}: {reason}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The reason.
        reason: String,
    },
}

/// The transport for `url`: `file:///path/to/server.toml` runs the register
/// logic in this process (like Subversion's `file://`), seeing the request as
/// coming from `client_ip`.
pub fn transport_for(url: &str, client_ip: Option<IpAddr>) -> Result<Box<dyn Transport>, TransportError> {
    let bad = |reason: &str| TransportError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    let parsed = url::Url::parse(url).map_err(|error| bad(&error.to_string()))?;
    match parsed.scheme() {
        "file" => {
            let config_path = parsed.to_file_path().map_err(|()| bad("a file:// URL needs an absolute local path"))?;
            let client_ip = client_ip.ok_or(TransportError::MissingClientIp)?;
            Ok(Box::new(FileTransport { config_path, client_ip }))
        }
        other => Err(bad(&format!("the `{other}` scheme is not supported by this build; use file://"))),
    }
}

/// The in-process transport: a `bpc-register` run inside this process against
/// a server configuration file.
#[derive(Debug, Clone)]
pub struct FileTransport {
    /// The server configuration.
    pub config_path: PathBuf,
    /// The address the request appears to come from.
    pub client_ip: IpAddr,
}

impl FileTransport {
    /// The `SSH_CONNECTION` the in-process server sees: the client address,
    /// port 0 on both ends (no socket is involved) and the loopback address.
    pub fn connection(&self) -> SshConnection {
        SshConnection::new(self.client_ip, 0, IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    }
}

impl Transport for FileTransport {
    fn exchange(&self, request: &Request) -> Result<Vec<u8>, TransportError> {
        let unreachable = |reason: String| TransportError::Unreachable {
            server: format!("file://{}", self.config_path.display()),
            reason,
        };
        let config = ServerConfig::load(&self.config_path).map_err(|e| unreachable(e.to_string()))?;
        let server = Server::from_config(config).map_err(|e| unreachable(e.to_string()))?;
        let response = server.handle(Some(request.render().as_bytes()), &self.connection());
        Ok(response.text.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_transport_from_the_scheme() {
        let ip = Some("127.0.0.2".parse().unwrap());
        assert!(transport_for("file:///srv/server.toml", ip).is_ok());
        assert!(matches!(transport_for("file:///srv/server.toml", None), Err(TransportError::MissingClientIp)));
        assert!(matches!(transport_for("gopher://x", ip), Err(TransportError::BadUrl { .. })));
        assert!(matches!(transport_for("not a url", ip), Err(TransportError::BadUrl { .. })));
    }
}
