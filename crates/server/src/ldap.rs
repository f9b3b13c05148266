//! The institution's LDAP directory.

use crate::config::LdapConfig;
use crate::directory::{Directory, DirectoryError};
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry, StdStream, ldap_escape};
use protocol::{Logon, Secret};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A directory that asks an LDAP server. Each question opens its own
/// connection: `bpc-register` lives for one request.
pub struct LdapDirectory {
    config: LdapConfig,
    bind_password: Option<Secret>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl LdapDirectory {
    /// Reads the bind password and the CA file the configuration names.
    pub fn new(config: &LdapConfig) -> Result<LdapDirectory, DirectoryError> {
        let bind_password = match &config.bind_password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let tls = match &config.ca_file {
            Some(path) => Some(Arc::new(tls_config(path)?)),
            None => None,
        };
        Ok(LdapDirectory { config: config.clone(), bind_password, tls })
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Unavailable { url: self.config.url.clone(), reason: reason.to_string() }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout.max(1))
    }

    /// Connects, upgrading with StartTLS when asked, and binds as the
    /// configured reader (or stays anonymous).
    ///
    /// The TCP connection is opened here, with Nagle's algorithm off: TLS
    /// sends a request as several small writes, and with Nagle the later
    /// ones waited for the server's delayed ACK, 40 ms on Linux, at every
    /// exchange of the handshake and of each request.
    fn connect(&self) -> Result<LdapConn, DirectoryError> {
        let stream = self.tcp_stream()?;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.config.starttls)
            .set_std_stream(StdStream::Tcp(stream));
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let mut ldap = LdapConn::with_settings(settings, &self.config.url).map_err(|e| self.unavailable(e))?;
        if let Some(dn) = &self.config.bind_dn {
            let password = self.bind_password.as_ref().map_or("", Secret::expose);
            if password.is_empty() {
                return Err(self.unavailable("bind-dn is set but bind-password-file is missing or empty"));
            }
            ldap.with_timeout(self.timeout())
                .simple_bind(dn, password)
                .and_then(|result| result.success())
                .map_err(|e| self.unavailable(format!("bind as {dn} failed: {e}")))?;
        }
        Ok(ldap)
    }

    /// A TCP connection to the URL's host and port (389, or 636 for
    /// `ldaps://`), trying each address in turn within the timeout, with
    /// `TCP_NODELAY` set.
    fn tcp_stream(&self) -> Result<TcpStream, DirectoryError> {
        let url = url::Url::parse(&self.config.url).map_err(|e| self.unavailable(e))?;
        let default_port = if url.scheme() == "ldaps" { 636 } else { 389 };
        let host = match url.host() {
            Some(url::Host::Ipv6(address)) => address.to_string(),
            Some(host) => host.to_string(),
            None => "localhost".to_owned(),
        };
        let port = url.port().unwrap_or(default_port);
        let addresses = (host.as_str(), port).to_socket_addrs().map_err(|e| self.unavailable(e))?;
        let mut last_error = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, self.timeout()) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(|e| self.unavailable(e))?;
                    return Ok(stream);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(self.unavailable(match last_error {
            Some(error) => error.to_string(),
            None => format!("{host} has no address"),
        }))
    }

    /// The DN of the one entry matching the filter for `logon` (escaped as
    /// RFC 4515 says, whatever it holds), `None` when there is none. Two or
    /// more entries are the directory's fault: no one is picked at random.
    pub fn user_dn(&self, logon: &str) -> Result<Option<String>, DirectoryError> {
        let mut ldap = self.connect()?;
        let dn = self.search_user(&mut ldap, logon);
        let _ = ldap.unbind();
        dn
    }

    fn search_user(&self, ldap: &mut LdapConn, logon: &str) -> Result<Option<String>, DirectoryError> {
        let filter = self.config.filter.replace("{logon}", &ldap_escape(logon));
        let (entries, _) = ldap
            .with_timeout(self.timeout())
            .search(&self.config.base, Scope::Subtree, &filter, vec!["1.1"])
            .and_then(|result| result.success())
            .map_err(|e| self.unavailable(format!("search {filter} under {} failed: {e}", self.config.base)))?;
        let mut dns = entries.into_iter().map(|entry| SearchEntry::construct(entry).dn);
        match (dns.next(), dns.next()) {
            (None, _) => Ok(None),
            (Some(dn), None) => Ok(Some(dn)),
            (Some(_), Some(_)) => Err(self.unavailable(format!("{filter} matches more than one entry"))),
        }
    }
}

impl Directory for LdapDirectory {
    fn user_exists(&self, logon: &Logon) -> Result<bool, DirectoryError> {
        Ok(self.user_dn(logon.as_str())?.is_some())
    }

    /// Binds as the user's own DN with `password`. An empty password is
    /// refused here: LDAP treats it as an anonymous bind, which succeeds.
    fn check_password(&self, logon: &Logon, password: &Secret) -> Result<bool, DirectoryError> {
        if password.is_empty() {
            return Ok(false);
        }
        // An unknown user still costs a connection and a bind, so that the
        // time of the answer does not tell which logons exist.
        let found = self.user_dn(logon.as_str())?;
        let dn = found.clone().unwrap_or_else(|| format!("cn=bpc-enroll-no-such-user,{}", self.config.base));
        let mut ldap = self.connect()?;
        let bound = ldap
            .with_timeout(self.timeout())
            .simple_bind(&dn, password.expose())
            .map_err(|e| self.unavailable(format!("bind as {dn} failed: {e}")))?;
        let _ = ldap.unbind();
        if found.is_none() {
            return Ok(false);
        }
        match bound.rc {
            0 => Ok(true),
            // invalidCredentials, and inappropriateAuthentication for a DN without a password.
            49 | 48 => Ok(false),
            rc => Err(self.unavailable(format!("bind as {dn} answered {rc}: {}", bound.text))),
        }
    }

    fn is_admin(&self, logon: &Logon) -> Result<bool, DirectoryError> {
        let Some(group) = &self.config.admin_group else { return Ok(false) };
        let mut ldap = self.connect()?;
        let result = (|| {
            let Some(dn) = self.search_user(&mut ldap, logon.as_str())? else { return Ok(false) };
            let filter = format!("(member={})", ldap_escape(&dn));
            let (entries, _) = ldap
                .with_timeout(self.timeout())
                .search(group, Scope::Base, &filter, vec!["1.1"])
                .and_then(|result| result.success())
                .map_err(|e| self.unavailable(format!("reading group {group} failed: {e}")))?;
            Ok(!entries.is_empty())
        })();
        let _ = ldap.unbind();
        result
    }
}

fn read_password(path: &Path) -> Result<Secret, DirectoryError> {
    let text = std::fs::read_to_string(path).map_err(|e| DirectoryError::Setting {
        path: path.to_owned(),
        what: "LDAP bind password",
        reason: e.to_string(),
    })?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// A TLS client configuration trusting the CA certificates in `path` only.
fn tls_config(path: &Path) -> Result<rustls::ClientConfig, DirectoryError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let setting = |reason: String| DirectoryError::Setting { path: path.to_owned(), what: "LDAP CA file", reason };
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|e| setting(e.to_string()))?;
    for certificate in certificates {
        roots.add(certificate.map_err(|e| setting(e.to_string()))?).map_err(|e| setting(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(setting("no certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setting(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
