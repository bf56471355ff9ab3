//! Energies chosen by name and parameters, from the command line or from TOML, so that any of
//! them can be sampled without writing Rust.
//!
//! One grammar for both: a TOML table with a `kind` key and the energy's parameters.
//! On the command line `--energy` takes a preset name (`funnel`), a name with an inline TOML
//! table of overrides (`funnel{dim = 20}`), or `@file.toml`. Unknown keys are errors.

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::energy::*;
use zoo_energy::error::{Error, Result};
use zoo_energy::linalg::ar1_correlation;
use zoo_energy::rng::seeded;
use zoo_neural::{Activation, MlpEnergyConfig};

/// An energy and its parameters (TOML: `kind = "..."` plus the fields of the variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EnergySpec {
    /// N(mean, Sigma). Give `mean` (or `dim` for zeros) and at most one of `std` (isotropic),
    /// `variance` (diagonal), `covariance` (full), `correlation` (Sigma_ij = rho^|i-j|).
    Gaussian {
        /// Dimension when `mean` is not given (then the mean is 0).
        #[serde(default)]
        dim: Option<usize>,
        /// The mean.
        #[serde(default)]
        mean: Option<Vec<f64>>,
        /// Isotropic standard deviation.
        #[serde(default)]
        std: Option<f64>,
        /// Diagonal variances.
        #[serde(default)]
        variance: Option<Vec<f64>>,
        /// Full covariance matrix.
        #[serde(default)]
        covariance: Option<Vec<Vec<f64>>>,
        /// AR(1) correlation rho in (-1, 1): Sigma_ij = rho^|i-j| (unit variances).
        #[serde(default)]
        correlation: Option<f64>,
    },
    /// Gaussian mixture; each component isotropic (`stds`) or with a full covariance
    /// (`covariances`), exactly one of the two.
    Mixture {
        /// Component weights (normalised; positive).
        weights: Vec<f64>,
        /// Component means.
        means: Vec<Vec<f64>>,
        /// Component standard deviations (one per component).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stds: Vec<f64>,
        /// Component covariance matrices (one per component).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        covariances: Vec<Vec<Vec<f64>>>,
    },
    /// Neal's funnel.
    Funnel {
        /// Dimension (>= 2).
        #[serde(default = "default_funnel_dim")]
        dim: usize,
        /// Standard deviation of the log-variance coordinate.
        #[serde(default = "default_funnel_scale")]
        scale: f64,
    },
    /// The 2-D banana.
    Banana {
        /// Standard deviation of x1.
        #[serde(default = "one")]
        scale: f64,
        /// Bend.
        #[serde(default = "one")]
        curvature: f64,
    },
    /// The double well.
    DoubleWell {
        /// Dimension (>= 1).
        #[serde(default = "two")]
        dim: usize,
        /// Barrier height.
        #[serde(default = "default_barrier")]
        barrier: f64,
    },
    /// A randomly initialised MLP energy (PyTorch's default init, from `seed`).
    Mlp {
        /// Widths, input to output (last = 1).
        #[serde(default = "default_widths")]
        widths: Vec<usize>,
        /// Activation.
        #[serde(default)]
        activation: Activation,
        /// Seed of the weights.
        #[serde(default)]
        seed: u64,
        /// Evaluate with the fused CPU kernel (fast on flex/ndarray; the tensor path otherwise).
        #[serde(default)]
        fused: bool,
    },
}

fn default_funnel_dim() -> usize {
    10
}
fn default_funnel_scale() -> f64 {
    3.0
}
fn one() -> f64 {
    1.0
}
fn two() -> usize {
    2
}
fn default_barrier() -> f64 {
    2.0
}
fn default_widths() -> Vec<usize> {
    vec![2, 128, 128, 1]
}

/// The preset names (each a full spec with defaults).
pub const PRESETS: &str =
    "gaussian, correlated_gaussian, mixture, funnel, banana, double_well, mlp";

