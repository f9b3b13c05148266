//! The request: `OS:logon` (a registration) or `info:` (a status request),
//! optionally followed by options such as `proto=2`.

use crate::hostkeys::HOST_KEYS_OPTION;
use crate::names::{Logon, NameError, OsName};
use crate::refusal::Refusal;

/// The longest request accepted, in bytes. A real one is under 100.
pub const MAX_REQUEST_LEN: usize = 1024;

/// A well-formed request. Whether the OS is accepted and the logon exists is
/// for the server to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's OS type, as the client detected it.
    pub os: OsName,
    /// The directory login the host is to be registered to.
    pub logon: Logon,
    /// The protocol version the client speaks: 1 unless it sent `proto=N`.
    pub protocol: u32,
    /// How many of its own SSH host keys the client will send when asked
    /// (`host-keys=N`, see [`crate::hostkeys`]); 0 when it sends none.
    pub host_keys: u32,
}

/// The word before the colon that makes a request a status request.
pub const INFO: &str = "info";

/// A status request, `info:` and options (`info: proto=2`): what the server
/// knows of the host the request comes from. It names no logon and no host:
/// the server answers about the connection's own address, whoever asks, so
/// it has nothing to check and never challenges. An old server reads it as
/// `OS:logon` with an empty logon and answers `bad user request`, without
/// ever reaching a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    /// The protocol version the client speaks: 1 unless it sent `proto=N`.
    pub protocol: u32,
}

/// What a client asks: a registration or a status request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    /// `OS:logon`: register the host the request comes from to `logon`.
    Register(Request),
    /// `info:`: say what is known of the host the request comes from.
    Info(InfoRequest),
}

/// Why a request is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request is not `OS:logon[ option...]` in printable ASCII.
    #[error("the request is not OS:logon")]
    NotOsLogon,
    /// The OS is not a lowercase word.
    #[error("bad OS name: {0}")]
    BadOs(NameError),
    /// The logon cannot name a user.
    #[error("bad logon: {0}")]
    BadLogon(NameError),
}

impl RequestError {
    /// What the server answers for this error: a malformed command or OS is
    /// `ostype is unknown`; a logon that cannot exist is `bad user request`.
    pub fn refusal(&self) -> Refusal {
        match self {
            RequestError::NotOsLogon | RequestError::BadOs(_) => Refusal::OstypeUnknown,
            RequestError::BadLogon(_) => Refusal::BadUserRequest,
        }
    }
}

impl Request {
    /// Builds a protocol-1 request.
    pub fn new(os: OsName, logon: Logon) -> Request {
        Request { os, logon, protocol: 1, host_keys: 0 }
    }

    /// The request as sent on the wire (the SSH command).
    pub fn render(&self) -> String {
        let mut text = format!("{}:{}", self.os, self.logon);
        if self.protocol > 1 {
            text.push_str(&format!(" proto={}", self.protocol));
        }
        if self.host_keys > 0 {
            text.push_str(&format!(" {HOST_KEYS_OPTION}={}", self.host_keys));
        }
        text
    }
}

impl InfoRequest {
    /// The request as sent on the wire (the SSH command).
    pub fn render(&self) -> String {
        if self.protocol > 1 { format!("{INFO}: proto={}", self.protocol) } else { format!("{INFO}:") }
    }
}

impl ClientRequest {
    /// The request as sent on the wire (the SSH command).
    pub fn render(&self) -> String {
        match self {
            ClientRequest::Register(request) => request.render(),
            ClientRequest::Info(request) => request.render(),
        }
    }
}

/// Parses a registration request, `OS:logon`. Options after it are
/// separated by single spaces; unknown ones are ignored so that newer
/// clients keep working.
pub fn parse_request(input: &[u8]) -> Result<Request, RequestError> {
    let (os_logon, options) = split_request(input)?;
    let (os, logon) = os_logon.split_once(':').ok_or(RequestError::NotOsLogon)?;
    let os = OsName::parse(os).map_err(RequestError::BadOs)?;
    let logon = Logon::parse(logon).map_err(RequestError::BadLogon)?;
    let Options { protocol, host_keys } = parse_options(options)?;
    Ok(Request { os, logon, protocol, host_keys })
}

