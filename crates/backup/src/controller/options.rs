//! The backup operator's command-line flags: the shared `run` flags plus its own.

use vertice_core::cli::RunArgs;

/// `vertice-backup run` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct OperatorArgs {
    /// The flags every Vértice operator has (client, admin server, leader election, logging).
    #[command(flatten)]
    pub run: RunArgs,
}