impl EnergySpec {
    /// The named preset: the energies the tests and docs use.
    pub fn preset(name: &str) -> Result<Self> {
        let toml = match name {
            "gaussian" => "kind = 'gaussian'\ndim = 2",
            "correlated_gaussian" => "kind = 'gaussian'\ndim = 10\ncorrelation = 0.9",
            "mixture" => {
                "kind = 'mixture'\nweights = [0.7, 0.3]\nmeans = [[-1.5, 0.0], [1.5, 0.5]]\nstds = [0.7, 0.9]"
            }
            "funnel" => "kind = 'funnel'",
            "banana" => "kind = 'banana'",
            "double_well" => "kind = 'double_well'",
            "mlp" => "kind = 'mlp'",
            other => {
                return Err(Error::UnknownName {
                    kind: "energy",
                    name: other.into(),
                    known: PRESETS.into(),
                });
            }
        };
        Self::from_toml(toml)
    }

    /// Parses a TOML table with a `kind` key; an error names the key at fault.
    pub fn from_toml(text: &str) -> Result<Self> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| Error::Config(one_line(&e.to_string())))?;
        let typed = |t: toml::Table| toml::Value::Table(t).try_into::<Self>();
        typed(table.clone()).map_err(|e| {
            let message = one_line(&e.to_string());
            // serde buffers an internally tagged enum, which loses the key of a bad value
            // ("unknown variant", "invalid value"): the key is the one whose removal changes the
            // error (to success or to "missing field").
            let culprit = table.keys().filter(|k| *k != "kind").find(|k| {
                let mut without = table.clone();
                without.remove(*k);
                typed(without).map_or_else(|e2| one_line(&e2.to_string()) != message, |_| true)
            });
            Error::Config(match culprit {
                Some(k) if !message.contains(&format!("`{k}`")) => format!("key `{k}`: {message}"),
                _ => message,
            })
        })
    }

    /// Parses the command-line form: `NAME`, `NAME{key = value, ...}` or `@file.toml`.
    pub fn parse(arg: &str) -> Result<Self> {
        let arg = arg.trim();
        if let Some(path) = arg.strip_prefix('@') {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                context: format!("reading energy file {path}"),
                source,
            })?;
            return Self::from_toml(&text);
        }
        let Some(open) = arg.find('{') else {
            return Self::preset(arg);
        };
        let (name, rest) = arg.split_at(open);
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| Error::Config(format!("energy spec '{arg}' must end with '}}'")))?;
        // Start from the preset's table so overrides only need the changed keys.
        let base = Self::preset(name.trim())?;
        let mut table = toml::Value::try_from(&base).map_err(|e| Error::Config(e.to_string()))?;
        let overrides: toml::Table = toml::from_str(&format!("x = {{{inner}}}"))
            .map_err(|e| Error::Config(format!("in '{arg}': {}", one_line(&e.to_string()))))?;
        let overrides = overrides
            .get("x")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default();
        let t = table.as_table_mut().expect("an energy spec is a table");
        if let Some(kind) = overrides.get("kind") {
            return Err(Error::Config(format!(
                "do not set kind ({kind}) inside braces: the name before '{{' is the kind"
            )));
        }
        // A preset's `dim` yields to keys that fix the dimension themselves (`mean`, `variance`,
        // `covariance`) unless `dim` is given too; `std` and `correlation` keep it.
        let shapes = ["mean", "variance", "covariance"];
        if !overrides.contains_key("dim") && shapes.iter().any(|k| overrides.contains_key(*k)) {
            t.remove("dim");
        }
        t.extend(overrides);
        Self::from_toml(&toml::to_string(&table).map_err(|e| Error::Config(e.to_string()))?)
    }

    /// Builds the energy on `device`.
    pub fn build(&self, device: &Device) -> Result<Box<dyn Energy>> {
        Ok(match self {
            EnergySpec::Gaussian {
                dim,
                mean,
                std,
                variance,
                covariance,
                correlation,
            } => {
                let parts = GaussianParts {
                    dim: *dim,
                    mean,
                    std: *std,
                    variance,
                    covariance,
                    correlation: *correlation,
                };
                Box::new(parts.build(device)?)
            }
            EnergySpec::Mixture {
                weights,
                means,
                stds,
                covariances,
            } => {
                let covs = match (stds.is_empty(), covariances.is_empty()) {
                    (false, true) => stds
                        .iter()
                        .map(|s| {
                            zoo_energy::error::check_positive("stds", *s)
                                .map(|s| Covariance::Isotropic(s * s))
                        })
                        .collect::<Result<Vec<_>>>()?,
                    (true, false) => covariances.iter().cloned().map(Covariance::Full).collect(),
                    _ => {
                        return Err(Error::invalid(
                            "stds",
                            "give exactly one of stds and covariances",
                        ));
                    }
                };
                if covs.len() != means.len() {
                    return Err(Error::invalid(
                        "means",
                        format!("{} means for {} components", means.len(), covs.len()),
                    ));
                }
                Box::new(GaussianMixture::from_parts(
                    weights.clone(),
                    means.clone(),
                    covs,
                    device,
                )?)
            }
            EnergySpec::Funnel { dim, scale } => Box::new(Funnel::new(*dim, *scale)?),
            EnergySpec::Banana { scale, curvature } => Box::new(Banana::new(*scale, *curvature)?),
            EnergySpec::DoubleWell { dim, barrier } => Box::new(DoubleWell::new(*dim, *barrier)?),
            EnergySpec::Mlp {
                widths,
                activation,
                seed,
                fused,
            } => {
                let mlp = MlpEnergyConfig::new(widths.clone(), *activation)
                    .init(&mut seeded(*seed), device)?;
                if *fused {
                    Box::new(mlp.fused())
                } else {
                    Box::new(mlp)
                }
            }
        })
    }
}

