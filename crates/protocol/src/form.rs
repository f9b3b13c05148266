//! The request as an HTML form, for the `https://` transport.
//!
//! Over HTTPS a request is `POST /register` with an
//! `application/x-www-form-urlencoded` body whose fields carry what the SSH
//! command line carries:
//!
//! | field      | SSH request            | notes                                   |
//! |------------|------------------------|-----------------------------------------|
//! | `os`       | `OS` before the colon  | `info` makes it a status request         |
//! | `logon`    | `logon` after the colon| absent or empty in a status request      |
//! | `proto`    | `proto=N`              | 1 when absent                           |
//! | `host-key` | one line after `host-keys N` | repeated, one OpenSSH public key each; their number is `host-keys=N` |
//!
//! Unknown fields are ignored, as unknown options are. The body is turned
//! into the same [`ClientRequest`] the SSH command line gives, through the
//! same parser, so both transports accept and refuse the same requests.
//! The host keys travel in the body because HTTP cannot ask a question in
//! the middle of an answer; the server reads them when it would have asked.

use crate::hostkeys::HOST_KEYS_OPTION;
use crate::request::{ClientRequest, INFO, MAX_REQUEST_LEN, RequestError, parse_client_request};

/// The path a request is posted to.
pub const REGISTER_PATH: &str = "/register";
/// The media type of a request's body.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The media type of an answer's body: the SSH transport's answer, as is.
pub const ANSWER_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// The longest body accepted: eight of the longest host keys and the rest.
pub const MAX_FORM_LEN: usize = 48 * 1024;

/// The field names.
pub const FIELD_OS: &str = "os";
/// The logon field.
pub const FIELD_LOGON: &str = "logon";
/// The protocol version field.
pub const FIELD_PROTO: &str = "proto";
/// One host key (repeated).
pub const FIELD_HOST_KEY: &str = "host-key";

/// A request read from a form: the request, and the host key lines the
/// client sent with it (as many as `request` announces), still unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormRequest {
    /// The request, as the SSH command line would give it.
    pub request: ClientRequest,
    /// The `host-key` fields, in the order sent.
    pub host_keys: Vec<Vec<u8>>,
}

/// The body that carries `request` and its host keys (`TYPE BASE64` lines).
pub fn render_form(request: &ClientRequest, host_keys: &[String]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    match request {
        ClientRequest::Register(request) => {
            form.append_pair(FIELD_OS, request.os.as_str());
            form.append_pair(FIELD_LOGON, request.logon.as_str());
            form.append_pair(FIELD_PROTO, &request.protocol.to_string());
            for key in host_keys.iter().take(usize::try_from(request.host_keys).unwrap_or(usize::MAX)) {
                form.append_pair(FIELD_HOST_KEY, key);
            }
        }
        ClientRequest::Info(request) => {
            form.append_pair(FIELD_OS, INFO);
            form.append_pair(FIELD_PROTO, &request.protocol.to_string());
        }
    }
    form.finish()
}

