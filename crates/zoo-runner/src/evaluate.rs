//! Evaluation: rebuild a run's model from its checkpoint bytes, estimate its NLL, draw from
//! every sampler of the config and score the draws (one table row per sampler). Each family has
//! one function here; the sampler enums are matched exhaustively.

use crate::config::{Plan, RunConfig, SamplerSpec};
use crate::data::{Prepared, bits_per_dim};
use crate::error::Result;
use crate::family::{Files, diffusion_sde, init_box, load_module};
use crate::methods::{DiffusionMethod, DiffusionSampler, EbmSampler, GanSampler, SamplerKind};
use crate::metrics::{Row, SampleScores, estimator, finite, score_density, score_samples};
use burn::module::Module;
use burn::prelude::*;
use std::time::Instant;
use zoo_energy::ZooRng;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::{from_host2, to_host1, to_host2};
use zoo_mcmc::sampler::{AnySampler, InitDistribution};

/// What [`evaluate`] returns: the rows and the pictures' data.
pub(crate) struct Evaluated {
    pub rows: Vec<Row>,
    /// Per sampler: its label and the samples (`[m, dim]` row-major).
    pub samples: Vec<(String, Vec<f32>)>,
    /// The model's density on the 2-D quadrature grid, when it has one.
    pub density: Option<Vec<f64>>,
}

/// The NLL of one model, shared by its samplers' rows.
struct Nll {
    value: Option<f64>,
    se: Option<f64>,
    unit: &'static str,
    estimator: String,
    density_tv: Option<f64>,
    density: Option<Vec<f64>>,
}

impl Nll {
    fn none() -> Self {
        Nll {
            value: None,
            se: None,
            unit: "nats",
            estimator: "–".into(),
            density_tv: None,
            density: None,
        }
    }

    /// Per-point log-densities of the held-out points (in y-space for digits): the mean NLL in
    /// nats, or in bits per dimension on digits.
    fn from_log_densities(data: &Prepared, log_p: &[f64], estimator: &str) -> Self {
        let digits = data.truth.is_none();
        let per_point: Vec<f64> = log_p
            .iter()
            .map(|l| if digits { bits_per_dim(*l) } else { -l })
            .collect();
        let (value, se) = zoo_data::grid::mean_and_se(&per_point);
        Nll {
            value: finite(value),
            se: finite(se),
            unit: if digits { "bits/dim" } else { "nats" },
            estimator: estimator.into(),
            ..Nll::none()
        }
    }

    /// 2-D: the exact quadrature NLL and density TV of an energy.
    fn of_energy(
        data: &Prepared,
        energy: &dyn zoo_energy::Energy,
        estimator: &str,
        device: &Device,
    ) -> Result<Self> {
        Ok(match score_density(data, energy, device)? {
            Some(s) => Nll {
                value: finite(s.nll),
                se: finite(s.nll_se),
                unit: "nats",
                estimator: estimator.into(),
                density_tv: finite(s.tv),
                density: Some(s.grid_density),
            },
            None => Nll::none(),
        })
    }
}

/// The random stream of sampler `k` of a seed's evaluation: `seed + 2 + 100 k`, apart from the
/// model's init (`seed`), training (`seed + 1`) and the likelihood estimators (`seed + 3`).
fn sampler_stream(seed: u64, k: usize) -> ZooRng {
    seeded(seed + 2 + 100 * k as u64)
}

/// One sampler's output.
struct Drawn {
    samples: Vec<f32>,
    seconds: f64,
    evals: f64,
    acceptance: Option<f64>,
}

fn timed(f: impl FnOnce() -> Result<(Tensor<2>, f64, Option<f64>)>) -> Result<Drawn> {
    let t = Instant::now();
    let (x, evals, acceptance) = f()?;
    let samples = to_host2(&x);
    Ok(Drawn {
        samples,
        seconds: t.elapsed().as_secs_f64(),
        evals,
        acceptance,
    })
}

/// What one family's evaluation gives: its parameter count, its NLL and one draw per sampler.
type Scored = (usize, Nll, Vec<Drawn>);

/// What every family's evaluation reads: the config, the checkpoint, the data, the seed.
struct EvalCtx<'a> {
    cfg: &'a RunConfig,
    files: &'a Files,
    data: &'a Prepared,
    seed: u64,
    device: &'a Device,
    /// The held-out points, `[m, dim]`.
    test: Tensor<2>,
}

