//! One error type for the crate (candle / linfa style): parameter errors are found at the
//! boundary, runtime errors (divergence) name the step and the chain where they happened.

use thiserror::Error;

/// Errors of `zoo-energy`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is outside its valid range (`step_size` must be positive, ...).
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter's public name (the same as its TOML key and CLI flag).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor does not have the shape the operation needs.
    #[error("wrong shape for {what}: expected {expected}, got {got:?}")]
    Shape {
        /// Which input.
        what: String,
        /// The expected shape, in words (`[n, 2]`).
        expected: String,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// Input data contains NaN or infinity.
    #[error("{what} contains a non-finite value ({value}) at row {row}, column {column}")]
    NonFinite {
        /// Which input.
        what: String,
        /// Row (chain, particle, sample) of the first bad value.
        row: usize,
        /// Column (dimension) of the first bad value.
        column: usize,
        /// The value itself.
        value: f32,
    },
    /// A sampler produced a NaN or infinite energy or position.
    #[error(
        "sampler diverged at step {step}, chain {chain}: {what} = {value}; \
         reduce the step size (it was {step_size})"
    )]
    Divergence {
        /// The step (counted from 1, warm-up included) after which the value appeared.
        step: usize,
        /// The first chain affected.
        chain: usize,
        /// `energy` or `position`.
        what: &'static str,
        /// The bad value.
        value: f32,
        /// The step size in use at that step.
        step_size: f64,
    },
    /// Training produced a non-finite or exploding loss, energy or parameter.
    #[error(
        "training diverged at iteration {iteration}: {what} = {value}; the model was restored to \
         iteration {last_good} (lower the learning rate or the sampler step size, or add an \
         energy penalty or gradient clipping)"
    )]
    TrainingDiverged {
        /// The iteration (counted from 1) at which it was detected.
        iteration: usize,
        /// What went bad (`loss`, `energy of the data`, ...).
        what: String,
        /// The bad value.
        value: f64,
        /// The iteration of the last good model (0: the initial model).
        last_good: usize,
    },
    /// A name (energy, sampler, backend, ...) that is not known.
    #[error("unknown {kind} '{name}'; known: {known}")]
    UnknownName {
        /// What was looked up.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// A backend that exists in burn but was not compiled into this build.
    #[error(
        "backend '{name}' is not compiled into this build; compiled backends: {compiled} \
         (rebuild with `--features {name}`)"
    )]
    BackendNotCompiled {
        /// The backend asked for.
        name: String,
        /// The ones that are available.
        compiled: String,
    },
    /// A user-set size would allocate more memory than the budget ([`crate::memory`]).
    #[error(
        "{what} would need about {estimate}, more than the memory limit of {limit} \
         (80% of the available memory; set ZOO_MAX_MEMORY to change it)"
    )]
    TooLarge {
        /// What would be allocated, and by which settings.
        what: String,
        /// The estimated size, for people.
        estimate: String,
        /// The budget, for people.
        limit: String,
    },
    /// A checkpoint file cannot be read, or belongs to another run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file (or the in-memory snapshot's name).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A malformed configuration (TOML or an energy specification).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// File system errors.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// The same error with a parameter's name placed inside the table `table` (`iterations` ->
    /// `prior.iterations`), for a config nested in another; other errors are unchanged.
    pub fn within(self, table: &str) -> Self {
        match self {
            Error::InvalidParameter { name, reason } => Error::InvalidParameter {
                name: format!("{table}.{name}"),
                reason,
            },
            other => other,
        }
    }
}

/// Checks that `value` is finite and strictly positive.
pub fn check_positive(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(
            name,
            format!("must be finite and > 0, got {value}"),
        ))
    }
}

/// Checks that `value` is finite and >= 0 (a penalty weight, a noise level).
pub fn check_non_negative(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(
            name,
            format!("must be finite and >= 0, got {value}"),
        ))
    }
}

/// Checks Adam's `beta_1` and `beta_2`: each in [0, 1).
pub fn check_adam_betas(beta_1: f64, beta_2: f64) -> Result<()> {
    for (name, v) in [("beta_1", beta_1), ("beta_2", beta_2)] {
        if !(0.0..1.0).contains(&v) {
            return Err(Error::invalid(name, format!("must be in [0, 1), got {v}")));
        }
    }
    Ok(())
}

/// Checks that a count (iterations, batch size, ...) is at least 1.
pub fn check_count(name: &str, value: usize) -> Result<usize> {
    if value == 0 {
        Err(Error::invalid(name, "must be >= 1"))
    } else {
        Ok(value)
    }
}

/// Checks that `value` lies in the open interval (0, 1).
pub fn check_unit_open(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(Error::invalid(
            name,
            format!("must lie in (0, 1), got {value}"),
        ))
    }
}
