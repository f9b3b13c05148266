//! The challenge over HTTPS: HTTP's own Basic authentication (RFC 7617),
//! as Subversion's `mod_dav_svn` behind Apache challenges.
//!
//! ```text
//! S: 401, WWW-Authenticate: Basic realm="Example backups"
//! C: the same request, Authorization: Basic <base64 of "username:password">
//! ```
//!
//! The server names only the realm's text; the client keys its cache with
//! `<https://HOST:PORT> Example backups`, its own URL first, as over SSH.

use crate::auth::{AuthError, AuthResponse, MAX_AUTH_LINE};
use crate::secret::Secret;
use crate::text::one_line;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The scheme named in both headers.
pub const BASIC: &str = "Basic";

/// The `WWW-Authenticate` value for `realm`: a quoted string, with `"` and
/// `\` escaped and anything that is not printable ASCII replaced by `?`.
pub fn render_basic_challenge(realm: &str) -> String {
    let mut quoted = String::with_capacity(realm.len() + 2);
    for c in one_line(realm).chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            ' '..='~' => quoted.push(c),
            _ => quoted.push('?'),
        }
    }
    format!("{BASIC} realm=\"{quoted}\"")
}

/// The realm of a `WWW-Authenticate` value that offers Basic, if it does.
pub fn parse_basic_challenge(header: &str) -> Option<String> {
    let rest = header.trim_start();
    let scheme = rest.get(..BASIC.len())?;
    if !scheme.eq_ignore_ascii_case(BASIC) {
        return None;
    }
    let rest = rest.get(BASIC.len()..)?.trim_start();
    let (name, value) = rest.split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("realm") {
        return None;
    }
    let mut chars = value.trim_start().strip_prefix('"')?.chars();
    let mut realm = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(realm),
            '\\' => realm.push(chars.next()?),
            c => realm.push(c),
        }
    }
}

/// The `Authorization` value for a name and a password. A name with a
/// colon cannot be sent (RFC 7617): `None`.
pub fn render_basic_credentials(username: &str, password: &Secret) -> Option<String> {
    if username.contains(':') {
        return None;
    }
    let pair = format!("{username}:{}", password.expose());
    Some(format!("{BASIC} {}", STANDARD.encode(pair)))
}

/// Reads an `Authorization` value: Basic credentials, in UTF-8.
pub fn parse_basic_credentials(header: &[u8]) -> Result<AuthResponse, AuthError> {
    if header.len() > MAX_AUTH_LINE {
        return Err(AuthError::Malformed);
    }
    let text = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?.trim();
    let (scheme, encoded) = text.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case(BASIC) {
        return Err(AuthError::Malformed);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| AuthError::BadPlain)?;
    let decoded = String::from_utf8(decoded).map_err(|_| AuthError::BadPlain)?;
    let (username, password) = decoded.split_once(':').ok_or(AuthError::BadPlain)?;
    if username.is_empty() {
        return Err(AuthError::BadPlain);
    }
    Ok(AuthResponse::Plain { username: username.to_owned(), password: Secret::new(password.to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_challenge_reads_back() {
        let header = render_basic_challenge("Example \"backups\" \\ é");
        assert_eq!(header, r#"Basic realm="Example \"backups\" \\ ?""#);
        assert_eq!(parse_basic_challenge(&header).as_deref(), Some("Example \"backups\" \\ ?"));
        assert_eq!(parse_basic_challenge(r#"basic REALM = "x""#).as_deref(), Some("x"));
        assert_eq!(parse_basic_challenge(r#"Bearer realm="x""#), None);
        assert_eq!(parse_basic_challenge(r#"Basic realm="unterminated"#), None);
        assert_eq!(parse_basic_challenge("Basic"), None);
    }

    #[test]
    fn credentials_read_back() {
        let header = render_basic_credentials("alice", &Secret::new("pa:ss wörd")).unwrap();
        assert_eq!(header, "Basic YWxpY2U6cGE6c3Mgd8O2cmQ=");
        let AuthResponse::Plain { username, password } = parse_basic_credentials(header.as_bytes()).unwrap() else {
            panic!("not plain")
        };
        assert_eq!((username.as_str(), password.expose()), ("alice", "pa:ss wörd"));
        assert_eq!(render_basic_credentials("a:b", &Secret::new("x")), None);
    }

    #[test]
    fn bad_credentials_are_refused() {
        assert_eq!(parse_basic_credentials(b"Bearer abc"), Err(AuthError::Malformed));
        assert_eq!(parse_basic_credentials(b"Basic"), Err(AuthError::Malformed));
        assert_eq!(parse_basic_credentials(b"Basic !!!"), Err(AuthError::BadPlain));
        assert_eq!(parse_basic_credentials(b"Basic YWxpY2U="), Err(AuthError::BadPlain));
        assert_eq!(parse_basic_credentials(b"Basic OnB3"), Err(AuthError::BadPlain));
        assert_eq!(parse_basic_credentials(&[b'a'; MAX_AUTH_LINE + 1]), Err(AuthError::Malformed));
    }

    proptest! {
        #[test]
        fn any_header_is_read_without_panicking(header in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_basic_credentials(&header);
            let _ = parse_basic_challenge(&String::from_utf8_lossy(&header));
        }
    }
}
