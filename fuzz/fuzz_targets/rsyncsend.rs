//! rsyncsend's check of the command BackupPC sends: never panics, and an
//! accepted command is rebuilt from parts that rsync reads as the check did:
//! no word with a space or a control character, no path that rsync's own
//! argument globbing or `~` expansion would widen, and the path last.
#![no_main]

use client::rsyncsend::check_command;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (restore, command) = match data.split_first() {
        Some((first, rest)) => (first & 1 == 1, rest),
        None => (false, data),
    };
    for allowed in [vec!["/".to_owned()], vec!["/home".to_owned(), "/srv/data/".to_owned()]] {
        if let Ok(invocation) = check_command(Some(command), restore, &allowed) {
            let argv = invocation.argv(&invocation.path, Some("/home"));
            for word in &argv {
                assert!(word.bytes().all(|b| b.is_ascii_graphic()), "{word:?}");
            }
            let path = argv.last().map(String::as_str).unwrap_or_default();
            assert!(path.starts_with('/') && !path.contains(['*', '?', '[', '\\', '~', '\'', '"']), "{path:?}");
            assert_eq!(argv.get(argv.len().saturating_sub(2)).map(String::as_str), Some("."));
        }
    }
});
