//! Flow matching on the linear interpolant (Lipman et al. 2023; Liu et al. 2023's rectified
//! flow; Albergo & Vanden-Eijnden 2023's stochastic interpolants):
//! x_t = (1 − t) x₀ + t x₁ with x₀ ~ N(0, I) and x₁ a data point, time running from noise
//! (t = 0) to data (t = 1). A network v(x, t) regresses the interpolant's velocity:
//! loss = E_{t ~ U(0, 1)} E |v(x_t, t) − (x₁ − x₀)|², whose minimiser is
//! b(x, t) = E[x₁ − x₀ | x_t = x], the velocity whose ODE dx/dt = b carries N(0, I) to the data.
//!
//! Generation: the ODE from t = 0 to 1 (Euler, Heun or RK4), or the interpolant SDE
//! dX = (b + ε(t) s) dt + √(2ε(t)) dW with the same marginals for any ε(t) ≥ 0, where the score
//! follows from b because x₀ is Gaussian: E[x₀ | x_t] = x − t b, so s(x, t) = −(x − t b)/(1 − t);
//! ε(t) = ε (1 − t) keeps ε(t) s = −ε (x − t b) bounded at the data end. Likelihood: the instantaneous change of variables
//! (Chen et al. 2018), log p₁(x) = log N(x₀; 0, I) − ∫₀¹ div b(x_t, t) dt, by RK4 backwards from
//! the data, the divergence exact or by Hutchinson's estimator.

use crate::likelihood::{Divergence, rk4_log_likelihood, standard_normal_log_density};
use crate::net::{DsmReport, DsmTrainConfig, DsmWeighting, NetAdam, ScoreNetConfig, TrackedField};
use burn::prelude::*;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::rng::normal;
use zoo_energy::tensor::{
    check_batch, check_finite, first_non_finite, from_host2, row_sq_norm, to_host2,
};
use zoo_energy::{Error, Result, ZooRng, check_count};
use zoo_neural::nn::{Mlp, layer_widths};
use zoo_train::{Checkpoint, Trainable};

/// A velocity field b(x, t) on t ∈ [0, 1] from N(0, I) at t = 0 to the data at t = 1.
pub trait VelocityField {
    /// Dimension of one point.
    fn dim(&self) -> usize;
    /// b(x, t) `[n, d]`, every row at time `t`; one call is one evaluation (NFE) per row.
    fn velocity(&self, x: Tensor<2>, t: f64) -> Tensor<2>;
    /// div_x b(x, t) per row, exactly.
    fn divergence(&self, x: Tensor<2>, t: f64) -> Tensor<1>;
    /// Hutchinson's unbiased estimate of div_x b with `probes` Rademacher vectors (the exact
    /// divergence unless the field overrides it).
    fn divergence_hutchinson(
        &self,
        _rng: &mut ZooRng,
        x: Tensor<2>,
        t: f64,
        _probes: usize,
    ) -> Tensor<1> {
        self.divergence(x, t)
    }
    /// A one-line description.
    fn describe(&self) -> String;
}

/// v(x, t) = net([x, t]).
#[derive(Module, Debug)]
pub struct VelocityNet {
    /// [x, t] -> velocity.
    pub net: Mlp,
}

impl VelocityNet {
    /// The MLP of `cfg` (`data_dim + 1` inputs, `data_dim` outputs).
    pub fn new(rng: &mut ZooRng, cfg: &ScoreNetConfig, device: &Device) -> Result<Self> {
        cfg.check()?;
        let w = layer_widths(cfg.data_dim + 1, &cfg.hidden, cfg.data_dim);
        Ok(Self {
            net: Mlp::new(rng, &w, cfg.activation, false, device)?,
        })
    }

    /// Data dimension.
    pub fn data_dim(&self) -> usize {
        self.net.output_width()
    }

    /// v for `x: [n, d]` with per-row times `t: [n, 1]`.
    pub fn velocity_rows(&self, x: Tensor<2>, t: Tensor<2>) -> Tensor<2> {
        self.net.forward(Tensor::cat(vec![x, t], 1))
    }
}

