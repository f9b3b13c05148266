//! A registration (pinning the host's SSH keys, or replacing them), a
//! transfer or a removal interrupted anywhere leaves BackupPC's `hosts`,
//! the per-host configs, the pinned host keys and the journal as they were
//! before or as they are after, never in between: the real `bpc-register` runs under strace, which kills it (as
//! `kill -9` does) on the Nth call of each kind of system call that writes,
//! syncs, renames or removes, or makes that call fail as a full disk or a
//! failing disk would. The files are then read back, `hosts` as BackupPC's
//! own `HostInfoRead` reads it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

#[cfg(test)]
#[allow(dead_code, reason = "this test uses a part of the shared helpers")]
mod common;

use common::{bpc_register, connection_from};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const JOURNAL: &str = "registrations.jsonl";
const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOjHEgPPWML3UMMAud1JqyVNZC+DeLG8kIXd8twC5siD";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDTt3lufq2j0wdZqSHGyrQauiepseyzAbJ3TXpWCsuA6MDE5XKp8LpuuGsXnNiSPAblAKRwVXIyv4qzYmbIGOqI=";

/// What a registration may change, as BackupPC and a reader of the journal
/// see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    /// `hosts`, byte for byte (as text: the demo's is ASCII).
    hosts: String,
    /// host → owner, as `HostInfoRead` reads `hosts`.
    backuppc_sees: BTreeMap<String, String>,
    /// The per-host configs, by file name.
    host_configs: BTreeMap<String, String>,
    /// The pinned host keys (`HOST.known_hosts`), by file name.
    pins: BTreeMap<String, String>,
    /// The journal's records, their times left out.
    journal: Vec<serde_json::Value>,
    /// Files in the configuration folder, by name.
    names: Vec<String>,
}

impl State {
    fn read(dir: &Path) -> State {
        let conf = dir.join("backuppc");
        let backuppc_sees = testkit::backuppc::hosts_in(&conf);
        let journal = fs::read_to_string(dir.join(JOURNAL))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut record: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("journal line {line:?}: {e}"));
                let record_fields = record.as_object_mut().unwrap();
                record_fields.remove("time");
                // A fault injected into the reading of /etc/passwd names
                // root by number; the record is the same.
                if record_fields.get("admin").and_then(|a| a.as_str()) == Some("uid 0") {
                    record_fields.insert("admin".into(), "root".into());
                }
                record
            })
            .collect();
        let mut names: Vec<String> = fs::read_dir(&conf)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        State {
            hosts: fs::read_to_string(conf.join("hosts")).unwrap(),
            backuppc_sees,
            host_configs: names
                .iter()
                .filter(|name| name.ends_with(".example.org.pl"))
                .map(|name| (name.clone(), fs::read_to_string(conf.join(name)).unwrap()))
                .collect(),
            pins: names
                .iter()
                .filter(|name| name.ends_with(".example.org.known_hosts"))
                .map(|name| (name.clone(), fs::read_to_string(conf.join(name)).unwrap()))
                .collect(),
            journal,
            names,
        }
    }
}

/// A demo server folder, made once; each run works on a copy.
struct Pristine {
    dir: tempfile::TempDir,
}

impl Pristine {
    fn new() -> Pristine {
        let dir = tempfile::tempdir().unwrap();
        client::demo::run(Some(&dir.path().join("server")), "/usr/bin/bpc-enroll", "never").unwrap();
        Pristine { dir }
    }

