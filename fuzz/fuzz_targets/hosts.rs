//! BackupPC's `hosts` file as bpc-register reads it: never panics, and every
//! host it finds is lowercase, as BackupPC compares them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let file = server::registry::parse_hosts(data);
    for line in &file.hosts {
        assert_eq!(line.host, line.host.to_ascii_lowercase());
    }
});
