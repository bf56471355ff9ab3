//! Flow layers. Every layer maps the data side to the latent side (`forward`, the normalising
//! direction, as in nflows and zuko) and back (`inverse`), and returns log|det J| of the map it
//! applied, per row. Nothing is hidden: a layer is its parameters and these two functions.
//!
//! | layer | forward x -> z | reference |
//! |---|---|---|
//! | [`Coupling`] additive | z_b = x_b + t(x_a) | NICE, Dinh et al. 2014 |
//! | [`Coupling`] affine | z_b = x_b exp(s(x_a)) + t(x_a) | RealNVP, Dinh et al. 2017 |
//! | [`Coupling`] spline | z_b = RQS(x_b; theta(x_a)) | Neural spline flows, Durkan et al. 2019 |
//! | [`Autoregressive`] | z_i = x_i exp(s_i(x_<i)) + t_i(x_<i) (MADE masks) | MAF, Papamakarios et al. 2017 |
//! | [`Autoregressive`] inverted | the same map run backwards | IAF, Kingma et al. 2016 |
//! | [`ActNorm`] | z = (x - loc) exp(-log_scale), data-dependent init | Glow, Kingma & Dhariwal 2018 |
//! | [`LuLinear`] | z = P L U x | Glow's LU-parameterised 1x1 convolution |
//! | [`Permutation`] | z = x[perm] | fixed |
//!
//! Conditioners take the context (the conditioning input) concatenated to their input.

use crate::elementwise::Elementwise;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use zoo_energy::ZooRng;
use zoo_neural::Activation;
use zoo_neural::nn::{Mlp, linear_from_host, linear_init};

/// `cat([x, context])` along the feature axis (or `x` alone).
fn with_context(x: Tensor<2>, context: Option<&Tensor<2>>) -> Tensor<2> {
    match context {
        Some(c) => Tensor::cat(vec![x, c.clone()], 1),
        None => x,
    }
}

/// A coupling layer: the coordinates split into a conditioning block `a` and a transformed block
/// `b`; `b` goes through an element-wise map whose parameters an MLP computes from `a` (and the
/// context). Inverse and log|det| cost one conditioner pass in both directions.
#[derive(Module, Debug)]
pub struct Coupling {
    /// The conditioner `[|a| + context] -> [|b| * per_dim]`.
    pub net: Mlp,
    /// The element-wise map.
    #[module(skip)]
    pub map: Elementwise,
    /// Coordinates `0..split` form one block, `split..dim` the other.
    #[module(skip)]
    pub split: usize,
    /// Whether the first block is the conditioning one.
    #[module(skip)]
    pub condition_on_first: bool,
}

/// The conditioner network of a coupling or autoregressive layer: hidden widths, activation,
/// and whether the output layer starts at zero (each layer then starts as the identity).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditioner<'a> {
    /// Hidden widths.
    pub hidden: &'a [usize],
    /// The hidden activation.
    pub activation: Activation,
    /// Zero-initialise the output layer.
    pub zero_init: bool,
}

impl Coupling {
    /// A coupling on `dim` coordinates (plus `context` inputs to the conditioner).
    pub fn new(
        rng: &mut ZooRng,
        dim: usize,
        context: usize,
        condition_on_first: bool,
        map: Elementwise,
        net: &Conditioner,
        device: &Device,
    ) -> zoo_energy::Result<Self> {
        let Conditioner {
            hidden,
            activation,
            zero_init,
        } = *net;
        let split = dim / 2;
        let (cond, other) = if condition_on_first {
            (split, dim - split)
        } else {
            (dim - split, split)
        };
        let mut widths = vec![cond + context];
        widths.extend_from_slice(hidden);
        widths.push(other * map.per_dim());
        Ok(Self {
            net: Mlp::new(rng, &widths, activation, zero_init, device)?,
            map,
            split,
            condition_on_first,
        })
    }

    fn apply(
        &self,
        x: Tensor<2>,
        context: Option<&Tensor<2>>,
        inverse: bool,
    ) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let first = x.clone().slice([0..n, 0..self.split]);
        let second = x.slice([0..n, self.split..d]);
        let (a, b) = if self.condition_on_first {
            (first, second)
        } else {
            (second, first)
        };
        let m = b.dims()[1];
        let params =
            self.net
                .forward(with_context(a.clone(), context))
                .reshape([n, m, self.map.per_dim()]);
        let (b, log_det) = self.map.apply(b, params, inverse);
        let out = if self.condition_on_first {
            Tensor::cat(vec![a, b], 1)
        } else {
            Tensor::cat(vec![b, a], 1)
        };
        (out, log_det)
    }
}

