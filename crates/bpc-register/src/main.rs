//! `bpc-register`: started by sshd as the forced command of the register key.

mod bundle;
mod docs;
mod install;

use clap::Parser;
use protocol::{HostName, Logon, SshConnection};
use server::admin::{self, Admin, Transfer};
use server::check::{self, Finding, Sources, Step};
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
/// A status request (`info:`, options after a space) is answered without a
/// challenge and without writing anything: the name the client's address
/// has in the domain (found as for a registration), whether that host is
/// registered, to whom, its BackupPC page and when its last backup started
/// (from TopDir/pc/HOST/backups). It names no host, so it can only ever ask
/// about the machine it comes from.
///
/// With `auth = "password"` or `"new-hosts"`, a protocol-2 client is first
/// challenged on the same channel (`auth-required PLAIN <realm>`, answered
/// `PLAIN <base64>` or `cancel`, three attempts).
///
/// Exit status: 0 after `success` (to a registration or a status request),
/// 1 after a refusal or a server fault, 2 when the configuration or the
/// environment is unusable.
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
    /// Check BackupPC's files and configuration for problems, and repair them.
    ///
    /// It compares BackupPC's hosts file, the per-host configs in `conf-dir`
    /// and the journal of registrations, each read the way BackupPC reads it
    /// (under BackupPC's LOCK when it exists), and reports, one line each:
    ///
    /// - a host the journal says is registered (its last record is added,
    ///   confirmed, transferred or restored) whose line is gone from hosts:
    ///   BackupPC's web host editor writes back the list it showed, dropping
    ///   a host registered while its page was open;
    /// - a per-host config or a file of pinned host keys (HOST.known_hosts)
    ///   bpc-register wrote (its first line says so) for a host with no line
    ///   in hosts and no registration (config.pl and other files are never
    ///   touched);
    /// - a host with more than one line, which BackupPC reads two ways (its
    ///   daemon and web page take the last, BackupPC_dump the first);
    /// - lines BackupPC skips, host names it mishandles (white space, a
    ///   backslash, `..`, a leading `-`, `config`) and a first line it takes
    ///   for the header although it is a host;
    /// - journal lines that cannot be read, and a change cut short by a crash;
    /// - a file every registration writes (LOCK, hosts, the journal, the
    ///   lock beside it) that the owner of conf-dir, the account that runs the
    ///   registrations, may not write (a command run as root can leave one):
    ///   every registration fails until it is given back;
    /// - BackupPC's server-wide config.pl (after /etc/backuppc/localconfig.pl,
    ///   read with Perl as BackupPC reads it) letting a host's owner change
    ///   more than harmless settings (schedules, kept backups, files,
    ///   blackouts, reminders) in the web page: a command BackupPC runs, the
    ///   paths or arguments it passes (RsyncSshArgs, RsyncArgs,
    ///   RsyncShareName...), the transfer method, the address it connects to
    ///   (ClientNameAlias) or the mail it sends. Only config.pl decides that;
    ///   it prints the lines to add, and bpc-register registers no host until
    ///   they are there. Run as root, it runs those files as their folder's
    ///   owner (else config.pl's, else nobody), never as root.
    ///
    /// With --fix it also says what it would repair and what it leaves to
    /// you, and changes nothing; with --fix --yes it repairs, under
    /// BackupPC's LOCK, each repair whole or not at all: a lost line comes
    /// back with the owner the journal names (journaled as `restored`, its
    /// config written again if it is gone too); duplicate lines collapse to
    /// the last one, whose owner BackupPC's daemon sees; an orphan config or
    /// file of pinned keys is moved aside to FILE.orphaned-TIME (never
    /// deleted; BackupPC reads only HOST.pl, which alone points ssh at
    /// HOST.known_hosts); a missing header line is put on top; the lines for
    /// config.pl are added at its end when it is a regular file whose owner,
    /// group and mode the new version keeps and which Perl then reads as
    /// safe (otherwise they are printed for you to add); an empty lock file
    /// of root's that the registrations cannot write is given to that
    /// account (by root only, in a folder of that account's, where hard links
    /// are protected; hosts and the journal are left to you, with the chown
    /// to run). Lines BackupPC skips, bad names and unreadable journal lines
    /// are left to you. After a change to hosts it runs `reload-command`.
    ///
    /// Exit status: 0 when nothing was found (or, with --fix --yes, when
    /// everything found was repaired), 1 when a problem was found (or left),
    /// 2 when the configuration or the files cannot be used, or a repair
    /// failed (that repair is not made, nor the ones after it).
    #[command(verbatim_doc_comment)]
    Check {
        /// Say what would be repaired, and what would be left to you; change nothing without --yes
        #[arg(long)]
        fix: bool,
        /// With --fix: make the repairs
        #[arg(long, requires = "fix")]
        yes: bool,
    },
    /// List, show, transfer or remove registered hosts.
    ///
    /// These commands read and change BackupPC's hosts file, the per-host
    /// configs and the journal of registrations named by the server
    /// configuration. Changes are made under BackupPC's own lock (the one its
    /// web page takes), atomically, and journaled with the name of whoever
    /// ran the command (with sudo, the user who ran sudo). Run them as root
    /// or as the backuppc user.
    ///
    /// Exit status: 0 when done, 1 when refused (unknown host or user, a
    /// file that cannot be read or written, BackupPC's lock held too long),
    /// 2 on a usage or configuration error. On any error nothing is changed (but
    /// see `remove --purge`, whose deletions BackupPC cannot take back).
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
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
    /// installs /etc/bpc-enroll/client.toml, which names the server. For an
    /// ssh:// server it adds the register key
    /// (/etc/bpc-enroll/site/register_ed25519, root's, 0600) and a
    /// known_hosts pinning the server's SSH host keys
    /// (/etc/bpc-enroll/site/known_hosts, from /etc/ssh/ssh_host_*_key.pub
    /// or --host-key); for an https:// server, the CA given with --ca-file
    /// (/etc/bpc-enroll/site/ca.pem, named by ca-file in client.toml), or
    /// nothing when the machines' system CAs vouch for the server's
    /// certificate. All are conffiles. After `apt-get install
    /// ./bpc-enroll-site_VERSION_all.deb`, `bpc-enroll setup --user LOGON`
    /// is the whole enrollment. The .tar.gz beside it holds the same files
    /// and an INSTALL note, for machines without dpkg. Both are written 0600
    /// (an ssh:// bundle holds the register key). The package is built with
    /// dpkg-deb.
    ///
    /// Exit status: 0 when both are written, 1 when a key or the CA file
    /// cannot be used or a file cannot be written, 2 for a bad option.
    Bundle(bundle::BundleArgs),
    /// Serve registrations over HTTPS (the https:// transport).
    ///
    /// A small HTTPS service configured by the [https] table of server.toml
    /// (listen, cert, key, trusted-proxies; see server.toml(5)). Clients
    /// enroll with `bpc-enroll setup --server https://HOST[:PORT]`: `POST
    /// /register` with the request as a form, answered exactly as over SSH
    /// (200 success, 403 refused, 503 the server's fault), with the same
    /// checks, log lines and journal. When the policy needs a password it
    /// answers 401 with `WWW-Authenticate: Basic realm="REALM"` and the
    /// client asks again with `Authorization: Basic`; after too many failed
    /// authentications from one address (max-failed-auth within
    /// failed-auth-window) it answers 429 without checking the password.
    ///
    /// It runs as the backuppc account and refuses to run as root. Without
    /// cert and key it speaks plain HTTP, and only on loopback addresses
    /// (for a TLS proxy on the same host). Started by systemd's socket
    /// activation (bpc-register-https.socket), it serves the sockets handed
    /// over (LISTEN_PID, LISTEN_FDS) instead of [https] listen. The files
    /// server.toml names are read at start: restart it after changing them.
    /// SIGTERM stops it after the requests under way.
    ///
    /// Exit status: 0 after SIGTERM or SIGINT, 2 when it cannot start (as
    /// root, a bad configuration, a certificate or socket it cannot use).
    Serve,
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

