//! Asking the client who it is (protocol 2), whatever carries the exchange.

use protocol::auth::{
    AuthError, AuthResponse, MAX_AUTH_LINE, parse_auth_response, render_auth_failed, render_auth_required,
};
use protocol::hostkeys::{MAX_HOST_KEY_LINE, render_host_keys_asked};
use std::io::{BufRead, Read, Write};

/// What came back from a challenge.
#[derive(Debug)]
pub enum Challenge {
    /// The client answered (well or badly).
    Answer(Result<AuthResponse, AuthError>),
    /// The client is gone, or cannot be asked at all.
    Gone,
    /// The challenge is the answer: the client asks again, with its
    /// credentials, in a request of its own (HTTP's `401`). Nothing failed yet.
    Deferred,
}

/// The channel a challenge goes through: sshd's stdin and stdout for the
/// forced command, a direct call for the in-process `file://` transport,
/// the request's own headers and form for `https://` ([`HttpChallenger`]).
pub trait Challenger {
    /// Sends `auth-required PLAIN <realmstring>` and waits for the answer.
    fn ask(&mut self, realmstring: &str) -> Challenge;
    /// Says that the last answer was rejected, before asking again.
    fn failed(&mut self, reason: &str);
    /// Sends `host-keys N` and reads the `count` key lines that answer it,
    /// each as it came (no more than [`MAX_HOST_KEY_LINE`] and a byte);
    /// fewer when the client leaves or has no more.
    fn host_keys(&mut self, count: u32) -> Vec<Vec<u8>>;
}

/// For callers that cannot be asked anything.
#[derive(Debug, Default)]
pub struct NoChallenger;

impl Challenger for NoChallenger {
    fn ask(&mut self, _realmstring: &str) -> Challenge {
        Challenge::Gone
    }

    fn failed(&mut self, _reason: &str) {}

    fn host_keys(&mut self, _count: u32) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

/// The challenge over HTTP, where a request cannot be asked anything: the
/// credentials are the request's `Authorization` header, answered once; any
/// further question defers to a new request (`401`). The host keys are the
/// form's `host-key` fields.
#[derive(Debug, Default)]
pub struct HttpChallenger {
    credentials: Option<Result<AuthResponse, AuthError>>,
    host_keys: Vec<Vec<u8>>,
    rejected: bool,
}

impl HttpChallenger {
    /// A challenger answering with `credentials` (the `Authorization` header
    /// read, if one came) and the form's `host_keys`.
    pub fn new(credentials: Option<Result<AuthResponse, AuthError>>, host_keys: Vec<Vec<u8>>) -> HttpChallenger {
        HttpChallenger { credentials, host_keys, rejected: false }
    }

    /// Whether the credentials sent were refused (a failed authentication).
    pub fn rejected(&self) -> bool {
        self.rejected
    }
}

impl Challenger for HttpChallenger {
    fn ask(&mut self, _realmstring: &str) -> Challenge {
        match self.credentials.take() {
            Some(answer) => Challenge::Answer(answer),
            None => Challenge::Deferred,
        }
    }

    fn failed(&mut self, _reason: &str) {
        self.rejected = true;
    }

    fn host_keys(&mut self, count: u32) -> Vec<Vec<u8>> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        std::mem::take(&mut self.host_keys).into_iter().take(count).collect()
    }
}

/// The challenge as lines on a byte stream (the SSH channel).
pub struct LineChallenger<R, W> {
    reader: R,
    writer: W,
}

impl<R: BufRead, W: Write> LineChallenger<R, W> {
    /// Challenges on `reader` and `writer`.
    pub fn new(reader: R, writer: W) -> LineChallenger<R, W> {
        LineChallenger { reader, writer }
    }

    fn send(&mut self, line: &str) -> bool {
        self.writer.write_all(line.as_bytes()).and_then(|()| self.writer.flush()).is_ok()
    }
}

impl<R: BufRead, W: Write> Challenger for LineChallenger<R, W> {
    fn ask(&mut self, realmstring: &str) -> Challenge {
        if !self.send(&render_auth_required(realmstring)) {
            return Challenge::Gone;
        }
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_AUTH_LINE + 1).unwrap_or(u64::MAX);
        match (&mut self.reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => Challenge::Gone,
            Ok(_) => Challenge::Answer(parse_auth_response(&line)),
        }
    }

    fn failed(&mut self, reason: &str) {
        self.send(&render_auth_failed(reason));
    }

    fn host_keys(&mut self, count: u32) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        if !self.send(&render_host_keys_asked(count)) {
            return lines;
        }
        let limit = u64::try_from(MAX_HOST_KEY_LINE + 2).unwrap_or(u64::MAX);
        for _ in 0..count {
            let mut line = Vec::new();
            match (&mut self.reader).take(limit).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => lines.push(line),
            }
        }
        lines
    }
}
