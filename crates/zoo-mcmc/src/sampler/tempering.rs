//! Parallel tempering, or replica exchange (Swendsen & Wang 1986; Geyer 1991; Earl & Deem 2005):
//! K replicas of the chains target exp(-beta_k E) on a ladder 1 = beta_0 > beta_1 > ... >
//! beta_{K-1} > 0; each sweep moves every replica with one step of a shared kernel, then
//! proposes to exchange the states of neighbours (k, k+1) for the even k (even sweeps) or the odd
//! k (odd sweeps), accepted with probability min(1, exp((beta_k - beta_{k+1}) (E_k - E_{k+1}))).
//! The deterministic even/odd alternation is the non-reversible scheme of Okabe et al. (2001) and
//! Syed et al. (2022), which moves states along the ladder faster than random pair choices.
//!
//! **Kernels at every temperature, one energy call.** All K replicas live stacked in one batch
//! `[K n, d]`. Replica k is run in the scaled coordinate u = x sqrt(beta_k), where its target
//! exp(-beta_k E(u / sqrt(beta_k))) has the cold target's scale: the kernel's step size `h` then
//! acts like a step of h / beta_k (MALA, ULA) or h / sqrt(beta_k) (HMC) in x, that is, the
//! proposal's length grows as beta^(-1/2) with the width of the tempered target. The change of
//! variables has a constant Jacobian, so any exact kernel stays exact, and every kernel step is
//! one batched energy evaluation for all replicas. Exchanges only rescale the cached energies and
//! scores (no evaluation).
//!
//! Tuning is separate from the kernel (as for step sizes): [`adapt_ladder`] moves the interior
//! rungs towards equal swap rates, and [`run_tempering`] applies it during warm-up if asked.

use super::{ChainKernel, ChainState, Sampler, StepInfo};
use burn::prelude::*;
use burn::tensor::Int;
use rand::RngExt;
use zoo_energy::energy::Energy;
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::{check_batch, check_finite, to_host1};

/// The inverse temperatures of the replicas: beta_0 = 1 (the target, where the draws come from),
/// strictly decreasing, every one in (0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    betas: Vec<f64>,
}

impl Ladder {
    /// Checks the rungs: at least two, the first exactly 1, strictly decreasing, all in (0, 1].
    pub fn new(betas: Vec<f64>) -> Result<Self> {
        if betas.len() < 2 {
            return Err(Error::invalid(
                "replicas",
                format!(
                    "parallel tempering needs at least 2 replicas, got {}",
                    betas.len()
                ),
            ));
        }
        if let Some(b) = betas
            .iter()
            .find(|b| !(b.is_finite() && **b > 0.0 && **b <= 1.0))
        {
            return Err(Error::invalid(
                "betas",
                format!("every inverse temperature must be in (0, 1], got {b}"),
            ));
        }
        if betas[0] != 1.0 {
            return Err(Error::invalid(
                "betas",
                format!(
                    "the first rung must be beta = 1 (the target), got {}",
                    betas[0]
                ),
            ));
        }
        if let Some(w) = betas.windows(2).find(|w| w[1] >= w[0]) {
            return Err(Error::invalid(
                "betas",
                format!(
                    "the ladder must be strictly decreasing, got {} then {}",
                    w[0], w[1]
                ),
            ));
        }
        Ok(Self { betas })
    }

    /// `replicas` rungs from 1 down to `beta_min`, equally spaced in log beta.
    pub fn geometric(replicas: usize, beta_min: f64) -> Result<Self> {
        if replicas < 2 {
            return Err(Error::invalid(
                "replicas",
                format!("parallel tempering needs at least 2 replicas, got {replicas}"),
            ));
        }
        if !(beta_min.is_finite() && beta_min > 0.0 && beta_min < 1.0) {
            return Err(Error::invalid(
                "beta_min",
                format!("must be in (0, 1), got {beta_min}"),
            ));
        }
        let last = (replicas - 1) as f64;
        Self::new(
            (0..replicas)
                .map(|k| {
                    if k == 0 {
                        1.0
                    } else {
                        beta_min.powf(k as f64 / last)
                    }
                })
                .collect(),
        )
    }

