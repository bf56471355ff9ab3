//! `zoo sample`: run a sampler on an energy and report per-dimension moments and diagnostics.
//! The JSON schema is documented in `docs/cli.md`.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use zoo_energy::{BackendKind, rng, tensor};
use zoo_mcmc::run::{RunConfig, TemperingRunConfig, run as run_chains, run_tempering};
use zoo_mcmc::sampler::{AnySampler, SamplerKind};
use zoo_runner::spec::EnergySpec;

/// Arguments of `zoo sample`; each may also come from `--config FILE.toml` (the flags win).
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A TOML file with any of the settings below (same names, snake_case) and an [energy] table.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Energy: a preset (gaussian, correlated_gaussian, mixture, funnel, banana, double_well, mlp),
    /// a preset with overrides (`funnel{dim = 20}`), or `@file.toml`.
    #[arg(long)]
    energy: Option<String>,
    /// ula, mala, hmc, or pt (parallel tempering around --kernel).
    #[arg(long)]
    sampler: Option<String>,
    /// nuts: the maximum tree depth (1..=20; at most 2^depth leapfrog steps per transition).
    #[arg(long)]
    max_depth: Option<usize>,
    /// pt: the kernel run in every replica (ula, mala or hmc; default mala).
    #[arg(long)]
    kernel: Option<String>,
    /// pt: number of replicas K (>= 2) on a geometric ladder from beta = 1 to --beta-min.
    #[arg(long)]
    replicas: Option<usize>,
    /// pt: the hottest replica's inverse temperature, in (0, 1).
    #[arg(long, allow_negative_numbers = true)]
    beta_min: Option<f64>,
    /// pt: keep the geometric ladder (by default it moves towards equal swap rates in warm-up).
    #[arg(long)]
    fixed_ladder: bool,
    /// Number of parallel chains.
    #[arg(long)]
    chains: Option<usize>,
    /// Steps after warm-up.
    #[arg(long)]
    steps: Option<usize>,
    /// Warm-up steps (not kept; the step size adapts here with --target-acceptance).
    #[arg(long)]
    warmup: Option<usize>,
    /// Step size h.
    #[arg(long, allow_negative_numbers = true)]
    step_size: Option<f64>,
    /// Leapfrog steps per HMC transition.
    #[arg(long)]
    leapfrog_steps: Option<usize>,
    /// Adapt the step size in warm-up to this mean acceptance (MALA, HMC).
    #[arg(long)]
    target_acceptance: Option<f64>,
    /// HMC: exactly --leapfrog-steps per transition instead of a length jittered uniformly on
    /// {1, ..., 2L - 1} (a fixed length can resonate with the target's scales).
    #[arg(long)]
    no_jitter: bool,
    /// Keep every n-th step.
    #[arg(long)]
    thin: Option<usize>,
    /// Standard deviation of the N(0, s^2 I) initial positions.
    #[arg(long, allow_negative_numbers = true)]
    init_std: Option<f64>,
    /// Initial positions: a CSV file with one row per chain (overrides --chains and --init-std).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Seed of every random draw.
    #[arg(long)]
    seed: Option<u64>,
    /// flex, ndarray or wgpu.
    #[arg(long)]
    backend: Option<String>,
    /// Write the JSON here (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The settings file of `zoo sample --config`: unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleFile {
    energy: Option<EnergySpec>,
    sampler: Option<String>,
    kernel: Option<String>,
    max_depth: Option<usize>,
    replicas: Option<usize>,
    beta_min: Option<f64>,
    adapt_ladder: Option<bool>,
    chains: Option<usize>,
    steps: Option<usize>,
    warmup: Option<usize>,
    step_size: Option<f64>,
    leapfrog_steps: Option<usize>,
    target_acceptance: Option<f64>,
    jitter: Option<bool>,
    thin: Option<usize>,
    init_std: Option<f64>,
    seed: Option<u64>,
    backend: Option<String>,
}

