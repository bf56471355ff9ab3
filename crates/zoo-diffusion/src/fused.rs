//! A fused host trainer for [`MlpScore`] by denoising score matching: the same minibatches,
//! noise and loss as [`crate::fit_dsm`], with the forward pass, the hand-written backward pass and
//! Adam on `f32` buffers ([`zoo_neural::kernels::HostMlp`], [`HostAdam`]), blocks of rows in
//! parallel (rayon), no autodiff tape. With s = -net([x, log sigma]) / sigma the loss
//! |sigma s + eps|^2 / 2 is |eps - net|^2 / 2, whose gradient in the output is (net - eps) / B.

use crate::net::{DsmReport, DsmTrainConfig, MlpScore};
use crate::sde::Sde;
use burn::prelude::*;
use rand::RngExt;
use rayon::prelude::*;
use zoo_energy::rng::normal_vec;
use zoo_energy::tensor::{check_batch, host_checked};
use zoo_energy::{Result, ZooRng};
use zoo_neural::kernels::{HostAdam, HostMlp};
use zoo_train::{Checkpoint, Trainable, check_value};

/// Loss and gradients of one block: `input` rows [x~, log sigma], `eps` the noise, `weight`
/// the per-row factor lambda / sigma^2.
fn block(
    mlp: &HostMlp,
    input: &[f32],
    eps: &[f32],
    weight: &[f32],
    d: usize,
    scale: f32,
) -> (f64, Vec<Vec<f32>>) {
    let m = eps.len() / d;
    let (out, tape) = mlp.forward(input, m);
    let mut loss = 0.0f64;
    let delta: Vec<f32> = out
        .iter()
        .zip(eps)
        .enumerate()
        .map(|(k, (o, e))| {
            let w = weight[k / d];
            loss += 0.5 * f64::from(w) * f64::from(o - e).powi(2);
            (o - e) * scale * w
        })
        .collect();
    let mut grads = mlp.zero_grads();
    mlp.backward(&tape, delta, &mut grads, m);
    (loss * f64::from(scale), grads)
}

/// The fused trainer's state: host weights, their Adam moments, and a network of the same
/// structure that checkpoints write the weights into. `noise` draws one row's (alpha, sigma,
/// weight factor lambda / sigma^2).
struct FusedDsmRun<'a, F> {
    mlp: HostMlp,
    adam: HostAdam,
    template: MlpScore,
    input: Vec<f32>,
    data: &'a [f32],
    d: usize,
    cfg: &'a DsmTrainConfig,
    noise: F,
}

impl<F: FnMut(&mut ZooRng) -> (f64, f64, f64)> Trainable for FusedDsmRun<'_, F> {
    type Log = f64;

    fn step(&mut self, rng: &mut ZooRng, it: usize) -> Result<f64> {
        let (b, d, data) = (self.cfg.batch_size, self.d, self.data);
        let idx = zoo_train::minibatch_indices(rng, data.len() / d, b);
        let coefs: Vec<(f64, f64, f64)> = (0..b).map(|_| (self.noise)(rng)).collect();
        let weight: Vec<f32> = coefs.iter().map(|c| c.2 as f32).collect();
        let eps = normal_vec(rng, b * d);
        for r in 0..b {
            let (alpha, sigma, _) = coefs[r];
            let row = &mut self.input[r * (d + 1)..(r + 1) * (d + 1)];
            for j in 0..d {
                row[j] = (alpha * f64::from(data[idx[r] * d + j])
                    + sigma * f64::from(eps[r * d + j])) as f32;
            }
            row[d] = sigma.ln() as f32;
        }
        let rows = b.div_ceil(rayon::current_num_threads()).clamp(32, 256);
        let (mlp, scale) = (&self.mlp, 1.0 / b as f32);
        let parts: Vec<(f64, Vec<Vec<f32>>)> = self
            .input
            .par_chunks(rows * (d + 1))
            .zip(eps.par_chunks(rows * d))
            .zip(weight.par_chunks(rows))
            .map(|((x, e), w)| block(mlp, x, e, w, d, scale))
            .collect();
        let mut grads = self.adam.zero_grads();
        let mut loss = 0.0;
        for (l, g) in parts {
            loss += l;
            for (acc, part) in grads.iter_mut().zip(g) {
                for (a, p) in acc.iter_mut().zip(part) {
                    *a += p;
                }
            }
        }
        check_value(it, "denoising score-matching loss", loss, f64::INFINITY)?;
        if let Some(g) = grads.iter().flatten().find(|g| !g.is_finite()) {
            check_value(it, "gradient", f64::from(*g), f64::INFINITY)?;
        }
        let (lr, clip) = (self.cfg.learning_rate, self.cfg.grad_clip);
        self.adam
            .step(self.mlp.parameters_mut(), &mut grads, lr, clip);
        Ok(loss)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        let mut net = self.template.clone();
        self.mlp.write_into(&mut net.net.layers);
        // Writing host weights back makes fresh parameters: give them their stable ids again.
        checkpoint.put_module("net", &zoo_train::stable_ids(net, "net"))?;
        checkpoint.put_json("adam", &self.adam)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let net = checkpoint.module("net", self.template.clone())?;
        self.mlp = HostMlp::from_mlp(&net.net);
        self.adam = checkpoint.json("adam")?;
        self.template = net;
        Ok(())
    }
}

fn train_fused_with(
    rng: &mut ZooRng,
    net: &mut MlpScore,
    data: &[f32],
    d: usize,
    cfg: &DsmTrainConfig,
    noise: impl FnMut(&mut ZooRng) -> (f64, f64, f64),
) -> Result<DsmReport> {
    cfg.check()?;
    let mlp = HostMlp::from_mlp(&net.net);
    let mut run = FusedDsmRun {
        adam: HostAdam::new(mlp.parameter_sizes()),
        mlp,
        template: zoo_train::stable_ids(net.clone(), "net"),
        input: vec![0f32; cfg.batch_size * (d + 1)],
        data,
        d,
        cfg,
        noise,
    };
    let outcome = zoo_train::train(rng, &mut run, &cfg.loop_config(false, "dsm"));
    *net = run.template;
    run.mlp.write_into(&mut net.net.layers);
    outcome.map(DsmReport::from)
}

/// [`crate::fit_dsm`] for the noise-predicting MLP on a CPU backend, fused: the same draws from
/// `rng` (rows, times, noise) in the same order, so the two agree to rounding.
pub fn fit_dsm_fused(
    rng: &mut ZooRng,
    net: &mut MlpScore,
    sde: &Sde,
    data: &Tensor<2>,
    cfg: &DsmTrainConfig,
) -> Result<DsmReport> {
    sde.check()?;
    let d = net.net.output_width();
    check_batch("training data", data, d)?;
    let host = host_checked("training data", data)?;
    let t_min = sde.t_min();
    let sde = *sde;
    let weighting = cfg.weighting;
    train_fused_with(rng, net, &host, d, cfg, move |rng| {
        let t = rng.random_range(t_min..1.0);
        let (alpha, sigma) = sde.marginal(t);
        (alpha, sigma, weighting.factor(&sde, t))
    })
}