    /// The inverse temperatures, beta_0 = 1 first.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// Number of replicas K.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Never true (a ladder has at least two rungs); for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Moves the interior rungs towards equal swap rates (the ends stay): every gap in log beta is
/// multiplied by exp(`gain` (A_k - mean A)), A_k the swap rate of pair (k, k+1), then the gaps are
/// rescaled to the ladder's span. A pair that swaps rarely gets its rungs closer (Vousden, Farr &
/// Mandel 2016 adapt the same gaps; the ends are kept here so that beta_min stays the user's).
pub fn adapt_ladder(ladder: &Ladder, swap_rates: &[f64], gain: f64) -> Result<Ladder> {
    let b = ladder.betas();
    if swap_rates.len() + 1 != b.len() || swap_rates.iter().any(|a| !a.is_finite()) {
        return Err(Error::invalid(
            "swap_rates",
            format!("need {} finite rates, one per neighbour pair", b.len() - 1),
        ));
    }
    let mean = swap_rates.iter().sum::<f64>() / swap_rates.len() as f64;
    let gaps: Vec<f64> = b
        .windows(2)
        .zip(swap_rates)
        .map(|(w, a)| (w[0].ln() - w[1].ln()) * (gain * (a - mean)).exp())
        .collect();
    let scale = (b[0].ln() - b[b.len() - 1].ln()) / gaps.iter().sum::<f64>();
    let mut log_beta = 0.0;
    let mut betas = vec![1.0];
    for (k, g) in gaps.iter().enumerate() {
        log_beta -= g * scale;
        betas.push(if k + 2 == b.len() {
            b[b.len() - 1]
        } else {
            log_beta.exp()
        });
    }
    Ladder::new(betas)
}

/// The replicas of a batch of chains, stacked `[K n, d]` in the scaled coordinates u = x
/// sqrt(beta_k) (replica k in rows k n .. (k + 1) n), with the energy and score of the scaled
/// tempered target cached; and the sweep count (its parity picks the pairs).
#[derive(Debug, Clone)]
pub struct TemperingState {
    /// The stacked scaled states.
    pub stacked: ChainState,
    /// Chains per replica, n.
    pub chains: usize,
    /// Sweeps done.
    pub sweeps: usize,
    /// beta_k and sqrt(beta_k) per row, uploaded once per ladder.
    scale: RowScale,
}

/// Per-sweep diagnostics.
#[derive(Debug, Clone)]
pub struct TemperingInfo {
    /// The kernel's step over all replicas (acceptance `[K n]`, replica by replica).
    pub kernel: StepInfo,
    /// Per neighbour pair (k, k+1): the mean over chains of min(1, alpha) of the exchange, when
    /// the pair was proposed in this sweep.
    pub swap_probability: Vec<Option<f64>>,
}

/// Parallel tempering around any chain kernel (MALA by default in the CLI and the runner).
#[derive(Debug, Clone)]
pub struct ParallelTempering<K> {
    kernel: K,
    ladder: Ladder,
    kernel_steps: usize,
}

/// The tempered target of all replicas in scaled coordinates: rows of replica k have energy
/// beta_k E(u / sqrt(beta_k)) and score sqrt(beta_k) s(u / sqrt(beta_k)).
struct Scaled<'a> {
    energy: &'a dyn Energy,
    scale: &'a RowScale,
}

/// beta_k `[K n]` and sqrt(beta_k) `[K n, 1]` for the rows of replica k.
#[derive(Debug, Clone)]
struct RowScale {
    beta: Tensor<1>,
    sqrt_beta: Tensor<2>,
}

/// f(beta_k) for every row of replica k, `[K n]`.
fn per_row(ladder: &Ladder, chains: usize, f: fn(f64) -> f64) -> Vec<f32> {
    ladder
        .betas()
        .iter()
        .flat_map(|&b| std::iter::repeat_n(f(b) as f32, chains))
        .collect()
}

impl RowScale {
    fn new(ladder: &Ladder, chains: usize, device: &Device) -> Self {
        let rows = ladder.len() * chains;
        Self {
            beta: Tensor::from_data(
                TensorData::new(per_row(ladder, chains, |b| b), [rows]),
                device,
            ),
            sqrt_beta: Tensor::from_data(
                TensorData::new(per_row(ladder, chains, f64::sqrt), [rows, 1]),
                device,
            ),
        }
    }
}

impl Energy for Scaled<'_> {
    fn dim(&self) -> usize {
        self.energy.dim()
    }
    fn energy_and_score(&self, u: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let sqrt_beta = self.scale.sqrt_beta.clone();
        let (e, s) = self.energy.energy_and_score(u / sqrt_beta.clone());
        (e * self.scale.beta.clone(), s * sqrt_beta)
    }
    fn describe(&self) -> String {
        format!("tempered replicas of {}", self.energy.describe())
    }
}

impl<K: ChainKernel> ParallelTempering<K> {
    /// Tempering with `kernel` (its step size is the cold replica's; see the module docs for
    /// the hotter ones) on `ladder`.
    pub fn new(kernel: K, ladder: Ladder) -> Self {
        Self {
            kernel,
            ladder,
            kernel_steps: 1,
        }
    }

