//! Text that reaches a terminal or a log, made safe to show.
//!
//! Anything the other side (or a file, or the environment) chose goes
//! through one of these functions before a person or a log reads it. They
//! share one predicate, [`hides_text`]: control characters (C0, DEL, C1),
//! which start escape sequences or move the cursor, and the bidirectional
//! controls, which reorder what the person reads.
//!
//! - [`printable`] for text shown as it came, lines kept (an answer, ssh's
//!   error output);
//! - [`one_line`] for a line of the wire format, a realmstring or a field of
//!   a log line: no newline either;
//! - [`escape`] for bytes in a log line: printable ASCII only, bounded;
//! - [`shorten`] for the bound itself.

/// The most characters [`escape`] keeps, before its `...`.
pub const MAX_ESCAPED: usize = 200;

/// Whether `c` must not reach a terminal or a log as it is: a control
/// character (C0, DEL, C1: escape sequences, carriage returns) or a
/// bidirectional control, which reorders what the person reads
/// (U+202A–U+202E embeddings and overrides, U+2066–U+2069 isolates,
/// U+200E/U+200F and U+061C marks).
pub fn hides_text(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Text made safe for a terminal, lines kept: every character that
/// [`hides_text`] becomes `?`, except newlines (a `\r\n` line end counts as
/// one) and tabs.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\t' => out.push(c),
            c if hides_text(c) => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Text made into one line: every character that [`hides_text`] (newlines
/// and tabs too) becomes a space. The wire format's lines, the realmstring
/// and the fields of a log line go through it.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if hides_text(c) { ' ' } else { c }).collect()
}

/// Untrusted bytes made safe for one log line: printable ASCII stays, the
/// rest is escaped as Rust's `escape_ascii` does (`\n`, `\x00`, `\xff`,
/// `\\`, `\'`, `\"`), and the result is cut at [`MAX_ESCAPED`] characters.
pub fn escape(bytes: &[u8]) -> String {
    shorten(&bytes.escape_ascii().to_string(), MAX_ESCAPED)
}

/// `text` cut after `max_chars` characters, `...` marking the cut.
pub fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every character that must never come out of a sanitizer, but for
    /// the ones that the function lets through on purpose.
    fn unsafe_chars_in(text: &str, allowed: &[char]) -> Vec<char> {
        text.chars()
            .filter(|c| !allowed.contains(c))
            .filter(|c| {
                let code = u32::from(*c);
                code < 0x20
                    || (0x7f..=0x9f).contains(&code)
                    || matches!(code, 0x202A..=0x202E | 0x2066..=0x2069 | 0x200E | 0x200F | 0x061C)
            })
            .collect()
    }

    #[test]
    fn controls_and_bidirectional_controls_hide_text() {
        for c in ['\0', '\x1b', '\r', '\n', '\t', '\x7f', '\u{80}', '\u{9b}', '\u{9f}', '\u{061C}', '\u{200E}'] {
            assert!(hides_text(c), "{c:?}");
        }
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2069}'] {
            assert!(hides_text(c), "{c:?}");
        }
        for c in ['a', ' ', '~', 'é', '中', 'ע', '\u{a0}', '\u{2029}'] {
            assert!(!hides_text(c), "{c:?}");
        }
    }

    #[test]
    fn printable_marks_what_it_replaced_and_keeps_lines() {
        for c in ['\u{202A}', '\u{202B}', '\u{202D}', '\u{2067}', '\u{2068}'] {
            assert_eq!(printable(&format!("a{c}b")), "a?b");
        }
        assert_eq!(printable("é ü 中文 עברית\tok\n"), "é ü 中文 עברית\tok\n");
        assert_eq!(printable("\x1b[31mred\x1b[0m"), "?[31mred?[0m");
        assert_eq!(printable("one\r\ntwo\rthree\u{9b}"), "one\ntwo?three?");
        assert_eq!(printable("bad user request \u{202E}txt.exe\u{202C}"), "bad user request ?txt.exe?");
    }

    #[test]
    fn one_line_turns_everything_hidden_into_spaces() {
        assert_eq!(one_line("Example\nbackups\r\tx"), "Example backups  x");
        assert_eq!(one_line("a\u{202E}b\u{2066}c\u{7f}"), "a b c ");
        assert_eq!(one_line("é 中文"), "é 中文");
    }

    #[test]
    fn escape_keeps_one_line_and_bounds_its_length() {
        assert_eq!(escape(b"linux:a\nb\0\xff"), "linux:a\\nb\\x00\\xff");
        assert_eq!(escape(&[b'a'; 500]).len(), 203);
        assert_eq!(escape(&[b'a'; 200]).len(), 200);
        assert_eq!(escape("é\u{202E}".as_bytes()), "\\xc3\\xa9\\xe2\\x80\\xae");
    }

    #[test]
    fn shorten_cuts_on_characters_and_says_so() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc...");
        assert_eq!(shorten("ééé", 2), "éé...");
        assert_eq!(shorten("", 0), "");
    }

    proptest! {
        #[test]
        fn printable_lets_no_control_through_but_newlines_and_tabs(text in any::<String>()) {
            let shown = printable(&text);
            prop_assert_eq!(unsafe_chars_in(&shown, &['\n', '\t']), Vec::<char>::new());
            prop_assert_eq!(shown.lines().count(), text.replace("\r\n", "\n").lines().count());
        }

        #[test]
        fn one_line_lets_no_control_through(text in any::<String>()) {
            let line = one_line(&text);
            prop_assert_eq!(unsafe_chars_in(&line, &[]), Vec::<char>::new());
            prop_assert_eq!(line.chars().count(), text.chars().count());
        }

        #[test]
        fn escape_gives_bounded_printable_ascii(bytes in any::<Vec<u8>>()) {
            let escaped = escape(&bytes);
            prop_assert!(escaped.bytes().all(|b| (0x20..0x7f).contains(&b)), "{}", escaped);
            prop_assert!(escaped.chars().count() <= MAX_ESCAPED + 3);
        }

        #[test]
        fn shorten_never_panics_and_keeps_a_prefix(text in any::<String>(), max in 0usize..40) {
            let short = shorten(&text, max);
            let kept = short.strip_suffix("...").filter(|_| text.chars().count() > max).unwrap_or(&short);
            prop_assert!(text.starts_with(kept));
            prop_assert!(kept.chars().count() <= max);
        }
    }
}
