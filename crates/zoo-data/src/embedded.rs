//! A 2-D set embedded in a higher dimension, with its exact density: x = B (y, sigma eps), where
//! y ~ a 2-D set with a closed-form density, eps ~ N(0, I_{D-2}), and B a fixed random orthonormal
//! basis of R^D. In the basis, the density factorises: p(x) = p_y(c_1, c_2) prod_{j>2}
//! N(c_j; 0, sigma^2), c = B^T x (|det B| = 1), so the exact NLL of held-out points is known.

use crate::toy2d::{Toy2d, ToyDensity};
use burn::prelude::*;
use zoo_energy::rng::{normal_vec, seeded};
use zoo_energy::tensor::{from_host2, to_host1};
use zoo_energy::{Energy, Error, Result, ZooRng};

/// The embedded set (see the module docs).
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The 2-D set.
    pub set: Toy2d,
    density: ToyDensity,
    /// Ambient dimension D (>= 2).
    pub dim: usize,
    /// Off-plane standard deviation sigma (> 0 when D > 2).
    pub noise: f64,
    /// Orthonormal basis, column j = `basis[j * dim .. (j + 1) * dim]`.
    basis: Vec<f64>,
}

impl Embedded {
    /// `set` in R^`dim`, off-plane noise `noise`, basis drawn (Gram-Schmidt) from `seed`.
    pub fn new(set: Toy2d, dim: usize, noise: f64, seed: u64) -> Result<Self> {
        if dim < 2 {
            return Err(Error::invalid("dim", format!("need dim >= 2, got {dim}")));
        }
        if dim > 2 {
            zoo_energy::check_positive("noise", noise)?;
        }
        zoo_energy::memory::check_elements(
            "the embedding's dim x dim orthonormal basis",
            dim as u128 * dim as u128,
            8,
        )?;
        let mut rng = seeded(seed);
        let mut basis: Vec<f64> = Vec::with_capacity(dim * dim);
        while basis.len() < dim * dim {
            let mut v: Vec<f64> = normal_vec(&mut rng, dim)
                .into_iter()
                .map(f64::from)
                .collect();
            for col in basis.chunks(dim) {
                let dot: f64 = col.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(col).for_each(|(x, c)| *x -= dot * c);
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-6 {
                basis.extend(v.iter().map(|x| x / norm));
            }
        }
        Ok(Self {
            set,
            density: set.density(),
            dim,
            noise,
            basis,
        })
    }

    /// `n` draws, row-major `[n, dim]`.
    pub fn sample_host(&self, rng: &mut ZooRng, n: usize) -> Vec<f32> {
        let y = self.density.sample_host(rng, n);
        let eps = normal_vec(rng, n * (self.dim - 2));
        let d = self.dim;
        let mut out = vec![0f32; n * d];
        for i in 0..n {
            let mut c = vec![f64::from(y[2 * i]), f64::from(y[2 * i + 1])];
            c.extend((0..d - 2).map(|j| self.noise * f64::from(eps[i * (d - 2) + j])));
            for (j, cj) in c.iter().enumerate() {
                for k in 0..d {
                    out[i * d + k] += (cj * self.basis[j * d + k]) as f32;
                }
            }
        }
        out
    }

    /// The plane coordinates `[m, 2]` of row-major `[m, dim]` points (their projection onto the
    /// set's plane, in the 2-D set's own coordinates).
    pub fn project(&self, x: &[f32]) -> Vec<f32> {
        let d = self.dim;
        x.chunks(d)
            .flat_map(|row| {
                [0, 1].map(|j| {
                    (0..d)
                        .map(|k| f64::from(row[k]) * self.basis[j * d + k])
                        .sum::<f64>() as f32
                })
            })
            .collect()
    }

    /// Exact log p(x) of row-major `[m, dim]` points.
    pub fn log_density(&self, x: &[f32], device: &Device) -> Result<Vec<f64>> {
        let d = self.dim;
        if x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(Error::Shape {
                what: "points".into(),
                expected: format!("[m >= 1, {d}]"),
                got: vec![x.len() / d, x.len() % d],
            });
        }
        let m = x.len() / d;
        let coords = |i: usize, j: usize| -> f64 {
            (0..d)
                .map(|k| f64::from(x[i * d + k]) * self.basis[j * d + k])
                .sum()
        };
        let plane = self.project(x);
        let e = to_host1(&self.density.energy(from_host2(plane, [m, 2], device)));
        let var = self.noise * self.noise;
        let off_norm = if d > 2 {
            0.5 * (d - 2) as f64 * (2.0 * std::f64::consts::PI * var).ln()
        } else {
            0.0
        };
        Ok((0..m)
            .map(|i| {
                let off: f64 = (2..d).map(|j| coords(i, j).powi(2)).sum();
                -f64::from(e[i]) - off / (2.0 * var.max(f64::MIN_POSITIVE)) - off_norm
            })
            .collect())
    }
}
