//! Each family behind the same two calls: [`train`] (returns the checkpoint as named burnpack
//! buffers and the training curve) and [`evaluate`] (rebuilds the model from those buffers and
//! scores every sampler). Evaluation always starts from the checkpoint bytes, so a run resumed
//! after a kill scores exactly what an uninterrupted run scores.

use crate::config::{DiffusionMethod, EbmObjective, Plan, RunConfig, SamplerSpec};
use crate::data::{Prepared, bits_per_dim};
use crate::error::{Error, Result};
use crate::metrics::{Row, SampleScores, estimator, finite, score_density, score_samples};
use burn::module::Module;
use burn::prelude::*;
use std::time::Instant;
use zoo_ebm::objective::ObjectiveKind;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::{from_host2, to_host1, to_host2};
use zoo_energy::{BackendKind, ZooRng};
use zoo_mcmc::sampler::{AnySampler, InitDistribution, ReplayBuffer, SamplerKind};
use zoo_neural::MlpEnergy;

/// A checkpoint: named burnpack (or JSON) buffers.
pub(crate) type Files = Vec<(String, Vec<u8>)>;

/// A training curve: column names (the first is the iteration) and one row per step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Curve {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl Curve {
    fn from_series(series: &[(&str, &[f64])]) -> Self {
        let mut columns = vec!["iteration".to_string()];
        columns.extend(series.iter().map(|(n, _)| n.to_string()));
        let len = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let rows = (0..len)
            .map(|i| {
                let mut r = vec![(i + 1) as f64];
                r.extend(
                    series
                        .iter()
                        .map(|(_, v)| v.get(i).copied().unwrap_or(f64::NAN)),
                );
                r
            })
            .collect();
        Curve { columns, rows }
    }
}

/// What [`train`] returns.
pub(crate) struct Trained {
    pub files: Files,
    pub curve: Curve,
    pub seconds: f64,
    /// The iteration training resumed from (0: started afresh).
    pub resumed_from: usize,
}

/// What [`evaluate`] returns: the rows and the pictures' data.
pub(crate) struct Evaluated {
    pub rows: Vec<Row>,
    /// Per sampler: its label and the samples (`[m, dim]` row-major).
    pub samples: Vec<(String, Vec<f32>)>,
    /// The model's density on the 2-D quadrature grid, when it has one.
    pub density: Option<Vec<f64>>,
}

fn module_bytes<M: Module>(m: &M) -> Result<Vec<u8>> {
    zoo_train::module_bytes(m).map_err(|message| Error::Corrupt {
        path: "checkpoint".into(),
        message,
    })
}

fn load_module<M: Module>(init: M, files: &Files, name: &str) -> Result<M> {
    let corrupt = |message: String| Error::Corrupt {
        path: name.into(),
        message,
    };
    let (_, bytes) = files
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| corrupt("missing from the checkpoint".into()))?;
    zoo_train::load_module(init, bytes).map_err(corrupt)
}

/// The box the chains of a set start in: the set's bounds in 2-D, (-1, 1) for digits.
fn init_box(data: &Prepared) -> InitDistribution {
    let (low, high) = data
        .truth
        .as_ref()
        .map_or((-1.0, 1.0), |t| t.density.bounds());
    InitDistribution::Uniform { low, high }
}

/// What every family's trainer receives: the data and the device, the checkpoint to resume
/// from, and the two generators (model init, training).
struct Ctx<'a> {
    data: &'a Prepared,
    device: &'a Device,
    ad: Device,
    progress: bool,
    resume: zoo_train::Resume,
    init_rng: ZooRng,
    rng: ZooRng,
}

impl Ctx<'_> {
    /// The training points as a `[n, dim]` tensor on the plain device.
    fn train_tensor(&self) -> Tensor<2> {
        let (n, d) = (self.data.n_train(), self.data.dim);
        from_host2(self.data.train.clone(), [n, d], self.device)
    }
}

