//! Each family behind the same two calls: [`train`] (returns the checkpoint as named burnpack
//! buffers and the training curve) and [`evaluate`] (rebuilds the model from those buffers and
//! scores every sampler). Evaluation always starts from the checkpoint bytes, so a run resumed
//! after a kill scores exactly what an uninterrupted run scores.

use crate::config::{DiffusionMethod, EbmObjective, Plan, RunConfig};
use crate::data::Prepared;
use crate::error::{Error, Result};
use burn::module::Module;
use burn::prelude::*;
use zoo_ebm::objective::ObjectiveKind;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::from_host2;
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

fn module_bytes<M: Module>(m: &M) -> Result<Vec<u8>> {
    zoo_train::module_bytes(m).map_err(|message| Error::Corrupt {
        path: "checkpoint".into(),
        message,
    })
}

pub(crate) fn load_module<M: Module>(init: M, files: &Files, name: &str) -> Result<M> {
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
pub(crate) fn init_box(data: &Prepared) -> InitDistribution {
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
    train: &zoo_ebm::EbmTrainConfig,
    objective: &EbmObjective,
) -> Result<Trained> {
    let model = model.init(&mut ctx.init_rng, &ctx.ad)?;
    let train = zoo_ebm::EbmTrainConfig {
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
    train: &zoo_flow::FlowTrainConfig,
) -> Result<Trained> {
    let mut flow = model.init(&mut ctx.init_rng, &ctx.ad)?;
    let fit = zoo_flow::FlowTrainConfig {
        progress: ctx.progress,
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let x = ctx.train_tensor();
    let report = zoo_flow::fit_max_likelihood(&mut ctx.rng, &mut flow, &x, None, &fit)?;
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
    train: &zoo_diffusion::DsmTrainConfig,
) -> Result<Trained> {
    let sde = diffusion_sde(method);
    let train = &zoo_diffusion::DsmTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let (x, progress) = (ctx.train_tensor(), ctx.progress);
    let (bytes, report) = if method == DiffusionMethod::VpEnergy {
        let mut net = model.energy(&mut ctx.init_rng, &ctx.ad)?;
        let r = zoo_diffusion::fit_dsm(&mut ctx.rng, &mut net, &sde, &x, train, progress)?;
        (module_bytes(&net)?, r)
    } else {
        let mut net = model.mlp(&mut ctx.init_rng, &ctx.ad)?;
        let r = if BackendKind::is_host_device(ctx.device) {
            zoo_diffusion::fit_dsm_fused(&mut ctx.rng, &mut net, &sde, &x, train)?
        } else {
            zoo_diffusion::fit_dsm(&mut ctx.rng, &mut net, &sde, &x, train, progress)?
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
    let mut gan = model.init(&mut ctx.init_rng, &ctx.ad)?;
    let train = zoo_gan::GanTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let x = ctx.train_tensor();
    let report = zoo_gan::fit(&mut ctx.rng, &mut gan, &x, &train, ctx.progress)?;
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
    let mut vae = model.init(&mut ctx.init_rng, &ctx.ad)?;
    let train = zoo_vae::VaeTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let x = ctx.train_tensor();
    let report = zoo_vae::fit(&mut ctx.rng, &mut vae, &x, &train)?;
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
    train: zoo_ebm::EbmTrainConfig,
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
    trainer.fit(&mut ctx.rng, objective.as_mut(), data, device)?;
    let losses = trainer.history.iter().map(|r| r.loss).collect();
    let t = &trainer;
    Ok((t.model().clone(), losses, t.seconds, t.resumed_from))
}

pub(crate) fn diffusion_sde(method: DiffusionMethod) -> zoo_diffusion::Sde {
    match method {
        // The VE SDE of NCSN's ladder (Song & Ermon 2019): 50 levels from 4 to 0.01.
        DiffusionMethod::VeNcsn => zoo_diffusion::Sde::Ve {
            sigma_min: 0.01,
            sigma_max: 4.0,
        },
        DiffusionMethod::VpMlp | DiffusionMethod::VpEnergy => zoo_diffusion::Sde::vp(),
    }
}