#[derive(Debug, clap::Subcommand)]
enum HostsCommand {
    /// List the registered hosts.
    ///
    /// One row per host of BackupPC's hosts file: its owner (the user column
    /// as BackupPC reads it), who registered it and when (from the journal:
    /// the name the client authenticated as, or the administrator who
    /// transferred it), and when its last full or incremental backup started
    /// (from TopDir/pc/HOST/backups, TopDir as BackupPC's config.pl sets
    /// it). A dash marks what is unknown or empty; what could not be read is
    /// said on standard error.
    ///
    /// Example: bpc-register hosts list --json
    List {
        /// Print one JSON array of objects with the keys host, owner, author,
        /// registered and last-backup (null when unknown; times in RFC 3339)
        #[arg(long)]
        json: bool,
    },
    /// Show one host: the fields of `list`, its config file and its history.
    ///
    /// The history is every record of the journal about the host:
    /// registrations, confirmations, transfers and removals, oldest first.
    /// A host that is no longer in hosts is shown from its history.
    ///
    /// Example: bpc-register hosts show pc-alice.example.org
    Show {
        /// The host, as BackupPC names it
        #[arg(value_parser = parse_host)]
        host: HostName,
        /// Print one JSON object: the keys of `list --json`, config,
        /// config-exists, history (the journal's records) and host-keys
        /// (the pinned SSH host keys: fingerprint and type; null if none)
        #[arg(long)]
        json: bool,
    },
    /// Give a host to another owner.
    ///
    /// Every line of the host in hosts gets LOGON in its user column; every
    /// other byte of the file is kept. LOGON must exist in the configured
    /// directory. The journal records `transferred`, the previous owner and
    /// who ran the command; BackupPC is told to reload (reload-command). The
    /// host's config file is kept as it is.
    ///
    /// Example: bpc-register hosts transfer pc-alice.example.org bob
    Transfer {
        /// The host, as BackupPC names it
        #[arg(value_parser = parse_host)]
        host: HostName,
        /// The directory login of the new owner
        #[arg(value_parser = parse_logon)]
        logon: Logon,
    },
    /// Remove a host: its lines in hosts and its config file.
    ///
    /// The journal records `removed` and who ran the command; BackupPC is
    /// told to reload (reload-command), and drops the host from its list.
    ///
    /// Without --purge the backups stay in TopDir/pc/HOST, but BackupPC no
    /// longer counts them: its nightly run (BackupPC_nightly, through
    /// BackupPC_refCountUpdate) counts the pool's references only for the
    /// hosts in hosts, so the pool files that only these backups use are
    /// marked by one nightly run and deleted by a later one, and the backups
    /// stop being restorable. Registering the host again before then keeps
    /// them whole.
    ///
    /// With --purge, BackupPC deletes each backup first, oldest first, with
    /// its own BackupPC_backupDelete (delete-command, run as BackupPC's user)
    /// while the host is still in hosts, which that program requires; then
    /// the host is removed. TopDir/pc/HOST keeps BackupPC's logs of the host.
    /// If BackupPC refuses a deletion (a backup of the host is running), the
    /// host stays registered and the output says which backups are gone.
    ///
    /// Example: bpc-register hosts remove pc-alice.example.org --purge
    Remove {
        /// The host, as BackupPC names it
        #[arg(value_parser = parse_host)]
        host: HostName,
        /// Have BackupPC delete the host's backups first
        #[arg(long)]
        purge: bool,
    },
}

