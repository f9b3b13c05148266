//! The `https://` transport against an in-process HTTP server on 127.0.0.1
//! (rustls, certificates from a test CA made by `openssl`) that answers a
//! script and records what it was sent.

use super::*;
use crate::config::PlaintextPolicy;
use crate::credentials::{ChainOptions, CredentialCache, CredentialChain, CredentialError};
use protocol::InfoRequest;
use protocol::{Logon, OsName, Request, Secret};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use testkit::tls::TestCa;

/// One scripted answer.
struct Scripted {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn answer(status: u16, body: &str) -> Scripted {
    Scripted { status, headers: Vec::new(), body: body.to_owned() }
}

fn challenge(realm: &str) -> Scripted {
    Scripted {
        status: 401,
        headers: vec![("WWW-Authenticate", protocol::basic::render_basic_challenge(realm))],
        body: "127.0.0.1 50000 127.0.0.1 8443 authentication failed\n".into(),
    }
}

/// One request as the server read it.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The fake server: answers each request with the next scripted answer, on
/// a new connection each (`Connection: close`), until the script ends.
struct FakeServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    fn start(tls: Option<&Issued>, script: Vec<Scripted>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = tls.map(server_config);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut script = script.into_iter().peekable();
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let served = match &config {
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
                        let mut stream = rustls::StreamOwned::new(connection, tcp);
                        let served = serve_one(&mut stream, &mut script, &record);
                        stream.conn.send_close_notify();
                        let _ = stream.flush();
                        served
                    }
                    None => serve_one(&mut &tcp, &mut script, &record),
                };
                if served && script.peek().is_none() {
                    return;
                }
            }
        });
        FakeServer { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn server_config(issued: &Issued) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&issued.cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&issued.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// Reads one request and writes the next answer; `false` when the request
/// could not be read (a client that gave up during the TLS handshake).
fn serve_one(
    stream: &mut (impl Read + Write),
    script: &mut impl Iterator<Item = Scripted>,
    record: &Mutex<Vec<Seen>>,
) -> bool {
    let mut reader = BufReader::new(&mut *stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return false;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return false;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return false;
    }
    drop(reader);
    let seen =
        Seen { request_line: request_line.trim_end().to_owned(), headers, body: String::from_utf8(body).unwrap() };
    record.lock().unwrap().push(seen);
    let Some(scripted) = script.next() else { return true };
    let mut out = format!("HTTP/1.1 {} Whatever\r\nContent-Length: {}\r\n", scripted.status, scripted.body.len());
    out.push_str("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n");
    for (name, value) in &scripted.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&scripted.body);
    let _ = stream.write_all(out.as_bytes()).and_then(|()| stream.flush());
    true
}

/// A server certificate and its key.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
}

/// A test CA and a server certificate for 127.0.0.1 and localhost, and
/// another CA (of another name).
struct Pki {
    _dir: tempfile::TempDir,
    ca: TestCa,
    server: Issued,
    other_ca: TestCa,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("ca"));
    let server = Issued { cert: ca.cert.clone(), key: ca.key.clone() };
    let other_ca = TestCa::named(&dir.path().join("other"), "another test CA");
    Pki { _dir: dir, ca, server, other_ca }
}

fn https(port: u16, ca_file: Option<&std::path::Path>) -> HttpsTransport {
    HttpsTransport::new(
        "127.0.0.1".into(),
        port,
        true,
        HttpsSettings { ca_file: ca_file.map(PathBuf::from), timeout: 5 },
    )
}

fn registration() -> ClientRequest {
    let mut request = Request::new(OsName::parse("linux").unwrap(), Logon::parse("alice").unwrap());
    request.protocol = 2;
    request.host_keys = 1;
    ClientRequest::Register(request)
}

const SUCCESS: &str = "success\nkey: ssh-ed25519 AAAA\nurl: https://backup.example.org/x\n";
const REALM: &str = "Example backups";

/// Gives the credentials of its list in turn, and notes the realms it was
/// asked for and what it was told.
#[derive(Default)]
struct Listed {
    answers: Vec<(&'static str, &'static str)>,
    realms: Vec<String>,
    rejected: usize,
    accepted: usize,
}

impl Authenticator for Listed {
    fn credentials(&mut self, realm: &str) -> Result<Option<(String, Secret)>, CredentialError> {
        self.realms.push(realm.to_owned());
        let next = self.answers.get(self.realms.len() - 1).copied();
        Ok(next.map(|(name, password)| (name.to_owned(), Secret::new(password))))
    }
    fn rejected(&mut self, _realm: &str) {
        self.rejected += 1;
    }
    fn accepted(&mut self, _realm: &str) {
        self.accepted += 1;
    }
}

