//! The per-host config file BackupPC reads for a registered host.

use protocol::{HostName, Logon};
use std::path::{Path, PathBuf};

/// How every config file bpc-register writes begins, the host's name after
/// it: `check` recognises its own files by this first line.
pub const HEADER_PREFIX: &str = "# Written by bpc-register for host ";

/// The host a config file says it was written for, read from its first
/// line; `None` when bpc-register did not write it.
pub fn written_for(first_line: &str) -> Option<&str> {
    let rest = first_line.strip_prefix(HEADER_PREFIX)?;
    let (host, _) = rest.split_once(", registered to ")?;
    Some(host)
}

/// What goes into a host's config file.
#[derive(Debug, Clone)]
pub struct HostConfig<'a> {
    /// The host, which is also the name BackupPC connects to.
    pub host: &'a HostName,
    /// The user it is registered to, recorded in a comment.
    pub owner: &'a Logon,
    /// What BackupPC connects to: the host name or an address.
    pub client_name_alias: &'a str,
    /// How BackupPC's ssh reaches the client.
    pub ssh: &'a SshSettings,
    /// The file of the host keys the host sent when it registered, which
    /// ssh then trusts alone; `None` when it sent none (an older client).
    pub pinned: Option<&'a Path>,
}

/// The parts of `RsyncSshArgs` that are the same for every host.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The backup account on the client.
    pub account: String,
    /// The client's sshd port.
    pub port: u16,
    /// BackupPC's private key.
    pub identity: PathBuf,
    /// Where BackupPC's ssh records the clients' host keys, if not its default.
    pub known_hosts: Option<PathBuf>,
}

impl HostConfig<'_> {
    /// Renders the Perl file. Every value was checked on the way in (host
    /// names and account names hold no quote or backslash); they are quoted
    /// all the same, so that the file stays valid Perl whatever they hold.
    pub fn render(&self) -> String {
        let alias = perl_quote(self.client_name_alias);
        let ssh_args = perl_quote(&self.ssh_command());
        let host_keys = match self.pinned {
            Some(path) => format!(
                "# BackupPC's ssh trusts only the SSH host keys the host sent when it\n\
                 # registered, pinned in {};\n\
                 # a host key that changes fails the backup until the owner registers\n\
                 # the host again.\n",
                path.display()
            ),
            None => "# The host sent no SSH host keys when it registered (an older bpc-enroll):\n\
                     # BackupPC's ssh learns its host key at the first backup (accept-new).\n"
                .to_owned(),
        };
        format!(
            "{HEADER_PREFIX}{host_plain}, registered to {owner}.\n\
             # Registering the same host again keeps this file as it is.\n\
             $Conf{{XferMethod}}              = 'rsync';\n\
             $Conf{{ClientNameAlias}}         = {alias};\n\
             $Conf{{RsyncShareName}}          = ['/'];\n\
             $Conf{{RsyncClientPath}}         = '/usr/bin/rsync';\n\
             # No --protect-args: with it, rsync on the client would read further\n\
             # options from the connection, out of sight of the client's rsyncsend,\n\
             # which checks every option and path on the command line instead.\n\
             # (Share names therefore cannot hold spaces.)\n\
             $Conf{{RsyncArgs}} = [{backup_args}];\n\
             $Conf{{RsyncRestoreArgs}} = [{restore_args}];\n\
             {host_keys}\
             # BackupPC splits this on white space and runs it without a shell.\n\
             $Conf{{RsyncSshArgs}}            = ['-e', {ssh_args}];\n\
             # Whether the host's owner may change these in BackupPC's web page is\n\
             # decided by config.pl alone (CgiUserConfigEdit); bpc-register registers\n\
             # only into a BackupPC whose config.pl does not let owners change them.\n",
            host_plain = self.host,
            owner = self.owner,
            backup_args = perl_list(BACKUP_ARGS),
            restore_args = perl_list(RESTORE_ARGS),
        )
    }
}

