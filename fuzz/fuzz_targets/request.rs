//! The request line a client sends (a registration or a status request):
//! parsing never panics, and a parsed request renders to a line that parses
//! back to the same request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(request) = protocol::parse_request(data) {
        let rendered = request.render();
        assert_eq!(protocol::parse_request(rendered.as_bytes()).ok(), Some(request));
    }
    if let Ok(request) = protocol::parse_client_request(data) {
        let rendered = request.render();
        assert_eq!(protocol::parse_client_request(rendered.as_bytes()).ok(), Some(request));
    }
});
