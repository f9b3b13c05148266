//! `bpc-enroll`: enrolls this machine for backup with a BackupPC server.

mod docs;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use client::credentials::{ChainOptions, CredentialCache, CredentialChain, matches_all};
#[cfg(feature = "file")]
use client::demo;
use client::system::Account;
use client::{ClientConfig, HttpsSettings, SetupError, SetupOptions, SshSettings, Target, transport_with};
use protocol::text::printable;
use protocol::{Logon, OsName};
use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Enrolls this machine for backup with a BackupPC server.
///
/// Exit status: 0 success, 1 refused by the server or by a check, 2 usage or
/// configuration error, 3 the server cannot be reached.
#[derive(Debug, Parser)]
#[command(about, long_about, disable_version_flag = true, arg_required_else_help = true)]
struct Cli {
    /// Print the version, the transports built in (the URL schemes each
    /// handles) and the credential stores available, as `svn --version` does
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this machine with the backup server and install its key.
    ///
    /// Sends `OS:logon` to the server (over ssh, or as a form over https,
    /// the server's certificate checked against the system's CAs or
    /// `ca-file` in client.toml); on success installs the server's
    /// public key in the backup account's authorized_keys, bound to
    /// `bpc-enroll rsyncsend`, writes the client configuration if there is
    /// none, and prints the URL of the host's BackupPC page.
    Setup(SetupArgs),
    /// Build a self-contained demo server in a folder and enroll a host in it.
    ///
    /// Writes a server configuration (domain example.org, users alice and
    /// bob, a static resolver, a BackupPC config folder, a backup key), then
    /// enrolls pc-alice.example.org for alice through file:// and prints the
    /// exchange and every file written. DIR/server.toml then works with
    /// `bpc-register --config` and `bpc-enroll setup --server file://...`.
    #[cfg_attr(not(feature = "file"), command(hide = true))]
    Demo(DemoArgs),
    /// Say what setup installed here and what the server knows of this machine.
    ///
    /// Checks the backup account, its sudo rule and its key, then asks the
    /// server (the manifest's, else `server` in client.toml) with a status
    /// request, `info:`, which needs no password whatever the server's
    /// policy: the name the server gives this machine's address, whether it
    /// is registered, to whom, and its last backup. The server answers about
    /// the machine the request comes from, and about no other.
    ///
    /// Exit status: 0 when everything is in place and the server has this
    /// machine registered (or predates status requests), 1 when something
    /// is missing or the server does not have it registered, 2 when the
    /// server cannot be asked as configured, 3 when it cannot be reached.
    Status(StatusArgs),
    /// Remove exactly what setup installed (listed in its manifest).
    ///
    /// Removes the backup key, the sudo rule, the files and folders setup
    /// created and, if setup created it, the backup account. The host stays
    /// registered on the server: ask the backup administrator to remove it.
    Uninstall(RootArgs),
    /// List or remove the credentials cached for servers' realms.
    ///
    /// Like `svn auth`: shows each cached realm, its username and its file
    /// (never the password). With PATTERNs, only the credentials that match
    /// every one of them; with --remove, forgets those (their files and any
    /// password in the system's credential store). A pattern is a
    /// case-sensitive glob (`*`, `?`, `[...]`) matched as `*PATTERN*`
    /// against the credential kind (svn.simple), the realm and the username.
    /// Exit status 1 when PATTERNs match nothing.
    Auth(AuthArgs),
    /// The forced command of the backup server's key: run rsync, nothing else.
    ///
    /// sshd starts it with BackupPC's command in SSH_ORIGINAL_COMMAND. Only
    /// rsync's server mode as BackupPC 4 sends it is accepted (backups, and
    /// restores unless `allow-restore = false`); anything else is refused
    /// with a message and a line in the system log. Started as the backup
    /// account, it runs itself again as root through `sudo -n` (the rule
    /// setup installs); as root, with allowed-paths narrower than /, it
    /// resolves the path as root sees it and holds it open. rsync then
    /// replaces this process and talks to the server directly.
    Rsyncsend(ConfigArgs),
    /// Write bpc-enroll's man pages and shell completions into DIR.
    ///
    /// For packaging: DIR/man gets bpc-enroll(8) and a page for each
    /// subcommand, DIR/bash, DIR/zsh and DIR/fish the completions, all made
    /// from this program's own command line (as built: without the
    /// in-process server, the demo and --client-ip are left out).
    #[command(hide = true)]
    GenerateDocs {
        /// The folder to write into (created when missing)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct AuthArgs {
    /// Forget the credentials that match the PATTERNs (at least one)
    #[arg(long, requires = "patterns")]
    remove: bool,
    /// Only the credentials whose kind, realm or username matches each pattern (globs: * ? [...])
    #[arg(value_name = "PATTERN")]
    patterns: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct RootArgs {
    /// Work under DIR instead of /, as `setup --root DIR` did
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// The client configuration [default: $BPC_ENROLL_CONFIG, else /etc/bpc-enroll/client.toml]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    root: RootArgs,
    /// With a file:// server: the address the server sees the request come from
    #[arg(long, value_name = "IP")]
    client_ip: Option<IpAddr>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    /// The server: ssh://[user@]host[:port], https://host[:port] (http:// on loopback only), or file:///path/to/server.toml (in process) [default: `server` in client.toml]
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The directory login this machine is registered to (asked on a terminal when absent)
    #[arg(long, value_name = "LOGON")]
    user: Option<String>,
    /// Install under DIR instead of /, without creating the system account or its sudo rule (no root needed)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// With a file:// server: the address the server sees the request come from
    #[arg(long, value_name = "IP")]
    #[cfg_attr(not(feature = "file"), arg(hide = true))]
    client_ip: Option<IpAddr>,
    /// The name to answer the server's password challenge with [default: the --user LOGON]
    #[arg(long, value_name = "NAME")]
    username: Option<String>,
    /// Read the password for the challenge from standard input (only read if the server asks)
    #[arg(long)]
    password_stdin: bool,
    /// Never prompt: fail with a clear message when a password is needed and not given
    #[arg(long)]
    non_interactive: bool,
    /// Do not write credentials to the cache
    #[arg(long)]
    no_auth_cache: bool,
    /// Use the backup account even though setup did not make it: its home, .ssh and
    /// authorized_keys become root's, keys not bound to rsyncsend are removed and its
    /// password is disabled (once the server has accepted the registration)
    #[arg(long)]
    take_over_account: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// The folder to build the demo in: new or empty [default: a new temporary folder]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The demo server's policy: never, password or new-hosts; with password,
    /// the enrollment shows the challenge alice answers (password alice-demo)
    #[arg(long, value_name = "POLICY", default_value = "never", value_parser = ["never", "password", "new-hosts"])]
    auth: String,
}

/// An error with the exit code it deserves.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure { code: 2, error: error.into() }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None if cli.version => version(),
        None => bail_usage("a subcommand is needed: see bpc-enroll --help"),
        Some(_) if cli.version => bail_usage("--version goes alone, without a subcommand"),
        Some(command) => match command {
            Command::Rsyncsend(args) => return rsyncsend(args),
            command => run(command),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("bpc-enroll: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Setup(args) => setup(args),
        Command::Demo(args) => run_demo(args),
        Command::Status(args) => status(args),
        Command::Auth(args) => auth(args),
        Command::Uninstall(args) => uninstall(args),
        Command::Rsyncsend(_) => bail_usage("rsyncsend runs on its own"),
        Command::GenerateDocs { dir } => docs::generate(<Cli as clap::CommandFactory>::command(), &dir),
    }
}

/// What this build can do, in the spirit of `svn --version`: the transports
/// built in with the schemes each handles, and the credential stores.
fn version() -> Result<(), Failure> {
    let mut out = String::new();
    out.push_str(&format!("bpc-enroll, version {}\n\n", env!("CARGO_PKG_VERSION")));
    out.push_str("The following transports are available:\n");
    for transport in client::transport::built_in() {
        out.push_str(&format!("* {} : {}\n", transport.name, transport.description));
        for scheme in transport.schemes {
            out.push_str(&format!("  - handles '{scheme}' scheme\n"));
        }
    }
    out.push_str("\nThe following credential stores are available:\n");
    out.push_str("* the Subversion-format file cache (auth/svn.simple under the configuration folder)\n");
    match client::credentials::KeyringStore::detect() {
        Some(_) => out.push_str("* the OS credential store (the Secret Service answers)\n"),
        None => out.push_str("  (no OS credential store answers here: passwords can only go to the file cache)\n"),
    }
    print!("{out}");
    Ok(())
}

impl ConfigArgs {
    /// `--config`, else `BPC_ENROLL_CONFIG`; `None` means the default path.
    fn given(&self) -> Option<PathBuf> {
        self.config
            .clone()
            .or_else(|| std::env::var_os("BPC_ENROLL_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from))
    }

    fn load(&self) -> Result<ClientConfig, client::config::TomlError> {
        ClientConfig::load_default_or(self.given().as_deref())
    }
}

fn setup(args: SetupArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let target = Target::from_root(args.root);
    if target.changes_system() && !nix::unistd::geteuid().is_root() {
        bail_usage("setup creates the backup account and must run as root; use --root DIR for a trial without root")?
    }
    let server = match args.server.or_else(|| config.server.clone()) {
        Some(server) => server,
        None => bail_usage("no server: give --server URL or set `server` in client.toml")?,
    };
    let logon = match args.user {
        Some(user) => user,
        None if args.non_interactive => {
            bail_usage("no --user given and --non-interactive forbids asking: give --user LOGON")?
        }
        None => ask_logon()?,
    };
    let logon = Logon::parse(&logon).with_context(|| format!("--user {logon:?}"))?;
    let os = OsName::parse(client::detected_os())?;
    let options = SetupOptions {
        server: server.clone(),
        logon,
        os,
        target,
        config: config.clone(),
        program: program(),
        take_over_account: args.take_over_account,
    };
    let connect = |account: Option<&Account>| {
        transport_with(&server, args.client_ip, ssh_settings(&config, account), https_settings(&config))
    };
    let user_config = client::config::UserConfig::load()?;
    let mut credentials = CredentialChain::new(ChainOptions {
        username: args.username,
        default_username: options.logon.to_string(),
        password_stdin: args.password_stdin,
        non_interactive: args.non_interactive,
        store: !args.no_auth_cache && config.store_auth_creds && user_config.store_auth_creds != Some(false),
        plaintext: user_config.store_plaintext_passwords.unwrap_or(config.store_plaintext_passwords),
        cache: credential_cache(),
        max_prompts: 3,
    });
    let result = client::setup(&options, connect, &mut credentials);
    for notice in &credentials.notices {
        eprintln!("bpc-enroll: {notice}");
    }
    let enrollment = result.map_err(setup_failure)?;
    let host = enrollment.host.as_deref().unwrap_or("this machine");
    eprintln!("bpc-enroll: registered {host} for {}", options.logon);
    for (path, what) in &enrollment.written {
        eprintln!("bpc-enroll: wrote {} ({what})", path.display());
    }
    for change in &enrollment.taken_over {
        eprintln!("bpc-enroll: took over account {}: {change}", options.config.account);
    }
    for fingerprint in &enrollment.host_keys {
        eprintln!("bpc-enroll: sent this machine's SSH host key {fingerprint} for BackupPC to trust alone");
    }
    if let Some(note) = &enrollment.host_keys_note {
        eprintln!("bpc-enroll: warning: {note}");
    }
    println!("{}", enrollment.url);
    Ok(())
}

/// What the `ssh://` transport needs from client.toml, ssh run as `account`
/// when there is one; `None` when client.toml lacks the register key or the
/// pinned host key.
fn ssh_settings(config: &ClientConfig, account: Option<&Account>) -> Option<SshSettings> {
    Some(SshSettings {
        register_key: config.register_key.clone()?,
        known_hosts: config.known_hosts.clone()?,
        run_as: account.map(|account| (account.uid, account.gid)),
        timeout: config.timeout,
    })
}

/// What the `https://` transport needs from client.toml.
fn https_settings(config: &ClientConfig) -> HttpsSettings {
    HttpsSettings { ca_file: config.ca_file.clone(), timeout: config.timeout }
}

fn status(args: StatusArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let target = Target::from_root(args.root.root);
    let connect = |server: &str, account: Option<&Account>| {
        transport_with(server, args.client_ip, ssh_settings(&config, account), https_settings(&config))
    };
    let report = client::manage::status(&target, &config, connect);
    let mut out = std::io::stdout().lock();
    for check in &report.checks {
        let mut lines = check.detail.lines();
        writeln!(out, "{:<13} {:<7} {}", check.what, check.state.word(), lines.next().unwrap_or_default())?;
        for line in lines {
            writeln!(out, "{:<21} {line}", "")?;
        }
    }
    match report.exit_code {
        0 => Ok(()),
        code => Err(Failure { code, error: anyhow::anyhow!("{}", status_summary(code)) }),
    }
}

/// The last line of a `status` that did not find everything in place.
fn status_summary(code: u8) -> &'static str {
    match code {
        3 => "the server cannot be reached",
        2 => "the server cannot be asked as configured",
        _ => "something above is missing or wrong",
    }
}

/// The user's credential cache, its passwords in the OS credential store
/// when one answers here.
fn credential_cache() -> Option<CredentialCache> {
    let cache = CredentialCache::default_location()?;
    Some(match client::credentials::KeyringStore::detect() {
        Some(store) => cache.with_os_store(std::sync::Arc::new(store)),
        None => cache,
    })
}

fn auth(args: AuthArgs) -> Result<(), Failure> {
    let Some(cache) = credential_cache() else {
        bail_usage("no home or XDG_CONFIG_HOME: there is no credential cache")?
    };
    if let Some(note) = cache.note() {
        eprintln!("bpc-enroll: {note}");
    }
    let listing = cache.list().map_err(|error| Failure { code: 1, error: error.into() })?;
    for ignored in &listing.ignored {
        eprintln!("bpc-enroll: {ignored}");
    }
    let mut out = std::io::stdout().lock();
    let mut shown = 0;
    for listed in listing.entries.iter().filter(|listed| matches_all(&listed.entry, &args.patterns)) {
        let realm = printable(listed.realm());
        let username = printable(listed.username().unwrap_or("?"));
        if args.remove {
            cache.remove_listed(listed).map_err(|error| Failure { code: 1, error: error.into() })?;
            writeln!(out, "Removed: {realm} ({username})")?;
        } else {
            writeln!(out, "Realm: {realm}\nUsername: {username}\nFile: {}\n", listed.path.display())?;
        }
        shown += 1;
    }
    let dir = cache.dir();
    match (shown, args.patterns.is_empty()) {
        (0, true) => eprintln!("bpc-enroll: no cached credentials in {}", dir.display()),
        (0, false) => {
            return Err(Failure {
                code: 1,
                error: anyhow::anyhow!("no cached credentials in {} match the patterns", dir.display()),
            });
        }
        _ => {}
    }
    Ok(())
}

fn uninstall(args: RootArgs) -> Result<(), Failure> {
    let target = Target::from_root(args.root);
    if target.changes_system() && !nix::unistd::geteuid().is_root() {
        bail_usage("uninstall changes the system and must run as root; use --root DIR for a trial install")?
    }
    match client::manage::uninstall(&target).map_err(|error| Failure { code: 1, error: error.into() })? {
        None => eprintln!("bpc-enroll: setup has not installed anything under {}", target.root().display()),
        Some(removed) => {
            for path in removed {
                eprintln!("bpc-enroll: removed {}", path.display());
            }
            eprintln!("bpc-enroll: the host stays registered on the server; ask the backup administrator to remove it");
        }
    }
    Ok(())
}

/// Checks BackupPC's command and becomes rsync; returns only on refusal.
fn rsyncsend(args: ConfigArgs) -> ExitCode {
    use client::rsyncsend::log_event;
    use std::os::unix::process::CommandExt;
    let connection = std::env::var("SSH_CONNECTION").unwrap_or_else(|_| "-".into());
    let connection = protocol::text::shorten(&protocol::text::one_line(&connection), 100);
    let refuse = |reason: String| {
        eprintln!("bpc-enroll rsyncsend: refused: {reason}");
        log_event(true, &format!("{connection} refused: {reason}"));
        ExitCode::FAILURE
    };
    let config = args.given();
    let command = std::env::var_os("SSH_ORIGINAL_COMMAND");
    let request = client::launch::Request {
        config: config.as_deref(),
        command: command.as_deref(),
        connection: &connection,
        program: &program(),
        as_root: nix::unistd::geteuid().is_root(),
    };
    let launch = match client::launch::prepare(request) {
        Ok(launch) => launch,
        Err(reason) => return refuse(reason),
    };
    if let Some(line) = &launch.log {
        log_event(false, line);
    }
    let Some((program, rest)) = launch.argv.split_first() else { return refuse("empty command".into()) };
    // `launch.pinned` stays open across the exec: rsync reaches the folder through it.
    let error = std::process::Command::new(program).args(rest).env_clear().envs(launch.env.iter().cloned()).exec();
    refuse(format!("cannot run {program}: {error}"))
}

#[cfg(not(feature = "file"))]
fn run_demo(_args: DemoArgs) -> Result<(), Failure> {
    bail_usage("the demo needs the in-process server (file://), which is not in this build")
}

#[cfg(feature = "file")]
fn run_demo(args: DemoArgs) -> Result<(), Failure> {
    let report = demo::run(args.dir.as_deref(), &program(), &args.auth).map_err(|error| match error {
        demo::DemoError::Setup(error) => setup_failure(error),
        demo::DemoError::NotEmpty(dir) => Failure { code: 2, error: demo::DemoError::NotEmpty(dir).into() },
        other => Failure { code: 1, error: other.into() },
    })?;
    let dir = report.dir.display();
    let mut out = std::io::stdout().lock();
    let mut print = || -> std::io::Result<()> {
        writeln!(out, "bpc-enroll demo in {dir}\n")?;
        writeln!(out, "Server configuration: {dir}/server.toml")?;
        writeln!(out, "  domain example.org; users alice and bob ({dir}/users.toml);")?;
        writeln!(out, "  DNS from {dir}/hosts.static: 127.0.0.2 pc-alice.example.org, 127.0.0.3 pc-bob.example.org,")?;
        writeln!(out, "  127.0.0.9 evil.example.net\n")?;
        writeln!(out, "Enrollment of pc-alice.example.org for alice (file:// transport, in process):")?;
        writeln!(out, "  SSH_CONNECTION  {}", report.connection)?;
        writeln!(out, "  request         {}", report.enrollment.request)?;
        // The exchange is the server's text: shown only through `printable`.
        for line in &report.challenge {
            writeln!(out, "  challenge       {}", printable(line))?;
        }
        let answer = printable(&report.enrollment.answer);
        let mut lines = answer.lines();
        writeln!(out, "  answer          {}", lines.next().unwrap_or_default())?;
        for line in lines {
            writeln!(out, "                  {line}")?;
        }
        writeln!(out, "\nWritten on the server side:")?;
        for (path, what) in &report.server_files {
            writeln!(out, "  {}  ({what})", path.display())?;
        }
        writeln!(out, "Written on the client side (setup --root {dir}/client):")?;
        for (path, what) in &report.enrollment.written {
            writeln!(out, "  {}  ({what})", path.display())?;
        }
        writeln!(out, "\nThe host's BackupPC page: {}\n", report.enrollment.url)?;
        writeln!(out, "Try next:")?;
        let (enroll, register) = sibling_programs();
        writeln!(
            out,
            "  SSH_ORIGINAL_COMMAND=linux:bob SSH_CONNECTION='127.0.0.3 50000 127.0.0.1 22' {register} --config {dir}/server.toml"
        )?;
        writeln!(
            out,
            "  SSH_ORIGINAL_COMMAND=linux:bob SSH_CONNECTION='127.0.0.2 50000 127.0.0.1 22' {register} --config {dir}/server.toml   # refused: alice's host"
        )?;
        writeln!(
            out,
            "  {register} --config {dir}/server.toml check   # clean: hosts, the journal, the configs and config.pl agree"
        )?;
        writeln!(
            out,
            "  {enroll} setup --server file://{dir}/server.toml --client-ip 127.0.0.9 --user alice --root {dir}/client-evil   # refused: outside example.org"
        )?;
        writeln!(
            out,
            "  {enroll} status --root {dir}/client --client-ip 127.0.0.2   # what the server knows of alice's machine, asked without a password"
        )
    };
    print().context("cannot print the demo's report")?;
    Ok(())
}

fn setup_failure(error: SetupError) -> Failure {
    Failure { code: error.exit_code(), error: error.into() }
}

fn bail_usage<T>(message: &str) -> Result<T, Failure> {
    Err(Failure { code: 2, error: anyhow::anyhow!("{message}") })
}

/// Asks for the logon on the terminal; without one, says which option to use.
fn ask_logon() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no --user given and no terminal to ask on: give --user LOGON");
    }
    eprint!("Directory login this machine belongs to: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

#[cfg(feature = "file")]
/// How to run the two programs in the demo's hints: by name when they are
/// installed on the PATH, else by the path of this build (bpc-register
/// beside it when it was built, else through cargo).
fn sibling_programs() -> (String, String) {
    let on_path = |name: &str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    if on_path("bpc-enroll") && on_path("bpc-register") {
        return ("bpc-enroll".into(), "bpc-register".into());
    }
    let exe = program();
    let register = Path::new(&exe).with_file_name("bpc-register");
    let register = match register.is_file() {
        true => register.display().to_string(),
        false => "cargo run -q -p bpc-register --".into(),
    };
    (exe, register)
}

/// The program the backup server's key is bound to: this very one, when its
/// path is plain enough for sshd's command line.
fn program() -> String {
    let exe = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    let plain = |p: &&str| p.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
    exe.as_deref().and_then(Path::to_str).filter(plain).unwrap_or("/usr/bin/bpc-enroll").to_owned()
}
