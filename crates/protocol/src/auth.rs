//! The challenge of protocol 2: `auth-required`, `PLAIN`, `auth-failed`, `cancel`.
//!
//! ```text
//! S: auth-required PLAIN <realmstring>
//! C: PLAIN <base64 of "\0username\0password">     (SASL PLAIN, RFC 4616)
//! S: auth-failed <reason>                          (then auth-required again)
//! ```

use crate::secret::Secret;
use crate::text::one_line;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The longest line either side sends during the challenge.
pub const MAX_AUTH_LINE: usize = 4096;
/// How many answers the server accepts before it gives up.
pub const MAX_ATTEMPTS: usize = 3;
/// The only mechanism offered.
pub const MECHANISM: &str = "PLAIN";

/// The server's challenge line, with its newline.
pub fn render_auth_required(realm: &str) -> String {
    format!("auth-required {MECHANISM} {}\n", one_line(realm))
}

/// The realmstring of a challenge line, if it is one.
pub fn parse_auth_required(line: &str) -> Option<&str> {
    let rest = line.trim_end_matches(['\n', '\r']).strip_prefix("auth-required ")?;
    rest.strip_prefix(MECHANISM)?.strip_prefix(' ')
}

/// The server's line after a rejected answer, with its newline.
pub fn render_auth_failed(reason: &str) -> String {
    format!("auth-failed {}\n", one_line(reason))
}

/// The reason of an `auth-failed` line, if it is one.
pub fn parse_auth_failed(line: &str) -> Option<&str> {
    let line = line.trim_end_matches(['\n', '\r']);
    line.strip_prefix("auth-failed ").or((line == "auth-failed").then_some(""))
}

/// What the client answered to a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResponse {
    /// A name and a password (SASL PLAIN, without an authorization identity).
    Plain {
        /// The name to authenticate.
        username: String,
        /// The password.
        password: Secret,
    },
    /// The client gives up.
    Cancel,
}

/// Why an answer to a challenge is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not `PLAIN <base64>` or `cancel`.
    #[error("the answer is not `PLAIN <base64>` or `cancel`")]
    Malformed,
    /// The base64 does not decode to `[authzid]\0username\0password` in UTF-8.
    #[error("the PLAIN message is not [authzid] NUL username NUL password")]
    BadPlain,
    /// An authorization identity other than the user's own was asked for.
    #[error("acting as another identity is not supported")]
    Authzid,
}

/// The client's answer line, with its newline. The secret travels only
/// here, on the SSH channel, never on a command line.
pub fn render_plain(username: &str, password: &Secret) -> String {
    let mut message = Vec::with_capacity(username.len() + password.expose().len() + 2);
    message.push(0);
    message.extend_from_slice(username.as_bytes());
    message.push(0);
    message.extend_from_slice(password.expose().as_bytes());
    format!("{MECHANISM} {}\n", STANDARD.encode(message))
}

/// The `cancel` line.
pub fn render_cancel() -> &'static str {
    "cancel\n"
}

/// Parses the client's answer line.
pub fn parse_auth_response(line: &[u8]) -> Result<AuthResponse, AuthError> {
    if line.len() > MAX_AUTH_LINE {
        return Err(AuthError::Malformed);
    }
    let text = std::str::from_utf8(line).map_err(|_| AuthError::Malformed)?.trim_end_matches(['\n', '\r']);
    if text == "cancel" {
        return Ok(AuthResponse::Cancel);
    }
    let encoded = text.strip_prefix("PLAIN ").ok_or(AuthError::Malformed)?;
    let decoded = STANDARD.decode(encoded).map_err(|_| AuthError::BadPlain)?;
    let mut parts = decoded.split(|b| *b == 0);
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::BadPlain);
    };
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| AuthError::BadPlain);
    let (authzid, username, password) = (text(authzid)?, text(username)?, text(password)?);
    if !authzid.is_empty() && authzid != username {
        return Err(AuthError::Authzid);
    }
    if username.is_empty() {
        return Err(AuthError::BadPlain);
    }
    Ok(AuthResponse::Plain { username, password: Secret::new(password) })
}

/// The URL a realmstring starts with, as Subversion writes it for a network
/// server: `scheme://host:port`, an IPv6 address in brackets. Both sides
/// format it here, so that a realm reads the same whichever end wrote it.
pub fn realm_origin(scheme: &str, host: &str, port: u16) -> String {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => format!("{scheme}://{}", std::net::SocketAddr::new(ip, port)),
        Err(_) => format!("{scheme}://{bare}:{port}"),
    }
}

