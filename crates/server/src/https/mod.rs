//! The `https://` transport: `bpc-register serve`, a small HTTPS service
//! that answers `POST /register` with the same [`Server::handle_request_with`]
//! as the SSH forced command.
//!
//! Connections are served on a small tokio runtime (hyper for HTTP/1.1,
//! tokio-rustls for TLS); the blocking work (the directory, the resolver,
//! BackupPC's `LOCK` and files) runs on a fixed pool of worker threads, each
//! with its own [`Server`], fed through a bounded queue. A connection holds
//! nothing but its own task: the handshake, the headers and the body each
//! have `timeout` seconds, and at most `max-connections` are served at once.

mod limits;
mod listen;
mod request;

use crate::challenge::HttpChallenger;
use crate::config::{HttpsConfig, ServerConfig};
use crate::log::{EventLog, Level};
use crate::register::{Response as Answer, Server, ServerError, Status};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use limits::{FailedAuth, PerAddress};
use protocol::form::{ANSWER_CONTENT_TYPE, MAX_FORM_LEN, REGISTER_PATH, parse_form};
use protocol::{ClientRequest, RequestError, SshConnection};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use listen::{Listeners, activated_listeners};

/// Worker threads doing the blocking part of requests, each with its own
/// backends (an LDAP connection, the users file, the resolver).
pub const WORKERS: usize = 8;
/// Requests waiting for a worker; past it, a request waits for room.
const QUEUE: usize = 64;
/// The longest request head (request line and headers) read; past it `431`.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// The longest body read (and thrown away) to answer `413` on a connection
/// the client can still read; a longer one is refused unread.
const MAX_DRAINED: usize = 1024 * 1024;
/// The most header fields in a request; past it `431`.
const MAX_HEADERS: usize = 32;

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// `server.toml` has no `[https]` table.
    #[error("{path}: no [https] table; add one with listen, cert and key (see server.toml(5))")]
    NotConfigured {
        /// The configuration file.
        path: PathBuf,
    },
    /// Only one of `cert` and `key` is set.
    #[error("[https] cert and key go together: set both, or neither for plain HTTP on loopback")]
    HalfTls,
    /// The certificate chain or the key cannot be used.
    #[error("{path}: cannot use it as the {what} ([https] {key}): {reason}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// Its key in `[https]`.
        key: &'static str,
        /// Why not.
        reason: String,
    },
    /// Plain HTTP asked for on an address other machines reach.
    #[error(
        "refusing plain HTTP on {address}, which is not a loopback address: set [https] cert and key, or listen on \
         127.0.0.1 or ::1 behind a TLS proxy"
    )]
    PlainNotLoopback {
        /// The listening address.
        address: SocketAddr,
    },
    /// Nothing to listen on.
    #[error("no address to listen on: set [https] listen, or start it from bpc-register-https.socket")]
    NoListener,
    /// A listening socket cannot be opened or used.
    #[error("{what}: {source}")]
    Listen {
        /// Which socket.
        what: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The sockets handed over by systemd are not usable.
    #[error("socket activation: {0}")]
    Activation(String),
    /// The backends cannot be built.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Runs the service until SIGTERM or SIGINT: on `listeners` when systemd
/// handed some over, else on `[https] listen`. `config_path` names the file
/// in messages. Writes `listening on URL` lines on standard error when ready.
pub fn serve(config: ServerConfig, config_path: &Path, listeners: Listeners) -> Result<(), HttpsError> {
    let https = config.https.clone().ok_or_else(|| HttpsError::NotConfigured { path: config_path.to_owned() })?;
    let tls = match (&https.cert, &https.key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        (None, None) => None,
        _ => return Err(HttpsError::HalfTls),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| HttpsError::Listen { what: "cannot start the runtime".into(), source })?;
    let listeners = match listeners {
        Listeners::Activated(sockets) => sockets,
        Listeners::None => {
            if tls.is_none()
                && let Some(address) = https.listen.iter().find(|address| !address.ip().to_canonical().is_loopback())
            {
                return Err(HttpsError::PlainNotLoopback { address: *address });
            }
            listen::bind(&https.listen)?
        }
    };
    if listeners.is_empty() {
        return Err(HttpsError::NoListener);
    }
    let mut addresses = Vec::new();
    for listener in &listeners {
        let address = listener
            .local_addr()
            .map_err(|source| HttpsError::Listen { what: "a listening socket has no address".into(), source })?;
        if tls.is_none() && !address.ip().to_canonical().is_loopback() {
            return Err(HttpsError::PlainNotLoopback { address });
        }
        addresses.push(address);
    }
    let log = EventLog::from_config(&config.log);
    let jobs = start_workers(&config)?;
    let shared = Arc::new(Shared {
        scheme: if tls.is_some() { "https" } else { "http" },
        realm: config.realm.clone(),
        timeout: Duration::from_secs(https.timeout),
        failed: FailedAuth::new(https.max_failed_auth, Duration::from_secs(https.failed_auth_window)),
        per_address: PerAddress::new(https.max_connections_per_address),
        tls,
        jobs,
        log,
        https,
    });
    runtime.block_on(run(shared, listeners, addresses))
}

/// What every connection shares.
struct Shared {
    scheme: &'static str,
    realm: String,
    timeout: Duration,
    failed: FailedAuth,
    per_address: PerAddress,
    tls: Option<tokio_rustls::TlsAcceptor>,
    jobs: mpsc::Sender<Job>,
    log: EventLog,
    https: HttpsConfig,
}

/// One request for a worker, and where its answer goes.
struct Job {
    request: Result<ClientRequest, RequestError>,
    body: Bytes,
    connection: SshConnection,
    origin: String,
    challenger: HttpChallenger,
    reply: oneshot::Sender<(Answer, bool)>,
}

/// Starts [`WORKERS`] threads, each building its own [`Server`] (backends
/// are not shared between threads); the first one that cannot is the error.
fn start_workers(config: &ServerConfig) -> Result<mpsc::Sender<Job>, HttpsError> {
    let (sender, receiver) = mpsc::channel::<Job>(QUEUE);
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    let (ready_sender, ready) = std::sync::mpsc::channel::<Result<(), ServerError>>();
    for number in 0..WORKERS {
        let config = config.clone();
        let receiver = Arc::clone(&receiver);
        let ready_sender = ready_sender.clone();
        std::thread::Builder::new()
            .name(format!("register-{number}"))
            .spawn(move || {
                let server = match Server::from_config(config) {
                    Ok(server) => {
                        let _ = ready_sender.send(Ok(()));
                        server
                    }
                    Err(error) => {
                        let _ = ready_sender.send(Err(error));
                        return;
                    }
                };
                drop(ready_sender);
                work(&server, &receiver);
            })
            .map_err(|source| HttpsError::Listen { what: "cannot start a worker thread".into(), source })?;
    }
    drop(ready_sender);
    for _ in 0..WORKERS {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => break,
        }
    }
    Ok(sender)
}