    /// A fresh copy of the demo folder, always at the same path: the host's
    /// config names the folder.
    fn copy(&self) -> PathBuf {
        let path = self.dir.path().join("work");
        if path.exists() {
            // A registration that shared its second with the one before
            // left a detached settler, which waits for the clock and then
            // takes BackupPC's LOCK in this folder: wait for it under the
            // settlers' lock, or it would make LOCK in the fresh copy.
            let settlers = path.join(JOURNAL).with_file_name(server::registry::SETTLE_LOCK_NAME);
            if let Ok(lock) = fs::File::open(&settlers) {
                lock.lock().unwrap();
            }
            fs::remove_dir_all(&path).unwrap();
        }
        // Copied beside, then renamed in whole: a settler that slipped
        // past the wait finds no folder rather than a half-made copy.
        let copying = path.with_extension("copying");
        let _ = fs::remove_dir_all(&copying);
        let status = Command::new("/bin/cp").arg("-a").arg(self.dir.path().join("server")).arg(&copying).status();
        assert!(status.unwrap().success());
        fs::rename(&copying, &path).unwrap();
        path
    }
}

/// What is cut short: a change to the demo's server.
#[derive(Debug, Clone, Copy)]
enum Operation {
    /// bob registers his machine (the forced command), which sends its
    /// host key to pin.
    Register,
    /// alice registers her machine again with a new host key, which
    /// replaces the one pinned.
    Repin,
    /// The administrator gives alice's machine to bob.
    Transfer,
    /// The administrator removes alice's machine.
    Remove,
    /// bob registers his machine while carol's and dave's registrations
    /// wait for BackupPC's lock: the three are committed together. Run as
    /// nobody, standing for the backuppc account (root never groups).
    RegisterGroup,
}

/// The hosts waiting in the queue for [`Operation::RegisterGroup`], with
/// their owners.
const WAITING: [(&str, &str); 2] = [("pc-carol.example.org", "carol"), ("pc-dave.example.org", "dave")];

