//! The No-U-Turn sampler, multinomial version (Hoffman & Gelman 2014; Betancourt 2017, "A
//! conceptual introduction to Hamiltonian Monte Carlo", appendix A), as Stan implements it:
//!
//! - the trajectory doubles in a random direction until it makes a U-turn or reaches the maximum
//!   depth (2^depth leapfrog steps at most); each new subtree is built recursively;
//! - the U-turn criterion is the generalised one on rho (the sum of the momenta) and the
//!   velocities p# = M^-1 p at the two ends: continue while rho . p#_- > 0 and rho . p#_+ > 0,
//!   checked on every subtree, plus the two checks across each merge (rho of one half plus the
//!   adjacent momentum of the other, against the outer and the adjacent ends);
//! - the state is drawn from the trajectory with probabilities exp(-H) (multinomial): uniformly
//!   within a subtree, and biased towards the new subtree at the top level;
//! - a leapfrog step whose energy error H - H0 exceeds [`super::DIVERGENCE_THRESHOLD`] (or is not
//!   finite) is a divergence: the subtree is rejected and the trajectory stops.
//!
//! The batch of chains runs in lockstep: every chain doubles at the same time, and a chain that has
//! stopped is carried along (its steps are computed and ignored) until every chain has stopped.
//! Per-chain bookkeeping (log weights, the choices, the criteria) is on the host, one copy of a few
//! `[n]` vectors per leapfrog step; positions and momenta stay on the device.
//!
//! The kinetic energy is p^T M^-1 p / 2 with a diagonal inverse mass `inv_mass`; the warm-up that
//! estimates it (Stan's windows) is [`crate::run::nuts_warmup`], apart from the kernel.

use super::{ChainState, StepInfo};
use burn::prelude::*;
use rand::RngExt;
use zoo_energy::energy::Energy;
use zoo_energy::error::{Error, Result, check_positive};
use zoo_energy::rng::{ZooRng, normal};
use zoo_energy::tensor::{row_dot, to_host1};

/// The deepest tree allowed (2^20 leapfrog steps per transition).
pub const MAX_TREE_DEPTH: usize = 20;

/// Multinomial NUTS with a diagonal mass matrix.
#[derive(Debug, Clone)]
pub struct Nuts {
    step_size: f64,
    max_depth: usize,
    inv_mass: Vec<f64>,
}

impl Nuts {
    /// NUTS with step size `step_size` (> 0), trees of at most `max_depth` doublings (1..=20;
    /// Stan's default is 10) and the identity mass matrix.
    pub fn new(step_size: f64, max_depth: usize) -> Result<Self> {
        if !(1..=MAX_TREE_DEPTH).contains(&max_depth) {
            return Err(Error::invalid(
                "max_depth",
                format!("must be in 1..={MAX_TREE_DEPTH}, got {max_depth}"),
            ));
        }
        Ok(Self {
            step_size: check_positive("step_size", step_size)?,
            max_depth,
            inv_mass: Vec::new(),
        })
    }

    /// The same kernel with the diagonal inverse mass matrix `inv_mass` (every entry finite and
    /// > 0; empty means the identity).
    pub fn with_inv_mass(mut self, inv_mass: Vec<f64>) -> Result<Self> {
        if let Some(v) = inv_mass.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(Error::invalid(
                "inv_mass",
                format!("every entry must be finite and > 0, got {v}"),
            ));
        }
        self.inv_mass = inv_mass;
        Ok(self)
    }

    /// The diagonal inverse mass (empty: identity).
    pub fn inv_mass(&self) -> &[f64] {
        &self.inv_mass
    }

    /// The maximum tree depth.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    fn metric(&self, d: usize, device: &Device) -> Result<Metric> {
        let inv: Vec<f64> = if self.inv_mass.is_empty() {
            vec![1.0; d]
        } else if self.inv_mass.len() == d {
            self.inv_mass.clone()
        } else {
            return Err(Error::invalid(
                "inv_mass",
                format!("{} entries for dimension {d}", self.inv_mass.len()),
            ));
        };
        let row = |f: fn(f64) -> f64| {
            let v: Vec<f32> = inv.iter().map(|&m| f(m) as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [d]), device).unsqueeze_dim::<2>(0)
        };
        Ok(Metric {
            inv_mass: row(|m| m),
            sqrt_mass: row(|m| (1.0 / m).sqrt()),
        })
    }
}

