//! `https://`: the request as a form posted to `/register`, the challenge
//! as HTTP's own (`401` and `WWW-Authenticate: Basic realm="..."`), as
//! Subversion's client meets `mod_dav_svn`. The server's certificate is
//! verified against the system's CA certificates, or against `ca-file`
//! alone. Plain `http://` is for a server behind a TLS proxy on this very
//! machine: only loopback addresses are connected to.
//!
//! HTTP/1.1 and TLS are `ureq`'s, on rustls with ring, blocking, with no
//! async runtime. The connection itself is made here (`DirectConnector`), so
//! that the address actually connected to is known (`from=` names it) and a
//! plain `http://` connection never leaves loopback.

use super::session::{ChallengeSession, Reply};
use super::{Transport, TransportError};
use crate::credentials::Authenticator;
use protocol::basic::{parse_basic_challenge, render_basic_credentials};
use protocol::form::{FORM_CONTENT_TYPE, REGISTER_PATH, render_form};
use protocol::text::{one_line, printable};
use protocol::{Answer, ClientRequest, parse_answer};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector, Transport as Wire,
};

/// The longest answer read from a server; real ones are under 1 KiB.
const MAX_ANSWER: u64 = 64 * 1024;
/// The most of another status's explanation shown.
const MAX_REASON: usize = 200;

/// What the `https://` transport needs besides the URL.
#[derive(Debug, Clone)]
pub struct HttpsSettings {
    /// A PEM file of the CA certificates to trust instead of the system's
    /// (`ca-file` in client.toml).
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for each request: connection, TLS and answer.
    pub timeout: u32,
}

impl Default for HttpsSettings {
    fn default() -> HttpsSettings {
        HttpsSettings { ca_file: None, timeout: 10 }
    }
}

/// The `https://` transport (and `http://` to a loopback address).
#[derive(Debug)]
pub struct HttpsTransport {
    /// The host name or address, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether TLS is spoken: `false` only for `http://` on loopback.
    pub tls: bool,
    /// The trust and the timeout.
    pub settings: HttpsSettings,
    /// The address the last request was sent to.
    reached: Arc<Mutex<Option<SocketAddr>>>,
}