#[derive(Debug, Serialize)]
struct Settings {
    /// The kernel (inside every replica with tempering).
    sampler: SamplerKind,
    tempering: Option<TemperingSettings>,
    chains: usize,
    steps: usize,
    warmup: usize,
    step_size: f64,
    adapted_step_size: f64,
    leapfrog_steps: Option<usize>,
    jitter: Option<bool>,
    max_depth: Option<usize>,
    target_acceptance: Option<f64>,
    thin: usize,
    init_std: f64,
    backend: BackendKind,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    energy: EnergySpec,
    energy_description: String,
    dim: usize,
    log_normalizer: Option<f64>,
    settings: Settings,
    seed: u64,
    kept_draws_per_chain: usize,
    mean: Vec<f64>,
    variance: Vec<f64>,
    mcse: Vec<f64>,
    ess: Vec<f64>,
    rhat: Vec<f64>,
    acceptance_rate: f64,
    divergences: usize,
    mean_tree_depth: Option<f64>,
    inv_mass: Option<Vec<f64>>,
    tempering: Option<TemperingReport>,
    warnings: Vec<String>,
    wall_seconds: f64,
}

/// Parallel tempering's settings.
#[derive(Debug, Clone, Serialize)]
struct TemperingSettings {
    replicas: usize,
    beta_min: f64,
    adapt_ladder: bool,
}

/// What parallel tempering reports beside the target replica's draws.
#[derive(Debug, Serialize)]
struct TemperingReport {
    /// The ladder after warm-up, beta = 1 first.
    betas: Vec<f64>,
    /// Mean exchange probability of each neighbour pair after warm-up.
    swap_rates: Vec<f64>,
    /// The kernel's mean acceptance in each replica after warm-up.
    acceptance_per_replica: Vec<f64>,
}

/// A run's draws and rates, from either driver.
struct Ran {
    draws: zoo_mcmc::diagnostics::Draws,
    acceptance_rate: f64,
    step_size: f64,
    divergences: usize,
    mean_tree_depth: Option<f64>,
    inv_mass: Option<Vec<f64>>,
    tempering: Option<TemperingReport>,
}

/// The swap rate under which a pair is reported as a bottleneck.
pub const SWAP_WARNING: f64 = 0.1;