chain_kernel!(Nuts, "nuts", tested: true);

/// The diagonal metric as `[1, d]` rows.
struct Metric {
    inv_mass: Tensor<2>,
    sqrt_mass: Tensor<2>,
}

/// What every leaf of one doubling shares: the target, the metric, the signed step per chain
/// (`[n, 1]`) and the initial Hamiltonian.
struct Doubling<'a> {
    energy: &'a dyn Energy,
    metric: &'a Metric,
    eps: &'a Tensor<2>,
    h0: &'a [f64],
}

/// A point of phase space for every chain: position with its cached energy and score, momentum.
#[derive(Clone)]
struct Point {
    state: ChainState,
    p: Tensor<2>,
}

/// A stretch of trajectory per chain: its two ends, the sum of its momenta, its log weight
/// log sum exp(H0 - H), the state it proposes, and whether it turned or diverged.
struct Segment {
    near: Point,
    far: Point,
    rho: Tensor<2>,
    log_w: Vec<f64>,
    proposal: ChainState,
    turned: Vec<bool>,
    divergent: Vec<bool>,
    metro_sum: Vec<f64>,
    leaves: Vec<usize>,
}

/// The momenta a U-turn check needs of a stretch of trajectory: at its end nearest the start of
/// the trajectory (`near`), at its other end (`far`), and summed over it (`rho`).
struct Ends<'a> {
    near: &'a Tensor<2>,
    far: &'a Tensor<2>,
    rho: &'a Tensor<2>,
}

impl Segment {
    fn ends(&self) -> Ends<'_> {
        Ends {
            near: &self.near.p,
            far: &self.far.p,
            rho: &self.rho,
        }
    }
}

/// The generalised U-turn criterion over two consecutive stretches `a` then `b` (Stan's three
/// checks): rho . p# > 0 at both outer ends of the whole, and across the join from each side
/// (rho of one stretch plus the adjacent momentum of the other). One host copy of the six dot
/// products per chain; true where the trajectory may go on.
fn no_u_turn(m: &Metric, a: Ends, b: Ends) -> Vec<bool> {
    let sharp = |p: &Tensor<2>| p.clone() * m.inv_mass.clone();
    let whole = a.rho.clone() + b.rho.clone();
    let left = a.rho.clone() + b.near.clone();
    let right = b.rho.clone() + a.far.clone();
    let dots = Tensor::cat(
        vec![
            row_dot(sharp(a.near), whole.clone()),
            row_dot(sharp(b.far), whole),
            row_dot(sharp(a.near), left.clone()),
            row_dot(sharp(b.near), left),
            row_dot(sharp(a.far), right.clone()),
            row_dot(sharp(b.far), right),
        ],
        0,
    );
    let host = to_host1(&dots);
    let n = host.len() / 6;
    (0..n)
        .map(|i| (0..6).all(|k| host[k * n + i] > 0.0))
        .collect()
}

/// Rows of `b` where `mask`, rows of `a` elsewhere.
fn pick2(mask: &[bool], a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    if mask.iter().all(|m| !m) {
        return a;
    }
    let m = bool_rows(mask, &a.device());
    super::select_rows(m, a, b)
}

fn pick1(mask: &[bool], a: Tensor<1>, b: Tensor<1>) -> Tensor<1> {
    if mask.iter().all(|m| !m) {
        return a;
    }
    a.mask_where(bool_rows(mask, &b.device()), b)
}

fn bool_rows(mask: &[bool], device: &Device) -> Tensor<1, Bool> {
    Tensor::<1, Bool>::from_data(TensorData::new(mask.to_vec(), [mask.len()]), device)
}

fn pick_state(mask: &[bool], a: ChainState, b: ChainState) -> ChainState {
    ChainState {
        position: pick2(mask, a.position, b.position),
        energy: pick1(mask, a.energy, b.energy),
        score: pick2(mask, a.score, b.score),
    }
}

