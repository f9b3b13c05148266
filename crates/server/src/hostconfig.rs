//! The per-host config file BackupPC reads for a registered host.

use protocol::{HostName, Logon};

/// What goes into a host's config file.
#[derive(Debug, Clone)]
pub struct HostConfig<'a> {
    /// The host, which is also the name BackupPC connects to.
    pub host: &'a HostName,
    /// The user it is registered to, recorded in a comment.
    pub owner: &'a Logon,
    /// The backup account on the client.
    pub account: &'a str,
}

impl HostConfig<'_> {
    /// Renders the Perl file. Every value was checked on the way in (host
    /// names and account names hold no quote or backslash); they are quoted
    /// all the same, so that the file stays valid Perl whatever they hold.
    pub fn render(&self) -> String {
        let host = perl_quote(self.host.as_str());
        let ssh_args = perl_quote(&format!("$sshPath -l {} -o BatchMode=yes", self.account));
        format!(
            "# Written by bpc-register for host {host_plain}, registered to {owner}.\n\
             # Registering the same host again keeps this file as it is.\n\
             $Conf{{XferMethod}}              = 'rsync';\n\
             $Conf{{ClientNameAlias}}         = {host};\n\
             $Conf{{RsyncShareName}}          = ['/'];\n\
             $Conf{{RsyncClientPath}}         = '/usr/bin/rsync';\n\
             $Conf{{RsyncSshArgs}}            = ['-e', {ssh_args}];\n\
             # The owner must not change the commands BackupPC runs as itself.\n\
             $Conf{{CgiUserConfigEditEnable}} = 0;\n",
            host_plain = self.host,
            owner = self.owner,
        )
    }
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
        insta::assert_snapshot!(HostConfig { host: &host, owner: &owner, account: "bckpciuem" }.render());
    }

    #[test]
    fn perl_quoting_escapes_quote_and_backslash() {
        assert_eq!(perl_quote(r"a'b\c$d"), r"'a\'b\\c$d'");
    }
}
