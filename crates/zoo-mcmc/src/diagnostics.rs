//! MCMC diagnostics over several chains: effective sample size from autocorrelations (Geyer's
//! initial monotone sequence, multi-chain form of Gelman et al., BDA3 §11.5, as in Stan), split
//! R-hat (BDA3 §11.4), Monte Carlo standard errors, and a host store of kept draws.

use rustfft::{FftPlanner, num_complex::Complex};
use serde::Serialize;
use zoo_energy::linalg::Matrix;

/// Kept draws on the host: `steps x chains x dim`, row-major.
#[derive(Debug, Clone)]
pub struct Draws {
    chains: usize,
    dim: usize,
    data: Vec<f32>,
}

impl Draws {
    /// An empty store for `chains` chains of dimension `dim`.
    pub fn new(chains: usize, dim: usize) -> Self {
        Self {
            chains,
            dim,
            data: Vec::new(),
        }
    }

    /// Appends one step: `chains x dim` values, row-major; any other length is an error.
    pub fn push(&mut self, step: &[f32]) -> zoo_energy::Result<()> {
        if step.len() != self.chains * self.dim {
            return Err(zoo_energy::Error::Shape {
                what: "one step of draws".into(),
                expected: format!("{} x {} values", self.chains, self.dim),
                got: vec![step.len()],
            });
        }
        self.data.extend_from_slice(step);
        Ok(())
    }

    /// Steps stored.
    pub fn steps(&self) -> usize {
        self.data.len() / (self.chains * self.dim).max(1)
    }

    /// Number of chains.
    pub fn chains(&self) -> usize {
        self.chains
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The trace of `f(draw)` for every chain: `chains` series of length `steps`.
    pub fn map(&self, f: impl Fn(&[f32]) -> f64) -> Vec<Vec<f64>> {
        let (c, d) = (self.chains, self.dim);
        (0..c)
            .map(|j| {
                (0..self.steps())
                    .map(|t| f(&self.data[(t * c + j) * d..(t * c + j + 1) * d]))
                    .collect()
            })
            .collect()
    }

    /// The trace of coordinate `i` for every chain.
    pub fn coordinate(&self, i: usize) -> Vec<Vec<f64>> {
        self.map(|x| x[i] as f64)
    }

    /// Sample mean over all chains and steps.
    pub fn mean(&self) -> Vec<f64> {
        let n = (self.steps() * self.chains) as f64;
        let mut m = vec![0.0; self.dim];
        for x in self.data.chunks(self.dim) {
            for (mi, xi) in m.iter_mut().zip(x) {
                *mi += *xi as f64;
            }
        }
        m.iter().map(|v| v / n).collect()
    }

    /// Sample covariance (denominator n - 1) over all chains and steps.
    pub fn covariance(&self) -> Matrix {
        let m = self.mean();
        let d = self.dim;
        let mut c = vec![vec![0.0; d]; d];
        for x in self.data.chunks(d) {
            for i in 0..d {
                let a = x[i] as f64 - m[i];
                for j in 0..=i {
                    c[i][j] += a * (x[j] as f64 - m[j]);
                }
            }
        }
        let n = (self.steps() * self.chains) as f64;
        for i in 0..d {
            for j in 0..=i {
                c[i][j] /= n - 1.0;
                c[j][i] = c[i][j];
            }
        }
        c
    }

    /// Per-coordinate summary: mean, variance, ESS, split R-hat, Monte Carlo standard error.
    pub fn summary(&self) -> Vec<Summary> {
        (0..self.dim)
            .map(|i| Summary::of(&self.coordinate(i)))
            .collect()
    }
}

/// Diagnostics of one scalar quantity over several chains.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// Mean over all draws.
    pub mean: f64,
    /// Variance over all draws (denominator n - 1).
    pub variance: f64,
    /// Effective sample size.
    pub ess: f64,
    /// Split R-hat.
    pub rhat: f64,
    /// Monte Carlo standard error of the mean, sqrt(variance / ESS).
    pub mcse: f64,
}

