//! `bpc-enroll`: enrolls this machine for backup with a BackupPC server.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use client::{ClientConfig, SetupError, SetupOptions, demo, enroll, transport_for};
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
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this machine with the backup server and install its key.
    ///
    /// Sends `OS:logon` to the server; on success installs the server's
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
    Demo(DemoArgs),
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    /// The server: file:///path/to/server.toml (in process) [default: `server` in client.toml]
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The directory login this machine is registered to (asked on a terminal when absent)
    #[arg(long, value_name = "LOGON")]
    user: Option<String>,
    /// Install under DIR instead of /, without creating the system account (no root needed)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// With a file:// server: the address the server sees the request come from
    #[arg(long, value_name = "IP")]
    client_ip: Option<IpAddr>,
    /// The client configuration [default: $BPC_ENROLL_CONFIG, else /etc/bpc-enroll/client.toml]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// The folder to build the demo in: new or empty [default: a new temporary folder]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
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
        Command::Setup(args) => setup(args),
        Command::Demo(args) => run_demo(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("bpc-enroll: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn setup(args: SetupArgs) -> Result<(), Failure> {
    let config_path =
        args.config.or_else(|| std::env::var_os("BPC_ENROLL_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
    let config = ClientConfig::load_default_or(config_path.as_deref())?;
    let Some(root) = args.root else {
        bail_usage("installing into / (creating the system account) is not available yet; use --root DIR")?
    };
    let server = match args.server.or_else(|| config.server.clone()) {
        Some(server) => server,
        None => bail_usage("no server: give --server URL or set `server` in client.toml")?,
    };
    let logon = match args.user {
        Some(user) => user,
        None => ask_logon()?,
    };
    let logon = Logon::parse(&logon).with_context(|| format!("--user {logon:?}"))?;
    let os = OsName::parse(client::detected_os())?;
    let transport = transport_for(&server, args.client_ip).map_err(SetupError::from).map_err(setup_failure)?;
    let options = SetupOptions { server, logon, os, root, config, rsyncsend_command: rsyncsend_command() };
    let enrollment = enroll(&options, transport.as_ref()).map_err(setup_failure)?;
    let host = enrollment.host.as_deref().unwrap_or("this machine");
    eprintln!("bpc-enroll: registered {host} for {}", options.logon);
    for (path, what) in &enrollment.written {
        eprintln!("bpc-enroll: wrote {} ({what})", path.display());
    }
    println!("{}", enrollment.url);
    Ok(())
}

fn run_demo(args: DemoArgs) -> Result<(), Failure> {
    let report = demo::run(args.dir.as_deref(), &rsyncsend_command()).map_err(|error| match error {
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
        let mut lines = report.enrollment.answer.lines();
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
        writeln!(
            out,
            "  SSH_ORIGINAL_COMMAND=linux:bob SSH_CONNECTION='127.0.0.3 50000 127.0.0.1 22' bpc-register --config {dir}/server.toml"
        )?;
        writeln!(
            out,
            "  SSH_ORIGINAL_COMMAND=linux:bob SSH_CONNECTION='127.0.0.2 50000 127.0.0.1 22' bpc-register --config {dir}/server.toml   # refused: alice's host"
        )?;
        writeln!(
            out,
            "  bpc-enroll setup --server file://{dir}/server.toml --client-ip 127.0.0.9 --user alice --root {dir}/client-evil   # refused: outside example.org"
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

/// The command the backup server's key is bound to: this very program.
fn rsyncsend_command() -> String {
    let exe = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    let exe = exe.as_deref().and_then(Path::to_str).filter(|p| !p.contains(['"', '\\', ' ', '\n']));
    format!("{} rsyncsend", exe.unwrap_or("/usr/bin/bpc-enroll"))
}
