//! A checkpoint: the whole state of a training run as named binary parts in one file.
//!
//! Layout: the magic `ZOOCKPT1`, the length of a JSON header (u64, little endian), the header
//! (fingerprint, iteration, RNG state, part names and lengths), then the parts in name order.
//! Modules and optimisers are burnpack buffers (burn's own record format), tensors are
//! `[rank, dims..., f32 values]` little endian, everything else JSON. The same state always gives
//! the same bytes, so "resumed equals uninterrupted" can be checked byte for byte.

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use rand::SeedableRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use zoo_energy::{Error, Result, ZooRng};

const MAGIC: &[u8; 8] = b"ZOOCKPT1";

/// A module's parameters as burnpack bytes (burn's record format, parameter ids included).
pub fn module_bytes<M: Module>(module: &M) -> std::result::Result<Vec<u8>, String> {
    let bytes = module.clone().into_record().into_bytes();
    bytes
        .map(|b| b.to_vec())
        .map_err(|e| format!("cannot serialise the module: {e:?}"))
}

/// `init` (a module of the same structure) with the parameters of [`module_bytes`]'s output.
pub fn load_module<M: Module>(init: M, bytes: &[u8]) -> std::result::Result<M, String> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| format!("not a burnpack record: {e:?}"))?;
    Ok(init.load_record(record))
}

/// The exact position of a [`ZooRng`] (ChaCha8): seed, stream and word position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    seed: String,
    stream: u64,
    word_pos: String,
}

impl RngState {
    /// The state of `rng`.
    pub fn of(rng: &ZooRng) -> Self {
        let seed = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            seed,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator at exactly this state.
    pub fn restore(&self) -> Result<ZooRng> {
        let bad = || corrupt("the checkpoint", "a malformed RNG state");
        if self.seed.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut rng = ZooRng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().map_err(|_| bad())?);
        Ok(rng)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    iteration: usize,
    rng: RngState,
    parts: Vec<(String, usize)>,
}

/// The state of a run at one iteration: what the loop owns (iteration, RNG, a fingerprint of the
/// run's settings) and named parts the family writes with the `put_*` methods.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Iterations completed.
    pub iteration: usize,
    /// Identifies the run (its settings); a checkpoint of another run is never resumed.
    pub fingerprint: String,
    /// The training generator after `iteration` iterations.
    pub rng: RngState,
    parts: BTreeMap<String, Vec<u8>>,
    /// Where it was read from (for error messages).
    origin: String,
}

fn corrupt(origin: &str, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: origin.to_string(),
        message: message.into(),
    }
}

impl Checkpoint {
    /// An empty checkpoint at `iteration`.
    pub fn new(rng: &ZooRng, fingerprint: &str, iteration: usize) -> Self {
        Self {
            iteration,
            fingerprint: fingerprint.to_string(),
            rng: RngState::of(rng),
            parts: BTreeMap::new(),
            origin: "the in-memory snapshot".into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> Error {
        corrupt(&self.origin, message)
    }

    /// Stores raw bytes under `name` (replacing any earlier part of that name).
    pub fn put_bytes(&mut self, name: &str, bytes: Vec<u8>) {
        self.parts.insert(name.to_string(), bytes);
    }

    /// The part `name`.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        self.parts
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| self.error(format!("has no part '{name}'")))
    }

    /// The parts, in name order.
    pub fn parts(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.parts.iter().map(|(n, b)| (n.as_str(), b.as_slice()))
    }