/// A worker's loop: one job at a time until the queue closes. A panic
/// answers that job as the server's fault and the worker goes on.
fn work(server: &Server, receiver: &std::sync::Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).blocking_recv();
        let Some(job) = job else { return };
        let Job { request, body, connection, origin, mut challenger, reply } = job;
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            server.handle_request_with(request, &body, &connection, &origin, &mut challenger)
        }));
        let Ok(answer) = answered else {
            server_log_panic(&connection);
            continue;
        };
        let settle = answer.status == Status::Success && server.settle_owed();
        let _ = reply.send((answer, challenger.rejected()));
        if settle {
            // The client has its answer; the clock is waited for here (a
            // second at most), and only one settler waits at a time.
            server.settle(&connection);
        }
    }
}

fn server_log_panic(connection: &SshConnection) {
    eprintln!("err bpc-register: {connection} a request stopped the worker that handled it; it was answered 503");
}

/// The TLS side: the certificate chain and key, TLS 1.2 and 1.3 with
/// rustls's safe defaults, HTTP/1.1 only.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, HttpsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_error =
        |reason: String| HttpsError::Tls { path: cert.to_owned(), what: "certificate chain", key: "cert", reason };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| cert_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|error| HttpsError::Tls {
        path: key.to_owned(),
        what: "private key",
        key: "key",
        reason: error.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|error| cert_error(format!("it does not go with the key: {error}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections on every listener until a stop signal, then waits
/// (a few timeouts at most) for the connections under way.
async fn run(
    shared: Arc<Shared>,
    listeners: Vec<std::net::TcpListener>,
    addresses: Vec<SocketAddr>,
) -> Result<(), HttpsError> {
    let capacity = usize::try_from(shared.https.max_connections).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(capacity));
    // Before the first `listening on`: a stop asked for after it is heard.
    let stop = stop_signal();
    let mut accepting = tokio::task::JoinSet::new();
    for (listener, address) in listeners.into_iter().zip(&addresses) {
        let what = format!("cannot listen on {address}");
        listener.set_nonblocking(true).map_err(|source| HttpsError::Listen { what: what.clone(), source })?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| HttpsError::Listen { what, source })?;
        accepting.spawn(accept(listener, Arc::clone(&shared), Arc::clone(&slots)));
        let url = format!("{}://{address}", shared.scheme);
        shared.log.log(Level::Info, &format!("https service listening on {url} ({WORKERS} workers)"));
        if !matches!(shared.log, EventLog::Stderr) {
            eprintln!("bpc-register: listening on {url}");
        }
    }
    stop.await;
    accepting.abort_all();
    let grace = shared.timeout.saturating_mul(3);
    let drained = tokio::time::timeout(grace, slots.acquire_many(u32::try_from(capacity).unwrap_or(u32::MAX))).await;
    let left = if drained.is_ok() { String::new() } else { " (connections still open were cut)".to_owned() };
    shared.log.log(Level::Info, &format!("https service stopped{left}"));
    Ok(())
}

/// Listens for SIGTERM and SIGINT from now on; the future ends at the first.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}

/// One listener's loop: a connection is accepted only when a slot is free,
/// so the ones over `max-connections` wait in the kernel's queue.
async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>, slots: Arc<Semaphore>) {
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, most likely: wait rather than spin.
                shared.log.log(Level::Warning, &format!("https: cannot accept a connection: {error}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let Ok(local) = stream.local_addr() else { return };
            let ip = peer.ip().to_canonical();
            // Its own handle: the count borrows it while `shared` moves on.
            let counts = Arc::clone(&shared);
            let _counted = if shared.https.trusted_proxies.contains(&ip) {
                None
            } else {
                match counts.per_address.open(ip) {
                    Some(counted) => Some(counted),
                    None => {
                        shared.log.log(
                            Level::Notice,
                            &format!(
                                "{} connection closed: {} connections from this address are open already",
                                connection_text(peer, local),
                                shared.https.max_connections_per_address
                            ),
                        );
                        return;
                    }
                }
            };
            match &shared.tls {
                // Pinned here so that the connection stays open until its
                // end is logged.
                Some(acceptor) => {
                    match tokio::time::timeout(shared.timeout, &mut std::pin::pin!(acceptor.accept(stream))).await {
                        Ok(Ok(tls)) => connection(tls, peer, local, shared).await,
                        Ok(Err(error)) => shared.log.log(
                            Level::Info,
                            &format!("{} TLS handshake failed: {error}", connection_text(peer, local)),
                        ),
                        Err(_) => shared.log.log(
                            Level::Info,
                            &format!("{} TLS handshake not finished within the timeout", connection_text(peer, local)),
                        ),
                    }
                }
                None => connection(stream, peer, local, shared).await,
            }
        });
    }
}

