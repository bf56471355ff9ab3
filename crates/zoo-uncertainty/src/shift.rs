//! Controlled graphs and distribution shifts for node-level out-of-distribution detection.
//!
//! * [`CsbmConfig`]: the contextual stochastic block model (Deshpande et al. 2018): `nodes` in
//!   `classes` equal blocks, features N(μ_c, I) with the class means at pairwise distance
//!   `mean_distance`, an edge inside a block with probability `p_in`, across with `p_out`.
//! * [`Shift`]: each a function of a graph and a generator, giving the shifted graph and the
//!   out-of-distribution nodes (after Stadler et al. 2021 and Fuchsgruber et al. 2024): a class
//!   left out, features replaced by far noise N(0, 9 I) or by near noise with each feature's own
//!   mean and standard deviation, nodes rewired to other classes (a homophily shift), and a
//!   breadth-first ball of nodes whose features are moved by one shared offset.

use crate::graph::Graph;
use rand::RngExt;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use zoo_energy::rng::normal_vec;
use zoo_energy::{Error, Result, ZooRng};

/// A contextual stochastic block model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsbmConfig {
    /// Nodes (split evenly over the blocks).
    pub nodes: usize,
    /// Blocks (classes).
    pub classes: usize,
    /// Feature dimension (at least `classes`: the means are scaled unit vectors).
    pub features: usize,
    /// Distance between any two class means (features have unit variance).
    pub mean_distance: f64,
    /// Edge probability inside a block.
    pub p_in: f64,
    /// Edge probability across blocks.
    pub p_out: f64,
}

impl Default for CsbmConfig {
    fn default() -> Self {
        Self {
            nodes: 1200,
            classes: 5,
            features: 16,
            mean_distance: 3.0,
            p_in: 0.03,
            p_out: 0.002,
        }
    }
}

impl CsbmConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        if self.classes < 2 || self.nodes < 2 * self.classes {
            return Err(Error::invalid(
                "csbm",
                "need at least 2 classes and 2 nodes per class",
            ));
        }
        if self.features < self.classes {
            return Err(Error::invalid(
                "features",
                "must be at least the number of classes",
            ));
        }
        if self.nodes > 100_000 {
            return Err(Error::invalid(
                "nodes",
                "at most 100000 (the generator visits every pair)",
            ));
        }
        for (name, p) in [("p_in", self.p_in), ("p_out", self.p_out)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(name, format!("must be in [0, 1], got {p}")));
            }
        }
        zoo_energy::check_positive("mean_distance", self.mean_distance)?;
        Ok(())
    }

    /// Draws a graph.
    pub fn sample(&self, rng: &mut ZooRng) -> Result<Graph> {
        self.check()?;
        let (n, c, d) = (self.nodes, self.classes, self.features);
        let mut labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
        labels.shuffle(rng);
        let scale = (self.mean_distance / 2f64.sqrt()) as f32;
        let mut features = normal_vec(rng, n * d);
        for (i, &l) in labels.iter().enumerate() {
            features[i * d + l as usize] += scale;
        }
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let p = if labels[i] == labels[j] {
                    self.p_in
                } else {
                    self.p_out
                };
                if rng.random::<f64>() < p {
                    edges.push((i as u32, j as u32));
                }
            }
        }
        Graph::new(n, &edges, features, labels, c)
    }
}

/// A distribution shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    /// The held-out classes are out of distribution (and absent from training).
    LeaveOutClass,
    /// Features of a random `fraction` of the nodes replaced by N(0, 9 I).
    FeatureFar,
    /// Features of a random `fraction` replaced by N(m_j, s_j²), each feature's own moments.
    FeatureNear,
    /// A random `fraction` of the nodes loses its edges and gets as many to nodes of other classes.
    Homophily,
    /// A breadth-first ball of `fraction` of the nodes, features moved by one offset s ⊙ ξ.
    Cluster,
}

impl Shift {
    /// Every shift, in table order.
    pub const ALL: [Shift; 5] = [
        Shift::LeaveOutClass,
        Shift::FeatureFar,
        Shift::FeatureNear,
        Shift::Homophily,
        Shift::Cluster,
    ];

    /// The name in configs, flags and tables.
    pub fn name(self) -> &'static str {
        match self {
            Shift::LeaveOutClass => "leave_out_class",
            Shift::FeatureFar => "feature_far",
            Shift::FeatureNear => "feature_near",
            Shift::Homophily => "homophily",
            Shift::Cluster => "cluster",
        }
    }

    /// The shift called `name`.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::UnknownName {
                kind: "shift",
                name: name.into(),
                known: Self::ALL.map(Shift::name).join(", "),
            })
    }
}

/// Settings shared by the shifts.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftConfig {
    /// Share of the nodes that are shifted (all but leave-out-class), in (0, 1).
    pub fraction: f64,
    /// The classes left out by [`Shift::LeaveOutClass`] (neither empty nor every class).
    pub held_out: Vec<u32>,
}

