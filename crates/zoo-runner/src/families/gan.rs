//! The `gan` family: a GAN whose discriminator is an energy (`zoo-gan`), scored by quadrature of
//! that energy (2-D), sampled by the generator or by Langevin in its latent space; and DDAEBM,
//! whose conditional energies have no tractable marginal density (no NLL), sampled by its
//! generators down the diffusion.

use super::{Ctx, EvalCtx, FamilyRun, Scored, Sections, Trained};
use crate::config::ConfigError;
use crate::config::checked;
use crate::error::Result;
use crate::evaluate::{Draw, Nll, not_for};
use crate::family::{Curve, load_module, module_bytes};
use crate::methods::{GanMethod, GanSampler, SamplerKind};
use crate::metrics::estimator;
use zoo_energy::rng::seeded;

/// The plan of a `gan` run.
#[derive(Debug, Clone)]
pub enum GanPlan {
    /// A two-player game.
    Game {
        /// Both players (the game from the method).
        model: zoo_gan::GanConfig,
        /// The game's training.
        train: zoo_gan::GanTrainConfig,
    },
    /// DDAEBM.
    Ddaebm {
        /// The diffusion and the three networks.
        model: zoo_gan::DdaebmConfig,
        /// Its training.
        train: zoo_gan::DdaebmTrainConfig,
    },
}

impl FamilyRun for GanPlan {
    type Method = GanMethod;
    fn plan(method: GanMethod, mut s: Sections) -> std::result::Result<Self, ConfigError> {
        let file = s.file;
        s.fill("data_dim", s.dim_value(), "the data")?;
        let GanMethod::Game(loss) = method else {
            let model = checked(file, "model", s.model, zoo_gan::DdaebmConfig::check)?;
            let train = checked(file, "train", s.train, zoo_gan::DdaebmTrainConfig::check)?;
            return Ok(GanPlan::Ddaebm { model, train });
        };
        s.fill("loss", loss.name().into(), "`method`")?;
        let model = checked(file, "model", s.model, zoo_gan::GanConfig::check)?;
        let train = checked(file, "train", s.train, zoo_gan::GanTrainConfig::check)?;
        Ok(GanPlan::Game { model, train })
    }
    fn train(&self, ctx: &mut Ctx) -> Result<Trained> {
        match self {
            GanPlan::Game { model, train: t } => train(model, t, ctx),
            GanPlan::Ddaebm { model, train } => train_ddaebm(model, train, ctx),
        }
    }
    fn evaluate(&self, ctx: &EvalCtx) -> Result<Scored> {
        match self {
            GanPlan::Game { model, .. } => evaluate(ctx, model),
            GanPlan::Ddaebm { model, .. } => evaluate_ddaebm(ctx, model),
        }
    }
}

fn train_ddaebm(
    model: &zoo_gan::DdaebmConfig,
    train: &zoo_gan::DdaebmTrainConfig,
    ctx: &mut Ctx,
) -> Result<Trained> {
    let mut m = model.init(&mut ctx.init_rng, &ctx.ad)?;
    let train = zoo_gan::DdaebmTrainConfig {
        resume: ctx.resume.clone(),
        ..train.clone()
    };
    let x = ctx.train_tensor();
    let report = zoo_gan::fit_ddaebm(&mut ctx.rng, &mut m, &x, &train, ctx.progress)?;
    Ok(Trained {
        files: vec![
            ("energy.bpk".into(), module_bytes(&m.energy)?),
            ("sampler.bpk".into(), module_bytes(&m.sampler)?),
        ],
        curve: Curve::from_series(&[
            ("energy_loss", &report.energy_losses),
            ("generator_loss", &report.generator_losses),
        ]),
        seconds: report.seconds,
        resumed_from: report.resumed_from,
    })
}

/// DDAEBM: no NLL (its energies are conditionals); samples from the generators down the chain,
/// T generator passes each.
fn evaluate_ddaebm(ctx: &EvalCtx, model: &zoo_gan::DdaebmConfig) -> Result<Scored> {
    let mut m = model.init(&mut seeded(ctx.seed), ctx.device)?;
    m.energy = load_module(m.energy, ctx.files, "energy.bpk")?;
    m.sampler = load_module(m.sampler, ctx.files, "sampler.bpk")?;
    let (n, device) = (ctx.n(), ctx.device);
    let drawn = ctx.draw_each(|s, rng| match s.kind {
        SamplerKind::Gan(GanSampler::Generator) => {
            Ok(Draw::new(m.sample(rng, n, device), model.steps as f64))
        }
        _ => Err(not_for(s, "DDAEBM")),
    })?;
    let (e, g, r) = m.parameter_count();
    Ok((e + g + r, Nll::none(), drawn))
}

fn train(
    model: &zoo_gan::GanConfig,
    train: &zoo_gan::GanTrainConfig,
    ctx: &mut Ctx,
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

/// A GAN: the discriminator's energy by quadrature (2-D); generator or latent Langevin draws.
fn evaluate(ctx: &EvalCtx, model: &zoo_gan::GanConfig) -> Result<Scored> {
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
                return Ok(Draw::new(zoo_gan::sample(rng, &gan, n, device), 1.0));
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
        Ok(Draw::new(x, r.evaluations_per_sample as f64 + 1.0).accepted(acc))
    })?;
    let (g, dsc) = gan.parameter_count();
    Ok((g + dsc, nll, drawn))
}