impl Summary {
    /// Diagnostics of `chains` (each a series of equal length).
    pub fn of(chains: &[Vec<f64>]) -> Self {
        let all: Vec<f64> = chains.iter().flatten().copied().collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let variance = all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let ess = effective_sample_size(chains);
        Self {
            mean,
            variance,
            ess,
            rhat: split_rhat(chains),
            mcse: (variance / ess).sqrt(),
        }
    }
}

/// Autocovariance at lags 0..n-1 of one series (biased estimator, divided by n), via FFT.
pub fn autocovariance(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let size = (2 * n).next_power_of_two();
    let mut buf: Vec<Complex<f64>> = x.iter().map(|v| Complex::new(v - mean, 0.0)).collect();
    buf.resize(size, Complex::new(0.0, 0.0));
    let mut planner = FftPlanner::new();
    planner.plan_fft_forward(size).process(&mut buf);
    for c in buf.iter_mut() {
        *c = Complex::new(c.norm_sqr(), 0.0);
    }
    planner.plan_fft_inverse(size).process(&mut buf);
    buf[..n]
        .iter()
        .map(|c| c.re / (size as f64 * n as f64))
        .collect()
}

fn mean_and_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (
        m,
        x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0),
    )
}

/// Multi-chain effective sample size (BDA3 §11.5; Geyer 1992's initial monotone sequence).
/// Chains must have equal length >= 4. Returns `m n / tau` with the integrated autocorrelation
/// time tau = -1 + 2 sum_k P_k, P_k = rho_{2k} + rho_{2k+1}.
pub fn effective_sample_size(chains: &[Vec<f64>]) -> f64 {
    let m = chains.len();
    let n = chains.iter().map(|c| c.len()).min().unwrap_or(0);
    if m == 0 || n < 4 {
        return f64::NAN;
    }
    let acov: Vec<Vec<f64>> = chains.iter().map(|c| autocovariance(&c[..n])).collect();
    let stats: Vec<(f64, f64)> = chains.iter().map(|c| mean_and_var(&c[..n])).collect();
    let w = stats.iter().map(|s| s.1).sum::<f64>() / m as f64;
    if w == 0.0 {
        return f64::NAN;
    }
    let nf = n as f64;
    let between = if m > 1 {
        let (_, var_means) = mean_and_var(&stats.iter().map(|s| s.0).collect::<Vec<_>>());
        var_means
    } else {
        0.0
    };
    let var_plus = w * (nf - 1.0) / nf + between;
    let rho = |t: usize| 1.0 - (w - acov.iter().map(|a| a[t]).sum::<f64>() / m as f64) / var_plus;
    let mut tau = -1.0;
    let mut prev = f64::INFINITY;
    let mut k = 0;
    while 2 * k + 1 < n {
        let p = rho(2 * k) + rho(2 * k + 1);
        if p <= 0.0 {
            break;
        }
        let p = p.min(prev);
        tau += 2.0 * p;
        prev = p;
        k += 1;
    }
    // Bound tau below as Stan does, so that antithetic chains cannot report ESS > m n log10(m n).
    let mn = m as f64 * nf;
    mn / tau.max(1.0 / mn.log10())
}

/// Split R-hat (BDA3 §11.4): every chain cut in halves, R = sqrt(var_plus / W).
pub fn split_rhat(chains: &[Vec<f64>]) -> f64 {
    let n = chains.iter().map(|c| c.len()).min().unwrap_or(0) / 2;
    if n < 2 {
        return f64::NAN;
    }
    let halves: Vec<&[f64]> = chains
        .iter()
        .flat_map(|c| [&c[..n], &c[n..2 * n]])
        .collect();
    let stats: Vec<(f64, f64)> = halves.iter().map(|h| mean_and_var(h)).collect();
    let w = stats.iter().map(|s| s.1).sum::<f64>() / stats.len() as f64;
    let (_, b_over_n) = mean_and_var(&stats.iter().map(|s| s.0).collect::<Vec<_>>());
    let nf = n as f64;
    ((w * (nf - 1.0) / nf + b_over_n) / w).sqrt()
}

/// |x - y|^2 in f64.
fn sq(x: &[f32], y: &[f32]) -> f64 {
    x.iter().zip(y).map(|(p, q)| f64::from(p - q).powi(2)).sum()
}

