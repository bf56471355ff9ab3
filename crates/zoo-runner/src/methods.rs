//! The typed choices of a run config: each family's methods (`method = ...`) and samplers
//! (`[[sampler]] kind = ...`). Methods are the family crates' own enums where the name in the
//! config is theirs (`zoo_ebm::objective::ObjectiveKind`); a runner enum maps
//! onto the family crate's enum where the table's name differs (`realnvp` is
//! `zoo_flow::FlowKind::RealNvp`, `ebm_prior` is `zoo_vae::PriorKind::Ebm`). The runner matches on
//! these enums exhaustively, so a new method or sampler that is not handled does not compile.

use crate::config::Family;

/// A closed set of names, each one variant.
pub trait Choice: Copy + Sized + 'static {
    /// What the choice is called in errors ("method", "sampler").
    const WHAT: &'static str;
    /// Every variant, in table order.
    fn all() -> &'static [Self];
    /// The name used in configs and tables.
    fn name(self) -> &'static str;

    /// The variant called `name`; else an error listing the known names.
    fn from_name(name: &str, family: Family) -> Result<Self, String> {
        Self::all()
            .iter()
            .copied()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Self::all().iter().map(|c| c.name()).collect();
                format!(
                    "unknown {} {name:?} for family {}; known: {}",
                    Self::WHAT,
                    family.name(),
                    known.join(", ")
                )
            })
    }
}

/// Declares a runner enum with its config names and implements [`Choice`] for it.
macro_rules! choice {
    ($(#[$m:meta])* $name:ident: $what:literal { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vm])* $var),+
        }
        impl Choice for $name {
            const WHAT: &'static str = $what;
            fn all() -> &'static [Self] {
                &[$($name::$var),+]
            }
            fn name(self) -> &'static str {
                match self {
                    $($name::$var => $s),+
                }
            }
        }
    };
}

impl Choice for zoo_ebm::objective::ObjectiveKind {
    const WHAT: &'static str = "method";
    fn all() -> &'static [Self] {
        &Self::ALL
    }
    fn name(self) -> &'static str {
        zoo_ebm::objective::ObjectiveKind::name(self)
    }
}

/// The methods of the `gan` family: the games of `zoo_gan::GanLoss`, and DDAEBM (an adversarial
/// EBM along a short diffusion, `zoo_gan::Ddaebm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GanMethod {
    /// A two-player game.
    Game(zoo_gan::GanLoss),
    /// DDAEBM (Geng et al. 2024).
    Ddaebm,
}

impl Choice for GanMethod {
    const WHAT: &'static str = "method";
    fn all() -> &'static [Self] {
        use zoo_gan::GanLoss as L;
        &[
            GanMethod::Game(L::NonSaturating),
            GanMethod::Game(L::Hinge),
            GanMethod::Game(L::WganGp),
            GanMethod::Game(L::Ebgan),
            GanMethod::Game(L::Vera),
            GanMethod::Ddaebm,
        ]
    }
    fn name(self) -> &'static str {
        match self {
            GanMethod::Game(l) => l.name(),
            GanMethod::Ddaebm => "ddaebm",
        }
    }
}

choice! {
    /// The flows of the table (`zoo_flow::FlowKind`; IAF, slow to evaluate, is not among them).
    FlowMethod: "method" {
        /// RealNVP's affine coupling.
        RealNvp = "realnvp",
        /// Masked autoregressive flow.
        Maf = "maf",
        /// Neural spline flow (rational-quadratic coupling).
        Nsf = "nsf",
        /// NICE's additive coupling.
        Nice = "nice",
    }
}

impl FlowMethod {
    /// The family crate's flow.
    pub fn kind(self) -> zoo_flow::FlowKind {
        match self {
            FlowMethod::RealNvp => zoo_flow::FlowKind::RealNvp,
            FlowMethod::Maf => zoo_flow::FlowKind::Maf,
            FlowMethod::Nsf => zoo_flow::FlowKind::Nsf,
            FlowMethod::Nice => zoo_flow::FlowKind::Nice,
        }
    }
}