/// A trained [`VelocityNet`] as a [`VelocityField`]: a plain copy evaluates, an autodiff copy
/// gives the divergence (one backward pass per dimension, or per Hutchinson probe).
#[derive(Debug, Clone)]
pub struct FlowMatchingModel {
    plain: VelocityNet,
    tracked: VelocityNet,
}

impl FlowMatchingModel {
    /// Wraps a network trained on an autodiff device.
    pub fn new(trained: &VelocityNet) -> Self {
        Self {
            plain: trained.valid(),
            tracked: trained.clone(),
        }
    }

    fn tracked_at(&self, t: f64) -> TrackedField<impl Fn(Tensor<2>) -> Tensor<2> + '_> {
        TrackedField(move |x: Tensor<2>| {
            let n = x.dims()[0];
            let time = Tensor::full([n, 1], t, &x.device());
            self.tracked.velocity_rows(x, time)
        })
    }
}

impl VelocityField for FlowMatchingModel {
    fn dim(&self) -> usize {
        self.plain.data_dim()
    }
    fn velocity(&self, x: Tensor<2>, t: f64) -> Tensor<2> {
        let n = x.dims()[0];
        let time = Tensor::full([n, 1], t, &x.device());
        self.plain.velocity_rows(x, time)
    }
    fn divergence(&self, x: Tensor<2>, t: f64) -> Tensor<1> {
        self.tracked_at(t).divergence(&x)
    }
    fn divergence_hutchinson(
        &self,
        rng: &mut ZooRng,
        x: Tensor<2>,
        t: f64,
        probes: usize,
    ) -> Tensor<1> {
        self.tracked_at(t).hutchinson(rng, &x, probes)
    }
    fn describe(&self) -> String {
        format!(
            "flow-matching velocity MLP, input width {}",
            self.plain.net.input_width()
        )
    }
}

/// The exact velocity of the linear interpolant to Gaussian data N(μ, diag(s²)): per
/// coordinate b = μ + (t s² − (1 − t)) (x − t μ) / v_t with v_t = (1 − t)² + t² s² (the
/// reference of the tests).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianVelocity {
    /// μ.
    pub mean: Vec<f64>,
    /// s per coordinate (> 0).
    pub std: Vec<f64>,
}

impl GaussianVelocity {
    fn slopes(&self, t: f64) -> Vec<f64> {
        self.std
            .iter()
            .map(|s| (t * s * s - (1.0 - t)) / ((1.0 - t).powi(2) + t * t * s * s))
            .collect()
    }
}

impl VelocityField for GaussianVelocity {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn velocity(&self, x: Tensor<2>, t: f64) -> Tensor<2> {
        let d = self.mean.len();
        let row = |v: Vec<f64>| {
            let v: Vec<f32> = v.into_iter().map(|a| a as f32).collect();
            from_host2(v, [1, d], &x.device())
        };
        let (slope, mean) = (row(self.slopes(t)), row(self.mean.clone()));
        mean.clone() + (x - mean.mul_scalar(t)) * slope
    }
    fn divergence(&self, x: Tensor<2>, t: f64) -> Tensor<1> {
        let trace: f64 = self.slopes(t).iter().sum();
        Tensor::full([x.dims()[0]], trace, &x.device())
    }
    fn describe(&self) -> String {
        format!(
            "exact interpolant velocity of Gaussian data in {} dimensions",
            self.mean.len()
        )
    }
}

