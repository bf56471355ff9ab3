//! `zoo table` (the standard suite, or `--quick`) and `zoo run CONFIG.toml` (one experiment):
//! thin wrappers over `zoo-runner`.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use zoo_energy::BackendKind;
use zoo_runner::{RunConfig, RunOptions, Suite};

/// Arguments of `zoo table`.
#[derive(Debug, Args)]
pub struct TableArgs {
    /// The quick suite (`configs/quick/`: one 2-D set, short budgets) instead of the standard one.
    #[arg(long)]
    quick: bool,
    /// A folder of run configs (default: `configs/table/`, or `configs/quick/` with --quick).
    #[arg(long)]
    suite: Option<PathBuf>,
    /// The results folder (default: `results/table/` or `results/quick/`); a finished run in it
    /// is read back, an interrupted one resumes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// flex, ndarray or wgpu (overrides the configs' `backend`).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// No progress bars or stage messages.
    #[arg(long)]
    quiet: bool,
    /// Configs run at a time, each on (cores / jobs) threads (default: one per core, one thread
    /// each, or 1 when a config runs on wgpu); the metrics' last digits depend on the threads
    /// per job.
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only the I-th of N disjoint slices of the suite (e.g. one task of a job array), into
    /// the same results layout; no table is written. Then `--merge` the folders.
    #[arg(long, value_name = "I/N", conflicts_with = "merge")]
    shard: Option<String>,
    /// Gather the finished runs of these results folders (e.g. one per shard) into --out and
    /// print the one table; fails, naming them, if some runs are finished in none of them.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    merge: Vec<PathBuf>,
}

/// Arguments of `zoo run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file.
    config: PathBuf,
    /// The results root: the run writes into `<out>/<name>/`.
    #[arg(long, default_value = "results/runs")]
    out: PathBuf,
    /// flex, ndarray or wgpu (overrides the config's `backend`).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// No progress bars or stage messages.
    #[arg(long)]
    quiet: bool,
}

pub fn table(args: TableArgs) -> Result<()> {
    let name = if args.quick { "quick" } else { "table" };
    let dir = args
        .suite
        .unwrap_or_else(|| PathBuf::from("configs").join(name));
    // Every config is validated before anything is written.
    let suite = Suite::load(&dir, args.backend)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(name));
    if args.jobs == Some(0) {
        anyhow::bail!("--jobs must be at least 1");
    }
    let opts = RunOptions {
        out: out.clone(),
        progress: !args.quiet,
        verbose: !args.quiet,
        jobs: args.jobs.unwrap_or_else(|| suite.default_jobs()),
    };
    let started = std::time::Instant::now();
    if let Some(shard) = &args.shard {
        let (i, n) = zoo_runner::table::parse_shard(shard)?;
        let part = suite.shard(i, n)?;
        zoo_runner::table::run_all(&part, &opts)?;
        eprintln!(
            "shard {i}/{n}: {} of {} runs in {:.1} s, results in {}; merge with `zoo table --merge DIR...`",
            part.configs.len(),
            suite.configs.len(),
            started.elapsed().as_secs_f64(),
            out.display()
        );
        return Ok(());
    }
    if !args.merge.is_empty() {
        zoo_runner::table::merge(&suite, &args.merge, &out)?;
    }
    let md = zoo_runner::table(&suite, &opts)?;
    println!("{md}");
    eprintln!(
        "{} runs in {:.1} s; results, plots and gallery in {}",
        suite.configs.len(),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

pub fn run(args: RunArgs) -> Result<()> {
    let cfg = RunConfig::load(&args.config, args.backend)?;
    let opts = RunOptions {
        out: args.out.clone(),
        progress: !args.quiet,
        verbose: !args.quiet,
        jobs: 1,
    };
    let rows = zoo_runner::run(&cfg, &opts)?;
    println!(
        "{}",
        zoo_runner::table::markdown(&rows, std::slice::from_ref(&cfg))
    );
    eprintln!("results in {}", args.out.join(&cfg.name).display());
    Ok(())
}

/// Arguments of `zoo compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The first table's `table.json` (e.g. results/table/table.json).
    a: PathBuf,
    /// The second table's `table.json` (e.g. from `--backend ndarray`).
    b: PathBuf,
    /// A row agrees when its means differ by at most this many standard errors of the difference.
    #[arg(long, default_value_t = 3.0)]
    k: f64,
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let read = |p: &PathBuf| -> Result<Vec<zoo_runner::Row>> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", p.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a table.json: {e}", p.display()))
    };
    let (a, b) = (read(&args.a)?, read(&args.b)?);
    println!(
        "| metric | rows | within {} s.e. | outside: row (mean a, mean b, s.e. of the difference) |",
        args.k
    );
    println!("|---|---|---|---|");
    for g in zoo_runner::table::compare(&a, &b, args.k) {
        let outside: Vec<String> = g
            .outside
            .iter()
            .map(|(row, ma, mb, se)| format!("{row} ({ma:.4}, {mb:.4}, {se:.4})"))
            .collect();
        println!(
            "| {} | {} | {} | {} |",
            g.metric,
            g.rows,
            g.within,
            if outside.is_empty() {
                "–".into()
            } else {
                outside.join("; ")
            }
        );
    }
    Ok(())
}