/// An MLP whose weights are multiplied by fixed binary masks (MADE; Germain et al. 2015) so that
/// output `i` depends only on inputs `< i` (in the layer's ordering) and on the context.
#[derive(Module, Debug)]
pub struct MaskedMlp {
    /// The layers.
    pub layers: Vec<Linear>,
    /// One mask per layer, the shape of its weight (constants: not trained, not saved).
    pub masks: Vec<Tensor<2>>,
    /// Activation between layers.
    #[module(skip)]
    pub activation: Activation,
}

impl MaskedMlp {
    /// MADE over `dim` ordered inputs plus `context` free inputs, `per_dim` outputs per input
    /// (dimension-major), hidden widths `hidden`. Degrees: input i has degree i + 1, context 0,
    /// hidden unit u degree u mod dim; a hidden unit sees inputs of degree <= its own, an output
    /// of coordinate i sees hidden units of degree < i + 1.
    pub fn new(
        rng: &mut ZooRng,
        dim: usize,
        context: usize,
        per_dim: usize,
        net: &Conditioner,
        device: &Device,
    ) -> zoo_energy::Result<Self> {
        let Conditioner {
            hidden,
            activation,
            zero_init,
        } = *net;
        if hidden.is_empty() || hidden.contains(&0) {
            return Err(zoo_energy::Error::invalid(
                "hidden",
                format!("MADE needs at least one hidden layer, all widths >= 1; got {hidden:?}"),
            ));
        }
        let mut degrees: Vec<usize> = (1..=dim).chain(std::iter::repeat_n(0, context)).collect();
        let mut layers = Vec::new();
        let mut masks = Vec::new();
        let widths: Vec<usize> = hidden.iter().copied().chain([dim * per_dim]).collect();
        for (l, &width) in widths.iter().enumerate() {
            let output = l == widths.len() - 1;
            let next: Vec<usize> = if output {
                (0..dim * per_dim).map(|u| u / per_dim + 1).collect()
            } else {
                (0..width).map(|u| u % dim.max(1)).collect()
            };
            let mut mask = vec![0f32; degrees.len() * width];
            for (i, &din) in degrees.iter().enumerate() {
                for (j, &dout) in next.iter().enumerate() {
                    let connect = if output { dout > din } else { dout >= din };
                    mask[i * width + j] = if connect { 1.0 } else { 0.0 };
                }
            }
            let (mut w, mut b) = linear_init(rng, degrees.len(), width);
            if output && zero_init {
                w.iter_mut().for_each(|v| *v = 0.0);
                b.iter_mut().for_each(|v| *v = 0.0);
            }
            layers.push(linear_from_host(w, b, device));
            masks.push(Tensor::from_data(
                TensorData::new(mask, [degrees.len(), width]),
                device,
            ));
            degrees = next;
        }
        Ok(Self {
            layers,
            masks,
            activation,
        })
    }

    /// The masked forward pass.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let count = self.layers.len();
        let mut h = x;
        for (l, (layer, mask)) in self.layers.iter().zip(&self.masks).enumerate() {
            let w = layer.weight.val() * mask.clone();
            let bias = layer.bias.as_ref().expect("MADE layers have a bias").val();
            h = h.matmul(w) + bias.unsqueeze_dim(0);
            if l + 1 < count {
                h = self.activation.value(h);
            }
        }
        h
    }
}

/// A masked autoregressive layer: z_i = tau(x_i; theta_i(x_<i)) with MADE computing every
/// theta_i in one pass. MAF (density in one pass, sampling in `dim` passes) or, inverted, IAF
/// (sampling in one pass, density in `dim` passes).
#[derive(Module, Debug)]
pub struct Autoregressive {
    /// The masked conditioner.
    pub net: MaskedMlp,
    /// The element-wise map.
    #[module(skip)]
    pub map: Elementwise,
    /// IAF: the map is run backwards.
    #[module(skip)]
    pub inverted: bool,
}

impl Autoregressive {
    /// The one-pass direction: every coordinate's parameters from the known input.
    fn parallel(&self, x: Tensor<2>, context: Option<&Tensor<2>>) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let params =
            self.net
                .forward(with_context(x.clone(), context))
                .reshape([n, d, self.map.per_dim()]);
        self.map.apply(x, params, false)
    }

    /// The sequential direction: `dim` passes, pass i fixes coordinate i.
    fn sequential(&self, z: Tensor<2>, context: Option<&Tensor<2>>) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = z.dims();
        let mut x = Tensor::zeros([n, d], &z.device());
        let mut log_det = Tensor::zeros([n], &z.device());
        for _ in 0..d {
            let params = self.net.forward(with_context(x.clone(), context)).reshape([
                n,
                d,
                self.map.per_dim(),
            ]);
            let (next, ld) = self.map.apply(z.clone(), params, true);
            x = next;
            log_det = ld;
        }
        (x, log_det)
    }
}