pub fn run(args: SampleArgs) -> Result<()> {
    let file = read_file(&args)?;
    let energy_spec = match (&args.energy, file.energy.clone()) {
        (Some(s), _) => EnergySpec::parse(s)?,
        (None, Some(spec)) => spec,
        (None, None) => bail!(
            "no energy given: use --energy NAME (one of {})",
            zoo_runner::spec::PRESETS
        ),
    };
    let s = Resolved::new(&args, &file)?;
    let device = s.backend.device()?;
    let energy = energy_spec.build(&device)?;
    let d = energy.dim();
    zoo_energy::memory::check_points("the chains (chains x dim)", s.chains, d)?;
    zoo_mcmc::run::check_kept_draws(s.chains, s.steps / s.thin, d)?;
    let mut rng = rng::seeded(s.seed);
    let (init, chains) = match &args.init {
        Some(path) => {
            let (values, rows, cols) = read_csv(path)?;
            (tensor::from_host2(values, [rows, cols], &device), rows)
        }
        None => {
            let x = rng::normal(&mut rng, [s.chains, d], &device).mul_scalar(s.init_std);
            (x, s.chains)
        }
    };
    let start = Instant::now();
    let ran = s.sample(&mut rng, energy.as_ref(), init)?;
    let summary = ran.draws.summary();
    let report = Report {
        schema: "ebm-zoo/sample/v1",
        energy_description: energy.describe(),
        energy: energy_spec,
        dim: d,
        log_normalizer: energy.log_normalizer(),
        settings: s.settings(chains, ran.step_size),
        seed: s.seed,
        kept_draws_per_chain: ran.draws.steps(),
        mean: summary.iter().map(|s| s.mean).collect(),
        variance: summary.iter().map(|s| s.variance).collect(),
        mcse: summary.iter().map(|s| s.mcse).collect(),
        ess: summary.iter().map(|s| s.ess).collect(),
        rhat: summary.iter().map(|s| s.rhat).collect(),
        acceptance_rate: ran.acceptance_rate,
        divergences: ran.divergences,
        mean_tree_depth: ran.mean_tree_depth,
        inv_mass: ran.inv_mass,
        warnings: warnings(&summary, ran.divergences, ran.tempering.as_ref()),
        tempering: ran.tempering,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let json = serde_json::to_string_pretty(&report)?;
    match &args.out {
        Some(path) => zoo_energy::io::write_atomic(path, json.as_bytes())?,
        None => println!("{json}"),
    }
    Ok(())
}

/// The `--config` file, or an empty one.
fn read_file(args: &SampleArgs) -> Result<SampleFile> {
    let Some(path) = &args.config else {
        return Ok(SampleFile::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

/// The chains under the shared progress bar, one position per warm-up or kept step.
fn with_progress<T>(
    label: &str,
    s: &Resolved,
    run: impl FnOnce(&mut dyn FnMut(usize)) -> zoo_energy::Result<T>,
) -> Result<T> {
    let bar = zoo_mcmc::progress::bar(true, s.warmup + s.steps, "sample");
    bar.set_message(label.to_string());
    let out = run(&mut |t| {
        if t % 64 == 0 {
            bar.set_position(t as u64);
        }
    })?;
    bar.finish_and_clear();
    Ok(out)
}

/// The settings of a run: each from the flags, else the file, else the default; checked.
struct Resolved {
    kind: SamplerKind,
    max_depth: usize,
    tempering: Option<TemperingSettings>,
    backend: BackendKind,
    chains: usize,
    steps: usize,
    warmup: usize,
    step_size: f64,
    leapfrog_steps: usize,
    target_acceptance: Option<f64>,
    jitter: bool,
    thin: usize,
    init_std: f64,
    seed: u64,
}

impl Resolved {
    fn new(args: &SampleArgs, file: &SampleFile) -> Result<Self> {
        let pick = |a: &Option<String>, f: &Option<String>, default: &str| {
            a.clone().or(f.clone()).unwrap_or_else(|| default.into())
        };
        let sampler = pick(&args.sampler, &file.sampler, "mala");
        let kernel = pick(&args.kernel, &file.kernel, "mala");
        let tempering = (sampler == "pt").then(|| TemperingSettings {
            replicas: args.replicas.or(file.replicas).unwrap_or(8),
            beta_min: args.beta_min.or(file.beta_min).unwrap_or(0.05),
            adapt_ladder: !args.fixed_ladder && file.adapt_ladder.unwrap_or(true),
        });
        let pt_only = [
            ("kernel", args.kernel.is_some() || file.kernel.is_some()),
            (
                "replicas",
                args.replicas.is_some() || file.replicas.is_some(),
            ),
            (
                "beta_min",
                args.beta_min.is_some() || file.beta_min.is_some(),
            ),
            (
                "fixed_ladder",
                args.fixed_ladder || file.adapt_ladder.is_some(),
            ),
        ];
        if let Some((key, _)) = pt_only
            .iter()
            .find(|(_, given)| *given && tempering.is_none())
        {
            bail!("invalid {key}: only --sampler pt (parallel tempering) takes it");
        }
        let kind: SamplerKind = if tempering.is_some() { kernel } else { sampler }.parse()?;
        if kind == SamplerKind::Nuts && tempering.is_some() {
            bail!(
                "invalid kernel: nuts inside parallel tempering is not supported (use mala or hmc)"
            );
        }
        let max_depth = args.max_depth.or(file.max_depth);
        if max_depth.is_some() && kind != SamplerKind::Nuts {
            bail!("invalid max_depth: only --sampler nuts takes it");
        }
        let max_depth = max_depth.unwrap_or(10);
        zoo_mcmc::sampler::Nuts::new(1.0, max_depth)?;
        let s = Resolved {
            kind,
            max_depth,
            tempering,
            backend: pick(&args.backend, &file.backend, "flex").parse()?,
            chains: args.chains.or(file.chains).unwrap_or(4),
            steps: args.steps.or(file.steps).unwrap_or(2000),
            warmup: args.warmup.or(file.warmup).unwrap_or(500),
            step_size: args.step_size.or(file.step_size).unwrap_or(0.1),
            leapfrog_steps: args.leapfrog_steps.or(file.leapfrog_steps).unwrap_or(10),
            target_acceptance: args.target_acceptance.or(file.target_acceptance),
            jitter: !args.no_jitter && file.jitter.unwrap_or(true),
            thin: args.thin.or(file.thin).unwrap_or(1),
            init_std: args.init_std.or(file.init_std).unwrap_or(1.0),
            seed: args.seed.or(file.seed).unwrap_or(0),
        };
        if s.chains == 0 {
            bail!("invalid chains: must be >= 1");
        }
        if s.thin == 0 || s.steps / s.thin.max(1) < 4 {
            bail!(
                "invalid steps/thin: need steps / thin >= 4 kept draws per chain for the diagnostics (got steps {}, thin {})",
                s.steps,
                s.thin
            );
        }
        zoo_energy::check_positive("init_std", s.init_std)?;
        if let Some(t) = &s.tempering {
            zoo_mcmc::sampler::Ladder::geometric(t.replicas, t.beta_min)?;
        }
        Ok(s)
    }

    /// The kernel, alone or inside parallel tempering, run under the shared progress bar.
    fn sample(
        &self,
        rng: &mut zoo_energy::ZooRng,
        energy: &dyn zoo_energy::Energy,
        init: burn::prelude::Tensor<2>,
    ) -> Result<Ran> {
        let mut kernel = match AnySampler::new(self.kind, self.step_size, self.leapfrog_steps)? {
            AnySampler::Hmc(h) => AnySampler::Hmc(h.with_jitter(self.jitter)),
            other => other,
        };
        if self.kind == SamplerKind::Nuts && self.tempering.is_none() {
            return self.sample_nuts(rng, energy, init);
        }
        let Some(t) = &self.tempering else {
            let label = format!("{:?} on {}", self.kind, energy.describe());
            let out = with_progress(&label, self, |progress| {
                run_chains(
                    rng,
                    &mut kernel,
                    energy,
                    init,
                    &self.chain_config(),
                    progress,
                )
            })?;
            return Ok(Ran {
                draws: out.draws.expect("draws are kept"),
                acceptance_rate: out.acceptance_rate,
                step_size: out.step_size,
                divergences: out.divergences,
                mean_tree_depth: None,
                inv_mass: None,
                tempering: None,
            });
        };
        let [chains, d] = init.dims();
        zoo_mcmc::sampler::check_replicas(t.replicas, chains, d)?;
        let ladder = zoo_mcmc::sampler::Ladder::geometric(t.replicas, t.beta_min)?;
        let mut pt = zoo_mcmc::sampler::ParallelTempering::new(kernel, ladder);
        let label = format!(
            "PT x {} ({:?}) on {}",
            t.replicas,
            self.kind,
            energy.describe()
        );
        let config = TemperingRunConfig {
            warmup: self.warmup,
            steps: self.steps,
            thin: self.thin,
            adapt_ladder: t.adapt_ladder,
            target_acceptance: self.target_acceptance,
            check_every: 1,
            keep_draws: true,
        };
        let out = with_progress(&label, self, |progress| {
            run_tempering(rng, &mut pt, energy, init, &config, progress)
        })?;
        Ok(Ran {
            draws: out.draws.expect("draws are kept"),
            acceptance_rate: out.acceptance[0],
            step_size: out.step_size,
            divergences: out.divergences,
            mean_tree_depth: None,
            inv_mass: None,
            tempering: Some(TemperingReport {
                betas: out.betas,
                swap_rates: out.swap_rates,
                acceptance_per_replica: out.acceptance,
            }),
        })
    }

    /// The chain driver's settings (every step checked, draws kept).
    fn chain_config(&self) -> RunConfig {
        RunConfig {
            warmup: self.warmup,
            steps: self.steps,
            thin: self.thin,
            target_acceptance: self.target_acceptance,
            check_every: 1,
            keep_draws: true,
        }
    }

    /// NUTS: Stan's warm-up (step size towards `target_acceptance`, default 0.8, and the diagonal
    /// mass in windows), then `steps` transitions with the tuned kernel.
    fn sample_nuts(
        &self,
        rng: &mut zoo_energy::ZooRng,
        energy: &dyn zoo_energy::Energy,
        init: burn::prelude::Tensor<2>,
    ) -> Result<Ran> {
        let mut nuts = zoo_mcmc::sampler::Nuts::new(self.step_size, self.max_depth)?;
        let label = format!("NUTS on {}", energy.describe());
        let target = self.target_acceptance.unwrap_or(0.8);
        let warm = with_progress(&label, self, |progress| {
            let state =
                zoo_mcmc::run::nuts_warmup(rng, &mut nuts, energy, init, self.warmup, target)?;
            progress(self.warmup);
            Ok(state)
        })?;
        let config = RunConfig {
            warmup: 0,
            ..self.chain_config()
        };
        let out = with_progress(&label, self, |progress| {
            run_chains(rng, &mut nuts, energy, warm.position, &config, progress)
        })?;
        Ok(Ran {
            draws: out.draws.expect("draws are kept"),
            acceptance_rate: out.acceptance_rate,
            step_size: out.step_size,
            divergences: out.divergences,
            mean_tree_depth: out.mean_tree_depth,
            inv_mass: Some(nuts.inv_mass().to_vec()).filter(|m| !m.is_empty()),
            tempering: None,
        })
    }

    /// The settings as reported, with the number of chains run and the step size after warm-up.
    fn settings(&self, chains: usize, adapted_step_size: f64) -> Settings {
        let hmc = self.kind == SamplerKind::Hmc;
        Settings {
            sampler: self.kind,
            tempering: self.tempering.clone(),
            chains,
            steps: self.steps,
            warmup: self.warmup,
            step_size: self.step_size,
            adapted_step_size,
            leapfrog_steps: hmc.then_some(self.leapfrog_steps),
            jitter: hmc.then_some(self.jitter),
            max_depth: (self.kind == SamplerKind::Nuts).then_some(self.max_depth),
            target_acceptance: self.target_acceptance,
            thin: self.thin,
            init_std: self.init_std,
            backend: self.backend,
        }
    }
}

/// The split R-hat threshold above which the chains are reported as not mixed (Vehtari et al.
/// 2021 recommend 1.01).
pub const RHAT_WARNING: f64 = 1.01;

/// Warnings on the diagnostics: R-hat above [`RHAT_WARNING`] in any coordinate, any divergence,
/// a tempering pair that rarely swaps.
fn warnings(
    summary: &[zoo_mcmc::diagnostics::Summary],
    divergences: usize,
    tempering: Option<&TemperingReport>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = tempering {
        for (k, r) in t.swap_rates.iter().enumerate() {
            if r.is_nan() || *r < SWAP_WARNING {
                out.push(format!(
                    "replicas {k} and {} swap at rate {r:.3} < {SWAP_WARNING}: add replicas or raise beta_min",
                    k + 1
                ));
            }
        }
    }
    let worst = summary
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.rhat.total_cmp(&b.1.rhat));
    if let Some((i, s)) = worst.filter(|(_, s)| s.rhat.is_nan() || s.rhat > RHAT_WARNING) {
        out.push(format!(
            "split R-hat {:.3} > {RHAT_WARNING} (coordinate {i}): the chains have not mixed; run longer or adapt the step size",
            s.rhat
        ));
    }
    if divergences > 0 {
        out.push(format!(
            "{divergences} divergent transitions after warm-up: the draws may be biased; reduce the step size or reparameterise"
        ));
    }
    out
}

/// Reads a CSV of floats (one row per chain, no header); `nan` and `inf` parse, and are then
/// rejected by the sampler's own validation with their row and column.
fn read_csv(path: &std::path::Path) -> Result<(Vec<f32>, usize, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut values = Vec::new();
    let (mut rows, mut cols) = (0, None);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: Vec<f32> = line
            .split(',')
            .map(|v| {
                v.trim().parse::<f32>().with_context(|| {
                    format!(
                        "{} line {}: '{}' is not a number",
                        path.display(),
                        i + 1,
                        v.trim()
                    )
                })
            })
            .collect::<Result<_>>()?;
        if *cols.get_or_insert(row.len()) != row.len() {
            bail!(
                "{} line {}: {} values, but the first row has {}",
                path.display(),
                i + 1,
                row.len(),
                cols.unwrap_or(0)
            );
        }
        values.extend(row);
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: no rows", path.display());
    }
    Ok((values, rows, cols.unwrap_or(0)))
}
