//! A flow: layers composed over a standard Gaussian base (Rezende & Mohamed 2015; Papamakarios
//! et al. 2021, "Normalizing flows for probabilistic modeling and inference", eq. 2):
//! log q(x) = log N(f(x); 0, I) + sum_k log|det J_k|.

use crate::elementwise::Elementwise;
use crate::layers::{
    ActNorm, Autoregressive, Conditioner, Coupling, Layer, LuLinear, MaskedMlp, Permutation,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::tensor::{check_batch, check_finite, row_sq_norm};
use zoo_energy::{Error, Result, ZooRng};
use zoo_neural::Activation;

/// The flow families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Affine couplings (Dinh et al. 2017).
    RealNvp,
    /// Additive couplings (Dinh et al. 2014), volume preserving; an actnorm gives it a scale.
    Nice,
    /// Masked autoregressive flow (Papamakarios et al. 2017).
    Maf,
    /// Inverse autoregressive flow (Kingma et al. 2016).
    Iaf,
    /// Rational-quadratic spline couplings (Durkan et al. 2019).
    Nsf,
}

impl std::str::FromStr for FlowKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "realnvp" | "real_nvp" => Self::RealNvp,
            "nice" => Self::Nice,
            "maf" => Self::Maf,
            "iaf" => Self::Iaf,
            "nsf" => Self::Nsf,
            other => {
                return Err(Error::UnknownName {
                    kind: "flow",
                    name: other.into(),
                    known: "realnvp, nice, maf, iaf, nsf".into(),
                });
            }
        })
    }
}

impl FlowKind {
    /// The name used in tables.
    pub fn label(&self) -> &'static str {
        match self {
            Self::RealNvp => "RealNVP",
            Self::Nice => "NICE",
            Self::Maf => "MAF",
            Self::Iaf => "IAF",
            Self::Nsf => "NSF",
        }
    }
}

/// The architecture of a flow (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// Data dimension.
    pub dim: usize,
    /// Conditioning input width (0: unconditional).
    pub context: usize,
    /// The family.
    pub kind: FlowKind,
    /// Number of transform layers (couplings or autoregressive layers).
    pub layers: usize,
    /// Hidden widths of every conditioner.
    pub hidden: Vec<usize>,
    /// Conditioner activation.
    pub activation: Activation,
    /// An actnorm before every transform layer.
    pub actnorm: bool,
    /// An LU linear layer after every transform layer (otherwise couplings alternate their halves
    /// and autoregressive layers are separated by a reversal).
    pub lu: bool,
    /// Affine layers: s = c tanh(s_raw / c).
    pub max_log_scale: f64,
    /// Spline bins (NSF).
    pub bins: usize,
    /// Spline interval [-bound, bound] (NSF); identity outside.
    pub bound: f64,
    /// Conditioners' last layers start at zero, so the flow starts as the identity (plus
    /// actnorm / LU).
    pub zero_init: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            dim: 2,
            context: 0,
            kind: FlowKind::RealNvp,
            layers: 8,
            hidden: vec![64, 64],
            activation: Activation::Silu,
            actnorm: false,
            lu: false,
            max_log_scale: 2.0,
            bins: 8,
            bound: 4.0,
            zero_init: true,
        }
    }
}

impl FlowConfig {
    /// A default config of `kind` in `dim` dimensions.
    pub fn new(kind: FlowKind, dim: usize) -> Self {
        Self {
            kind,
            dim,
            ..Self::default()
        }
    }