/// Activation normalisation (Glow): an affine map per coordinate whose parameters start at the
/// mean and standard deviation of the first batch (data-dependent initialisation), so that the
/// layer's output starts standardised.
#[derive(Module, Debug)]
pub struct ActNorm {
    /// Location `[d]`.
    pub loc: Param<Tensor<1>>,
    /// log of the scale `[d]`.
    pub log_scale: Param<Tensor<1>>,
}

impl ActNorm {
    /// The identity map on `dim` coordinates.
    pub fn new(dim: usize, device: &Device) -> Self {
        Self {
            loc: Param::from_tensor(Tensor::zeros([dim], device)),
            log_scale: Param::from_tensor(Tensor::zeros([dim], device)),
        }
    }

    /// Sets loc and scale to the mean and standard deviation (floored at 1e-6) of `x: [n, d]`.
    pub fn initialize(&mut self, x: &Tensor<2>) {
        let [n, d] = x.dims();
        let x = x.clone().without_autodiff();
        let mean: Tensor<1> = x.clone().mean_dim(0).reshape([d]);
        let var: Tensor<1> = (x - mean.clone().unsqueeze_dim(0))
            .square()
            .sum_dim(0)
            .div_scalar(n.saturating_sub(1).max(1) as f64)
            .reshape([d]);
        let log_scale = var.clamp_min(1e-12).log().mul_scalar(0.5);
        let device = self.loc.device();
        self.loc = Param::from_tensor(Tensor::from_inner(mean).to_device(&device));
        self.log_scale = Param::from_tensor(Tensor::from_inner(log_scale).to_device(&device));
    }

    fn apply(&self, x: Tensor<2>, inverse: bool) -> (Tensor<2>, Tensor<1>) {
        let n = x.dims()[0];
        let loc = self.loc.val().unsqueeze_dim(0);
        let log_scale = self.log_scale.val();
        let total: Tensor<1> = log_scale.clone().sum().expand([n]);
        let log_scale = log_scale.unsqueeze_dim(0);
        if inverse {
            (x * log_scale.exp() + loc, total)
        } else {
            ((x - loc) * log_scale.neg().exp(), total.neg())
        }
    }
}

/// An invertible linear map z = P L U x (Kingma & Dhariwal 2018): P a fixed permutation, L unit
/// lower triangular, U upper triangular with diagonal exp(log_diag); log|det| = sum(log_diag).
/// Both directions are plain matrix products: L^-1 and U^-1 come from the exact finite Neumann
/// product (I + N)^-1 = prod_j (I + (-N)^(2^j)) for nilpotent N, so they are differentiable.
#[derive(Module, Debug)]
pub struct LuLinear {
    /// Strictly lower part of L (the rest is ignored).
    pub lower: Param<Tensor<2>>,
    /// Strictly upper part of U (the rest is ignored).
    pub upper: Param<Tensor<2>>,
    /// log of U's diagonal.
    pub log_diag: Param<Tensor<1>>,
    /// The permutation P.
    #[module(skip)]
    pub perm: Vec<usize>,
}

/// (I + N)^-1 for a strictly triangular `N` `[d, d]`, by the finite product above.
fn unit_triangular_inverse(strict: Tensor<2>) -> Tensor<2> {
    let d = strict.dims()[0];
    let eye = Tensor::<2>::eye(d, &strict.device());
    let mut power = strict.neg();
    let mut inverse = eye.clone() + power.clone();
    let mut covered = 2;
    while covered < d {
        power = power.clone().matmul(power);
        inverse = inverse.matmul(eye.clone() + power.clone());
        covered *= 2;
    }
    inverse
}

impl LuLinear {
    /// P a random permutation from `rng`, L = U = I (the layer starts as a permutation).
    pub fn new(rng: &mut ZooRng, dim: usize, device: &Device) -> Self {
        Self {
            lower: Param::from_tensor(Tensor::zeros([dim, dim], device)),
            upper: Param::from_tensor(Tensor::zeros([dim, dim], device)),
            log_diag: Param::from_tensor(Tensor::zeros([dim], device)),
            perm: random_permutation(rng, dim),
        }
    }

    /// The matrix W = P L U `[d, d]` (for tests and inspection).
    pub fn matrix(&self) -> Tensor<2> {
        let (l, u) = (self.l(), self.u());
        let lu = l.matmul(u);
        let idx = index_tensor(&self.perm, &lu.device());
        lu.select(0, idx)
    }

    fn l(&self) -> Tensor<2> {
        let d = self.perm.len();
        self.lower.val().tril(-1) + Tensor::eye(d, &self.lower.device())
    }

    fn u(&self) -> Tensor<2> {
        let d = self.perm.len();
        let diag =
            Tensor::<2>::eye(d, &self.upper.device()) * self.log_diag.val().exp().unsqueeze_dim(0);
        self.upper.val().triu(1) + diag
    }

