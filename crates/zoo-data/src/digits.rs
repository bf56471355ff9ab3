//! The 8×8 UCI digits (Alpaydin & Kaynak 1998), compiled into the crate: 1797 images, intensities
//! 0..16. Split: image `i` is a test image when `i % 6 == 5` (299 test, 1498 training images).

use rand::RngExt;
use zoo_energy::{Error, Result, ZooRng};

/// Side of an image.
pub const SIDE: usize = 8;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;
/// Largest intensity.
pub const MAX_INTENSITY: u8 = 16;

const CSV: &str = include_str!("../../../data/digits.csv");

/// Which part of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 1498 images.
    Train,
    /// 299 images.
    Test,
    /// All 1797 images.
    All,
}

/// A set of digit images.
#[derive(Debug, Clone)]
pub struct Digits {
    /// Intensities 0..16, `PIXELS` per image, image after image.
    pub pixels: Vec<u8>,
    /// Class labels 0..9.
    pub labels: Vec<u8>,
}

impl Digits {
    /// Loads one split of the shipped data.
    pub fn load(split: Split) -> Result<Self> {
        let mut pixels = Vec::with_capacity(1797 * PIXELS);
        let mut labels = Vec::with_capacity(1797);
        for (i, line) in CSV.lines().enumerate() {
            let keep = match split {
                Split::Train => i % 6 != 5,
                Split::Test => i % 6 == 5,
                Split::All => true,
            };
            if !keep {
                continue;
            }
            let values: Vec<u8> = line
                .split(',')
                .map(|v| v.trim().parse::<u8>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Config(format!("digits.csv line {}: {e}", i + 1)))?;
            if values.len() != PIXELS + 1 || values[..PIXELS].iter().any(|&v| v > MAX_INTENSITY) {
                return Err(Error::Config(format!(
                    "digits.csv line {}: malformed",
                    i + 1
                )));
            }
            pixels.extend_from_slice(&values[..PIXELS]);
            labels.push(values[PIXELS]);
        }
        Ok(Self { pixels, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Binary images, `pixel >= 8` → 1.0 (for RBMs), `[len, 64]` row-major.
    pub fn binarized(&self) -> Vec<f32> {
        self.pixels
            .iter()
            .map(|&p| if p >= 8 { 1.0 } else { 0.0 })
            .collect()
    }

    /// Intensities scaled to [0, 1] (`p / 16`), `[len, 64]` row-major.
    pub fn scaled(&self) -> Vec<f32> {
        self.pixels
            .iter()
            .map(|&p| p as f32 / MAX_INTENSITY as f32)
            .collect()
    }
}

/// Uniform dequantisation of intensities scaled to [0, 1] (`p / 16`, as [`Digits::scaled`]):
/// y = 2 (p + u) / 17 - 1 with u ~ U(0, 1), so y lies in (-1, 1) (Theis et al. 2016).
pub fn dequantise(scaled: &[f32], rng: &mut ZooRng) -> Vec<f32> {
    scaled
        .iter()
        .map(|p| 2.0 * (p * 16.0 + rng.random::<f32>()) / 17.0 - 1.0)
        .collect()
}

/// The examples' digit data in y-space: `copies` dequantisations of the training split (noise
/// seed 20 000) and one of the test split (seed 999), row-major `[n, PIXELS]` each.
pub fn dequantised_splits(copies: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let (train, test) = (Digits::load(Split::Train)?, Digits::load(Split::Test)?);
    let y_test = dequantise(&test.scaled(), &mut zoo_energy::rng::seeded(999));
    let (scaled, mut noise) = (train.scaled(), zoo_energy::rng::seeded(20_000));
    let y_train = (0..copies)
        .flat_map(|_| dequantise(&scaled, &mut noise))
        .collect();
    Ok((y_train, y_test))
}
