//! The `flow` family: a normalizing flow trained by maximum likelihood (`zoo-flow`), scored by
//! its exact density, sampled exactly.

use super::{Ctx, EvalCtx, FamilyRun, Scored, Sections, Trained};
use crate::config::ConfigError;
use crate::config::checked;
use crate::error::Result;
use crate::evaluate::{Draw, Nll};
use crate::family::{Curve, load_module, module_bytes};
use crate::methods::FlowMethod;
use crate::metrics::{estimator, finite, score_density};
use burn::module::Module;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::to_host1;

/// The plan of a `flow` run.
#[derive(Debug, Clone)]
pub struct FlowPlan {
    /// The architecture (its kind from the method).
    pub model: zoo_flow::FlowConfig,
    /// Maximum-likelihood training.
    pub train: zoo_flow::FlowTrainConfig,
}

impl FamilyRun for FlowPlan {
    type Method = FlowMethod;
    fn plan(m: FlowMethod, mut s: Sections) -> std::result::Result<Self, ConfigError> {
        let file = s.file;
        let kind = toml::Value::try_from(m.kind()).expect("a flow kind serialises");
        s.fill("dim", s.dim_value(), "the data")?;
        s.fill("kind", kind, "`method`")?;
        let model = checked(file, "model", s.model, zoo_flow::FlowConfig::check)?;
        let train = checked(file, "train", s.train, zoo_flow::FlowTrainConfig::check)?;
        Ok(FlowPlan { model, train })
    }
    fn train(&self, ctx: &mut Ctx) -> Result<Trained> {
        train(self, ctx)
    }
    fn evaluate(&self, ctx: &EvalCtx) -> Result<Scored> {
        evaluate(ctx, &self.model)
    }
}

fn train(p: &FlowPlan, ctx: &mut Ctx) -> Result<Trained> {
    let (model, train) = (&p.model, &p.train);
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

/// A flow: its exact log-density on the test points and on the grid, exact draws.
fn evaluate(ctx: &EvalCtx, model: &zoo_flow::FlowConfig) -> Result<Scored> {
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
        Ok(Draw::new(x, 1.0))
    })?;
    Ok((flow.num_params(), nll, drawn))
}
