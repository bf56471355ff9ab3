//! Jarzynski / SMC reweighting of a discretised SDE (Carbone et al. 2023, arXiv 2305.19414;
//! Carbone 2025, arXiv 2506.07843): walkers follow the Euler–Maruyama chain of
//! dX = f(t, X) dt + √(2ε) dW from exact draws of ρ₀ while the target moves along a path of
//! densities ρ_t known up to constants. Each walker carries a log weight updated at every step
//! x → y (t_k → t_{k+1}, h = t_{k+1} − t_k) by
//!   log ρ_{k+1}(y) − log ρ_k(x) + log L(x | y) − log F(y | x),
//! with F(y | x) = N(y; x + h f(t_k, x), 2εh I) the forward kernel and
//! L(x | y) = N(x; y + h g(t_{k+1}, y), 2εh I) a backward one. Whatever f and g, the weighted
//! walkers at t = 1 estimate expectations under ρ₁ and the mean weight the ratio Z₁/Z₀
//! (sequential importance sampling on path space); f and g matter for the variance: for a model
//! whose marginals are the ρ_t, g = −f + 2ε ∇log ρ makes the weights nearly constant.
//! The weights, resampling (when a group's ESS falls below the threshold) and groups are the
//! annealing engine's ([`super::run_annealing_weighted`]), shared with [`super::jarzynski`].

use super::{
    AnnealPath, AnnealedPopulation, LogZEstimate, check_groups, resample_rows,
    run_annealing_weighted,
};
use burn::prelude::*;
use std::ops::Range;
use zoo_energy::error::{Error, Result, check_positive};
use zoo_energy::rng::{ZooRng, normal};
use zoo_energy::tensor::{check_batch, from_host1, from_host2, row_sq_norm, to_host1, to_host2};

/// A path of densities and the drifts of the SDE that moves walkers along it.
pub trait SdePath {
    /// Dimension.
    fn dim(&self) -> usize;

    /// log ρ_t(x) `[n]`, up to a constant that may depend on t but not on x.
    fn log_density(&self, t: f64, x: Tensor<2>) -> Tensor<1>;

    /// The forward drift f(t, x) `[n, d]` of the walkers' SDE.
    fn forward_drift(&self, t: f64, x: Tensor<2>) -> Tensor<2>;

    /// The drift g(t, y) of the backward kernel L.
    fn backward_drift(&self, t: f64, y: Tensor<2>) -> Tensor<2>;

    /// ε(t) of the step that starts at t, for a path whose noise varies in time (a reverse
    /// diffusion); `None` (the default): the config's constant ε. Both kernels of a step use it.
    fn epsilon(&self, _t: f64) -> Option<f64> {
        None
    }
}

/// Settings of [`reweighted_sde`].
#[derive(Debug, Clone, PartialEq)]
pub struct SdeSmcConfig {
    /// t_1 < ... < t_K (t_0 = 0): one Euler–Maruyama step per time.
    pub times: Vec<f64>,
    /// ε: the SDE's diffusion is √(2ε) (> 0); a path with its own ε(t) overrides it.
    pub epsilon: f64,
    /// Independent groups for the standard error of log Z₁/Z₀ (>= 2).
    pub groups: usize,
    /// Resample a group when its ESS falls below this fraction of its size, in (0, 1]; `None`:
    /// never (plain Jarzynski weights).
    pub resample_threshold: Option<f64>,
}

impl SdeSmcConfig {
    /// Checks every field.
    pub fn check(&self) -> Result<()> {
        super::check_path(&self.times)?;
        check_positive("epsilon", self.epsilon)?;
        if let Some(r) = self.resample_threshold
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(Error::invalid(
                "resample_threshold",
                format!("must be in (0, 1], got {r}"),
            ));
        }
        Ok(())
    }
}

/// Runs the walkers `x0` (exact draws of ρ₀) along `path`; returns log(Z₁/Z₀) with its standard
/// error and ESS, the walkers at t = 1 and their log weights (since the last resampling of
/// each group).
pub fn reweighted_sde<P: SdePath + ?Sized>(
    rng: &mut ZooRng,
    path: &P,
    x0: Tensor<2>,
    config: &SdeSmcConfig,
) -> Result<(LogZEstimate, Tensor<2>, Vec<f64>)> {
    config.check()?;
    let n = check_batch("walkers", &x0, path.dim())?;
    check_groups(n, config.groups)?;
    let mut walkers = SdeWalkers {
        x: x0,
        log_rho: None,
        path,
        epsilon: config.epsilon,
    };
    let annealing = AnnealPath {
        betas: &config.times,
        groups: config.groups,
        resample_threshold: config.resample_threshold,
        log_z0: 0.0,
    };
    let (estimate, log_w) = run_annealing_weighted(rng, &mut walkers, &annealing)?;
    Ok((estimate, walkers.x, log_w))
}

