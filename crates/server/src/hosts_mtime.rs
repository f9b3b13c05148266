//! The modification time of BackupPC's `hosts`, which is how BackupPC learns
//! that the file changed.
//!
//! BackupPC 4's daemon keeps the whole-second mtime of the `hosts` it last
//! read and reads the file again only when that number differs
//! (`$Info->{HostsModTime} == $bpc->HostsMTime()` in `HostsUpdate`, which
//! `BackupPC_serverMesg server reload`, SIGHUP and the hourly wakeup all go
//! through); the SCGI web server does the same. A change made in the same
//! second as the previous one keeps the number, so a daemon that read the
//! previous version would not see it.
//!
//! Three rules keep every change seen without letting the mtime run ahead
//! of the clock ([`after_change`]):
//! - a change never moves the mtime back to an earlier second, so every
//!   earlier version's second is at most the current one's;
//! - a change made in the same second as the one before moves the mtime one
//!   second on, to a number no earlier version had, at most one second ahead
//!   of the clock; BackupPC, told to reload, sees it at once;
//! - a change made when the mtime is already that one second ahead keeps it
//!   and is *unsettled*: once the clock has passed that second, [`settle`]
//!   moves the mtime to a later second (the current one, or one past the
//!   file's if it changed again meanwhile) and the caller tells BackupPC to
//!   reload. Only one settler waits at a time, under its own lock; it takes
//!   BackupPC's `LOCK` for the move itself.
//!
//! The mtime is therefore at most one second ahead of the clock after a
//! change, two after a settle that met a change of the same second, however
//! many registrations arrive in one second.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest a settler waits for the clock to pass the mtime: longer means
/// the file's mtime was set ahead of the clock by something else.
pub const SETTLE_WAIT_LIMIT: Duration = Duration::from_secs(3);

/// Whole seconds since the epoch, as Perl's `stat` gives them.
pub fn whole_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs().saturating_add(1)).unwrap_or(i64::MAX),
    }
}

/// The mtime of `path`, `None` when it does not exist.
pub fn mtime_of(path: &Path) -> io::Result<Option<SystemTime>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.modified()?)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Whether a change needs settling: BackupPC may not tell it from the version before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The new version's second is later than every earlier version's.
    Seen,
    /// The new version shares its second with an earlier one: [`settle`] must
    /// move the mtime once the clock has passed that second.
    Unsettled,
}

/// Called on the new `hosts` just put in place (its mtime is the clock's),
/// with the previous version's mtime: moves the mtime to the next second
/// when the previous version has the same one, keeps it from going back
/// when the previous version's is ahead, and says whether the change can be
/// told from the previous version by its second.
pub fn after_change(path: &Path, previous: Option<SystemTime>) -> io::Result<Change> {
    let Some(previous) = previous else { return Ok(Change::Seen) };
    let current = fs::metadata(path)?.modified()?;
    let (current_second, previous_second) = (whole_seconds(current), whole_seconds(previous));
    if current_second > previous_second {
        return Ok(Change::Seen);
    }
    // Not through a link put in its place, nor a FIFO that would hold
    // BackupPC's lock.
    let file = files::open_regular(path, File::options().write(true))?;
    if current_second == previous_second {
        let next = u64::try_from(previous_second + 1).unwrap_or(0);
        file.set_modified(UNIX_EPOCH + Duration::from_secs(next))?;
        return Ok(Change::Seen);
    }
    // The previous version's mtime is ahead of the clock (moved on by the
    // rule above, or set by hand); going back could meet a second BackupPC
    // stored, so stay on it and let the settler move on when it may.
    file.set_modified(previous)?;
    Ok(Change::Unsettled)
}

/// What [`settle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The mtime moved to a second no earlier version had: BackupPC must be
    /// told to reload.
    Moved,
    /// Another settler is waiting and will do it.
    OtherSettler,
    /// Nothing to do: `hosts` is gone.
    NoHosts,
}

