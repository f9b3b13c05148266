//! `pc/HOST/backups` is read by BackupPC's own `BackupInfoRead`: the backups
//! bpc-register sees, and the one it calls the last, must be the ones
//! BackupPC's pages show, on well-formed files and on garbage alike.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use protocol::HostName;
use std::process::Command;

/// Reads `TOPDIR/pc/HOST/backups` with BackupPC's storage module and prints
/// `num<TAB>type` for each backup it keeps, then `last<TAB>N`: the backup the
/// host summary page (`CGI/Summary.pm`) takes as the last, by start time
/// among full and incremental backups, or `-1`.
const BACKUP_INFO_READ: &str = r#"
use strict;
no warnings;
use lib "/usr/share/backuppc/lib";
use BackupPC::Storage;
my($top, $host) = @ARGV;
my $s = BackupPC::Storage->new({ TopDir => $top });
my @backups = $s->BackupInfoRead($host);
my($lastAge, $last) = (-1, -1);
foreach my $b (@backups) {
    print $b->{num}, "\t", $b->{type}, "\n";
    next if ( $b->{type} ne "full" && $b->{type} ne "incr" );
    if ( $lastAge < 0 || $b->{startTime} > $lastAge ) {
        $lastAge = $b->{startTime};
        $last = $b->{num};
    }
}
print "last\t$last\n";
"#;

fn backuppc_sees(body: &[u8]) -> String {
    let top = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(top.path().join("pc/pc1")).unwrap();
    std::fs::write(top.path().join("pc/pc1/backups"), body).unwrap();
    let output = Command::new("/usr/bin/perl")
        .env_clear()
        .arg("-e")
        .arg(BACKUP_INFO_READ)
        .arg(top.path())
        .arg("pc1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn we_see(body: &[u8]) -> String {
    let top = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(top.path().join("pc/pc1")).unwrap();
    std::fs::write(top.path().join("pc/pc1/backups"), body).unwrap();
    let backups = server::backups::read(top.path(), &HostName::parse("pc1").unwrap()).unwrap();
    let mut text = String::new();
    for backup in &backups {
        let kind = match &backup.kind {
            server::backups::BackupKind::Full => "full".to_owned(),
            server::backups::BackupKind::Incr => "incr".to_owned(),
            server::backups::BackupKind::Partial => "partial".to_owned(),
            server::backups::BackupKind::Active => "active".to_owned(),
            server::backups::BackupKind::Other(other) => other.clone(),
        };
        text.push_str(&format!("{}\t{kind}\n", backup.num));
    }
    let last = server::backups::last_backup(&backups).map_or(-1, |b| i64::try_from(b.num).unwrap());
    text.push_str(&format!("last\t{last}\n"));
    text
}

#[test]
fn backups_and_the_last_one_are_the_ones_backuppc_sees() {
    if testkit::skip(
        "backups_and_the_last_one_are_the_ones_backuppc_sees",
        testkit::require_programs(&["/usr/bin/perl", "/usr/share/backuppc/lib/BackupPC/Storage/Text.pm"]),
    ) {
        return;
    }
    let cases: &[&[u8]] = &[
        b"",
        b"0\tfull\t1700000000\t1700000100\t10\t2048\t3\t1024\t7\t1024\t0\t0\t0\t0\t3\t900\t800\t0\t-1\t1\trsync\t0\t\t4.4.0\t12\t0\t\t\n\
          1\tincr\t1700086400\t1700086460\t2\t100\t1\t50\t1\t50\t0\t0\t0\t0\t3\t40\t40\t1\t-1\t1\trsync\t1\t\t4.4.0\t14\t0\t\t\n",
        b"3\tfull\t100\t200\n4\tpartial\t300\t400\n5\tactive\t500\t\n6\tfullish\t600\t700\n",
        b"8\tincr\t900\t901\r\n2\tfull\t950\t960\r\n",
        b"7\tfull\t12\r\r34\t5\r6\r\n9\tincr\t1000\n",
        b"not a backups file\n\xff\xfe\t\x00full\n x\tfull\t1\t2\n 1\tfull\t1\t2\n1 full 1 2\n1\tFull\t1\t2\n",
        b"# a comment\n10\tfull\t5\t6\n\n11\tincr\t4\t5",
        b"12\tfull\t20\t21\n13\tincr\t20\t22\n",
    ];
    for body in cases {
        assert_eq!(we_see(body), backuppc_sees(body), "{}", String::from_utf8_lossy(body));
    }
}
