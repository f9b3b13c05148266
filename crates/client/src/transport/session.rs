//! The client's side of a challenge, whatever carries it: which realm the
//! cache is keyed by, which credentials to send, what the server's verdict
//! teaches the credential chain, and how many times a server may ask.

use super::TransportError;
use crate::credentials::Authenticator;
use protocol::Secret;
use protocol::auth::{
    MAX_AUTH_LINE, client_realmstring, parse_auth_failed, parse_auth_required, render_cancel, render_plain,
};
use protocol::hostkeys::parse_host_keys_asked;
use std::io::{BufRead, Read, Write};

/// The longest answer read from a server; real ones are under 1 KiB.
const MAX_ANSWER: u64 = 64 * 1024;
/// How many times one exchange may ask for credentials: the server's own
/// limit, so a server that asks again and again is cut off.
pub const MAX_CHALLENGES: usize = protocol::auth::MAX_ATTEMPTS;

/// What to answer a challenge with.
#[derive(Debug)]
pub enum Reply {
    /// SASL PLAIN credentials.
    Plain {
        /// The name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// Nothing left to try.
    Cancel,
}

impl Reply {
    /// The reply's line on the wire.
    pub fn render(&self) -> String {
        match self {
            Reply::Plain { username, password } => render_plain(username, password),
            Reply::Cancel => render_cancel().to_owned(),
        }
    }
}

/// The client's side of one exchange's challenges. The realm that keys the
/// cache is always the client's own `<origin>` and the server's realm text,
/// so no server can ask for another one's password.
pub struct ChallengeSession<'a> {
    auth: &'a mut dyn Authenticator,
    origin: String,
    realm: Option<String>,
    answered: bool,
    challenges: usize,
    failures: usize,
}

