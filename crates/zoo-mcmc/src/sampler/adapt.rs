//! Dual-averaging step-size adaptation (Nesterov 2009; Hoffman & Gelman 2014, NUTS paper,
//! Algorithm 5). Driven by the acceptance probability averaged over the batch of chains.

use zoo_energy::error::{Result, check_positive, check_unit_open};

/// Dual averaging of log h towards a target acceptance rate.
#[derive(Debug, Clone)]
pub struct DualAveraging {
    target: f64,
    mu: f64,
    gamma: f64,
    t0: f64,
    kappa: f64,
    iteration: f64,
    h_bar: f64,
    log_step: f64,
    log_step_bar: f64,
}

impl DualAveraging {
    /// Starts from `initial_step_size` towards acceptance `target` in (0, 1) with the paper's
    /// constants (mu = log(10 h0), gamma = 0.05, t0 = 10, kappa = 0.75).
    pub fn new(initial_step_size: f64, target: f64) -> Result<Self> {
        let h0 = check_positive("step_size", initial_step_size)?;
        let target = check_unit_open("target_acceptance", target)?;
        Ok(Self {
            target,
            mu: (10.0 * h0).ln(),
            gamma: 0.05,
            t0: 10.0,
            kappa: 0.75,
            iteration: 0.0,
            h_bar: 0.0,
            log_step: h0.ln(),
            log_step_bar: 0.0,
        })
    }

    /// Feeds one step's mean acceptance probability; returns the next step size to use.
    pub fn update(&mut self, acceptance: f64) -> f64 {
        let a = if acceptance.is_finite() {
            acceptance.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.iteration += 1.0;
        let t = self.iteration;
        let w = 1.0 / (t + self.t0);
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - a);
        self.log_step = self.mu - t.sqrt() / self.gamma * self.h_bar;
        let eta = t.powf(-self.kappa);
        self.log_step_bar = eta * self.log_step + (1.0 - eta) * self.log_step_bar;
        self.log_step.exp()
    }

    /// The averaged step size to use after warm-up.
    pub fn final_step_size(&self) -> f64 {
        if self.iteration == 0.0 {
            self.log_step.exp()
        } else {
            self.log_step_bar.exp()
        }
    }
}
