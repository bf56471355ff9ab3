//! Small dense linear algebra in f64 on the host, for the parameters of analytic energies
//! (covariances are small and fixed, so they are factored once, at construction).

use crate::error::{Error, Result};

/// A square matrix stored row by row.
pub type Matrix = Vec<Vec<f64>>;

/// Checks that `m` is a symmetric `d x d` matrix.
pub fn check_square_symmetric(name: &str, m: &Matrix, d: usize) -> Result<()> {
    if m.len() != d || m.iter().any(|r| r.len() != d) {
        return Err(Error::invalid(name, format!("must be a {d} x {d} matrix")));
    }
    for i in 0..d {
        for j in 0..d {
            let (a, b) = (m[i][j], m[j][i]);
            if !a.is_finite() {
                return Err(Error::invalid(name, format!("entry ({i}, {j}) is {a}")));
            }
            if (a - b).abs() > 1e-9 * (1.0 + a.abs().max(b.abs())) {
                return Err(Error::invalid(
                    name,
                    format!("must be symmetric: ({i}, {j}) = {a} but ({j}, {i}) = {b}"),
                ));
            }
        }
    }
    Ok(())
}

/// Lower Cholesky factor `L` with `L L^T = m`; an error if `m` is not positive definite.
pub fn cholesky(name: &str, m: &Matrix) -> Result<Matrix> {
    let d = m.len();
    let mut l = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let v = m[i][i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return Err(Error::invalid(name, "must be positive definite"));
                }
                l[i][j] = v.sqrt();
            } else {
                l[i][j] = (m[i][j] - s) / l[j][j];
            }
        }
    }
    Ok(l)
}

/// `log det m` from its Cholesky factor.
pub fn logdet_from_cholesky(l: &Matrix) -> f64 {
    2.0 * (0..l.len()).map(|i| l[i][i].ln()).sum::<f64>()
}

/// The inverse of `m = L L^T` from its Cholesky factor.
pub fn inverse_from_cholesky(l: &Matrix) -> Matrix {
    let d = l.len();
    // Invert L (lower triangular) by forward substitution, then m^-1 = L^-T L^-1.
    let mut linv = vec![vec![0.0; d]; d];
    for i in 0..d {
        linv[i][i] = 1.0 / l[i][i];
        for j in 0..i {
            let s: f64 = (j..i).map(|k| l[i][k] * linv[k][j]).sum();
            linv[i][j] = -s / l[i][i];
        }
    }
    let mut inv = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..d {
            inv[i][j] = (i.max(j)..d).map(|k| linv[k][i] * linv[k][j]).sum();
        }
    }
    inv
}

/// The `d x d` matrix with entries `rho^|i - j|` (a stationary AR(1) correlation matrix).
pub fn ar1_correlation(d: usize, rho: f64) -> Matrix {
    (0..d)
        .map(|i| {
            (0..d)
                .map(|j| rho.powi((i as i32 - j as i32).abs()))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_logdet_of_a_known_matrix() {
        let m = vec![vec![4.0, 2.0], vec![2.0, 3.0]];
        let l = cholesky("m", &m).unwrap();
        assert!((logdet_from_cholesky(&l) - 8f64.ln()).abs() < 1e-12);
        let inv = inverse_from_cholesky(&l);
        let expect = [[3.0 / 8.0, -2.0 / 8.0], [-2.0 / 8.0, 4.0 / 8.0]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - expect[i][j]).abs() < 1e-12);
            }
        }
        assert!(cholesky("m", &vec![vec![1.0, 2.0], vec![2.0, 1.0]]).is_err());
    }
}