/// The unbiased estimate of the squared maximum mean discrepancy between two samples (`[n, d]`
/// and `[m, d]` row-major) under the Gaussian kernel exp(-|x - y|^2 / (2 h^2)) (Gretton et al.
/// 2012, eq. 3), with h the median pairwise distance of the pooled sample when `bandwidth` is
/// `None` (the median heuristic). Returns (MMD^2, h). Zero in expectation for equal laws.
/// Samples that are not whole rows of width `d`, or of fewer than two rows, are errors.
pub fn mmd2_rbf(
    a: &[f32],
    b: &[f32],
    d: usize,
    bandwidth: Option<f64>,
) -> zoo_energy::Result<(f64, f64)> {
    if d == 0 || !a.len().is_multiple_of(d) || !b.len().is_multiple_of(d) {
        return Err(zoo_energy::Error::invalid(
            "samples",
            format!(
                "MMD needs rows of width {d}; got {} and {} values",
                a.len(),
                b.len()
            ),
        ));
    }
    let (n, m) = (a.len() / d, b.len() / d);
    if n < 2 || m < 2 {
        return Err(zoo_energy::Error::invalid(
            "samples",
            format!("MMD needs at least two points per sample; got {n} and {m}"),
        ));
    }
    let h = bandwidth.unwrap_or_else(|| {
        let pooled: Vec<&[f32]> = a.chunks(d).chain(b.chunks(d)).collect();
        // The median over a deterministic subsample of pairs (at most 500 points).
        let step = pooled.len().div_ceil(500);
        let pts: Vec<&[f32]> = pooled.into_iter().step_by(step).collect();
        let mut dists: Vec<f64> = Vec::new();
        for i in 0..pts.len() {
            for j in i + 1..pts.len() {
                dists.push(sq(pts[i], pts[j]).sqrt());
            }
        }
        dists.sort_by(f64::total_cmp);
        dists[dists.len() / 2].max(1e-12)
    });
    let k = |x: &[f32], y: &[f32]| (-sq(x, y) / (2.0 * h * h)).exp();
    let within = |s: &[f32], count: usize| -> f64 {
        let mut total = 0.0;
        for i in 0..count {
            for j in 0..count {
                if i != j {
                    total += k(&s[i * d..(i + 1) * d], &s[j * d..(j + 1) * d]);
                }
            }
        }
        total / (count * (count - 1)) as f64
    };
    let mut cross = 0.0;
    for x in a.chunks(d) {
        for y in b.chunks(d) {
            cross += k(x, y);
        }
    }
    Ok((
        within(a, n) + within(b, m) - 2.0 * cross / (n * m) as f64,
        h,
    ))
}