impl<'a> ChallengeSession<'a> {
    /// A session for the server at `origin` (`scheme://host:port`).
    pub fn new(origin: &str, auth: &'a mut dyn Authenticator) -> ChallengeSession<'a> {
        ChallengeSession { auth, origin: origin.to_owned(), realm: None, answered: false, challenges: 0, failures: 0 }
    }

    /// The server asked (`auth-required` with `server_realmstring`): the
    /// reply, or an error when it asked too often or no credential can be had.
    pub fn asked(&mut self, server_realmstring: &str) -> Result<Reply, TransportError> {
        self.challenges += 1;
        self.answered = false;
        if self.challenges > MAX_CHALLENGES {
            return Err(TransportError::Unreachable {
                server: self.origin.clone(),
                reason: format!("the server asked for credentials more than {MAX_CHALLENGES} times; giving up"),
            });
        }
        let realm = client_realmstring(&self.origin, server_realmstring);
        let answer = self.auth.credentials(&realm);
        self.realm = Some(realm);
        match answer? {
            Some((username, password)) => {
                self.answered = true;
                Ok(Reply::Plain { username, password })
            }
            None => Ok(Reply::Cancel),
        }
    }

    /// Whether the server has asked as often as it may: a transport that
    /// hears another request for credentials ends the exchange instead.
    pub fn exhausted(&self) -> bool {
        self.challenges >= MAX_CHALLENGES
    }

    /// The server rejected the last credentials; an error when it says so
    /// more often than it asked (a server streaming `auth-failed` lines
    /// would otherwise keep the client looping).
    pub fn failed(&mut self) -> Result<(), TransportError> {
        self.failures += 1;
        if self.failures > self.challenges {
            return Err(TransportError::Unreachable {
                server: self.origin.clone(),
                reason: "the server rejected credentials it had not asked for; giving up".into(),
            });
        }
        if let (true, Some(realm)) = (self.answered, &self.realm) {
            self.auth.rejected(realm);
        }
        self.answered = false;
        Ok(())
    }

    /// The server's final answer came: only a registration made proves the
    /// password, a server fault after the challenge says nothing about it.
    pub fn finished(&mut self, success: bool) {
        if let (true, Some(realm), true) = (self.answered, &self.realm, success) {
            self.auth.accepted(realm);
        }
        self.answered = false;
    }
}

/// The client's side of the exchange on a byte stream: answers
/// `auth-required` lines, notes `auth-failed` ones, sends `host_keys` when
/// asked (`host-keys N`, once), and returns the answer that follows. `auth`
/// learns whether its last credentials were accepted.
pub fn converse(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    origin: &str,
    host_keys: &[String],
    auth: &mut dyn Authenticator,
) -> Result<Vec<u8>, TransportError> {
    let lost = |e: std::io::Error| TransportError::Unreachable {
        server: origin.to_owned(),
        reason: match e.kind() {
            std::io::ErrorKind::TimedOut => {
                "the server did not finish its answer in time (timeout in client.toml)".into()
            }
            _ => e.to_string(),
        },
    };
    let mut session = ChallengeSession::new(origin, auth);
    let mut keys_sent = false;
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_AUTH_LINE + 1).unwrap_or(u64::MAX);
        reader.take(limit).read_until(b'\n', &mut line).map_err(lost)?;
        let text = String::from_utf8_lossy(&line).into_owned();
        if let Some(asked) = parse_auth_required(&text) {
            let reply = match session.asked(asked) {
                Ok(reply) => reply,
                Err(error) => {
                    let _ = writer.write_all(render_cancel().as_bytes()).and_then(|()| writer.flush());
                    return Err(error);
                }
            };
            writer.write_all(reply.render().as_bytes()).and_then(|()| writer.flush()).map_err(lost)?;
            continue;
        }
        if let Some(count) = parse_host_keys_asked(&text)
            && !keys_sent
        {
            keys_sent = true;
            let lines: String = host_keys.iter().take(count as usize).map(|line| format!("{line}\n")).collect();
            writer.write_all(lines.as_bytes()).and_then(|()| writer.flush()).map_err(lost)?;
            continue;
        }
        if parse_auth_failed(&text).is_some() {
            session.failed()?;
            continue;
        }
        session.finished(line.starts_with(b"success"));
        reader.take(MAX_ANSWER).read_to_end(&mut line).map_err(lost)?;
        return Ok(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::CredentialError;

    /// Always has the same answer, and counts what it was told.
    #[derive(Default)]
    struct Always {
        asked: usize,
        accepted: usize,
    }

    impl Authenticator for Always {
        fn credentials(&mut self, _realm: &str) -> Result<Option<(String, protocol::Secret)>, CredentialError> {
            self.asked += 1;
            Ok(Some(("alice".into(), protocol::Secret::new("pw"))))
        }
        fn rejected(&mut self, _realm: &str) {}
        fn accepted(&mut self, _realm: &str) {
            self.accepted += 1;
        }
    }

    #[test]
    fn a_server_that_asks_again_and_again_is_cut_off() {
        let server = "auth-required PLAIN Example\n".repeat(10) + "success\nkey: x\n";
        let mut reader = std::io::Cursor::new(server.into_bytes());
        let mut sent = Vec::new();
        let mut auth = Always::default();
        let error = converse(&mut reader, &mut sent, "ssh://b:22", &[], &mut auth).unwrap_err();
        assert!(error.to_string().contains("more than 3 times"), "{error}");
        assert_eq!(auth.asked, MAX_CHALLENGES);
        let sent = String::from_utf8(sent).unwrap();
        assert_eq!(sent.lines().filter(|l| l.starts_with("PLAIN ")).count(), MAX_CHALLENGES);
        assert_eq!(sent.lines().last(), Some(render_cancel().trim_end()));
        assert_eq!(auth.accepted, 0);
    }

    #[test]
    fn a_server_that_streams_rejections_is_cut_off() {
        let server = "auth-required PLAIN Example\n".to_owned() + &"auth-failed no\n".repeat(10_000);
        let mut reader = std::io::Cursor::new(server.into_bytes());
        let mut auth = Always::default();
        let error = converse(&mut reader, &mut Vec::new(), "ssh://b:22", &[], &mut auth).unwrap_err();
        assert!(error.to_string().contains("had not asked for"), "{error}");
        assert_eq!(auth.asked, 1);
        let mut reader = std::io::Cursor::new(b"auth-failed no\nsuccess\n".to_vec());
        let error = converse(&mut reader, &mut Vec::new(), "ssh://b:22", &[], &mut Always::default()).unwrap_err();
        assert!(error.to_string().contains("had not asked for"), "{error}");
    }

    #[test]
    fn host_keys_are_sent_once_when_the_server_asks() {
        let server = "host-keys 1\nauth-required PLAIN Example\nsuccess\nkey: x\n";
        let mut reader = std::io::Cursor::new(server.as_bytes().to_vec());
        let mut sent = Vec::new();
        let keys = ["ssh-ed25519 AAAA".to_owned(), "ssh-rsa BBBB".to_owned()];
        let answer = converse(&mut reader, &mut sent, "ssh://b:22", &keys, &mut Always::default()).unwrap();
        assert_eq!(answer, b"success\nkey: x\n");
        let sent = String::from_utf8(sent).unwrap();
        assert_eq!(sent.lines().filter(|line| !line.starts_with("PLAIN ")).collect::<Vec<_>>(), ["ssh-ed25519 AAAA"]);
    }

    #[test]
    fn a_server_within_the_limit_gets_its_answers() {
        let server = "auth-required PLAIN Example\nauth-failed no\n".repeat(2)
            + "auth-required PLAIN Example\nsuccess\nkey: x\n";
        let mut reader = std::io::Cursor::new(server.into_bytes());
        let mut auth = Always::default();
        let answer = converse(&mut reader, &mut Vec::new(), "ssh://b:22", &[], &mut auth).unwrap();
        assert_eq!(answer, b"success\nkey: x\n");
        assert_eq!((auth.asked, auth.accepted), (3, 1));
    }
}