/// Trains `net` (on an autodiff device) by flow matching on `data` (`[n, d]`, plain device),
/// on the one training loop ([`zoo_train::train`]: divergence restores the last snapshot,
/// `cfg.resume` makes the run resumable). The DSM settings apply, except `weighting`, which flow
/// matching does not have (an error when set).
pub fn fit_flow_matching(
    rng: &mut ZooRng,
    net: &mut VelocityNet,
    data: &Tensor<2>,
    cfg: &DsmTrainConfig,
    show_progress: bool,
) -> Result<DsmReport> {
    cfg.check()?;
    if cfg.weighting != DsmWeighting::default() {
        return Err(Error::invalid(
            "weighting",
            "flow matching weights every time alike; the DSM weighting does not apply",
        ));
    }
    check_batch("training data", data, net.data_dim())?;
    check_finite("training data", data)?;
    let mut run = FlowMatchingRun {
        state: NetAdam::new(net, cfg),
        data,
        cfg,
    };
    let outcome = zoo_train::train(rng, &mut run, &cfg.loop_config(show_progress, "fm"));
    *net = run.state.net;
    outcome.map(DsmReport::from)
}

/// One flow-matching run: the network and its Adam state.
struct FlowMatchingRun<'a> {
    state: NetAdam<VelocityNet>,
    data: &'a Tensor<2>,
    cfg: &'a DsmTrainConfig,
}

impl Trainable for FlowMatchingRun<'_> {
    type Log = f64;

    /// One step of |v(x_t, t) − (x₁ − x₀)|², x_t = (1 − t) x₀ + t x₁.
    fn step(&mut self, rng: &mut ZooRng, it: usize) -> Result<f64> {
        let (b, d) = (self.cfg.batch_size, self.state.net.data_dim());
        let device = self.data.device();
        let x1 = zoo_train::minibatch(rng, self.data, b);
        let ts: Vec<f32> = (0..b).map(|_| rng.random_range(0.0..1.0)).collect();
        let t = Tensor::<1>::from_data(TensorData::new(ts, [b]), &device).reshape([b, 1]);
        let x0 = normal(rng, [b, d], &device);
        let xt = x0.clone() * t.clone().neg().add_scalar(1.0) + x1.clone() * t.clone();
        let v = self.state.net.velocity_rows(xt.autodiff(), t.autodiff());
        let loss = row_sq_norm(v - (x1 - x0).autodiff()).mean();
        self.state
            .step(loss, it, "flow-matching loss", self.cfg.learning_rate)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        self.state.save(checkpoint)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.state.load(checkpoint, self.cfg)
    }
}

/// How to integrate from t = 0 (noise) to t = 1 (data).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FlowSolver {
    /// The ODE by Euler's method.
    Euler,
    /// The ODE by Heun's second-order method.
    Heun,
    /// The ODE by classical fourth-order Runge-Kutta.
    Rk4,
    /// The interpolant SDE dX = (b + ε(t) s) dt + √(2ε(t)) dW with ε(t) = ε (1 − t), by
    /// Euler–Maruyama (ε = 0: Euler). Any ε(t) ≥ 0 keeps the marginals; this one vanishes at the
    /// data end, where s = −(x − t b)/(1 − t) would amplify the velocity's error by 1/(1 − t).
    Sde {
        /// ε ≥ 0.
        epsilon: f64,
    },
}

impl FlowSolver {
    /// Velocity evaluations per sample for `steps` steps.
    pub fn nfe(&self, steps: usize) -> usize {
        match self {
            FlowSolver::Euler | FlowSolver::Sde { .. } => steps,
            FlowSolver::Heun => 2 * steps,
            FlowSolver::Rk4 => 4 * steps,
        }
    }

    /// Checks ε (finite, ≥ 0).
    pub fn check(&self) -> Result<()> {
        if let FlowSolver::Sde { epsilon } = *self
            && !(epsilon.is_finite() && epsilon >= 0.0)
        {
            return Err(Error::invalid(
                "epsilon",
                format!("the interpolant SDE's epsilon must be finite and >= 0, got {epsilon}"),
            ));
        }
        Ok(())
    }
}

