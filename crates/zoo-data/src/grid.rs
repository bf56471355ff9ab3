//! Exact evaluation in 2-D by quadrature on a fine grid: the learned log Z, held-out NLL, KL and
//! total variation to the true density, and the mass the model puts on each mode.
//!
//! A learned energy need not be normalisable on R^2 (an MLP can be flat at infinity), so every model
//! is evaluated as the density exp(-E(x)) / Z_box *restricted to the evaluation box*, with Z_box
//! computed by the midpoint rule on `n x n` cells. For the Gaussian-like densities here the midpoint
//! rule's error decays like exp(-2 pi^2 sigma^2 / h^2): at h = sigma / 3 it is far below float32.

use crate::toy2d::ToyDensity;
use burn::prelude::*;
use zoo_energy::tensor::{from_host2, to_host1};
use zoo_energy::{Energy, Error, Result};

/// Rows evaluated per call to the energy.
const CHUNK: usize = 16_384;

/// The square [lo, hi]^2 cut into `n x n` cells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid2d {
    /// Lower bound of both coordinates.
    pub lo: f64,
    /// Upper bound of both coordinates.
    pub hi: f64,
    /// Cells per side.
    pub n: usize,
}

impl Grid2d {
    /// A grid; `lo < hi`, `n >= 2`.
    pub fn new(lo: f64, hi: f64, n: usize) -> Result<Self> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::invalid(
                "grid",
                format!("need lo < hi, got [{lo}, {hi}]"),
            ));
        }
        if n < 2 {
            return Err(Error::invalid(
                "grid",
                format!("need n >= 2 cells per side, got {n}"),
            ));
        }
        Ok(Self { lo, hi, n })
    }

    /// The default evaluation grid of a data set: its box in 256 x 256 cells.
    pub fn for_density(truth: &ToyDensity) -> Self {
        let (lo, hi) = truth.bounds();
        Self { lo, hi, n: 256 }
    }

    /// Cell side.
    pub fn spacing(&self) -> f64 {
        (self.hi - self.lo) / self.n as f64
    }

    /// Cell area.
    pub fn cell_area(&self) -> f64 {
        self.spacing() * self.spacing()
    }

    /// Cell centre of cell `(ix, iy)`; cells are stored row by row, index `iy * n + ix`.
    pub fn centre(&self, index: usize) -> [f64; 2] {
        let h = self.spacing();
        let (ix, iy) = (index % self.n, index / self.n);
        [
            self.lo + (ix as f64 + 0.5) * h,
            self.lo + (iy as f64 + 0.5) * h,
        ]
    }

    /// All cell centres, `[n * n, 2]` row-major.
    pub fn centres(&self) -> Vec<f32> {
        (0..self.n * self.n)
            .flat_map(|i| self.centre(i).map(|v| v as f32))
            .collect()
    }
}

/// A density normalised on a grid: log q at every cell centre and the log normaliser.
#[derive(Debug, Clone)]
pub struct GridDensity {
    /// The grid.
    pub grid: Grid2d,
    /// log q(centre) = -E(centre) - log Z_box, one per cell (`-inf` where E = +inf).
    pub log_density: Vec<f64>,
    /// log Z_box = log sum_cells exp(-E) h^2.
    pub log_z: f64,
}

/// Evaluates E at `points` (`[m, 2]` row-major) in chunks; NaN is an error, +inf is allowed.
pub fn energies(energy: &dyn Energy, points: &[f32], device: &Device) -> Result<Vec<f64>> {
    if energy.dim() != 2 {
        return Err(Error::Shape {
            what: "energy for grid evaluation".into(),
            expected: "dimension 2".into(),
            got: vec![energy.dim()],
        });
    }
    let mut out = Vec::with_capacity(points.len() / 2);
    for chunk in points.chunks(2 * CHUNK) {
        let x = from_host2(chunk.to_vec(), [chunk.len() / 2, 2], device);
        out.extend(to_host1(&energy.energy(x)).into_iter().map(f64::from));
    }
    if let Some(i) = out
        .iter()
        .position(|e| e.is_nan() || *e == f64::NEG_INFINITY)
    {
        return Err(Error::NonFinite {
            what: "energy on the evaluation grid".into(),
            row: i,
            column: 0,
            value: out[i] as f32,
        });
    }
    Ok(out)
}

pub use zoo_mcmc::estimate::log_sum_exp;

impl GridDensity {
    /// The normalised density exp(log_density) per cell (what a heat map shows).
    pub fn densities(&self) -> Vec<f64> {
        self.log_density.iter().map(|l| l.exp()).collect()
    }