fn pick_point(mask: &[bool], a: Point, b: Point) -> Point {
    Point {
        state: pick_state(mask, a.state, b.state),
        p: pick2(mask, a.p, b.p),
    }
}

/// log(exp(a) + exp(b)), -inf safe.
fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        m
    } else {
        m + ((a - m).exp() + (b - m).exp()).ln()
    }
}

impl Nuts {
    /// One leapfrog step of signed size `eps` (`[n, 1]`, +h or -h per chain).
    fn leapfrog(&self, energy: &dyn Energy, m: &Metric, from: &Point, eps: &Tensor<2>) -> Point {
        let half = eps.clone().mul_scalar(0.5);
        let p = from.p.clone() + from.state.score.clone() * half.clone();
        let x = from.state.position.clone() + p.clone() * m.inv_mass.clone() * eps.clone();
        let state = ChainState::at(energy, x);
        let p = p + state.score.clone() * half;
        Point { state, p }
    }

    /// H = E + p^T M^-1 p / 2 per chain, on the host.
    fn hamiltonian(m: &Metric, point: &Point) -> Vec<f64> {
        let kinetic =
            row_dot(point.p.clone() * m.inv_mass.clone(), point.p.clone()).mul_scalar(0.5);
        to_host1(&(point.state.energy.clone() + kinetic))
            .iter()
            .map(|&h| {
                if h.is_nan() {
                    f64::INFINITY
                } else {
                    f64::from(h)
                }
            })
            .collect()
    }

    /// A subtree of 2^depth leapfrog steps from `start` (Stan's `build_tree`).
    fn build(&self, rng: &mut ZooRng, at: &Doubling, start: &Point, depth: usize) -> Segment {
        let (energy, m, eps, h0) = (at.energy, at.metric, at.eps, at.h0);
        if depth == 0 {
            let q = self.leapfrog(energy, m, start, eps);
            let h = Self::hamiltonian(m, &q);
            let divergent: Vec<bool> = h
                .iter()
                .zip(h0)
                .map(|(h, h0)| {
                    let error = h - h0;
                    !error
                        .partial_cmp(&super::DIVERGENCE_THRESHOLD)
                        .is_some_and(|o| o.is_le())
                })
                .collect();
            let log_w: Vec<f64> = h.iter().zip(h0).map(|(h, h0)| h0 - h).collect();
            return Segment {
                rho: q.p.clone(),
                proposal: q.state.clone(),
                near: q.clone(),
                far: q,
                metro_sum: log_w.iter().map(|w| w.min(0.0).exp()).collect(),
                log_w,
                turned: divergent.clone(),
                divergent,
                leaves: vec![1; h0.len()],
            };
        }
        let first = self.build(rng, at, start, depth - 1);
        let second = self.build(rng, at, &first.far, depth - 1);
        let n = h0.len();
        let log_w: Vec<f64> = (0..n)
            .map(|i| log_add(first.log_w[i], second.log_w[i]))
            .collect();
        // Uniform progressive sampling within a subtree: the second half's proposal with
        // probability w_second / w_subtree.
        let take_second: Vec<bool> = (0..n)
            .map(|i| rng.random::<f64>() < (second.log_w[i] - log_w[i]).exp())
            .collect();
        let persist = no_u_turn(m, first.ends(), second.ends());
        let turned: Vec<bool> = (0..n)
            .map(|i| first.turned[i] || second.turned[i] || !persist[i])
            .collect();
        Segment {
            rho: first.rho.clone() + second.rho.clone(),
            proposal: pick_state(&take_second, first.proposal, second.proposal),
            near: first.near,
            far: second.far,
            log_w,
            // Stan stops building at the first half's U-turn or divergence: the second half's
            // leaves (computed here in lockstep) do not count for those chains.
            divergent: (0..n)
                .map(|i| first.divergent[i] || (!first.turned[i] && second.divergent[i]))
                .collect(),
            metro_sum: (0..n)
                .map(|i| {
                    first.metro_sum[i]
                        + if first.turned[i] {
                            0.0
                        } else {
                            second.metro_sum[i]
                        }
                })
                .collect(),
            leaves: (0..n)
                .map(|i| first.leaves[i] + if first.turned[i] { 0 } else { second.leaves[i] })
                .collect(),
            turned,
        }
    }

