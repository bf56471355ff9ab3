//! Out-of-distribution scores of a classifier and how to rate them: the energy score
//! E(x) = −T logsumexp(f(x)/T) (Liu et al. 2020, arXiv 2010.03759), the maximum-softmax baseline
//! (Hendrycks & Gimpel 2017), class-conditional diagonal Gaussians on features (a Mahalanobis
//! distance, Lee et al. 2018), and AUROC / FPR at 95% TPR. Every score is "higher = more
//! out-of-distribution".

use zoo_energy::{Error, Result};
use zoo_mcmc::estimate::log_sum_exp;

/// −T logsumexp(l/T) of every row of `logits` (`k` per row).
pub fn energy_scores(logits: &[f64], k: usize, temperature: f64) -> Vec<f64> {
    logits
        .chunks(k)
        .map(|l| {
            let scaled: Vec<f64> = l.iter().map(|v| v / temperature).collect();
            -temperature * log_sum_exp(&scaled)
        })
        .collect()
}

/// −max softmax(l) of every row.
pub fn max_softmax_scores(logits: &[f64], k: usize) -> Vec<f64> {
    logits
        .chunks(k)
        .map(|l| {
            let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            -(m - log_sum_exp(l)).exp()
        })
        .collect()
}

/// The index of the largest value of every row.
pub fn argmax_rows(values: &[f64], k: usize) -> Vec<usize> {
    values
        .chunks(k)
        .map(|r| (0..k).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0))
        .collect()
}

/// One diagonal Gaussian per class, fitted to labelled feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassGaussians {
    /// Means, `classes x dim`.
    pub means: Vec<f64>,
    /// Variances, `classes x dim` (with the ridge of [`ClassGaussians::fit`], floored at `1e-6`
    /// and at 1e-3 of the feature's total variance).
    pub variances: Vec<f64>,
    /// Feature dimension.
    pub dim: usize,
}

impl ClassGaussians {
    /// Fits class `c` to the rows `i` of the pairs `(i, c)` in `labels` (`dim` values per row of
    /// `features`); every class in `0..classes` needs at least two rows. Each variance gets
    /// `ridge` times the mean (over features) of the labelled rows' total variance added: with
    /// 20 labels per class in 64 dimensions the raw diagonal variances of ReLU features are often
    /// near zero, and a distance dominated by those units ranks nodes by noise (measured in
    /// `docs/uncertainty.md`: ridge 0 against 0.1, 1 and 10).
    pub fn fit(
        features: &[f64],
        dim: usize,
        labels: &[(usize, usize)],
        classes: usize,
        ridge: f64,
    ) -> Result<Self> {
        let mut means = vec![0.0; classes * dim];
        let mut variances = vec![0.0; classes * dim];
        let mut counts = vec![0usize; classes];
        let mut total = vec![(0.0, 0.0); dim];
        for &(i, c) in labels {
            counts[c] += 1;
            for k in 0..dim {
                let v = features[i * dim + k];
                means[c * dim + k] += v;
                total[k] = (total[k].0 + v, total[k].1 + v * v);
            }
        }
        if let Some(c) = counts.iter().position(|&n| n < 2) {
            return Err(Error::invalid(
                "labels",
                format!(
                    "class {c} has {} labelled nodes; at least 2 are needed",
                    counts[c]
                ),
            ));
        }
        for c in 0..classes {
            means[c * dim..(c + 1) * dim]
                .iter_mut()
                .for_each(|m| *m /= counts[c] as f64);
        }
        for &(i, c) in labels {
            for k in 0..dim {
                let d = features[i * dim + k] - means[c * dim + k];
                variances[c * dim + k] += d * d / (counts[c] - 1) as f64;
            }
        }
        let n = labels.len() as f64;
        let total_var: Vec<f64> = total
            .iter()
            .map(|&(s, q)| (q / n - (s / n).powi(2)).max(0.0))
            .collect();
        let mean_var = total_var.iter().sum::<f64>() / dim as f64;
        variances.iter_mut().for_each(|v| *v += ridge * mean_var);
        for (k, var_k) in total_var.iter().enumerate() {
            let floor = (1e-3 * var_k).max(1e-6);
            (0..classes).for_each(|c| variances[c * dim + k] = variances[c * dim + k].max(floor));
        }
        Ok(Self {
            means,
            variances,
            dim,
        })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.means.len() / self.dim
    }

    /// The squared Mahalanobis distance of every row to every class, `rows x classes`.
    pub fn distances(&self, features: &[f64]) -> Vec<f64> {
        let (dim, classes) = (self.dim, self.classes());
        features
            .chunks(dim)
            .flat_map(|x| {
                (0..classes).map(move |c| {
                    let (m, v) = (&self.means[c * dim..], &self.variances[c * dim..]);
                    (0..dim).map(|k| (x[k] - m[k]).powi(2) / v[k]).sum::<f64>()
                })
            })
            .collect()
    }
}

/// The smallest value of every row.
pub fn min_rows(values: &[f64], k: usize) -> Vec<f64> {
    values
        .chunks(k)
        .map(|r| r.iter().copied().fold(f64::INFINITY, f64::min))
        .collect()
}

/// The `q`-quantile (linear interpolation between order statistics, NumPy's default).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len().saturating_sub(1)) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + frac * (v[hi] - v[lo])
}

/// Area under the ROC curve of `scores` for telling `positives` (out of distribution) from
/// `negatives`: the Mann-Whitney probability P(s⁺ > s⁻) + ½ P(s⁺ = s⁻), ties by mid-ranks.
pub fn auroc(positives: &[f64], negatives: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid_rank * all[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    let (p, n) = (positives.len() as f64, negatives.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// The share of negatives at or above the threshold that flags 95% of the positives.
pub fn fpr_at_95_tpr(positives: &[f64], negatives: &[f64]) -> f64 {
    let threshold = quantile(positives, 0.05);
    negatives.iter().filter(|&&s| s >= threshold).count() as f64 / negatives.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_counts_ties_as_one_half() {
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), 1.0);
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]), 0.0);
        assert_eq!(auroc(&[1.0; 5], &[1.0; 7]), 0.5);
        // P(+ > -) = (1 + 0.5 + 1 + 1) / 4 with one tie.
        assert_eq!(auroc(&[1.0, 2.0], &[0.0, 1.0]), 0.875);
    }

    #[test]
    fn energy_and_softmax_scores_are_exact_on_small_rows() {
        let l = [0.0, 0.0, 2.0_f64.ln(), 0.0];
        let e = energy_scores(&l, 2, 1.0);
        assert!((e[0] + 2.0_f64.ln()).abs() < 1e-12 && (e[1] + 3.0_f64.ln()).abs() < 1e-12);
        let s = max_softmax_scores(&l, 2);
        assert!((s[0] + 0.5).abs() < 1e-12 && (s[1] + 2.0 / 3.0).abs() < 1e-12);
        // T -> large: the energy tends to -T log k - mean(l).
        let big = energy_scores(&[1.0, 3.0], 2, 1e6)[0];
        assert!((big + 1e6 * 2.0_f64.ln() + 2.0).abs() < 1e-3);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[0.0, 1.0], 0.25), 0.25);
    }
}
