//! The `diffusion` family: a score network (noise-predicting MLP or energy-parameterised)
//! trained by denoising score matching (`zoo-diffusion`), scored by the PF-ODE likelihood,
//! sampled by every solver and by annealed Langevin.

use super::{Ctx, EvalCtx, FamilyRun, Scored, Sections, Trained};
use crate::config::ConfigError;
use crate::config::{SamplerSpec, checked};
use crate::error::Result;
use crate::evaluate::{Draw, Drawn, Nll, not_for};
use crate::family::{Curve, load_module, module_bytes};
use crate::methods::{DiffusionMethod, DiffusionSampler, SamplerKind};
use crate::metrics::estimator;
use burn::module::Module;
use zoo_energy::BackendKind;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::to_host1;

/// The plan of a `diffusion` run.
#[derive(Debug, Clone)]
pub struct DiffusionPlan {
    /// The SDE and the network's parameterisation.
    pub method: DiffusionMethod,
    /// The score network.
    pub model: zoo_diffusion::ScoreNetConfig,
    /// DSM training.
    pub train: zoo_diffusion::DsmTrainConfig,
}

impl FamilyRun for DiffusionPlan {
    type Method = DiffusionMethod;
    fn plan(method: DiffusionMethod, mut s: Sections) -> std::result::Result<Self, ConfigError> {
        let file = s.file;
        s.fill("data_dim", s.dim_value(), "the data")?;
        let model = checked(file, "model", s.model, zoo_diffusion::ScoreNetConfig::check)?;
        let train = checked(file, "train", s.train, zoo_diffusion::DsmTrainConfig::check)?;
        if method == DiffusionMethod::FlowMatching && train.weighting != Default::default() {
            let why = "flow matching weights every time alike; the DSM weighting does not apply";
            return Err(ConfigError::new(file, "train.weighting", why.into()));
        }
        Ok(DiffusionPlan {
            method,
            model,
            train,
        })
    }
    fn train(&self, ctx: &mut Ctx) -> Result<Trained> {
        train(self, ctx)
    }
    fn evaluate(&self, ctx: &EvalCtx) -> Result<Scored> {
        evaluate(ctx, self.method, &self.model)
    }
}

/// The SDE of a score-based method. Flow matching has none (its path is the linear
/// interpolant); `train` and `evaluate` hand it to its own functions before asking.
fn diffusion_sde(method: DiffusionMethod) -> zoo_diffusion::Sde {
    match method {
        // The VE SDE of NCSN's ladder (Song & Ermon 2019): 50 levels from 4 to 0.01.
        DiffusionMethod::VeNcsn => zoo_diffusion::Sde::Ve {
            sigma_min: 0.01,
            sigma_max: 4.0,
        },
        DiffusionMethod::VpMlp | DiffusionMethod::VpEnergy => zoo_diffusion::Sde::vp(),
        DiffusionMethod::FlowMatching => {
            unreachable!("flow matching is trained and evaluated apart")
        }
    }
}

