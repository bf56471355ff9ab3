//! The `vae` family: a VAE with a Gaussian or a latent EBM prior (`zoo-vae`), or the
//! Energy-Calibrated VAE, scored by IWAE (with the EBM prior's log Z estimated), sampled through
//! the prior (the EC-VAE: decoder means, one pass per sample, as in the paper); or a
//! hierarchical generator with a Gaussian, single-stage EBM or EBM diffusion prior over its
//! whitened latent (Cui & Han 2024; decoder means of the prior's draws).

use super::{Ctx, EvalCtx, FamilyRun, Scored, Sections, Trained};
use crate::config::ConfigError;
use crate::config::checked;
use crate::data::bits_per_dim;
use crate::error::Result;
use crate::evaluate::{Draw, Nll};
use crate::family::{Curve, load_module, module_bytes};
use crate::methods::VaeMethod;
use crate::metrics::{estimator, finite};
use burn::module::Module;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::from_host2;

/// The plan of a `vae` run.
#[derive(Debug, Clone)]
pub enum VaePlan {
    /// A one-layer VAE.
    Flat {
        /// Encoder, decoder, prior (the prior from the method).
        model: zoo_vae::VaeConfig,
        /// How it trains.
        train: VaeTraining,
    },
    /// A hierarchical generator (trained first, then frozen) and a prior over its whitened latent.
    Hierarchical {
        /// The generator and the EBM prior's architecture.
        model: zoo_vae::HierVaeConfig,
        /// The prior (from the method).
        prior: zoo_vae::LatentPriorKind,
        /// The generator's and the prior's training.
        train: zoo_vae::HierTrainConfig,
    },
}

/// The training of a `vae` run.
#[derive(Debug, Clone)]
pub enum VaeTraining {
    /// The ELBO (and the EBM prior's maximum likelihood).
    Elbo(zoo_vae::VaeTrainConfig),
    /// The EC-VAE's calibrated training (`method = "ec_vae"`).
    Calibrated(zoo_vae::EcVaeTrainConfig),
}

impl FamilyRun for VaePlan {
    type Method = VaeMethod;
    fn plan(method: VaeMethod, sections: Sections) -> std::result::Result<Self, ConfigError> {
        plan(sections, method)
    }
    fn train(&self, ctx: &mut Ctx) -> Result<Trained> {
        match self {
            VaePlan::Flat { model, train: t } => train(model, t, ctx),
            VaePlan::Hierarchical {
                model,
                prior,
                train,
            } => train_hierarchical(model, *prior, train, ctx),
        }
    }
    fn evaluate(&self, ctx: &EvalCtx) -> Result<Scored> {
        match self {
            VaePlan::Flat { model, train } => evaluate(ctx, model, train),
            VaePlan::Hierarchical {
                model,
                prior,
                train,
            } => evaluate_hierarchical(ctx, model, *prior, train),
        }
    }
}

/// A VAE with the method's prior; the runner's data are continuous, so the decoder is
/// Gaussian.
fn plan(mut s: Sections, method: VaeMethod) -> std::result::Result<VaePlan, ConfigError> {
    let file = s.file;
    let dim = s.dim_value();
    s.fill("data_dim", dim, "the data")?;
    if let Some(prior) = method.latent_prior() {
        let model = checked(file, "model", s.model, zoo_vae::HierVaeConfig::check)?;
        let train: zoo_vae::HierTrainConfig =
            checked(file, "train", s.train, zoo_vae::HierTrainConfig::check)?;
        let budget = model.prior.check_budget(prior, train.prior.langevin_steps);
        crate::config::keyed(file, "train", budget)?;
        return Ok(VaePlan::Hierarchical {
            model,
            prior,
            train,
        });
    }
    let prior = toml::Value::try_from(method.prior()).expect("a prior kind serialises");
    s.fill("prior", prior, "`method`")?;
    match s.model.get("decoder").and_then(|v| v.as_str()) {
        None => {
            s.model.insert("decoder".into(), "gaussian".into());
        }
        Some("gaussian") => {}
        Some(other) => {
            let why = format!(
                "{other:?}: the runner's data are continuous (2-D points, dequantised digits); use \"gaussian\""
            );
            return Err(ConfigError::new(file, "model.decoder", why));
        }
    }
    let model = checked(file, "model", s.model, zoo_vae::VaeConfig::check)?;
    let train = match method {
        VaeMethod::EcVae | VaeMethod::EcVaeBaseline => {
            let check = zoo_vae::EcVaeTrainConfig::check;
            let train: zoo_vae::EcVaeTrainConfig = checked(file, "train", s.train, check)?;
            VaeTraining::Calibrated(zoo_vae::EcVaeTrainConfig {
                calibrate: method == VaeMethod::EcVae,
                ..train
            })
        }
        _ => VaeTraining::Elbo(checked(
            file,
            "train",
            s.train,
            zoo_vae::VaeTrainConfig::check,
        )?),
    };
    Ok(VaePlan::Flat { model, train })
}