fn basic(name: &str, password: &str) -> String {
    protocol::basic::render_basic_credentials(name, &Secret::new(password)).unwrap()
}

#[test]
fn a_registration_is_posted_as_a_form_and_the_answer_comes_back_as_sent() {
    let pki = pki();
    let server = FakeServer::start(Some(&pki.server), vec![answer(200, SUCCESS)]);
    let transport = https(server.port, Some(&pki.ca.ca));
    let keys = ["ssh-ed25519 AAAAC3Nza".to_owned()];
    let mut auth = Listed::default();
    let body = transport.exchange(&registration(), &keys, &mut auth).unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), SUCCESS);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line, "POST /register HTTP/1.1");
    assert_eq!(seen[0].header("Content-Type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(seen[0].header("Authorization"), None);
    assert_eq!(seen[0].body, "os=linux&logon=alice&proto=2&host-key=ssh-ed25519+AAAAC3Nza");
    assert!(auth.realms.is_empty(), "no challenge, no credentials asked");
    assert_eq!(transport.reached_addresses(), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
}

#[test]
fn a_challenge_is_answered_with_basic_credentials_for_the_clients_own_realmstring() {
    let pki = pki();
    let script = vec![challenge(REALM), answer(200, SUCCESS)];
    let server = FakeServer::start(Some(&pki.server), script);
    let mut auth = Listed { answers: vec![("alice", "alice-demo")], ..Listed::default() };
    let body = https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut auth).unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), SUCCESS);
    assert_eq!(auth.realms, vec![format!("<https://127.0.0.1:{}> {REALM}", server.port)]);
    assert_eq!((auth.rejected, auth.accepted), (0, 1));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("Authorization"), None);
    assert_eq!(seen[1].header("Authorization"), Some(basic("alice", "alice-demo").as_str()));
    assert_eq!(seen[0].body, seen[1].body, "the same request is sent again");
}

#[test]
fn a_server_naming_another_origin_in_its_realm_still_gets_the_clients_own_key() {
    let pki = pki();
    let script = vec![challenge("<https://elsewhere.example.org:443> Other"), answer(200, SUCCESS)];
    let server = FakeServer::start(Some(&pki.server), script);
    let mut auth = Listed { answers: vec![("alice", "alice-demo")], ..Listed::default() };
    https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut auth).unwrap();
    assert_eq!(auth.realms, vec![format!("<https://127.0.0.1:{}> Other", server.port)]);
}

#[test]
fn a_rejected_credential_is_dropped_and_the_next_one_tried() {
    let pki = pki();
    let script = vec![challenge(REALM), challenge(REALM), answer(200, SUCCESS)];
    let server = FakeServer::start(Some(&pki.server), script);
    let mut auth = Listed { answers: vec![("alice", "wrong"), ("alice", "alice-demo")], ..Listed::default() };
    https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut auth).unwrap();
    assert_eq!((auth.realms.len(), auth.rejected, auth.accepted), (2, 1, 1));
    let sent: Vec<Option<String>> =
        server.seen().iter().map(|seen| seen.header("Authorization").map(str::to_owned)).collect();
    assert_eq!(sent, vec![None, Some(basic("alice", "wrong")), Some(basic("alice", "alice-demo"))]);
}

fn chain_with_cache(dir: &std::path::Path) -> (CredentialChain, CredentialCache) {
    let cache = CredentialCache::new(dir.join("auth/svn.simple"));
    let chain = CredentialChain::new(ChainOptions {
        username: None,
        default_username: "alice".into(),
        password_stdin: false,
        non_interactive: true,
        store: true,
        plaintext: PlaintextPolicy::Yes,
        cache: Some(cache.clone()),
        max_prompts: 3,
    });
    (chain, cache)
}

#[test]
fn a_cached_credential_is_used_for_its_realm_and_kept_when_accepted() {
    let pki = pki();
    let script = vec![challenge(REALM), answer(200, SUCCESS)];
    let server = FakeServer::start(Some(&pki.server), script);
    let home = tempfile::tempdir().unwrap();
    let (mut chain, cache) = chain_with_cache(home.path());
    let realm = format!("<https://127.0.0.1:{}> {REALM}", server.port);
    cache.store(&realm, "alice", &Secret::new("alice-demo"), || true).unwrap();
    https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut chain).unwrap();
    assert_eq!(server.seen()[1].header("Authorization"), Some(basic("alice", "alice-demo").as_str()));
    let entry = cache.load(&realm).unwrap().unwrap();
    assert_eq!(entry.get("password").map(String::as_str), Some("alice-demo"));
}

