//! PT-CD: maximum likelihood with negatives from persistent parallel tempering (Desjardins et
//! al. 2010, "Tempered Markov chain Monte Carlo for training of restricted Boltzmann machines";
//! the EBM version of the review §4.1). K replicas of the persistent chains live on a ladder
//! 1 = beta_0 > ... > beta_{K-1}; every gradient step runs `sweeps` sweeps of the shared
//! [`ParallelTempering`] (one kernel step per replica and one exchange round each), and the
//! negatives are the beta = 1 replica. Hot replicas cross the barriers that a PCD chain does not,
//! so the negatives keep the model's mode weights (PCD's persistent chains stay where they are
//! while the modes' weights drift, the failure Carbone et al. 2023 show on a two-mode mixture).

use super::{Contrast, Loss, Objective, Report};
use crate::model::EnergyModel;
use burn::prelude::*;
use zoo_energy::tensor::{from_host2, to_host2};
use zoo_energy::{Error, Result, ZooRng};
use zoo_mcmc::sampler::{
    AnySampler, InitDistribution, Ladder, ParallelTempering, TemperingState, check_replicas,
};
use zoo_train::Checkpoint;

/// Maximum likelihood with persistent parallel-tempering negatives.
#[derive(Debug, Clone)]
pub struct TemperedPcd {
    pt: ParallelTempering<AnySampler>,
    chains: usize,
    sweeps: usize,
    init: InitDistribution,
    energy_penalty: f64,
    /// Every replica's positions in the target's coordinates, `[K chains, d]`.
    positions: Option<Tensor<2>>,
    sweeps_done: usize,
    last: Option<Tensor<2>>,
}

impl TemperedPcd {
    /// `chains` persistent chains per replica on `ladder`, `sweeps` sweeps of `kernel` per
    /// gradient step, chains first drawn from `init`.
    pub fn new(
        kernel: AnySampler,
        ladder: Ladder,
        chains: usize,
        sweeps: usize,
        init: InitDistribution,
    ) -> Result<Self> {
        zoo_energy::check_count("chains", chains)?;
        zoo_energy::check_count("sweeps", sweeps)?;
        check_replicas(ladder.len(), chains, 1)?;
        init.check()?;
        Ok(Self {
            pt: ParallelTempering::new(kernel, ladder),
            chains,
            sweeps,
            init,
            energy_penalty: 0.0,
            positions: None,
            sweeps_done: 0,
            last: None,
        })
    }

    /// `steps` (>= 1) kernel steps per replica between exchange rounds.
    pub fn with_kernel_steps(mut self, steps: usize) -> Result<Self> {
        self.pt = self.pt.with_kernel_steps(steps)?;
        Ok(self)
    }

    /// Adds alpha (E(data)^2 + E(neg)^2) to the loss (Du & Mordatch 2019); alpha >= 0.
    pub fn with_energy_penalty(mut self, alpha: f64) -> Result<Self> {
        self.energy_penalty = super::check_penalty(alpha)?;
        Ok(self)
    }

    /// The persistent replicas, started from `init` on first use.
    fn replicas(&self, rng: &mut ZooRng, d: usize, device: &Device) -> Tensor<2> {
        self.positions.clone().unwrap_or_else(|| {
            let rows = self.pt.ladder().len() * self.chains;
            from_host2(self.init.draw(rng, rows * d), [rows, d], device)
        })
    }
}

impl<M: EnergyModel> Objective<M> for TemperedPcd {
    fn name(&self) -> String {
        format!("pt-cd x{}", self.pt.ladder().len())
    }

    fn loss(
        &mut self,
        rng: &mut ZooRng,
        model: &M,
        batch: Tensor<2>,
        device: &Device,
    ) -> Result<(Loss, Report)> {
        let energy = model.sampling_energy();
        let d = batch.dims()[1];
        check_replicas(self.pt.ladder().len(), self.chains, d)?;
        let start = self.replicas(rng, d, device);
        // The caches belong to the old parameters: re-evaluate at the kept positions.
        let mut state = self.pt.init_replicas(&*energy, start)?;
        state.sweeps = self.sweeps_done;
        let (mut accept, mut swap, mut swaps) = (0.0, 0.0, 0usize);
        for _ in 0..self.sweeps {
            let (next, info) = self.pt.sweep(rng, &*energy, state)?;
            state = next;
            if let Some(p) = info.kernel.acceptance_probability {
                accept += f64::from(p.narrow(0, 0, self.chains).mean().into_scalar::<f32>());
            }
            for p in info.swap_probability.iter().flatten() {
                swap += p;
                swaps += 1;
            }
        }
        let contrast = Contrast {
            data: batch,
            negatives: self.finish(state)?,
            weights: None,
            alpha: self.energy_penalty,
        };
        let report = Report {
            acceptance: Some(accept / self.sweeps as f64),
            swap_rate: (swaps > 0).then(|| swap / swaps as f64),
            ..Report::default()
        };
        Ok((Loss::Contrast(contrast), report))
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        let positions = self.positions.as_ref().map(|x| (to_host2(x), x.dims()[1]));
        checkpoint.put_json(
            "tempering",
            &(positions, self.sweeps_done, self.pt.ladder().betas()),
        )
    }

    fn load(&mut self, checkpoint: &Checkpoint, device: &Device) -> Result<()> {
        let (positions, sweeps, betas): Saved = checkpoint.json("tempering")?;
        if betas != self.pt.ladder().betas() {
            return Err(corrupt(
                "its tempering ladder differs from the configured one",
            ));
        }
        self.positions = match positions {
            Some((values, d)) if d > 0 && values.len() % d == 0 => {
                Some(from_host2(values.clone(), [values.len() / d, d], device))
            }
            Some(_) => return Err(corrupt("tempering positions of a ragged shape")),
            None => None,
        };
        self.sweeps_done = sweeps;
        Ok(())
    }

    fn negatives(&self) -> Option<(Tensor<2>, Option<Vec<f64>>)> {
        self.last.clone().map(|x| (x, None))
    }
}

/// The checkpointed replicas: positions (host values and dimension), sweeps done, the ladder.
type Saved = (Option<(Vec<f32>, usize)>, usize, Vec<f64>);

fn corrupt(message: &str) -> Error {
    Error::Checkpoint {
        path: "the PT-CD replicas".into(),
        message: message.into(),
    }
}

impl TemperedPcd {
    /// Keeps the replicas for the next step and returns the target replica (the negatives).
    fn finish(&mut self, state: TemperingState) -> Result<Tensor<2>> {
        let cold = self.pt.cold(&state);
        zoo_energy::tensor::check_finite("PT-CD negatives", &cold)?;
        self.positions = Some(self.pt.positions(&state));
        self.sweeps_done = state.sweeps;
        self.last = Some(cold.clone());
        Ok(cold)
    }
}