fn train(model: &zoo_vae::VaeConfig, train: &VaeTraining, ctx: &mut Ctx) -> Result<Trained> {
    let mut vae = model.init(&mut ctx.init_rng, &ctx.ad)?;
    let x = ctx.train_tensor();
    let (curve, seconds, resumed_from) = match train {
        VaeTraining::Elbo(train) => {
            let train = zoo_vae::VaeTrainConfig {
                resume: ctx.resume.clone(),
                ..train.clone()
            };
            let report = zoo_vae::fit(&mut ctx.rng, &mut vae, &x, &train)?;
            let curve = Curve::from_series(&[("neg_elbo", &report.losses)]);
            (curve, report.seconds, report.resumed_from)
        }
        VaeTraining::Calibrated(train) => {
            let train = zoo_vae::EcVaeTrainConfig {
                resume: ctx.resume.clone(),
                ..train.clone()
            };
            let mut energy = train.init_energy(&mut ctx.init_rng, model.data_dim, &ctx.ad)?;
            let r = zoo_vae::fit_calibrated(&mut ctx.rng, &mut vae, &mut energy, &x, &train)?;
            let column = |f: fn(&zoo_vae::EcVaeLog) -> f64| r.log.iter().map(f).collect::<Vec<_>>();
            let curve = Curve::from_series(&[
                ("vae_loss", &column(|l| l.vae_loss)),
                ("calibration_loss", &column(|l| l.calibration_loss)),
                ("lambda", &column(|l| l.lambda)),
            ]);
            (curve, r.seconds, r.resumed_from)
        }
    };
    Ok(Trained {
        files: vec![("vae.bpk".into(), module_bytes(&vae)?)],
        curve,
        seconds,
        resumed_from,
    })
}

