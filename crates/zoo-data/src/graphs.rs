//! Citation graphs for node classification: Cora (2708 nodes, 7 classes) and CiteSeer (3312
//! nodes, 6 classes), in the `.npz` packaging of Shchur et al. (2018, "Pitfalls of Graph Neural
//! Network Evaluation"), compiled into the crate; and a reader for any graph in that format.
//!
//! An `.npz` is a zip of `.npy` arrays: the zip is read with the `zip` crate, each array with
//! `npyz`. Keys: `adj_data`/`adj_indices`/`adj_indptr`/`adj_shape` (the adjacency in CSR),
//! `attr_*` (the node features in CSR, or a dense `attr_matrix`), `labels`, and `class_names`
//! (only its length is read: the number of classes). Every index is checked against the sizes
//! before anything is allocated from it: a bad file is an error, never a panic.

use std::io::{Cursor, Read};
use std::path::Path;
use zoo_energy::{Error, Result};

const CORA: &[u8] = include_bytes!("../../../data/graphs/cora.npz");
const CITESEER: &[u8] = include_bytes!("../../../data/graphs/citeseer.npz");

/// The names of the shipped graphs.
pub const SHIPPED: [&str; 2] = ["cora", "citeseer"];

/// A node-classification graph as stored: directed edges, dense features, class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphData {
    /// Nodes.
    pub nodes: usize,
    /// Directed edges `(source, target)` as stored (not symmetrised, no self-loops added).
    pub edges: Vec<(u32, u32)>,
    /// Features, `nodes x dim` row-major.
    pub features: Vec<f32>,
    /// Features per node.
    pub dim: usize,
    /// The class of every node, `< classes`.
    pub labels: Vec<u32>,
    /// Classes.
    pub classes: usize,
}

impl GraphData {
    /// A shipped graph by name (`cora` or `citeseer`).
    pub fn shipped(name: &str) -> Result<Self> {
        let bytes = match name {
            "cora" => CORA,
            "citeseer" => CITESEER,
            _ => {
                return Err(Error::UnknownName {
                    kind: "graph",
                    name: name.into(),
                    known: SHIPPED.join(", "),
                });
            }
        };
        Self::from_npz(bytes, name)
    }

    /// Reads a graph from an `.npz` file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            context: format!("cannot read {}", path.display()),
            source,
        })?;
        Self::from_npz(&bytes, &path.display().to_string())
    }

    /// Parses the bytes of an `.npz` file (`what` names it in errors).
    pub fn from_npz(bytes: &[u8], what: &str) -> Result<Self> {
        let mut npz = Npz::open(bytes, what)?;
        let [nodes, cols] = npz.shape2("adj_shape")?;
        if nodes != cols {
            return Err(npz.bad(format!("adj_shape is {nodes} x {cols}, not square")));
        }
        let adj = npz.csr("adj", nodes, nodes)?;
        let edges = adj.iter().map(|&(r, c, _)| (r as u32, c as u32)).collect();
        let (features, dim) = npz.features(nodes)?;
        let classes = npz.length("class_names")?;
        let labels = npz.ints("labels")?;
        if labels.len() != nodes {
            return Err(npz.bad(format!("{} labels for {nodes} nodes", labels.len())));
        }
        if let Some(&l) = labels.iter().find(|&&l| l < 0 || l as usize >= classes) {
            return Err(npz.bad(format!(
                "label {l} is out of range: there are {classes} classes"
            )));
        }
        let labels = labels.into_iter().map(|l| l as u32).collect();
        Ok(Self {
            nodes,
            edges,
            features,
            dim,
            labels,
            classes,
        })
    }
}