impl EvalCtx<'_> {
    /// Samples drawn per sampler.
    fn n(&self) -> usize {
        self.cfg.eval.samples
    }

    /// Runs `draw` for every sampler of the config, each on its own random stream, timed.
    fn draw_each(
        &self,
        mut draw: impl FnMut(&SamplerSpec, &mut ZooRng) -> Result<(Tensor<2>, f64, Option<f64>)>,
    ) -> Result<Vec<Drawn>> {
        let mut drawn = Vec::new();
        for (k, s) in self.cfg.samplers.iter().enumerate() {
            let mut rng = sampler_stream(self.seed, k);
            drawn.push(timed(|| draw(s, &mut rng))?);
        }
        Ok(drawn)
    }
}

/// Rebuilds the model of `cfg` from `files` and scores every sampler.
pub(crate) fn evaluate(
    cfg: &RunConfig,
    files: &Files,
    data: &Prepared,
    seed: u64,
    train_seconds: f64,
    device: &Device,
) -> Result<Evaluated> {
    let (m, d) = (data.n_test(), data.dim);
    let ctx = EvalCtx {
        cfg,
        files,
        data,
        seed,
        device,
        test: from_host2(data.test.clone(), [m, d], device),
    };
    let (params, nll, drawn) = match &cfg.plan {
        Plan::Ebm { model, .. } => ebm(&ctx, model)?,
        Plan::Flow { model, .. } => flow(&ctx, model)?,
        Plan::Diffusion { method, model, .. } => diffusion(&ctx, *method, model)?,
        Plan::Gan { model, .. } => gan(&ctx, model)?,
        Plan::Vae { model, train } => vae(&ctx, model, train)?,
    };
    let common = RowCommon {
        cfg,
        data,
        seed,
        params,
        nll: &nll,
        train_seconds,
    };
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for (s, dr) in cfg.samplers.iter().zip(drawn) {
        rows.push(common.row(s, &dr)?);
        samples.push((s.label(), dr.samples));
    }
    Ok(Evaluated {
        rows,
        samples,
        density: nll.density,
    })
}

/// What the rows of one seed share.
struct RowCommon<'a> {
    cfg: &'a RunConfig,
    data: &'a Prepared,
    seed: u64,
    params: usize,
    nll: &'a Nll,
    train_seconds: f64,
}

impl RowCommon<'_> {
    /// The table row of sampler `s` with its draws scored.
    fn row(&self, s: &SamplerSpec, dr: &Drawn) -> Result<Row> {
        let (cfg, nll) = (self.cfg, self.nll);
        let scores: SampleScores = score_samples(self.data, &dr.samples)?;
        Ok(Row {
            config: cfg.name.clone(),
            data: cfg.data.name().into(),
            family: cfg.family.name().into(),
            method: cfg.method.to_string(),
            sampler: s.label(),
            seed: self.seed,
            backend: cfg.backend.name().into(),
            params: self.params,
            nll: nll.value,
            nll_se: nll.se,
            nll_unit: nll.unit.into(),
            nll_estimator: nll.estimator.clone(),
            true_nll: self.data.truth.as_ref().map(|t| t.true_nll),
            density_tv: nll.density_tv,
            sample_tv: scores.tv,
            sample_tv_floor: scores.tv_floor,
            modes_covered: scores.modes_covered,
            modes: scores.modes,
            mode_weight_error: scores.mode_weight_error,
            high_quality: scores.high_quality,
            mmd2: scores.mmd2,
            mmd2_floor: scores.mmd2_floor,
            evals_per_sample: dr.evals,
            acceptance: dr.acceptance,
            train_seconds: self.train_seconds,
            ms_per_1000_samples: dr.seconds * 1e6 / cfg.eval.samples as f64,
        })
    }
}

/// An MLP energy: quadrature NLL (2-D), ULA/MALA chains from the data box.
fn ebm(ctx: &EvalCtx, model: &zoo_neural::MlpEnergyConfig) -> Result<Scored> {
    use zoo_ebm::EnergyModel;
    let init = model.init(&mut seeded(ctx.seed), ctx.device)?;
    let model = load_module(init, ctx.files, "energy.bpk")?;
    let energy = model.sampling_energy();
    let nll = Nll::of_energy(ctx.data, &*energy, estimator::QUADRATURE, ctx.device)?;
    let drawn = ctx.draw_each(|s, rng| {
        let SamplerKind::Ebm(kind) = s.kind else {
            return Err(not_for(s, "an EBM"));
        };
        mcmc(
            rng,
            &*energy,
            s,
            kind,
            ctx.n(),
            init_box(ctx.data),
            ctx.device,
        )
    })?;
    Ok((model.num_params(), nll, drawn))
}