    /// Normalises exp(-E) on `grid`.
    pub fn from_energy(energy: &dyn Energy, grid: Grid2d, device: &Device) -> Result<Self> {
        let e = energies(energy, &grid.centres(), device)?;
        let neg: Vec<f64> = e.iter().map(|v| -v).collect();
        let log_z = log_sum_exp(&neg) + grid.cell_area().ln();
        if !log_z.is_finite() {
            return Err(Error::Config(format!(
                "the energy is +inf (or overflows) on the whole grid: log Z = {log_z}"
            )));
        }
        Ok(Self {
            grid,
            log_density: neg.iter().map(|v| v - log_z).collect(),
            log_z,
        })
    }

    /// The mass of every mode of `truth` under this density (cells assigned by
    /// [`ToyDensity::mode_of`]).
    pub fn mode_masses(&self, truth: &ToyDensity) -> Vec<f64> {
        let mut mass = vec![0.0; truth.modes()];
        let area = self.grid.cell_area();
        for (i, lq) in self.log_density.iter().enumerate() {
            mass[truth.mode_of(self.grid.centre(i))] += lq.exp() * area;
        }
        mass
    }
}

/// The exact metrics of a model against a [`ToyDensity`].
#[derive(Debug, Clone)]
pub struct GridMetrics {
    /// log Z of the model on the box.
    pub log_z: f64,
    /// Held-out NLL in nats: mean over the test points of E(x) + log Z.
    pub nll: f64,
    /// Its standard error over the test points.
    pub nll_se: f64,
    /// The same NLL under the true density (the best possible, up to sampling noise).
    pub true_nll: f64,
    /// KL(p_data || q_model) by quadrature, in nats.
    pub kl: f64,
    /// Total variation distance, in [0, 1].
    pub tv: f64,
    /// The model's mass on every mode.
    pub mode_weights: Vec<f64>,
    /// The true mode weights.
    pub true_mode_weights: Vec<f64>,
    /// Modes where the model puts at least 10% of the true mass.
    pub modes_covered: usize,
    /// Total variation between learned and true mode weights.
    pub mode_weight_error: f64,
    /// The model's density on the grid (what the metrics above were computed from; for heat maps).
    pub density: GridDensity,
}

/// Scores `model` against `truth` on `grid`, with held-out points `test` (`[m, 2]` row-major).
pub fn evaluate(
    model: &dyn Energy,
    truth: &ToyDensity,
    test: &[f32],
    grid: Grid2d,
    device: &Device,
) -> Result<GridMetrics> {
    if test.is_empty() || !test.len().is_multiple_of(2) {
        return Err(Error::Shape {
            what: "held-out points".into(),
            expected: "[m >= 1, 2]".into(),
            got: vec![test.len() / 2, 2],
        });
    }
    let q = GridDensity::from_energy(model, grid, device)?;
    let p = GridDensity::from_energy(truth, grid, device)?;
    let area = grid.cell_area();
    let (mut kl, mut tv) = (0.0, 0.0);
    for (lp, lq) in p.log_density.iter().zip(&q.log_density) {
        let (pp, qq) = (lp.exp(), lq.exp());
        if pp > 0.0 {
            kl += pp * area * (lp - lq);
        }
        tv += 0.5 * (pp - qq).abs() * area;
    }
    let nll_points: Vec<f64> = energies(model, test, device)?
        .iter()
        .map(|e| e + q.log_z)
        .collect();
    let (nll, nll_se) = mean_and_se(&nll_points);
    let true_nll = mean_and_se(&energies(truth, test, device)?).0;
    let mode_weights = q.mode_masses(truth);
    let true_mode_weights = truth.mode_weights();
    let modes_covered = mode_weights
        .iter()
        .zip(&true_mode_weights)
        .filter(|(w, t)| **w >= 0.1 * **t)
        .count();
    let mode_weight_error = 0.5
        * mode_weights
            .iter()
            .zip(&true_mode_weights)
            .map(|(w, t)| (w - t).abs())
            .sum::<f64>();
    Ok(GridMetrics {
        log_z: q.log_z,
        nll,
        nll_se,
        true_nll,
        kl,
        tv,
        mode_weights,
        true_mode_weights,
        modes_covered,
        mode_weight_error,
        density: q,
    })
}

