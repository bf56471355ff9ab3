//! 2-D data sets whose density is known in closed form, so that every model can be scored exactly
//! (held-out NLL, KL and total variation by quadrature on a grid, see [`crate::grid`]).
//!
//! Curved sets (two moons, rings) are *fine Gaussian mixtures*: many narrow components spaced
//! closer than their width along the curve, which is how the usual point-cloud generators look
//! (a curve plus Gaussian noise) but with a density one can write down. The checkerboard is a
//! uniform density on the black squares convolved with a narrow Gaussian, in closed form with erfc.
//! Every set has *modes* (the 8 or 25 Gaussians, each moon, each ring, each square, each component
//! of the unequal mixture) so that learned mode weights and mode coverage can be reported.

use burn::prelude::*;
use rand::RngExt;
use rayon::prelude::*;
use std::f64::consts::{PI, SQRT_2};
use zoo_energy::energy::ExactSample;
use zoo_energy::rng::normal_vec;
use zoo_energy::tensor::{check_batch, from_host1, from_host2, to_host2};
use zoo_energy::{Energy, Error, Result, ZooRng};

/// The 2-D data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toy2d {
    /// 8 Gaussians (sigma 0.2) on a circle of radius 2, equal weights.
    EightGaussians,
    /// 25 Gaussians (sigma 0.1) on the grid {-2, ..., 2}^2, equal weights.
    Grid25,
    /// Two interleaved half circles (sklearn's moons scaled by 1.5, noise 0.15), each a mixture
    /// of 100 Gaussians along the curve.
    TwoMoons,
    /// Three concentric rings (radii 0.75, 1.5, 2.25, sigma 0.1), mass proportional to length.
    Rings,
    /// Uniform on the 8 black squares of a 4 x 4 board on [-2, 2]^2, blurred by N(0, 0.1^2).
    Checkerboard,
    /// Two Gaussians (sigma 0.5) at (-2, 0) and (2, 0) with weights 1/4 and 3/4.
    Unequal,
}

impl Toy2d {
    /// Every set, in table order.
    pub const ALL: [Toy2d; 6] = [
        Toy2d::EightGaussians,
        Toy2d::Grid25,
        Toy2d::TwoMoons,
        Toy2d::Rings,
        Toy2d::Checkerboard,
        Toy2d::Unequal,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Toy2d::EightGaussians => "8gaussians",
            Toy2d::Grid25 => "25gaussians",
            Toy2d::TwoMoons => "moons",
            Toy2d::Rings => "rings",
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::Unequal => "unequal",
        }
    }

    /// All names, comma separated (error messages).
    pub fn names() -> String {
        Self::ALL.map(Toy2d::name).join(", ")
    }

    /// The exact density of the set.
    pub fn density(self) -> ToyDensity {
        let shape = match self {
            Toy2d::EightGaussians => {
                let means = (0..8)
                    .map(|k| {
                        let a = 2.0 * PI * k as f64 / 8.0;
                        [2.0 * a.cos(), 2.0 * a.sin()]
                    })
                    .collect();
                Shape::mixture(means, vec![1.0; 8], 0.2, (0..8).collect())
            }
            Toy2d::Grid25 => {
                let means = (0..25)
                    .map(|k| [(k % 5) as f64 - 2.0, (k / 5) as f64 - 2.0])
                    .collect();
                Shape::mixture(means, vec![1.0; 25], 0.1, (0..25).collect())
            }
            Toy2d::TwoMoons => {
                let per = 100;
                let mut means = Vec::with_capacity(2 * per);
                let mut labels = Vec::with_capacity(2 * per);
                for k in 0..per {
                    let t = PI * k as f64 / (per - 1) as f64;
                    means.push([1.5 * (t.cos() - 0.5), 1.5 * (t.sin() - 0.25)]);
                    labels.push(0);
                }
                for k in 0..per {
                    let t = PI * k as f64 / (per - 1) as f64;
                    means.push([1.5 * (0.5 - t.cos()), 1.5 * (0.25 - t.sin())]);
                    labels.push(1);
                }
                Shape::mixture(means, vec![1.0; 2 * per], 0.15, labels)
            }
            Toy2d::Rings => {
                let mut means = Vec::new();
                let mut labels = Vec::new();
                for (ring, radius) in [0.75f64, 1.5, 2.25].into_iter().enumerate() {
                    let count = 60 * (ring + 1); // spacing 0.079 < sigma on every ring
                    for k in 0..count {
                        let a = 2.0 * PI * k as f64 / count as f64;
                        means.push([radius * a.cos(), radius * a.sin()]);
                        labels.push(ring);
                    }
                }
                let weights = vec![1.0; means.len()];
                Shape::mixture(means, weights, 0.1, labels)
            }
            Toy2d::Checkerboard => {
                let squares = (0..16)
                    .filter(|k| (k % 4 + k / 4) % 2 == 0)
                    .map(|k| [(k % 4) as f64 - 2.0, (k / 4) as f64 - 2.0])
                    .collect();
                Shape::Checkerboard {
                    squares,
                    side: 1.0,
                    sigma: 0.1,
                }
            }
            Toy2d::Unequal => Shape::mixture(
                vec![[-2.0, 0.0], [2.0, 0.0]],
                vec![0.25, 0.75],
                0.5,
                vec![0, 1],
            ),
        };
        ToyDensity { set: self, shape }
    }
}

