//! Entry point of the db-provision operator binary.

use clap::{Parser, Subcommand};
use vertice_core::cli::RunArgs;

#[derive(Parser)]
#[command(
    name = "vertice-db-provision",
    version,
    about = "The Vértice db-provision operator"
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
    Run(Box<RunArgs>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            for crd in vertice_db_provision::crds() {
                print!("---\n{}", serde_yaml::to_string(&crd)?);
            }
            Ok(())
        }
        Command::Run(_args) => anyhow::bail!("the db-provision operator has no controllers yet"),
    }
}
