//! `bpc-enroll generate-docs`: the man pages and completions the package
//! installs, made from this program's own clap command.

use std::path::Path;

/// What bpc-enroll's pages say beyond its command line.
const PAGES: manual::Pages<'static> = manual::Pages {
    section: "8",
    files: &[
        (
            "/etc/bpc-enroll/client.toml",
            "The configuration, described in client.toml(5), unless --config or BPC_ENROLL_CONFIG names another.",
        ),
        ("~/.config/bpc-enroll/config.toml", "A user's own settings (store-auth-creds, store-plaintext-passwords)."),
        ("~/.config/bpc-enroll/auth/svn.simple/", "The credentials cached per realm, in Subversion's format."),
        ("/var/lib/bpc-enroll/installed.toml", "What setup installed, which uninstall removes."),
        ("/etc/sudoers.d/bpc-enroll-ACCOUNT", "The sudo rule that lets the backup account run rsyncsend as root."),
    ],
    see_also: &["client.toml(5)", "bpc-register(8)", "rsync(1)", "sudoers(5)"],
};

/// Writes the pages and completions of `command` under `dir`.
pub(crate) fn generate(command: clap::Command, dir: &Path) -> Result<(), super::Failure> {
    for path in manual::write(command, &PAGES, dir)? {
        println!("{}", path.display());
    }
    Ok(())
}
