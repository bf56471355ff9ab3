//! Attributed graphs for node classification, and the two sparse operators built on them:
//! the GCN's symmetric normalisation D̃^(-1/2) Ã D̃^(-1/2) (Kipf & Welling 2017) and the
//! random-walk matrix P = D̃⁻¹ Ã of label propagation (Zhou et al. 2004), both with self-loops
//! (Ã = A + I).

use zoo_energy::{Error, Result};

/// An undirected graph with node features and class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Neighbours of every node: symmetric, sorted, no duplicates, no self-loops.
    pub neighbours: Vec<Vec<u32>>,
    /// Features, `nodes x dim` row-major.
    pub features: Vec<f32>,
    /// Features per node.
    pub dim: usize,
    /// The class of every node, `< classes`.
    pub labels: Vec<u32>,
    /// Classes.
    pub classes: usize,
}

impl Graph {
    /// Checks the parts and symmetrises `edges` (A + Aᵀ clipped to 1, self-loops dropped).
    pub fn new(
        nodes: usize,
        edges: &[(u32, u32)],
        features: Vec<f32>,
        labels: Vec<u32>,
        classes: usize,
    ) -> Result<Self> {
        if nodes == 0 || features.len() % nodes != 0 {
            return Err(Error::invalid(
                "graph",
                format!("{} feature values for {nodes} nodes", features.len()),
            ));
        }
        if let Some(&(a, b)) = edges
            .iter()
            .find(|&&(a, b)| a as usize >= nodes || b as usize >= nodes)
        {
            return Err(Error::invalid(
                "graph",
                format!("edge ({a}, {b}) names a node that does not exist (there are {nodes})"),
            ));
        }
        if labels.len() != nodes {
            return Err(Error::invalid(
                "graph",
                format!("{} labels for {nodes} nodes", labels.len()),
            ));
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::invalid(
                "graph",
                format!("label {l} is out of range: there are {classes} classes"),
            ));
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "graph",
                format!("feature {i} is not finite"),
            ));
        }
        let mut neighbours = vec![Vec::new(); nodes];
        for &(a, b) in edges.iter().filter(|(a, b)| a != b) {
            neighbours[a as usize].push(b);
            neighbours[b as usize].push(a);
        }
        for n in &mut neighbours {
            n.sort_unstable();
            n.dedup();
        }
        let dim = features.len() / nodes;
        Ok(Self {
            neighbours,
            features,
            dim,
            labels,
            classes,
        })
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.labels.len()
    }

    /// Number of undirected edges.
    pub fn edges(&self) -> usize {
        self.neighbours.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// Divides every node's features by their sum of absolute values (rows of zeros stay): the
    /// standard preprocessing of bag-of-words citation graphs (Kipf & Welling 2017).
    pub fn normalize_rows(&mut self) {
        let d = self.dim;
        for row in self.features.chunks_mut(d) {
            let l1: f32 = row.iter().map(|v| v.abs()).sum();
            if l1 > 0.0 {
                row.iter_mut().for_each(|v| *v /= l1);
            }
        }
    }

    /// The features of node `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// The subgraph induced by the nodes with `keep[i]`, and for each of its nodes the index in
    /// `self`.
    pub fn induced(&self, keep: &[bool]) -> (Graph, Vec<usize>) {
        let old: Vec<usize> = (0..self.nodes()).filter(|&i| keep[i]).collect();
        let mut new = vec![u32::MAX; self.nodes()];
        for (k, &i) in old.iter().enumerate() {
            new[i] = k as u32;
        }
        let neighbours = old
            .iter()
            .map(|&i| {
                let n = self.neighbours[i].iter().map(|&j| new[j as usize]);
                n.filter(|&j| j != u32::MAX).collect()
            })
            .collect();
        let features = old.iter().flat_map(|&i| self.row(i).to_vec()).collect();
        let labels = old.iter().map(|&i| self.labels[i]).collect();
        let graph = Graph {
            neighbours,
            features,
            dim: self.dim,
            labels,
            classes: self.classes,
        };
        (graph, old)
    }

    /// D̃^(-1/2) Ã D̃^(-1/2): the GCN's propagation.
    pub fn gcn_operator(&self) -> SparseOp {
        let scale: Vec<f32> = self
            .neighbours
            .iter()
            .map(|n| 1.0 / ((n.len() + 1) as f32).sqrt())
            .collect();
        self.with_self_loops(|i, j| scale[i] * scale[j])
    }

    /// P = D̃⁻¹ Ã: the average over a node and its neighbours (label propagation).
    pub fn mean_operator(&self) -> SparseOp {
        self.with_self_loops(|i, _| 1.0 / (self.neighbours[i].len() + 1) as f32)
    }

    fn with_self_loops(&self, weight: impl Fn(usize, usize) -> f32) -> SparseOp {
        let mut op = SparseOp::empty(self.nodes());
        for (i, n) in self.neighbours.iter().enumerate() {
            for j in std::iter::once(i).chain(n.iter().map(|&j| j as usize)) {
                op.push(i, j, weight(i, j));
            }
        }
        op
    }
}

/// A sparse `n x n` matrix as (row, column, weight) triplets.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseOp {
    /// Size.
    pub n: usize,
    /// Row of every entry.
    pub rows: Vec<u32>,
    /// Column of every entry.
    pub cols: Vec<u32>,
    /// Value of every entry.
    pub weights: Vec<f32>,
}

impl SparseOp {
    /// The zero matrix.
    pub fn empty(n: usize) -> Self {
        Self {
            n,
            rows: Vec::new(),
            cols: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// The identity (a network "run without edges").
    pub fn identity(n: usize) -> Self {
        let mut op = Self::empty(n);
        (0..n).for_each(|i| op.push(i, i, 1.0));
        op
    }

    fn push(&mut self, i: usize, j: usize, w: f32) {
        self.rows.push(i as u32);
        self.cols.push(j as u32);
        self.weights.push(w);
    }

    /// `self · x` for `x` of `n` rows of `k` values (host, f64).
    pub fn apply(&self, x: &[f64], k: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.n * k];
        for ((&i, &j), &w) in self.rows.iter().zip(&self.cols).zip(&self.weights) {
            let (i, j) = (i as usize * k, j as usize * k);
            for c in 0..k {
                out[i + c] += f64::from(w) * x[j + c];
            }
        }
        out
    }
}

/// Label propagation x ← α x + (1 − α) P x, `steps` times (GEBM's diffusion: α = 0.5, 10 steps),
/// on `n x k` values.
pub fn propagate(p: &SparseOp, x: &[f64], k: usize, steps: usize, alpha: f64) -> Vec<f64> {
    let mut x = x.to_vec();
    for _ in 0..steps {
        let px = p.apply(&x, k);
        x.iter_mut()
            .zip(px)
            .for_each(|(v, pv)| *v = alpha * *v + (1.0 - alpha) * pv);
    }
    x
}
