//! The per-host config is read by BackupPC, which is Perl: check it with Perl.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a panic in a test is its failure")]

use protocol::{HostName, Logon};
use server::hostconfig::{HostConfig, SshSettings};
use std::process::Command;

/// Loads the file the way BackupPC does (`do FILE` filling `%Conf`) and
/// prints the values that matter, one a line.
const READ_LIKE_BACKUPPC: &str = r#"
use strict;
our %Conf;
my $file = shift;
my $ok = do $file;
die "cannot load $file: " . ($@ || $!) if !defined $ok && ($@ || $!);
print join("\n", $Conf{XferMethod}, $Conf{ClientNameAlias}, scalar(@{$Conf{RsyncSshArgs}}),
    @{$Conf{RsyncSshArgs}}, @{$Conf{RsyncShareName}}), "\n";
"#;

#[test]
fn backuppc_reads_the_values_that_were_meant() {
    let perl = ["/usr/bin/perl", "/bin/perl"].into_iter().find(|p| std::path::Path::new(p).exists());
    let perl = perl.unwrap_or_else(|| panic!("perl is missing: scripts/test installs it; this test cannot be skipped"));
    let dir = tempfile::tempdir().unwrap();
    let host = HostName::parse("pc-alice.example.org").unwrap();
    let owner = Logon::parse("alice").unwrap();
    let path = dir.path().join("pc-alice.example.org.pl");
    let ssh = SshSettings {
        account: "bckpciuem".into(),
        port: 2222,
        identity: "/var/lib/backuppc/.ssh/id_ed25519".into(),
        known_hosts: None,
    };
    let config = HostConfig { host: &host, owner: &owner, client_name_alias: "192.0.2.7", ssh: &ssh, pinned: None };
    std::fs::write(&path, config.render()).unwrap();
    let output = Command::new(perl).env_clear().arg("-e").arg(READ_LIKE_BACKUPPC).arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "rsync\n192.0.2.7\n2\n-e\n$sshPath -l bckpciuem -p 2222 -i /var/lib/backuppc/.ssh/id_ed25519 -o BatchMode=yes \
         -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o HostKeyAlias=pc-alice.example.org\n/\n"
    );
}
