//! `zoo`: the ebm-zoo command line. Every error is one line on stderr and a non-zero exit.

mod bench;
mod physics;
mod sample;
mod table;
mod uncertainty;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// ebm-zoo: energy-based models and their generative relatives, on burn.
#[derive(Debug, Parser)]
#[command(name = "zoo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sample an energy with ULA, MALA or HMC and write the diagnostics as JSON.
    Sample(sample::SampleArgs),
    /// Standard throughput workloads (one JSON line each, the peers' shape).
    Bench {
        #[command(subcommand)]
        workload: bench::BenchCommand,
    },
    /// log Z of an energy or a spin system: exact, AIS, SMC or Jarzynski; JSON out.
    Logz(physics::LogzArgs),
    /// Observables of the 2-D Ising model by Metropolis, heat-bath or Wolff; JSON out.
    Ising(physics::IsingArgs),
    /// The comparison table: every family on the 2-D sets and digits (`configs/table/`), or
    /// `--quick`; resumable, writes results, plots and a gallery.
    Table(table::TableArgs),
    /// One experiment from a config file (data, family, method, model, budget, samplers, seeds).
    Run(table::RunArgs),
    /// How two tables (`table.json`, e.g. two backends) agree, metric by metric, within the
    /// spread over seeds.
    Compare(table::CompareArgs),
    /// Energy-based uncertainty: GEBM and its baselines on graphs under distribution shifts
    /// (AUROC tables as markdown, JSON and CSV, score histograms).
    Uncertainty {
        #[command(subcommand)]
        workload: uncertainty::UncertaintyCommand,
    },
    /// List the backends compiled into this build.
    Backends,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!(
                "error: a command is missing (sample, bench, logz, ising, table, run, compare, uncertainty, backends); see `zoo --help`"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            let first = e
                .to_string()
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .to_string();
            eprintln!("{first}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Sample(args) => sample::run(args),
        Command::Bench { workload } => bench::run(workload),
        Command::Logz(args) => physics::logz(args),
        Command::Ising(args) => physics::ising(args),
        Command::Table(args) => table::table(args),
        Command::Run(args) => table::run(args),
        Command::Compare(args) => table::compare(args),
        Command::Uncertainty { workload } => uncertainty::run(workload),
        Command::Backends => {
            for b in zoo_energy::BackendKind::compiled() {
                println!("{b}");
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
