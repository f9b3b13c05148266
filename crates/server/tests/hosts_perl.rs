//! `hosts` is read by BackupPC's own `HostInfoRead`: the owner bpc-register
//! sees for each host must be the one BackupPC sees, on the files people
//! really have (comments in Latin-1, indented lines, escaped spaces, no header).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use server::hosts_scan::find_host;
use server::registry::parse_hosts;
use std::collections::BTreeMap;
use std::process::Command;

fn backuppc_sees(hosts: &[u8]) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts"), hosts).unwrap();
    testkit::backuppc::hosts_in(dir.path())
}

fn we_see(hosts: &[u8]) -> BTreeMap<String, String> {
    let file = parse_hosts(hosts);
    let mut seen = BTreeMap::new();
    let user_column = file.header.as_ref().and_then(|h| h.iter().position(|f| f == "user"));
    for line in &file.hosts {
        // A missing field is undefined in Perl, an empty string here.
        let user = match user_column {
            Some(_) if !line.user.is_empty() => line.user.clone(),
            _ => "(none)".to_owned(),
        };
        seen.insert(line.host.clone(), user);
    }
    seen
}

#[test]
fn owners_are_the_ones_backuppc_sees() {
    if testkit::skip(
        "owners_are_the_ones_backuppc_sees",
        testkit::require_programs(&["/usr/bin/perl", "/usr/share/backuppc/lib/BackupPC/Storage/Text.pm"]),
    ) {
        return;
    }
    let cases: &[&[u8]] = &[
        b"host dhcp user moreUsers\npc1 0 alice\n",
        b"# caf\xe9 au lait\nhost dhcp user moreUsers # \xff\xfe\npc1 0 alice # r\xe9serv\xe9\n",
        b"host dhcp user moreUsers\n  indented 0 mallory\npc1\t0\talice\n",
        b"host dhcp user moreUsers\npc\\ one 0 alice\npc2 0 bob\\ smith carol\n",
        b"host dhcp user moreUsers\r\npc1 0 alice\r\nPC2 0 Bob\r\n",
        b"host dhcp user moreUsers\npc1 0 alice\npc1 0 mallory\n",
        b"pc1 0 alice\npc2 0 bob\n",
        b"host user dhcp\npc1 alice 0\n",
        b"host dhcp user\npc1\npc2 0\npc3 0 carol\n",
        b"#only\n\n   \n# comments\n",
        b"host dhcp user moreUsers\npc1 0 alice\\\n#pc2 0 bob\n",
        b"host dhcp user moreUsers\npc/1 0 alice\npc;2 0 bob\npc.3 0 carol\n",
        b"host dhcp user moreUsers\npc1  0   alice\\  x\n",
        b"host dhcp user user\npc1 0 alice mallory\npc2 0 bob\n",
        b"user host dhcp user\nbob pc1 0 alice\n",
        b"host dhcp user moreUsers\npc1 0 a\\\rb\\\rc\n",
        b"host dhcp user moreUsers\r\npc1 0 alice\\\r\r\npc2\r0 bob\\\r\n",
        b"host dhcp user moreUsers\npc1 0 al\\\x0bice\\\x0c\\\tx\n",
    ];
    for hosts in cases {
        let backuppc = backuppc_sees(hosts);
        assert_eq!(we_see(hosts), backuppc, "{}", String::from_utf8_lossy(hosts));
        // A registration looks one host up as the file streams by: the same
        // owner, wherever BackupPC reads one (a file without a usable header
        // gets BackupPC's in front before anything is added).
        if parse_hosts(hosts).has_usable_header() {
            // Only names a registration can ask for (no space, no backslash).
            for (host, user) in backuppc.iter().filter(|(host, _)| protocol::HostName::parse(host).is_ok()) {
                let lookup = find_host(&hosts[..], host).unwrap();
                let owner = lookup.owner().filter(|owner| !owner.is_empty()).unwrap_or("(none)");
                assert_eq!(owner, user, "{host} in {}", String::from_utf8_lossy(hosts));
            }
        }
    }
}

/// The owner `HostInfoRead($host)` gives for `host` (what `BackupPC_dump`
/// asks), and the one `HostInfoRead()` gives (the daemon, the web page).
fn backuppc_sees_one_and_all(hosts: &[u8], host: &str) -> (String, String) {
    const PROGRAM: &str = r#"
use strict;
use lib "/usr/share/backuppc/lib";
use BackupPC::Storage::Text;
my($dir, $host) = @ARGV;
my $s = BackupPC::Storage::Text->new({}, { ConfDir => $dir });
print $s->HostInfoRead($host)->{$host}{user}, "\n", $s->HostInfoRead()->{$host}{user}, "\n";
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts"), hosts).unwrap();
    let output =
        Command::new("/usr/bin/perl").env_clear().arg("-e").arg(PROGRAM).arg(dir.path()).arg(host).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let (one, all) = text.trim_end().split_once('\n').unwrap();
    (one.to_owned(), all.to_owned())
}

#[test]
fn backuppc_reads_duplicate_lines_two_ways_and_we_see_both_owners() {
    if testkit::skip(
        "backuppc_reads_duplicate_lines_two_ways_and_we_see_both_owners",
        testkit::require_programs(&["/usr/bin/perl", "/usr/share/backuppc/lib/BackupPC/Storage/Text.pm"]),
    ) {
        return;
    }
    let hosts = b"host dhcp user moreUsers\npc1 0 alice\npc1 0 mallory\n";
    // BackupPC_dump takes the first line, the daemon and the web page the last:
    // bpc-register counts the host as alice's only if every line says so.
    assert_eq!(backuppc_sees_one_and_all(hosts, "pc1"), ("alice".to_owned(), "mallory".to_owned()));
    let file = parse_hosts(hosts);
    assert_eq!(file.owners_of("pc1"), ["alice", "mallory"]);
    assert_eq!(file.owner_of("pc1"), Some("mallory"));
}
