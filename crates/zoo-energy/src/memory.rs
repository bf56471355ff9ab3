//! Sizes checked before they are allocated: every user-set size (lattice sides, dimensions,
//! chains, steps, particles, grid resolutions, kept draws) is turned into an estimate of the
//! bytes it will take, and compared with a memory budget *before* anything is allocated, so that
//! a huge request gets one error line naming the limit and the estimate instead of the kernel's
//! OOM killer.
//!
//! The budget is the one given to [`set_budget`] when set, else `ZOO_MAX_MEMORY` when set (bytes, or with a `K`/`M`/`G`/`T` suffix, powers of
//! 1024), else 80% of the memory the kernel reports as available (`MemAvailable` in
//! `/proc/meminfo`), else 8 GiB where that file does not exist.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// The fallback budget where the available memory cannot be read.
pub const FALLBACK_BUDGET: u64 = 8 << 30;

/// A budget set by the program itself (0: none), which wins over `ZOO_MAX_MEMORY`.
static OVERRIDE: AtomicU64 = AtomicU64::new(0);

/// Sets the budget for this process (`None`: back to `ZOO_MAX_MEMORY` or the available memory).
/// Unlike changing the environment, this is safe while other threads run.
pub fn set_budget(bytes: Option<u64>) {
    OVERRIDE.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// The memory budget in bytes (see the module docs).
pub fn budget() -> Result<u64> {
    match OVERRIDE.load(Ordering::Relaxed) {
        0 => {}
        set => return Ok(set),
    }
    if let Ok(text) = std::env::var("ZOO_MAX_MEMORY") {
        return parse_bytes(&text).ok_or_else(|| {
            Error::invalid(
                "ZOO_MAX_MEMORY",
                format!("'{text}' is not a size (bytes, or a number with K, M, G or T)"),
            )
        });
    }
    Ok(available().map_or(FALLBACK_BUDGET, |a| a / 5 * 4))
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `123`, `64K`, `1.5G`, `2T` (powers of 1024; a trailing `B`/`iB` is allowed).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().trim_end_matches("iB").trim_end_matches('B');
    let (num, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, ' '),
    };
    let scale = match unit {
        ' ' => 1u64,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => return None,
    };
    let value: f64 = num.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0 && value * (scale as f64) < u64::MAX as f64)
        .then_some((value * scale as f64) as u64)
}

/// A byte count for people: `512 B`, `3.2 MiB`, `1.4e6 GiB` ...
pub fn human(bytes: u128) -> String {
    let b = bytes as f64;
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut k = 0;
    while v >= 1024.0 && k < UNITS.len() - 1 {
        v /= 1024.0;
        k += 1;
    }
    if k == 0 {
        format!("{bytes} B")
    } else if v < 1e4 {
        format!("{v:.1} {}", UNITS[k])
    } else {
        format!("{v:.2e} {}", UNITS[k])
    }
}

/// The product of `factors` (element counts, bytes per element), saturating at `u128::MAX`:
/// a size that overflows is simply too large.
pub fn product(factors: &[u128]) -> u128 {
    factors
        .iter()
        .try_fold(1u128, |acc, &f| acc.checked_mul(f))
        .unwrap_or(u128::MAX)
}

/// Checks that `bytes` (the estimate of what `what` will allocate) fits the budget.
///
/// `what` names the request and the setting that controls it, e.g.
/// `"the kept draws (chains x steps / thin x dim)"`.
pub fn check(what: &str, bytes: u128) -> Result<()> {
    let limit = budget()?;
    if bytes <= limit as u128 {
        return Ok(());
    }
    Err(Error::TooLarge {
        what: what.to_string(),
        estimate: human(bytes),
        limit: human(limit as u128),
    })
}

/// Checks a batch of `n` points of dimension `d` that a sampler or estimator works on:
/// positions, scores, proposals, momenta and weights, about 12 f32 tensors of `n x d` at once.
pub fn check_points(what: &str, n: usize, d: usize) -> Result<()> {
    check_elements(what, n as u128 * d as u128, 48)
}

/// [`check`] for `count` elements of `bytes_each` bytes.
pub fn check_elements(what: &str, count: u128, bytes_each: u128) -> Result<()> {
    check(what, product(&[count, bytes_each]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_bytes("123"), Some(123));
        assert_eq!(parse_bytes("64K"), Some(65536));
        assert_eq!(parse_bytes("1.5G"), Some(3 << 29));
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(product(&[u128::MAX, 2]), u128::MAX);
    }
}
