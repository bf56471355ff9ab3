//! Maximum likelihood with MCMC negatives (review §4.1): the gradient of the negative
//! log-likelihood is E_data[grad_theta E] - E_model[grad_theta E], the second term estimated with
//! samples from a few steps of a shared sampler started
//! - at the data: contrastive divergence CD-k (Hinton 2002);
//! - from a replay buffer of persistent chains with reinitialisation: PCD (Tieleman 2008; Du &
//!   Mordatch 2019);
//! - from noise every time: short-run MCMC (Nijkamp, Hill, Zhu & Wu 2019).

use super::{Contrast, Loss, Objective, Report, run_chains};
use crate::model::EnergyModel;
use burn::prelude::*;
use zoo_energy::tensor::from_host2;
use zoo_energy::{Error, Result, ZooRng};
use zoo_mcmc::sampler::{AnySampler, InitDistribution, ReplayBuffer};
use zoo_train::Checkpoint;

/// Where the negative chains start each iteration.
#[derive(Debug, Clone)]
pub enum ChainStart {
    /// At the data minibatch (CD-k).
    Data,
    /// From a replay buffer of past negatives, reinitialised with a probability (PCD).
    Persistent(ReplayBuffer),
    /// From fresh noise (short-run MCMC).
    Noise(InitDistribution),
}

/// Maximum-likelihood training with MCMC negatives.
#[derive(Debug, Clone)]
pub struct MaximumLikelihood {
    start: ChainStart,
    sampler: AnySampler,
    steps: usize,
    energy_penalty: f64,
    last: Option<Tensor<2>>,
}

impl MaximumLikelihood {
    /// `steps` MCMC transitions of `sampler` per iteration from `start`; `steps >= 1`.
    pub fn new(start: ChainStart, sampler: AnySampler, steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::invalid("mcmc_steps", "must be >= 1"));
        }
        if let ChainStart::Noise(init) = &start {
            init.check()?;
        }
        Ok(Self {
            start,
            sampler,
            steps,
            energy_penalty: 0.0,
            last: None,
        })
    }

    /// Adds alpha (E(data)^2 + E(neg)^2) to the loss (Du & Mordatch 2019); alpha >= 0.
    pub fn with_energy_penalty(mut self, alpha: f64) -> Result<Self> {
        self.energy_penalty = super::check_penalty(alpha)?;
        Ok(self)
    }
}

impl<M: EnergyModel> Objective<M> for MaximumLikelihood {
    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        match &self.start {
            ChainStart::Persistent(buffer) => {
                checkpoint.put_json("replay_buffer", &buffer.contents())
            }
            _ => Ok(()),
        }
    }

    fn load(&mut self, checkpoint: &Checkpoint, _device: &Device) -> Result<()> {
        if let ChainStart::Persistent(buffer) = &mut self.start {
            let (data, next): (Vec<f32>, usize) = checkpoint.json("replay_buffer")?;
            buffer.restore(data, next)?;
        }
        Ok(())
    }

    fn name(&self) -> String {
        match self.start {
            ChainStart::Data => format!("cd-{}", self.steps),
            ChainStart::Persistent(_) => "pcd".into(),
            ChainStart::Noise(_) => "short-run".into(),
        }
    }

    fn loss(
        &mut self,
        rng: &mut ZooRng,
        model: &M,
        batch: Tensor<2>,
        device: &Device,
    ) -> Result<(Loss, Report)> {
        let energy = model.sampling_energy();
        let [n, d] = batch.dims();
        let start = match &self.start {
            ChainStart::Data => batch.clone(),
            ChainStart::Persistent(buffer) => buffer.sample(rng, n, device).0,
            ChainStart::Noise(init) => from_host2(init.draw(rng, n * d), [n, d], device),
        };
        let run = run_chains(rng, &self.sampler, &*energy, start, self.steps)?;
        if let ChainStart::Persistent(buffer) = &mut self.start {
            buffer.push(&run.position)?;
        }
        self.last = Some(run.position.clone());
        let contrast = Contrast {
            data: batch,
            negatives: run.position,
            weights: None,
            alpha: self.energy_penalty,
        };
        let report = Report {
            acceptance: run.acceptance,
            chain_ess: run.ess,
            ..Report::default()
        };
        Ok((Loss::Contrast(contrast), report))
    }

    fn negatives(&self) -> Option<(Tensor<2>, Option<Vec<f64>>)> {
        self.last.clone().map(|x| (x, None))
    }
}
