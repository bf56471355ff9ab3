//! `zoo logz` (partition functions by exact sums, AIS, SMC or Jarzynski) and `zoo ising`
//! (spin-system observables). JSON schemas in `docs/cli.md`.

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use zoo_energy::energy::{Covariance, Gaussian};
use zoo_energy::{BackendKind, ZooRng, rng};
use zoo_mcmc::estimate::{AnnealConfig, JarzynskiConfig, LogZEstimate, anneal, jarzynski};
use zoo_mcmc::sampler::{AnySampler, SamplerKind, geometric_schedule};
use zoo_runner::spec::EnergySpec;
use zoo_spin::{
    Ising, SpinAnnealConfig, SpinSampler, anneal_log_z, curie_weiss_exact, enumerate,
    kaufman_log_z, observe, onsager_free_energy_per_spin,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Closed form, exact enumeration (lattices up to 4 x 4), Kaufman's formula (periodic
    /// lattices at h = 0) or the Curie-Weiss 1-D sum.
    Exact,
    /// Annealed importance sampling.
    Ais,
    /// Sequential Monte Carlo (AIS with resampling at ESS < half the group).
    Smc,
    /// Jarzynski-weighted dynamics (ULA for continuous energies; one sweep per level for spins).
    Jarzynski,
}

/// Arguments of `zoo logz`.
#[derive(Debug, Args)]
pub struct LogzArgs {
    /// A continuous energy (as for `zoo sample`), or a spin system:
    /// `ising{L = 4, beta = 0.44}` (keys L, M, beta, coupling, field, periodic) or
    /// `curie_weiss{N = 1000, beta = 1.2}` (keys N, beta, coupling, field).
    #[arg(long)]
    energy: String,
    /// exact, ais, smc or jarzynski.
    #[arg(long, value_enum)]
    method: Method,
    /// Particles (replicas for spins).
    #[arg(long, default_value_t = 2048)]
    particles: usize,
    /// Annealing levels (ULA steps for Jarzynski on continuous energies).
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Step size of the MALA kernel (AIS, SMC) or of ULA (Jarzynski).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    step_size: f64,
    /// Standard deviation of the Gaussian base N(0, s^2 I) (continuous energies).
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    base_std: f64,
    /// Independent groups behind the standard error.
    #[arg(long, default_value_t = 16)]
    groups: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// flex, ndarray or wgpu (continuous energies).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Write the JSON here (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct IsingSpec {
    #[serde(rename = "L")]
    rows: usize,
    #[serde(rename = "M", default)]
    cols: Option<usize>,
    beta: f64,
    #[serde(default = "one")]
    coupling: f64,
    #[serde(default)]
    field: f64,
    #[serde(default = "yes")]
    periodic: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CurieWeissSpec {
    #[serde(rename = "N")]
    spins: usize,
    beta: f64,
    #[serde(default = "one")]
    coupling: f64,
    #[serde(default)]
    field: f64,
}

fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}

/// `name{toml}` -> the toml table's text, when `arg` starts with `name`.
fn inline_table<'a>(arg: &'a str, name: &str) -> Option<&'a str> {
    arg.trim()
        .strip_prefix(name)?
        .trim()
        .strip_prefix('{')?
        .strip_suffix('}')
}

fn parse_inline<T: serde::de::DeserializeOwned>(name: &str, inner: &str) -> Result<T> {
    let table: toml::Table = toml::from_str(&format!("x = {{{inner}}}"))
        .map_err(|e| anyhow::anyhow!("in {name}{{...}}: {}", e.message()))?;
    let value = table
        .get("x")
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    value
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("in {name}{{...}}: {}", e.message()))
}

fn write(out: &Option<PathBuf>, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match out {
        Some(path) => zoo_energy::io::write_atomic(path, text.as_bytes())?,
        None => println!("{text}"),
    }
    Ok(())
}

fn estimate_json(e: &LogZEstimate) -> serde_json::Value {
    json!({"log_z": e.log_z, "std_err": e.std_err, "ess": e.ess, "resamplings": e.resamplings, "particles": e.particles, "groups": e.groups})
}

