//! Replay buffer for persistent chains (Du & Mordatch 2019, "Implicit generation and
//! generalization in energy-based models", §3.1): each negative chain starts from a stored sample
//! with probability 1 - p and from fresh noise with probability p (reinitialisation).

use burn::prelude::*;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::error::{Error, Result, check_positive};
use zoo_energy::rng::{ZooRng, normal_vec};
use zoo_energy::tensor::{from_host2, to_host2};

/// Where fresh chains start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InitDistribution {
    /// U(low, high)^d.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// N(mean, std^2 I).
    Normal {
        /// Mean of every coordinate.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

impl InitDistribution {
    /// Validates the parameters.
    pub fn check(&self) -> Result<()> {
        match *self {
            Self::Uniform { low, high } if !(low.is_finite() && high.is_finite() && low < high) => {
                Err(Error::invalid(
                    "init",
                    format!("uniform needs low < high, got [{low}, {high}]"),
                ))
            }
            Self::Normal { std, .. } => check_positive("std", std).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// `count` draws.
    pub fn draw(&self, rng: &mut ZooRng, count: usize) -> Vec<f32> {
        match *self {
            Self::Uniform { low, high } => (0..count)
                .map(|_| rng.random_range(low..high) as f32)
                .collect(),
            Self::Normal { mean, std } => normal_vec(rng, count)
                .into_iter()
                .map(|z| (mean + std * z as f64) as f32)
                .collect(),
        }
    }
}

/// A FIFO buffer of past chain positions, kept on the host.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    dim: usize,
    capacity: usize,
    reinit_probability: f64,
    init: InitDistribution,
    data: Vec<f32>,
    next: usize,
}

impl ReplayBuffer {
    /// A buffer of at most `capacity` points of dimension `dim`.
    pub fn new(
        dim: usize,
        capacity: usize,
        reinit_probability: f64,
        init: InitDistribution,
    ) -> Result<Self> {
        if dim == 0 || capacity == 0 {
            return Err(Error::invalid("capacity", "dim and capacity must be >= 1"));
        }
        if !(0.0..=1.0).contains(&reinit_probability) {
            return Err(Error::invalid(
                "reinit_probability",
                format!("must lie in [0, 1], got {reinit_probability}"),
            ));
        }
        init.check()?;
        Ok(Self {
            dim,
            capacity,
            reinit_probability,
            init,
            data: Vec::new(),
            next: 0,
        })
    }

    /// Points stored.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether nothing is stored yet.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// `n` starting points: each is a uniformly chosen stored point with probability
    /// 1 - p (always fresh while the buffer is empty). Returns the points `[n, dim]` and, per row,
    /// whether it was freshly initialised.
    pub fn sample(&self, rng: &mut ZooRng, n: usize, device: &Device) -> (Tensor<2>, Vec<bool>) {
        let d = self.dim;
        let stored = self.len();
        let mut out = Vec::with_capacity(n * d);
        let mut fresh = Vec::with_capacity(n);
        for _ in 0..n {
            let reinit = stored == 0 || rng.random::<f64>() < self.reinit_probability;
            if reinit {
                out.extend(self.init.draw(rng, d));
            } else {
                let i = rng.random_range(0..stored);
                out.extend_from_slice(&self.data[i * d..(i + 1) * d]);
            }
            fresh.push(reinit);
        }
        (from_host2(out, [n, d], device), fresh)
    }

    /// The stored points (row-major, `len() * dim` values) and the slot written next once full:
    /// everything a checkpoint needs to continue the buffer exactly.
    pub fn contents(&self) -> (&[f32], usize) {
        (&self.data, self.next)
    }

    /// Replaces the buffer's contents with what [`ReplayBuffer::contents`] returned.
    pub fn restore(&mut self, data: Vec<f32>, next: usize) -> Result<()> {
        let rows = data.len() / self.dim;
        if !data.len().is_multiple_of(self.dim)
            || rows > self.capacity
            || (next > 0 && next >= rows)
        {
            return Err(Error::invalid(
                "replay buffer",
                format!(
                    "{} values with next slot {next} do not fit {} slots of dimension {}",
                    data.len(),
                    self.capacity,
                    self.dim
                ),
            ));
        }
        self.data = data;
        self.next = next;
        Ok(())
    }

    /// Stores the rows of `positions` `[m, dim]`, overwriting the oldest once full.
    pub fn push(&mut self, positions: &Tensor<2>) -> Result<()> {
        zoo_energy::tensor::check_batch("buffer positions", positions, self.dim)?;
        let d = self.dim;
        for row in to_host2(positions).chunks(d) {
            if self.len() < self.capacity {
                self.data.extend_from_slice(row);
            } else {
                self.data[self.next * d..(self.next + 1) * d].copy_from_slice(row);
                self.next = (self.next + 1) % self.capacity;
            }
        }
        Ok(())
    }
}