    /// The element-wise map of the transform layers.
    pub fn elementwise(&self) -> Elementwise {
        match self.kind {
            FlowKind::Nice => Elementwise::Additive,
            FlowKind::RealNvp | FlowKind::Maf | FlowKind::Iaf => Elementwise::Affine {
                max_log_scale: self.max_log_scale,
            },
            FlowKind::Nsf => Elementwise::Spline {
                bins: self.bins,
                bound: self.bound,
            },
        }
    }

    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        if self.dim == 0 {
            return Err(Error::invalid("dim", "must be >= 1"));
        }
        let coupling = matches!(
            self.kind,
            FlowKind::RealNvp | FlowKind::Nice | FlowKind::Nsf
        );
        if coupling && self.dim < 2 {
            return Err(Error::invalid(
                "dim",
                "coupling flows need dim >= 2 (one block conditions the other)",
            ));
        }
        if self.layers == 0 {
            return Err(Error::invalid("layers", "must be >= 1"));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::invalid(
                "hidden",
                format!(
                    "need at least one hidden width, all >= 1; got {:?}",
                    self.hidden
                ),
            ));
        }
        self.elementwise().check()
    }

    /// Builds the flow on `device` (use `device.clone().autodiff()` to train it).
    pub fn init(&self, rng: &mut ZooRng, device: &Device) -> Result<Flow> {
        self.check()?;
        let map = self.elementwise();
        let net = Conditioner {
            hidden: &self.hidden,
            activation: self.activation,
            zero_init: self.zero_init,
        };
        let mut layers = Vec::new();
        for i in 0..self.layers {
            if self.actnorm {
                layers.push(Layer::ActNorm(ActNorm::new(self.dim, device)));
            }
            match self.kind {
                FlowKind::RealNvp | FlowKind::Nice | FlowKind::Nsf => {
                    let (dim, context, first) = (self.dim, self.context, i % 2 == 0);
                    let c = Coupling::new(rng, dim, context, first, map, &net, device)?;
                    layers.push(Layer::Coupling(c));
                }
                FlowKind::Maf | FlowKind::Iaf => {
                    layers.push(Layer::Autoregressive(Autoregressive {
                        net: MaskedMlp::new(
                            rng,
                            self.dim,
                            self.context,
                            map.per_dim(),
                            &net,
                            device,
                        )?,
                        map,
                        inverted: self.kind == FlowKind::Iaf,
                    }));
                }
            }
            let last = i + 1 == self.layers;
            if self.lu {
                layers.push(Layer::LuLinear(LuLinear::new(rng, self.dim, device)));
            } else if matches!(self.kind, FlowKind::Maf | FlowKind::Iaf) && !last {
                layers.push(Layer::Permutation(Permutation::reverse(self.dim)));
            }
        }
        Ok(Flow {
            layers,
            dim: self.dim,
            context: self.context,
        })
    }
}

/// A normalizing flow over a standard Gaussian base. `forward` maps data to latent.
#[derive(Module, Debug)]
pub struct Flow {
    /// The layers, data side first.
    pub layers: Vec<Layer>,
    /// Data dimension.
    #[module(skip)]
    pub dim: usize,
    /// Context width (0: unconditional).
    #[module(skip)]
    pub context: usize,
}

/// log N(z; 0, I) per row.
pub fn standard_normal_log_density(z: Tensor<2>) -> Tensor<1> {
    let d = z.dims()[1];
    row_sq_norm(z)
        .mul_scalar(-0.5)
        .sub_scalar(0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln())
}

impl Flow {
    /// A flow from layers (any composition; checked only by use).
    pub fn from_layers(layers: Vec<Layer>, dim: usize, context: usize) -> Self {
        Self {
            layers,
            dim,
            context,
        }
    }

    /// x -> (z, log|det dz/dx|): the normalising direction.
    pub fn forward(&self, x: Tensor<2>, context: Option<&Tensor<2>>) -> (Tensor<2>, Tensor<1>) {
        let n = x.dims()[0];
        let mut log_det = Tensor::zeros([n], &x.device());
        let mut h = x;
        for layer in &self.layers {
            let (next, ld) = layer.forward(h, context);
            h = next;
            log_det = log_det + ld;
        }
        (h, log_det)
    }

    /// z -> (x, log|det dx/dz|): the generative direction.
    pub fn inverse(&self, z: Tensor<2>, context: Option<&Tensor<2>>) -> (Tensor<2>, Tensor<1>) {
        let n = z.dims()[0];
        let mut log_det = Tensor::zeros([n], &z.device());
        let mut h = z;
        for layer in self.layers.iter().rev() {
            let (next, ld) = layer.inverse(h, context);
            h = next;
            log_det = log_det + ld;
        }
        (h, log_det)
    }

    /// log q(x) per row, unchecked (inner loops).
    pub fn log_prob_unchecked(&self, x: Tensor<2>, context: Option<&Tensor<2>>) -> Tensor<1> {
        let (z, log_det) = self.forward(x, context);
        standard_normal_log_density(z) + log_det
    }

    /// Validates `x` (`[n >= 1, dim]`, finite) and the context (present iff the flow is
    /// conditional, `[n, context]`, finite).
    pub fn check_input(
        &self,
        what: &str,
        x: &Tensor<2>,
        context: Option<&Tensor<2>>,
    ) -> Result<()> {
        let n = check_batch(what, x, self.dim)?;
        check_finite(what, x)?;
        self.check_context(n, context)
    }

