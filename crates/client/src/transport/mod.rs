//! How the request reaches the server, chosen by the server URL's scheme:
//! `ssh://` runs the system OpenSSH client ([`ssh`]); `https://` posts the
//! request as a form ([`https`], and `http://` to a loopback address, for a
//! TLS proxy on the same machine); `file://` runs the register logic in this
//! process ([`file`], built in only with the `file` feature, as Subversion
//! links `ra_local` only when built in). All answer the server's challenges
//! through one [`session::ChallengeSession`].

#[cfg(feature = "file")]
mod file;
mod https;
pub mod session;
mod ssh;

#[cfg(feature = "file")]
pub use file::FileTransport;
pub use https::{HttpsSettings, HttpsTransport};
pub use session::{ChallengeSession, converse};
pub use ssh::{SETPRIV, SSH, SshSettings, SshTransport};

use crate::credentials::{Authenticator, CredentialError};
use protocol::ClientRequest;
use std::net::IpAddr;
use std::path::PathBuf;

/// Carries one request to the server and brings back its answer.
pub trait Transport {
    /// Sends `request` (a registration or a status request), answers the
    /// server's challenges with `auth` and its question for host keys with
    /// `host_keys` (one `TYPE BASE64` line each, as many as the request
    /// announces), and returns the server's answer, unparsed.
    fn exchange(
        &self,
        request: &ClientRequest,
        host_keys: &[String],
        auth: &mut dyn Authenticator,
    ) -> Result<Vec<u8>, TransportError>;

    /// The addresses of the server this transport reached, for `from=` when
    /// the server does not say where BackupPC connects from. Empty when there
    /// is no network in between.
    fn reached_addresses(&self) -> Vec<IpAddr> {
        Vec::new()
    }
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
    /// The client configuration lacks what the transport needs.
    #[error("{0}")]
    Config(String),
    /// The server asked for a password that could not be given.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The server's SSH host key is not the pinned one.
    #[error(
        "the server's SSH host key does not match the one pinned in {known_hosts}: refusing to register \
         (a forged server could read this whole machine); nothing was changed. If the server's key really \
         changed, get the new known_hosts from the backup administrator"
    )]
    HostKeyMismatch {
        /// The pinned known_hosts file.
        known_hosts: PathBuf,
    },
    /// The server's TLS certificate does not verify against the CAs trusted.
    #[error(
        "the TLS certificate of {host} ({server}) does not verify against {trusted}: {reason}; refusing to \
         register (a forged server could read this whole machine); nothing was changed. If the server's \
         certificate really changed, get its CA from the backup administrator (ca-file in client.toml)"
    )]
    Certificate {
        /// The server URL.
        server: String,
        /// The host name or address the certificate must name.
        host: String,
        /// Which CAs were trusted.
        trusted: String,
        /// What is wrong with the certificate.
        reason: String,
    },
    /// An HTTP server answered, but not as bpc-register's does.
    #[error("the server {server} answered {reason}; nothing was changed")]
    Http {
        /// The server URL.
        server: String,
        /// The status and the server's reason, or what was wrong.
        reason: String,
    },
    /// The server could not be reached (or, for `file://`, started).
    #[error("cannot reach the server {server}: {reason}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The reason.
        reason: String,
    },
}

/// One transport built into this program, as `bpc-enroll --version` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltIn {
    /// Its name.
    pub name: &'static str,
    /// The URL schemes it handles.
    pub schemes: &'static [&'static str],
    /// What it does.
    pub description: &'static str,
}

/// The transports this build has, in the spirit of `svn --version`'s list of
/// repository access modules.
pub fn built_in() -> Vec<BuiltIn> {
    let mut transports = vec![
        BuiltIn {
            name: "ssh",
            schemes: &["ssh"],
            description: "the system OpenSSH client, the server's host key pinned",
        },
        BuiltIn {
            name: "https",
            schemes: &["https", "http"],
            description: "HTTPS (rustls), the server's certificate checked against the system's CAs or ca-file; \
                          plain http:// to loopback only",
        },
    ];
    if cfg!(feature = "file") {
        transports.push(BuiltIn {
            name: "file",
            schemes: &["file"],
            description: "the register logic in this process, against a server.toml",
        });
    }
    transports
}

/// The transport for `url`: `file:///path/to/server.toml` runs the register
/// logic in this process (like Subversion's `file://`, and only when built
/// in), seeing the request as coming from `client_ip`.
pub fn transport_for(url: &str, client_ip: Option<IpAddr>) -> Result<Box<dyn Transport>, TransportError> {
    transport_with(url, client_ip, None, HttpsSettings::default())
}