/// Reads a form body. A field given twice (but `host-key`), a value with a
/// space or a control character, or a body over [`MAX_FORM_LEN`] makes the
/// request malformed, with the refusal the SSH transport gives a malformed
/// line; a bad logon is `bad user request` as there.
pub fn parse_form(body: &[u8]) -> Result<FormRequest, RequestError> {
    if body.len() > MAX_FORM_LEN {
        return Err(RequestError::NotOsLogon);
    }
    let (mut os, mut logon, mut proto) = (None, None, None);
    let mut host_keys = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        let slot = match name.as_ref() {
            FIELD_OS => &mut os,
            FIELD_LOGON => &mut logon,
            FIELD_PROTO => &mut proto,
            FIELD_HOST_KEY => {
                host_keys.push(value.into_owned().into_bytes());
                continue;
            }
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(RequestError::NotOsLogon);
        }
    }
    let os = os.ok_or(RequestError::NotOsLogon)?;
    let logon = logon.unwrap_or_default();
    let one_word = |text: &str| text.bytes().all(|b| b.is_ascii_graphic());
    if os.is_empty() || !one_word(&os) || os.contains(':') {
        return Err(RequestError::NotOsLogon);
    }
    if !one_word(&logon) {
        let reason = crate::names::Logon::parse(&logon).err();
        return Err(reason.map_or(RequestError::NotOsLogon, RequestError::BadLogon));
    }
    let mut line = format!("{os}:{logon}");
    if let Some(proto) = proto {
        if !one_word(&proto) || proto.is_empty() {
            return Err(RequestError::NotOsLogon);
        }
        line.push_str(&format!(" proto={proto}"));
    }
    if !host_keys.is_empty() {
        line.push_str(&format!(" {HOST_KEYS_OPTION}={}", host_keys.len()));
    }
    if line.len() > MAX_REQUEST_LEN {
        return Err(RequestError::NotOsLogon);
    }
    let request = parse_client_request(line.as_bytes())?;
    if matches!(request, ClientRequest::Info(_)) {
        host_keys.clear();
    }
    Ok(FormRequest { request, host_keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{InfoRequest, Request};
    use crate::{Logon, OsName};
    use proptest::prelude::*;

    fn register(os: &str, logon: &str, protocol: u32, host_keys: u32) -> ClientRequest {
        let mut request = Request::new(OsName::parse(os).unwrap(), Logon::parse(logon).unwrap());
        request.protocol = protocol;
        request.host_keys = host_keys;
        ClientRequest::Register(request)
    }

    #[test]
    fn a_registration_reads_back() {
        let keys = vec!["ssh-ed25519 AAAA+/=".to_owned(), "ssh-rsa BBBB".to_owned()];
        let request = register("linux", "alice", 2, 2);
        let body = render_form(&request, &keys);
        assert_eq!(body, "os=linux&logon=alice&proto=2&host-key=ssh-ed25519+AAAA%2B%2F%3D&host-key=ssh-rsa+BBBB");
        let form = parse_form(body.as_bytes()).unwrap();
        assert_eq!(form.request, request);
        assert_eq!(form.host_keys, vec![b"ssh-ed25519 AAAA+/=".to_vec(), b"ssh-rsa BBBB".to_vec()]);
    }

    #[test]
    fn a_status_request_reads_back() {
        let request = ClientRequest::Info(InfoRequest { protocol: 2 });
        let body = render_form(&request, &[]);
        assert_eq!(body, "os=info&proto=2");
        assert_eq!(parse_form(body.as_bytes()).unwrap(), FormRequest { request, host_keys: vec![] });
    }

    #[test]
    fn the_seed_names_and_protocol_one_read_as_over_ssh() {
        let form = parse_form(b"os=mac&logon=cmartin").unwrap();
        assert_eq!(form.request, register("mac", "cmartin", 1, 0));
        assert_eq!(parse_form(b"logon=alice&os=linux&color=blue").unwrap().request, register("linux", "alice", 1, 0));
    }

    #[test]
    fn malformed_forms_get_the_ssh_refusals() {
        let refusal = |body: &str| parse_form(body.as_bytes()).unwrap_err();
        for body in [
            "",
            "logon=alice",
            "os=&logon=alice",
            "os=linux&os=macos&logon=alice",
            "os=linux&logon=alice&logon=bob",
            "os=lin:ux&logon=alice",
            "os=linux+proto%3D2&logon=alice",
            "os=linux&logon=alice&proto=0",
            "os=linux&logon=alice&proto=2+host-keys%3D9",
            "os=linux%0A&logon=alice",
        ] {
            assert_eq!(refusal(body), RequestError::NotOsLogon, "{body}");
        }
        assert!(matches!(refusal("os=linux&logon=al+ice"), RequestError::BadLogon(_)));
        assert!(matches!(refusal("os=linux&logon=-alice"), RequestError::BadLogon(_)));
        assert!(matches!(refusal("os=linux&logon="), RequestError::BadLogon(_)));
        assert!(matches!(refusal("os=Linux&logon=alice"), RequestError::BadOs(_)));
        let long = format!("os=linux&logon=alice&x={}", "a".repeat(MAX_FORM_LEN));
        assert_eq!(refusal(&long), RequestError::NotOsLogon);
    }

    #[test]
    fn a_status_request_carries_no_host_keys() {
        let form = parse_form(b"os=info&proto=2&host-key=ssh-rsa+AAAA").unwrap();
        assert!(form.host_keys.is_empty());
    }

    proptest! {
        #[test]
        fn any_body_is_read_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_form(&body);
        }

        #[test]
        fn what_is_rendered_reads_back(logon in "[a-z][a-z0-9_.-]{0,20}", keys in 0u32..4) {
            let lines: Vec<String> = (0..keys).map(|i| format!("ssh-ed25519 AAAA{i}")).collect();
            let request = register("linux", &logon, 2, keys);
            let form = parse_form(render_form(&request, &lines).as_bytes()).unwrap();
            prop_assert_eq!(form.request, request);
            prop_assert_eq!(form.host_keys.len(), keys as usize);
        }
    }
}