choice! {
    /// The diffusion methods of the runner: an SDE with a network parameterisation.
    DiffusionMethod: "method" {
        /// VP SDE, noise-predicting MLP.
        VpMlp = "vp_mlp",
        /// VP SDE, the energy-parameterised model (every level a shared `Energy`).
        VpEnergy = "vp_energy",
        /// VE SDE over NCSN's noise ladder, noise-predicting MLP.
        VeNcsn = "ve_ncsn",
        /// Flow matching on the linear interpolant from N(0, I) (a velocity MLP).
        FlowMatching = "flow_matching",
    }
}

choice! {
    /// The VAE priors (`zoo_vae::PriorKind`).
    VaeMethod: "method" {
        /// A standard Gaussian prior.
        GaussianPrior = "gaussian_prior",
        /// Pang et al.'s latent EBM prior.
        EbmPrior = "ebm_prior",
        /// Luo et al.'s Energy-Calibrated VAE: a Gaussian prior, the decoder calibrated in
        /// training by an EBM on the data.
        EcVae = "ec_vae",
        /// The EC-VAE's baseline: the same VAE, loss and draws with lambda = 0 (no calibration).
        EcVaeBaseline = "ec_vae_baseline",
        /// A hierarchical (multi-layer) generator with its Gaussian prior N(u; 0, I).
        HvaeGaussianPrior = "hvae_gaussian_prior",
        /// The same generator, frozen, with a single-stage EBM prior over its whitened latent.
        HvaeEbmPrior = "hvae_ebm_prior",
        /// The same generator, frozen, with Cui & Han's hierarchical EBM diffusion prior.
        HvaeDiffusionPrior = "hvae_diffusion_prior",
    }
}

impl VaeMethod {
    /// The family crate's prior of a one-layer VAE (the hierarchical methods: Gaussian).
    pub fn prior(self) -> zoo_vae::PriorKind {
        match self {
            VaeMethod::EbmPrior => zoo_vae::PriorKind::Ebm,
            _ => zoo_vae::PriorKind::Gaussian,
        }
    }

    /// The prior over the whitened latent of a hierarchical method (None: a one-layer VAE).
    pub fn latent_prior(self) -> Option<zoo_vae::LatentPriorKind> {
        match self {
            VaeMethod::HvaeGaussianPrior => Some(zoo_vae::LatentPriorKind::Gaussian),
            VaeMethod::HvaeEbmPrior => Some(zoo_vae::LatentPriorKind::SingleStage),
            VaeMethod::HvaeDiffusionPrior => Some(zoo_vae::LatentPriorKind::Diffusion),
            _ => None,
        }
    }
}

choice! {
    /// Samplers of an EBM (`zoo_mcmc::sampler::SamplerKind`).
    EbmSampler: "sampler" {
        /// Unadjusted Langevin.
        Ula = "ula",
        /// Metropolis-adjusted Langevin.
        Mala = "mala",
        /// Parallel tempering around MALA.
        Pt = "pt",
    }
}

impl EbmSampler {
    /// The MCMC crate's kernel (MALA inside parallel tempering).
    pub fn kind(self) -> zoo_mcmc::sampler::SamplerKind {
        match self {
            EbmSampler::Ula => zoo_mcmc::sampler::SamplerKind::Ula,
            EbmSampler::Mala | EbmSampler::Pt => zoo_mcmc::sampler::SamplerKind::Mala,
        }
    }
}

choice! {
    /// Samplers of a flow.
    FlowSampler: "sampler" {
        /// Exact draws through the inverse.
        Exact = "exact",
    }
}

choice! {
    /// Samplers of a diffusion model (`zoo_diffusion::Solver`, and annealed Langevin).
    DiffusionSampler: "sampler" {
        /// Reverse-SDE Euler-Maruyama.
        EulerMaruyama = "euler_maruyama",
        /// Ancestral sampling.
        Ancestral = "ancestral",
        /// Predictor-corrector (Euler-Maruyama + Langevin at a fixed SNR).
        PredictorCorrector = "predictor_corrector",
        /// PF-ODE by Heun's method.
        Heun = "heun",
        /// PF-ODE by RK4.
        Rk4 = "rk4",
        /// DDIM (deterministic).
        Ddim = "ddim",
        /// Song & Ermon's annealed Langevin dynamics (VE only).
        AnnealedLangevin = "annealed_langevin",
        /// The reverse SDE reweighted by Jarzynski/SMC on the model's own energies (vp_energy only).
        ReweightedSde = "reweighted_sde",
    }
}