impl std::str::FromStr for Toy2d {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|set| set.name() == name)
            .ok_or_else(|| Error::UnknownName {
                kind: "data set",
                name: name.to_string(),
                known: Self::names(),
            })
    }
}

impl std::fmt::Display for Toy2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone)]
enum Shape {
    /// sum_k w_k N(x; mu_k, sigma^2 I); `mode[k]` is the mode component k belongs to.
    Mixture {
        means: Vec<[f64; 2]>,
        log_weights: Vec<f64>,
        sigma: f64,
        mode: Vec<usize>,
    },
    /// (1 / (S side^2)) sum_s 1[x in square s] convolved with N(0, sigma^2 I).
    Checkerboard {
        squares: Vec<[f64; 2]>,
        side: f64,
        sigma: f64,
    },
}

impl Shape {
    fn mixture(means: Vec<[f64; 2]>, weights: Vec<f64>, sigma: f64, mode: Vec<usize>) -> Self {
        let total: f64 = weights.iter().sum();
        Shape::Mixture {
            means,
            log_weights: weights.iter().map(|w| (w / total).ln()).collect(),
            sigma,
            mode,
        }
    }
}

/// The exact density of a [`Toy2d`] set: an [`Energy`] with log Z = 0 that can be sampled exactly.
#[derive(Debug, Clone)]
pub struct ToyDensity {
    set: Toy2d,
    shape: Shape,
}

/// Phi(b') - Phi(a') for the interval [a, b] seen from t with blur sigma, computed with erfc on the
/// side where it does not cancel; and its derivative in t.
fn blurred_interval(t: f64, a: f64, b: f64, sigma: f64) -> (f64, f64) {
    let s = sigma * SQRT_2;
    let value = if t > b {
        0.5 * (libm::erfc((t - b) / s) - libm::erfc((t - a) / s))
    } else if t < a {
        0.5 * (libm::erfc((a - t) / s) - libm::erfc((b - t) / s))
    } else {
        1.0 - 0.5 * libm::erfc((b - t) / s) - 0.5 * libm::erfc((t - a) / s)
    };
    let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
    let derivative = (phi((a - t) / sigma) - phi((b - t) / sigma)) / sigma;
    (value, derivative)
}

impl ToyDensity {
    /// The set this density belongs to.
    pub fn set(&self) -> Toy2d {
        self.set
    }

    /// The evaluation box [lo, hi]^2 (every set keeps all but a negligible mass inside).
    pub fn bounds(&self) -> (f64, f64) {
        (-4.0, 4.0)
    }

    /// Number of modes.
    pub fn modes(&self) -> usize {
        match &self.shape {
            Shape::Mixture { mode, .. } => mode.iter().max().map_or(0, |m| m + 1),
            Shape::Checkerboard { squares, .. } => squares.len(),
        }
    }