/// `n` samples by `steps` steps of `solver` from x₀ ~ N(0, I); returns them and the
/// velocity evaluations per sample. A non-finite state is an error naming the step (checked every
/// 50 steps and at the end, as the diffusion samplers do: a check copies the state to the host).
pub fn sample_flow(
    rng: &mut ZooRng,
    field: &dyn VelocityField,
    solver: FlowSolver,
    steps: usize,
    n: usize,
    device: &Device,
) -> Result<(Tensor<2>, usize)> {
    solver.check()?;
    check_count("steps", steps)?;
    check_count("samples", n)?;
    let h = 1.0 / steps as f64;
    let mut x = normal(rng, [n, field.dim()], device);
    for k in 0..steps {
        let t = k as f64 * h;
        x = flow_step(rng, field, solver, x, t, h);
        if (k + 1) % 50 != 0 && k + 1 != steps {
            continue;
        }
        if let Some((row, _, value)) = first_non_finite(&to_host2(&x), field.dim()) {
            return Err(Error::Divergence {
                step: k + 1,
                chain: row,
                what: "position",
                value,
                step_size: h,
            });
        }
    }
    Ok((x, solver.nfe(steps)))
}

/// One step of `solver` from t to t + h.
fn flow_step(
    rng: &mut ZooRng,
    field: &dyn VelocityField,
    solver: FlowSolver,
    x: Tensor<2>,
    t: f64,
    h: f64,
) -> Tensor<2> {
    let v = |x: Tensor<2>, t: f64| field.velocity(x, t);
    match solver {
        FlowSolver::Euler => x.clone() + v(x, t).mul_scalar(h),
        FlowSolver::Heun => {
            let k1 = v(x.clone(), t);
            let k2 = v(x.clone() + k1.clone().mul_scalar(h), t + h);
            x + (k1 + k2).mul_scalar(0.5 * h)
        }
        FlowSolver::Rk4 => {
            let k1 = v(x.clone(), t);
            let k2 = v(x.clone() + k1.clone().mul_scalar(0.5 * h), t + 0.5 * h);
            let k3 = v(x.clone() + k2.clone().mul_scalar(0.5 * h), t + 0.5 * h);
            let k4 = v(x.clone() + k3.clone().mul_scalar(h), t + h);
            x + (k1 + k2.mul_scalar(2.0) + k3.mul_scalar(2.0) + k4).mul_scalar(h / 6.0)
        }
        FlowSolver::Sde { epsilon } => {
            let b = v(x.clone(), t);
            // ε(t) s with ε(t) = ε (1 − t) and s = −(x − t b) / (1 − t), the score the velocity
            // implies for Gaussian x₀: ε(t) s = −ε (x − t b).
            let eps_t = epsilon * (1.0 - t);
            let drift = b.clone() - (x.clone() - b.mul_scalar(t)).mul_scalar(epsilon);
            let noise = normal(rng, x.dims(), &x.device()).mul_scalar((2.0 * eps_t * h).sqrt());
            x + drift.mul_scalar(h) + noise
        }
    }
}

/// log p₁(x) per row in nats by `steps` RK4 steps of the ODE backwards from the data at t = 1
/// to t = 0, where the density is N(0, I): log p₁(x) = log N(x₀) − ∫₀¹ div b dt.
pub fn flow_log_likelihood(
    rng: &mut ZooRng,
    field: &dyn VelocityField,
    x: Tensor<2>,
    steps: usize,
    divergence: Divergence,
) -> Result<Tensor<1>> {
    check_count("steps", steps)?;
    check_batch("data", &x, field.dim())?;
    check_finite("data", &x)?;
    let grid: Vec<f64> = (0..=steps).map(|k| 1.0 - k as f64 / steps as f64).collect();
    let (x0, integral) = rk4_log_likelihood(
        x,
        &grid,
        |x, t| Ok(field.velocity(x, t)),
        |x, t| {
            Ok(match divergence {
                Divergence::Exact => field.divergence(x, t),
                Divergence::Hutchinson { probes } => {
                    field.divergence_hutchinson(rng, x, t, probes.max(1))
                }
            })
        },
    )?;
    // `integral` is ∫₁⁰ div b dt = −∫₀¹ div b dt.
    Ok(standard_normal_log_density(x0, 1.0) + integral)
}
