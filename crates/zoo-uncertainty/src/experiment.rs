//! The node-level out-of-distribution experiment: for every seed and shift, train a GCN
//! *inductively* (on the subgraph of the in-distribution nodes, `labels_per_class` labels per
//! class), evaluate it on the whole shifted graph, and rate every score of [`crate::gebm::SCORES`]
//! by AUROC and FPR at 95% TPR (out-of-distribution nodes against the unlabelled
//! in-distribution nodes).

use crate::gcn::{Gcn, GcnConfig, GraphTensors, fit};
use crate::gebm::{GebmConfig, Outputs, SCORES, scores};
use crate::graph::Graph;
use crate::scores::{argmax_rows, auroc, fpr_at_95_tpr};
use crate::shift::{Shift, ShiftConfig, Shifted, apply};
use rand::seq::SliceRandom;
use serde::Serialize;
use zoo_energy::{Error, Result, seeded};

/// Settings of [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct GraphExperimentConfig {
    /// One run per seed and shift.
    pub seeds: Vec<u64>,
    /// The shifts.
    pub shifts: Vec<Shift>,
    /// Fraction of shifted nodes, held-out classes.
    pub shift: ShiftConfig,
    /// Labelled training nodes per class.
    pub labels_per_class: usize,
    /// The network and its training.
    pub gcn: GcnConfig,
    /// GEBM and the energies.
    pub gebm: GebmConfig,
}

impl GraphExperimentConfig {
    /// The standard settings (10% of the nodes shifted, 20 labels per class, the GCN and GEBM
    /// defaults) for these seeds, shifts and held-out classes.
    pub fn new(seeds: Vec<u64>, shifts: Vec<Shift>, held_out: Vec<u32>) -> Self {
        Self {
            seeds,
            shifts,
            shift: ShiftConfig {
                fraction: 0.1,
                held_out,
            },
            labels_per_class: 20,
            gcn: GcnConfig::default(),
            gebm: GebmConfig::default(),
        }
    }

    /// Validates everything that does not need the graph, and the shift settings against it.
    pub fn check(&self, graph: &Graph) -> Result<()> {
        if self.seeds.is_empty() || self.shifts.is_empty() {
            return Err(Error::invalid(
                "seeds",
                "need at least one seed and one shift",
            ));
        }
        zoo_energy::check_count("labels_per_class", self.labels_per_class)?;
        self.gcn.check()?;
        self.gebm.check()?;
        self.shift.check(graph.classes)
    }
}

/// One shift's results over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ShiftResult {
    /// The shift.
    pub shift: Shift,
    /// Test accuracy on the in-distribution unlabelled nodes of the clean graph, per seed.
    pub accuracy: Vec<f64>,
    /// The same nodes' accuracy in the shifted graph (the shift reaches them through edges).
    pub accuracy_shifted: Vec<f64>,
    /// Out-of-distribution nodes, per seed.
    pub ood_nodes: Vec<usize>,
    /// AUROC per score (in [`SCORES`] order), per seed.
    pub auroc: Vec<Vec<f64>>,
    /// FPR at 95% TPR per score, per seed.
    pub fpr95: Vec<Vec<f64>>,
    /// The first seed's scores per score: (in-distribution, out-of-distribution) values.
    #[serde(skip)]
    pub first_scores: Vec<(Vec<f64>, Vec<f64>)>,
}