/// A VAE: the IWAE NLL (with the EBM prior's log Z estimated), decoded prior draws.
fn evaluate(ctx: &EvalCtx, model: &zoo_vae::VaeConfig, train: &VaeTraining) -> Result<Scored> {
    let (device, d) = (ctx.device, ctx.data.dim);
    let vae = load_module(
        model.init(&mut seeded(ctx.seed), device)?,
        ctx.files,
        "vae.bpk",
    )?;
    let nll = vae_nll(ctx, &vae)?;
    let n = ctx.n();
    let drawn = ctx.draw_each(|s, rng| {
        let VaeTraining::Elbo(train) = train else {
            // The EC-VAE generates with the decoder alone: its means, one pass per sample.
            let z = zoo_energy::rng::normal(rng, [n, vae.latent_dim], device);
            return Ok(Draw::new(vae.decode_mean(z), 1.0));
        };
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
        Ok(Draw::new(x, evals))
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
    Ok(iwae_nll(ctx, e.iwae_nll, e.iwae_se, estimator))
}

/// The row's NLL from an IWAE value in nats per example and its s.e. (bits/dim on digits); the
/// per-point values are not kept, the mean and its s.e. are.
fn iwae_nll(ctx: &EvalCtx, nats: f64, se: f64, estimator: String) -> Nll {
    let mut nll = Nll::none();
    nll.estimator = estimator;
    if ctx.data.truth.is_some() {
        (nll.value, nll.se) = (finite(nats), finite(se));
    } else {
        let dd = ctx.data.dim as f64 * std::f64::consts::LN_2;
        (nll.value, nll.se) = (finite(bits_per_dim(-nats)), finite(se / dd));
        nll.unit = "bits/dim";
    }
    nll
}

/// The generator by the ELBO, then (EBM priors) the prior with the generator frozen; each stage
/// resumable from its own checkpoint.
fn train_hierarchical(
    model: &zoo_vae::HierVaeConfig,
    kind: zoo_vae::LatentPriorKind,
    train: &zoo_vae::HierTrainConfig,
    ctx: &mut Ctx,
) -> Result<Trained> {
    let mut vae = model.init(&mut ctx.init_rng, &ctx.ad)?;
    let mut prior = model
        .prior
        .init(kind, &model.latent, &mut ctx.init_rng, &ctx.ad)?;
    let x = ctx.train_tensor();
    let generator = zoo_vae::HierTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let report = zoo_vae::fit_hier_vae(&mut ctx.rng, &mut vae, &x, &generator)?;
    let mut files = vec![("vae.bpk".into(), module_bytes(&vae)?)];
    let mut series = vec![("neg_elbo", report.losses.clone())];
    let (mut seconds, mut resumed_from) = (report.seconds, report.resumed_from);
    if let Some(p) = prior.as_mut() {
        let resume = zoo_train::Resume {
            path: ctx
                .resume
                .path
                .as_ref()
                .map(|f| f.with_extension("prior.ckpt")),
            fingerprint: format!("{}/prior", ctx.resume.fingerprint),
            ..ctx.resume.clone()
        };
        let cfg = zoo_vae::LatentPriorTrainConfig {
            resume,
            ..train.prior.clone()
        };
        let frozen = vae.valid();
        let source = zoo_vae::HierPosterior {
            vae: &frozen,
            data: &x,
        };
        let r = zoo_vae::fit_latent_prior(&mut ctx.rng, p, &frozen, &source, &cfg)?;
        files.push(("prior.bpk".into(), module_bytes(p)?));
        series.push(("prior_contrast", r.losses));
        seconds += r.seconds;
        if r.resumed_from > 0 {
            // Counted over both stages: the generator's iterations, then the prior's.
            resumed_from = train.iterations + r.resumed_from;
        }
    }
    let named: Vec<(&str, &[f64])> = series.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    Ok(Trained {
        files,
        curve: Curve::from_series(&named),
        seconds,
        resumed_from,
    })
}

/// A hierarchical VAE: the IWAE bound with the Gaussian prior (EBM priors: no NLL, their
/// marginal over the diffusion is not tractable); decoder means of the prior's draws, the
/// evaluations per sample counting every Langevin step.
fn evaluate_hierarchical(
    ctx: &EvalCtx,
    model: &zoo_vae::HierVaeConfig,
    kind: zoo_vae::LatentPriorKind,
    train: &zoo_vae::HierTrainConfig,
) -> Result<Scored> {
    let device = ctx.device;
    let mut init = seeded(ctx.seed);
    let vae = load_module(model.init(&mut init, device)?, ctx.files, "vae.bpk")?;
    let prior = match model.prior.init(kind, &model.latent, &mut init, device)? {
        Some(p) => Some(load_module(p, ctx.files, "prior.bpk")?),
        None => None,
    };
    let nll = match &prior {
        Some(_) => Nll::none(),
        None => {
            let k = ctx.cfg.eval.iwae_k;
            let (v, se) = vae.iwae_nll(&mut seeded(ctx.seed + 3), &ctx.test, k)?;
            iwae_nll(ctx, v, se, format!("{} (K = {k})", estimator::IWAE_BOUND))
        }
    };
    let n = ctx.n();
    let drawn = ctx.draw_each(|s, rng| {
        let chain = zoo_vae::PriorChain {
            steps: s.steps.unwrap_or(train.prior.langevin_steps),
            step_size: s.step_size.unwrap_or(train.prior.langevin_step_size),
        };
        let x = vae.generate(rng, prior.as_ref().map(|p| (p, chain)), n, device)?;
        let evals = match &prior {
            Some(p) => (p.steps_per_level(chain.steps)? * p.levels()) as f64 + 1.0,
            None => 1.0,
        };
        Ok(Draw::new(x, evals))
    })?;
    let params = vae.num_params() + prior.as_ref().map_or(0, |p| p.num_params());
    Ok((params, nll, drawn))
}
