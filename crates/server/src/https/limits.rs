//! Failed authentications counted per client address, for `429`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses tracked at once; past it, expired entries go first,
/// then arbitrary ones (fail2ban still sees every failure in the log).
const MAX_TRACKED: usize = 65_536;

/// Failed authentications per client address within a sliding window.
#[derive(Debug)]
pub(crate) struct FailedAuth {
    limit: usize,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailedAuth {
    /// At most `limit` failures within `window`.
    pub(crate) fn new(limit: u64, window: Duration) -> FailedAuth {
        FailedAuth { limit: usize::try_from(limit).unwrap_or(usize::MAX), window, seen: Mutex::new(HashMap::new()) }
    }

    /// When `ip` has failed `limit` times within the window: how long until
    /// the oldest of those failures leaves it.
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let times = seen.get_mut(&ip)?;
        self.expire(times, now);
        if times.len() < self.limit {
            return None;
        }
        let oldest = *times.front()?;
        Some(self.window.saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// Counts one failure of `ip`; returns how many are in the window now.
    pub(crate) fn record(&self, ip: IpAddr, now: Instant) -> usize {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&ip) {
            seen.retain(|_, times| times.back().is_some_and(|last| now.saturating_duration_since(*last) < self.window));
            if seen.len() >= MAX_TRACKED
                && let Some(any) = seen.keys().next().copied()
            {
                seen.remove(&any);
            }
        }
        let times = seen.entry(ip).or_default();
        self.expire(times, now);
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
        times.len()
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|first| now.saturating_duration_since(*first) >= self.window) {
            times.pop_front();
        }
    }
}

/// Connections open per client address, each counted while its
/// [`ConnectionSlot`] lives.
#[derive(Debug)]
pub(crate) struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted for its address; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct ConnectionSlot<'a> {
    counts: &'a PerAddress,
    ip: IpAddr,
}

impl PerAddress {
    /// At most `limit` connections per address.
    pub(crate) fn new(limit: u64) -> PerAddress {
        PerAddress { limit: usize::try_from(limit).unwrap_or(usize::MAX), open: Mutex::new(HashMap::new()) }
    }

    /// Counts a connection from `ip`, unless `ip` has `limit` open already.
    pub(crate) fn open(&self, ip: IpAddr) -> Option<ConnectionSlot<'_>> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot { counts: self, ip })
    }
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_its_connections_and_each_closed_one_frees_a_place() {
        let counts = PerAddress::new(2);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let first = counts.open(ip).unwrap();
        let _second = counts.open(ip).unwrap();
        assert!(counts.open(ip).is_none());
        assert!(counts.open("192.0.2.8".parse().unwrap()).is_some());
        drop(first);
        assert!(counts.open(ip).is_some());
    }

    #[test]
    fn an_address_is_blocked_at_the_limit_until_its_oldest_failure_expires() {
        let limits = FailedAuth::new(3, Duration::from_secs(600));
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for (second, count) in [(0, 1), (100, 2)] {
            assert_eq!(limits.record(ip, start + Duration::from_secs(second)), count);
            assert_eq!(limits.blocked(ip, start + Duration::from_secs(second)), None);
        }
        assert_eq!(limits.record(ip, start + Duration::from_secs(200)), 3);
        assert_eq!(limits.blocked(ip, start + Duration::from_secs(200)), Some(Duration::from_secs(400)));
        assert_eq!(limits.blocked(other, start + Duration::from_secs(200)), None);
        // The first failure leaves the window at 600 s.
        assert_eq!(limits.blocked(ip, start + Duration::from_secs(600)), None);
        assert_eq!(limits.record(ip, start + Duration::from_secs(650)), 3);
        assert_eq!(limits.blocked(ip, start + Duration::from_secs(650)), Some(Duration::from_secs(50)));
    }
}