/// Parses what a client asks: `info:` (nothing between the colon and the
/// options) is a status request, anything else a registration request as
/// [`parse_request`] reads it.
pub fn parse_client_request(input: &[u8]) -> Result<ClientRequest, RequestError> {
    let (first, options) = split_request(input)?;
    if first.strip_suffix(':') == Some(INFO) {
        return Ok(ClientRequest::Info(InfoRequest { protocol: parse_options(options)?.protocol }));
    }
    parse_request(input).map(ClientRequest::Register)
}

/// The first field of a request and the options after it, once the whole
/// line is known to be short printable ASCII.
fn split_request(input: &[u8]) -> Result<(&str, std::str::Split<'_, char>), RequestError> {
    if input.len() > MAX_REQUEST_LEN {
        return Err(RequestError::NotOsLogon);
    }
    let text = std::str::from_utf8(input).map_err(|_| RequestError::NotOsLogon)?;
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(RequestError::NotOsLogon);
    }
    let mut fields = text.split(' ');
    let first = fields.next().unwrap_or_default();
    Ok((first, fields))
}

/// The options a server acts on.
struct Options {
    protocol: u32,
    host_keys: u32,
}

/// The protocol version the options name (1 when none does) and the number
/// of host keys announced (0 when none is); an empty option (two spaces in a
/// row) makes the request malformed.
fn parse_options<'a>(options: impl Iterator<Item = &'a str>) -> Result<Options, RequestError> {
    let mut parsed = Options { protocol: 1, host_keys: 0 };
    for option in options {
        if option.is_empty() {
            return Err(RequestError::NotOsLogon);
        }
        if let Some(version) = option.strip_prefix("proto=") {
            // Versions start at 1 (the seed's exchange); 0 names none.
            parsed.protocol = version.parse().ok().filter(|v: &u32| *v >= 1).ok_or(RequestError::NotOsLogon)?;
        }
        if let Some(count) = option.strip_prefix(HOST_KEYS_OPTION).and_then(|rest| rest.strip_prefix('=')) {
            // Any number reads; the server says when there are too many.
            parsed.host_keys = count.parse().map_err(|_| RequestError::NotOsLogon)?;
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_seed_request() {
        let request = parse_request(b"mac:cmartin").unwrap();
        assert_eq!(request.os.as_str(), "mac");
        assert_eq!(request.logon.as_str(), "cmartin");
        assert_eq!(request.protocol, 1);
    }

    #[test]
    fn reads_options_and_ignores_unknown_ones() {
        let request = parse_request(b"linux:alice proto=2 color=blue future").unwrap();
        assert_eq!(request.protocol, 2);
        assert_eq!(request.render(), "linux:alice proto=2");
    }

    #[test]
    fn reads_the_number_of_host_keys_announced() {
        let request = parse_request(b"linux:alice proto=2 host-keys=3").unwrap();
        assert_eq!((request.protocol, request.host_keys), (2, 3));
        assert_eq!(request.render(), "linux:alice proto=2 host-keys=3");
        assert_eq!(parse_request(b"linux:alice proto=2 host-keys=99999").unwrap().host_keys, 99999);
        assert_eq!(parse_request(b"linux:alice proto=2").unwrap().host_keys, 0);
        assert_refused(parse_request, b"linux:alice proto=2 host-keys=x", Refusal::OstypeUnknown);
        assert_refused(parse_request, b"linux:alice proto=2 host-keys=-1", Refusal::OstypeUnknown);
    }

    #[test]
    fn malformed_commands_are_an_unknown_ostype() {
        let long = format!("linux:{}", "a".repeat(MAX_REQUEST_LEN));
        for input in [
            &b""[..],
            b"linux",
            b":alice",
            b"Linux:alice",
            b"linux alice",
            b"linux:alice  proto=2",
            b"linux:alice ",
            b"linux:alice\n",
            b"l:aliae pro proto=0",
            b"linux:alice\0",
            b"\xff\xfe:alice",
            b"linux:alice proto=x",
            b"l;s:alice",
            b"$(reboot):alice",
            long.as_bytes(),
            b"linux:alice\tx",
        ] {
            assert_refused(parse_request, input, Refusal::OstypeUnknown);
        }
    }

    /// Asserts that `parse` refuses `input`, and that the server answers it `refusal`.
    fn assert_refused<T: std::fmt::Debug>(parse: fn(&[u8]) -> Result<T, RequestError>, input: &[u8], refusal: Refusal) {
        let refused = parse(input).map(|parsed| format!("{parsed:?}")).map_err(|e| e.refusal());
        assert_eq!(refused, Err(refusal), "{:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn impossible_logons_are_a_bad_user_request() {
        for input in
            [&b"linux:"[..], b"linux:../../etc", b"linux:a;rm", b"linux:*", b"linux:alice)(uid=*", b"linux:a:b"]
        {
            assert_refused(parse_request, input, Refusal::BadUserRequest);
        }
    }

    #[test]
    fn info_with_nothing_after_the_colon_is_a_status_request() {
        let info = |protocol| Ok(ClientRequest::Info(InfoRequest { protocol }));
        assert_eq!(parse_client_request(b"info: proto=2"), info(2));
        assert_eq!(parse_client_request(b"info:"), info(1));
        assert_eq!(parse_client_request(b"info: color=blue proto=3 future"), info(3));
        assert_eq!(InfoRequest { protocol: 2 }.render(), "info: proto=2");
        assert_eq!(InfoRequest { protocol: 1 }.render(), "info:");
    }

    #[test]
    fn a_status_request_names_neither_a_logon_nor_a_host() {
        // `info:NAME` is a registration for an OS called `info`, which no
        // server accepts: nothing after the colon can choose what is answered.
        let Ok(ClientRequest::Register(request)) = parse_client_request(b"info:pc-bob.example.org proto=2") else {
            panic!("not read as a registration")
        };
        assert_eq!((request.os.as_str(), request.logon.as_str()), ("info", "pc-bob.example.org"));
        for input in [&b"info: proto=x"[..], b"info:  proto=2", b"info: ", b"info:\n", b"info:\tproto=2"] {
            assert_refused(parse_client_request, input, Refusal::OstypeUnknown);
        }
    }

    #[test]
    fn an_old_server_answers_a_status_request_bad_user_request() {
        // What a server that knows only `OS:logon` makes of it: never a registration.
        assert_refused(parse_request, b"info: proto=2", Refusal::BadUserRequest);
    }

    #[test]
    fn registrations_read_the_same_through_either_parser() {
        for input in [&b"mac:cmartin"[..], b"linux:alice proto=2 color=blue", b"beos:x"] {
            assert_eq!(parse_client_request(input), parse_request(input).map(ClientRequest::Register));
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_bytes(input in any::<Vec<u8>>()) {
            let _ = parse_request(&input);
            let _ = parse_client_request(&input);
        }

        #[test]
        fn rendered_status_requests_parse_back(protocol in 1u32..1000) {
            let request = ClientRequest::Info(InfoRequest { protocol });
            prop_assert_eq!(parse_client_request(request.render().as_bytes()).unwrap(), request);
        }

        #[test]
        fn rendered_client_requests_parse_back(os in "[a-z0-9]{1,16}", logon in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}", protocol in 1u32..5) {
            let request = ClientRequest::Register(Request { os: OsName::parse(&os).unwrap(), logon: Logon::parse(&logon).unwrap(), protocol, host_keys: 0 });
            prop_assert_eq!(parse_client_request(request.render().as_bytes()).unwrap(), request);
        }

        #[test]
        fn rendered_requests_parse_back(os in "[a-z0-9]{1,16}", logon in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}", protocol in 1u32..5, host_keys in 0u32..10) {
            let request = Request { os: OsName::parse(&os).unwrap(), logon: Logon::parse(&logon).unwrap(), protocol, host_keys };
            prop_assert_eq!(parse_request(request.render().as_bytes()).unwrap(), request);
        }
    }
}