impl GraphData {
    /// The graph as `.npz` bytes in the same packaging (adjacency and features in CSR, labels;
    /// `class_names` holds the class indices, since only its length is read back). No check is
    /// made: a malformed graph is written as it is (tests use this to make bad files).
    pub fn to_npz(&self) -> Result<Vec<u8>> {
        use npyz::WriterBuilder;
        fn array<T: npyz::AutoSerialize + Clone>(values: &[T]) -> std::io::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            let mut w = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&[values.len() as u64])
                .writer(&mut bytes)
                .begin_nd()?;
            w.extend(values.iter().cloned())?;
            w.finish()?;
            Ok(bytes)
        }
        let io = |e: std::io::Error| Error::Config(format!("writing .npz: {e}"));
        let mut adj_ptr = vec![0i64; self.nodes + 1];
        let mut sorted = self.edges.clone();
        sorted.sort_unstable();
        sorted
            .iter()
            .for_each(|&(r, _)| adj_ptr[(r as usize + 1).min(self.nodes)] += 1);
        (0..self.nodes).for_each(|i| adj_ptr[i + 1] += adj_ptr[i]);
        let adj_idx: Vec<i64> = sorted.iter().map(|&(_, c)| c as i64).collect();
        let (mut attr_ptr, mut attr_idx, mut attr_val) = (vec![0i64], Vec::new(), Vec::new());
        for row in self.features.chunks(self.dim.max(1)) {
            for (c, &v) in row.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                attr_idx.push(c as i64);
                attr_val.push(v);
            }
            attr_ptr.push(attr_idx.len() as i64);
        }
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let classes: Vec<i64> = (0..self.classes as i64).collect();
        let n = self.nodes as i64;
        let parts: [(&str, Vec<u8>); 10] = [
            ("adj_data", array(&vec![1.0f32; adj_idx.len()]).map_err(io)?),
            ("adj_indices", array(&adj_idx).map_err(io)?),
            ("adj_indptr", array(&adj_ptr).map_err(io)?),
            ("adj_shape", array(&[n, n]).map_err(io)?),
            ("attr_data", array(&attr_val).map_err(io)?),
            ("attr_indices", array(&attr_idx).map_err(io)?),
            ("attr_indptr", array(&attr_ptr).map_err(io)?),
            ("attr_shape", array(&[n, self.dim as i64]).map_err(io)?),
            ("labels", array(&labels).map_err(io)?),
            ("class_names", array(&classes).map_err(io)?),
        ];
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in parts {
            let zerr = |e: zip::result::ZipError| Error::Config(format!("writing .npz: {e}"));
            zip.start_file(format!("{name}.npy"), options)
                .map_err(zerr)?;
            std::io::Write::write_all(&mut zip, &bytes).map_err(io)?;
        }
        let cursor = zip
            .finish()
            .map_err(|e| Error::Config(format!("writing .npz: {e}")))?;
        Ok(cursor.into_inner())
    }
}

/// The arrays of one `.npz`.
struct Npz<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    what: String,
}

impl<'a> Npz<'a> {
    fn open(bytes: &'a [u8], what: &str) -> Result<Self> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| Error::Config(format!("{what}: not an .npz (zip) file: {e}")))?;
        Ok(Self {
            zip,
            what: what.into(),
        })
    }

    fn bad(&self, message: String) -> Error {
        Error::Config(format!("{}: {message}", self.what))
    }

    fn has(&self, key: &str) -> bool {
        self.zip.index_for_name(&format!("{key}.npy")).is_some()
    }

    /// The raw `.npy` bytes of `key` (an error when missing).
    fn entry(&mut self, key: &str) -> Result<Vec<u8>> {
        let what = self.what.clone();
        let mut file = self
            .zip
            .by_name(&format!("{key}.npy"))
            .map_err(|_| Error::Config(format!("{what}: no array '{key}'")))?;
        let mut bytes = Vec::with_capacity(file.size().min(1 << 30) as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::Config(format!("{what}: cannot read '{key}': {e}")))?;
        Ok(bytes)
    }