/// Waits until the clock has passed the second of `hosts`' mtime, then moves
/// the mtime to the current second (one past the file's if the file changed
/// again meanwhile), under `take_backuppc_lock`. `settle_lock` is the
/// settlers' own lock file, already open: when another settler holds it,
/// that one will settle every change made before it finishes, so this one
/// returns at once. The settlers' lock is released while BackupPC's is held,
/// so that a change made after a settler looked is settled by the next one,
/// and a writer that finds the settlers' lock held after its change needs
/// no settler of its own: the one waiting takes `LOCK` after that change.
pub fn settle<L>(
    hosts: &Path,
    settle_lock: File,
    take_backuppc_lock: impl FnOnce() -> Result<L, crate::registry::RegistryError>,
) -> Result<Settled, crate::registry::RegistryError> {
    use crate::registry::RegistryError;
    let fail = |action, source| RegistryError::Hosts { path: hosts.to_owned(), action, source };
    match settle_lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Settled::OtherSettler),
        Err(std::fs::TryLockError::Error(error)) => return Err(fail("take the settlers' lock", error)),
    }
    let Some(mtime) = mtime_of(hosts).map_err(|e| fail("examine", e))? else { return Ok(Settled::NoHosts) };
    let wait = seconds_until_past(mtime, SystemTime::now());
    if wait > SETTLE_WAIT_LIMIT {
        let source = io::Error::other(format!(
            "its modification time is {} s ahead of the clock; BackupPC sees the change when the clock passes it",
            wait.as_secs()
        ));
        return Err(fail("settle the modification time", source));
    }
    std::thread::sleep(wait);
    let backuppc_lock = take_backuppc_lock()?;
    let Some(current) = mtime_of(hosts).map_err(|e| fail("examine", e))? else { return Ok(Settled::NoHosts) };
    let now = SystemTime::now();
    let target = if whole_seconds(current) < whole_seconds(now) {
        now
    } else {
        // Changed again in this very second: one past it, at most one second
        // ahead of the clock, and no later change can go back below it.
        UNIX_EPOCH + Duration::from_secs(u64::try_from(whole_seconds(current) + 1).unwrap_or(0))
    };
    files::open_regular(hosts, File::options().write(true))
        .and_then(|file| file.set_modified(target))
        .map_err(|e| fail("settle", e))?;
    drop(settle_lock);
    drop(backuppc_lock);
    Ok(Settled::Moved)
}

/// How long from `now` until the clock's whole second is past `mtime`'s.
fn seconds_until_past(mtime: SystemTime, now: SystemTime) -> Duration {
    let next_second = whole_seconds(mtime).saturating_add(1);
    let Ok(next_second) = u64::try_from(next_second) else { return Duration::ZERO };
    (UNIX_EPOCH + Duration::from_secs(next_second)).duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_round_down_as_perls_stat() {
        assert_eq!(whole_seconds(UNIX_EPOCH + Duration::from_millis(1_999)), 1);
        assert_eq!(whole_seconds(UNIX_EPOCH - Duration::from_millis(500)), -1);
    }

    #[test]
    fn the_wait_ends_at_the_next_second() {
        let mtime = UNIX_EPOCH + Duration::from_millis(10_300);
        assert_eq!(seconds_until_past(mtime, UNIX_EPOCH + Duration::from_millis(10_800)), Duration::from_millis(200));
        assert_eq!(seconds_until_past(mtime, UNIX_EPOCH + Duration::from_secs(11)), Duration::ZERO);
        assert_eq!(seconds_until_past(mtime, UNIX_EPOCH + Duration::from_secs(9)), Duration::from_secs(2));
    }

    #[test]
    fn a_change_moves_on_one_second_at_most_and_otherwise_is_unsettled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let mtime = || fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, "x").unwrap();
        let now = mtime();
        assert_eq!(after_change(&path, None).unwrap(), Change::Seen);
        assert_eq!(after_change(&path, Some(now - Duration::from_secs(2))).unwrap(), Change::Seen);
        assert_eq!(mtime(), now, "a change in a later second keeps the clock's mtime");
        assert_eq!(after_change(&path, Some(now)).unwrap(), Change::Seen);
        assert_eq!(whole_seconds(mtime()), whole_seconds(now) + 1);
        let moved_on = mtime();
        fs::File::options().write(true).open(&path).unwrap().set_modified(now).unwrap();
        assert_eq!(after_change(&path, Some(moved_on)).unwrap(), Change::Unsettled);
        assert_eq!(mtime(), moved_on, "the mtime went back");
    }
}