    /// `steps` (>= 1) kernel steps per replica between two exchange rounds (default 1).
    pub fn with_kernel_steps(mut self, steps: usize) -> Result<Self> {
        self.kernel_steps = zoo_energy::error::check_count("kernel_steps", steps)?;
        Ok(self)
    }

    /// The ladder.
    pub fn ladder(&self) -> &Ladder {
        &self.ladder
    }

    /// The kernel (its step size is tuned through it).
    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// Every replica at its own positions: `positions: [K n, d]`, replica k in rows k n ..
    /// (k + 1) n, in the target's coordinates x.
    pub fn init_replicas(
        &self,
        energy: &dyn Energy,
        positions: Tensor<2>,
    ) -> Result<TemperingState> {
        let rows = check_batch("initial position", &positions, energy.dim())?;
        check_finite("initial position", &positions)?;
        let k = self.ladder.len();
        if rows % k != 0 {
            return Err(Error::invalid(
                "initial position",
                format!("{rows} rows are not {k} replicas of equal size"),
            ));
        }
        let chains = rows / k;
        let scale = RowScale::new(&self.ladder, chains, &positions.device());
        let u = positions * scale.sqrt_beta.clone();
        let stacked = ChainState::at(
            &Scaled {
                energy,
                scale: &scale,
            },
            u,
        );
        Ok(TemperingState {
            stacked,
            chains,
            sweeps: 0,
            scale,
        })
    }

    /// The chains of the target replica (beta = 1), `[n, d]`.
    pub fn cold(&self, state: &TemperingState) -> Tensor<2> {
        let d = state.stacked.position.dims()[1];
        state
            .stacked
            .position
            .clone()
            .slice([0..state.chains, 0..d])
    }

    /// Every replica's positions in the target's coordinates, `[K n, d]`.
    pub fn positions(&self, state: &TemperingState) -> Tensor<2> {
        state.stacked.position.clone() / state.scale.sqrt_beta.clone()
    }

    /// Moves to `ladder` (same number of rungs), keeping every replica's position x: the scaled
    /// coordinates and caches are rescaled, nothing is evaluated.
    pub fn set_ladder(&mut self, state: TemperingState, ladder: Ladder) -> Result<TemperingState> {
        if ladder.len() != self.ladder.len() {
            return Err(Error::invalid(
                "betas",
                format!(
                    "{} rungs, the state has {}",
                    ladder.len(),
                    self.ladder.len()
                ),
            ));
        }
        let ratio: Vec<f64> = ladder
            .betas()
            .iter()
            .zip(self.ladder.betas())
            .map(|(new, old)| new / old)
            .collect();
        let device = state.stacked.position.device();
        let factors = RowFactors::per_replica(&ratio, state.chains, &device);
        let scale = RowScale::new(&ladder, state.chains, &device);
        self.ladder = ladder;
        Ok(TemperingState {
            stacked: factors.apply(state.stacked, None),
            scale,
            ..state
        })
    }

    /// One sweep: the kernel steps of every replica, then one round of neighbour exchanges.
    pub fn sweep(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: TemperingState,
    ) -> Result<(TemperingState, TemperingInfo)> {
        let scaled = Scaled {
            energy,
            scale: &state.scale,
        };
        let (stacked, kernel) = self.kernel_steps(rng, &scaled, state.stacked)?;
        let parity = state.sweeps % 2;
        let (stacked, swap_probability) = self.exchange(rng, stacked, state.chains, parity);
        Ok((
            TemperingState {
                stacked,
                sweeps: state.sweeps + 1,
                ..state
            },
            TemperingInfo {
                kernel,
                swap_probability,
            },
        ))
    }

    /// `kernel_steps` steps of the kernel; the info has the mean acceptance and the number of
    /// divergent steps per row.
    fn kernel_steps(
        &self,
        rng: &mut ZooRng,
        scaled: &Scaled,
        mut stacked: ChainState,
    ) -> Result<(ChainState, StepInfo)> {
        let add = |total: Option<Tensor<1>>, v: Option<Tensor<1>>| match (total, v) {
            (Some(t), Some(v)) => Some(t + v),
            (t, v) => t.or(v),
        };
        let (mut accept, mut divergent, mut step_size) = (None, None, self.kernel.step_size());
        let mut depth = None;
        for _ in 0..self.kernel_steps {
            let (next, info) = self.kernel.step(rng, scaled, stacked)?;
            stacked = next;
            step_size = info.step_size;
            accept = add(accept, info.acceptance_probability);
            divergent = add(divergent, info.divergent);
            depth = add(depth, info.tree_depth);
        }
        let k = self.kernel_steps as f64;
        Ok((
            stacked,
            StepInfo {
                step_size,
                acceptance_probability: accept.map(|a| a.div_scalar(k)),
                divergent,
                tree_depth: depth.map(|t| t.div_scalar(k)),
            },
        ))
    }

