//! The client's own SSH host keys, sent for pinning (protocol 2).
//!
//! A client that has host keys to send says how many in its request
//! (`linux:alice proto=2 host-keys=2`). The server asks for them on the same
//! channel when it is ready to read them, and the client sends one public
//! key per line:
//!
//! ```text
//! S: host-keys 2
//! C: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...
//! C: ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI...
//! ```
//!
//! A server that does not know the option ignores it and never asks; a
//! client that sends no option is never asked. Each line is checked here:
//! an OpenSSH public key of a type sshd serves as a host key, nothing else.

use ssh_key::{Algorithm, HashAlg, PublicKey};

/// The request option that announces the host keys.
pub const HOST_KEYS_OPTION: &str = "host-keys";
/// The most host keys a client may send (OpenSSH serves one per type).
pub const MAX_HOST_KEYS: u32 = 8;
/// The longest key line accepted: a 16384-bit RSA key is about 2,800 bytes.
pub const MAX_HOST_KEY_LINE: usize = 4096;
/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A checked host public key: its type and key data, without a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    key: PublicKey,
}

/// Why a key line is not a host key the server pins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    /// The client announced more keys than are accepted.
    #[error("too many host keys ({0}; at most {MAX_HOST_KEYS})")]
    TooMany(u32),
    /// The line is longer than [`MAX_HOST_KEY_LINE`].
    #[error("host key line too long ({0} bytes; at most {MAX_HOST_KEY_LINE})")]
    TooLong(usize),
    /// The line holds a control character or is not ASCII.
    #[error("host key line holds a control character or is not ASCII")]
    NotText,
    /// The line is not `TYPE BASE64 [COMMENT]`.
    #[error("not an OpenSSH public key (expected `TYPE BASE64`)")]
    NotAKey,
    /// A private key was sent.
    #[error("a private key was sent; send the host's public key (.pub) only")]
    PrivateKey,
    /// A key type sshd does not serve as a host key, or a certificate.
    #[error("host key type `{0}` is not accepted (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa)")]
    UnknownType(String),
    /// An RSA key too short to be safe.
    #[error("RSA host key of {0} bits is too short (at least {MIN_RSA_BITS})")]
    ShortRsa(usize),
    /// The client left before sending every key it announced.
    #[error("the client sent {got} of the {announced} host keys it announced")]
    Missing {
        /// How many were announced.
        announced: u32,
        /// How many came.
        got: usize,
    },
}

impl HostKey {
    /// Parses one key line as a client sends it (its newline, if any, is
    /// the end of the line; a comment after the key is dropped).
    pub fn parse(line: &[u8]) -> Result<HostKey, HostKeyError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.len() > MAX_HOST_KEY_LINE {
            return Err(HostKeyError::TooLong(line.len()));
        }
        if line.windows(PRIVATE.len()).any(|window| window == PRIVATE) {
            return Err(HostKeyError::PrivateKey);
        }
        let text = std::str::from_utf8(line).map_err(|_| HostKeyError::NotText)?;
        if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(HostKeyError::NotText);
        }
        let mut fields = text.split(' ');
        let (Some(kind), Some(data)) = (fields.next(), fields.next()) else { return Err(HostKeyError::NotAKey) };
        if kind.is_empty() || data.is_empty() {
            return Err(HostKeyError::NotAKey);
        }
        // The type comes first: a line that starts with options
        // (`restrict ssh-ed25519 ...`) names no known type and stops here.
        if !ACCEPTED_TYPES.contains(&kind) {
            return Err(HostKeyError::UnknownType(kind.to_owned()));
        }
        let key = PublicKey::from_openssh(&format!("{kind} {data}")).map_err(|_| HostKeyError::NotAKey)?;
        // The type named in the line must be the one inside the key data.
        if key.algorithm().as_str() != kind {
            return Err(HostKeyError::NotAKey);
        }
        if let Some(bits) = rsa_bits(&key)
            && bits < MIN_RSA_BITS
        {
            return Err(HostKeyError::ShortRsa(bits));
        }
        Ok(HostKey { key })
    }

    /// The key's line: `TYPE BASE64`, with no comment.
    pub fn render(&self) -> String {
        format!("{} {}", self.key.algorithm().as_str(), self.base64())
    }

    /// The key's type, such as `ssh-ed25519`.
    pub fn kind(&self) -> String {
        self.key.algorithm().as_str().to_owned()
    }

    /// The SHA256 fingerprint, as `ssh-keygen -l` prints it (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The key data in base64, as in an OpenSSH public key line.
    fn base64(&self) -> String {
        let text = self.key.to_openssh().unwrap_or_default();
        text.split(' ').nth(1).unwrap_or_default().to_owned()
    }
}