impl HostConfig<'_> {
    /// The ssh command BackupPC runs: BatchMode so that it never prompts;
    /// host keys are looked up under the host's name (`HostKeyAlias`), so
    /// that a change of address keeps them. With pinned keys, ssh trusts
    /// those alone and never writes a key down; without, the client's host
    /// key is learnt at the first backup and then checked.
    fn ssh_command(&self) -> String {
        let ssh = self.ssh;
        let checking = if self.pinned.is_some() { "yes" } else { "accept-new" };
        let mut command = format!(
            "$sshPath -l {} -p {} -i {} -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking={checking} -o HostKeyAlias={}",
            ssh.account,
            ssh.port,
            ssh.identity.display(),
            self.host
        );
        match (self.pinned, &ssh.known_hosts) {
            (Some(pinned), _) => command.push_str(&format!(
                " -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no",
                pinned.display()
            )),
            (None, Some(known_hosts)) => command.push_str(&format!(" -o UserKnownHostsFile={}", known_hosts.display())),
            (None, None) => {}
        }
        command
    }
}

/// BackupPC 4's default `RsyncArgs`, less `--protect-args`.
const BACKUP_ARGS: &[&str] = &[
    "--super",
    "--recursive",
    "--numeric-ids",
    "--perms",
    "--owner",
    "--group",
    "-D",
    "--times",
    "--links",
    "--hard-links",
    "--delete",
    "--delete-excluded",
    "--one-file-system",
    "--partial",
    "--log-format=log: %o %i %B %8U,%8G %9l %f%L",
    "--stats",
];

/// BackupPC 4's default `RsyncRestoreArgs`, less `--protect-args`.
const RESTORE_ARGS: &[&str] = &[
    "--recursive",
    "--super",
    "--numeric-ids",
    "--perms",
    "--owner",
    "--group",
    "-D",
    "--times",
    "--links",
    "--hard-links",
    "--delete",
    "--partial",
    "--log-format=log: %o %i %B %8U,%8G %9l %f%L",
    "--stats",
];

fn perl_list(items: &[&str]) -> String {
    items.iter().map(|item| perl_quote(item)).collect::<Vec<_>>().join(", ")
}

/// A single-quoted Perl string: only `\` and `'` are special inside one.
fn perl_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alice's host's config, its host keys pinned in `pinned` if given.
    fn alice_config(pinned: Option<&Path>) -> String {
        let host = HostName::parse("pc-alice.example.org").unwrap();
        let owner = Logon::parse("alice").unwrap();
        let ssh = SshSettings {
            account: "bckpciuem".into(),
            port: 22,
            identity: "/var/lib/backuppc/.ssh/id_ed25519".into(),
            known_hosts: Some("/var/lib/backuppc/.ssh/clients_known_hosts".into()),
        };
        HostConfig { host: &host, owner: &owner, client_name_alias: host.as_str(), ssh: &ssh, pinned }.render()
    }

    #[test]
    fn renders_an_rsync_over_ssh_host() {
        insta::assert_snapshot!(alice_config(None));
    }

    #[test]
    fn a_host_with_pinned_keys_is_checked_against_them_alone() {
        let text = alice_config(Some(Path::new("/etc/backuppc/pc-alice.example.org.known_hosts")));
        assert!(!text.contains("accept-new"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_first_line_says_which_host_the_file_was_written_for() {
        let host = HostName::parse("pc-alice.example.org").unwrap();
        let owner = Logon::parse("alice").unwrap();
        let ssh = SshSettings { account: "b".into(), port: 22, identity: "/k".into(), known_hosts: None };
        let text = HostConfig { host: &host, owner: &owner, client_name_alias: "x", ssh: &ssh, pinned: None }.render();
        assert_eq!(written_for(text.lines().next().unwrap()), Some("pc-alice.example.org"));
        assert_eq!(written_for("$Conf{XferMethod} = 'rsync';"), None);
        assert_eq!(written_for("# Written by bpc-register for host x"), None);
    }

    #[test]
    fn perl_quoting_escapes_quote_and_backslash() {
        assert_eq!(perl_quote(r"a'b\c$d"), r"'a\'b\\c$d'");
    }
}