/// The status and the parts of an HTTP answer the exchange uses.
struct HttpAnswer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl HttpsTransport {
    /// The transport for `scheme://host:port` (`https`, or `http` when
    /// `tls` is false).
    pub fn new(host: String, port: u16, tls: bool, settings: HttpsSettings) -> HttpsTransport {
        HttpsTransport { host, port, tls, settings, reached: Arc::default() }
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// `scheme://host:port`, an IPv6 address in brackets: the start of the
    /// realmstring and of the request's URL.
    fn origin(&self) -> String {
        protocol::auth::realm_origin(self.scheme(), &self.host, self.port)
    }

    fn unreachable(&self, reason: impl Into<String>) -> TransportError {
        TransportError::Unreachable { server: self.origin(), reason: reason.into() }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.timeout.max(1)))
    }

    /// The CA certificates to trust, and how to name them in a message.
    fn trust(&self) -> Result<(Vec<ureq::tls::Certificate<'static>>, String), TransportError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let (certs, what): (Vec<CertificateDer<'static>>, String) = match &self.settings.ca_file {
            Some(path) => {
                let shown = path.display();
                let bad = |reason: String| {
                    TransportError::Config(format!("{shown}: {reason} (ca-file in client.toml); nothing was changed"))
                };
                let text = std::fs::read(path).map_err(|e| bad(format!("cannot read the CA certificates: {e}")))?;
                let certs = CertificateDer::pem_slice_iter(&text)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("not a PEM file of CA certificates: {e}")))?;
                if certs.is_empty() {
                    return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
                }
                let (_, unusable) = rustls::RootCertStore::empty().add_parsable_certificates(certs.clone());
                if unusable > 0 {
                    return Err(bad(format!("{unusable} of its certificates cannot be used as a CA")));
                }
                (certs, format!("the CA certificates in {shown} (ca-file in client.toml)"))
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                    return Err(TransportError::Config(format!(
                        "no system CA certificates to check {} against ({}): install ca-certificates, \
                         or name the server's CA with ca-file in client.toml; nothing was changed",
                        self.origin(),
                        if errors.is_empty() { "none found".to_owned() } else { errors.join("; ") }
                    )));
                }
                (found.certs, "the system's CA certificates".to_owned())
            }
        };
        let certs = certs.iter().map(|cert| ureq::tls::Certificate::from_der(cert.as_ref()).to_owned()).collect();
        Ok((certs, what))
    }

    /// One agent for one exchange: no proxy, no redirect, no pooled
    /// connection, statuses returned rather than turned into errors, every
    /// request bounded by `timeout`.
    fn agent(&self, trust: Option<Vec<ureq::tls::Certificate<'static>>>) -> ureq::Agent {
        let mut tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
        if let Some(certs) = trust {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(None)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .timeout_global(Some(self.timeout()))
            .user_agent(format!("bpc-enroll/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();
        let connector = DirectConnector { loopback_only: !self.tls, reached: Arc::clone(&self.reached) };
        ureq::Agent::with_parts(config, connector.chain(RustlsConnector::default()), DefaultResolver::default())
    }

    /// Posts `form`, with `authorization` when given, and reads the answer.
    fn post(
        &self,
        agent: &ureq::Agent,
        form: &str,
        authorization: Option<&str>,
        trusted: &str,
    ) -> Result<HttpAnswer, TransportError> {
        let mut request = agent
            .post(format!("{}{REGISTER_PATH}", self.origin()))
            .header("Content-Type", FORM_CONTENT_TYPE)
            .header("Accept", "text/plain");
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.send(form.as_bytes()).map_err(|error| self.failure(error, trusted))?;
        let header = |name: &str| -> Vec<String> {
            response.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
        };
        let challenge = header("WWW-Authenticate").iter().find_map(|value| parse_basic_challenge(value));
        let retry_after = header("Retry-After").into_iter().next();
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|error| self.failure(error, trusted))?;
        Ok(HttpAnswer { status, challenge, retry_after, body })
    }

    /// What a failed request means: a certificate that does not verify, a
    /// server that speaks no usable HTTP, or one that cannot be reached.
    fn failure(&self, error: ureq::Error, trusted: &str) -> TransportError {
        if let Some(rustls::Error::InvalidCertificate(reason)) = rustls_error(&error) {
            return TransportError::Certificate {
                server: self.origin(),
                host: self.host.clone(),
                trusted: trusted.to_owned(),
                reason: printable(&certificate_problem(reason)),
            };
        }
        if let Some(refused) = not_loopback(&error) {
            return TransportError::BadUrl {
                url: self.origin(),
                reason: format!("plain http:// is refused except on loopback; use https:// ({refused})"),
            };
        }
        match error {
            ureq::Error::Timeout(_) => self.unreachable(format!(
                "no answer within {} seconds (timeout in client.toml)",
                self.settings.timeout.max(1)
            )),
            ureq::Error::HostNotFound => self.unreachable(format!("the name {} is not known", self.host)),
            ureq::Error::BodyExceedsLimit(_) => TransportError::Http {
                server: self.origin(),
                reason: format!("its answer is longer than {} KiB", MAX_ANSWER / 1024),
            },
            ureq::Error::Protocol(error) => {
                TransportError::Http { server: self.origin(), reason: printable(&error.to_string()) }
            }
            ureq::Error::LargeResponseHeader(..) => {
                TransportError::Http { server: self.origin(), reason: "its answer's headers are too long".into() }
            }
            ureq::Error::Io(error) => self.unreachable(printable(&error.to_string())),
            other => self.unreachable(printable(&other.to_string())),
        }
    }
}

impl Transport for HttpsTransport {
    fn exchange(
        &self,
        request: &ClientRequest,
        host_keys: &[String],
        auth: &mut dyn Authenticator,
    ) -> Result<Vec<u8>, TransportError> {
        let (trust, trusted) = if self.tls {
            let (certs, what) = self.trust()?;
            (Some(certs), what)
        } else {
            (None, String::new())
        };
        let agent = self.agent(trust);
        let form = render_form(request, host_keys);
        let origin = self.origin();
        let mut session = ChallengeSession::new(&origin, auth);
        let mut authorization: Option<String> = None;
        loop {
            let answer = self.post(&agent, &form, authorization.as_deref(), &trusted)?;
            match answer.status {
                200 | 403 | 503 => {
                    let success = answer.status == 200 && matches!(parse_answer(&answer.body), Answer::Success(_));
                    session.finished(success);
                    return Ok(answer.body);
                }
                401 => {
                    let Some(realm) = answer.challenge else {
                        return Err(TransportError::Http {
                            server: origin,
                            reason: "it answered 401 without a `WWW-Authenticate: Basic realm=...` challenge".into(),
                        });
                    };
                    if authorization.take().is_some() {
                        session.failed()?;
                    }
                    // The last credentials allowed were rejected: the 401's
                    // body is the server's error answer, as over SSH after the
                    // last `auth-failed`.
                    if session.exhausted() {
                        return Ok(answer.body);
                    }
                    match session.asked(&realm)? {
                        Reply::Plain { username, password } => {
                            let value = render_basic_credentials(&username, &password).ok_or_else(|| {
                                TransportError::Config(format!(
                                    "the username `{}` has a colon, which HTTP Basic authentication cannot carry",
                                    printable(&username)
                                ))
                            })?;
                            authorization = Some(value);
                        }
                        // Nothing to answer with: the 401's body is the
                        // server's error answer, as after `cancel` over SSH.
                        Reply::Cancel => return Ok(answer.body),
                    }
                }
                status => {
                    let text = String::from_utf8_lossy(&answer.body);
                    let mut reason = format!("HTTP {status}");
                    if let Some(name) = ureq::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason())
                    {
                        reason.push_str(&format!(" {name}"));
                    }
                    let said = printable(one_line(text.trim()).trim());
                    if !said.is_empty() {
                        reason.push_str(&format!(": {}", said.chars().take(MAX_REASON).collect::<String>()));
                    }
                    if let (429, Some(seconds)) = (status, &answer.retry_after) {
                        reason.push_str(&format!(" (try again in {} seconds)", printable(seconds.trim())));
                    }
                    return Err(TransportError::Http { server: origin, reason });
                }
            }
        }
    }

    /// The address the request was sent to: the server's, unless a proxy
    /// stands in front of it.
    fn reached_addresses(&self) -> Vec<IpAddr> {
        self.reached
            .lock()
            .ok()
            .and_then(|reached| *reached)
            .map(|address| address.ip().to_canonical())
            .into_iter()
            .collect()
    }
}

