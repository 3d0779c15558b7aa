//! Logging with tracing-subscriber: text for people, JSON for log collectors, filtered with
//! `RUST_LOG` syntax. Every reconcile runs in a span naming the object (see the runner), so each
//! line says which object it is about.

use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::cli::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter is not valid `RUST_LOG` syntax.
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// What the parser said.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
}

/// Installs the global subscriber. Does nothing if one is already installed (tests, or a `main`
/// that set up its own), so calling it from [`Operator::run`](crate::Operator::run) is always safe.
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| TelemetryError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let registry = tracing_subscriber::registry().with(env_filter);
    // `try_init` fails only when a global subscriber exists already; keeping that one is right.
    let _already_installed = match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
    Ok(())
}