/// Checks that `x` is whole rows of width `d`, at least `min_rows` of them; returns the rows.
fn rows_of(what: &str, x: &[f32], d: usize, min_rows: usize) -> zoo_energy::Result<usize> {
    if d == 0 || !x.len().is_multiple_of(d) || x.len() / d < min_rows {
        return Err(zoo_energy::Error::invalid(
            what,
            format!(
                "needs at least {min_rows} rows of width {d}; got {} values",
                x.len()
            ),
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(zoo_energy::Error::invalid(
            what,
            format!("value {} of row {} is {}", i % d, i / d, x[i]),
        ));
    }
    Ok(x.len() / d)
}

/// Mean and covariance (divisor n - 1) of `[n, d]` row-major samples (n >= 2): those of
/// [`Draws`] holding them as one step of n chains.
pub fn mean_and_covariance(x: &[f32], d: usize) -> zoo_energy::Result<(Vec<f64>, Matrix)> {
    let n = rows_of("samples", x, d, 2)?;
    let mut draws = Draws::new(n, d);
    draws.push(x)?;
    Ok((draws.mean(), draws.covariance()))
}

/// The Fréchet (2-Wasserstein) distance between N(m1, c1) and N(m2, c2) (Dowson & Landau 1982;
/// on classifier features it is the FID of Heusel et al. 2017):
/// |m1 - m2|^2 + tr c1 + tr c2 - 2 tr (c1^{1/2} c2 c1^{1/2})^{1/2}, the last trace from the
/// eigenvalues of the symmetric product (clamped at zero). Not the square root: FID's convention.
pub fn frechet_distance(
    m1: &[f64],
    c1: &Matrix,
    m2: &[f64],
    c2: &Matrix,
) -> zoo_energy::Result<f64> {
    let d = m1.len();
    zoo_energy::linalg::check_square_symmetric("c1", c1, d)?;
    zoo_energy::linalg::check_square_symmetric("c2", c2, d)?;
    if m2.len() != d {
        return Err(zoo_energy::Error::invalid(
            "m2",
            format!("must have {d} entries, not {}", m2.len()),
        ));
    }
    let root = zoo_energy::linalg::sqrt_psd(c1);
    let inner = zoo_energy::linalg::matmul(&zoo_energy::linalg::matmul(&root, c2), &root);
    let (values, _) = zoo_energy::linalg::symmetric_eigen(&inner);
    let cross: f64 = values.iter().map(|l| l.max(0.0).sqrt()).sum();
    let mean_term: f64 = m1.iter().zip(m2).map(|(a, b)| (a - b).powi(2)).sum();
    let trace = |c: &Matrix| (0..d).map(|i| c[i][i]).sum::<f64>();
    Ok((mean_term + trace(c1) + trace(c2) - 2.0 * cross).max(0.0))
}

/// Squared distances from every row of `a` to every row of `b`, `[n_a][n_b]`.
fn squared_distances(a: &[f32], b: &[f32], d: usize) -> Vec<Vec<f64>> {
    a.chunks(d)
        .map(|x| b.chunks(d).map(|y| sq(x, y)).collect())
        .collect()
}

/// Each row's squared distance to its k-th nearest other row of the same sample.
fn knn_radii(x: &[f32], d: usize, k: usize) -> Vec<f64> {
    squared_distances(x, x, d)
        .into_iter()
        .enumerate()
        .map(|(i, mut row)| {
            row.remove(i);
            row.sort_by(f64::total_cmp);
            row[k - 1]
        })
        .collect()
}

/// Improved precision and recall (Kynkäänniemi et al. 2019, §2): each sample's manifold is the
/// union of balls around its points reaching each point's k-th nearest neighbour; precision is
/// the share of `fake` rows inside the real manifold, recall the share of `real` rows inside the
/// fake one. Both samples `[n, d]` row-major with more than k rows. Returns (precision, recall).
pub fn knn_precision_recall(
    real: &[f32],
    fake: &[f32],
    d: usize,
    k: usize,
) -> zoo_energy::Result<(f64, f64)> {
    if k == 0 {
        return Err(zoo_energy::Error::invalid("k", "must be at least 1"));
    }
    rows_of("real", real, d, k + 1)?;
    rows_of("fake", fake, d, k + 1)?;
    let (r_real, r_fake) = (knn_radii(real, d, k), knn_radii(fake, d, k));
    let cross = squared_distances(fake, real, d);
    let precision = cross
        .iter()
        .filter(|row| row.iter().zip(&r_real).any(|(dist, r)| dist <= r))
        .count() as f64
        / cross.len() as f64;
    let covered = (0..r_real.len())
        .filter(|&j| cross.iter().zip(&r_fake).any(|(row, r)| row[j] <= *r))
        .count();
    Ok((precision, covered as f64 / r_real.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autocovariance_matches_the_direct_sum() {
        let x: Vec<f64> = (0..37)
            .map(|i| ((i * 7919) % 13) as f64 - 0.3 * i as f64)
            .collect();
        let n = x.len();
        let m = x.iter().sum::<f64>() / n as f64;
        let fast = autocovariance(&x);
        for t in 0..n {
            let direct: f64 =
                (0..n - t).map(|i| (x[i] - m) * (x[i + t] - m)).sum::<f64>() / n as f64;
            assert!(
                (fast[t] - direct).abs() < 1e-9,
                "lag {t}: {} vs {direct}",
                fast[t]
            );
        }
    }
}