/// A server URL, parsed and checked once: what every part of the client
/// that needs the server's address or configuration starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUrl {
    /// `ssh://[user@]host[:port]`.
    Ssh {
        /// The host name or address, without brackets.
        host: String,
        /// The port (22 by default).
        port: u16,
        /// The server account bound to bpc-register (`backuppc` by default).
        login: String,
    },
    /// `https://host[:port]`, or `http://host[:port]` when the host is a
    /// loopback address or `localhost`.
    Https {
        /// The host name or address, without brackets.
        host: String,
        /// The port (443 for https, 80 for http, by default).
        port: u16,
        /// Whether TLS is spoken (`https`).
        tls: bool,
    },
    /// `file:///path/to/server.toml` (accepted only when built in).
    File {
        /// The server configuration.
        config_path: PathBuf,
    },
}

impl ServerUrl {
    /// Parses `url`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<ServerUrl, TransportError> {
        let bad = |reason: &str| TransportError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let parsed = url::Url::parse(url).map_err(|error| bad(&error.to_string()))?;
        match parsed.scheme() {
            "file" if cfg!(feature = "file") => {
                let config_path =
                    parsed.to_file_path().map_err(|()| bad("a file:// URL needs an absolute local path"))?;
                Ok(ServerUrl::File { config_path })
            }
            "file" => Err(bad(
                "file:// is not in this build (the in-process server is built in only with the `file` feature)",
            )),
            "ssh" => {
                let host =
                    parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("an ssh:// URL needs a host"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
                if host.starts_with('-') || !parsed.path().trim_matches('/').is_empty() {
                    return Err(bad("an ssh:// URL is ssh://[user@]host[:port], nothing more"));
                }
                let login = match parsed.username() {
                    "" => "backuppc".to_owned(),
                    user if protocol::Logon::parse(user).is_ok() => user.to_owned(),
                    _ => return Err(bad("the user part of the URL is not a plain account name")),
                };
                Ok(ServerUrl::Ssh { host, port: parsed.port().unwrap_or(22), login })
            }
            scheme @ ("https" | "http") => {
                let host =
                    parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("an https:// URL needs a host"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
                let nothing_more = parsed.username().is_empty()
                    && parsed.password().is_none()
                    && parsed.path().trim_matches('/').is_empty()
                    && parsed.query().is_none()
                    && parsed.fragment().is_none();
                if !nothing_more {
                    return Err(bad(&format!("an {scheme}:// URL is {scheme}://host[:port], nothing more")));
                }
                let tls = scheme == "https";
                if !tls && !is_loopback_host(&host) {
                    return Err(bad("plain http:// is refused except on loopback; use https://"));
                }
                let port = parsed.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
                Ok(ServerUrl::Https { host, port, tls })
            }
            other => {
                let schemes: Vec<String> =
                    built_in().iter().flat_map(|t| t.schemes).map(|scheme| format!("{scheme}://")).collect();
                Err(bad(&format!("the `{other}` scheme is not supported; this build handles {}", schemes.join(", "))))
            }
        }
    }
}

/// Whether `host` (without brackets) is `localhost` or a loopback address
/// (127.0.0.0/8, ::1), the only hosts plain `http://` may name.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Like [`transport_for`], with what the `ssh://` and `https://`
/// transports need.
pub fn transport_with(
    url: &str,
    client_ip: Option<IpAddr>,
    ssh: Option<SshSettings>,
    https: HttpsSettings,
) -> Result<Box<dyn Transport>, TransportError> {
    match ServerUrl::parse(url)? {
        #[cfg(feature = "file")]
        ServerUrl::File { config_path } => {
            let client_ip = client_ip.ok_or(TransportError::MissingClientIp)?;
            Ok(Box::new(FileTransport { config_path, client_ip }))
        }
        #[cfg(not(feature = "file"))]
        ServerUrl::File { .. } => {
            let _ = client_ip;
            Err(TransportError::BadUrl { url: url.to_owned(), reason: "file:// is not in this build".into() })
        }
        ServerUrl::Ssh { host, port, login } => {
            let settings = ssh.ok_or_else(|| {
                TransportError::Config(
                    "an ssh:// server needs `register-key` and `known-hosts` in client.toml (shipped by the backup administrator)".into(),
                )
            })?;
            Ok(Box::new(SshTransport { host, port, login, settings, reached: Default::default() }))
        }
        ServerUrl::Https { host, port, tls } => Ok(Box::new(HttpsTransport::new(host, port, tls, https))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "file")]
    #[test]
    fn picks_the_transport_from_the_scheme() {
        let ip = Some("127.0.0.2".parse().unwrap());
        assert!(transport_for("file:///srv/server.toml", ip).is_ok());
        assert!(matches!(transport_for("file:///srv/server.toml", None), Err(TransportError::MissingClientIp)));
        assert!(matches!(transport_for("gopher://x", ip), Err(TransportError::BadUrl { .. })));
        assert!(matches!(transport_for("ssh://backup.example.org", ip), Err(TransportError::Config(_))));
        assert!(matches!(transport_for("not a url", ip), Err(TransportError::BadUrl { .. })));
    }

    #[cfg(not(feature = "file"))]
    #[test]
    fn file_urls_say_they_are_not_in_this_build() {
        let error = transport_for("file:///srv/server.toml", Some("127.0.0.2".parse().unwrap())).err().unwrap();
        assert!(error.to_string().contains("file:// is not in this build"), "{error}");
    }

    #[test]
    fn ssh_urls_are_checked() {
        let ssh = || Some(SshSettings { register_key: "k".into(), known_hosts: "h".into(), run_as: None, timeout: 5 });
        assert!(transport_with("ssh://backup.example.org:2222", None, ssh(), HttpsSettings::default()).is_ok());
        let reason = |url: &str| match transport_with(url, None, ssh(), HttpsSettings::default()) {
            Err(TransportError::BadUrl { reason, .. }) => reason,
            other => panic!("{url}: {:?}", other.err()),
        };
        assert!(reason("ssh://-oProxyCommand=x").contains("nothing more"));
        assert!(reason("ssh://backup.example.org/path").contains("nothing more"));
        assert!(reason("ssh://a;b@backup.example.org").contains("not a plain account name"));
        let error = transport_with("gopher://x", None, ssh(), HttpsSettings::default()).err().unwrap().to_string();
        assert!(error.contains("this build handles ssh://, https://, http://"), "{error}");
    }

    #[test]
    fn https_urls_name_a_host_and_a_port_and_nothing_more() {
        let https = |host: &str, port: u16| ServerUrl::Https { host: host.into(), port, tls: true };
        let http = |host: &str, port: u16| ServerUrl::Https { host: host.into(), port, tls: false };
        for (url, parsed) in [
            ("https://backup.example.org", https("backup.example.org", 443)),
            ("https://backup.example.org/", https("backup.example.org", 443)),
            ("https://backup.example.org:8443", https("backup.example.org", 8443)),
            ("https://192.0.2.10:443", https("192.0.2.10", 443)),
            ("https://[2001:db8::1]:8443", https("2001:db8::1", 8443)),
            ("http://127.0.0.1:8080", http("127.0.0.1", 8080)),
            ("http://127.1.2.3", http("127.1.2.3", 80)),
            ("http://[::1]:8080", http("::1", 8080)),
            ("http://localhost:8080", http("localhost", 8080)),
            ("http://LOCALHOST", http("localhost", 80)),
        ] {
            assert_eq!(ServerUrl::parse(url).unwrap(), parsed, "{url}");
        }
        let refusal = |url: &str| ServerUrl::parse(url).unwrap_err().to_string();
        for url in [
            "http://backup.example.org",
            "http://192.0.2.10:8080",
            "http://[2001:db8::1]",
            "http://localhost.example.org",
            "http://10.0.0.1",
        ] {
            assert_eq!(
                refusal(url),
                format!("bad server URL `{url}`: plain http:// is refused except on loopback; use https://")
            );
        }
        for url in [
            "https://alice@backup.example.org",
            "https://alice:pw@backup.example.org",
            "https://backup.example.org/register",
            "https://backup.example.org/?x=1",
            "https://backup.example.org/#x",
        ] {
            assert_eq!(
                refusal(url),
                format!("bad server URL `{url}`: an https:// URL is https://host[:port], nothing more")
            );
        }
        assert_eq!(refusal("https://"), "bad server URL `https://`: empty host");
        let transport = transport_with("https://backup.example.org", None, None, HttpsSettings::default());
        assert!(transport.is_ok(), "https needs neither the register key nor known_hosts");
    }

    #[test]
    fn the_build_lists_its_transports() {
        let names: Vec<&str> = built_in().iter().map(|t| t.name).collect();
        assert_eq!(names.first(), Some(&"ssh"));
        assert!(names.contains(&"https"));
        assert_eq!(names.contains(&"file"), cfg!(feature = "file"));
    }
}