    fn apply(&self, x: Tensor<2>, inverse: bool) -> (Tensor<2>, Tensor<1>) {
        let n = x.dims()[0];
        let device = x.device();
        let total: Tensor<1> = self.log_diag.val().sum().expand([n]);
        if inverse {
            let v = x.select(1, index_tensor(&invert(&self.perm), &device));
            let l_inv = unit_triangular_inverse(self.lower.val().tril(-1));
            // U = D (I + D^-1 U_s)  =>  U^-1 = (I + D^-1 U_s)^-1 D^-1.
            let inv_diag = self.log_diag.val().neg().exp();
            let m = self.upper.val().triu(1) * inv_diag.clone().unsqueeze_dim(1);
            let u_inv = unit_triangular_inverse(m) * inv_diag.unsqueeze_dim(0);
            // x = U^-1 L^-1 v  (rows: v L^-T U^-T).
            let out = v.matmul(l_inv.transpose()).matmul(u_inv.transpose());
            (out, total.neg())
        } else {
            let lu = self.l().matmul(self.u());
            let v = x.matmul(lu.transpose());
            (v.select(1, index_tensor(&self.perm, &device)), total)
        }
    }
}

/// A fixed permutation of the coordinates (log|det| = 0).
#[derive(Module, Debug)]
pub struct Permutation {
    /// z_i = x_{perm[i]}.
    #[module(skip)]
    pub perm: Vec<usize>,
}

impl Permutation {
    /// The reversal, the usual choice between autoregressive layers.
    pub fn reverse(dim: usize) -> Self {
        Self {
            perm: (0..dim).rev().collect(),
        }
    }

    fn apply(&self, x: Tensor<2>, inverse: bool) -> (Tensor<2>, Tensor<1>) {
        let n = x.dims()[0];
        let device = x.device();
        let perm = if inverse {
            invert(&self.perm)
        } else {
            self.perm.clone()
        };
        (
            x.select(1, index_tensor(&perm, &device)),
            Tensor::zeros([n], &device),
        )
    }
}

fn random_permutation(rng: &mut ZooRng, dim: usize) -> Vec<usize> {
    use rand::RngExt;
    let mut perm: Vec<usize> = (0..dim).collect();
    for i in (1..dim).rev() {
        let j = rng.random_range(0..=i);
        perm.swap(i, j);
    }
    perm
}

fn invert(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

fn index_tensor(idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(values, [idx.len()]), device)
}

/// Any layer.
#[derive(Module, Debug)]
pub enum Layer {
    /// See [`Coupling`].
    Coupling(Coupling),
    /// See [`Autoregressive`].
    Autoregressive(Autoregressive),
    /// See [`ActNorm`].
    ActNorm(ActNorm),
    /// See [`LuLinear`].
    LuLinear(LuLinear),
    /// See [`Permutation`].
    Permutation(Permutation),
}

impl Layer {
    /// x -> (z, log|det dz/dx|) per row.
    pub fn forward(&self, x: Tensor<2>, context: Option<&Tensor<2>>) -> (Tensor<2>, Tensor<1>) {
        match self {
            Layer::Coupling(l) => l.apply(x, context, false),
            Layer::Autoregressive(l) if l.inverted => l.sequential(x, context),
            Layer::Autoregressive(l) => l.parallel(x, context),
            Layer::ActNorm(l) => l.apply(x, false),
            Layer::LuLinear(l) => l.apply(x, false),
            Layer::Permutation(l) => l.apply(x, false),
        }
    }

    /// z -> (x, log|det dx/dz|) per row.
    pub fn inverse(&self, z: Tensor<2>, context: Option<&Tensor<2>>) -> (Tensor<2>, Tensor<1>) {
        match self {
            Layer::Coupling(l) => l.apply(z, context, true),
            Layer::Autoregressive(l) if l.inverted => l.parallel(z, context),
            Layer::Autoregressive(l) => l.sequential(z, context),
            Layer::ActNorm(l) => l.apply(z, true),
            Layer::LuLinear(l) => l.apply(z, true),
            Layer::Permutation(l) => l.apply(z, true),
        }
    }

    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Layer::Coupling(l) => match l.map {
                Elementwise::Additive => "additive coupling",
                Elementwise::Affine { .. } => "affine coupling",
                Elementwise::Spline { .. } => "spline coupling",
            },
            Layer::Autoregressive(l) if l.inverted => "IAF",
            Layer::Autoregressive(_) => "MAF",
            Layer::ActNorm(_) => "actnorm",
            Layer::LuLinear(_) => "LU linear",
            Layer::Permutation(_) => "permutation",
        }
    }
}
