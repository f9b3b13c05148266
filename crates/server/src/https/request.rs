//! What an HTTP request's headers say: the client's address behind trusted
//! proxies, the origin of the realm, the body's media type.

use std::net::{IpAddr, SocketAddr};

/// The client's address: the TCP peer, or, when the peer is a trusted proxy,
/// the right-most address of `X-Forwarded-For` that is not itself one.
/// `Err` when a trusted proxy sent a header that cannot be read.
pub(crate) fn client_address<'a>(
    peer: SocketAddr,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
    trusted: &[IpAddr],
) -> Result<SocketAddr, String> {
    let peer_ip = peer.ip().to_canonical();
    if !trusted.contains(&peer_ip) {
        return Ok(peer);
    }
    let mut entries = Vec::new();
    for header in forwarded_for {
        let text = std::str::from_utf8(header).map_err(|_| "X-Forwarded-For is not text".to_owned())?;
        entries.extend(text.split(',').map(str::trim));
    }
    for entry in entries.iter().rev() {
        let ip = parse_forwarded_address(entry)
            .ok_or_else(|| {
                format!("X-Forwarded-For holds `{}`, not an address", protocol::text::escape(entry.as_bytes()))
            })?
            .to_canonical();
        if !trusted.contains(&ip) {
            return Ok(SocketAddr::new(ip, peer.port()));
        }
    }
    Ok(peer)
}

/// An address as proxies write it: bare, in brackets, or with a port.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(address) = entry.parse::<SocketAddr>() {
        return Some(address.ip());
    }
    entry.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).and_then(|inner| inner.parse().ok())
}

/// The URL the client reached, for the realmstring (`<https://HOST:PORT>`):
/// the `Host` header when it names a host, else the local address.
pub(crate) fn origin(scheme: &str, host_header: Option<&[u8]>, local: SocketAddr) -> String {
    let default_port = if scheme == "https" { 443 } else { 80 };
    let named = host_header.and_then(|value| std::str::from_utf8(value).ok()).and_then(|text| {
        let text = text.trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, port.parse::<u16>().ok()?),
            _ => (text, default_port),
        };
        let bare = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(host);
        let valid = bare.parse::<IpAddr>().is_ok()
            || (!bare.is_empty()
                && bare.len() <= 253
                && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
        valid.then(|| protocol::auth::realm_origin(scheme, &bare.to_ascii_lowercase(), port))
    });
    named.unwrap_or_else(|| protocol::auth::realm_origin(scheme, &local.ip().to_canonical().to_string(), local.port()))
}

/// Whether a `Content-Type` value is the form's media type (parameters such
/// as `charset` aside).
pub(crate) fn is_form(content_type: Option<&[u8]>) -> bool {
    content_type.and_then(|value| std::str::from_utf8(value).ok()).is_some_and(|text| {
        let media = text.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case(protocol::form::FORM_CONTENT_TYPE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, headers: &[&str], trusted: &[&str]) -> Result<String, String> {
        let trusted: Vec<IpAddr> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_address(peer.parse().unwrap(), headers.iter().map(|h| h.as_bytes()), &trusted).map(|a| a.to_string())
    }

    #[test]
    fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
        assert_eq!(client("192.0.2.1:5000", &["198.51.100.7"], &[]).unwrap(), "192.0.2.1:5000");
        assert_eq!(client("192.0.2.1:5000", &["198.51.100.7"], &["192.0.2.2"]).unwrap(), "192.0.2.1:5000");
        assert_eq!(client("192.0.2.2:5000", &["198.51.100.7"], &["192.0.2.2"]).unwrap(), "198.51.100.7:5000");
        assert_eq!(client("192.0.2.2:5000", &[], &["192.0.2.2"]).unwrap(), "192.0.2.2:5000");
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        // The client forged the first entry; the second proxy added the rest.
        let headers = ["10.6.6.6, 198.51.100.7", "192.0.2.3"];
        assert_eq!(client("192.0.2.2:1", &headers, &["192.0.2.2", "192.0.2.3"]).unwrap(), "198.51.100.7:1");
        assert_eq!(client("[::ffff:192.0.2.2]:1", &["[2001:db8::1]:443"], &["192.0.2.2"]).unwrap(), "[2001:db8::1]:1");
        assert_eq!(client("192.0.2.2:1", &["192.0.2.3"], &["192.0.2.2", "192.0.2.3"]).unwrap(), "192.0.2.2:1");
        let error = client("192.0.2.2:1", &["unknown"], &["192.0.2.2"]).unwrap_err();
        assert_eq!(error, "X-Forwarded-For holds `unknown`, not an address");
    }

    #[test]
    fn the_origin_is_the_host_the_client_named() {
        let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(origin("https", Some(b"Backup.Example.org"), local), "https://backup.example.org:443");
        assert_eq!(origin("https", Some(b"backup.example.org:8443"), local), "https://backup.example.org:8443");
        assert_eq!(origin("https", Some(b"[::1]:8443"), local), "https://[::1]:8443");
        assert_eq!(origin("http", None, local), "http://127.0.0.1:8443");
        assert_eq!(origin("https", Some(b"evil\" host"), local), "https://127.0.0.1:8443");
    }

    #[test]
    fn the_form_type_is_recognised_with_its_parameters() {
        assert!(is_form(Some(b"application/x-www-form-urlencoded")));
        assert!(is_form(Some(b"Application/X-WWW-Form-URLEncoded; charset=utf-8")));
        assert!(!is_form(Some(b"text/plain")));
        assert!(!is_form(None));
    }
}
