//! The register key's line in `~backuppc/.ssh/authorized_keys`: written by
//! `bpc-register authorized-keys` and `bpc-register install`, merged into
//! the file without touching the other lines.

/// Why the line cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// sshd hands the command to the account's shell, so every word of it
    /// must be plain.
    #[error(
        "{what} `{text}` holds a space or a shell character; install bpc-register and its configuration at plain paths"
    )]
    NotPlain {
        /// The program's path, the configuration's path or `--from`.
        what: &'static str,
        /// The text.
        text: String,
    },
    /// `--from` is not a list of addresses or patterns.
    #[error("`{0}` is not a comma-separated list of addresses or patterns for from=")]
    BadFrom(String),
}

/// The line that lets the key `public_key` (one OpenSSH public key line)
/// run `program --config config` and nothing else, from `from` when given.
pub fn register_key_line(
    program: &str,
    config: &str,
    public_key: &str,
    from: Option<&str>,
) -> Result<String, LineError> {
    let plain =
        |text: &str| !text.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'\\$`;&|<>(){}*?!#~".contains(c));
    if !plain(program) {
        return Err(LineError::NotPlain { what: "the program's path", text: program.to_owned() });
    }
    if !plain(config) {
        return Err(LineError::NotPlain { what: "the configuration's path", text: config.to_owned() });
    }
    if let Some(from) = from.filter(|from| !protocol::is_address_list(from)) {
        return Err(LineError::BadFrom(from.to_owned()));
    }
    let from = from.map(|from| format!("from=\"{from}\",")).unwrap_or_default();
    Ok(format!("{from}restrict,command=\"{program} --config {config}\" {public_key}"))
}

/// `existing` (the file's text, empty when there is none) with `line` in
/// it: any other line for the same key (the key's base64 as a word) is
/// replaced, every other line kept as it was. `None` when that changes
/// nothing.
pub fn merge(existing: &str, line: &str) -> Option<String> {
    let key = key_blob(line)?;
    let mut out = String::new();
    let mut present = false;
    for old in existing.lines() {
        if key_blob(old) == Some(key) {
            if old == line && !present {
                present = true;
                out.push_str(old);
                out.push('\n');
            }
            continue;
        }
        out.push_str(old);
        out.push('\n');
    }
    if !present {
        out.push_str(line);
        out.push('\n');
    }
    (out != existing).then_some(out)
}

/// The base64 word of an `authorized_keys` line: the word after the first
/// one that names a key type.
fn key_blob(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word.starts_with("ssh-") || word.starts_with("ecdsa-") || word.starts_with("sk-") {
            return words.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl register";

    fn line() -> String {
        register_key_line("/usr/bin/bpc-register", "/etc/bpc-enroll/server.toml", KEY, None).unwrap()
    }

    #[test]
    fn the_line_binds_the_key_to_the_command_with_restrict() {
        assert_eq!(
            line(),
            format!("restrict,command=\"/usr/bin/bpc-register --config /etc/bpc-enroll/server.toml\" {KEY}")
        );
        let from = register_key_line("/usr/bin/bpc-register", "/c.toml", KEY, Some("10.0.0.0/8")).unwrap();
        assert!(from.starts_with("from=\"10.0.0.0/8\",restrict,command="), "{from}");
    }

    #[test]
    fn paths_with_shell_characters_and_bad_from_lists_are_refused() {
        let error = register_key_line("/opt/my bpc/bpc-register", "/c.toml", KEY, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the program's path `/opt/my bpc/bpc-register` holds a space or a shell character; install \
             bpc-register and its configuration at plain paths"
        );
        let error = register_key_line("/usr/bin/bpc-register", "/c.toml", KEY, Some("a\" b")).unwrap_err();
        assert_eq!(error.to_string(), "`a\" b` is not a comma-separated list of addresses or patterns for from=");
    }

    #[test]
    fn merge_adds_the_line_and_keeps_every_other_line() {
        let existing = "# BackupPC's own\nssh-ed25519 AAAAother admin@laptop\n\ncommand=\"x\" ssh-rsa AAAArsa z\n";
        assert_eq!(merge(existing, &line()).unwrap(), format!("{existing}{}\n", line()));
        assert_eq!(merge("", &line()).unwrap(), format!("{}\n", line()));
        assert_eq!(merge("ssh-ed25519 AAAAother", &line()).unwrap(), format!("ssh-ed25519 AAAAother\n{}\n", line()));
    }

    #[test]
    fn merge_replaces_older_lines_for_the_same_key_and_is_idempotent() {
        let old = format!("command=\"/usr/local/bin/bpc-register\" {KEY}");
        let existing = format!("ssh-ed25519 AAAAother a\n{old}\n{KEY}\n");
        let merged = merge(&existing, &line()).unwrap();
        assert_eq!(merged, format!("ssh-ed25519 AAAAother a\n{}\n", line()));
        assert_eq!(merge(&merged, &line()), None);
        let twice = format!("{}\n{}\n", line(), line());
        assert_eq!(merge(&twice, &line()).unwrap(), format!("{}\n", line()));
    }
}