/// Trains `cfg` for `seed`. Model init draws from `seeded(seed)`, training from
/// `seeded(seed + 1)`; `resume` is the run's training checkpoint.
pub(crate) fn train(
    cfg: &RunConfig,
    data: &Prepared,
    seed: u64,
    device: &Device,
    progress: bool,
    resume: zoo_train::Resume,
) -> Result<Trained> {
    let mut ctx = Ctx {
        data,
        device,
        ad: device.clone().autodiff(),
        progress,
        resume,
        init_rng: seeded(seed),
        rng: seeded(seed + 1),
    };
    match &cfg.plan {
        Plan::Ebm {
            method,
            model,
            train,
            objective,
        } => train_ebm(&mut ctx, *method, model, train, objective),
        Plan::Flow { model, train } => train_flow(&mut ctx, model, train),
        Plan::Diffusion {
            method,
            model,
            train,
        } => train_diffusion(&mut ctx, *method, model, train),
        Plan::Gan { model, train } => train_gan(&mut ctx, model, train),
        Plan::Vae { model, train } => train_vae(&mut ctx, model, train),
    }
}

fn train_ebm(
    ctx: &mut Ctx,
    method: ObjectiveKind,
    model: &zoo_neural::MlpEnergyConfig,
    train: &zoo_ebm::TrainConfig,
    objective: &EbmObjective,
) -> Result<Trained> {
    let model = model.init(&ctx.ad, &mut ctx.init_rng)?;
    let train = zoo_ebm::TrainConfig {
        progress: ctx.progress,
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let dataset = zoo_ebm::Dataset::new(ctx.data.train.clone(), ctx.data.dim)?;
    let (model, history, seconds, resumed_from) =
        ebm_train(ctx, method, objective, model, train, &dataset)?;
    Ok(Trained {
        files: vec![("energy.bpk".into(), module_bytes(&model)?)],
        curve: Curve::from_series(&[("loss", &history)]),
        seconds,
        resumed_from,
    })
}

fn train_flow(
    ctx: &mut Ctx,
    model: &zoo_flow::FlowConfig,
    train: &zoo_flow::FitConfig,
) -> Result<Trained> {
    let mut flow = model.init(&ctx.ad, &mut ctx.init_rng)?;
    let fit = zoo_flow::FitConfig {
        progress: ctx.progress,
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let x = ctx.train_tensor();
    let report = zoo_flow::fit_max_likelihood(&mut flow, &x, None, &fit, &mut ctx.rng)?;
    Ok(Trained {
        files: vec![("flow.bpk".into(), module_bytes(&flow)?)],
        curve: Curve::from_series(&[("nll", &report.losses)]),
        seconds: report.seconds,
        resumed_from: report.resumed_from,
    })
}

fn train_diffusion(
    ctx: &mut Ctx,
    method: DiffusionMethod,
    model: &zoo_diffusion::ScoreNetConfig,
    train: &zoo_diffusion::DsmConfig,
) -> Result<Trained> {
    let sde = diffusion_sde(method);
    let train = &zoo_diffusion::DsmConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let (x, progress) = (ctx.train_tensor(), ctx.progress);
    let (bytes, report) = if method == DiffusionMethod::VpEnergy {
        let mut net = model.energy(&ctx.ad, &mut ctx.init_rng)?;
        let r = zoo_diffusion::fit_dsm(&mut net, &sde, &x, train, &mut ctx.rng, progress)?;
        (module_bytes(&net)?, r)
    } else {
        let mut net = model.mlp(&ctx.ad, &mut ctx.init_rng)?;
        let r = if BackendKind::is_host_device(ctx.device) {
            zoo_diffusion::fit_dsm_fused(&mut net, &sde, &x, train, &mut ctx.rng)?
        } else {
            zoo_diffusion::fit_dsm(&mut net, &sde, &x, train, &mut ctx.rng, progress)?
        };
        (module_bytes(&net)?, r)
    };
    Ok(Trained {
        files: vec![("score.bpk".into(), bytes)],
        curve: Curve::from_series(&[("dsm_loss", &report.losses)]),
        seconds: report.seconds,
        resumed_from: report.resumed_from,
    })
}

fn train_gan(
    ctx: &mut Ctx,
    model: &zoo_gan::GanConfig,
    train: &zoo_gan::GanTrainConfig,
) -> Result<Trained> {
    let mut gan = model.init(&ctx.ad, &mut ctx.init_rng)?;
    let train = zoo_gan::GanTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let x = ctx.train_tensor();
    let report = zoo_gan::fit(&mut gan, &x, &train, &mut ctx.rng, ctx.progress)?;
    let spectral =
        serde_json::to_vec(&gan.discriminator.spectral_u).expect("vectors of floats serialise");
    let discriminator = module_bytes(&gan.discriminator)?;
    Ok(Trained {
        files: vec![
            ("generator.bpk".into(), module_bytes(&gan.generator)?),
            ("discriminator.bpk".into(), discriminator),
            ("spectral_u.json".into(), spectral),
        ],
        curve: Curve::from_series(&[
            ("discriminator_loss", &report.discriminator_losses),
            ("generator_loss", &report.generator_losses),
        ]),
        seconds: report.seconds,
        resumed_from: report.resumed_from,
    })
}

fn train_vae(
    ctx: &mut Ctx,
    model: &zoo_vae::VaeConfig,
    train: &zoo_vae::VaeTrainConfig,
) -> Result<Trained> {
    let mut vae = model.init(&ctx.ad, &mut ctx.init_rng)?;
    let train = zoo_vae::VaeTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let x = ctx.train_tensor();
    let report = zoo_vae::fit(&mut vae, &x, &train, &mut ctx.rng)?;
    Ok(Trained {
        files: vec![("vae.bpk".into(), module_bytes(&vae)?)],
        curve: Curve::from_series(&[("neg_elbo", &report.losses)]),
        seconds: report.seconds,
        resumed_from: report.resumed_from,
    })
}

/// The core-EBM objectives with the defaults of `examples/ebm_2d.rs`.
fn ebm_train(
    ctx: &mut Ctx,
    method: ObjectiveKind,
    o: &EbmObjective,
    model: MlpEnergy,
    train: zoo_ebm::TrainConfig,
    data: &zoo_ebm::Dataset,
) -> Result<(MlpEnergy, Vec<f64>, f64, usize)> {
    use zoo_ebm::objective::{
        ChainStart, DenoisingScoreMatching, JarzynskiPcd, MaximumLikelihood, Nce, Objective,
        SlicedScoreMatching,
    };
    let (init, device) = (init_box(ctx.data), ctx.device);
    let h = o.step_size.unwrap_or(0.005);
    let ula = AnySampler::new(SamplerKind::Ula, h, 1)?;
    let penalty = o.energy_penalty.unwrap_or(0.01);
    let mut objective: Box<dyn Objective<MlpEnergy>> = match method {
        ObjectiveKind::Cd => Box::new(
            MaximumLikelihood::new(ChainStart::Data, ula, o.mcmc_steps.unwrap_or(10))?
                .with_energy_penalty(o.energy_penalty.unwrap_or(0.0))?,
        ),
        ObjectiveKind::Pcd => Box::new(
            MaximumLikelihood::new(
                ChainStart::Persistent(ReplayBuffer::new(data.dim(), 10_000, 0.05, init)?),
                ula,
                o.mcmc_steps.unwrap_or(20),
            )?
            .with_energy_penalty(penalty)?,
        ),
        ObjectiveKind::ShortRun => Box::new(
            MaximumLikelihood::new(ChainStart::Noise(init), ula, o.mcmc_steps.unwrap_or(60))?
                .with_energy_penalty(penalty)?,
        ),
        ObjectiveKind::Jarzynski => Box::new(
            JarzynskiPcd::new(
                o.walkers.unwrap_or(2048),
                h,
                0.5,
                vec![0.0; data.dim()],
                2.0,
            )?
            .with_steps_per_update(2)?
            .with_energy_penalty(penalty)?,
        ),
        ObjectiveKind::Nce => Box::new(Nce::fitted(data, o.noise_ratio.unwrap_or(4), 1.2, device)?),
        ObjectiveKind::Dsm => Box::new(DenoisingScoreMatching::new(o.sigma.unwrap_or(0.05))?),
        ObjectiveKind::Ssm => Box::new(SlicedScoreMatching::new(o.sigma.unwrap_or(0.05))?),
    };
    let mut trainer = zoo_ebm::Trainer::new(model, train)?;
    trainer.run(objective.as_mut(), data, &mut ctx.rng, device)?;
    let losses = trainer.history.iter().map(|r| r.loss).collect();
    let t = &trainer;
    Ok((t.model().clone(), losses, t.seconds, t.resumed_from))
}

fn diffusion_sde(method: DiffusionMethod) -> zoo_diffusion::Sde {
    match method {
        // The VE SDE of NCSN's ladder (Song & Ermon 2019): 50 levels from 4 to 0.01.
        DiffusionMethod::VeNcsn => zoo_diffusion::Sde::Ve {
            sigma_min: 0.01,
            sigma_max: 4.0,
        },
        DiffusionMethod::VpMlp | DiffusionMethod::VpEnergy => zoo_diffusion::Sde::vp(),
    }
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
    let test_t = from_host2(data.test.clone(), [m, d], device);
    let n = cfg.eval.samples;
    let mut init_rng = seeded(seed);
    let (params, nll, drawn): (usize, Nll, Vec<Drawn>) = match &cfg.plan {
        Plan::Ebm { model, .. } => {
            use zoo_ebm::EnergyModel;
            let model = load_module(model.init(device, &mut init_rng)?, files, "energy.bpk")?;
            let energy = model.sampling_energy();
            let nll = Nll::of_energy(data, &*energy, estimator::QUADRATURE, device)?;
            let mut drawn = Vec::new();
            for (k, s) in cfg.samplers.iter().enumerate() {
                let mut rng = sampler_stream(seed, k);
                drawn.push(timed(|| {
                    mcmc(&*energy, s, n, init_box(data), &mut rng, device)
                })?);
            }
            (model.num_params(), nll, drawn)
        }
        Plan::Flow { model, .. } => {
            let flow = load_module(model.init(device, &mut init_rng)?, files, "flow.bpk")?;
            let log_p: Vec<f64> = to_host1(&flow.log_prob(test_t, None)?)
                .into_iter()
                .map(f64::from)
                .collect();
            let mut nll = Nll::from_log_densities(data, &log_p, estimator::FLOW);
            let energy = zoo_flow::FlowEnergy::new(&flow)?;
            if let Some(exact) = score_density(data, &energy, device)? {
                nll.density_tv = finite(exact.tv);
                nll.density = Some(exact.grid_density);
            }
            let mut drawn = Vec::new();
            for k in 0..cfg.samplers.len() {
                let mut rng = sampler_stream(seed, k);
                drawn.push(timed(|| {
                    let (x, _) = flow.sample_with_log_prob(&mut rng, n, None, device)?;
                    Ok((x, 1.0, None))
                })?);
            }
            (flow.num_params(), nll, drawn)
        }
        Plan::Diffusion { method, model, .. } => {
            let sde = diffusion_sde(*method);
            if *method == DiffusionMethod::VpEnergy {
                let net = load_module(model.energy(device, &mut init_rng)?, files, "score.bpk")?;
                let params = net.num_params();
                let score = zoo_diffusion::NetScore::new(&net, sde);
                let (nll, drawn) = diffusion_eval(cfg, &score, &sde, data, test_t, seed, device)?;
                (params, nll, drawn)
            } else {
                let net = load_module(model.mlp(device, &mut init_rng)?, files, "score.bpk")?;
                let params = net.num_params();
                let score = zoo_diffusion::NetScore::new(&net, sde);
                let (nll, drawn) = diffusion_eval(cfg, &score, &sde, data, test_t, seed, device)?;
                (params, nll, drawn)
            }
        }
        Plan::Gan { model, .. } => {
            let mut gan = model.init(device, &mut init_rng)?;
            gan.generator = load_module(gan.generator, files, "generator.bpk")?;
            gan.discriminator = load_module(gan.discriminator, files, "discriminator.bpk")?;
            let spectral = files
                .iter()
                .find(|(n, _)| n == "spectral_u.json")
                .map(|(_, b)| b.as_slice())
                .unwrap_or(b"[]");
            gan.discriminator.spectral_u =
                serde_json::from_slice(spectral).map_err(|e| Error::Corrupt {
                    path: "spectral_u.json".into(),
                    message: e.to_string(),
                })?;
            let nll = Nll::of_energy(data, &*gan.energy(), estimator::DISCRIMINATOR, device)?;
            let mut drawn = Vec::new();
            for (k, s) in cfg.samplers.iter().enumerate() {
                let mut rng = sampler_stream(seed, k);
                drawn.push(timed(|| {
                    if s.kind == "generator" {
                        return Ok((zoo_gan::sample(&gan, n, &mut rng, device), 1.0, None));
                    }
                    let latent = zoo_gan::LatentLangevinConfig {
                        steps: s.steps.unwrap_or(100),
                        step_size: s.step_size.unwrap_or(0.05),
                        metropolis: s.kind == "latent_mala",
                        ..zoo_gan::LatentLangevinConfig::default()
                    };
                    let (x, r) = zoo_gan::latent_langevin(&gan, n, &latent, &mut rng, device)?;
                    let acc = (s.kind == "latent_mala").then_some(r.acceptance);
                    Ok((x, r.evaluations_per_sample as f64 + 1.0, acc))
                })?);
            }
            let (g, dsc) = gan.parameter_count();
            (g + dsc, nll, drawn)
        }
        Plan::Vae { model, train } => {
            let vae = load_module(model.init(device, &mut init_rng)?, files, "vae.bpk")?;
            let mut rng = seeded(seed + 3);
            let (log_z, estimator) = if vae.prior.is_some() {
                let train_t = from_host2(data.train.clone(), [data.n_train(), d], device);
                let (smc, _) = zoo_vae::prior_log_normalizer(&vae, 4096, 300, &mut rng, device)?;
                let (is, _) = zoo_vae::aggregate_posterior_log_z(&vae, &train_t, 4096, &mut rng)?;
                (
                    smc.max(is),
                    format!(
                        "{} (K = {}) with the prior's log Z by SMC / IS (an estimate)",
                        estimator::IWAE_LOG_Z,
                        cfg.eval.iwae_k
                    ),
                )
            } else {
                (
                    vae.gaussian_log_normalizer(),
                    format!("{} (K = {})", estimator::IWAE_BOUND, cfg.eval.iwae_k),
                )
            };
            let e = zoo_vae::evaluate(&vae, &test_t, cfg.eval.iwae_k, log_z, &mut rng)?;
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
            let mut drawn = Vec::new();
            for (k, s) in cfg.samplers.iter().enumerate() {
                let mut rng = sampler_stream(seed, k);
                drawn.push(timed(|| {
                    let steps = s.steps.unwrap_or(train.langevin_steps);
                    let z = zoo_vae::sample_prior(
                        &vae,
                        n,
                        steps,
                        s.step_size.unwrap_or(train.langevin_step_size),
                        &mut rng,
                        device,
                    )?;
                    let std = vae
                        .log_std
                        .val()
                        .clamp(-7.0, 5.0)
                        .exp()
                        .unsqueeze_dim::<2>(0);
                    let eps = zoo_energy::rng::normal(&mut rng, [n, d], device);
                    let x = vae.decode_mean(z) + eps * std;
                    let evals = if vae.prior.is_some() {
                        steps as f64 + 1.0
                    } else {
                        1.0
                    };
                    Ok((x, evals, None))
                })?);
            }
            (vae.num_params(), nll, drawn)
        }
    };
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for (s, dr) in cfg.samplers.iter().zip(drawn) {
        let scores: SampleScores = score_samples(data, &dr.samples)?;
        rows.push(Row {
            config: cfg.name.clone(),
            data: cfg.data.name().into(),
            family: cfg.family.name().into(),
            method: cfg.method.clone(),
            sampler: s.label(),
            seed,
            backend: cfg.backend.name().into(),
            params,
            nll: nll.value,
            nll_se: nll.se,
            nll_unit: nll.unit.into(),
            nll_estimator: nll.estimator.clone(),
            true_nll: data.truth.as_ref().map(|t| t.true_nll),
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
            train_seconds,
            ms_per_1000_samples: dr.seconds * 1e6 / n as f64,
        });
        samples.push((s.label(), dr.samples));
    }
    Ok(Evaluated {
        rows,
        samples,
        density: nll.density,
    })
}

/// `n` ULA or MALA chains from `init` on `energy` (default 500 steps of h = 0.002), through the
/// shared chain driver ([`zoo_mcmc::run::run`]): acceptance summed on the device, a diverging
/// chain reported with its step.
fn mcmc(
    energy: &dyn zoo_energy::Energy,
    s: &SamplerSpec,
    n: usize,
    init: InitDistribution,
    rng: &mut ZooRng,
    device: &Device,
) -> Result<(Tensor<2>, f64, Option<f64>)> {
    let kind = if s.kind == "mala" {
        SamplerKind::Mala
    } else {
        SamplerKind::Ula
    };
    let steps = s.steps.unwrap_or(500);
    let mut sampler = AnySampler::new(kind, s.step_size.unwrap_or(0.002), 1)?;
    let d = energy.dim();
    let start = from_host2(init.draw(rng, n * d), [n, d], device);
    let chain = zoo_mcmc::run::RunConfig {
        steps,
        check_every: 100,
        keep_draws: false,
        ..Default::default()
    };
    let out = zoo_mcmc::run::run(&mut sampler, energy, start, &chain, rng, &mut |_| {})?;
    let acceptance = (kind == SamplerKind::Mala).then_some(out.acceptance_rate);
    Ok((out.state.position, steps as f64, acceptance))
}

/// PF-ODE NLL and every sampler of a diffusion model.
fn diffusion_eval(
    cfg: &RunConfig,
    score: &dyn zoo_diffusion::ScoreModel,
    sde: &zoo_diffusion::Sde,
    data: &Prepared,
    test_t: Tensor<2>,
    seed: u64,
    device: &Device,
) -> Result<(Nll, Vec<Drawn>)> {
    use zoo_diffusion::{Divergence, Solver};
    let (divergence, label) = if data.truth.is_some() {
        (Divergence::Exact, "exact divergence")
    } else {
        (
            Divergence::Hutchinson { probes: 1 },
            "Hutchinson divergence, 1 probe",
        )
    };
    let lik = zoo_diffusion::pf_ode_log_likelihood(
        score,
        sde,
        test_t,
        cfg.eval.ode_steps,
        sde.t_min(),
        divergence,
        &mut seeded(seed + 3),
    )?;
    let log_p: Vec<f64> = to_host1(&lik.log_likelihood)
        .into_iter()
        .map(f64::from)
        .collect();
    let nll = Nll::from_log_densities(
        data,
        &log_p,
        &format!(
            "{} ({} RK4 steps, {label})",
            estimator::PF_ODE,
            cfg.eval.ode_steps
        ),
    );
    let n = cfg.eval.samples;
    let mut drawn = Vec::new();
    for (k, s) in cfg.samplers.iter().enumerate() {
        let mut rng = sampler_stream(seed, k);
        drawn.push(timed(|| {
            if s.kind == "annealed_langevin" {
                let ladder = zoo_diffusion::NoiseLadder::geometric(4.0, 0.01, 50)?;
                let (x, r) = zoo_diffusion::annealed_langevin(
                    score,
                    sde,
                    &ladder,
                    s.steps.unwrap_or(20),
                    s.step_size.unwrap_or(2e-5),
                    n,
                    &mut rng,
                    device,
                )?;
                return Ok((x, r.nfe as f64, None));
            }
            let (solver, default_steps) = match s.kind.as_str() {
                "euler_maruyama" => (Solver::EulerMaruyama, 500),
                "ancestral" => (Solver::Ancestral, 500),
                "predictor_corrector" => (
                    Solver::PredictorCorrector {
                        snr: s.snr.unwrap_or(0.16),
                        corrector_steps: 1,
                    },
                    250,
                ),
                "heun" => (Solver::Heun, 100),
                "rk4" => (Solver::Rk4, 50),
                "ddim" => (Solver::Ddim, 100),
                other => {
                    let why = format!("{other:?} is not a diffusion sampler");
                    return Err(zoo_energy::Error::invalid("sampler", why).into());
                }
            };
            let (x, r) = zoo_diffusion::sample(
                score,
                sde,
                solver,
                n,
                s.steps.unwrap_or(default_steps),
                sde.t_min(),
                &mut rng,
                device,
            )?;
            Ok((x, r.nfe as f64, None))
        })?);
    }
    Ok((nll, drawn))
}
