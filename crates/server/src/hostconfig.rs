//! The per-host config file BackupPC reads for a registered host.

use protocol::{HostName, Logon};
use std::path::PathBuf;

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
    /// the client's host key is learnt at the first backup and then checked,
    /// recorded under the host's name so that a change of address keeps it.
    fn ssh_command(&self) -> String {
        let ssh = self.ssh;
        let mut command = format!(
            "$sshPath -l {} -p {} -i {} -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o HostKeyAlias={}",
            ssh.account,
            ssh.port,
            ssh.identity.display(),
            self.host
        );
        if let Some(known_hosts) = &ssh.known_hosts {
            command.push_str(&format!(" -o UserKnownHostsFile={}", known_hosts.display()));
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

    #[test]
    fn renders_an_rsync_over_ssh_host() {
        let host = HostName::parse("pc-alice.example.org").unwrap();
        let owner = Logon::parse("alice").unwrap();
        let ssh = SshSettings {
            account: "bckpciuem".into(),
            port: 22,
            identity: "/var/lib/backuppc/.ssh/id_ed25519".into(),
            known_hosts: Some("/var/lib/backuppc/.ssh/clients_known_hosts".into()),
        };
        let config = HostConfig { host: &host, owner: &owner, client_name_alias: host.as_str(), ssh: &ssh };
        insta::assert_snapshot!(config.render());
    }

    #[test]
    fn the_first_line_says_which_host_the_file_was_written_for() {
        let host = HostName::parse("pc-alice.example.org").unwrap();
        let owner = Logon::parse("alice").unwrap();
        let ssh = SshSettings { account: "b".into(), port: 22, identity: "/k".into(), known_hosts: None };
        let text = HostConfig { host: &host, owner: &owner, client_name_alias: "x", ssh: &ssh }.render();
        assert_eq!(written_for(text.lines().next().unwrap()), Some("pc-alice.example.org"));
        assert_eq!(written_for("$Conf{XferMethod} = 'rsync';"), None);
        assert_eq!(written_for("# Written by bpc-register for host x"), None);
    }

    #[test]
    fn perl_quoting_escapes_quote_and_backslash() {
        assert_eq!(perl_quote(r"a'b\c$d"), r"'a\'b\\c$d'");
    }
}