    fn npy<'b>(&self, key: &str, bytes: &'b [u8]) -> Result<npyz::NpyFile<&'b [u8]>> {
        npyz::NpyFile::new(bytes).map_err(|e| self.bad(format!("'{key}' is not a .npy: {e}")))
    }

    /// The length of a 1-D array (its header only).
    fn length(&mut self, key: &str) -> Result<usize> {
        let bytes = self.entry(key)?;
        let shape = self.npy(key, &bytes)?.shape().to_vec();
        match shape[..] {
            [n] => Ok(n as usize),
            _ => Err(self.bad(format!("'{key}' has shape {shape:?}, not 1-D"))),
        }
    }

    /// An integer array of any integer dtype, as `i64`.
    fn ints(&mut self, key: &str) -> Result<Vec<i64>> {
        let bytes = self.entry(key)?;
        let bad = |e: std::io::Error| self.bad(format!("'{key}' is not an integer array: {e}"));
        if let Ok(v) = self.npy(key, &bytes)?.into_vec::<i64>() {
            return Ok(v);
        }
        if let Ok(v) = self.npy(key, &bytes)?.into_vec::<i32>() {
            return Ok(v.into_iter().map(i64::from).collect());
        }
        if let Ok(v) = self.npy(key, &bytes)?.into_vec::<i16>() {
            return Ok(v.into_iter().map(i64::from).collect());
        }
        let v = self.npy(key, &bytes)?.into_vec::<i8>().map_err(bad)?;
        Ok(v.into_iter().map(i64::from).collect())
    }

    /// A float array (`f32` or `f64`), as `f32`.
    fn floats(&mut self, key: &str) -> Result<Vec<f32>> {
        let bytes = self.entry(key)?;
        if let Ok(v) = self.npy(key, &bytes)?.into_vec::<f32>() {
            return Ok(v);
        }
        if let Ok(v) = self.npy(key, &bytes)?.into_vec::<f64>() {
            return Ok(v.into_iter().map(|x| x as f32).collect());
        }
        Ok(self.ints(key)?.into_iter().map(|x| x as f32).collect())
    }

    /// A shape stored as a 2-element array.
    fn shape2(&mut self, key: &str) -> Result<[usize; 2]> {
        match self.ints(key)?[..] {
            [r, c] if r >= 0 && c >= 0 => Ok([r as usize, c as usize]),
            ref other => Err(self.bad(format!("'{key}' is {other:?}, not a 2-D shape"))),
        }
    }

    /// The nonzeros `(row, column, value)` of the CSR matrix `prefix_*` of shape `rows x cols`.
    fn csr(&mut self, prefix: &str, rows: usize, cols: usize) -> Result<Vec<(usize, usize, f32)>> {
        let indptr = self.ints(&format!("{prefix}_indptr"))?;
        let indices = self.ints(&format!("{prefix}_indices"))?;
        let data = self.floats(&format!("{prefix}_data"))?;
        let monotone = indptr.windows(2).all(|w| w[0] <= w[1]);
        if indptr.len() != rows + 1 || indptr[0] != 0 || !monotone {
            return Err(self.bad(format!(
                "{prefix}_indptr is not a CSR row pointer of {rows} rows"
            )));
        }
        let nnz = indptr[rows] as usize;
        if indices.len() != nnz || data.len() != nnz {
            return Err(self.bad(format!(
                "{prefix}: {nnz} nonzeros by the row pointer, {} indices and {} values",
                indices.len(),
                data.len()
            )));
        }
        if let Some(&c) = indices.iter().find(|&&c| c < 0 || c as usize >= cols) {
            let kind = if prefix == "adj" {
                "an edge to node"
            } else {
                "column"
            };
            return Err(self.bad(format!(
                "{prefix}: {kind} {c}, which does not exist (there are {cols})"
            )));
        }
        let mut out = Vec::with_capacity(nnz);
        for r in 0..rows {
            for k in indptr[r] as usize..indptr[r + 1] as usize {
                out.push((r, indices[k] as usize, data[k]));
            }
        }
        Ok(out)
    }

    /// The dense features `[nodes, dim]` from `attr_*` (CSR) or `attr_matrix` (dense).
    fn features(&mut self, nodes: usize) -> Result<(Vec<f32>, usize)> {
        if self.has("attr_matrix") {
            let bytes = self.entry("attr_matrix")?;
            let shape = self.npy("attr_matrix", &bytes)?.shape().to_vec();
            let values = self.floats("attr_matrix")?;
            return match shape[..] {
                [n, d] if n as usize == nodes => Ok((values, d as usize)),
                _ => Err(self.bad(format!("attr_matrix has shape {shape:?} for {nodes} nodes"))),
            };
        }
        let [n, dim] = self.shape2("attr_shape")?;
        if n != nodes {
            return Err(self.bad(format!("attr_shape has {n} rows for {nodes} nodes")));
        }
        zoo_energy::memory::check_points("the dense node features", nodes, dim)?;
        let nonzeros = self.csr("attr", nodes, dim)?;
        let mut features = vec![0.0f32; nodes * dim];
        for (r, c, v) in nonzeros {
            features[r * dim + c] += v;
        }
        Ok((features, dim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unknown names and non-zip bytes are errors; a written graph reads back equal; an edge to a
    /// missing node and a label out of range are named. (The shipped files' counts:
    /// `tests/uncertainty.rs`.)
    #[test]
    fn npz_round_trip_and_bad_files() {
        assert!(GraphData::shipped("pubmed").is_err());
        // Written and read back: the same graph.
        let g = GraphData {
            nodes: 3,
            edges: vec![(0, 1), (2, 1)],
            features: vec![1.0, 0.0, 0.0, 2.5, 0.0, 0.0],
            dim: 2,
            labels: vec![0, 1, 1],
            classes: 2,
        };
        assert_eq!(
            GraphData::from_npz(&g.to_npz().unwrap(), "round trip").unwrap(),
            g
        );
        // An edge to a node that does not exist, a label out of range: errors naming them.
        let bad_edge = GraphData {
            edges: vec![(0, 7)],
            ..g.clone()
        };
        let e = GraphData::from_npz(&bad_edge.to_npz().unwrap(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("edge to node 7"), "{e}");
        let bad_label = GraphData {
            labels: vec![0, 1, 2],
            ..g
        };
        let e = GraphData::from_npz(&bad_label.to_npz().unwrap(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 2 is out of range"), "{e}");
        assert!(GraphData::from_npz(b"not a zip", "junk").is_err());
    }
}