/// What the armour of every private key file OpenSSH writes says.
const PRIVATE: &[u8] = b"PRIVATE KEY";

/// The types accepted: those OpenSSH's sshd serves as host keys today.
const ACCEPTED_TYPES: &[&str] =
    &["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

/// The size of an RSA key's modulus in bits; `None` for other types.
fn rsa_bits(key: &PublicKey) -> Option<usize> {
    if key.algorithm() != (Algorithm::Rsa { hash: None }) {
        return None;
    }
    let rsa = key.key_data().rsa()?;
    let bytes = rsa.n.as_positive_bytes().unwrap_or_default();
    let leading = bytes.first().map_or(8, |b| b.leading_zeros() as usize);
    Some(bytes.len() * 8 - leading.min(bytes.len() * 8))
}

/// Checks a count announced with `host-keys=N`.
pub fn check_count(announced: u32) -> Result<(), HostKeyError> {
    if announced > MAX_HOST_KEYS { Err(HostKeyError::TooMany(announced)) } else { Ok(()) }
}

/// Parses the lines a client sent after being asked for `announced` keys.
/// Duplicates are dropped, so each key is pinned once.
pub fn parse_host_keys(announced: u32, lines: &[Vec<u8>]) -> Result<Vec<HostKey>, HostKeyError> {
    check_count(announced)?;
    if lines.len() < announced as usize {
        return Err(HostKeyError::Missing { announced, got: lines.len() });
    }
    let mut keys: Vec<HostKey> = Vec::new();
    for line in lines {
        let key = HostKey::parse(line)?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// The server's line asking for `count` keys, with its newline.
pub fn render_host_keys_asked(count: u32) -> String {
    format!("{HOST_KEYS_OPTION} {count}\n")
}

/// How many keys a server line asks for, if it is such a line.
pub fn parse_host_keys_asked(line: &str) -> Option<u32> {
    line.trim_end_matches(['\n', '\r']).strip_prefix(HOST_KEYS_OPTION)?.strip_prefix(' ')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOjHEgPPWML3UMMAud1JqyVNZC+DeLG8kIXd8twC5siD";
    // Its fingerprint as `ssh-keygen -lf` prints it.
    const ED25519_SHA256: &str = "SHA256:/H0EQRhPs6E8Y3S2xeHH1JQjYHZ6QGAydjHmxjaXZjM";

    const SHORT_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDpiHtUaVpR06SrBvb3l7WXrIzIcv9BBV3YveWlGtcSCN5zm+RU0wL9HuAZjlZCC1jQHKh9xsbdSdV4v+z9f2U8qXBjAZyD+cRlmcQtthc0CiSlZ0EdoC7AXadJFBfDS1sjanHFjH0goH1POoDhCms7IipK2Ngv60yyLkYdCT5N0Q==";

    fn refused(line: &[u8]) -> HostKeyError {
        HostKey::parse(line).unwrap_err()
    }

    #[test]
    fn reads_an_ed25519_key_and_drops_its_comment() {
        let key = HostKey::parse(format!("{ED25519} root@pc-alice\n").as_bytes()).unwrap();
        assert_eq!(key.render(), ED25519);
        assert_eq!(key.kind(), "ssh-ed25519");
        assert_eq!(key.fingerprint(), ED25519_SHA256);
    }

    #[test]
    fn refuses_what_is_not_a_key() {
        assert_eq!(refused(b"hello"), HostKeyError::NotAKey);
        assert_eq!(refused(b"ssh-ed25519 !!!notbase64"), HostKeyError::NotAKey);
        assert_eq!(refused(b""), HostKeyError::NotAKey);
        assert_eq!(refused(b"ssh-ed25519 "), HostKeyError::NotAKey);
    }

    #[test]
    fn refuses_a_key_whose_data_is_of_another_type() {
        let data = ED25519.split(' ').nth(1).unwrap();
        assert_eq!(refused(format!("ecdsa-sha2-nistp256 {data}").as_bytes()), HostKeyError::NotAKey);
    }

    #[test]
    fn refuses_an_unknown_type() {
        assert_eq!(refused(b"ssh-dss AAAAB3NzaC1kc3M="), HostKeyError::UnknownType("ssh-dss".into()));
        assert_eq!(
            refused(b"ssh-ed25519-cert-v01@openssh.com AAAA"),
            HostKeyError::UnknownType("ssh-ed25519-cert-v01@openssh.com".into())
        );
        assert_eq!(
            refused(b"sk-ssh-ed25519@openssh.com AAAA"),
            HostKeyError::UnknownType("sk-ssh-ed25519@openssh.com".into())
        );
    }

    #[test]
    fn refuses_a_private_key() {
        assert_eq!(refused(b"-----BEGIN OPENSSH PRIVATE KEY-----"), HostKeyError::PrivateKey);
        assert_eq!(refused(b"b3BlbnNzaC1rZXktdjEAAAAA -----END OPENSSH PRIVATE KEY-----"), HostKeyError::PrivateKey);
    }

    #[test]
    fn refuses_a_key_with_options() {
        assert_eq!(refused(format!("restrict {ED25519}").as_bytes()), HostKeyError::UnknownType("restrict".into()));
        assert_eq!(
            refused(format!("@cert-authority *.example.org {ED25519}").as_bytes()),
            HostKeyError::UnknownType("@cert-authority".into())
        );
        assert_eq!(
            refused(format!("pc-bob.example.org {ED25519}").as_bytes()),
            HostKeyError::UnknownType("pc-bob.example.org".into())
        );
    }

    #[test]
    fn refuses_a_long_line_and_control_characters() {
        let long = format!("{ED25519} {}", "x".repeat(MAX_HOST_KEY_LINE));
        assert_eq!(refused(long.as_bytes()), HostKeyError::TooLong(long.len()));
        assert_eq!(refused(format!("{ED25519}\r").as_bytes()), HostKeyError::NotText);
        assert_eq!(refused(format!("{ED25519}\nssh-rsa AAAA").as_bytes()), HostKeyError::NotText);
        assert_eq!(refused(format!("{ED25519}\tx").as_bytes()), HostKeyError::NotText);
        assert_eq!(refused(b"ssh-ed25519 \xff"), HostKeyError::NotText);
    }

    #[test]
    fn refuses_a_short_rsa_key() {
        assert_eq!(refused(SHORT_RSA.as_bytes()), HostKeyError::ShortRsa(1024));
    }

    #[test]
    fn refuses_too_many_or_missing_keys() {
        assert_eq!(check_count(MAX_HOST_KEYS), Ok(()));
        assert_eq!(check_count(MAX_HOST_KEYS + 1), Err(HostKeyError::TooMany(MAX_HOST_KEYS + 1)));
        assert_eq!(parse_host_keys(1000, &[]), Err(HostKeyError::TooMany(1000)));
        assert_eq!(
            parse_host_keys(2, &[ED25519.as_bytes().to_vec()]),
            Err(HostKeyError::Missing { announced: 2, got: 1 })
        );
    }

    #[test]
    fn pins_each_key_once() {
        let line = ED25519.as_bytes().to_vec();
        let keys = parse_host_keys(2, &[line.clone(), line]).unwrap();
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn the_servers_question_reads_back() {
        assert_eq!(render_host_keys_asked(3), "host-keys 3\n");
        assert_eq!(parse_host_keys_asked("host-keys 3\n"), Some(3));
        assert_eq!(parse_host_keys_asked("host-keys x\n"), None);
        assert_eq!(parse_host_keys_asked("success\n"), None);
    }

    proptest! {
        #[test]
        fn parser_never_panics(input in any::<Vec<u8>>()) {
            let _ = HostKey::parse(&input);
        }
    }
}
