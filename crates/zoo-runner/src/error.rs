//! The runner's typed errors.

use crate::config::ConfigError;

/// What can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rejected config (nothing was written).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A family crate, a sampler or the data reported an error.
    #[error(transparent)]
    Zoo(#[from] zoo_energy::Error),
    /// Reading or writing the results folder.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A results file that cannot be read back (a stage file from another version, or edited).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The suite asked for is empty or names runs twice.
    #[error("{0}")]
    Suite(String),
}

/// `Result` with the runner's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error with its context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