/// A flow: its exact log-density on the test points and on the grid, exact draws.
fn flow(ctx: &EvalCtx, model: &zoo_flow::FlowConfig) -> Result<Scored> {
    let init = model.init(&mut seeded(ctx.seed), ctx.device)?;
    let flow = load_module(init, ctx.files, "flow.bpk")?;
    let log_p: Vec<f64> = to_host1(&flow.log_prob(ctx.test.clone(), None)?)
        .into_iter()
        .map(f64::from)
        .collect();
    let mut nll = Nll::from_log_densities(ctx.data, &log_p, estimator::FLOW);
    let energy = zoo_flow::FlowEnergy::new(&flow)?;
    if let Some(exact) = score_density(ctx.data, &energy, ctx.device)? {
        nll.density_tv = finite(exact.tv);
        nll.density = Some(exact.grid_density);
    }
    let drawn = ctx.draw_each(|_, rng| {
        let (x, _) = flow.sample_with_log_prob(rng, ctx.n(), None, ctx.device)?;
        Ok((x, 1.0, None))
    })?;
    Ok((flow.num_params(), nll, drawn))
}

/// A score network (noise-predicting MLP or energy-parameterised) under its SDE.
fn diffusion(
    ctx: &EvalCtx,
    method: DiffusionMethod,
    model: &zoo_diffusion::ScoreNetConfig,
) -> Result<Scored> {
    let sde = diffusion_sde(method);
    let mut init_rng = seeded(ctx.seed);
    if method == DiffusionMethod::VpEnergy {
        let net = load_module(
            model.energy(&mut init_rng, ctx.device)?,
            ctx.files,
            "score.bpk",
        )?;
        let score = zoo_diffusion::NetScore::new(&net, sde);
        let (nll, drawn) = diffusion_eval(ctx, &score, &sde)?;
        Ok((net.num_params(), nll, drawn))
    } else {
        let net = load_module(
            model.mlp(&mut init_rng, ctx.device)?,
            ctx.files,
            "score.bpk",
        )?;
        let score = zoo_diffusion::NetScore::new(&net, sde);
        let (nll, drawn) = diffusion_eval(ctx, &score, &sde)?;
        Ok((net.num_params(), nll, drawn))
    }
}

/// A GAN: the discriminator's energy by quadrature (2-D); generator or latent Langevin draws.
fn gan(ctx: &EvalCtx, model: &zoo_gan::GanConfig) -> Result<Scored> {
    let mut gan = model.init(&mut seeded(ctx.seed), ctx.device)?;
    gan.generator = load_module(gan.generator, ctx.files, "generator.bpk")?;
    gan.discriminator = load_module(gan.discriminator, ctx.files, "discriminator.bpk")?;
    let spectral = ctx
        .files
        .iter()
        .find(|(n, _)| n == "spectral_u.json")
        .map(|(_, b)| b.as_slice())
        .unwrap_or(b"[]");
    gan.discriminator.spectral_u =
        serde_json::from_slice(spectral).map_err(|e| crate::error::Error::Corrupt {
            path: "spectral_u.json".into(),
            message: e.to_string(),
        })?;
    let nll = Nll::of_energy(
        ctx.data,
        &*gan.energy(),
        estimator::DISCRIMINATOR,
        ctx.device,
    )?;
    let (n, device) = (ctx.n(), ctx.device);
    let drawn = ctx.draw_each(|s, rng| {
        let metropolis = match s.kind {
            SamplerKind::Gan(GanSampler::Generator) => {
                return Ok((zoo_gan::sample(rng, &gan, n, device), 1.0, None));
            }
            SamplerKind::Gan(GanSampler::LatentMala) => true,
            SamplerKind::Gan(GanSampler::LatentUla) => false,
            _ => return Err(not_for(s, "a GAN")),
        };
        let latent = zoo_gan::LatentLangevinConfig {
            steps: s.steps.unwrap_or(100),
            step_size: s.step_size.unwrap_or(0.05),
            metropolis,
            ..zoo_gan::LatentLangevinConfig::default()
        };
        let (x, r) = zoo_gan::latent_langevin(rng, &gan, n, &latent, device)?;
        let acc = metropolis.then_some(r.acceptance);
        Ok((x, r.evaluations_per_sample as f64 + 1.0, acc))
    })?;
    let (g, dsc) = gan.parameter_count();
    Ok((g + dsc, nll, drawn))
}

