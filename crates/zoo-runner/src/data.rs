//! The data of a run, drawn the same way for every family: 2-D sets sampled from their exact
//! densities (training points depend on the seed, held-out points do not), and the 8×8 digits
//! dequantised uniformly, y = 2 (p + u) / 17 - 1 with p in {0..16} and u ~ U(0, 1).

use crate::config::{DataSet, EvalConfig};
use crate::error::Result;
use burn::prelude::Device;
use zoo_data::digits::dequantise;
use zoo_data::grid::{energies, mean_and_se, true_cell_masses};
use zoo_data::{Digits, Grid2d, GridDensity, Split, ToyDensity};
use zoo_energy::rng::seeded;

/// Histogram cells per side of the sample TV (a 64 × 64 grid of the set's box).
pub const CELLS: usize = 64;

/// Seed of the held-out points: the same test set for every seed and method.
const TEST_SEED: u64 = 999;

/// What a run trains on and is scored against.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The set.
    pub set: DataSet,
    /// Training points `[n, dim]` row-major.
    pub train: Vec<f32>,
    /// Held-out points `[m, dim]` row-major.
    pub test: Vec<f32>,
    /// Dimension.
    pub dim: usize,
    /// 2-D sets: the exact density, its quadrature grid and the true histogram masses.
    pub truth: Option<Truth>,
}

/// The exact side of a 2-D set.
#[derive(Debug, Clone)]
pub struct Truth {
    /// The density.
    pub density: ToyDensity,
    /// The quadrature grid of the exact metrics.
    pub grid: Grid2d,
    /// True mass of every cell of the `CELLS x CELLS` histogram.
    pub cell_masses: Vec<f64>,
    /// The sample TV of as many exact samples as a run scores: the finite-sample floor.
    pub sample_tv_floor: f64,
    /// The true density's NLL on the held-out points (nats): the best a model can score.
    pub true_nll: f64,
    /// The true density on the quadrature grid (for the heat maps).
    pub grid_density: Vec<f64>,
}

impl Prepared {
    /// The data of `set` for `seed`.
    pub fn new(set: DataSet, seed: u64, eval: &EvalConfig, device: &Device) -> Result<Self> {
        match set {
            DataSet::Toy(t) => {
                let density = t.density();
                let train = density.sample_host(&mut seeded(10_000 + seed), eval.train_points);
                let test = density.sample_host(&mut seeded(TEST_SEED), eval.test_points);
                let cell_masses = true_cell_masses(&density, CELLS, device)?;
                let exact = density.sample_host(&mut seeded(TEST_SEED + 1), eval.samples);
                let sample_tv_floor =
                    zoo_data::sample_metrics(&density, &exact, CELLS, &cell_masses)?.tv;
                // The density's energy is -log p exactly (normalised in closed form).
                let true_nll = mean_and_se(&energies(&density, &test, device)?).0;
                let grid = Grid2d::for_density(&density);
                let grid_density = GridDensity::from_energy(&density, grid, device)?.densities();
                let truth = Truth {
                    grid,
                    cell_masses,
                    sample_tv_floor,
                    true_nll,
                    grid_density,
                    density,
                };
                Ok(Prepared {
                    set,
                    train,
                    test,
                    dim: 2,
                    truth: Some(truth),
                })
            }
            DataSet::Digits => {
                let train = Digits::load(Split::Train)?.scaled();
                let test = Digits::load(Split::Test)?.scaled();
                // 8 dequantised copies of the training split, fresh noise per seed.
                let mut rng = seeded(20_000 + seed);
                let train = (0..8).flat_map(|_| dequantise(&train, &mut rng)).collect();
                let test = dequantise(&test, &mut seeded(TEST_SEED));
                Ok(Prepared {
                    set,
                    train,
                    test,
                    dim: zoo_data::digits::PIXELS,
                    truth: None,
                })
            }
        }
    }

    /// Training points.
    pub fn n_train(&self) -> usize {
        self.train.len() / self.dim
    }

    /// Held-out points.
    pub fn n_test(&self) -> usize {
        self.test.len() / self.dim
    }
}

/// Bits per dimension of the discrete digits from the log-density of their dequantised form in
/// y-space: log p(p + u) = log p_y(y) + 64 log(2 / 17), so
/// bpd = -(log p_y + 64 log(2/17)) / (64 log 2). An upper bound on the discrete model's bpd
/// (uniform dequantisation, Theis et al. 2016).
pub fn bits_per_dim(log_py: f64) -> f64 {
    let d = zoo_data::digits::PIXELS as f64;
    -(log_py + d * (2.0f64 / 17.0).ln()) / (d * std::f64::consts::LN_2)
}

/// Images in y-space back to [0, 1] for the sample grids.
pub fn to_unit(y: &[f32]) -> Vec<f32> {
    y.iter()
        .map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0))
        .collect()
}
