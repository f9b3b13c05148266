//! `bpc-register bundle`: the command line of `server::bundle`.

use server::bundle::{BundleOptions, SiteFiles};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The options of `bpc-register bundle`.
#[derive(Debug, clap::Args)]
pub(crate) struct BundleArgs {
    /// The server as the machines reach it: ssh://HOST[:PORT] (bpc-register as sshd's forced command) or
    /// https://HOST[:PORT] (bpc-register serve)
    #[arg(long, value_name = "URL")]
    server: String,
    /// With an https:// server: a PEM file of the CA that signs its certificate, installed as
    /// /etc/bpc-enroll/site/ca.pem and trusted alone [default: the machines' system CAs]
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Where to write the package; the .tar.gz goes beside it [default: NAME_VERSION_all.deb here]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The package's name
    #[arg(long, value_name = "NAME", default_value = "bpc-enroll-site")]
    name: String,
    /// The package's version [default: the time, YYYY.MM.DD.HHMM, so that a newer bundle upgrades an older one]
    #[arg(long, value_name = "VERSION")]
    package_version: Option<String>,
    /// With an ssh:// server: a public host key of the server's sshd, for an
    /// sshd that does not use /etc/ssh's keys (once per key) [default:
    /// /etc/ssh/ssh_host_*_key.pub]
    #[arg(long = "host-key", value_name = "FILE")]
    host_keys: Vec<PathBuf>,
    /// With an ssh:// server: the register key (private) [default: register_ed25519 beside server.toml]
    #[arg(long, value_name = "FILE")]
    register_key: Option<PathBuf>,
    /// The package's maintainer, `Name <address>` [default: Backup administrators
    /// <backuppc@DOMAIN>, the domain of server.toml]
    #[arg(long, value_name = "MAINTAINER")]
    maintainer: Option<String>,
}

/// `Backup administrators <backuppc@DOMAIN>`, the domain from server.toml
/// (or this machine's name when it cannot be read).
fn default_maintainer(config_path: &Path) -> String {
    let domain = server::ServerConfig::load(config_path)
        .map(|config| config.domain.to_string())
        .unwrap_or_else(|_| server::install::host_name());
    format!("Backup administrators <backuppc@{domain}>")
}

/// Builds and writes the bundle.
pub(crate) fn run(config_path: &Path, args: BundleArgs) -> ExitCode {
    let config_dir = std::path::absolute(config_path)
        .ok()
        .and_then(|path| path.parent().map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from("/etc/bpc-enroll"));
    let options = BundleOptions {
        server: args.server,
        ca_file: args.ca_file,
        register_key: args.register_key.unwrap_or_else(|| config_dir.join(server::install::REGISTER_KEY_NAME)),
        host_keys: args.host_keys,
        name: args.name,
        version: args.package_version.unwrap_or_else(|| server::bundle::default_version(std::time::SystemTime::now())),
        maintainer: args.maintainer.unwrap_or_else(|| default_maintainer(config_path)),
    };
    let deb = args.out.unwrap_or_else(|| PathBuf::from(server::bundle::default_file_name(&options)));
    let mut files_hold_key = false;
    let written = SiteFiles::new(&options).and_then(|files| {
        files_hold_key = files.register_key.is_some();
        server::bundle::write_bundle(&options, &files, &deb)
    });
    match written {
        Ok(written) => {
            println!(
                "wrote {} (package {} {}, for {})",
                written.deb.display(),
                options.name,
                options.version,
                options.server
            );
            println!(
                "wrote {} (the same files and an INSTALL note, for machines without dpkg)",
                written.tarball.display()
            );
            match files_hold_key {
                true => println!(
                    "Both hold the register key: hand them to the machines' administrators only. On each machine:"
                ),
                false => println!("Neither holds a secret. On each machine:"),
            }
            let file = written
                .deb
                .file_name()
                .map_or_else(|| written.deb.display().to_string(), |name| name.to_string_lossy().into_owned());
            println!("  apt-get install ./{file} && bpc-enroll setup --user LOGON");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bpc-register: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