pub fn logz(args: LogzArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("invalid steps: need at least one annealing level");
    }
    zoo_energy::memory::check_elements("the annealing schedule (steps)", args.steps as u128, 8)?;
    let mut r = rng::seeded(args.seed);
    let (target, result, exact) = if let Some(inner) = inline_table(&args.energy, "ising") {
        ising_logz(&mut r, &args, inner)?
    } else if let Some(inner) = inline_table(&args.energy, "curie_weiss") {
        let spec: CurieWeissSpec = parse_inline("curie_weiss", inner)?;
        if args.method != Method::Exact {
            bail!("curie_weiss supports --method exact (its 1-D sum is exact for any N)");
        }
        let e = curie_weiss_exact(spec.spins, spec.coupling, spec.field, spec.beta)?;
        let result = json!({"log_z": e.log_z});
        (serde_json::to_value(&spec)?, result, Some(e.log_z))
    } else {
        energy_logz(&mut r, &args)?
    };
    let mut out = json!({"schema": "ebm-zoo/logz/v1", "target": target, "method": args.method, "seed": args.seed, "levels": args.steps, "exact_log_z": exact});
    out.as_object_mut()
        .expect("object")
        .extend(result.as_object().expect("object").clone());
    write(&args.out, &out)
}

/// What one target gives `zoo logz`: its spec, the estimate, the exact log Z if known.
type LogzResult = (serde_json::Value, serde_json::Value, Option<f64>);

/// An Ising lattice: exact (enumeration or Kaufman), or annealed over beta with heat-bath sweeps
/// (and Wolff flips where they apply: h = 0, J > 0).
fn ising_logz(r: &mut ZooRng, args: &LogzArgs, inner: &str) -> Result<LogzResult> {
    let spec: IsingSpec = parse_inline("ising", inner)?;
    let cols = spec.cols.unwrap_or(spec.rows);
    let model = Ising::new(spec.rows, cols, spec.coupling, spec.field, spec.periodic)?;
    let exact = exact_ising_log_z(&model, &spec)?;
    let result = match args.method {
        Method::Exact => match exact {
            Some(log_z) => json!({ "log_z": log_z }),
            // Names the enumeration limit and Kaufman's conditions.
            None => bail!(
                "no exact log Z for this lattice: enumeration is limited to {} spins, and Kaufman's formula needs a periodic lattice of at least 2 x 2 with field = 0 and beta J > 0",
                zoo_spin::MAX_ENUMERATION_SPINS
            ),
        },
        m => {
            zoo_spin::check_beta(spec.beta)?;
            let schedule: Vec<f64> = (1..=args.steps)
                .map(|k| spec.beta * k as f64 / args.steps as f64)
                .collect();
            let mut samplers = vec![SpinSampler::Gibbs];
            if spec.field == 0.0 && spec.coupling > 0.0 {
                samplers.push(SpinSampler::Wolff);
            }
            let config = SpinAnnealConfig {
                samplers,
                schedule,
                sweeps_per_level: if m == Method::Jarzynski { 1 } else { 3 },
                replicas: args.particles,
                groups: args.groups,
                resample_threshold: (m == Method::Smc).then_some(0.5),
            };
            estimate_json(&anneal_log_z(r, &model, &config)?)
        }
    };
    Ok((serde_json::to_value(&spec)?, result, exact))
}

/// A continuous energy: closed form, or annealed from N(0, base_std^2 I) by MALA (AIS, SMC) or
/// by Jarzynski-weighted ULA.
fn energy_logz(r: &mut ZooRng, args: &LogzArgs) -> Result<LogzResult> {
    let spec = EnergySpec::parse(&args.energy)?;
    let backend: BackendKind = args.backend.parse()?;
    let device = backend.device()?;
    let energy = spec.build(&device)?;
    let exact = energy.log_normalizer();
    zoo_energy::check_positive("base_std", args.base_std)?;
    let variance = Covariance::Isotropic(args.base_std * args.base_std);
    let base = Gaussian::new(vec![0.0; energy.dim()], variance, &device)?;
    let (particles, target) = (args.particles, energy.as_ref());
    let result = match args.method {
        Method::Exact => match exact {
            Some(v) => json!({"log_z": v}),
            None => bail!(
                "no closed-form log Z for {}; use --method ais, smc or jarzynski",
                energy.describe()
            ),
        },
        Method::Jarzynski => {
            let config = JarzynskiConfig {
                betas: geometric_schedule(1e-3, args.steps)?,
                step_size: args.step_size,
                groups: args.groups,
                resample_threshold: None,
            };
            estimate_json(&jarzynski(r, &base, target, particles, &config, &device)?)
        }
        Method::Ais | Method::Smc => {
            let config = AnnealConfig {
                betas: geometric_schedule(1e-3, args.steps)?,
                steps_per_level: 3,
                resample_threshold: (args.method == Method::Smc).then_some(0.5),
                groups: args.groups,
            };
            let mut kernel = AnySampler::new(SamplerKind::Mala, args.step_size, 1)?;
            estimate_json(&anneal(
                r,
                &base,
                target,
                &mut kernel,
                particles,
                &config,
                &device,
            )?)
        }
    };
    Ok((serde_json::to_value(&spec)?, result, exact))
}