    /// One transition (the body of [`super::Sampler::step`]).
    fn transition(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: ChainState,
    ) -> Result<(ChainState, StepInfo)> {
        let [n, d] = state.position.dims();
        let device = state.position.device();
        let m = self.metric(d, &device)?;
        let p = normal(rng, [n, d], &device) * m.sqrt_mass.clone();
        let origin = Point { state, p };
        let h0 = Self::hamiltonian(&m, &origin);
        let mut trajectory = Trajectory::new(&origin, n);
        for depth in 0..self.max_depth {
            if trajectory.done.iter().all(|d| *d) {
                break;
            }
            let forward: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
            let signs: Vec<f32> = forward
                .iter()
                .map(|&f| {
                    if f {
                        self.step_size as f32
                    } else {
                        -self.step_size as f32
                    }
                })
                .collect();
            let eps = Tensor::<1>::from_data(TensorData::new(signs, [n]), &device).unsqueeze_dim(1);
            let start = pick_point(&forward, trajectory.left.clone(), trajectory.right.clone());
            let at = Doubling {
                energy,
                metric: &m,
                eps: &eps,
                h0: &h0,
            };
            let subtree = self.build(rng, &at, &start, depth);
            trajectory.extend(rng, self, &m, subtree, &forward, depth);
        }
        let acceptance: Vec<f32> = (0..n)
            .map(|i| (trajectory.metro_sum[i] / trajectory.leaves[i].max(1) as f64) as f32)
            .collect();
        let divergent: Vec<f32> = trajectory
            .divergent
            .iter()
            .map(|&v| f32::from(u8::from(v)))
            .collect();
        let depth: Vec<f32> = trajectory.depth.iter().map(|&d| d as f32).collect();
        let row = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
        let info = StepInfo {
            step_size: self.step_size,
            acceptance_probability: Some(row(acceptance)),
            divergent: Some(row(divergent)),
            tree_depth: Some(row(depth)),
        };
        Ok((trajectory.sample, info))
    }
}

/// The whole trajectory per chain at the top level.
struct Trajectory {
    left: Point,
    right: Point,
    rho: Tensor<2>,
    log_w: Vec<f64>,
    sample: ChainState,
    done: Vec<bool>,
    divergent: Vec<bool>,
    depth: Vec<usize>,
    metro_sum: Vec<f64>,
    leaves: Vec<usize>,
}

impl Trajectory {
    fn new(origin: &Point, n: usize) -> Self {
        Self {
            left: origin.clone(),
            right: origin.clone(),
            rho: origin.p.clone(),
            log_w: vec![0.0; n],
            sample: origin.state.clone(),
            done: vec![false; n],
            divergent: vec![false; n],
            depth: vec![0; n],
            metro_sum: vec![0.0; n],
            leaves: vec![0; n],
        }
    }

