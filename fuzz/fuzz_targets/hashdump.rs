//! Subversion's hash-dump files in the credential cache: reading never
//! panics, and what was read renders to bytes that read back the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(entry) = client::credentials::parse_hash_dump(data) {
        let rendered = client::credentials::render_hash_dump(&entry);
        assert_eq!(client::credentials::parse_hash_dump(&rendered), Some(entry));
    }
});