/// Mean and standard error of the mean.
pub fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Metrics of a *sample* against a [`ToyDensity`], for models without a density (a GAN's
/// generator, a sampler's output): the mode-coverage protocol of VEEGAN and PacGAN (Srivastava et
/// al. 2017; Lin et al. 2018) and a histogram total variation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleMetrics {
    /// Number of samples scored.
    pub samples: usize,
    /// Share of samples within 3 sigma of the noise-free set ([`ToyDensity::locate`]).
    pub high_quality: f64,
    /// Modes holding at least [`COVERED_SHARE`] of the samples as high-quality samples.
    pub modes_covered: usize,
    /// Number of modes of the set.
    pub modes: usize,
    /// Total variation between the sample's mode shares (all samples, nearest mode) and the true
    /// mode weights.
    pub mode_weight_error: f64,
    /// KL(sample mode shares ‖ true mode weights), every sample at its nearest mode (the mode
    /// histogram's KL of Geng et al. 2024 and Xiao et al. 2022; 0 when every share is right).
    pub mode_kl: f64,
    /// Total variation between the sample histogram and the true cell masses on a
    /// `cells x cells` grid of the box; samples outside the box count as mass the truth lacks.
    pub tv: f64,
    /// Histogram cells per side.
    pub cells: usize,
}

/// A mode is covered when at least this share of the samples are high-quality samples of it: 20
/// of 2500 in the PacGAN protocol.
pub const COVERED_SHARE: f64 = 20.0 / 2500.0;

/// The true mass of every cell of a `cells x cells` histogram of the box of `truth`, by the
/// midpoint rule on 4 x 4 sub-cells per cell.
pub fn true_cell_masses(truth: &ToyDensity, cells: usize, device: &Device) -> Result<Vec<f64>> {
    let (lo, hi) = truth.bounds();
    let fine = GridDensity::from_energy(truth, Grid2d::new(lo, hi, 4 * cells)?, device)?;
    let area = fine.grid.cell_area();
    let mut mass = vec![0.0; cells * cells];
    for (i, lp) in fine.log_density.iter().enumerate() {
        let (fx, fy) = (i % (4 * cells), i / (4 * cells));
        mass[(fy / 4) * cells + fx / 4] += lp.exp() * area;
    }
    // The box holds all but a negligible mass of every set; renormalise the quadrature's rest.
    let total: f64 = mass.iter().sum();
    Ok(mass.into_iter().map(|m| m / total).collect())
}

/// Scores `samples` (`[m, 2]` row-major) against `truth`; `cell_masses` comes from
/// [`true_cell_masses`] with the same `cells`. Non-finite samples are an error.
pub fn sample_metrics(
    truth: &ToyDensity,
    samples: &[f32],
    cells: usize,
    cell_masses: &[f64],
) -> Result<SampleMetrics> {
    if samples.is_empty() || !samples.len().is_multiple_of(2) {
        return Err(Error::Shape {
            what: "samples".into(),
            expected: "[m >= 1, 2]".into(),
            got: vec![samples.len() / 2, 2],
        });
    }
    if cell_masses.len() != cells * cells {
        return Err(Error::invalid(
            "cell_masses",
            format!("need {} masses for {cells} x {cells} cells", cells * cells),
        ));
    }
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "samples".into(),
            row: i / 2,
            column: i % 2,
            value: samples[i],
        });
    }
    let m = samples.len() / 2;
    let modes = truth.modes();
    let (lo, hi) = truth.bounds();
    let h = (hi - lo) / cells as f64;
    let mut counts = vec![0usize; cells * cells];
    let (mut hq_per_mode, mut per_mode) = (vec![0usize; modes], vec![0usize; modes]);
    for p in samples.chunks(2) {
        let x = [f64::from(p[0]), f64::from(p[1])];
        let (mode, dist) = truth.locate(x);
        per_mode[mode] += 1;
        if dist <= 3.0 {
            hq_per_mode[mode] += 1;
        }
        let (ix, iy) = (((x[0] - lo) / h).floor(), ((x[1] - lo) / h).floor());
        if ix >= 0.0 && iy >= 0.0 && (ix as usize) < cells && (iy as usize) < cells {
            counts[iy as usize * cells + ix as usize] += 1;
        }
    }
    let inside: usize = counts.iter().sum();
    let tv = 0.5
        * (counts
            .iter()
            .zip(cell_masses)
            .map(|(&c, &p)| (c as f64 / m as f64 - p).abs())
            .sum::<f64>()
            + (m - inside) as f64 / m as f64);
    let weights = truth.mode_weights();
    Ok(SampleMetrics {
        samples: m,
        high_quality: hq_per_mode.iter().sum::<usize>() as f64 / m as f64,
        modes_covered: hq_per_mode
            .iter()
            .filter(|&&c| c as f64 >= COVERED_SHARE * m as f64)
            .count(),
        modes,
        mode_weight_error: 0.5
            * per_mode
                .iter()
                .zip(&weights)
                .map(|(&c, w)| (c as f64 / m as f64 - w).abs())
                .sum::<f64>(),
        mode_kl: per_mode
            .iter()
            .zip(&weights)
            .filter(|(c, _)| **c > 0)
            .map(|(&c, w)| (c as f64 / m as f64) * ((c as f64 / m as f64) / w).ln())
            .sum(),
        tv,
        cells,
    })
}
