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

/// Eigenvalues and eigenvectors of a symmetric matrix by the cyclic Jacobi method (Golub & Van
/// Loan, *Matrix Computations*, 4th ed., §8.5.3): rotations annihilate each off-diagonal entry in
/// turn until the off-diagonal mass is below `1e-14` of the Frobenius norm (at most 100 sweeps).
/// Returns `(values, vectors)` with `m = V diag(values) V^T`, the eigenvectors in `V`'s columns.
pub fn symmetric_eigen(m: &Matrix) -> (Vec<f64>, Matrix) {
    let d = m.len();
    let mut a = m.clone();
    let mut v: Matrix = (0..d)
        .map(|i| (0..d).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    let norm2: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= 1e-28 * norm2 || off == 0.0 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                if a[p][q] != 0.0 {
                    jacobi_rotate(&mut a, &mut v, p, q);
                }
            }
        }
    }
    ((0..d).map(|i| a[i][i]).collect(), v)
}

/// One Jacobi rotation in the (p, q) plane that zeroes `a[p][q]`, applied as `a <- J^T a J` and
/// accumulated into `v <- v J`.
fn jacobi_rotate(a: &mut Matrix, v: &mut Matrix, p: usize, q: usize) {
    let d = a.len();
    let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
    let t = if theta == 0.0 { 1.0 } else { t };
    let c = 1.0 / (t * t + 1.0).sqrt();
    let s = t * c;
    for k in 0..d {
        let (akp, akq) = (a[k][p], a[k][q]);
        a[k][p] = c * akp - s * akq;
        a[k][q] = s * akp + c * akq;
    }
    for k in 0..d {
        let (apk, aqk) = (a[p][k], a[q][k]);
        a[p][k] = c * apk - s * aqk;
        a[q][k] = s * apk + c * aqk;
    }
    for row in v.iter_mut() {
        let (vp, vq) = (row[p], row[q]);
        row[p] = c * vp - s * vq;
        row[q] = s * vp + c * vq;
    }
}

/// The symmetric square root `V diag(sqrt(max(lambda, 0))) V^T` of a symmetric positive
/// semi-definite matrix (eigenvalues below zero from rounding are clamped).
pub fn sqrt_psd(m: &Matrix) -> Matrix {
    let (values, v) = symmetric_eigen(m);
    let d = m.len();
    let roots: Vec<f64> = values.iter().map(|l| l.max(0.0).sqrt()).collect();
    (0..d)
        .map(|i| {
            (0..d)
                .map(|j| (0..d).map(|k| v[i][k] * roots[k] * v[j][k]).sum())
                .collect()
        })
        .collect()
}

/// The product `a b` of two square matrices.
pub fn matmul(a: &Matrix, b: &Matrix) -> Matrix {
    let d = a.len();
    (0..d)
        .map(|i| {
            (0..d)
                .map(|j| (0..d).map(|k| a[i][k] * b[k][j]).sum())
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

    #[test]
    fn jacobi_eigen_and_square_root_reconstruct_a_known_matrix() {
        // Eigenvalues of [[2, 1], [1, 2]] are 1 and 3; the square root squares back.
        let m = vec![
            vec![2.0, 1.0, 0.0],
            vec![1.0, 2.0, 0.5],
            vec![0.0, 0.5, 1.0],
        ];
        let (values, v) = symmetric_eigen(&vec![vec![2.0, 1.0], vec![1.0, 2.0]]);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        assert!((sorted[0] - 1.0).abs() < 1e-12 && (sorted[1] - 3.0).abs() < 1e-12);
        assert!((v[0][0].abs() - 0.5f64.sqrt()).abs() < 1e-12);
        let r = sqrt_psd(&m);
        let back = matmul(&r, &r);
        for i in 0..3 {
            for j in 0..3 {
                assert!((back[i][j] - m[i][j]).abs() < 1e-12, "{back:?}");
            }
        }
    }
}