/// What is wrong with a certificate, in words, with rustls's name for it.
fn certificate_problem(error: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let words = match error {
        E::UnknownIssuer => "it is signed by none of them",
        E::BadSignature => "its signature does not verify",
        E::NotValidForName | E::NotValidForNameContext { .. } => "it is not valid for that host",
        E::Expired | E::ExpiredContext { .. } => "it has expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet",
        E::Revoked => "it is revoked",
        _ => "it cannot be used",
    };
    let name = format!("{error:?}");
    let name = name.split([' ', '{', '(']).next().unwrap_or_default();
    format!("{words} ({name})")
}

/// The rustls error inside a failed request, if it is one.
fn rustls_error(error: &ureq::Error) -> Option<&rustls::Error> {
    match error {
        ureq::Error::Rustls(error) => Some(error),
        ureq::Error::Io(error) => error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// The refusal of a plain connection to an address off loopback.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not a loopback address")]
struct NotLoopback(IpAddr);

fn not_loopback(error: &ureq::Error) -> Option<&NotLoopback> {
    match error {
        ureq::Error::Io(error) => error.get_ref().and_then(|inner| inner.downcast_ref::<NotLoopback>()),
        _ => None,
    }
}

/// Opens the TCP connection to the first of the resolved addresses that
/// answers, within the request's time, and notes which one it was.
#[derive(Debug)]
struct DirectConnector {
    /// Plain `http://`: connect to loopback addresses only.
    loopback_only: bool,
    reached: Arc<Mutex<Option<SocketAddr>>>,
}

impl Connector for DirectConnector {
    type Out = Socket;

    fn connect(&self, details: &ConnectionDetails, _chained: Option<()>) -> Result<Option<Socket>, ureq::Error> {
        let budget = details.timeout.not_zero().map_or(Duration::from_secs(10), |after| *after);
        let deadline = Instant::now() + budget;
        let mut last: Option<std::io::Error> = None;
        for address in details.addrs.iter() {
            if self.loopback_only && !address.ip().to_canonical().is_loopback() {
                last = Some(std::io::Error::other(NotLoopback(address.ip())));
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ureq::Error::Timeout(details.timeout.reason));
            }
            match TcpStream::connect_timeout(address, left) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    if let Ok(mut reached) = self.reached.lock() {
                        *reached = Some(*address);
                    }
                    let buffers =
                        LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
                    return Ok(Some(Socket { stream, buffers }));
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.map_or(ureq::Error::ConnectionFailed, ureq::Error::Io))
    }
}

/// A connected TCP socket, as ureq's HTTP and TLS layers use it.
#[derive(Debug)]
struct Socket {
    stream: TcpStream,
    buffers: LazyBuffers,
}

impl Socket {
    fn timed_out(error: &std::io::Error) -> bool {
        matches!(error.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
    }
}

impl Wire for Socket {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(timeout.not_zero().map(|after| *after))?;
        let output = self.buffers.output().get(..amount).unwrap_or_default();
        match self.stream.write_all(output) {
            Ok(()) => Ok(()),
            Err(error) if Socket::timed_out(&error) => Err(ureq::Error::Timeout(timeout.reason)),
            Err(error) => Err(error.into()),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(timeout.not_zero().map(|after| *after))?;
        let input = self.buffers.input_append_buf();
        let read = loop {
            match self.stream.read(input) {
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let amount = match read {
            Ok(amount) => amount,
            Err(error) if Socket::timed_out(&error) => return Err(ureq::Error::Timeout(timeout.reason)),
            Err(error) => return Err(error.into()),
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// Whether the server has neither closed the connection nor sent
    /// anything unasked (connections are not pooled, so this is rarely asked).
    fn is_open(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0];
        let open = matches!(self.stream.peek(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock);
        self.stream.set_nonblocking(false).is_ok() && open
    }
}

#[cfg(test)]
mod tests;