    /// Exchanges of the pairs (k, k+1) with k = parity mod 2, decided on the host from one copy
    /// of the energies; accepted exchanges permute rows and rescale their caches.
    fn exchange(
        &self,
        rng: &mut ZooRng,
        stacked: ChainState,
        chains: usize,
        parity: usize,
    ) -> (ChainState, Vec<Option<f64>>) {
        let b = self.ladder.betas();
        let scaled_energy = to_host1(&stacked.energy);
        let mut rates = vec![None; b.len() - 1];
        let mut perm: Vec<usize> = (0..b.len() * chains).collect();
        let mut length = vec![1.0f64; b.len() * chains];
        let mut any = false;
        for k in (parity..b.len() - 1).step_by(2) {
            let mut sum = 0.0;
            for c in 0..chains {
                let (i, j) = (k * chains + c, (k + 1) * chains + c);
                let (ei, ej) = (
                    f64::from(scaled_energy[i]) / b[k],
                    f64::from(scaled_energy[j]) / b[k + 1],
                );
                let log_alpha = (b[k] - b[k + 1]) * (ei - ej);
                let log_alpha = if log_alpha.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    log_alpha
                };
                sum += log_alpha.min(0.0).exp();
                if (1.0 - rng.random::<f64>()).ln() < log_alpha {
                    perm.swap(i, j);
                    length[i] = (b[k] / b[k + 1]).sqrt();
                    length[j] = (b[k + 1] / b[k]).sqrt();
                    any = true;
                }
            }
            rates[k] = Some(sum / chains as f64);
        }
        if !any {
            return (stacked, rates);
        }
        let device = stacked.position.device();
        let factors = RowFactors::from_lengths(&length, &device);
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(
                perm.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [perm.len()],
            ),
            &device,
        );
        (factors.apply(stacked, Some(index)), rates)
    }
}

/// Per-row rescaling of a scaled state when a row moves to a rung with beta' = r beta: u and
/// the score scale by sqrt(r), the energy by r.
struct RowFactors {
    length: Tensor<2>,
    energy: Tensor<1>,
}

impl RowFactors {
    fn from_lengths(length: &[f64], device: &Device) -> Self {
        let n = length.len();
        let l: Vec<f32> = length.iter().map(|&v| v as f32).collect();
        let e: Vec<f32> = length.iter().map(|&v| (v * v) as f32).collect();
        Self {
            length: Tensor::from_data(TensorData::new(l, [n, 1]), device),
            energy: Tensor::from_data(TensorData::new(e, [n]), device),
        }
    }

    fn per_replica(ratio: &[f64], chains: usize, device: &Device) -> Self {
        let length: Vec<f64> = ratio
            .iter()
            .flat_map(|r| std::iter::repeat_n(r.sqrt(), chains))
            .collect();
        Self::from_lengths(&length, device)
    }

    /// Rows gathered by `index` (if any), then rescaled.
    fn apply(&self, state: ChainState, index: Option<Tensor<1, Int>>) -> ChainState {
        let ChainState {
            position,
            energy,
            score,
        } = state;
        let (position, energy, score) = match index {
            Some(i) => (
                position.select(0, i.clone()),
                energy.select(0, i.clone()),
                score.select(0, i),
            ),
            None => (position, energy, score),
        };
        ChainState {
            position: position * self.length.clone(),
            energy: energy * self.energy.clone(),
            score: score * self.length.clone(),
        }
    }
}

impl<K: ChainKernel> Sampler for ParallelTempering<K> {
    type State = TemperingState;
    type Info = TemperingInfo;
    /// Every replica starts at `position` (`[n, d]`, copied K times).
    fn init(&self, energy: &dyn Energy, position: Tensor<2>) -> Result<TemperingState> {
        let copies = vec![position; self.ladder.len()];
        self.init_replicas(energy, Tensor::cat(copies, 0))
    }
    fn step(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: TemperingState,
    ) -> Result<(TemperingState, TemperingInfo)> {
        self.sweep(rng, energy, state)
    }
    fn name(&self) -> &'static str {
        "pt"
    }
}

/// Checks a tempering run's size before allocating: at least two replicas, and K n chains of
/// dimension d (positions, scores and the kernel's proposal, a few copies each) within the
/// memory budget.
pub fn check_replicas(replicas: usize, chains: usize, dim: usize) -> Result<()> {
    if replicas < 2 {
        return Err(Error::invalid(
            "replicas",
            format!("parallel tempering needs at least 2 replicas, got {replicas}"),
        ));
    }
    zoo_energy::memory::check_points(
        "the replicas (replicas x chains x dim)",
        replicas.saturating_mul(chains),
        dim,
    )
}