/// Runs every seed and shift on `graph` (`device`: where the GCN trains; gradients are turned on
/// here). `progress` is called after each run with a short line.
pub fn run(
    graph: &Graph,
    cfg: &GraphExperimentConfig,
    device: &burn::prelude::Device,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ShiftResult>> {
    cfg.check(graph)?;
    let mut results = Vec::new();
    for (s_index, &shift) in cfg.shifts.iter().enumerate() {
        let mut r = ShiftResult {
            shift,
            accuracy: vec![],
            accuracy_shifted: vec![],
            ood_nodes: vec![],
            auroc: vec![vec![]; SCORES.len()],
            fpr95: vec![vec![]; SCORES.len()],
            first_scores: vec![],
        };
        for &seed in &cfg.seeds {
            let one = run_one(
                graph,
                cfg,
                shift,
                seed.wrapping_mul(1000).wrapping_add(s_index as u64),
                device,
            )?;
            progress(&format!(
                "{} seed {seed}: accuracy {:.3}, GEBM AUROC {:.3}",
                shift.name(),
                one.accuracy,
                auroc(&one.scores[8].1, &one.scores[8].0)
            ));
            r.accuracy.push(one.accuracy);
            r.accuracy_shifted.push(one.accuracy_shifted);
            r.ood_nodes.push(one.scores[0].1.len());
            for (k, (id, ood)) in one.scores.iter().enumerate() {
                r.auroc[k].push(auroc(ood, id));
                r.fpr95[k].push(fpr_at_95_tpr(ood, id));
            }
            if r.first_scores.is_empty() {
                r.first_scores = one.scores;
            }
        }
        results.push(r);
    }
    Ok(results)
}

struct OneRun {
    accuracy: f64,
    accuracy_shifted: f64,
    /// Per score: (in-distribution test nodes, out-of-distribution nodes).
    scores: Vec<(Vec<f64>, Vec<f64>)>,
}

/// `labels_per_class` random in-distribution nodes of every in-distribution class: (node, the
/// network's class index).
fn training_nodes(
    rng: &mut zoo_energy::ZooRng,
    shifted: &Shifted,
    per_class: usize,
) -> Result<Vec<(usize, usize)>> {
    let g = &shifted.graph;
    let mut train = Vec::new();
    for (k, &c) in shifted.classes.iter().enumerate() {
        let mut nodes: Vec<usize> = (0..g.nodes())
            .filter(|&i| g.labels[i] == c && !shifted.ood[i])
            .collect();
        if nodes.len() < per_class + 1 {
            return Err(Error::invalid(
                "labels_per_class",
                format!(
                    "class {c} has {} in-distribution nodes, fewer than {} labels plus one test node",
                    nodes.len(),
                    per_class
                ),
            ));
        }
        nodes.shuffle(rng);
        train.extend(nodes[..per_class].iter().map(|&i| (i, k)));
    }
    train.sort_unstable();
    Ok(train)
}

fn run_one(
    graph: &Graph,
    cfg: &GraphExperimentConfig,
    shift: Shift,
    seed: u64,
    device: &burn::prelude::Device,
) -> Result<OneRun> {
    let mut rng = seeded(seed);
    let shifted = apply(&mut rng, shift, graph, &cfg.shift)?;
    let train = training_nodes(&mut rng, &shifted, cfg.labels_per_class)?;
    // Inductive: train on the clean subgraph of the in-distribution nodes.
    let id: Vec<bool> = shifted.ood.iter().map(|o| !o).collect();
    let (sub, old) = graph.induced(&id);
    let mut new_index = vec![usize::MAX; graph.nodes()];
    old.iter().enumerate().for_each(|(k, &i)| new_index[i] = k);
    let sub_train: Vec<(usize, usize)> = train.iter().map(|&(i, c)| (new_index[i], c)).collect();
    let classes = shifted.classes.len();
    let ad = device.clone().autodiff();
    let mut gcn = Gcn::new(&mut rng, graph.dim, cfg.gcn.hidden, classes, &ad)?;
    let sub_op = sub.gcn_operator();
    fit(
        &mut rng,
        &mut gcn,
        &GraphTensors::new(&sub, Some(&sub_op), device),
        &sub_train,
        classes,
        &cfg.gcn,
    )?;
    // Evaluate on the whole shifted graph, with and without edges.
    let g = &shifted.graph;
    let (hidden, logits) = gcn.embed(&GraphTensors::new(g, Some(&g.gcn_operator()), device));
    let (hidden_free, logits_free) = gcn.embed(&GraphTensors::new(g, None, device));
    let out = Outputs {
        hidden,
        logits,
        hidden_free,
        logits_free,
        width: cfg.gcn.hidden,
        classes,
    };
    let all = scores(&out, &train, &g.mean_operator(), &cfg.gebm)?;
    let mut is_train = vec![false; g.nodes()];
    train.iter().for_each(|&(i, _)| is_train[i] = true);
    let test: Vec<usize> = (0..g.nodes())
        .filter(|&i| !shifted.ood[i] && !is_train[i])
        .collect();
    let ood: Vec<usize> = (0..g.nodes()).filter(|&i| shifted.ood[i]).collect();
    let accuracy = |logits: &[f64]| {
        let predicted = argmax_rows(logits, classes);
        let correct = test
            .iter()
            .filter(|&&i| shifted.classes[predicted[i]] == g.labels[i])
            .count();
        correct as f64 / test.len() as f64
    };
    let (_, clean_logits) = gcn.embed(&GraphTensors::new(
        graph,
        Some(&graph.gcn_operator()),
        device,
    ));
    let pick = |s: &Vec<f64>, nodes: &[usize]| nodes.iter().map(|&i| s[i]).collect::<Vec<f64>>();
    Ok(OneRun {
        accuracy: accuracy(&clean_logits),
        accuracy_shifted: accuracy(&out.logits),
        scores: all
            .iter()
            .map(|s| (pick(s, &test), pick(s, &ood)))
            .collect(),
    })
}

/// Mean and sample standard deviation.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// The AUROC table (shift × score, mean ± sd over seeds) and the accuracies, as markdown.
pub fn markdown(title: &str, results: &[ShiftResult]) -> String {
    let mut s =
        format!("## {title}\n\n| shift | accuracy (clean) | accuracy (shifted) | OOD nodes |");
    SCORES
        .iter()
        .for_each(|(name, _)| s += &format!(" {name} |"));
    s += "\n|---|---|---|---|";
    SCORES.iter().for_each(|_| s += "---|");
    s += "\n";
    for r in results {
        let ((a, a_sd), (b, b_sd)) = (mean_sd(&r.accuracy), mean_sd(&r.accuracy_shifted));
        s += &format!(
            "| {} | {a:.3} ± {a_sd:.3} | {b:.3} ± {b_sd:.3} | {} |",
            r.shift.name(),
            r.ood_nodes[0]
        );
        let best = r
            .auroc
            .iter()
            .map(|v| mean_sd(v).0)
            .fold(f64::MIN, f64::max);
        for v in &r.auroc {
            let (m, sd) = mean_sd(v);
            let cell = format!("{m:.3} ± {sd:.3}");
            s += &if m == best {
                format!(" **{cell}** |")
            } else {
                format!(" {cell} |")
            };
        }
        s += "\n";
    }
    let mean_of = |k: usize| {
        results.iter().map(|r| mean_sd(&r.auroc[k]).0).sum::<f64>() / results.len() as f64
    };
    s += "| mean over shifts | | | |";
    (0..SCORES.len()).for_each(|k| s += &format!(" {:.3} |", mean_of(k)));
    s + "\n"
}

/// One CSV row per shift, score and seed:
/// `graph,shift,score,seed,auroc,fpr95,accuracy,accuracy_shifted`.
pub fn csv(graph: &str, seeds: &[u64], results: &[ShiftResult]) -> String {
    let mut s = String::from("graph,shift,score,seed,auroc,fpr95,accuracy,accuracy_shifted\n");
    for r in results {
        for (k, (name, _)) in SCORES.iter().enumerate() {
            for (j, seed) in seeds.iter().enumerate() {
                s += &format!(
                    "{graph},{},{name},{seed},{:.6},{:.6},{:.6},{:.6}\n",
                    r.shift.name(),
                    r.auroc[k][j],
                    r.fpr95[k][j],
                    r.accuracy[j],
                    r.accuracy_shifted[j]
                );
            }
        }
    }
    s
}