#[test]
fn a_rejected_cached_credential_is_removed_from_the_cache() {
    let pki = pki();
    let script = vec![challenge(REALM), challenge(REALM)];
    let server = FakeServer::start(Some(&pki.server), script);
    let home = tempfile::tempdir().unwrap();
    let (mut chain, cache) = chain_with_cache(home.path());
    let realm = format!("<https://127.0.0.1:{}> {REALM}", server.port);
    cache.store(&realm, "alice", &Secret::new("stale"), || true).unwrap();
    // Cached for the same server under another name: not this realm's.
    let other = format!("<https://localhost:{}> {REALM}", server.port);
    cache.store(&other, "alice", &Secret::new("other"), || true).unwrap();
    let error = https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut chain).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the server {realm} asks for a password and --non-interactive forbids a prompt: give --username NAME \
             and --password-stdin (the password on standard input), or run on a terminal without --non-interactive"
        )
    );
    assert_eq!(server.seen()[1].header("Authorization"), Some(basic("alice", "stale").as_str()));
    assert!(cache.load(&realm).unwrap().is_none(), "the rejected credential is dropped");
    assert!(cache.load(&other).unwrap().is_some(), "another realm's is not");
}

#[test]
fn three_rejected_credentials_end_the_exchange_with_the_servers_answer() {
    let pki = pki();
    let script = (0..4).map(|_| challenge(REALM)).collect();
    let server = FakeServer::start(Some(&pki.server), script);
    let mut auth =
        Listed { answers: vec![("alice", "a"), ("alice", "b"), ("alice", "c"), ("alice", "d")], ..Listed::default() };
    let body = https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut auth).unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), "127.0.0.1 50000 127.0.0.1 8443 authentication failed\n");
    assert_eq!((auth.realms.len(), auth.rejected, auth.accepted), (3, 3, 0));
    let sent: Vec<Option<String>> =
        server.seen().iter().map(|seen| seen.header("Authorization").map(str::to_owned)).collect();
    assert_eq!(sent, vec![None, Some(basic("alice", "a")), Some(basic("alice", "b")), Some(basic("alice", "c"))]);
}

#[test]
fn with_nothing_to_answer_the_challenges_body_is_the_answer() {
    let pki = pki();
    let server = FakeServer::start(Some(&pki.server), vec![challenge(REALM)]);
    let mut auth = Listed::default();
    let status = ClientRequest::Info(InfoRequest { protocol: 2 });
    let body = https(server.port, Some(&pki.ca.ca)).exchange(&status, &[], &mut auth).unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), "127.0.0.1 50000 127.0.0.1 8443 authentication failed\n");
    assert_eq!(auth.realms.len(), 1);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, "os=info&proto=2");
}

#[test]
fn refusals_and_server_faults_are_answers_other_statuses_are_errors() {
    let pki = pki();
    let refusal = "127.0.0.1 50000 127.0.0.1 8443 invalid DNS name\n";
    for status in [403, 503] {
        let server = FakeServer::start(Some(&pki.server), vec![answer(status, refusal)]);
        let body = https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut Listed::default());
        assert_eq!(String::from_utf8(body.unwrap()).unwrap(), refusal, "{status}");
    }
    let mut too_many = answer(429, "too many failed authentications from 127.0.0.1\n");
    too_many.headers.push(("Retry-After", "600".into()));
    let missing_challenge = answer(401, "no header\n");
    for (scripted, said) in [
        (answer(404, "not found: use POST /register\n"), "HTTP 404 Not Found: not found: use POST /register"),
        (answer(413, "the form is over 49152 bytes\n"), "HTTP 413 Payload Too Large: the form is over 49152 bytes"),
        (answer(502, ""), "HTTP 502 Bad Gateway"),
        (answer(302, "\x1b[2Jmoved"), "HTTP 302 Found: [2Jmoved"),
        (
            too_many,
            "HTTP 429 Too Many Requests: too many failed authentications from 127.0.0.1 (try again in 600 seconds)",
        ),
        (missing_challenge, "it answered 401 without a `WWW-Authenticate: Basic realm=...` challenge"),
    ] {
        let server = FakeServer::start(Some(&pki.server), vec![scripted]);
        let transport = https(server.port, Some(&pki.ca.ca));
        let error = transport.exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
        assert!(matches!(error, TransportError::Http { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("the server https://127.0.0.1:{} answered {said}; nothing was changed", server.port)
        );
    }
}

#[test]
fn a_certificate_signed_by_another_ca_is_refused_before_anything_is_sent() {
    let pki = pki();
    let server = FakeServer::start(Some(&pki.server), vec![answer(200, SUCCESS)]);
    let mut auth = Listed::default();
    let error = https(server.port, Some(&pki.other_ca.ca)).exchange(&registration(), &[], &mut auth).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the TLS certificate of 127.0.0.1 (https://127.0.0.1:{}) does not verify against the CA certificates in \
             {} (ca-file in client.toml): it is signed by none of them (UnknownIssuer); refusing to register (a forged server could read this \
             whole machine); nothing was changed. If the server's certificate really changed, get its CA from the \
             backup administrator (ca-file in client.toml)",
            server.port,
            pki.other_ca.ca.display()
        )
    );
    assert!(server.seen().is_empty());
    assert!(auth.realms.is_empty());
}

