//! The request: `OS:logon`, optionally followed by options such as `proto=2`.

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
        Request { os, logon, protocol: 1 }
    }

    /// The request as sent on the wire (the SSH command).
    pub fn render(&self) -> String {
        if self.protocol > 1 {
            format!("{}:{} proto={}", self.os, self.logon, self.protocol)
        } else {
            format!("{}:{}", self.os, self.logon)
        }
    }
}

/// Parses a request. Options after `OS:logon` are separated by single spaces;
/// unknown ones are ignored so that newer clients keep working.
pub fn parse_request(input: &[u8]) -> Result<Request, RequestError> {
    if input.len() > MAX_REQUEST_LEN {
        return Err(RequestError::NotOsLogon);
    }
    let text = std::str::from_utf8(input).map_err(|_| RequestError::NotOsLogon)?;
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(RequestError::NotOsLogon);
    }
    let mut fields = text.split(' ');
    let os_logon = fields.next().unwrap_or_default();
    let (os, logon) = os_logon.split_once(':').ok_or(RequestError::NotOsLogon)?;
    let os = OsName::parse(os).map_err(RequestError::BadOs)?;
    let logon = Logon::parse(logon).map_err(RequestError::BadLogon)?;
    let mut protocol = 1;
    for option in fields {
        if option.is_empty() {
            return Err(RequestError::NotOsLogon);
        }
        if let Some(version) = option.strip_prefix("proto=") {
            // Versions start at 1 (the seed's exchange); 0 names none.
            protocol = version.parse().ok().filter(|v: &u32| *v >= 1).ok_or(RequestError::NotOsLogon)?;
        }
    }
    Ok(Request { os, logon, protocol })
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
            assert_eq!(
                parse_request(input).map_err(|e| e.refusal()),
                Err(Refusal::OstypeUnknown),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn impossible_logons_are_a_bad_user_request() {
        for input in
            [&b"linux:"[..], b"linux:../../etc", b"linux:a;rm", b"linux:*", b"linux:alice)(uid=*", b"linux:a:b"]
        {
            assert_eq!(
                parse_request(input).map_err(|e| e.refusal()),
                Err(Refusal::BadUserRequest),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_bytes(input in any::<Vec<u8>>()) {
            let _ = parse_request(&input);
        }

        #[test]
        fn rendered_requests_parse_back(os in "[a-z0-9]{1,16}", logon in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}", protocol in 1u32..5) {
            let request = Request { os: OsName::parse(&os).unwrap(), logon: Logon::parse(&logon).unwrap(), protocol };
            prop_assert_eq!(parse_request(request.render().as_bytes()).unwrap(), request);
        }
    }
}
