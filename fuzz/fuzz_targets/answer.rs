//! The server's answer: parsing never panics, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = protocol::parse_answer(data);
});