    /// Whether the part `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.parts.contains_key(name)
    }

    /// Stores a module's parameters (burnpack).
    pub fn put_module<M: Module>(&mut self, name: &str, module: &M) -> Result<()> {
        let bytes = module_bytes(module).map_err(|e| self.error(format!("'{name}': {e}")))?;
        self.put_bytes(name, bytes);
        Ok(())
    }

    /// Loads the parameters stored under `name` into `init` (a module of the same structure).
    pub fn module<M: Module>(&self, name: &str, init: M) -> Result<M> {
        load_module(init, self.bytes(name)?).map_err(|e| self.error(format!("part '{name}': {e}")))
    }

    /// Stores an optimiser's state (Adam moments and step counts, momenta).
    ///
    /// burn writes the per-parameter states in the order of a `HashMap`, which differs between
    /// two optimisers holding the same state; they are rewritten here sorted by name, so that
    /// equal states give equal bytes.
    pub fn put_optimizer(&mut self, name: &str, optimizer: &ModuleOptimizer) -> Result<()> {
        let fail = |e: String| self.error(format!("cannot serialise the optimiser '{name}': {e}"));
        let bytes = optimizer.into_bytes().map_err(|e| fail(format!("{e:?}")))?;
        let reader = burn_pack::Reader::from_bytes(bytes).map_err(|e| fail(e.to_string()))?;
        let scalars = reader.scalars().clone();
        let metadata = reader.metadata().clone();
        let mut tensors = reader.into_tensors().map_err(|e| fail(e.to_string()))?;
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let mut writer = burn_pack::Writer::new(tensors);
        for (key, value) in &scalars {
            writer = writer.with_scalar(key, *value);
        }
        for (key, value) in &metadata {
            writer = writer.with_metadata(key, value);
        }
        let bytes = writer.into_bytes().map_err(|e| fail(e.to_string()))?;
        self.put_bytes(name, bytes.to_vec());
        Ok(())
    }

    /// Loads the optimiser state stored under `name` into `init` (configured as when saved).
    pub fn optimizer(&self, name: &str, init: ModuleOptimizer) -> Result<ModuleOptimizer> {
        let bytes = Bytes::from_bytes_vec(self.bytes(name)?.to_vec());
        init.from_bytes(bytes)
            .map_err(|e| self.error(format!("part '{name}' is not an optimiser record: {e:?}")))
    }

    /// Stores any serde value as JSON.
    pub fn put_json<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| self.error(format!("cannot serialise '{name}': {e}")))?;
        self.put_bytes(name, bytes);
        Ok(())
    }

    /// Reads the JSON part `name`.
    pub fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        serde_json::from_slice(self.bytes(name)?)
            .map_err(|e| self.error(format!("part '{name}' is malformed: {e}")))
    }

    /// Stores a tensor's shape and f32 values.
    pub fn put_tensor<const D: usize>(&mut self, name: &str, tensor: &Tensor<D>) -> Result<()> {
        let dims = tensor.dims();
        let data = tensor.to_data().convert::<f32>();
        let values = data
            .as_slice::<f32>()
            .map_err(|e| self.error(format!("cannot read the tensor '{name}': {e:?}")))?;
        let mut bytes = Vec::with_capacity(8 * (D + 1) + 4 * values.len());
        bytes.extend_from_slice(&(D as u64).to_le_bytes());
        for d in dims {
            bytes.extend_from_slice(&(d as u64).to_le_bytes());
        }
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.put_bytes(name, bytes);
        Ok(())
    }

    /// Reads the tensor `name` onto `device`.
    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>> {
        let bytes = self.bytes(name)?;
        let bad = || self.error(format!("part '{name}' is not a rank-{D} tensor"));
        let word = |i: usize| -> Result<usize> {
            let b = bytes.get(8 * i..8 * i + 8).ok_or_else(bad)?;
            Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        };
        if word(0)? != D {
            return Err(bad());
        }
        let dims: Vec<usize> = (1..=D).map(word).collect::<Result<_>>()?;
        let body = &bytes[8 * (D + 1)..];
        let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count.and_then(|c| c.checked_mul(4)) != Some(body.len()) {
            return Err(bad());
        }
        let values: Vec<f32> = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Ok(Tensor::from_data(TensorData::new(values, dims), device))
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = Header {
            fingerprint: self.fingerprint.clone(),
            iteration: self.iteration,
            rng: self.rng.clone(),
            parts: self
                .parts
                .iter()
                .map(|(n, b)| (n.clone(), b.len()))
                .collect(),
        };
        let header = serde_json::to_vec(&header)
            .map_err(|e| self.error(format!("cannot serialise the header: {e}")))?;
        let mut out = Vec::with_capacity(16 + header.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for bytes in self.parts.values() {
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Parses a checkpoint file's bytes; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let bad = |m: &str| corrupt(origin, m);
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(bad("is not an ebm-zoo checkpoint (wrong magic bytes)"));
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let header_bytes = bytes
            .get(16..16usize.saturating_add(len))
            .ok_or_else(|| bad("is truncated (header)"))?;
        let header: Header = serde_json::from_slice(header_bytes)
            .map_err(|e| corrupt(origin, format!("has a malformed header: {e}")))?;
        let mut at = 16 + len;
        let mut parts = BTreeMap::new();
        for (name, len) in header.parts {
            let part = bytes
                .get(at..at.saturating_add(len))
                .ok_or_else(|| corrupt(origin, format!("is truncated (part '{name}')")))?;
            parts.insert(name, part.to_vec());
            at += len;
        }
        if at != bytes.len() {
            return Err(bad("has trailing bytes"));
        }
        Ok(Self {
            iteration: header.iteration,
            fingerprint: header.fingerprint,
            rng: header.rng,
            parts,
            origin: origin.to_string(),
        })
    }

    /// Writes the checkpoint to `path` atomically (a kill never leaves half a file).
    pub fn save(&self, path: &Path) -> Result<()> {
        zoo_energy::io::write_atomic(path, &self.to_bytes()?)
    }

    /// Reads the checkpoint at `path`, or `None` when there is no file.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_bytes(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                context: format!("reading {}", path.display()),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn device() -> Device {
        zoo_energy::BackendKind::Flex
            .device()
            .or_else(|_| zoo_energy::BackendKind::Ndarray.device())
            .expect("a CPU backend")
    }

    #[test]
    fn the_generator_continues_exactly_where_it_was() {
        let mut rng = zoo_energy::seeded(7);
        let _: Vec<u64> = (0..13).map(|_| rng.random()).collect();
        let mut copy = RngState::of(&rng).restore().unwrap();
        let a: Vec<u64> = (0..100).map(|_| rng.random()).collect();
        let b: Vec<u64> = (0..100).map(|_| copy.random()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn parts_round_trip_and_damage_is_an_error() {
        let dev = device();
        let rng = zoo_energy::seeded(1);
        let mut c = Checkpoint::new(&rng, "run", 12);
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0], [3, 2]),
            &dev,
        );
        c.put_tensor("x", &t).unwrap();
        c.put_json("w", &vec![0.25f64, -1e-300]).unwrap();
        let bytes = c.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(&bytes, "file").unwrap();
        assert_eq!((back.iteration, back.fingerprint.as_str()), (12, "run"));
        assert_eq!(
            back.to_bytes().unwrap(),
            bytes,
            "the same state, the same bytes"
        );
        let x: Tensor<2> = back.tensor("x", &dev).unwrap();
        assert_eq!(x.to_data(), t.to_data());
        assert_eq!(back.json::<Vec<f64>>("w").unwrap(), vec![0.25, -1e-300]);
        assert!(back.tensor::<1>("x", &dev).is_err(), "rank is checked");
        assert!(back.bytes("missing").is_err());
        for cut in [0, 8, 20, bytes.len() - 1] {
            let err = Checkpoint::from_bytes(&bytes[..cut], "file").unwrap_err();
            assert!(err.to_string().starts_with("checkpoint file"), "{err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Checkpoint::from_bytes(&longer, "file").is_err());
    }
}
