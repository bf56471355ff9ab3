//! A two-layer graph convolutional network (Kipf & Welling 2017, eq. 9):
//! Z = Â ReLU(Â X W₁ + b₁) W₂ + b₂ with Â = D̃^(-1/2) (A + I) D̃^(-1/2), trained for node
//! classification by full-batch Adam on the cross-entropy of the labelled nodes, with dropout on
//! the input features and the hidden layer and an L2 penalty on W₁ (the paper's settings:
//! 5e-4, dropout 0.5, learning rate 0.01, 200 epochs), through the one training loop.
//!
//! Both the sparse features and Â act as gathers and scatter-adds (`select`, `select_assign`),
//! so one epoch costs O(nonzeros · hidden), and burn's first-order autodiff differentiates them.
//! "Run without edges" is the same network with Â = I (an MLP on the features), as GEBM needs.

use crate::graph::{Graph, SparseOp};
use burn::nn::Linear;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::log_softmax;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::{Error, Result, ZooRng, check_count, check_positive};
use zoo_neural::nn::{linear_from_host, linear_init};
use zoo_train::{Checkpoint, LoopConfig, OptimizerConfig, Trainable, check_value};

/// Settings of the GCN and its training (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcnConfig {
    /// Hidden width (the penultimate embedding).
    pub hidden: usize,
    /// Dropout probability on the input features and the hidden layer.
    pub dropout: f64,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// L2 penalty on the first layer's weights, (λ/2) ‖W₁‖².
    pub weight_decay: f64,
    /// Full-batch Adam steps.
    pub epochs: usize,
}

impl Default for GcnConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            dropout: 0.5,
            learning_rate: 0.01,
            weight_decay: 5e-4,
            epochs: 200,
        }
    }
}

impl GcnConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("hidden", self.hidden)?;
        check_count("epochs", self.epochs)?;
        check_positive("learning_rate", self.learning_rate)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid("weight_decay", "must be finite and >= 0"));
        }
        Ok(())
    }
}

/// The network: two linear maps, each followed by a propagation.
#[derive(Module, Debug)]
pub struct Gcn {
    /// X → hidden.
    pub input: Linear,
    /// hidden → classes.
    pub output: Linear,
}

/// A graph on a device: the features' nonzeros and one propagation operator.
#[derive(Debug, Clone)]
pub struct GraphTensors {
    nodes: usize,
    feature_rows: Tensor<1, Int>,
    feature_cols: Tensor<1, Int>,
    feature_values: Tensor<1>,
    op: Option<OpTensors>,
}

#[derive(Debug, Clone)]
struct OpTensors {
    rows: Tensor<1, Int>,
    cols: Tensor<1, Int>,
    weights: Tensor<2>,
}

fn ints(values: impl Iterator<Item = usize>, device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.map(|x| x as i64).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

impl GraphTensors {
    /// The features of `graph` and `op` (`None`: no propagation, the network without edges).
    pub fn new(graph: &Graph, op: Option<&SparseOp>, device: &Device) -> Self {
        let nonzero: Vec<(usize, f32)> = graph
            .features
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(k, &v)| (k, v))
            .collect();
        let dim = graph.dim;
        let values: Vec<f32> = nonzero.iter().map(|p| p.1).collect();
        let op = op.map(|op| OpTensors {
            rows: ints(op.rows.iter().map(|&r| r as usize), device),
            cols: ints(op.cols.iter().map(|&c| c as usize), device),
            weights: Tensor::from_data(
                TensorData::new(op.weights.clone(), [op.weights.len(), 1]),
                device,
            ),
        });
        Self {
            nodes: graph.nodes(),
            feature_rows: ints(nonzero.iter().map(|p| p.0 / dim), device),
            feature_cols: ints(nonzero.iter().map(|p| p.0 % dim), device),
            feature_values: Tensor::from_data(
                TensorData::new(values.clone(), [values.len()]),
                device,
            ),
            op,
        }
    }

    /// The same tensors with autodiff on.
    fn autodiff(&self) -> Self {
        Self {
            nodes: self.nodes,
            feature_rows: self.feature_rows.clone().autodiff(),
            feature_cols: self.feature_cols.clone().autodiff(),
            feature_values: self.feature_values.clone().autodiff(),
            op: self.op.as_ref().map(|op| OpTensors {
                rows: op.rows.clone().autodiff(),
                cols: op.cols.clone().autodiff(),
                weights: op.weights.clone().autodiff(),
            }),
        }
    }

    /// Â h (h itself without an operator).
    pub fn propagate(&self, h: Tensor<2>) -> Tensor<2> {
        let Some(op) = &self.op else { return h };
        let [_, k] = h.dims();
        let messages = h.clone().select(0, op.cols.clone()) * op.weights.clone();
        Tensor::zeros([self.nodes, k], &h.device()).select_assign(
            0,
            op.rows.clone(),
            messages,
            IndexingUpdateOp::Add,
        )
    }

    /// X W for the sparse X (its values scaled by `keep`, the input dropout mask, if given).
    fn features_times(&self, w: Tensor<2>, keep: Option<Tensor<1>>) -> Tensor<2> {
        let [_, k] = w.dims();
        let values = match keep {
            Some(mask) => self.feature_values.clone() * mask,
            None => self.feature_values.clone(),
        };
        let rows = w.clone().select(0, self.feature_cols.clone()) * values.unsqueeze_dim(1);
        Tensor::zeros([self.nodes, k], &w.device()).select_assign(
            0,
            self.feature_rows.clone(),
            rows,
            IndexingUpdateOp::Add,
        )
    }
}

/// Dropout masks (kept entries scaled by 1/(1 − p)), drawn from the run's generator.
struct Masks {
    input: Tensor<1>,
    hidden: Tensor<2>,
}