    /// Checks that the flow is unconditional (needed to be a density, a proposal or a transport
    /// on its own) and, with `target`, that the target energy has the flow's dimension; `role`
    /// names the use in the error.
    pub fn check_unconditional(
        &self,
        role: &str,
        target: Option<&dyn zoo_energy::Energy>,
    ) -> Result<()> {
        if self.context > 0 {
            return Err(Error::invalid(
                "context",
                format!(
                    "{role} needs an unconditional flow; this one takes a context of {}",
                    self.context
                ),
            ));
        }
        match target {
            Some(t) if t.dim() != self.dim => Err(Error::Shape {
                what: "target energy".into(),
                expected: format!("dimension {}", self.dim),
                got: vec![t.dim()],
            }),
            _ => Ok(()),
        }
    }

    /// Checks that a context of `n` rows is present iff the flow is conditional.
    pub fn check_context(&self, n: usize, context: Option<&Tensor<2>>) -> Result<()> {
        match (self.context, context) {
            (0, None) => Ok(()),
            (0, Some(_)) => Err(Error::invalid(
                "context",
                "this flow is unconditional (context = 0) but a context was given",
            )),
            (c, None) => Err(Error::invalid(
                "context",
                format!("this flow is conditional on {c} values per point; no context was given"),
            )),
            (c, Some(ctx)) => {
                let [m, w] = ctx.dims();
                if m != n || w != c {
                    return Err(Error::Shape {
                        what: "context".into(),
                        expected: format!("[{n}, {c}]"),
                        got: vec![m, w],
                    });
                }
                check_finite("context", ctx)
            }
        }
    }

    /// log q(x) per row; `x: [n, dim]` must be finite.
    pub fn log_prob(&self, x: Tensor<2>, context: Option<&Tensor<2>>) -> Result<Tensor<1>> {
        self.check_input("flow input", &x, context)?;
        Ok(self.log_prob_unchecked(x, context))
    }

    /// `n` samples (with a context of `n` rows for a conditional flow) and their log q.
    pub fn sample_with_log_prob(
        &self,
        rng: &mut ZooRng,
        n: usize,
        context: Option<&Tensor<2>>,
        device: &Device,
    ) -> Result<(Tensor<2>, Tensor<1>)> {
        if n == 0 {
            return Err(Error::invalid("n", "must be >= 1"));
        }
        self.check_context(n, context)?;
        let z = zoo_energy::rng::normal(rng, [n, self.dim], device);
        Ok(self.sample_from_latent(z, context))
    }

    /// x = f^-1(z) and log q(x) = log N(z) - log|det dx/dz| for given base draws `z`.
    pub fn sample_from_latent(
        &self,
        z: Tensor<2>,
        context: Option<&Tensor<2>>,
    ) -> (Tensor<2>, Tensor<1>) {
        let base = standard_normal_log_density(z.clone());
        let (x, log_det) = self.inverse(z, context);
        (x, base - log_det)
    }

    /// Runs `x` through the flow and initialises every actnorm from the batch that reaches it
    /// (Glow's data-dependent initialisation).
    pub fn initialize_actnorm(&mut self, x: Tensor<2>, context: Option<&Tensor<2>>) {
        let mut h = x;
        for layer in self.layers.iter_mut() {
            if let Layer::ActNorm(a) = layer {
                a.initialize(&h);
            }
            h = layer.forward(h, context).0.detach();
        }
    }

    /// A one-line description: the layer kinds in order (repeats counted), the parameter count.
    pub fn describe(&self) -> String {
        let mut runs: Vec<(&str, usize)> = Vec::new();
        for l in &self.layers {
            match runs.last_mut() {
                Some((name, count)) if *name == l.name() => *count += 1,
                _ => runs.push((l.name(), 1)),
            }
        }
        let kinds: Vec<String> = runs
            .iter()
            .map(|(n, c)| {
                if *c > 1 {
                    format!("{c} x {n}")
                } else {
                    n.to_string()
                }
            })
            .collect();
        format!(
            "flow on R^{} [{}], {} parameters{}",
            self.dim,
            kinds.join(", "),
            self.num_params(),
            if self.context > 0 {
                format!(", context {}", self.context)
            } else {
                String::new()
            }
        )
    }
}
