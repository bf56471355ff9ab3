//! Run-time choice of burn backend: `flex` (pure-Rust CPU, the default), `ndarray` (CPU,
//! deprecated upstream, kept for users who ask for it) and `wgpu` (GPU; on a machine without one,
//! Mesa's software Vulkan). Each is a cargo feature; asking for one that was not compiled in is an
//! error that names the ones that were. The `fusion` feature adds burn's kernel fusion and
//! autotuning to `wgpu` (what a real GPU run wants; the test build leaves it out).

use crate::error::{Error, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// A burn backend by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// burn-flex (CPU).
    Flex,
    /// burn-ndarray (CPU).
    Ndarray,
    /// burn-wgpu (GPU, or software Vulkan).
    Wgpu,
}

impl BackendKind {
    /// Every backend ebm-zoo knows.
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
        }
    }

    /// Whether this build includes it.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The backends compiled into this build.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// Whether the backend computes on the host CPU (so host kernels need no transfer).
    pub fn is_cpu(self) -> bool {
        !matches!(self, Self::Wgpu)
    }

    /// Whether `device` (with or without autodiff) belongs to a host (CPU) backend, where host
    /// kernels such as `zoo_neural::FusedMlpEnergy` need no transfer.
    pub fn is_host_device(device: &Device) -> bool {
        let plain = device.clone().without_autodiff();
        Self::compiled()
            .into_iter()
            .filter(|b| b.is_cpu())
            .filter_map(|b| b.device().ok())
            .any(|d| d == plain)
    }

    /// A device of this backend (without autodiff), or an error if it was not compiled in.
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            other => Err(Error::BackendNotCompiled {
                name: other.name().into(),
                compiled: names(&Self::compiled()),
            }),
        }
    }
}

fn names(backends: &[BackendKind]) -> String {
    if backends.is_empty() {
        "none".into()
    } else {
        backends
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| Error::UnknownName {
                kind: "backend",
                name: s.into(),
                known: names(&Self::ALL),
            })
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
