//! BackupPC's daemon reads `hosts` again only when its whole-second mtime
//! differs from the one it stored (`HostsUpdate`): after a burst of
//! registrations and the settle, BackupPC's own code must see a change
//! whichever version it last read, and the mtime must not run ahead of the
//! clock.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use server::hosts_mtime::whole_seconds;
use server::registry::{BackupPcRegistry, Registration, Registry};
use std::process::Command;
use std::time::SystemTime;

/// For each whole-second mtime on the command line (one a daemon may have
/// stored), prints whether `HostsUpdate(0)` would read `hosts` again
/// (`$Info->{HostsModTime} == $bpc->HostsMTime()` is false); then the mtime
/// `HostsMTime` gives, the clock, and how many hosts `HostInfoRead` keeps.
const HOSTS_UPDATE: &str = r#"
use strict;
use lib "/usr/share/backuppc/lib";
use BackupPC::Storage::Text;
my $dir = shift;
my $s = BackupPC::Storage::Text->new({}, { ConfDir => $dir });
my $mtime = $s->HostsMTime();
my $rereads = 0;
foreach my $stored (@ARGV) {
    $rereads++ unless $stored == $mtime;
}
my $hosts = $s->HostInfoRead();
print join(" ", $rereads, scalar(@ARGV), $mtime, time, scalar(keys %$hosts)), "\n";
"#;

fn registration(n: u32) -> Registration {
    Registration {
        host: protocol::HostName::parse(&format!("burst-{n}.example.org")).unwrap(),
        owner: protocol::Logon::parse("alice").unwrap(),
        host_config: "1;\n".into(),
        author: None,
        client_ip: "192.0.2.2".parse().unwrap(),
        os: "linux".into(),
        protocol: 2,
        host_keys: Vec::new(),
    }
}

#[test]
fn after_200_registrations_in_a_burst_backuppc_rereads_hosts_and_the_mtime_is_not_ahead() {
    if testkit::skip(
        "after_200_registrations_in_a_burst_backuppc_rereads_hosts_and_the_mtime_is_not_ahead",
        testkit::require_programs(&["/usr/bin/perl", "/usr/share/backuppc/lib/BackupPC/Storage/Text.pm"]),
    ) {
        return;
    }
    const BURST: u32 = 200;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts"), "host dhcp user moreUsers\n").unwrap();
    let registry = BackupPcRegistry::new(dir.path());
    let hosts = dir.path().join("hosts");
    let mut stored = Vec::new();
    let mut owed = false;
    for n in 0..BURST {
        registry.register(&registration(n)).unwrap();
        owed |= registry.settle_owed();
        // The mtime a daemon reading now would store, and how far it is ahead.
        let mtime = whole_seconds(std::fs::metadata(&hosts).unwrap().modified().unwrap());
        let now = whole_seconds(SystemTime::now());
        assert!(mtime <= now + 1, "registration {n}: mtime {mtime} is ahead of the clock {now}");
        stored.push(mtime);
    }
    assert!(owed, "200 registrations took a second each: the burst tested nothing");
    assert!(registry.settle().unwrap(), "the settle did not move the mtime");

    let output = Command::new("/usr/bin/perl")
        .env_clear()
        .arg("-e")
        .arg(HOSTS_UPDATE)
        .arg(dir.path())
        .args(stored.iter().map(ToString::to_string))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let numbers: Vec<i64> = text.split_whitespace().map(|word| word.parse().unwrap()).collect();
    let [rereads, asked, mtime, clock, host_count] = numbers[..] else { panic!("{text}") };
    assert_eq!(rereads, asked, "a daemon that read some version would not read hosts again: {text}");
    assert!(mtime <= clock + 1, "BackupPC sees the mtime {mtime} ahead of its clock {clock}");
    assert_eq!(host_count, i64::from(BURST));
}
