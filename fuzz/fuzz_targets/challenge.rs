//! The challenge lines: the client's answer (`PLAIN <base64>`, `cancel`) as
//! the server reads it, and `auth-required` / `auth-failed` as the client
//! reads them. Nothing panics, and what the client reads as a realm is one line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = protocol::auth::parse_auth_response(data);
    let text = String::from_utf8_lossy(data);
    if let Some(realm) = protocol::auth::parse_auth_required(&text) {
        let key = protocol::auth::client_realmstring("ssh://b:22", realm);
        assert!(!key.contains('\n'));
    }
    let _ = protocol::auth::parse_auth_failed(&text);
});
