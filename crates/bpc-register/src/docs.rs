//! `bpc-register generate-docs`: the man pages and completions the package
//! installs, made from this program's own clap command.

use std::path::Path;
use std::process::ExitCode;

/// What bpc-register's pages say beyond its command line.
const PAGES: manual::Pages<'static> = manual::Pages {
    section: "8",
    files: &[
        (
            "/etc/bpc-enroll/server.toml",
            "The configuration, described in server.toml(5), unless --config or BPC_REGISTER_CONFIG names another.",
        ),
        (
            "/etc/fail2ban/filter.d/bpc-register.conf",
            "The fail2ban filter for the failed passwords and refusals bpc-register logs to syslog.",
        ),
        ("/etc/fail2ban/jail.d/bpc-register.conf", "An example jail for that filter, disabled."),
    ],
    see_also: &["server.toml(5)", "bpc-enroll(8)", "sshd(8)", "fail2ban(1)"],
};

/// Writes the pages and completions of `command` under `dir`.
pub(crate) fn generate(command: clap::Command, dir: &Path) -> ExitCode {
    match manual::write(command, &PAGES, dir) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bpc-register: {error}");
            ExitCode::from(2)
        }
    }
}