/// The unweighted Euler–Maruyama chain of the same SDE (the "plain SDE" baseline).
pub fn plain_sde<P: SdePath + ?Sized>(
    rng: &mut ZooRng,
    path: &P,
    x0: Tensor<2>,
    config: &SdeSmcConfig,
) -> Result<Tensor<2>> {
    config.check()?;
    let mut x = x0;
    let mut t = 0.0;
    for &next in &config.times {
        let eps = path.epsilon(t).unwrap_or(config.epsilon);
        x = em_step(rng, path, &x, t, next - t, eps).0;
        t = next;
    }
    Ok(x)
}

/// One Euler–Maruyama step from `x` at `t` over `h`: (y, the forward mean x + h f(t, x)).
fn em_step<P: SdePath + ?Sized>(
    rng: &mut ZooRng,
    path: &P,
    x: &Tensor<2>,
    t: f64,
    h: f64,
    eps: f64,
) -> (Tensor<2>, Tensor<2>) {
    let mean = x.clone() + path.forward_drift(t, x.clone()).mul_scalar(h);
    let xi = normal(rng, x.dims(), &x.device());
    (mean.clone() + xi.mul_scalar((2.0 * eps * h).sqrt()), mean)
}

struct SdeWalkers<'a, P: ?Sized> {
    x: Tensor<2>,
    /// log ρ at the walkers' current time and positions, kept from the step that moved them there
    /// (each step then evaluates the path's density once, at the new positions).
    log_rho: Option<Tensor<1>>,
    path: &'a P,
    epsilon: f64,
}

impl<P: SdePath + ?Sized> AnnealedPopulation for SdeWalkers<'_, P> {
    fn len(&self) -> usize {
        self.x.dims()[0]
    }

    fn reweight(&mut self, rng: &mut ZooRng, from: f64, to: f64, log_w: &mut [f64]) -> Result<()> {
        let (h, eps) = (to - from, self.path.epsilon(from).unwrap_or(self.epsilon));
        let (y, forward_mean) = em_step(rng, self.path, &self.x, from, h, eps);
        let backward_mean = y.clone() + self.path.backward_drift(to, y.clone()).mul_scalar(h);
        // log N(a; m, 2εh I) up to the common constant: -|a - m|² / (4εh).
        let log_kernel =
            |a: Tensor<2>, m: Tensor<2>| row_sq_norm(a - m).mul_scalar(-1.0 / (4.0 * eps * h));
        let log_rho_x = match self.log_rho.take() {
            Some(l) => l,
            None => self.path.log_density(from, self.x.clone()),
        };
        let log_rho_y = self.path.log_density(to, y.clone());
        let delta = log_rho_y.clone() - log_rho_x + log_kernel(self.x.clone(), backward_mean)
            - log_kernel(y.clone(), forward_mean);
        for (w, d) in log_w.iter_mut().zip(to_host1(&delta)) {
            *w += f64::from(d);
        }
        if log_w.iter().any(|w| !w.is_finite()) {
            return Err(Error::Config(format!(
                "SDE weights are not finite at t = {to}: the walkers diverged; use more steps"
            )));
        }
        self.x = y;
        self.log_rho = Some(log_rho_y);
        Ok(())
    }

    fn resample(&mut self, moves: &[(Range<usize>, Vec<usize>)]) {
        let [n, d] = self.x.dims();
        let device = self.x.device();
        let mut x = to_host2(&self.x);
        resample_rows(&mut x, d, moves);
        self.x = from_host2(x, [n, d], &device);
        if let Some(l) = self.log_rho.take() {
            let mut l = to_host1(&l);
            resample_rows(&mut l, 1, moves);
            self.log_rho = Some(from_host1(l, &device));
        }
    }

    fn transition(&mut self, _rng: &mut ZooRng, _beta: f64) -> Result<()> {
        Ok(())
    }
}