/// The realmstring as Subversion writes it: `<URL> REALM`.
pub fn realmstring(url: &str, realm: &str) -> String {
    format!("<{url}> {}", one_line(realm))
}

/// The realmstring a client keys its cache with: the server's realm text
/// after the client's own `<URL>`. The server chooses the realm's name, never
/// which server it is, so no server can ask for another one's cached password.
pub fn client_realmstring(client_url: &str, server_realmstring: &str) -> String {
    let text = match server_realmstring.strip_prefix('<').and_then(|rest| rest.split_once("> ")) {
        Some((_, text)) => text,
        None => server_realmstring,
    };
    realmstring(client_url, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_exchange_reads_back() {
        let realm = realmstring("ssh://backup.example.org:22", "Example backups");
        assert_eq!(realm, "<ssh://backup.example.org:22> Example backups");
        let line = render_auth_required(&realm);
        assert_eq!(line, "auth-required PLAIN <ssh://backup.example.org:22> Example backups\n");
        assert_eq!(parse_auth_required(&line), Some(realm.as_str()));
        assert_eq!(parse_auth_failed(&render_auth_failed("authentication failed")), Some("authentication failed"));
        let answer = render_plain("alice", &Secret::new("alice-demo"));
        assert_eq!(answer, "PLAIN AGFsaWNlAGFsaWNlLWRlbW8=\n");
        assert_eq!(
            parse_auth_response(answer.as_bytes()),
            Ok(AuthResponse::Plain { username: "alice".into(), password: Secret::new("alice-demo") })
        );
        assert_eq!(parse_auth_response(b"cancel\n"), Ok(AuthResponse::Cancel));
    }

    #[test]
    fn the_client_names_the_server_in_its_realmstring() {
        assert_eq!(
            client_realmstring("ssh://backup.example.org:22", "<ssh://10.0.0.1:22> Example backups"),
            "<ssh://backup.example.org:22> Example backups"
        );
        assert_eq!(client_realmstring("ssh://b:22", "Plain realm"), "<ssh://b:22> Plain realm");
        assert_eq!(realm_origin("ssh", "backup.example.org", 22), "ssh://backup.example.org:22");
        assert_eq!(realm_origin("ssh", "2001:db8::1", 2222), "ssh://[2001:db8::1]:2222");
        assert_eq!(realm_origin("ssh", "[2001:db8::1]", 22), "ssh://[2001:db8::1]:22");
        assert_eq!(realm_origin("https", "192.0.2.1", 443), "https://192.0.2.1:443");
        assert_eq!(client_realmstring("ssh://b:22", "<x> a\x1b[2Jb"), "<ssh://b:22> a [2Jb");
    }

    #[test]
    fn bad_answers_are_refused() {
        let b64 = |bytes: &[u8]| format!("PLAIN {}", STANDARD.encode(bytes));
        assert_eq!(parse_auth_response(b"LOGIN x"), Err(AuthError::Malformed));
        assert_eq!(parse_auth_response(b"PLAIN !!!"), Err(AuthError::BadPlain));
        assert_eq!(parse_auth_response(b64(b"\0alice").as_bytes()), Err(AuthError::BadPlain));
        assert_eq!(parse_auth_response(b64(b"\0\0pw").as_bytes()), Err(AuthError::BadPlain));
        assert_eq!(parse_auth_response(b64(b"bob\0alice\0pw").as_bytes()), Err(AuthError::Authzid));
        assert_eq!(parse_auth_response(b64(b"\0a\0b\0c").as_bytes()), Err(AuthError::BadPlain));
        assert!(parse_auth_response(b64(b"alice\0alice\0pw").as_bytes()).is_ok());
        assert_eq!(parse_auth_required("auth-required LOGIN <x> y"), None);
    }

    proptest! {
        #[test]
        fn plain_answers_round_trip(username in "[^\\x00]{1,40}", password in "[^\\x00]{0,40}") {
            let line = render_plain(&username, &Secret::new(password.clone()));
            prop_assert_eq!(
                parse_auth_response(line.as_bytes()),
                Ok(AuthResponse::Plain { username, password: Secret::new(password) })
            );
        }

        #[test]
        fn parser_never_panics(input in any::<Vec<u8>>()) {
            let _ = parse_auth_response(&input);
        }
    }
}
