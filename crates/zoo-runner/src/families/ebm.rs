//! The `ebm` family: an MLP energy trained by a core-EBM objective (`zoo-ebm`), scored by exact
//! quadrature (2-D) and sampled by ULA or MALA from the data box.

use super::{Ctx, EvalCtx, FamilyRun, Scored, Sections, Trained};
use crate::config::ConfigError;
use crate::config::{
    EbmObjective, SamplerSpec, check_ebm_train, check_objective, checked, keyed, typed,
};
use crate::error::Result;
use crate::evaluate::{Draw, Nll, not_for};
use crate::family::{Curve, init_box, load_module, module_bytes};
use crate::methods::{EbmSampler, SamplerKind};
use crate::metrics::estimator;
use burn::module::Module;
use burn::prelude::*;
use zoo_ebm::objective::ObjectiveKind;
use zoo_energy::ZooRng;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::from_host2;
use zoo_mcmc::sampler::{AnySampler, InitDistribution, ReplayBuffer};
use zoo_neural::MlpEnergy;

/// The plan of an `ebm` run.
#[derive(Debug, Clone)]
pub struct EbmPlan {
    /// The objective.
    pub method: ObjectiveKind,
    /// Widths and activation of the MLP energy.
    pub model: zoo_neural::MlpEnergyConfig,
    /// The trainer.
    pub train: zoo_ebm::EbmTrainConfig,
    /// The objective's settings.
    pub objective: EbmObjective,
}

impl FamilyRun for EbmPlan {
    type Method = ObjectiveKind;
    fn plan(method: ObjectiveKind, sections: Sections) -> std::result::Result<Self, ConfigError> {
        plan(sections, method)
    }
    fn train(&self, ctx: &mut Ctx) -> Result<Trained> {
        train(self, ctx)
    }
    fn evaluate(&self, ctx: &EvalCtx) -> Result<Scored> {
        evaluate(ctx, &self.model)
    }
}

/// An MLP energy (`hidden`, `activation`), the trainer and the objective's settings.
fn plan(
    mut s: Sections,
    method: zoo_ebm::objective::ObjectiveKind,
) -> std::result::Result<EbmPlan, ConfigError> {
    let file = s.file;
    let objective = s.objective.take().unwrap_or_default();
    let hidden: Vec<usize> = match s.model.remove("hidden") {
        Some(v) => typed(file, "model.hidden", v)?,
        None => vec![64, 64],
    };
    let activation = match s.model.remove("activation") {
        Some(v) => typed(file, "model.activation", v)?,
        None => zoo_neural::Activation::Silu,
    };
    if let Some(k) = s.model.keys().next() {
        let why = "unknown key; the ebm model takes `hidden` and `activation`";
        return Err(ConfigError::new(file, &format!("model.{k}"), why.into()));
    }
    let mut widths = vec![s.dim];
    widths.extend(hidden);
    widths.push(1);
    let model = zoo_neural::MlpEnergyConfig::new(widths, activation);
    keyed(file, "model", model.check())?;
    let train: zoo_ebm::EbmTrainConfig = checked(file, "train", s.train, check_ebm_train)?;
    let objective: EbmObjective = typed(file, "objective", objective)?;
    keyed(file, "objective", check_objective(&objective))?;
    Ok(EbmPlan {
        method,
        model,
        train,
        objective,
    })
}

fn train(p: &EbmPlan, ctx: &mut Ctx) -> Result<Trained> {
    let (method, model, train, objective) = (p.method, &p.model, &p.train, &p.objective);
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
        SlicedScoreMatching, TemperedPcd,
    };
    let (init, device) = (init_box(ctx.data), ctx.device);
    let h = o.step_size.unwrap_or(0.005);
    let ula = AnySampler::new(zoo_mcmc::sampler::SamplerKind::Ula, h, 1)?;
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
        ObjectiveKind::PtCd => {
            let ladder = zoo_mcmc::sampler::Ladder::geometric(
                o.replicas.unwrap_or(8),
                o.beta_min.unwrap_or(0.05),
            )?;
            let mala = AnySampler::new(zoo_mcmc::sampler::SamplerKind::Mala, h, 1)?;
            Box::new(
                TemperedPcd::new(mala, ladder, o.chains.unwrap_or(256), 1, init)?
                    .with_kernel_steps(o.mcmc_steps.unwrap_or(20))?
                    .with_energy_penalty(penalty)?,
            )
        }
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

/// An MLP energy: quadrature NLL (2-D), ULA/MALA chains from the data box.
fn evaluate(ctx: &EvalCtx, model: &zoo_neural::MlpEnergyConfig) -> Result<Scored> {
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
) -> Result<Draw> {
    let steps = s.steps.unwrap_or(500);
    let mut sampler = AnySampler::new(kind.kind(), s.step_size.unwrap_or(0.002), 1)?;
    let d = energy.dim();
    let start = from_host2(init.draw(rng, n * d), [n, d], device);
    if kind == EbmSampler::Pt {
        return tempering(rng, energy, s, sampler, start);
    }
    let chain = zoo_mcmc::run::RunConfig {
        steps,
        check_every: 100,
        keep_draws: false,
        ..Default::default()
    };
    let out = zoo_mcmc::run::run(rng, &mut sampler, energy, start, &chain, &mut |_| {})?;
    let acceptance = (kind == EbmSampler::Mala).then_some(out.acceptance_rate);
    Ok(Draw::new(out.state.position, steps as f64).accepted(acceptance))
}

/// Parallel tempering around MALA: `steps` warm-up sweeps (the step size adapts towards 0.574
/// acceptance, the ladder towards equal swap rates), then `steps` sweeps; the beta = 1 replica's
/// last positions are the samples. Cost per sample: 2 steps x replicas energy evaluations.
fn tempering(
    rng: &mut ZooRng,
    energy: &dyn zoo_energy::Energy,
    s: &SamplerSpec,
    kernel: AnySampler,
    start: Tensor<2>,
) -> Result<Draw> {
    use zoo_mcmc::sampler::{Ladder, ParallelTempering};
    let steps = s.steps.unwrap_or(500);
    let ladder = Ladder::geometric(s.replicas.unwrap_or(8), s.beta_min.unwrap_or(0.05))?;
    let replicas = ladder.len();
    let mut pt = ParallelTempering::new(kernel, ladder);
    let config = zoo_mcmc::run::TemperingRunConfig {
        warmup: steps,
        steps,
        thin: 1,
        adapt_ladder: true,
        target_acceptance: Some(0.574),
        check_every: 100,
        keep_draws: false,
    };
    let out = zoo_mcmc::run::run_tempering(rng, &mut pt, energy, start, &config, &mut |_| {})?;
    let nfe = (2 * steps * replicas) as f64;
    let swaps = &out.swap_rates;
    let draw = Draw::new(pt.cold(&out.state), nfe).accepted(Some(out.acceptance[0]));
    Ok(Draw {
        swap_rate: (!swaps.is_empty()).then(|| swaps.iter().sum::<f64>() / swaps.len() as f64),
        ..draw
    })
}
