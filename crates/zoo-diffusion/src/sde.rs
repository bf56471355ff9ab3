//! The forward processes (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, §3.4 and
//! appendix B): x_t = alpha(t) x_0 + sigma(t) eps, as the SDE dx = f(x, t) dt + g(t) dw on
//! t in [0, 1], and the noise ladders of noise-conditional score networks (Song & Ermon 2019).

use serde::{Deserialize, Serialize};
use zoo_energy::{Error, Result};

/// A forward SDE with a Gaussian transition kernel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sde {
    /// Variance exploding: dx = sqrt(d sigma^2 / dt) dw, sigma(t) = sigma_min (sigma_max /
    /// sigma_min)^t; the continuous limit of the NCSN ladder.
    Ve {
        /// sigma(0).
        sigma_min: f64,
        /// sigma(1).
        sigma_max: f64,
    },
    /// Variance preserving: dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw, beta linear from
    /// `beta_min` to `beta_max`; DDPM is its discretisation (Ho et al. 2020).
    Vp {
        /// beta(0).
        beta_min: f64,
        /// beta(1).
        beta_max: f64,
    },
}

impl Sde {
    /// Song et al.'s VE SDE for data of scale `sigma_max` (their rule: sigma_max about the
    /// largest distance between data points), sigma_min = 0.01.
    pub fn ve(sigma_max: f64) -> Self {
        Sde::Ve {
            sigma_min: 0.01,
            sigma_max,
        }
    }

    /// Song et al.'s VP SDE (beta from 0.1 to 20, DDPM's linear schedule in the limit).
    pub fn vp() -> Self {
        Sde::Vp {
            beta_min: 0.1,
            beta_max: 20.0,
        }
    }

    /// Checks the parameters: positive, finite, increasing.
    pub fn check(&self) -> Result<()> {
        let (lo, hi, names) = match *self {
            Sde::Ve {
                sigma_min,
                sigma_max,
            } => (sigma_min, sigma_max, ("sigma_min", "sigma_max")),
            Sde::Vp { beta_min, beta_max } => (beta_min, beta_max, ("beta_min", "beta_max")),
        };
        for (name, v) in [(names.0, lo), (names.1, hi)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("must be finite and > 0, got {v}"),
                ));
            }
        }
        if lo >= hi {
            return Err(Error::invalid(
                names.1,
                format!("must exceed {} ({lo}), got {hi}", names.0),
            ));
        }
        Ok(())
    }

    /// (alpha(t), sigma(t)) of the marginal x_t = alpha x_0 + sigma eps.
    pub fn marginal(&self, t: f64) -> (f64, f64) {
        match *self {
            Sde::Ve {
                sigma_min,
                sigma_max,
            } => (1.0, sigma_min * (sigma_max / sigma_min).powf(t)),
            Sde::Vp { beta_min, beta_max } => {
                let log_alpha = -0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min;
                let alpha = log_alpha.exp();
                // 1 - alpha^2 = -expm1(2 log alpha), accurate near t = 0.
                (alpha, (-(2.0 * log_alpha).exp_m1()).sqrt())
            }
        }
    }

    /// The drift's linear coefficient a(t) (f(x, t) = a(t) x) and g(t).
    pub fn drift_and_diffusion(&self, t: f64) -> (f64, f64) {
        match *self {
            Sde::Ve {
                sigma_min,
                sigma_max,
            } => {
                let s = self.marginal(t).1;
                (0.0, s * (2.0 * (sigma_max / sigma_min).ln()).sqrt())
            }
            Sde::Vp { beta_min, beta_max } => {
                let beta = beta_min + t * (beta_max - beta_min);
                (-0.5 * beta, beta.sqrt())
            }
        }
    }

    /// The prior p_T used at t = 1: N(0, sigma_max^2 I) (VE) or N(0, I) (VP).
    pub fn prior_std(&self) -> f64 {
        match *self {
            Sde::Ve { sigma_max, .. } => sigma_max,
            Sde::Vp { .. } => 1.0,
        }
    }

    /// The usual smallest time: sampling stops and likelihoods start there (1e-3 for VP, 1e-5
    /// for VE, as in Song et al.'s code).
    pub fn t_min(&self) -> f64 {
        match self {
            Sde::Ve { .. } => 1e-5,
            Sde::Vp { .. } => 1e-3,
        }
    }
}

/// A decreasing ladder of noise levels sigma_1 > ... > sigma_L > 0 (NCSN, Song & Ermon 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseLadder {
    sigmas: Vec<f64>,
}

impl NoiseLadder {
    /// A ladder from explicit levels: non-empty, positive, finite, strictly decreasing.
    pub fn new(sigmas: Vec<f64>) -> Result<Self> {
        if sigmas.is_empty() {
            return Err(Error::invalid(
                "sigmas",
                "the noise schedule is empty: need at least one level",
            ));
        }
        if let Some((i, s)) = sigmas
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(Error::invalid(
                "sigmas",
                format!("level {i} is {s}: every sigma must be finite and > 0"),
            ));
        }
        if let Some(i) = sigmas.windows(2).position(|w| w[1] >= w[0]) {
            return Err(Error::invalid(
                "sigmas",
                format!(
                    "the schedule must decrease strictly: level {} ({}) is not below level {i} ({})",
                    i + 1,
                    sigmas[i + 1],
                    sigmas[i]
                ),
            ));
        }
        Ok(Self { sigmas })
    }

    /// `levels` levels geometric from `sigma_max` down to `sigma_min` (Song & Ermon 2019).
    pub fn geometric(sigma_max: f64, sigma_min: f64, levels: usize) -> Result<Self> {
        if levels == 0 {
            return Err(Error::invalid(
                "levels",
                "the noise schedule is empty: need at least one level",
            ));
        }
        for (name, v) in [("sigma_max", sigma_max), ("sigma_min", sigma_min)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("must be finite and > 0, got {v}"),
                ));
            }
        }
        if levels == 1 {
            return Self::new(vec![sigma_max]);
        }
        let ratio = (sigma_min / sigma_max).powf(1.0 / (levels - 1) as f64);
        Self::new(
            (0..levels)
                .map(|i| sigma_max * ratio.powi(i as i32))
                .collect(),
        )
    }

    /// The levels, largest first.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}
