//! The `zoo` command's tests that run it as a subprocess, compiled as one binary (one link instead
//! of three). `properties.rs` sets the process-wide memory budget and keeps a binary of its own.

#[path = "bad_input.rs"]
mod bad_input;
#[path = "cli.rs"]
mod cli;
#[path = "table.rs"]
mod table;