/// A VAE: the IWAE NLL (with the EBM prior's log Z estimated), decoded prior draws.
fn vae(
    ctx: &EvalCtx,
    model: &zoo_vae::VaeConfig,
    train: &zoo_vae::VaeTrainConfig,
) -> Result<Scored> {
    let (device, d) = (ctx.device, ctx.data.dim);
    let vae = load_module(
        model.init(&mut seeded(ctx.seed), device)?,
        ctx.files,
        "vae.bpk",
    )?;
    let nll = vae_nll(ctx, &vae)?;
    let n = ctx.n();
    let drawn = ctx.draw_each(|s, rng| {
        let steps = s.steps.unwrap_or(train.langevin_steps);
        let step_size = s.step_size.unwrap_or(train.langevin_step_size);
        let z = zoo_vae::sample_prior(rng, &vae, n, steps, step_size, device)?;
        let std = vae
            .log_std
            .val()
            .clamp(-7.0, 5.0)
            .exp()
            .unsqueeze_dim::<2>(0);
        let eps = zoo_energy::rng::normal(rng, [n, d], device);
        let x = vae.decode_mean(z) + eps * std;
        let evals = if vae.prior.is_some() {
            steps as f64 + 1.0
        } else {
            1.0
        };
        Ok((x, evals, None))
    })?;
    Ok((vae.num_params(), nll, drawn))
}

/// The VAE's IWAE NLL; with an EBM prior, its log Z by SMC and by importance sampling from the
/// aggregate posterior (the larger, so that the bound stays a bound in expectation).
fn vae_nll(ctx: &EvalCtx, vae: &zoo_vae::Vae) -> Result<Nll> {
    let (data, device, d, k) = (ctx.data, ctx.device, ctx.data.dim, ctx.cfg.eval.iwae_k);
    let mut rng = seeded(ctx.seed + 3);
    let (log_z, estimator) = if vae.prior.is_some() {
        let train_t = from_host2(data.train.clone(), [data.n_train(), d], device);
        let (smc, _) = zoo_vae::prior_log_normalizer(&mut rng, vae, 4096, 300, device)?;
        let (is, _) = zoo_vae::aggregate_posterior_log_z(&mut rng, vae, &train_t, 4096)?;
        let what = "with the prior's log Z by SMC / IS (an estimate)";
        (
            smc.max(is),
            format!("{} (K = {k}) {what}", estimator::IWAE_LOG_Z),
        )
    } else {
        let label = format!("{} (K = {k})", estimator::IWAE_BOUND);
        (vae.gaussian_log_normalizer(), label)
    };
    let e = zoo_vae::evaluate(&mut rng, vae, &ctx.test, k, log_z)?;
    // Per-point IWAE values are not returned: the mean and its s.e. are.
    let mut nll = Nll::none();
    nll.estimator = estimator;
    if data.truth.is_some() {
        nll.value = finite(e.iwae_nll);
        nll.se = finite(e.iwae_se);
    } else {
        let dd = d as f64 * std::f64::consts::LN_2;
        nll.value = finite(bits_per_dim(-e.iwae_nll));
        nll.se = finite(e.iwae_se / dd);
        nll.unit = "bits/dim";
    }
    Ok(nll)
}

/// A sampler of another family: the config parser rules it out, so this is a bug if reached.
fn not_for(s: &SamplerSpec, what: &str) -> crate::error::Error {
    let why = format!("{} is not a sampler of {what}", s.kind.name());
    zoo_energy::Error::invalid("sampler", why).into()
}