/// What [`Operation::RegisterGroup`] needs in the copy `dir`: the folder
/// given to nobody (when run as root), and carol's and dave's
/// registrations put in the queue as their processes put them, each kept
/// locked, as a waiting process keeps it, while the files returned live.
fn prepare(operation: Operation, dir: &Path) -> Vec<fs::File> {
    if !matches!(operation, Operation::RegisterGroup) {
        return Vec::new();
    }
    let queue = dir.join(server::registry::QUEUE_NAME);
    fs::create_dir(&queue).unwrap();
    let mut held = Vec::new();
    for (n, (host, owner)) in WAITING.iter().enumerate() {
        let request = serde_json::json!({
            "host": host,
            "owner": owner,
            "host_config": format!("# {host}\n"),
            "pins": format!("{host} {ED25519}\n"),
            "record": {
                "time": "2026-01-02T03:04:05Z", "host": host, "owner": owner, "author": "",
                "client_ip": format!("127.0.9.{n}"), "os": "linux", "action": "added", "protocol": 2,
            },
            "conf_dir": dir.join("backuppc"),
            "journal": dir.join(JOURNAL),
        });
        let path = queue.join(format!("9-{n}-0.req"));
        fs::write(&path, request.to_string()).unwrap();
        let file = fs::File::open(&path).unwrap();
        file.lock().unwrap();
        held.push(file);
    }
    // strace, run as nobody too, writes its trace beside the copy.
    fs::write(dir.with_extension("trace"), "").unwrap();
    if nix::unistd::geteuid().is_root() {
        let status = Command::new("/bin/chown")
            .args(["-R", "65534:65534"])
            .arg(dir)
            .arg(dir.with_extension("trace"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    held
}

/// Runs `operation` in `dir`, under `strace` with `inject` (none: plainly);
/// strace's trace goes to `dir.trace`.
fn run(operation: Operation, dir: &Path, inject: Option<(&str, &str)>) -> Output {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if matches!(operation, Operation::RegisterGroup) && nix::unistd::geteuid().is_root() {
        argv.extend(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"].map(Into::into));
    }
    if let Some((calls, action)) = inject {
        argv.extend(["/usr/bin/strace", "-qq", "-o"].map(Into::into));
        argv.push(dir.with_extension("trace").into());
        argv.extend([
            "-e".into(),
            format!("trace={calls}").into(),
            "-e".into(),
            format!("inject={calls}:{action}").into(),
        ]);
        argv.push("--".into());
    }
    argv.push(bpc_register().get_program().to_owned());
    let mut command = Command::new(argv.first().unwrap());
    command.args(argv.get(1..).unwrap_or_default()).env_clear();
    command.arg("--config").arg(dir.join("server.toml")).stdin(std::process::Stdio::null());
    // The host key the client sends when the server asks for it.
    let sends_key = |command: &mut Command, key: &str| {
        let input = dir.with_extension("stdin");
        fs::write(&input, format!("{key}\n")).unwrap();
        command.stdin(fs::File::open(&input).unwrap());
    };
    match operation {
        Operation::Register | Operation::RegisterGroup => {
            sends_key(&mut command, ED25519);
            command
                .env("SSH_ORIGINAL_COMMAND", "linux:bob proto=2 host-keys=1")
                .env("SSH_CONNECTION", connection_from("127.0.0.3"))
        }
        Operation::Repin => {
            sends_key(&mut command, ECDSA);
            command
                .env("SSH_ORIGINAL_COMMAND", "linux:alice proto=2 host-keys=1")
                .env("SSH_CONNECTION", connection_from("127.0.0.2"))
        }
        Operation::Transfer => command.args(["hosts", "transfer", "pc-alice.example.org", "bob"]),
        Operation::Remove => command.args(["hosts", "remove", "pc-alice.example.org"]),
    };
    command.output().unwrap()
}

fn requirements() -> Result<(), String> {
    testkit::require_programs(&["/usr/bin/strace", "/usr/bin/perl", "/usr/share/backuppc/lib/BackupPC/Storage/Text.pm"])
}

/// For each kind of call, the faults injected at each of its calls in turn:
/// a `kill -9`, and the error a full disk, a failing disk or a read-only
/// folder gives.
const FAULTS: [(&str, &[&str]); 7] = [
    ("write", &["signal=KILL", "error=ENOSPC", "error=EIO"]),
    ("fsync,fdatasync", &["signal=KILL", "error=EIO", "error=ENOSPC"]),
    ("rename,renameat,renameat2", &["signal=KILL", "error=EROFS"]),
    ("openat", &["signal=KILL", "error=EROFS", "error=EACCES"]),
    ("ftruncate", &["signal=KILL", "error=EIO"]),
    ("unlink,unlinkat", &["signal=KILL", "error=EROFS"]),
    ("utimensat,linkat,link", &["signal=KILL", "error=EROFS"]),
];

#[test]
fn a_registration_cut_short_at_any_write_leaves_everything_before_or_after() {
    testkit::require!(requirements());
    cut_short_at_every_write(Operation::Register);
}

#[test]
fn a_registration_replacing_the_pinned_keys_cut_short_at_any_write_leaves_everything_before_or_after() {
    testkit::require!(requirements());
    cut_short_at_every_write(Operation::Repin);
}

#[test]
fn registrations_committed_together_cut_short_at_any_write_leave_everything_before_or_after() {
    testkit::require!(requirements());
    cut_short_at_every_write(Operation::RegisterGroup);
}

#[test]
fn a_transfer_cut_short_at_any_write_leaves_everything_before_or_after() {
    testkit::require!(requirements());
    cut_short_at_every_write(Operation::Transfer);
}

#[test]
fn a_removal_cut_short_at_any_write_leaves_everything_before_or_after() {
    testkit::require!(requirements());
    cut_short_at_every_write(Operation::Remove);
}

/// Which of the group's registrations `now` holds, when each is whole or
/// absent beside what was there `before`: its one line in `hosts` and,
/// with `files`, its config, its pinned keys and one `added` record (a
/// `confirmed` one too for bob, who tried again), and nothing else changed.
fn each_whole_or_absent(before: &State, now: &State, files: bool) -> Result<Vec<&'static str>, String> {
    let made: Vec<(&str, &str)> =
        group_hosts().into_iter().filter(|(host, _)| now.backuppc_sees.contains_key(*host)).collect();
    let mut sees = before.backuppc_sees.clone();
    let mut lines: Vec<String> = before.hosts.lines().map(str::to_owned).collect();
    for (host, owner) in &made {
        sees.insert((*host).to_owned(), (*owner).to_owned());
        lines.push(format!("{host}\t0\t{owner}"));
    }
    let mut now_lines: Vec<String> = now.hosts.lines().map(str::to_owned).collect();
    lines.sort();
    now_lines.sort();
    if sees != now.backuppc_sees || lines != now_lines {
        return Err(format!("hosts is not what it was with whole lines of {made:?}"));
    }
    if !files {
        return Ok(made.iter().map(|(host, _)| *host).collect());
    }
    for (host, _) in group_hosts() {
        let is_made = made.iter().any(|(made, _)| *made == host);
        let config = now.host_configs.contains_key(&format!("{host}.pl"));
        let pins = now.pins.contains_key(&format!("{host}.known_hosts"));
        let added = now.journal.iter().filter(|r| r["host"] == host && r["action"] == "added").count();
        if (config, pins, added) != (is_made, is_made, usize::from(is_made)) {
            return Err(format!("{host}: line {is_made}, config {config}, keys {pins}, {added} added records"));
        }
    }
    let others = |state: &State| {
        let theirs = |name: &String| !group_hosts().iter().any(|(host, _)| name.starts_with(&format!("{host}.")));
        (state.names.iter().filter(|n| theirs(n) && *n != "LOCK").cloned().collect::<Vec<_>>(), state.journal.len())
    };
    let (names, records) = others(now);
    let (names_before, records_before) = others(before);
    let confirmed = now.journal.iter().filter(|r| r["action"] == "confirmed").count();
    if names != names_before || records != records_before + made.len() + confirmed {
        return Err(format!("other files or records changed: {names:?}"));
    }
    Ok(made.iter().map(|(host, _)| *host).collect())
}

/// bob's host and the waiting ones.
fn group_hosts() -> Vec<(&'static str, &'static str)> {
    [("pc-bob.example.org", "bob")].into_iter().chain(WAITING).collect()
}

/// Injects each fault at each call of its kind in turn into `operation`,
/// and checks what is left, then that trying again ends as it should.
fn cut_short_at_every_write(operation: Operation) {
    let pristine = Pristine::new();
    if matches!(operation, Operation::RegisterGroup) {
        // nobody reaches the copies.
        fs::set_permissions(pristine.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let dir = pristine.copy();
    let _waiting = prepare(operation, &dir);
    let before = State::read(&dir);
    let output = run(operation, &dir, None);
    assert!(output.status.success(), "{output:?}");
    let after = State::read(&dir);
    assert_ne!(before, after);
    // What is cut short below does change the pinned keys when it should.
    let pinned = |state: &State, name: &str| state.pins.get(name).map(|body| body.lines().nth(1).map(str::to_owned));
    match operation {
        Operation::Register => {
            let pins = pinned(&after, "pc-bob.example.org.known_hosts");
            assert_eq!(pins, Some(Some(format!("pc-bob.example.org {ED25519}"))));
        }
        Operation::RegisterGroup => {
            // The three together, in one change.
            for (host, owner) in [("pc-bob.example.org", "bob")].iter().chain(&WAITING) {
                assert_eq!(after.backuppc_sees.get(*host).map(String::as_str), Some(*owner), "{after:#?}");
                assert!(after.host_configs.contains_key(&format!("{host}.pl")), "{after:#?}");
            }
            let added = |state: &State| state.journal.iter().filter(|r| r["action"] == "added").count();
            assert_eq!(added(&after), added(&before) + 3, "{after:#?}");
            for (n, _) in WAITING.iter().enumerate() {
                assert!(dir.join(server::registry::QUEUE_NAME).join(format!("9-{n}-0.done")).exists());
            }
        }
        Operation::Repin => {
            let pins = pinned(&after, "pc-alice.example.org.known_hosts");
            assert_eq!(pins, Some(Some(format!("pc-alice.example.org {ECDSA}"))));
            assert_ne!(before.pins, after.pins);
        }
        Operation::Remove => assert!(after.pins.is_empty(), "{after:#?}"),
        Operation::Transfer => assert_eq!(before.pins, after.pins),
    }
    // The same again: a registration adds a `confirmed` record, a transfer
    // or a removal already made changes nothing.
    let _ = run(operation, &dir, None);
    let again = State::read(&dir);
    // Registrations waiting together are each whole or absent: a request
    // that cannot be read, a queue that cannot be written, leave a
    // registration waiting for its own process, not half-made.
    let grouped = matches!(operation, Operation::RegisterGroup);

    let mut points = 0;
    for (calls, actions) in FAULTS {
        for action in actions {
            for nth in 1u32.. {
                assert!(nth < 500, "more than 500 calls of {calls}: the loop would not end");
                let dir = pristine.copy();
                let _waiting = prepare(operation, &dir);
                let output = run(operation, &dir, Some((calls, &format!("{action}:when={nth}"))));
                let now = State::read(&dir);
                let at = format!("{action} at {calls} #{nth}");
                let trace = fs::read_to_string(dir.with_extension("trace")).unwrap();
                if !trace.contains("(INJECTED)") && !trace.contains("+++ killed by SIGKILL") {
                    // Fewer than `nth` such calls: the change ran whole.
                    assert!(output.status.success(), "{at}: {output:?}");
                    assert_eq!(now, after, "{at}: nothing injected, yet not done");
                    break;
                }
                points += 1;
                // BackupPC, reading now, sees the host list before or after.
                if grouped {
                    if let Err(problem) = each_whole_or_absent(&before, &now, false) {
                        panic!(
                            "{at}: BackupPC sees a registration of the group twice or otherwise: {problem}\n{now:#?}"
                        );
                    }
                } else {
                    assert!(
                        [&before, &after].iter().any(|s| s.hosts == now.hosts && s.backuppc_sees == now.backuppc_sees),
                        "{at}: BackupPC sees neither the hosts before nor after:\n{now:#?}"
                    );
                }
                // The next writer, under the lock, finishes any undo first;
                // then nothing is left half-made. (Every other time the
                // real bpc-register below does it.)
                if nth.is_multiple_of(2) {
                    server::transaction::recover(&dir.join("backuppc"), &dir.join(JOURNAL)).unwrap();
                    let recovered = State::read(&dir);
                    if grouped && let Err(problem) = each_whole_or_absent(&before, &recovered, true) {
                        panic!("{at}: once recovered, {problem}\n{recovered:#?}\noutput: {output:?}");
                    }
                    assert!(
                        grouped || recovered == before || recovered == after,
                        "{at}: neither before nor after once recovered:\n{recovered:#?}\n\
                         before: {before:#?}\nafter: {after:#?}\noutput: {output:?}"
                    );
                }
                // The client or the administrator, told an error or nothing,
                // tries again: the real bpc-register recovers, then makes
                // the change or finds it made.
                let retried = run(operation, &dir, None);
                let last = State::read(&dir);
                if grouped {
                    match each_whole_or_absent(&before, &last, true) {
                        Ok(made) => assert!(made.contains(&"pc-bob.example.org"), "{at}: not made: {retried:?}"),
                        Err(problem) => panic!("{at}: after trying again ({retried:?}): {problem}\n{last:#?}"),
                    }
                } else {
                    assert!(last == after || last == again, "{at}: after trying again ({retried:?}):\n{last:#?}");
                }
            }
        }
    }
    eprintln!("{operation:?}: faults injected at {points} points");
}
