//! The listening sockets: bound from `[https] listen`, or handed over by
//! systemd's socket activation (`LISTEN_PID`, `LISTEN_FDS`), checked first.

use super::HttpsError;
use std::net::{SocketAddr, TcpListener};

/// The most sockets taken from systemd.
const MAX_ACTIVATED: usize = 16;

/// Where the service listens.
#[derive(Debug)]
pub enum Listeners {
    /// No sockets were handed over: bind `[https] listen`.
    None,
    /// The sockets systemd handed over (descriptors 3 and up).
    Activated(Vec<TcpListener>),
}

/// The sockets systemd handed over, when `LISTEN_FDS` is set: only for this
/// process (`LISTEN_PID`), each a listening TCP stream socket. Anything else
/// is an error, so that the service never serves on a descriptor it was
/// not meant to have.
pub fn activated_listeners() -> Result<Listeners, HttpsError> {
    let Some(count) = std::env::var_os("LISTEN_FDS") else { return Ok(Listeners::None) };
    let fail = |reason: String| Err(HttpsError::Activation(reason));
    let count = match count.to_str().and_then(|text| text.parse::<usize>().ok()) {
        Some(count) if (1..=MAX_ACTIVATED).contains(&count) => count,
        _ => return fail(format!("LISTEN_FDS is {count:?}, not a number of sockets from 1 to {MAX_ACTIVATED}")),
    };
    let pid = std::env::var("LISTEN_PID").unwrap_or_default();
    if pid != std::process::id().to_string() {
        return fail(format!(
            "LISTEN_PID is {pid:?}, not this process ({}): the sockets were meant for another one",
            std::process::id()
        ));
    }
    if std::env::var_os("LISTEN_FDS_FIRST_FD").is_some_and(|first| first != "3") {
        return fail("LISTEN_FDS_FIRST_FD is set: systemd's sockets start at descriptor 3".into());
    }
    let mut handed = listenfd::ListenFd::from_env();
    let mut listeners = Vec::with_capacity(count);
    for index in 0..count {
        let descriptor = index + 3;
        let listener = match handed.take_tcp_listener(index) {
            Ok(Some(listener)) => listener,
            Ok(None) => return fail(format!("descriptor {descriptor} was not handed over")),
            Err(error) => return fail(format!("descriptor {descriptor}: {error}")),
        };
        match nix::sys::socket::getsockopt(&listener, nix::sys::socket::sockopt::AcceptConn) {
            Ok(true) => {}
            Ok(false) => return fail(format!("descriptor {descriptor} is a TCP socket that is not listening")),
            Err(error) => return fail(format!("descriptor {descriptor}: {error}")),
        }
        listeners.push(listener);
    }
    Ok(Listeners::Activated(listeners))
}

/// Binds every address of `[https] listen`.
pub(super) fn bind(addresses: &[SocketAddr]) -> Result<Vec<TcpListener>, HttpsError> {
    addresses
        .iter()
        .map(|address| {
            TcpListener::bind(address).map_err(|source| HttpsError::Listen {
                what: format!("cannot listen on {address} ([https] listen)"),
                source,
            })
        })
        .collect()
}