    /// The exact mass of every mode.
    pub fn mode_weights(&self) -> Vec<f64> {
        match &self.shape {
            Shape::Mixture {
                log_weights, mode, ..
            } => {
                let mut w = vec![0.0; self.modes()];
                for (lw, &m) in log_weights.iter().zip(mode) {
                    w[m] += lw.exp();
                }
                w
            }
            Shape::Checkerboard { squares, .. } => vec![1.0 / squares.len() as f64; squares.len()],
        }
    }

    /// The scale of one mode's noise (sigma of the components or of the blur).
    pub fn sigma(&self) -> f64 {
        match &self.shape {
            Shape::Mixture { sigma, .. } | Shape::Checkerboard { sigma, .. } => *sigma,
        }
    }

    /// The mode a point belongs to: that of the nearest component centre (mixtures), or the
    /// square nearest in the max-norm (checkerboard).
    pub fn mode_of(&self, x: [f64; 2]) -> usize {
        self.locate(x).0
    }

    /// The mode of `x` (as [`Self::mode_of`]) and its distance, in units of [`Self::sigma`], to
    /// the support of the noise-free set: the nearest component centre (mixtures; for the curved
    /// sets, the curve) or the nearest black square (0 inside it). A sample is *high-quality*
    /// when this is at most 3 (Srivastava et al. 2017; Lin et al. 2018).
    pub fn locate(&self, x: [f64; 2]) -> (usize, f64) {
        match &self.shape {
            Shape::Mixture {
                means, mode, sigma, ..
            } => {
                let (k, d2) = means
                    .iter()
                    .map(|m| (x[0] - m[0]).powi(2) + (x[1] - m[1]).powi(2))
                    .enumerate()
                    .fold(
                        (0, f64::INFINITY),
                        |best, (k, d)| {
                            if d < best.1 { (k, d) } else { best }
                        },
                    );
                (mode[k], d2.sqrt() / sigma)
            }
            Shape::Checkerboard {
                squares,
                side,
                sigma,
            } => {
                let half = side / 2.0;
                let (k, _) = squares
                    .iter()
                    .map(|s| (x[0] - s[0] - half).abs().max((x[1] - s[1] - half).abs()))
                    .enumerate()
                    .fold(
                        (0, f64::INFINITY),
                        |best, (k, d)| {
                            if d < best.1 { (k, d) } else { best }
                        },
                    );
                let s = squares[k];
                let dx = ((x[0] - s[0] - half).abs() - half).max(0.0);
                let dy = ((x[1] - s[1] - half).abs() - half).max(0.0);
                (k, (dx * dx + dy * dy).sqrt() / sigma)
            }
        }
    }

    /// log p(x) and grad_x log p(x) in float64.
    pub fn log_density_and_score(&self, x: [f64; 2]) -> (f64, [f64; 2]) {
        match &self.shape {
            Shape::Mixture {
                means,
                log_weights,
                sigma,
                ..
            } => {
                let inv = 1.0 / (sigma * sigma);
                let logs: Vec<f64> = means
                    .iter()
                    .zip(log_weights)
                    .map(|(m, lw)| lw - 0.5 * inv * ((x[0] - m[0]).powi(2) + (x[1] - m[1]).powi(2)))
                    .collect();
                let max = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut total = 0.0;
                let mut score = [0.0; 2];
                for (l, m) in logs.iter().zip(means) {
                    let r = (l - max).exp();
                    total += r;
                    score[0] += r * (m[0] - x[0]);
                    score[1] += r * (m[1] - x[1]);
                }
                let log_p = max + total.ln() - (2.0 * PI * sigma * sigma).ln();
                (log_p, [score[0] * inv / total, score[1] * inv / total])
            }
            Shape::Checkerboard {
                squares,
                side,
                sigma,
            } => {
                let norm = 1.0 / (squares.len() as f64 * side * side);
                let mut p = 0.0;
                let mut grad = [0.0; 2];
                for s in squares {
                    let (gx, dx) = blurred_interval(x[0], s[0], s[0] + side, *sigma);
                    let (gy, dy) = blurred_interval(x[1], s[1], s[1] + side, *sigma);
                    p += norm * gx * gy;
                    grad[0] += norm * dx * gy;
                    grad[1] += norm * gx * dy;
                }
                if p > 0.0 {
                    (p.ln(), [grad[0] / p, grad[1] / p])
                } else {
                    // Beyond ~37 sigma of the board the density underflows: a Gaussian tail
                    // towards the board keeps E finite and the score pointing home.
                    let lo = squares
                        .iter()
                        .fold(f64::INFINITY, |m, s| m.min(s[0].min(s[1])));
                    let hi = squares
                        .iter()
                        .fold(f64::NEG_INFINITY, |m, s| m.max(s[0].max(s[1]) + side));
                    let proj = [x[0].clamp(lo, hi), x[1].clamp(lo, hi)];
                    let d = [x[0] - proj[0], x[1] - proj[1]];
                    let inv = 1.0 / (sigma * sigma);
                    let log_p = norm.ln() - 0.5 * inv * (d[0] * d[0] + d[1] * d[1]);
                    (log_p, [-d[0] * inv, -d[1] * inv])
                }
            }
        }
    }

