//! `svn auth PATTERN...`: which cached credentials a pattern names.

use super::cache::{CREDENTIAL_KIND, CacheEntry};

/// Whether `entry` matches every pattern, as `svn auth PATTERN...` decides:
/// each pattern, as the glob `*PATTERN*`, must match the credential kind,
/// the realmstring or the username.
pub fn matches_all(entry: &CacheEntry, patterns: &[String]) -> bool {
    let fields: Vec<&str> = [Some(CREDENTIAL_KIND), entry.get("svn:realmstring").map(String::as_str)]
        .into_iter()
        .chain([entry.get("username").map(String::as_str)])
        .flatten()
        .collect();
    patterns.iter().all(|pattern| {
        let glob = format!("*{pattern}*");
        fields.iter().any(|field| glob_matches(&glob, field))
    })
}

/// Case-sensitive glob matching as Subversion does it (APR's `fnmatch`
/// without flags, byte by byte): `*` any text (slashes too), `?` one character, `[...]`
/// one of a set with ranges (`[!...]` or `[^...]` for none of it), `\`
/// takes the next character literally; a `[` without its `]` is itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text
    // position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match pattern.get(p..).unwrap_or_default() {
            [b'*', ..] => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            rest if !rest.is_empty() => {
                if let Some(used) = match_one(rest, c) {
                    p += used;
                    t += 1;
                    continue;
                }
            }
            _ => {}
        }
        match star {
            Some((after_star, swallowed)) => {
                p = after_star;
                t = swallowed + 1;
                star = Some((after_star, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(|c| *c == b'*')
}

/// Whether the pattern's first element (not `*`) matches `c`, and how many
/// pattern characters it took.
fn match_one(pattern: &[u8], c: u8) -> Option<usize> {
    match pattern {
        [b'?', ..] => Some(1),
        [b'\\', escaped, ..] => (*escaped == c).then_some(2),
        [b'[', rest @ ..] => match bracket(rest, c) {
            Some((matched, used)) => matched.then_some(used + 1),
            None => (b'[' == c).then_some(1),
        },
        [literal, ..] => (*literal == c).then_some(1),
        [] => None,
    }
}

/// A bracket expression after its `[`: whether `c` is in it and how many
/// characters it took with its `]`; `None` when it has no `]`.
fn bracket(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let (negated, mut i) = match pattern.first() {
        Some(b'!' | b'^') => (true, 1),
        _ => (false, 0),
    };
    let mut found = false;
    let mut first = true;
    loop {
        let mut low = *pattern.get(i)?;
        if low == b']' && !first {
            return Some((found != negated, i + 1));
        }
        first = false;
        if low == b'\\' {
            i += 1;
            low = *pattern.get(i)?;
        }
        i += 1;
        let high = match (pattern.get(i), pattern.get(i + 1)) {
            (Some(b'-'), Some(&high)) if high != b']' => {
                i += 2;
                if high == b'\\' {
                    let escaped = *pattern.get(i)?;
                    i += 1;
                    escaped
                } else {
                    high
                }
            }
            _ => low,
        };
        found |= low <= c && c <= high;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REALM: &str = "<ssh://backup.example.org:22> Example backups";

    #[test]
    fn patterns_match_as_subversions_globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]bc", "abc", true),
            ("[!a]bc", "abc", false),
            ("[^a]bc", "bbc", true),
            ("[a-c]", "b", true),
            ("[]]", "]", true),
            ("[", "[", true),
            ("a[", "a[", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a\\lice", "alice", true),
            ("ABC", "abc", false),
            ("*/*", "<ssh://h:22> r", true),
            ("*x*y*z*", "axbyczd", true),
            ("*x*y*z*", "axbzcy", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), *expected, "{pattern:?} against {text:?}");
        }
        let entry: CacheEntry =
            [("svn:realmstring", REALM), ("username", "alice"), ("password", "secret"), ("passtype", "simple")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let matches =
            |patterns: &[&str]| matches_all(&entry, &patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert!(matches(&[]));
        assert!(matches(&["simple"]), "the credential kind svn.simple");
        assert!(matches(&["backup", "ali"]));
        assert!(!matches(&["backup", "bob"]), "every pattern must match");
        assert!(!matches(&["secret"]), "never the password");
        assert!(!matches(&["passtype"]), "never the key names");
    }

    proptest! {
        #[test]
        fn glob_matching_never_panics_and_a_plain_pattern_is_a_substring_search(
            pattern in "[a-z\\[\\]!^*?\\\\-]{0,8}", text in ".{0,12}", plain in "[a-z]{0,4}",
        ) {
            let _ = glob_matches(&pattern, &text);
            prop_assert_eq!(glob_matches(&format!("*{plain}*"), &text), text.contains(&plain));
        }
    }
}