impl ShiftConfig {
    /// Checks the fraction and the held-out classes against `classes`.
    pub fn check(&self, classes: usize) -> Result<()> {
        if !(self.fraction > 0.0 && self.fraction < 1.0) {
            return Err(Error::invalid(
                "fraction",
                format!("must be in (0, 1), got {}", self.fraction),
            ));
        }
        if let Some(&c) = self.held_out.iter().find(|&&c| c as usize >= classes) {
            return Err(Error::invalid(
                "held_out",
                format!("class {c} does not exist ({classes} classes)"),
            ));
        }
        let mut kept = (0..classes as u32).filter(|c| !self.held_out.contains(c));
        if self.held_out.is_empty() || kept.next().is_none() {
            return Err(Error::invalid(
                "held_out",
                "the in-distribution class set would be empty (hold out at least one class and not all)",
            ));
        }
        Ok(())
    }
}

/// A graph after a shift: the whole graph as evaluated, and which nodes are out of distribution.
#[derive(Debug, Clone)]
pub struct Shifted {
    /// The evaluation graph.
    pub graph: Graph,
    /// `true` for the out-of-distribution nodes.
    pub ood: Vec<bool>,
    /// The classes a model may be trained on, in order (their index is the model's class).
    pub classes: Vec<u32>,
}

/// Applies `shift` to `graph`.
pub fn apply(rng: &mut ZooRng, shift: Shift, graph: &Graph, cfg: &ShiftConfig) -> Result<Shifted> {
    cfg.check(graph.classes)?;
    let n = graph.nodes();
    let count = ((cfg.fraction * n as f64).round() as usize).clamp(1, n - 1);
    let mut g = graph.clone();
    let mut ood = vec![false; n];
    let mut classes: Vec<u32> = (0..graph.classes as u32).collect();
    let pick = |rng: &mut ZooRng| {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(rng);
        idx.truncate(count);
        idx
    };
    match shift {
        Shift::LeaveOutClass => {
            classes.retain(|c| !cfg.held_out.contains(c));
            (0..n).for_each(|i| ood[i] = cfg.held_out.contains(&graph.labels[i]));
        }
        Shift::FeatureFar | Shift::FeatureNear => {
            let (mean, sd) = moments(graph);
            for i in pick(rng) {
                ood[i] = true;
                let noise = normal_vec(rng, g.dim);
                for (k, z) in noise.into_iter().enumerate() {
                    g.features[i * g.dim + k] = match shift {
                        Shift::FeatureFar => 3.0 * z,
                        _ => mean[k] + sd[k] * z,
                    };
                }
            }
        }
        Shift::Homophily => {
            let nodes = pick(rng);
            rewire(rng, &mut g, &nodes, &mut ood);
        }
        Shift::Cluster => {
            let (_, sd) = moments(graph);
            let offset: Vec<f32> = normal_vec(rng, g.dim)
                .iter()
                .zip(&sd)
                .map(|(z, s)| z * s)
                .collect();
            for i in bfs_ball(graph, rng.random_range(0..n), count) {
                ood[i] = true;
                g.features[i * g.dim..(i + 1) * g.dim]
                    .iter_mut()
                    .zip(&offset)
                    .for_each(|(x, o)| *x += o);
            }
        }
    }
    Ok(Shifted {
        graph: g,
        ood,
        classes,
    })
}

/// Each feature's mean and standard deviation over the nodes.
fn moments(graph: &Graph) -> (Vec<f32>, Vec<f32>) {
    let (n, d) = (graph.nodes() as f64, graph.dim);
    let mut sums = vec![(0.0f64, 0.0f64); d];
    for x in graph.features.chunks(d) {
        x.iter()
            .zip(&mut sums)
            .for_each(|(&v, s)| *s = (s.0 + v as f64, s.1 + (v as f64).powi(2)));
    }
    sums.iter()
        .map(|&(s, q)| {
            (
                (s / n) as f32,
                ((q / n - (s / n).powi(2)).max(0.0).sqrt()) as f32,
            )
        })
        .unzip()
}

/// Removes the edges of `nodes` and gives each as many edges (at least one) to random nodes of
/// other classes.
fn rewire(rng: &mut ZooRng, g: &mut Graph, nodes: &[usize], ood: &mut [bool]) {
    let n = g.nodes();
    for &i in nodes {
        ood[i] = true;
        let old = std::mem::take(&mut g.neighbours[i]);
        for &j in &old {
            g.neighbours[j as usize].retain(|&k| k as usize != i);
        }
        let (mut added, mut tries) = (0, 0);
        while added < old.len().max(1) && tries < 100 * n {
            tries += 1;
            let j = rng.random_range(0..n);
            if g.labels[j] != g.labels[i] && !g.neighbours[i].contains(&(j as u32)) {
                g.neighbours[i].push(j as u32);
                g.neighbours[j].push(i as u32);
                added += 1;
            }
        }
    }
    g.neighbours.iter_mut().for_each(|v| v.sort_unstable());
}

/// The first `count` nodes of a breadth-first search from `start` (restarting from unvisited
/// nodes when its component is exhausted).
fn bfs_ball(graph: &Graph, start: usize, count: usize) -> Vec<usize> {
    let n = graph.nodes();
    let mut seen = vec![false; n];
    let mut out = Vec::with_capacity(count);
    let mut queue = VecDeque::from([start]);
    seen[start] = true;
    let mut next_root = 0;
    while out.len() < count {
        let Some(i) = queue.pop_front() else {
            while seen[next_root] {
                next_root += 1;
            }
            seen[next_root] = true;
            queue.push_back(next_root);
            continue;
        };
        out.push(i);
        for &j in &graph.neighbours[i] {
            if !std::mem::replace(&mut seen[j as usize], true) {
                queue.push_back(j as usize);
            }
        }
    }
    out
}