fn connection_text(peer: SocketAddr, local: SocketAddr) -> String {
    format!("{} {} {} {}", peer.ip().to_canonical(), peer.port(), local.ip().to_canonical(), local.port())
}

/// Serves one request on one connection. Headers that do not arrive
/// within the timeout get `408` written on the connection itself.
async fn connection<I>(io: I, peer: SocketAddr, local: SocketAddr, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        // Boxed: `poll_without_shutdown` needs a future that can move.
        Box::pin(async move { Ok::<_, std::convert::Infallible>(respond(request, peer, local, &shared).await) })
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.timeout)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD_LEN)
        .max_headers(MAX_HEADERS);
    let mut served = builder.serve_connection(TokioIo::new(io), service);
    let result = std::future::poll_fn(|context| served.poll_without_shutdown(context)).await;
    let mut io = served.into_parts().io.into_inner();
    if result.is_err_and(|error| error.is_timeout()) {
        shared.log.log(
            Level::Notice,
            &format!(
                "{} HTTP request refused (408): no whole request head within the timeout",
                connection_text(peer, local)
            ),
        );
        let _ = tokio::time::timeout(shared.timeout, io.write_all(&plain_408())).await;
    }
    let _ = tokio::time::timeout(shared.timeout, io.shutdown()).await;
}

