//! The answer: `success` and `keyword: value` lines, or an error text.

use crate::connection::SshConnection;

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The first line was exactly `success`.
    Success(SuccessAnswer),
    /// Any other answer: the whole text is the error message.
    Error(String),
}

/// The `keyword: value` lines of a successful answer, in the order received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuccessAnswer {
    fields: Vec<(String, String)>,
}

impl SuccessAnswer {
    /// The value of the first line with this keyword, if any. Keywords are
    /// compared without regard to case; unknown keywords are simply never asked for.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(keyword)).map(|(_, v)| v.as_str())
    }

    /// All the keyword lines, in the order received.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Renders a successful answer. Control characters in a value (a newline
/// above all, which would forge another keyword line) and bidirectional
/// controls become spaces ([`crate::text::one_line`]).
pub fn render_success<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("success\n");
    for (keyword, value) in fields {
        let clean = crate::text::one_line(value);
        out.push_str(keyword);
        out.push_str(": ");
        out.push_str(clean.trim());
        out.push('\n');
    }
    out
}

/// Renders an error answer: the value of `SSH_CONNECTION`, a space, then the
/// message (one or more lines).
pub fn render_error(connection: &SshConnection, message: &str) -> String {
    format!("{connection} {}\n", message.trim_end_matches('\n'))
}

/// Parses an answer. Anything whose first line is not `success` is an error,
/// kept whole (decoded leniently, so that no answer is lost to bad bytes).
pub fn parse_answer(input: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("success") {
        return Answer::Error(text.trim_end_matches(['\n', '\r']).to_owned());
    }
    let fields = lines.filter_map(keyword_line).collect();
    Answer::Success(SuccessAnswer { fields })
}

fn keyword_line(line: &str) -> Option<(String, String)> {
    let (keyword, value) = line.split_once(':')?;
    let keyword = keyword.trim();
    let plain = !keyword.is_empty() && keyword.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plain.then(|| (keyword.to_ascii_lowercase(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_success_with_keywords_in_any_order_and_ignores_unknown_ones() {
        let answer = parse_answer(
            b"success\r\nurl: http://dugong/backuppc/?host=dormeur\nweather: sunny\nnot a keyword line\nkey: ssh-ed25519 AAAA c\n",
        );
        let Answer::Success(success) = answer else { panic!("not a success") };
        assert_eq!(success.get("key"), Some("ssh-ed25519 AAAA c"));
        assert_eq!(success.get("URL"), Some("http://dugong/backuppc/?host=dormeur"));
        assert_eq!(success.get("from"), None);
    }

    #[test]
    fn any_other_first_line_is_an_error_kept_whole() {
        let text = "82.254.212.144 49631 134.158.240.3 22 bad user request\nsecond line";
        assert_eq!(parse_answer(text.as_bytes()), Answer::Error(text.to_owned()));
        assert_eq!(parse_answer(b""), Answer::Error(String::new()));
        assert!(matches!(parse_answer(b"successful\nkey: x"), Answer::Error(_)));
        assert!(matches!(parse_answer(b" success\nkey: x"), Answer::Error(_)));
    }

    #[test]
    fn error_answers_start_with_ssh_connection() {
        let connection = SshConnection::parse("127.0.0.9 4000 127.0.0.1 22").unwrap();
        assert_eq!(render_error(&connection, "ostype is unknown"), "127.0.0.9 4000 127.0.0.1 22 ostype is unknown\n");
    }

    #[test]
    fn a_newline_in_a_value_cannot_forge_a_keyword() {
        let text = render_success([("url", "http://x/\nkey: forged")]);
        let Answer::Success(success) = parse_answer(text.as_bytes()) else { panic!("not a success") };
        assert_eq!(success.get("key"), None);
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_bytes(input in any::<Vec<u8>>()) {
            let _ = parse_answer(&input);
        }

        #[test]
        fn rendered_successes_parse_back(fields in prop::collection::vec(("[a-z][a-z0-9-]{0,10}", "[ -~]{0,40}"), 0..6)) {
            let text = render_success(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let Answer::Success(success) = parse_answer(text.as_bytes()) else { panic!("not a success") };
            for (keyword, value) in &fields {
                let first = fields.iter().find(|(k, _)| k == keyword).map(|(_, v)| v.trim());
                prop_assert_eq!(success.get(keyword), first);
                let _ = value;
            }
        }
    }
}
