//! One module per family, each behind the same small trait ([`FamilyRun`]): its plan from the
//! config's `[model]`/`[train]` tables (the family crate's own config structs, checked by the
//! crate), its training, its evaluation. Adding a family is a module here plus one variant in
//! each of the runner's enums (`Family`, `Method`, `SamplerKind`, `Plan`); every `match` over them
//! is exhaustive, so the compiler names each place that must handle it.

mod diffusion;
mod ebm;
mod flow;
mod gan;
mod vae;

pub use diffusion::DiffusionPlan;
pub use ebm::EbmPlan;
pub use flow::FlowPlan;
pub use gan::GanPlan;
pub use vae::{VaePlan, VaeTraining};

pub(crate) use crate::config::Sections;
pub(crate) use crate::evaluate::{EvalCtx, Scored};
pub(crate) use crate::family::{Ctx, Trained};

/// What the runner needs of a family.
pub(crate) trait FamilyRun: Sized {
    /// The family's method (its crate's enum, or the runner's enum mapped onto it).
    type Method;

    /// The family crate's configs for `method` from the config's sections, each checked by the
    /// crate's own `check`; errors name the file and the key.
    fn plan(
        method: Self::Method,
        sections: Sections,
    ) -> std::result::Result<Self, crate::config::ConfigError>;

    /// Trains the model: the checkpoint as named buffers, the training curve, the seconds.
    fn train(&self, ctx: &mut Ctx) -> crate::error::Result<Trained>;

    /// Rebuilds the model from the checkpoint: parameters, NLL, one draw per sampler.
    fn evaluate(&self, ctx: &EvalCtx) -> crate::error::Result<Scored>;
}