#[test]
fn without_a_ca_file_the_systems_cas_are_the_judges() {
    let pki = pki();
    let server = FakeServer::start(Some(&pki.server), vec![answer(200, SUCCESS)]);
    let error = https(server.port, None).exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
    let TransportError::Certificate { trusted, reason, host, .. } = &error else { panic!("{error:?}") };
    assert_eq!(
        (trusted.as_str(), reason.as_str(), host.as_str()),
        ("the system's CA certificates", "it is signed by none of them (UnknownIssuer)", "127.0.0.1")
    );
    assert!(server.seen().is_empty());
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let pki = pki();
    let (cert, key) = pki.ca.issue("elsewhere", &["DNS:elsewhere.example.org"]);
    let elsewhere = Issued { cert, key };
    let server = FakeServer::start(Some(&elsewhere), vec![answer(200, SUCCESS)]);
    let error =
        https(server.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
    let TransportError::Certificate { reason, .. } = &error else { panic!("{error:?}") };
    assert_eq!(reason, "it is not valid for that host (NotValidForNameContext)");
    assert!(server.seen().is_empty());
}

#[test]
fn a_ca_file_that_holds_no_certificate_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("ca.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for (path, reason) in [
        (&empty, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned()),
        (&missing, "cannot read the CA certificates: No such file or directory (os error 2)".to_owned()),
    ] {
        // Nothing listens there: the file is read before any connection.
        let error = https(1, Some(path)).exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
        assert!(matches!(error, TransportError::Config(_)), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("{}: {reason} (ca-file in client.toml); nothing was changed", path.display())
        );
    }
}

#[test]
fn a_server_that_cannot_be_reached_is_unreachable() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let pki = pki();
    let error = https(port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
    let TransportError::Unreachable { server, reason } = &error else { panic!("{error:?}") };
    assert_eq!(server, &format!("https://127.0.0.1:{port}"));
    assert!(reason.contains("Connection refused"), "{reason}");

    // A server that speaks plain HTTP where TLS is expected: the handshake fails.
    let plain = FakeServer::start(None, vec![answer(200, SUCCESS)]);
    let error = https(plain.port, Some(&pki.ca.ca)).exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
    assert!(matches!(error, TransportError::Unreachable { .. }), "{error:?}");

    // One that accepts and never answers: the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut transport = https(port, Some(&pki.ca.ca));
    transport.settings.timeout = 1;
    let error = transport.exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot reach the server https://127.0.0.1:{port}: no answer within 1 seconds (timeout in client.toml)"
        )
    );
    drop(silent);
}

#[test]
fn plain_http_reaches_a_loopback_server_and_never_leaves_loopback() {
    let server = FakeServer::start(None, vec![answer(200, SUCCESS)]);
    let transport = HttpsTransport::new("127.0.0.1".into(), server.port, false, HttpsSettings::default());
    let body = transport.exchange(&registration(), &[], &mut Listed::default()).unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), SUCCESS);
    assert_eq!(server.seen()[0].request_line, "POST /register HTTP/1.1");

    // Built around the URL check, a plain transport still connects to no
    // address off loopback (192.0.2.1 is a documentation address: nothing
    // is sent to it).
    let transport = HttpsTransport::new("192.0.2.1".into(), 80, false, HttpsSettings::default());
    let error = transport.exchange(&registration(), &[], &mut Listed::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "bad server URL `http://192.0.2.1:80`: plain http:// is refused except on loopback; use https:// \
         (192.0.2.1 is not a loopback address)"
    );
    assert!(transport.reached_addresses().is_empty());
}
