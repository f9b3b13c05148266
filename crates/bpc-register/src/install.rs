//! `bpc-register install`: the command line of `server::install`.

use server::install::{InstallOptions, Plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The options of `bpc-register install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// Print every change and check without making any (no root needed)
    #[arg(long)]
    dry_run: bool,
    /// The DNS domain of the machines that may enroll; needed to write a new server.toml
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// The hosts' page in BackupPC's web interface, {host} standing for the host
    /// [default: http://THIS-HOST/backuppc/index.cgi?host={host}]
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The machines' backup account, which BackupPC logs in as [default: bckpciuem]
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// The addresses BackupPC connects from (comma-separated), for the machines' from=
    #[arg(long, value_name = "ADDRESSES")]
    from: Option<String>,
    /// The port of the machines' sshd [default: 22]
    #[arg(long, value_name = "PORT")]
    client_port: Option<u16>,
    /// BackupPC's configuration folder, for a new server.toml
    #[arg(long, value_name = "DIR", default_value = "/etc/backuppc")]
    conf_dir: PathBuf,
    /// Where machines may enroll from: from= on the register key's line (addresses or patterns)
    #[arg(long, value_name = "PATTERNS")]
    register_from: Option<String>,
    /// Leave BackupPC's config.pl as it is and only print the lines it needs
    #[arg(long)]
    keep_backuppc_config: bool,
}

/// Plans, prints and (unless `--dry-run`) makes the changes.
pub(crate) fn run(config_path: &Path, args: InstallArgs, packaged_example: &str) -> ExitCode {
    let config_path = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_owned());
    let program = std::env::current_exe()
        .and_then(|path| path.canonicalize())
        .map_or_else(|_| "/usr/bin/bpc-register".to_owned(), |path| path.display().to_string());
    let options = InstallOptions {
        config_path,
        packaged_example: packaged_example.to_owned(),
        program,
        domain: args.domain,
        url: args.url,
        account: args.account,
        from: args.from,
        client_port: args.client_port,
        conf_dir: args.conf_dir,
        register_from: args.register_from,
        fix_backuppc_config: !args.keep_backuppc_config,
    };
    let plan = match server::install::plan(&options) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("bpc-register: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    println!("bpc-register install: {}", plan.found);
    for note in &plan.notes {
        println!("note: {note}");
    }
    for done in &plan.in_place {
        println!("in place: {done}");
    }
    if args.dry_run {
        for change in &plan.changes {
            println!("would {}", change.describe());
        }
    } else if let Err(error) = plan.apply(|change| println!("{}", change.describe())) {
        eprintln!("bpc-register: {error}");
        return ExitCode::from(error.exit_code());
    }
    if plan.changes.is_empty() {
        println!("nothing to change");
    }
    finish(&plan)
}

/// Prints the problems and the next steps; exit 1 when there are problems.
fn finish(plan: &Plan) -> ExitCode {
    for problem in &plan.problems {
        println!("problem: {problem}");
    }
    println!("Next:");
    for (number, step) in plan.next_steps.iter().enumerate() {
        println!("  {}. {step}", number + 1);
    }
    if plan.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