fn parse_host(text: &str) -> Result<HostName, String> {
    HostName::parse(text).map_err(|error| error.to_string())
}

fn parse_logon(text: &str) -> Result<Logon, String> {
    Logon::parse(text).map_err(|error| error.to_string())
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
        Some(Command::Check { fix, yes }) => check(&config_path, fix, yes),
        Some(Command::Serve) => serve(&config_path),
        Some(Command::Hosts { command }) => hosts(&config_path, command),
        Some(Command::Install(args)) => install::run(&config_path, args, include_str!("../debian/server.toml")),
        Some(Command::Bundle(args)) => bundle::run(&config_path, args),
        Some(Command::GenerateDocs { dir }) => docs::generate(<Cli as clap::CommandFactory>::command(), &dir),
        None => forced_command(&config_path),
    }
}

/// Prints the `authorized_keys` line for the register key.
/// Runs the HTTPS service until it is told to stop.
fn serve(config_path: &std::path::Path) -> ExitCode {
    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "bpc-register: serve must not run as root: run it as the backuppc account (User=backuppc in \
             bpc-register-https.service)"
        );
        return ExitCode::from(2);
    }
    let listeners = match server::https::activated_listeners() {
        Ok(listeners) => listeners,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            return ExitCode::from(2);
        }
    };
    let config = match ServerConfig::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            return ExitCode::from(2);
        }
    };
    match server::https::serve(config, config_path, listeners) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            ExitCode::from(2)
        }
    }
}

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

