//! Entry point of the backup operator binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vertice_backup::cli::{self, DataCommand};
use vertice_backup::controller::{self, OperatorArgs};

#[derive(Parser)]
#[command(
    name = "vertice-backup",
    version,
    about = "The Vértice backup operator",
    after_help = "Exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid configuration, \
                  4 database failed, 5 object store failed, 6 integrity (corrupted or missing \
                  data, wrong key, unknown format), 7 backup not found, 8 target or backup \
                  exists, 9 drill counts differ, 130 cancelled."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Run the operator.
    Run(Box<OperatorArgs>),
    #[command(flatten)]
    Data(Box<DataCommand>),
}

fn main() -> ExitCode {
    vertice_core::tls::install_crypto_provider();
    match Cli::parse().command {
        Command::Crd => {
            for crd in vertice_backup::crds() {
                match serde_yaml::to_string(&crd) {
                    Ok(yaml) => print!("---\n{yaml}"),
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run(args) => run_operator(*args),
        Command::Data(command) => cli::run(*command),
    }
}

/// Runs the operator on a multi-threaded runtime; an error is printed and exits 1.
fn run_operator(args: OperatorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(controller::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