fn train(p: &DiffusionPlan, ctx: &mut Ctx) -> Result<Trained> {
    let (method, model, train) = (p.method, &p.model, &p.train);
    let train = &zoo_diffusion::DsmTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let (x, progress) = (ctx.train_tensor(), ctx.progress);
    if method == DiffusionMethod::FlowMatching {
        let mut net = zoo_diffusion::VelocityNet::new(&mut ctx.init_rng, model, &ctx.ad)?;
        let r = zoo_diffusion::fit_flow_matching(&mut ctx.rng, &mut net, &x, train, progress)?;
        return Ok(Trained {
            files: vec![("velocity.bpk".into(), module_bytes(&net)?)],
            curve: Curve::from_series(&[("flow_matching_loss", &r.losses)]),
            seconds: r.seconds,
            resumed_from: r.resumed_from,
        });
    }
    let sde = diffusion_sde(method);
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

/// A velocity network, or a score network (noise-predicting MLP or energy-parameterised) under
/// its SDE, loaded from the checkpoint and scored.
fn evaluate(
    ctx: &EvalCtx,
    method: DiffusionMethod,
    model: &zoo_diffusion::ScoreNetConfig,
) -> Result<Scored> {
    let mut init_rng = seeded(ctx.seed);
    if method == DiffusionMethod::FlowMatching {
        let init = zoo_diffusion::VelocityNet::new(&mut init_rng, model, ctx.device)?;
        let net = load_module(init, ctx.files, "velocity.bpk")?;
        let (nll, drawn) = flow_eval(ctx, &zoo_diffusion::FlowMatchingModel::new(&net))?;
        return Ok((net.num_params(), nll, drawn));
    }
    let sde = diffusion_sde(method);
    let (params, (nll, drawn)) = if method == DiffusionMethod::VpEnergy {
        let (params, score) = load_score(ctx, model.energy(&mut init_rng, ctx.device)?, sde)?;
        (params, diffusion_eval(ctx, &score, &sde, Some(&score))?)
    } else {
        let (params, score) = load_score(ctx, model.mlp(&mut init_rng, ctx.device)?, sde)?;
        (params, diffusion_eval(ctx, &score, &sde, None)?)
    };
    Ok((params, nll, drawn))
}

/// A score network of either parameterisation from the checkpoint: its parameter count and the
/// network as a score model under `sde`.
fn load_score<N: zoo_diffusion::ScoreNet>(
    ctx: &EvalCtx,
    init: N,
    sde: zoo_diffusion::Sde,
) -> Result<(usize, zoo_diffusion::NetScore<N>)> {
    let net = load_module(init, ctx.files, "score.bpk")?;
    Ok((net.num_params(), zoo_diffusion::NetScore::new(&net, sde)))
}

/// The energy-parameterised model, for the reweighted reverse SDE.
type Energies = zoo_diffusion::NetScore<zoo_diffusion::EnergyScore>;

/// PF-ODE NLL and every sampler of a diffusion model.
fn diffusion_eval(
    ctx: &EvalCtx,
    score: &dyn zoo_diffusion::ScoreModel,
    sde: &zoo_diffusion::Sde,
    energies: Option<&Energies>,
) -> Result<(Nll, Vec<Drawn>)> {
    let nll = pf_ode_nll(ctx, score, sde)?;
    let (n, device) = (ctx.n(), ctx.device);
    let drawn = ctx.draw_each(|s, rng| {
        let SamplerKind::Diffusion(kind) = s.kind else {
            return Err(not_for(s, "a diffusion model"));
        };
        if kind == DiffusionSampler::ReweightedSde {
            let energies = energies.ok_or_else(|| not_for(s, "a score-only model"))?;
            let smc = zoo_diffusion::ReweightedSampling {
                steps: s.steps.unwrap_or(20),
                groups: 4,
                threshold: s.resample_threshold.unwrap_or(0.5),
            };
            let (x, r) = smc.sample(rng, energies, sde, n, device)?;
            if r.distinct * 10 < n {
                eprintln!(
                    "warning: reweighted_sde ({} steps): {} distinct of {n} draws: the weights \
                     were degenerate (the model's energies disagree with its own reverse drift)",
                    smc.steps, r.distinct
                );
            }
            return Ok(Draw::new(x, r.nfe as f64));
        }
        let Some((solver, default_steps)) = solver(kind, s) else {
            let config = zoo_diffusion::AnnealedLangevinConfig {
                ladder: zoo_diffusion::NoiseLadder::geometric(4.0, 0.01, 50)?,
                steps_per_level: s.steps.unwrap_or(20),
                epsilon: s.step_size.unwrap_or(2e-5),
            };
            let (x, r) = zoo_diffusion::annealed_langevin(rng, score, sde, &config, n, device)?;
            return Ok(Draw::new(x, r.nfe as f64));
        };
        let config = zoo_diffusion::SampleConfig {
            solver,
            steps: s.steps.unwrap_or(default_steps),
            t_min: sde.t_min(),
        };
        let (x, r) = zoo_diffusion::sample(rng, score, sde, &config, n, device)?;
        Ok(Draw::new(x, r.nfe as f64))
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
        DiffusionSampler::AnnealedLangevin | DiffusionSampler::ReweightedSde => return None,
    })
}

/// Flow matching: the likelihood by the change of variables along its ODE (exact divergence in
/// 2-D, one Hutchinson probe on digits) and its ODE / interpolant-SDE samplers.
fn flow_eval(ctx: &EvalCtx, field: &zoo_diffusion::FlowMatchingModel) -> Result<(Nll, Vec<Drawn>)> {
    use zoo_diffusion::FlowSolver;
    let (divergence, label) = divergence_for(ctx);
    let steps = ctx.cfg.eval.ode_steps;
    let mut rng = seeded(ctx.seed + 3);
    let log_lik =
        zoo_diffusion::flow_log_likelihood(&mut rng, field, ctx.test.clone(), steps, divergence)?;
    let log_p: Vec<f64> = to_host1(&log_lik).into_iter().map(f64::from).collect();
    let what = format!("{} ({steps} RK4 steps, {label})", estimator::FLOW_ODE);
    let nll = Nll::from_log_densities(ctx.data, &log_p, &what);
    let (n, device) = (ctx.n(), ctx.device);
    let drawn = ctx.draw_each(|s, rng| {
        let (solver, default_steps) = match s.kind {
            SamplerKind::Diffusion(DiffusionSampler::Heun) => (FlowSolver::Heun, 50),
            SamplerKind::Diffusion(DiffusionSampler::Rk4) => (FlowSolver::Rk4, 25),
            SamplerKind::Diffusion(DiffusionSampler::EulerMaruyama) => {
                let epsilon = s.epsilon.unwrap_or(0.5);
                (FlowSolver::Sde { epsilon }, 200)
            }
            _ => return Err(not_for(s, "a flow-matching model")),
        };
        let steps = s.steps.unwrap_or(default_steps);
        let (x, nfe) = zoo_diffusion::sample_flow(rng, field, solver, steps, n, device)?;
        Ok(Draw::new(x, nfe as f64))
    })?;
    Ok((nll, drawn))
}

/// The divergence of a likelihood: exact in 2-D (data with a known density), else one
/// Hutchinson probe.
fn divergence_for(ctx: &EvalCtx) -> (zoo_diffusion::Divergence, &'static str) {
    use zoo_diffusion::Divergence;
    if ctx.data.truth.is_some() {
        (Divergence::Exact, "exact divergence")
    } else {
        let probe = Divergence::Hutchinson { probes: 1 };
        (probe, "Hutchinson divergence, 1 probe")
    }
}

/// The PF-ODE NLL of the test points (exact divergence in 2-D, one Hutchinson probe on digits).
fn pf_ode_nll(
    ctx: &EvalCtx,
    score: &dyn zoo_diffusion::ScoreModel,
    sde: &zoo_diffusion::Sde,
) -> Result<Nll> {
    let (divergence, label) = divergence_for(ctx);
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