/// Compares BackupPC's files and configuration, and with `fix` says (and
/// with `yes` makes) the repairs.
fn check(config_path: &std::path::Path, fix: bool, yes: bool) -> ExitCode {
    let config = match ServerConfig::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            return ExitCode::from(2);
        }
    };
    let sources = Sources::of(&config);
    if fix && yes {
        return repair(&config, &sources);
    }
    let inspection = match sources.inspect() {
        Ok(inspection) => inspection,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            return ExitCode::from(2);
        }
    };
    if inspection.findings.is_empty() {
        print_clean(&sources, &inspection);
        return ExitCode::SUCCESS;
    }
    print_findings(&inspection.findings);
    if fix {
        for step in check::plan(&config, &inspection.findings, &server::journal::now()) {
            match step {
                Step::Repair(repair) => println!("fix: {}", repair.describe(false)),
                Step::Leave(reason) => println!("left: {reason}"),
            }
        }
        println!("nothing was changed; run `bpc-register check --fix --yes` to make the repairs above");
    }
    ExitCode::FAILURE
}

/// `check --fix --yes`: finds and repairs under BackupPC's lock.
fn repair(config: &ServerConfig, sources: &Sources) -> ExitCode {
    let report = match sources.fix(config) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("bpc-register: {error}; nothing was changed");
            return ExitCode::from(2);
        }
    };
    if report.recovered {
        println!("fixed: {}", check::Repair::Recover.describe(true));
    }
    print_findings(&report.inspection.findings);
    for repair in &report.made {
        println!("fixed: {}", repair.describe(true));
    }
    for reason in &report.left {
        println!("left: {reason}");
    }
    if report.made.iter().any(check::Repair::changes_hosts)
        && let Err(problem) = server::register::reload_backuppc(&config.backuppc)
    {
        eprintln!("bpc-register: warning: {problem}");
    }
    if let Some((repair, error)) = &report.failed {
        eprintln!(
            "bpc-register: could not {}: {error}; that repair was not made, nor the ones after it",
            repair.describe(false)
        );
        return ExitCode::from(2);
    }
    if report.inspection.findings.is_empty() {
        print_clean(sources, &report.inspection);
        return ExitCode::SUCCESS;
    }
    if report.left.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One `problem:` line per finding; the owners' edits are followed by the
/// lines to add to config.pl.
fn print_findings(findings: &[Finding]) {
    for finding in findings {
        println!("problem: {}", finding.describe());
        if let Finding::OwnerEdits(edits) = finding {
            println!("Add these lines at the end of {}:", edits.config_path.display());
            for line in edits.fix_lines() {
                println!("    {line}");
            }
            println!("or turn the owners' editor off altogether:");
            println!("    $Conf{{CgiUserConfigEditEnable}} = 0;");
        }
    }
}

/// What a clean check says.
fn print_clean(sources: &Sources, inspection: &check::Inspection) {
    let count = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "ok: {}: {}, none duplicated or mishandled; {} registered in the journal, each with its line; {} that \
         bpc-register wrote, each for a host in hosts",
        sources.hosts_path().display(),
        count(inspection.host_lines, "host line", "host lines"),
        count(inspection.journaled, "host", "hosts"),
        count(inspection.own_configs, "per-host config", "per-host configs"),
    );
    println!(
        "ok: {}: host owners can change only harmless settings (no command, path, argument, address or mail)",
        sources.conf_dir.join("config.pl").display()
    );
}

