//! `bpc-register`: started by sshd as the forced command of the register key.

mod bundle;
mod docs;
mod install;

use clap::Parser;
use protocol::SshConnection;
use server::{EventLog, Level, Server, ServerConfig, Status};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Registers a machine with BackupPC, as the forced command of the register key.
///
/// sshd starts it with SSH_ORIGINAL_COMMAND set to the client's request
/// (`OS:logon`) and SSH_CONNECTION to "client_ip client_port server_ip
/// server_port". It checks the request (OS type, user in the directory,
/// DNS name of the client inside the domain, host not registered to someone
/// else), adds the host to BackupPC's hosts file, writes its config, and
/// answers on standard output: `success` and `keyword: value` lines, or an
/// error that starts with SSH_CONNECTION.
///
/// With `auth = "password"` or `"new-hosts"`, a protocol-2 client is first
/// challenged on the same channel (`auth-required PLAIN <realm>`, answered
/// `PLAIN <base64>` or `cancel`, three attempts).
///
/// Exit status: 0 after `success`, 1 after a refusal or a server fault,
/// 2 when the configuration or the environment is unusable.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The server configuration [default: $BPC_REGISTER_CONFIG, else /etc/bpc-enroll/server.toml]
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the line that binds the register key to this command.
    ///
    /// Add the line to ~backuppc/.ssh/authorized_keys on the server. Clients
    /// that log in with the register key can then run bpc-register with this
    /// configuration and nothing else: `restrict` turns off forwarding, ptys
    /// and ~/.ssh/rc; `from=` (when given) limits the addresses they may come
    /// from.
    AuthorizedKeys {
        /// The public half of the register key shipped with the clients' setup
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Comma-separated addresses or patterns the clients may connect from
        #[arg(long, value_name = "PATTERNS")]
        from: Option<String>,
    },
    /// Check the server for problems and say how to fix them.
    ///
    /// It checks BackupPC's server-wide config.pl (in `conf-dir`, after
    /// /etc/backuppc/localconfig.pl), read with Perl as BackupPC reads it:
    /// BackupPC's web page must let a host's owner change only harmless
    /// settings (schedules, kept backups, files, blackouts, reminders), never
    /// a command BackupPC runs, the paths or arguments it passes (RsyncSshArgs,
    /// RsyncArgs, RsyncShareName...), the transfer method, the address it
    /// connects to (ClientNameAlias) or the mail it sends (EMail*Mesg hold the
    /// To: header). Only config.pl's CgiUserConfigEditEnable and
    /// CgiUserConfigEdit decide that; setting them in a HOST.pl has no effect.
    /// When they allow more, it prints the lines to add to config.pl;
    /// bpc-register refuses to register hosts until they are there. Run as
    /// root, it runs those files as their folder's owner (else config.pl's,
    /// else nobody), never as root.
    ///
    /// Exit status: 0 when nothing was found, 1 when a problem was found,
    /// 2 when the configuration cannot be used.
    Check,
    /// Prepare this BackupPC server for bpc-enroll: keys, authorized_keys, server.toml.
    ///
    /// Run as root on the BackupPC server, after installing the package. It
    /// checks that BackupPC 4 is installed, then makes what is missing:
    /// BackupPC's own ssh key (as backuppc, in ~backuppc/.ssh), the register
    /// key (register_ed25519 beside server.toml, root's, 0600), the register
    /// key's restrict,command="bpc-register --config ..." line in
    /// ~backuppc/.ssh/authorized_keys (other lines kept), a server.toml made
    /// from the options unless one exists (the package's unchanged example
    /// counts as none; a users file beside it) and the lines BackupPC's
    /// config.pl needs so that host owners cannot change its commands
    /// (appended under BackupPC's lock; --keep-backuppc-config only prints
    /// them). It checks that sshd will accept the backuppc account's key
    /// (Debian locks that account: sshd needs UsePAM yes, or a `*`
    /// password). Each change is printed as it is made; --dry-run prints
    /// them all and changes nothing. A second run changes nothing. It ends
    /// with the next steps.
    ///
    /// Exit status: 0 when everything is in place, 1 when a problem remains
    /// (printed with its fix) or BackupPC is missing, 2 for a usage or
    /// configuration error.
    Install(install::InstallArgs),
    /// Build the site bundle to hand out: a Debian package and a .tar.gz.
    ///
    /// The package (NAME, default bpc-enroll-site) depends on bpc-enroll and
    /// installs /etc/bpc-enroll/client.toml, which names the server, with
    /// the register key (/etc/bpc-enroll/site/register_ed25519, root's,
    /// 0600) and a known_hosts pinning the server's SSH host keys
    /// (/etc/bpc-enroll/site/known_hosts, from /etc/ssh/ssh_host_*_key.pub
    /// or --host-key), all as conffiles. After `apt-get install
    /// ./bpc-enroll-site_VERSION_all.deb`, `bpc-enroll setup --user LOGON`
    /// is the whole enrollment. The .tar.gz beside it holds the same files
    /// and an INSTALL note, for machines without dpkg. Both hold the
    /// register key and are written 0600. The package is built with
    /// dpkg-deb.
    ///
    /// Exit status: 0 when both are written, 1 when a key cannot be used or
    /// a file cannot be written, 2 for a bad option.
    Bundle(bundle::BundleArgs),
    /// Write bpc-register's man pages and shell completions into DIR.
    ///
    /// For packaging: DIR/man gets bpc-register(8) and a page for each
    /// subcommand, DIR/bash, DIR/zsh and DIR/fish the completions, all made
    /// from this program's own command line.
    #[command(hide = true)]
    GenerateDocs {
        /// The folder to write into (created when missing)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// A configuration that cannot be used is the server's fault; the client is
/// told so without the details, which go to the log (standard error here).
const MISCONFIGURED: &str = "the backup server is misconfigured; tell the backup administrator";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = cli
        .config
        .or_else(|| std::env::var_os("BPC_REGISTER_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(server::DEFAULT_CONFIG_PATH));
    match cli.command {
        Some(Command::AuthorizedKeys { key, from }) => authorized_keys(&config_path, &key, from.as_deref()),
        Some(Command::Check) => check(&config_path),
        Some(Command::Install(args)) => install::run(&config_path, args, include_str!("../debian/server.toml")),
        Some(Command::Bundle(args)) => bundle::run(&config_path, args),
        Some(Command::GenerateDocs { dir }) => docs::generate(<Cli as clap::CommandFactory>::command(), &dir),
        None => forced_command(&config_path),
    }
}

/// Prints the `authorized_keys` line for the register key.
fn authorized_keys(config_path: &std::path::Path, key: &std::path::Path, from: Option<&str>) -> ExitCode {
    let line = (|| -> Result<String, String> {
        let key = server::register::read_public_key(key).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().and_then(|p| p.canonicalize()).map_err(|e| e.to_string())?;
        let config = std::path::absolute(config_path).map_err(|e| e.to_string())?;
        let (exe, config) = (exe.display().to_string(), config.display().to_string());
        server::authorized_keys::register_key_line(&exe, &config, &key, from).map_err(|e| e.to_string())
    })();
    match line {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bpc-register: {error}");
            ExitCode::from(2)
        }
    }
}

/// Reports what the server's configuration lets BackupPC's web page do.
fn check(config_path: &std::path::Path) -> ExitCode {
    let config = match ServerConfig::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            return ExitCode::from(2);
        }
    };
    let conf_dir = &config.backuppc.conf_dir;
    match server::owner_edits::read(conf_dir) {
        Ok(edits) if edits.is_safe() => {
            println!(
                "ok: {}: host owners can change only harmless settings (no command, path, argument, address or mail)",
                edits.config_path.display()
            );
            ExitCode::SUCCESS
        }
        Ok(edits) => {
            println!(
                "problem: {}: BackupPC's web page lets a host's owner change {}, which are not on bpc-register's \
                 list of harmless settings: the next backup could run what the owner wrote, as backuppc, or \
                 BackupPC could send her mail to anyone. bpc-register refuses to register hosts until it is fixed.",
                edits.config_path.display(),
                edits.dangerous_editable().join(", ")
            );
            println!("Add these lines at the end of {}:", edits.config_path.display());
            for line in edits.fix_lines() {
                println!("    {line}");
            }
            println!("or turn the owners' editor off altogether:");
            println!("    $Conf{{CgiUserConfigEditEnable}} = 0;");
            ExitCode::FAILURE
        }
        Err(error) => {
            println!("problem: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Answers one request, as sshd's forced command.
fn forced_command(config_path: &std::path::Path) -> ExitCode {
    let connection = match std::env::var("SSH_CONNECTION").map_err(|_| protocol::ConnectionError::Missing) {
        Ok(text) => SshConnection::parse(&text),
        Err(error) => Err(error),
    };
    let connection = match connection {
        Ok(connection) => connection,
        Err(error) => {
            EventLog::Stderr.log(Level::Err, &error.to_string());
            answer(&format!("{error}\n"));
            return ExitCode::from(2);
        }
    };
    let mut challenge_timeout = Duration::ZERO;
    let server = match ServerConfig::load(config_path).map_err(server::ServerError::from).and_then(|config| {
        challenge_timeout = Duration::from_secs(config.challenge_timeout);
        Server::from_config(config)
    }) {
        Ok(server) => server,
        Err(error) => {
            EventLog::Stderr.log(Level::Err, &format!("{connection} {error}"));
            answer(&protocol::render_error(&connection, MISCONFIGURED));
            return ExitCode::from(2);
        }
    };
    let command = std::env::var_os("SSH_ORIGINAL_COMMAND");
    let origin = protocol::auth::realm_origin("ssh", &connection.server_ip.to_string(), connection.server_port);
    // The answers to a challenge are waited for `challenge-timeout` seconds in
    // all: a client that never answers must not pin this process.
    // Without a standard input, a challenge finds the client gone.
    let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => match std::fs::File::open("/dev/null") {
            Ok(null) => null,
            Err(error) => {
                EventLog::Stderr.log(Level::Err, &format!("{connection} cannot open /dev/null: {error}"));
                answer(&protocol::render_error(&connection, MISCONFIGURED));
                return ExitCode::from(2);
            }
        },
    };
    let stdin = std::io::BufReader::new(files::DeadlineReader::new(stdin, challenge_timeout));
    let mut challenger = server::challenge::LineChallenger::new(stdin, std::io::stdout());
    let response = server.handle_with(command.as_ref().map(|c| c.as_bytes()), &connection, &origin, &mut challenger);
    answer(&response.text);
    match response.status {
        Status::Success => ExitCode::SUCCESS,
        Status::Refused | Status::ServerFault => ExitCode::FAILURE,
    }
}

/// Writes the answer; a client that hung up cannot be told anything more.
fn answer(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}