/// The exact log Z of a lattice, when one exists: enumeration up to 4 x 4 spins, else Kaufman's
/// formula for periodic lattices at h = 0 and beta J > 0.
fn exact_ising_log_z(model: &Ising, spec: &IsingSpec) -> Result<Option<f64>> {
    zoo_spin::check_beta(spec.beta)?;
    if model.sites() <= zoo_spin::MAX_ENUMERATION_SPINS {
        return Ok(Some(enumerate(model, spec.beta)?.log_z));
    }
    let (rows, cols) = model.shape();
    let kaufman = spec.periodic
        && spec.field == 0.0
        && spec.beta * spec.coupling > 0.0
        && rows >= 2
        && cols >= 2;
    Ok(if kaufman {
        Some(kaufman_log_z(rows, cols, spec.beta, spec.coupling)?)
    } else {
        None
    })
}

/// Arguments of `zoo ising`.
#[derive(Debug, Args)]
pub struct IsingArgs {
    /// Lattice rows.
    #[arg(long = "L")]
    rows: usize,
    /// Lattice columns (default: L).
    #[arg(long = "M")]
    cols: Option<usize>,
    /// Inverse temperature (>= 0).
    #[arg(long, allow_negative_numbers = true)]
    beta: f64,
    /// metropolis, gibbs or wolff.
    #[arg(long, default_value = "wolff")]
    sampler: String,
    /// Measured sweeps (cluster flips for wolff).
    #[arg(long, default_value_t = 2000)]
    sweeps: usize,
    /// Warm-up sweeps.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Independent replicas.
    #[arg(long, default_value_t = 8)]
    replicas: usize,
    /// Coupling J.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    coupling: f64,
    /// Field h.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    field: f64,
    /// Open boundaries instead of periodic ones.
    #[arg(long)]
    open: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the JSON here (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn ising(args: IsingArgs) -> Result<()> {
    let model = Ising::new(
        args.rows,
        args.cols.unwrap_or(args.rows),
        args.coupling,
        args.field,
        !args.open,
    )?;
    let sampler: SpinSampler = args.sampler.parse()?;
    let obs = observe(
        &mut rng::seeded(args.seed),
        &model,
        sampler,
        args.beta,
        args.replicas,
        args.warmup,
        args.sweeps,
    )?;
    let exact = (model.sites() <= zoo_spin::MAX_ENUMERATION_SPINS)
        .then(|| enumerate(&model, args.beta))
        .transpose()?;
    let onsager = (args.field == 0.0 && !args.open && args.beta > 0.0)
        .then(|| onsager_free_energy_per_spin(args.beta, args.coupling))
        .transpose()?;
    let out = json!({
        "schema": "ebm-zoo/ising/v1",
        "lattice": {"L": args.rows, "M": args.cols.unwrap_or(args.rows), "periodic": !args.open, "coupling": args.coupling, "field": args.field},
        "sampler": sampler, "replicas": args.replicas, "warmup": args.warmup, "sweeps": args.sweeps, "seed": args.seed,
        "observables": obs,
        "exact": exact.map(|e| json!({"log_z": e.log_z, "energy_per_spin": e.energy_per_spin, "abs_magnetisation": e.abs_magnetisation})),
        "onsager_free_energy_per_spin": onsager,
    });
    write(&args.out, &out)
}