/// Runs one of the `hosts` commands.
fn hosts(config_path: &std::path::Path, command: HostsCommand) -> ExitCode {
    let config = match ServerConfig::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            return ExitCode::from(2);
        }
    };
    let admin = Admin::new(config);
    let result = match command {
        HostsCommand::List { json } => admin.list().map(|listing| {
            notes(&listing.notes);
            if json { admin::to_json(&listing.hosts) } else { admin::render_table(&listing.hosts) }
        }),
        HostsCommand::Show { host, json } => admin.show(&host).map(|details| {
            notes(&details.notes);
            if json { admin::to_json(&details) } else { admin::render_details(&details) }
        }),
        HostsCommand::Transfer { host, logon } => {
            // The same directory the forced command consults.
            let directory = match server::register::directory_from_config(&admin.config().directory) {
                Ok(directory) => directory,
                Err(error) => {
                    eprintln!("bpc-register: {error}");
                    return ExitCode::from(2);
                }
            };
            admin.transfer(directory.as_ref(), &host, &logon, &admin::invoking_admin()).map(|transfer| match transfer {
                Transfer::AlreadyOwned => format!("{host} is already registered to {logon}; nothing was changed\n"),
                Transfer::Done { previous, lines, reload_problem } => {
                    reloaded(reload_problem.as_deref());
                    format!(
                        "{host} is now registered to {logon} (was {}; {lines} line{} of hosts changed)\n",
                        previous.join(", "),
                        if lines == 1 { "" } else { "s" }
                    )
                }
            })
        }
        HostsCommand::Remove { host, purge } => {
            admin.remove(&host, purge, &admin::invoking_admin()).map(|removal| removed(&host, purge, &removal))
        }
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bpc-register: {}", protocol::text::one_line(&error.to_string()));
            ExitCode::from(if error.is_usage() { 2 } else { 1 })
        }
    }
}

/// What `hosts remove` did, and what becomes of the backups.
fn removed(host: &HostName, purge: bool, removal: &admin::Removal) -> String {
    reloaded(removal.reload_problem.as_deref());
    let config = match &removal.config_removed {
        Some(path) => format!("and its config {}", path.display()),
        None => "(it had no config file)".to_owned(),
    };
    let mut text = format!(
        "{host} is removed: {} line{} of hosts (owner {}) {config}.\n",
        removal.lines,
        if removal.lines == 1 { "" } else { "s" },
        removal.owner
    );
    let folder = removal.backups_folder.as_ref().map(|path| path.display().to_string());
    let folder = folder.as_deref().unwrap_or("BackupPC's TopDir/pc/HOST");
    if purge {
        if removal.purged.is_empty() {
            text.push_str("It had no backups.\n");
        } else {
            let numbers: Vec<String> = removal.purged.iter().map(|num| format!("#{num}")).collect();
            text.push_str(&format!(
                "BackupPC deleted its backups {} (BackupPC_backupDelete); {folder} keeps BackupPC's logs of the host.\n",
                numbers.join(", ")
            ));
        }
    } else {
        text.push_str(&admin::kept_backups_warning(std::path::Path::new(folder)));
        text.push('\n');
    }
    text
}

/// Says on standard error that BackupPC was not told to reload.
fn reloaded(problem: Option<&str>) {
    if let Some(problem) = problem {
        eprintln!(
            "bpc-register: warning: BackupPC was not told to reload ({}); it notices the change within the hour",
            protocol::text::one_line(problem)
        );
    }
}

/// Writes what could not be read, one line each, on standard error.
fn notes(notes: &[String]) {
    for note in notes {
        eprintln!("bpc-register: note: {}", protocol::text::one_line(note));
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
    if response.status == Status::Success && server.settle_owed() {
        // The client has its answer and waits only for this process to end:
        // the settle waits for the clock in a detached child of its own.
        match nix::unistd::daemon(true, false) {
            Ok(()) => server.settle(&connection),
            Err(error) => {
                EventLog::Stderr.log(Level::Warning, &format!("{connection} cannot detach to settle: {error}"))
            }
        }
    }
    match response.status {
        Status::Success => ExitCode::SUCCESS,
        Status::Refused | Status::ServerFault | Status::Challenged => ExitCode::FAILURE,
    }
}

/// Writes the answer; a client that hung up cannot be told anything more.
fn answer(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}