impl Gcn {
    /// A network `dim → hidden → classes` (PyTorch's initialisation, from `rng`).
    pub fn new(
        rng: &mut ZooRng,
        dim: usize,
        hidden: usize,
        classes: usize,
        device: &Device,
    ) -> Result<Self> {
        check_count("hidden", hidden)?;
        let layer = |rng: &mut ZooRng, a, b| {
            let (w, bias) = linear_init(rng, a, b);
            linear_from_host(w, bias, device)
        };
        Ok(Self {
            input: layer(rng, dim, hidden),
            output: layer(rng, hidden, classes),
        })
    }

    /// The penultimate embedding (after the ReLU) and the logits of every node.
    fn forward(&self, g: &GraphTensors, masks: Option<&Masks>) -> (Tensor<2>, Tensor<2>) {
        let xw = g.features_times(self.input.weight.val(), masks.map(|m| m.input.clone()));
        let bias = self
            .input
            .bias
            .as_ref()
            .expect("bias")
            .val()
            .unsqueeze_dim(0);
        let h = burn::tensor::activation::relu(g.propagate(xw) + bias);
        let dropped = match masks {
            Some(m) => h.clone() * m.hidden.clone(),
            None => h.clone(),
        };
        let b2 = self
            .output
            .bias
            .as_ref()
            .expect("bias")
            .val()
            .unsqueeze_dim(0);
        let logits = g.propagate(dropped.matmul(self.output.weight.val())) + b2;
        (h, logits)
    }

    /// Embeddings `[nodes x hidden]` and logits `[nodes x classes]` on the host (no dropout).
    pub fn embed(&self, g: &GraphTensors) -> (Vec<f64>, Vec<f64>) {
        let (h, l) = self.valid().forward(g, None);
        let host = |t: Tensor<2>| {
            zoo_energy::tensor::to_host2(&t)
                .into_iter()
                .map(f64::from)
                .collect()
        };
        (host(h), host(l))
    }
}

/// Trains `gcn` (on an autodiff device) on the labelled nodes `train` (node, class) of `graph`.
/// Returns the training loss of every epoch.
pub fn fit(
    rng: &mut ZooRng,
    gcn: &mut Gcn,
    graph: &GraphTensors,
    train: &[(usize, usize)],
    classes: usize,
    cfg: &GcnConfig,
) -> Result<Vec<f64>> {
    cfg.check()?;
    if train.is_empty() {
        return Err(Error::invalid("labels", "no labelled training node"));
    }
    let device = gcn.input.weight.val().device();
    let plain = device.clone().without_autodiff();
    let mut one_hot = vec![0.0f32; train.len() * classes];
    train
        .iter()
        .enumerate()
        .for_each(|(k, &(_, c))| one_hot[k * classes + c] = 1.0);
    let adam = OptimizerConfig::adam();
    let mut run = GcnRun {
        gcn: zoo_train::stable_ids(gcn.clone(), "gcn"),
        optim: adam.build(),
        adam,
        graph: graph.autodiff(),
        nodes: ints(train.iter().map(|p| p.0), &plain).autodiff(),
        one_hot: Tensor::<2>::from_data(TensorData::new(one_hot, [train.len(), classes]), &plain)
            .autodiff(),
        cfg,
        plain,
    };
    let trained = zoo_train::train(
        rng,
        &mut run,
        &LoopConfig {
            label: "gcn".into(),
            ..LoopConfig::new(cfg.epochs)
        },
    );
    *gcn = run.gcn;
    Ok(trained?.history)
}

struct GcnRun<'a> {
    gcn: Gcn,
    optim: ModuleOptimizer,
    adam: OptimizerConfig,
    graph: GraphTensors,
    nodes: Tensor<1, Int>,
    one_hot: Tensor<2>,
    cfg: &'a GcnConfig,
    plain: Device,
}

impl GcnRun<'_> {
    fn masks(&self, rng: &mut ZooRng) -> Masks {
        let p = self.cfg.dropout;
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    if rng.random::<f64>() < p {
                        0.0
                    } else {
                        (1.0 / (1.0 - p)) as f32
                    }
                })
                .collect()
        };
        let nnz = self.graph.feature_values.dims()[0];
        let hidden = self.cfg.hidden;
        let n = self.graph.nodes;
        let input = Tensor::<1>::from_data(TensorData::new(draw(nnz), [nnz]), &self.plain);
        let h = Tensor::<2>::from_data(TensorData::new(draw(n * hidden), [n, hidden]), &self.plain);
        Masks {
            input: input.autodiff(),
            hidden: h.autodiff(),
        }
    }
}

impl Trainable for GcnRun<'_> {
    type Log = f64;

    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<f64> {
        let masks = self.masks(rng);
        let (_, logits) = self.gcn.forward(&self.graph, Some(&masks));
        let log_p = log_softmax(logits.select(0, self.nodes.clone()), 1);
        let m = self.one_hot.dims()[0] as f64;
        let ce = (log_p * self.one_hot.clone()).sum().neg().div_scalar(m);
        let w = self.gcn.input.weight.val();
        let loss = ce
            + (w.clone() * w)
                .sum()
                .mul_scalar(0.5 * self.cfg.weight_decay);
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_value(iteration, "cross-entropy", value, f64::INFINITY)?;
        let mut grads = loss.backward();
        let g = GradientsParams::from_module(&mut grads, &self.gcn);
        self.gcn = self.optim.step(self.cfg.learning_rate, self.gcn.clone(), g);
        Ok(value)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("gcn", &self.gcn)?;
        checkpoint.put_optimizer("optimizer", &self.optim)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.gcn = checkpoint.module("gcn", self.gcn.clone())?;
        self.optim = checkpoint.optimizer("optimizer", self.adam.build())?;
        Ok(())
    }
}