    /// Adds `subtree` (built forward where `forward`) for the chains still running: the
    /// proposal by biased progressive sampling, the ends, rho; then the U-turn checks.
    fn extend(
        &mut self,
        rng: &mut ZooRng,
        nuts: &Nuts,
        m: &Metric,
        subtree: Segment,
        forward: &[bool],
        depth: usize,
    ) {
        let n = self.done.len();
        let live: Vec<bool> = (0..n).map(|i| !self.done[i]).collect();
        for i in (0..n).filter(|&i| live[i]) {
            self.metro_sum[i] += subtree.metro_sum[i];
            self.leaves[i] += subtree.leaves[i];
        }
        let valid: Vec<bool> = (0..n).map(|i| live[i] && !subtree.turned[i]).collect();
        for i in 0..n {
            if live[i] && subtree.divergent[i] {
                self.divergent[i] = true;
            }
            if live[i] && !valid[i] {
                self.done[i] = true;
            }
        }
        // Biased progressive sampling: the subtree's proposal with min(1, w_new / w_old).
        let take: Vec<bool> = (0..n)
            .map(|i| valid[i] && rng.random::<f64>() < (subtree.log_w[i] - self.log_w[i]).exp())
            .collect();
        self.sample = pick_state(&take, self.sample.clone(), subtree.proposal.clone());
        for i in (0..n).filter(|&i| valid[i]) {
            self.log_w[i] = log_add(self.log_w[i], subtree.log_w[i]);
            self.depth[i] = depth + 1;
        }
        // The old trajectory as a stretch ordered towards the new subtree, then the checks.
        let towards: Vec<bool> = (0..n).map(|i| valid[i] && forward[i]).collect();
        let backwards: Vec<bool> = (0..n).map(|i| valid[i] && !forward[i]).collect();
        let (near, far) = (
            pick2(forward, self.right.p.clone(), self.left.p.clone()),
            pick2(forward, self.left.p.clone(), self.right.p.clone()),
        );
        let old = Ends {
            near: &near,
            far: &far,
            rho: &self.rho,
        };
        let persist = no_u_turn(m, old, subtree.ends());
        self.right = pick_point(&towards, self.right.clone(), subtree.far.clone());
        self.left = pick_point(&backwards, self.left.clone(), subtree.far);
        self.rho = pick2(&valid, self.rho.clone(), self.rho.clone() + subtree.rho);
        for i in 0..n {
            if valid[i] && (!persist[i] || depth + 1 == nuts.max_depth) {
                self.done[i] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo_energy::energy::{Covariance, Gaussian};
    use zoo_energy::rng::seeded;
    use zoo_energy::tensor::to_host2;

    /// Leapfrog with the signed per-chain step is reversible: L steps of +h (or -h) then L steps
    /// of the opposite sign return to the start (f32: < 1e-5 relative).
    #[test]
    fn signed_leapfrog_is_reversible() {
        let device = zoo_energy::backend::BackendKind::compiled()[0]
            .device()
            .unwrap();
        let target = Gaussian::new(
            vec![0.5, -1.0, 2.0],
            Covariance::Diagonal(vec![1.0, 0.25, 4.0]),
            &device,
        )
        .unwrap();
        let nuts = Nuts::new(0.1, 10)
            .unwrap()
            .with_inv_mass(vec![1.0, 0.5, 2.0])
            .unwrap();
        let m = nuts.metric(3, &device).unwrap();
        let mut rng = seeded(1);
        let x = normal(&mut rng, [4, 3], &device);
        let start = Point {
            state: ChainState::at(&target, x),
            p: normal(&mut rng, [4, 3], &device),
        };
        let signs = |s: [f32; 4]| {
            Tensor::<1>::from_data(TensorData::new(s.to_vec(), [4]), &device)
                .mul_scalar(0.1)
                .unsqueeze_dim::<2>(1)
        };
        let (there, back) = (signs([1.0, -1.0, 1.0, -1.0]), signs([-1.0, 1.0, -1.0, 1.0]));
        let mut q = start.clone();
        for _ in 0..50 {
            q = nuts.leapfrog(&target, &m, &q, &there);
        }
        for _ in 0..50 {
            q = nuts.leapfrog(&target, &m, &q, &back);
        }
        let close = |a: &Tensor<2>, b: &Tensor<2>| {
            let (a, b) = (to_host2(a), to_host2(b));
            let err = a
                .iter()
                .zip(&b)
                .map(|(u, v)| (u - v).abs())
                .fold(0.0f32, f32::max);
            let scale = b.iter().map(|v| v.abs()).fold(1.0f32, f32::max);
            err / scale
        };
        assert!(close(&q.state.position, &start.state.position) < 1e-5);
        assert!(close(&q.p, &start.p) < 1e-5);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            Nuts::new(0.1, 0)
                .unwrap_err()
                .to_string()
                .contains("max_depth")
        );
        assert!(
            Nuts::new(0.1, 21)
                .unwrap_err()
                .to_string()
                .contains("max_depth")
        );
        assert!(Nuts::new(0.0, 10).is_err());
        assert!(
            Nuts::new(0.1, 10)
                .unwrap()
                .with_inv_mass(vec![1.0, -1.0])
                .is_err()
        );
    }
}
