//! Spin systems (review §5, statistical physics): the 2-D Ising model on an L x M lattice and the
//! Curie-Weiss (mean-field) model, with exact references (enumeration, the Curie-Weiss 1-D sum,
//! Onsager's free energy) and single-spin Metropolis, heat-bath and Wolff cluster samplers over a
//! batch of replicas. Spins are ±1 (`i8`) on the host: these energies are discrete and cheap, so
//! tensors would only add overhead.

mod exact;
mod samplers;

pub use exact::{
    ExactIsing, MAX_ENUMERATION_SPINS, curie_weiss_exact, enumerate, kaufman_log_z,
    onsager_free_energy_per_spin,
};
pub use samplers::{
    Observables, SpinAnnealConfig, SpinInfo, SpinSampler, SpinState, anneal_log_z, observe,
};

use zoo_energy::error::{Error, Result};

/// An Ising model E(s) = offset - J sum_bonds s_i s_j - h sum_i s_i on a graph.
///
/// [`Ising::new`] is the 2-D lattice: bonds are the right and down neighbour of every site
/// (wrapping around when `periodic`), so every site has the four bond terms right, left, down,
/// up; on a periodic lattice of side 2 a pair is thus coupled twice. [`Ising::curie_weiss`] is
/// the mean-field model E = -(J / 2N) M^2 - h M, M = sum s, written as this graph model with every
/// pair coupled by J / N and the constant -J / 2, so every sampler and exact sum applies to it.
#[derive(Debug, Clone)]
pub struct Ising {
    rows: usize,
    cols: usize,
    coupling: f64,
    field: f64,
    periodic: bool,
    offset: f64,
    bonds: Vec<(usize, usize)>,
    /// For every site, the sites of its bond terms (right, left, down, up), duplicates included.
    neighbours: Vec<Vec<usize>>,
}

impl Ising {
    /// A `rows x cols` lattice with coupling J and field h.
    pub fn new(
        rows: usize,
        cols: usize,
        coupling: f64,
        field: f64,
        periodic: bool,
    ) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(Error::invalid(
                "L",
                format!("the lattice must be at least 1 x 1, got {rows} x {cols}"),
            ));
        }
        check_finite_couplings(coupling, field)?;
        // Per site: two bonds (16 bytes each) and four neighbour entries plus their Vec.
        zoo_energy::memory::check_elements(
            "an L x M Ising lattice (its bonds and neighbour lists)",
            rows as u128 * cols as u128,
            96,
        )?;
        Ok(Self::from_bonds(
            rows,
            cols,
            coupling,
            field,
            periodic,
            0.0,
            bonds(rows, cols, periodic).collect(),
        ))
    }

    /// The Curie-Weiss model of `n` spins (see the type's docs).
    pub fn curie_weiss(n: usize, coupling: f64, field: f64) -> Result<Self> {
        if n == 0 {
            return Err(Error::invalid("N", "need at least one spin"));
        }
        check_finite_couplings(coupling, field)?;
        // N (N - 1) / 2 pairs of 16 bytes and 2 neighbour entries of 8 bytes for each.
        zoo_energy::memory::check_elements(
            "a Curie-Weiss model as a graph of N spins (all N^2 / 2 pairs)",
            n as u128 * n as u128,
            16,
        )?;
        let pairs = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect();
        Ok(Self::from_bonds(
            1,
            n,
            coupling / n as f64,
            field,
            false,
            -coupling / 2.0,
            pairs,
        ))
    }

    fn from_bonds(
        rows: usize,
        cols: usize,
        coupling: f64,
        field: f64,
        periodic: bool,
        offset: f64,
        bonds: Vec<(usize, usize)>,
    ) -> Self {
        let mut neighbours = vec![Vec::new(); rows * cols];
        for &(a, b) in &bonds {
            neighbours[a].push(b);
            neighbours[b].push(a);
        }
        Self {
            rows,
            cols,
            coupling,
            field,
            periodic,
            offset,
            bonds,
            neighbours,
        }
    }

    /// Number of spins.
    pub fn sites(&self) -> usize {
        self.rows * self.cols
    }

    /// (rows, cols).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// J per bond (J / N for Curie-Weiss).
    pub fn coupling(&self) -> f64 {
        self.coupling
    }

    /// h.
    pub fn field(&self) -> f64 {
        self.field
    }

    /// Whether the boundaries wrap around.
    pub fn periodic(&self) -> bool {
        self.periodic
    }

    /// E(s).
    pub fn energy(&self, s: &[i8]) -> f64 {
        let bonds: i64 = self.bonds.iter().map(|&(a, b)| (s[a] * s[b]) as i64).sum();
        let magnet: i64 = s.iter().map(|&v| v as i64).sum();
        self.offset - self.coupling * bonds as f64 - self.field * magnet as f64
    }

    /// The local field J sum_j s_j + h at `site`: flipping s_i changes E by 2 s_i (local field).
    pub fn local_field(&self, s: &[i8], site: usize) -> f64 {
        let sum: i32 = self.neighbours[site].iter().map(|&j| s[j] as i32).sum();
        self.coupling * sum as f64 + self.field
    }

    pub(crate) fn neighbours(&self, site: usize) -> &[usize] {
        &self.neighbours[site]
    }
}

/// The bonds (site, right neighbour) and (site, down neighbour).
fn bonds(rows: usize, cols: usize, periodic: bool) -> impl Iterator<Item = (usize, usize)> {
    (0..rows).flat_map(move |r| {
        (0..cols).flat_map(move |c| {
            let here = r * cols + c;
            let right = (c + 1 < cols || periodic).then(|| r * cols + (c + 1) % cols);
            let down = (r + 1 < rows || periodic).then(|| ((r + 1) % rows) * cols + c);
            [right, down].into_iter().flatten().map(move |n| (here, n))
        })
    })
}

fn check_finite_couplings(coupling: f64, field: f64) -> Result<()> {
    if coupling.is_finite() && field.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid("coupling", "J and h must be finite"))
    }
}

/// Validates an inverse temperature: finite and >= 0.
pub fn check_beta(beta: f64) -> Result<f64> {
    if beta.is_finite() && beta >= 0.0 {
        Ok(beta)
    } else {
        Err(Error::invalid(
            "beta",
            format!("must be finite and >= 0, got {beta}"),
        ))
    }
}