    /// `n` exact draws as a row-major `[n, 2]` host buffer.
    pub fn sample_host(&self, rng: &mut ZooRng, n: usize) -> Vec<f32> {
        let noise = normal_vec(rng, 2 * n);
        let mut out = Vec::with_capacity(2 * n);
        match &self.shape {
            Shape::Mixture {
                means,
                log_weights,
                sigma,
                ..
            } => {
                let cumulative: Vec<f64> = log_weights
                    .iter()
                    .scan(0.0, |acc, lw| {
                        *acc += lw.exp();
                        Some(*acc)
                    })
                    .collect();
                let total = *cumulative.last().expect("at least one component");
                for i in 0..n {
                    let u = rng.random::<f64>() * total;
                    let k = cumulative.partition_point(|&c| c <= u).min(means.len() - 1);
                    out.push((means[k][0] + sigma * noise[2 * i] as f64) as f32);
                    out.push((means[k][1] + sigma * noise[2 * i + 1] as f64) as f32);
                }
            }
            Shape::Checkerboard {
                squares,
                side,
                sigma,
            } => {
                for i in 0..n {
                    let s = squares[rng.random_range(0..squares.len())];
                    let ux = rng.random::<f64>();
                    let uy = rng.random::<f64>();
                    out.push((s[0] + side * ux + sigma * noise[2 * i] as f64) as f32);
                    out.push((s[1] + side * uy + sigma * noise[2 * i + 1] as f64) as f32);
                }
            }
        }
        out
    }
}

impl Energy for ToyDensity {
    fn dim(&self) -> usize {
        2
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let device = x.device();
        let n = check_batch("points", &x, 2).unwrap_or(0);
        let host = to_host2(&x);
        let (energy, score): (Vec<f32>, Vec<[f32; 2]>) = host
            .par_chunks(2)
            .map(|p| {
                let (log_p, s) = self.log_density_and_score([p[0] as f64, p[1] as f64]);
                (-log_p as f32, [s[0] as f32, s[1] as f32])
            })
            .unzip();
        let score = score.into_iter().flatten().collect();
        (
            from_host1(energy, &device),
            from_host2(score, [n, 2], &device),
        )
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some(0.0)
    }
    fn describe(&self) -> String {
        format!("{} data density ({} modes)", self.set, self.modes())
    }
}

impl ExactSample for ToyDensity {
    fn sample_exact(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        from_host2(self.sample_host(rng, n), [n, 2], device)
    }
}

/// The peers' (and scikit-learn's `make_moons`) two moons, sample-only: t ~ U(0, pi), upper moon
/// (cos t, sin t) or lower moon (1 - cos t, 1/2 - sin t) with probability 1/2 each, plus
/// N(0, noise^2 I). It has no closed-form density; use [`Toy2d::TwoMoons`] where one is needed.
/// Row-major `[n, 2]`.
pub fn noisy_moons(rng: &mut ZooRng, n: usize, noise: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let t = PI * rng.random::<f64>();
        let upper = rng.random::<f64>() < 0.5;
        let (x, y) = if upper {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        let e = normal_vec(rng, 2);
        out.push((x + noise * f64::from(e[0])) as f32);
        out.push((y + noise * f64::from(e[1])) as f32);
    }
    out
}