/// The fields of [`EnergySpec::Gaussian`], borrowed.
struct GaussianParts<'a> {
    dim: Option<usize>,
    mean: &'a Option<Vec<f64>>,
    std: Option<f64>,
    variance: &'a Option<Vec<f64>>,
    covariance: &'a Option<Vec<Vec<f64>>>,
    correlation: Option<f64>,
}

impl GaussianParts<'_> {
    /// The Gaussian of a `gaussian` spec: the dimension from `mean`, `dim`, `variance` or
    /// `covariance` (in that order), checked against the memory budget before anything of that
    /// size is allocated.
    fn build(&self, device: &Device) -> Result<Gaussian> {
        let (mean, variance, covariance) = (self.mean, self.variance, self.covariance);
        let (dim, std, correlation) = (&self.dim, &self.std, &self.correlation);
        let d = match (mean, dim) {
            (Some(m), Some(d)) if m.len() != *d => {
                return Err(Error::invalid(
                    "mean",
                    format!("has {} entries but dim = {d}", m.len()),
                ));
            }
            (Some(m), _) => m.len(),
            (None, Some(d)) => *d,
            (None, None) => match (variance, covariance) {
                (Some(v), _) => v.len(),
                (None, Some(c)) => c.len(),
                (None, None) => {
                    return Err(Error::invalid(
                        "dim",
                        "give `dim`, `mean`, `variance` or `covariance`",
                    ));
                }
            },
        };
        zoo_energy::memory::check_elements(
            "a gaussian of dimension `dim` (its vectors)",
            8 * d as u128,
            8,
        )?;
        let given = [
            std.is_some(),
            variance.is_some(),
            covariance.is_some(),
            correlation.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(Error::invalid(
                "covariance",
                "give at most one of std, variance, covariance, correlation",
            ));
        }
        let cov = if let Some(s) = std {
            zoo_energy::error::check_positive("std", *s)?;
            Covariance::Isotropic(s * s)
        } else if let Some(v) = variance {
            Covariance::Diagonal(v.clone())
        } else if let Some(c) = covariance {
            Covariance::Full(c.clone())
        } else if let Some(rho) = correlation {
            if !(rho.is_finite() && rho.abs() < 1.0) {
                return Err(Error::invalid(
                    "correlation",
                    format!("must lie in (-1, 1), got {rho}"),
                ));
            }
            zoo_energy::memory::check_elements(
                "a correlated gaussian (dim x dim covariance, Cholesky factor and inverse)",
                4 * (d as u128) * (d as u128),
                8,
            )?;
            Covariance::Full(ar1_correlation(d, *rho))
        } else {
            Covariance::Isotropic(1.0)
        };
        let mean = (*mean).clone().unwrap_or_else(|| vec![0.0; d]);
        Gaussian::new(mean, cov, device)
    }
}

/// Folds a multi-line parser message into one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|'))
        .collect::<Vec<_>>()
        .join(" ")
}
