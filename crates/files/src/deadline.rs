//! Reading from a peer that may never answer: every read waits at most for
//! what is left of one time budget, so a silent peer, or one that trickles a
//! byte now and then, cannot hold the reader longer than the budget in all.

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// A reader whose reads, added up, wait at most `budget` for data. Time spent
/// between reads (a person typing a password, say) does not count.
#[derive(Debug)]
pub struct DeadlineReader<R> {
    inner: R,
    budget: Duration,
}

impl<R: Read + AsFd> DeadlineReader<R> {
    /// Reads from `inner`, waiting at most `budget` in all.
    pub fn new(inner: R, budget: Duration) -> DeadlineReader<R> {
        DeadlineReader { inner, budget }
    }

    /// What is left of the budget.
    pub fn remaining(&self) -> Duration {
        self.budget
    }
}

impl<R: Read + AsFd> Read for DeadlineReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.budget.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the peer did not answer in time"));
            }
            let millis = u32::try_from(self.budget.as_millis()).unwrap_or(u32::MAX).max(1);
            let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
            let started = Instant::now();
            let ready = {
                let mut fds = [PollFd::new(self.inner.as_fd(), PollFlags::POLLIN)];
                poll(&mut fds, timeout)
            };
            self.budget = self.budget.saturating_sub(started.elapsed());
            match ready {
                Ok(0) => self.budget = Duration::ZERO,
                Ok(_) => return self.inner.read(buffer),
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_silent_peer_times_out_and_the_budget_is_spent() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let mut reader = DeadlineReader::new(ours, Duration::from_millis(50));
        let error = reader.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(reader.remaining(), Duration::ZERO);
        assert_eq!(reader.read(&mut [0u8; 8]).unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn data_and_the_end_of_the_stream_come_through() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(b"success\n").unwrap();
        drop(theirs);
        let mut reader = DeadlineReader::new(ours, Duration::from_secs(60));
        let mut text = Vec::new();
        reader.read_to_end(&mut text).unwrap();
        assert_eq!(text, b"success\n");
    }

    #[test]
    fn a_peer_that_answers_then_keeps_the_stream_open_is_cut_off() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(b"success\n").unwrap();
        let mut reader = DeadlineReader::new(ours, Duration::from_millis(50));
        let mut text = Vec::new();
        let error = reader.read_to_end(&mut text).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(text, b"success\n", "what came before the deadline is kept");
    }
}
