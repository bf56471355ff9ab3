//! # zoo-runner: the comparison runner
//!
//! One experiment is a TOML config ([`RunConfig`]): data, family, method, the family crate's own
//! `[model]` and `[train]` tables, samplers, seeds, backend. [`run`] trains it once per seed,
//! writes a results folder (the config, checkpoints, training curves, JSON and CSV metrics, PNGs)
//! and is resumable: every stage ends with an atomic write, a killed run restarts from the last
//! finished stage, a finished run is read back, not redone. [`table`] runs a list of configs (the
//! standard suite ships in `configs/table/`) and prints the review-style table
//! ([`table::markdown`]) with a gallery page. The runner uses the family crates through their
//! public APIs only.

pub mod config;
pub mod data;
pub mod error;
mod evaluate;
pub mod families;
mod family;
pub mod methods;
pub mod metrics;
pub mod run;
pub mod spec;
pub mod table;

pub use config::{ConfigError, DataSet, EvalConfig, Family, Method, Plan, RunConfig, SamplerSpec};
pub use error::{Error, Result};
pub use metrics::Row;
pub use run::{RunOptions, run};
pub use table::{Suite, table};