fn plain_408() -> Vec<u8> {
    let body = "408 Request Timeout: the request did not arrive in time\n";
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: {ANSWER_CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The answer to one request.
async fn respond(
    request: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let headers = request.headers();
    let forwarded = headers.get_all("x-forwarded-for").iter().map(HeaderValue::as_bytes);
    let client = request::client_address(peer, forwarded, &shared.https.trusted_proxies);
    let peer_text = connection_text(peer, local);
    let client = match client {
        Ok(client) => client,
        Err(reason) => return refuse(shared, &peer_text, StatusCode::BAD_REQUEST, &reason),
    };
    let Ok(connection) = SshConnection::parse(&connection_text(client, local)) else {
        return refuse(shared, &peer_text, StatusCode::BAD_REQUEST, "the connection's addresses cannot be read");
    };
    let connection_text = connection.to_string();
    if request.uri().path() != REGISTER_PATH {
        return refuse(shared, &connection_text, StatusCode::NOT_FOUND, &format!("only {REGISTER_PATH} is served"));
    }
    if request.method() != Method::POST {
        let mut response =
            refuse(shared, &connection_text, StatusCode::METHOD_NOT_ALLOWED, &format!("{REGISTER_PATH} takes POST"));
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if !request::is_form(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)) {
        let reason = format!("the body must be {}", protocol::form::FORM_CONTENT_TYPE);
        return refuse(shared, &connection_text, StatusCode::UNSUPPORTED_MEDIA_TYPE, &reason);
    }
    let too_long = format!("the body is longer than {MAX_FORM_LEN} bytes");
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_DRAINED as u64) {
        return refuse(shared, &connection_text, StatusCode::PAYLOAD_TOO_LARGE, &too_long);
    }
    let credentials =
        headers.get(header::AUTHORIZATION).map(|value| protocol::basic::parse_basic_credentials(value.as_bytes()));
    if credentials.is_some()
        && let Some(wait) = shared.failed.blocked(client.ip().to_canonical(), Instant::now())
    {
        let seconds = wait.as_secs().max(1);
        shared.log.log(
            Level::Notice,
            &format!(
                "{connection_text} too many failed authentications from {}: {} within {} s; answered 429 without \
                 checking the password",
                client.ip().to_canonical(),
                shared.https.max_failed_auth,
                shared.https.failed_auth_window
            ),
        );
        let mut response = plain(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "{}: too many failed authentications from this address; try again later\n",
                StatusCode::TOO_MANY_REQUESTS
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let origin = request::origin(shared.scheme, headers.get(header::HOST).map(HeaderValue::as_bytes), local);
    let body = match tokio::time::timeout(shared.timeout, read_body(request.into_body())).await {
        Ok(Ok(Some(body))) => body,
        Ok(Ok(None)) => return refuse(shared, &connection_text, StatusCode::PAYLOAD_TOO_LARGE, &too_long),
        Ok(Err(error)) => {
            let reason = format!("the body cannot be read: {error}");
            return refuse(shared, &connection_text, StatusCode::BAD_REQUEST, &reason);
        }
        Err(_) => {
            return refuse(shared, &connection_text, StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time");
        }
    };
    let (request, host_keys) = match parse_form(&body) {
        Ok(form) => (Ok(form.request), form.host_keys),
        Err(error) => (Err(error), Vec::new()),
    };
    let (reply, answer) = oneshot::channel();
    let job = Job { request, body, connection, origin, challenger: HttpChallenger::new(credentials, host_keys), reply };
    if shared.jobs.send(job).await.is_err() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping; try again later");
    }
    let Ok((answer, rejected)) = answer.await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "the server could not answer; try again later");
    };
    if rejected {
        shared.failed.record(client.ip().to_canonical(), Instant::now());
    }
    let status = match answer.status {
        Status::Success => StatusCode::OK,
        Status::Refused => StatusCode::FORBIDDEN,
        Status::ServerFault => StatusCode::SERVICE_UNAVAILABLE,
        Status::Challenged => StatusCode::UNAUTHORIZED,
    };
    let mut response = plain(status, &answer.text);
    if answer.status == Status::Challenged
        && let Ok(value) = HeaderValue::from_str(&protocol::basic::render_basic_challenge(&shared.realm))
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The body, or `None` when it is longer than [`MAX_FORM_LEN`]. A body too
/// long is still read to its end when that end is within [`MAX_DRAINED`],
/// so that the client, still sending, reads the `413` instead of a reset.
async fn read_body(mut body: Incoming) -> Result<Option<Bytes>, hyper::Error> {
    let mut kept = Vec::new();
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        length += data.len();
        if length > MAX_DRAINED {
            return Ok(None);
        }
        if length <= MAX_FORM_LEN {
            kept.extend_from_slice(&data);
        }
    }
    Ok((length <= MAX_FORM_LEN).then(|| Bytes::from(kept)))
}

/// A refusal of the HTTP layer: logged at `notice` with the connection, a
/// short reason in the body.
fn refuse(shared: &Shared, connection: &str, status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    shared.log.log(Level::Notice, &format!("{connection} HTTP request refused ({}): {reason}", status.as_u16()));
    plain(status, &format!("{status}: {reason}\n"))
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ANSWER_CONTENT_TYPE));
    response
}