/// `n` ULA or MALA chains from `init` on `energy` (default 500 steps of h = 0.002), through the
/// shared chain driver ([`zoo_mcmc::run::run`]): acceptance summed on the device, a diverging
/// chain reported with its step.
fn mcmc(
    rng: &mut ZooRng,
    energy: &dyn zoo_energy::Energy,
    s: &SamplerSpec,
    kind: EbmSampler,
    n: usize,
    init: InitDistribution,
    device: &Device,
) -> Result<(Tensor<2>, f64, Option<f64>)> {
    let steps = s.steps.unwrap_or(500);
    let mut sampler = AnySampler::new(kind.kind(), s.step_size.unwrap_or(0.002), 1)?;
    let d = energy.dim();
    let start = from_host2(init.draw(rng, n * d), [n, d], device);
    let chain = zoo_mcmc::run::RunConfig {
        steps,
        check_every: 100,
        keep_draws: false,
        ..Default::default()
    };
    let out = zoo_mcmc::run::run(rng, &mut sampler, energy, start, &chain, &mut |_| {})?;
    let acceptance = (kind == EbmSampler::Mala).then_some(out.acceptance_rate);
    Ok((out.state.position, steps as f64, acceptance))
}

/// PF-ODE NLL and every sampler of a diffusion model.
fn diffusion_eval(
    ctx: &EvalCtx,
    score: &dyn zoo_diffusion::ScoreModel,
    sde: &zoo_diffusion::Sde,
) -> Result<(Nll, Vec<Drawn>)> {
    let nll = pf_ode_nll(ctx, score, sde)?;
    let (n, device) = (ctx.n(), ctx.device);
    let drawn = ctx.draw_each(|s, rng| {
        let SamplerKind::Diffusion(kind) = s.kind else {
            return Err(not_for(s, "a diffusion model"));
        };
        let Some((solver, default_steps)) = solver(kind, s) else {
            let config = zoo_diffusion::AnnealedLangevinConfig {
                ladder: zoo_diffusion::NoiseLadder::geometric(4.0, 0.01, 50)?,
                steps_per_level: s.steps.unwrap_or(20),
                epsilon: s.step_size.unwrap_or(2e-5),
            };
            let (x, r) = zoo_diffusion::annealed_langevin(rng, score, sde, &config, n, device)?;
            return Ok((x, r.nfe as f64, None));
        };
        let config = zoo_diffusion::SampleConfig {
            solver,
            steps: s.steps.unwrap_or(default_steps),
            t_min: sde.t_min(),
        };
        let (x, r) = zoo_diffusion::sample(rng, score, sde, &config, n, device)?;
        Ok((x, r.nfe as f64, None))
    })?;
    Ok((nll, drawn))
}

/// The solver of a diffusion sampler with its default step count (`None`: annealed Langevin,
/// which is not a reverse-time solver).
fn solver(kind: DiffusionSampler, s: &SamplerSpec) -> Option<(zoo_diffusion::Solver, usize)> {
    use zoo_diffusion::Solver;
    Some(match kind {
        DiffusionSampler::EulerMaruyama => (Solver::EulerMaruyama, 500),
        DiffusionSampler::Ancestral => (Solver::Ancestral, 500),
        DiffusionSampler::PredictorCorrector => {
            let snr = s.snr.unwrap_or(0.16);
            let pc = Solver::PredictorCorrector {
                snr,
                corrector_steps: 1,
            };
            (pc, 250)
        }
        DiffusionSampler::Heun => (Solver::Heun, 100),
        DiffusionSampler::Rk4 => (Solver::Rk4, 50),
        DiffusionSampler::Ddim => (Solver::Ddim, 100),
        DiffusionSampler::AnnealedLangevin => return None,
    })
}

/// The PF-ODE NLL of the test points (exact divergence in 2-D, one Hutchinson probe on digits).
fn pf_ode_nll(
    ctx: &EvalCtx,
    score: &dyn zoo_diffusion::ScoreModel,
    sde: &zoo_diffusion::Sde,
) -> Result<Nll> {
    use zoo_diffusion::Divergence;
    let (divergence, label) = if ctx.data.truth.is_some() {
        (Divergence::Exact, "exact divergence")
    } else {
        let probe = Divergence::Hutchinson { probes: 1 };
        (probe, "Hutchinson divergence, 1 probe")
    };
    let steps = ctx.cfg.eval.ode_steps;
    let lik = zoo_diffusion::pf_ode_log_likelihood(
        &mut seeded(ctx.seed + 3),
        score,
        sde,
        ctx.test.clone(),
        steps,
        sde.t_min(),
        divergence,
    )?;
    let log_p: Vec<f64> = to_host1(&lik.log_likelihood)
        .into_iter()
        .map(f64::from)
        .collect();
    let what = format!("{} ({steps} RK4 steps, {label})", estimator::PF_ODE);
    Ok(Nll::from_log_densities(ctx.data, &log_p, &what))
}