choice! {
    /// Samplers of a GAN.
    GanSampler: "sampler" {
        /// The generator's push-forward.
        Generator = "generator",
        /// MALA in latent space on the discriminator's energy (Che et al.'s DDLS, corrected).
        LatentMala = "latent_mala",
        /// ULA in latent space (DDLS).
        LatentUla = "latent_ula",
    }
}

choice! {
    /// Samplers of a VAE.
    VaeSampler: "sampler" {
        /// Decoder means of prior draws.
        Prior = "prior",
    }
}

/// The sampler of one table row, typed by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// An EBM sampler.
    Ebm(EbmSampler),
    /// A flow sampler.
    Flow(FlowSampler),
    /// A diffusion sampler.
    Diffusion(DiffusionSampler),
    /// A GAN sampler.
    Gan(GanSampler),
    /// A VAE sampler.
    Vae(VaeSampler),
}

impl SamplerKind {
    /// The sampler of `family` called `name`.
    pub fn parse(family: Family, name: &str) -> Result<Self, String> {
        Ok(match family {
            Family::Ebm => SamplerKind::Ebm(Choice::from_name(name, family)?),
            Family::Flow => SamplerKind::Flow(Choice::from_name(name, family)?),
            Family::Diffusion => SamplerKind::Diffusion(Choice::from_name(name, family)?),
            Family::Gan => SamplerKind::Gan(Choice::from_name(name, family)?),
            Family::Vae => SamplerKind::Vae(Choice::from_name(name, family)?),
        })
    }

    /// The family's first sampler (the row of a config without `[[sampler]]`).
    pub fn default_for(family: Family) -> Self {
        match family {
            Family::Ebm => SamplerKind::Ebm(EbmSampler::Ula),
            Family::Flow => SamplerKind::Flow(FlowSampler::Exact),
            Family::Diffusion => SamplerKind::Diffusion(DiffusionSampler::EulerMaruyama),
            Family::Gan => SamplerKind::Gan(GanSampler::Generator),
            Family::Vae => SamplerKind::Vae(VaeSampler::Prior),
        }
    }

    /// The name used in configs and tables.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Ebm(s) => s.name(),
            SamplerKind::Flow(s) => s.name(),
            SamplerKind::Diffusion(s) => s.name(),
            SamplerKind::Gan(s) => s.name(),
            SamplerKind::Vae(s) => s.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Choice + PartialEq + std::fmt::Debug>(family: Family) {
        for &c in T::all() {
            assert_eq!(T::from_name(c.name(), family), Ok(c));
        }
        let err = T::from_name("nope", family).unwrap_err();
        assert!(
            err.contains("known: ") && err.contains(T::all()[0].name()),
            "{err}"
        );
    }

    #[test]
    fn every_name_parses_back_to_its_variant_and_unknown_names_list_the_known_ones() {
        round_trip::<zoo_ebm::objective::ObjectiveKind>(Family::Ebm);
        round_trip::<FlowMethod>(Family::Flow);
        round_trip::<DiffusionMethod>(Family::Diffusion);
        round_trip::<GanMethod>(Family::Gan);
        round_trip::<VaeMethod>(Family::Vae);
        round_trip::<EbmSampler>(Family::Ebm);
        round_trip::<DiffusionSampler>(Family::Diffusion);
        round_trip::<GanSampler>(Family::Gan);
    }

    #[test]
    fn the_ebm_objective_names_are_its_serde_names() {
        for &k in zoo_ebm::objective::ObjectiveKind::ALL.iter() {
            let via_serde: zoo_ebm::objective::ObjectiveKind =
                toml::Value::from(k.name()).try_into().unwrap();
            assert_eq!(via_serde, k);
        }
        for f in Family::ALL {
            assert_eq!(
                SamplerKind::parse(f, SamplerKind::default_for(f).name()),
                Ok(SamplerKind::default_for(f))
            );
        }
    }
}
