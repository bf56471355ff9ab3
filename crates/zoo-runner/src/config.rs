//! One experiment per TOML file: data, family, method, model, training budget, samplers, seeds,
//! backend. Every table goes into a serde struct with `deny_unknown_fields` (the family crates'
//! own configs for `[model]` and `[train]`), and every error names the file and the key.

use serde::Deserialize;
use serde::de::IntoDeserializer;
use std::path::{Path, PathBuf};
use zoo_data::Toy2d;
use zoo_energy::BackendKind;

use crate::families::FamilyRun;
pub use crate::families::{DiffusionPlan, EbmPlan, FlowPlan, GanPlan, VaePlan, VaeTraining};
pub use crate::methods::{Choice, DiffusionMethod, FlowMethod, SamplerKind, VaeMethod};

/// A rejected config: the file, the key (dotted, e.g. `train.iterations`; empty when the whole
/// file is at fault) and what is wrong, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{message}", file.display(), if key.is_empty() { String::new() } else { format!("key `{key}`: ") })]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The offending key, dotted from the top of the file.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error at `key` (dotted; empty: the whole file) of `file`.
    pub fn new(file: &Path, key: &str, message: String) -> Self {
        ConfigError {
            file: file.into(),
            key: key.into(),
            message,
        }
    }
}

/// A model family (one crate each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `zoo-ebm`: an MLP energy trained by a core-EBM objective.
    Ebm,
    /// `zoo-flow`: a normalizing flow trained by maximum likelihood.
    Flow,
    /// `zoo-diffusion`: a score network trained by denoising score matching.
    Diffusion,
    /// `zoo-gan`: a GAN whose discriminator is an energy.
    Gan,
    /// `zoo-vae`: a VAE with a Gaussian or a latent EBM prior.
    Vae,
}

impl Family {
    /// Every family, in table order.
    pub const ALL: [Family; 5] = [
        Family::Ebm,
        Family::Flow,
        Family::Diffusion,
        Family::Gan,
        Family::Vae,
    ];

    /// The name used in configs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ebm => "ebm",
            Family::Flow => "flow",
            Family::Diffusion => "diffusion",
            Family::Gan => "gan",
            Family::Vae => "vae",
        }
    }
}

/// The data of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataSet {
    /// A 2-D set with a closed-form density.
    Toy(Toy2d),
    /// The 8×8 UCI digits, uniformly dequantised to (-1, 1)^64.
    Digits,
}

impl DataSet {
    /// The name used in configs and tables.
    pub fn name(self) -> &'static str {
        match self {
            DataSet::Toy(t) => t.name(),
            DataSet::Digits => "digits",
        }
    }

    /// Dimension of a data point.
    pub fn dim(self) -> usize {
        match self {
            DataSet::Toy(_) => 2,
            DataSet::Digits => zoo_data::digits::PIXELS,
        }
    }

    fn parse(name: &str) -> Option<Self> {
        if name == "digits" {
            return Some(DataSet::Digits);
        }
        name.parse().ok().map(DataSet::Toy)
    }
}

/// One sampler of a run (`[[sampler]]`); a row of the table each.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerSpec {
    /// The sampler, typed by family.
    pub kind: SamplerKind,
    /// Steps (MCMC steps, solver steps, or steps per noise level for annealed Langevin).
    pub steps: Option<usize>,
    /// Step size (MCMC step size h; annealed Langevin's epsilon).
    pub step_size: Option<f64>,
    /// Predictor-corrector's signal-to-noise ratio.
    pub snr: Option<f64>,
    /// Parallel tempering (`kind = "pt"`): replicas on the geometric ladder.
    pub replicas: Option<usize>,
    /// Parallel tempering: the hottest replica's inverse temperature.
    pub beta_min: Option<f64>,
    /// Flow matching's `euler_maruyama`: ε of the interpolant SDE (>= 0; 0 is the ODE).
    pub epsilon: Option<f64>,
    /// `reweighted_sde`: resample a group when its ESS falls below this fraction, in (0, 1].
    pub resample_threshold: Option<f64>,
}

/// `[[sampler]]` as written: the kind is typed once the family is known.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSampler {
    kind: String,
    steps: Option<usize>,
    step_size: Option<f64>,
    snr: Option<f64>,
    replicas: Option<usize>,
    beta_min: Option<f64>,
    epsilon: Option<f64>,
    resample_threshold: Option<f64>,
}

impl SamplerSpec {
    /// A sampler with the family's defaults.
    pub fn named(kind: SamplerKind) -> Self {
        SamplerSpec {
            kind,
            steps: None,
            step_size: None,
            snr: None,
            replicas: None,
            beta_min: None,
            epsilon: None,
            resample_threshold: None,
        }
    }

    /// The row label, e.g. `ula (500 steps)`.
    pub fn label(&self) -> String {
        match self.steps {
            Some(s) => format!("{} ({s})", self.kind.name()),
            None => self.kind.name().to_string(),
        }
    }
}

/// The method of a run, typed by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A core-EBM objective.
    Ebm(zoo_ebm::objective::ObjectiveKind),
    /// A flow architecture.
    Flow(FlowMethod),
    /// An SDE with a network parameterisation.
    Diffusion(DiffusionMethod),
    /// A GAN game or DDAEBM.
    Gan(crate::methods::GanMethod),
    /// A VAE prior.
    Vae(VaeMethod),
}

impl Method {
    /// The method of `family` called `name`.
    pub fn parse(family: Family, name: &str) -> Result<Self, String> {
        Ok(match family {
            Family::Ebm => Method::Ebm(Choice::from_name(name, family)?),
            Family::Flow => Method::Flow(Choice::from_name(name, family)?),
            Family::Diffusion => Method::Diffusion(Choice::from_name(name, family)?),
            Family::Gan => Method::Gan(Choice::from_name(name, family)?),
            Family::Vae => Method::Vae(Choice::from_name(name, family)?),
        })
    }

    /// The family the method belongs to.
    pub fn family(self) -> Family {
        match self {
            Method::Ebm(_) => Family::Ebm,
            Method::Flow(_) => Family::Flow,
            Method::Diffusion(_) => Family::Diffusion,
            Method::Gan(_) => Family::Gan,
            Method::Vae(_) => Family::Vae,
        }
    }

    /// The name used in configs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ebm(m) => Choice::name(m),
            Method::Flow(m) => m.name(),
            Method::Diffusion(m) => m.name(),
            Method::Gan(m) => Choice::name(m),
            Method::Vae(m) => m.name(),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Evaluation settings (`[eval]`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Samples drawn per sampler and scored.
    pub samples: usize,
    /// Held-out points (2-D sets; digits use the 299 test images).
    pub test_points: usize,
    /// Importance samples per test point for the VAE's IWAE bound.
    pub iwae_k: usize,
    /// RK4 steps of the PF-ODE likelihood (diffusion).
    pub ode_steps: usize,
    /// Training points drawn from a 2-D set.
    pub train_points: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            samples: 4000,
            test_points: 2000,
            iwae_k: 200,
            ode_steps: 100,
            train_points: 20_000,
        }
    }
}

impl EvalConfig {
    /// Checks the evaluation's largest allocations against the memory budget before a run
    /// starts: the samples with their sampler tensors, the IWAE batch (test points x K), the
    /// training and test points.
    pub fn check_memory(&self, dim: usize) -> zoo_energy::Result<()> {
        use zoo_energy::memory::{check, product};
        let d = dim as u128;
        let samples = product(&[self.samples as u128, d, 4, 16]);
        let iwae = product(&[self.test_points as u128, self.iwae_k as u128, d, 4, 8]);
        let points = product(&[
            (self.train_points as u128).saturating_add(self.test_points as u128),
            d,
            8,
        ]);
        check(
            "the evaluation (samples, test points x iwae_k, train points)",
            samples.saturating_add(iwae).saturating_add(points),
        )
    }
}

/// The `[objective]` table of the `ebm` family (each field defaults per method).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EbmObjective {
    /// ULA steps per negative sample (CD-k, PCD, short-run).
    pub mcmc_steps: Option<usize>,
    /// ULA step size of the negative chains.
    pub step_size: Option<f64>,
    /// alpha in alpha * mean(E^2) (Du & Mordatch's regulariser).
    pub energy_penalty: Option<f64>,
    /// Noise scale of DSM / finite-difference sliced SM.
    pub sigma: Option<f64>,
    /// Noise samples per data point (NCE).
    pub noise_ratio: Option<usize>,
    /// Walkers (Jarzynski-weighted PCD).
    pub walkers: Option<usize>,
    /// PT-CD: replicas on the geometric ladder (>= 2).
    pub replicas: Option<usize>,
    /// PT-CD: the hottest replica's inverse temperature, in (0, 1).
    pub beta_min: Option<f64>,
    /// PT-CD: persistent chains per replica.
    pub chains: Option<usize>,
}

/// The family-specific part of a config, parsed into the family crates' own structs (one plan
/// type per family, see [`crate::families`]).
#[derive(Debug, Clone)]
pub enum Plan {
    /// `zoo-ebm`.
    Ebm(EbmPlan),
    /// `zoo-flow`.
    Flow(FlowPlan),
    /// `zoo-diffusion`.
    Diffusion(DiffusionPlan),
    /// `zoo-gan`.
    Gan(GanPlan),
    /// `zoo-vae`.
    Vae(VaePlan),
}

/// A parsed, validated config.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where it came from.
    pub file: PathBuf,
    /// The text of the file (copied into the results folder).
    pub text: String,
    /// The run's name: its results folder (default: the file stem).
    pub name: String,
    /// The data.
    pub data: DataSet,
    /// The family.
    pub family: Family,
    /// The method within the family.
    pub method: Method,
    /// One run per seed; the table reports the mean and the spread.
    pub seeds: Vec<u64>,
    /// The backend.
    pub backend: BackendKind,
    /// Family-specific settings.
    pub plan: Plan,
    /// Samplers (a table row each).
    pub samplers: Vec<SamplerSpec>,
    /// Evaluation settings.
    pub eval: EvalConfig,
}

/// The top level of a config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Option<String>,
    data: String,
    family: Family,
    method: String,
    #[serde(default = "default_seeds")]
    seeds: Vec<u64>,
    backend: Option<BackendKind>,
    #[serde(default)]
    model: toml::Table,
    #[serde(default)]
    train: toml::Table,
    objective: Option<toml::Table>,
    #[serde(default)]
    sampler: Vec<RawSampler>,
    #[serde(default)]
    eval: EvalConfig,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

impl RunConfig {
    /// Reads and validates `file`; `backend` (the command line's) overrides the file's.
    pub fn load(file: &Path, backend: Option<BackendKind>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::new(file, "", format!("cannot read the config: {e}")))?;
        Self::parse(file, &text, backend)
    }

    /// Parses and validates `text` (the contents of `file`).
    pub fn parse(
        file: &Path,
        text: &str,
        backend: Option<BackendKind>,
    ) -> Result<Self, ConfigError> {
        let fail = |key: &str, message: String| ConfigError::new(file, key, message);
        let raw: RawConfig = typed(file, "", parse_toml(file, text)?)?;
        let data = DataSet::parse(&raw.data).ok_or_else(|| {
            let known = Toy2d::names();
            fail(
                "data",
                format!("unknown data set {:?}; known: {known}, digits", raw.data),
            )
        })?;
        let family = raw.family;
        let method = Method::parse(family, &raw.method).map_err(|m| fail("method", m))?;
        if raw.seeds.is_empty() {
            return Err(fail("seeds", "need at least one seed".into()));
        }
        let name = run_name(file, raw.name)?;
        let backend = compiled(file, backend.or(raw.backend).unwrap_or(BackendKind::Flex))?;
        check_eval(file, &raw.eval, data)?;
        if raw.objective.is_some() && family != Family::Ebm {
            let why = format!(
                "only the ebm family takes an [objective] table, not {}",
                family.name()
            );
            return Err(fail("objective", why));
        }
        let sections = Sections {
            file,
            model: raw.model,
            train: raw.train,
            objective: raw.objective,
            dim: data.dim(),
        };
        let plan = sections.plan(method)?;
        let samplers = samplers(file, method, raw.sampler)?;
        Ok(RunConfig {
            file: file.into(),
            text: text.into(),
            name,
            data,
            family,
            method,
            seeds: raw.seeds,
            backend,
            plan,
            samplers,
            eval: raw.eval,
        })
    }
}

/// The TOML table of `text`; a syntax error names its line.
fn parse_toml(file: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!("line {}: ", text[..s.start].lines().count().max(1)))
            .unwrap_or_default();
        ConfigError::new(file, "", format!("{line}{}", e.message().trim()))
    })
}

/// The run's folder name: `name`, or the file stem; letters, digits, '-', '_', '.' only.
fn run_name(file: &Path, name: Option<String>) -> Result<String, ConfigError> {
    let name = name.unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into())
    });
    let legal = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if name.is_empty() || !legal || name.starts_with('.') {
        let why = format!("{name:?} is not a folder name (letters, digits, '-', '_', '.')");
        return Err(ConfigError::new(file, "name", why));
    }
    Ok(name)
}

/// `backend` if this build has it.
fn compiled(file: &Path, backend: BackendKind) -> Result<BackendKind, ConfigError> {
    if backend.is_compiled() {
        return Ok(backend);
    }
    let names: Vec<_> = BackendKind::compiled().iter().map(|b| b.name()).collect();
    let why = format!(
        "{} is not compiled into this build (compiled: {})",
        backend.name(),
        names.join(", ")
    );
    Err(ConfigError::new(file, "backend", why))
}

/// Every `[eval]` size is >= 1 (the sample metrics need 2 points) and fits the memory budget.
fn check_eval(file: &Path, eval: &EvalConfig, data: DataSet) -> Result<(), ConfigError> {
    for (key, v, least) in [
        ("eval.samples", eval.samples, 2),
        ("eval.test_points", eval.test_points, 2),
        ("eval.iwae_k", eval.iwae_k, 1),
        ("eval.ode_steps", eval.ode_steps, 1),
        ("eval.train_points", eval.train_points, 1),
    ] {
        if v == 0 {
            return Err(ConfigError::new(file, key, "must be >= 1".into()));
        }
        if v < least {
            return Err(ConfigError::new(
                file,
                key,
                format!("must be >= {least}, got {v}"),
            ));
        }
    }
    eval.check_memory(data.dim())
        .map_err(|e| ConfigError::new(file, "eval", e.to_string()))
}

/// Why a sampler does not fit the method, if it does not.
fn sampler_mismatch(method: Method, kind: SamplerKind) -> Option<&'static str> {
    use crate::methods::{DiffusionSampler as S, GanMethod, GanSampler};
    if let (Method::Gan(GanMethod::Ddaebm), SamplerKind::Gan(g)) = (method, kind) {
        return (g != GanSampler::Generator).then_some(
            "DDAEBM samples by its generators down the diffusion: kind = \"generator\"",
        );
    }
    let (Method::Diffusion(m), SamplerKind::Diffusion(k)) = (method, kind) else {
        return None;
    };
    match (m, k) {
        (DiffusionMethod::FlowMatching, S::Heun | S::Rk4 | S::EulerMaruyama) => None,
        (DiffusionMethod::FlowMatching, _) => Some(
            "flow matching samples by its ODE (heun, rk4) or the interpolant SDE (euler_maruyama)",
        ),
        (DiffusionMethod::VeNcsn, S::AnnealedLangevin) => None,
        (_, S::AnnealedLangevin) => Some(
            "annealed Langevin is defined on a VE noise ladder: use it with method = \"ve_ncsn\"",
        ),
        (DiffusionMethod::VpEnergy, S::ReweightedSde) => None,
        (_, S::ReweightedSde) => Some(
            "the reweighted SDE needs every noise level as an energy: use it with method = \"vp_energy\"",
        ),
        _ => None,
    }
}

/// `epsilon` is flow matching's interpolant-SDE noise: finite, >= 0, and nowhere else.
fn check_epsilon(method: Method, kind: SamplerKind, epsilon: Option<f64>) -> Result<(), String> {
    let Some(e) = epsilon else { return Ok(()) };
    let fm_sde = method == Method::Diffusion(DiffusionMethod::FlowMatching)
        && kind == SamplerKind::Diffusion(crate::methods::DiffusionSampler::EulerMaruyama);
    if !fm_sde {
        return Err(
            "only flow matching's euler_maruyama (the interpolant SDE) takes epsilon".into(),
        );
    }
    if !(e.is_finite() && e >= 0.0) {
        return Err(format!("must be finite and >= 0, got {e}"));
    }
    Ok(())
}

/// `resample_threshold` is the reweighted SDE's: in (0, 1], and nowhere else.
fn check_threshold(kind: SamplerKind, threshold: Option<f64>) -> Result<(), String> {
    let Some(r) = threshold else { return Ok(()) };
    if kind != SamplerKind::Diffusion(crate::methods::DiffusionSampler::ReweightedSde) {
        return Err("only kind = \"reweighted_sde\" takes it".into());
    }
    if !(r > 0.0 && r <= 1.0) {
        return Err(format!("must be in (0, 1], got {r}"));
    }
    Ok(())
}

/// The `[[sampler]]` tables typed for the method's family (the family's first sampler if none).
fn samplers(
    file: &Path,
    method: Method,
    raw: Vec<RawSampler>,
) -> Result<Vec<SamplerSpec>, ConfigError> {
    let family = method.family();
    let mut samplers = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("sampler[{i}].{field}");
        let kind = SamplerKind::parse(family, &s.kind)
            .map_err(|m| ConfigError::new(file, &key("kind"), m))?;
        if let Some(why) = sampler_mismatch(method, kind) {
            return Err(ConfigError::new(file, &key("kind"), why.into()));
        }
        if s.steps == Some(0) {
            return Err(ConfigError::new(file, &key("steps"), "must be >= 1".into()));
        }
        for (field, v) in [("step_size", s.step_size), ("snr", s.snr)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                let why = format!("must be finite and > 0, got {v}");
                return Err(ConfigError::new(file, &key(field), why));
            }
        }
        check_epsilon(method, kind, s.epsilon)
            .map_err(|why| ConfigError::new(file, &key("epsilon"), why))?;
        check_threshold(kind, s.resample_threshold)
            .map_err(|why| ConfigError::new(file, &key("resample_threshold"), why))?;
        let pt = kind == SamplerKind::Ebm(crate::methods::EbmSampler::Pt);
        if pt {
            zoo_mcmc::sampler::Ladder::geometric(
                s.replicas.unwrap_or(8),
                s.beta_min.unwrap_or(0.05),
            )
            .map_err(|e| {
                let field = if e.to_string().contains("beta_min") {
                    "beta_min"
                } else {
                    "replicas"
                };
                ConfigError::new(file, &key(field), e.to_string())
            })?;
        } else if let Some(field) = [
            ("replicas", s.replicas.is_some()),
            ("beta_min", s.beta_min.is_some()),
        ]
        .iter()
        .find(|(_, given)| *given)
        .map(|(f, _)| *f)
        {
            let why = "only kind = \"pt\" (parallel tempering) takes it".to_string();
            return Err(ConfigError::new(file, &key(field), why));
        }
        samplers.push(SamplerSpec {
            kind,
            steps: s.steps,
            step_size: s.step_size,
            snr: s.snr,
            replicas: s.replicas,
            beta_min: s.beta_min,
            epsilon: s.epsilon,
            resample_threshold: s.resample_threshold,
        });
    }
    if samplers.is_empty() {
        samplers.push(SamplerSpec::named(SamplerKind::default_for(family)));
    }
    Ok(samplers)
}

/// The `[model]`, `[train]` (and, for the ebm family, `[objective]`) tables of a config, read
/// into a family's plan by [`FamilyRun::plan`].
pub(crate) struct Sections<'a> {
    pub file: &'a Path,
    pub model: toml::Table,
    pub train: toml::Table,
    pub objective: Option<toml::Table>,
    pub dim: usize,
}

impl Sections<'_> {
    /// The plan of `method`'s family.
    fn plan(self, method: Method) -> Result<Plan, ConfigError> {
        Ok(match method {
            Method::Ebm(m) => Plan::Ebm(FamilyRun::plan(m, self)?),
            Method::Flow(m) => Plan::Flow(FamilyRun::plan(m, self)?),
            Method::Diffusion(m) => Plan::Diffusion(FamilyRun::plan(m, self)?),
            Method::Gan(m) => Plan::Gan(FamilyRun::plan(m, self)?),
            Method::Vae(m) => Plan::Vae(FamilyRun::plan(m, self)?),
        })
    }

    /// The data's dimension as a TOML value (the runner fills it into `[model]`).
    pub fn dim_value(&self) -> toml::Value {
        toml::Value::from(self.dim as i64)
    }

    /// `model.key` is set by the runner from `source`; a user value is an error (it could
    /// disagree).
    pub fn fill(&mut self, key: &str, value: toml::Value, source: &str) -> Result<(), ConfigError> {
        if self.model.contains_key(key) {
            let why = format!("is set from {source}; remove it");
            return Err(ConfigError::new(self.file, &format!("model.{key}"), why));
        }
        self.model.insert(key.into(), value);
        Ok(())
    }
}

/// A family crate's `InvalidParameter` error as a config error keyed `section.name`.
pub(crate) fn keyed(
    file: &Path,
    section: &str,
    r: zoo_energy::Result<()>,
) -> Result<(), ConfigError> {
    r.map_err(|e| {
        let (key, message) = match e {
            zoo_energy::Error::InvalidParameter { name, reason } => {
                (format!("{section}.{name}"), reason)
            }
            other => (section.to_string(), other.to_string()),
        };
        ConfigError::new(file, &key, message)
    })
}

/// A `[section]` table read into `T` and validated by the family crate's own `check`.
pub(crate) fn checked<T: serde::de::DeserializeOwned>(
    file: &Path,
    section: &str,
    table: toml::Table,
    check: impl Fn(&T) -> zoo_energy::Result<()>,
) -> Result<T, ConfigError> {
    let value: T = typed(file, section, table)?;
    keyed(file, section, check(&value))?;
    Ok(value)
}

/// Deserialises `value` into `T`, naming the dotted key of the first error under `prefix`.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    file: &Path,
    prefix: &str,
    value: impl IntoDeserializer<'static, toml::de::Error>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value.into_deserializer()).map_err(|e| {
        let mut key = e.path().to_string();
        if key == "." {
            key.clear();
        }
        let message = e.inner().message().trim().to_string();
        // serde reports an unknown or missing field at its parent: name the field itself.
        for lead in ["unknown field `", "missing field `"] {
            if let Some(rest) = message.strip_prefix(lead)
                && let Some(field) = rest.split('`').next()
                // ... unless the path already ends at the field (an unknown key is tracked).
                && key != field
                && !key.ends_with(&format!(".{field}"))
            {
                key = if key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
            }
        }
        let key = match (prefix.is_empty(), key.is_empty()) {
            (true, _) => key,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{key}"),
        };
        ConfigError::new(file, &key, message)
    })
}

/// The trainer's own check (the checkpoint path is not a TOML key: the runner owns the folder).
pub(crate) fn check_ebm_train(t: &zoo_ebm::EbmTrainConfig) -> zoo_energy::Result<()> {
    t.check()
}

pub(crate) fn check_objective(o: &EbmObjective) -> zoo_energy::Result<()> {
    for (name, v) in [
        ("mcmc_steps", o.mcmc_steps),
        ("noise_ratio", o.noise_ratio),
        ("walkers", o.walkers),
        ("chains", o.chains),
    ] {
        if let Some(v) = v {
            zoo_energy::check_count(name, v)?;
        }
    }
    for (name, v) in [("step_size", o.step_size), ("sigma", o.sigma)] {
        if let Some(v) = v {
            zoo_energy::check_positive(name, v)?;
        }
    }
    if let Some(a) = o.energy_penalty
        && !(a.is_finite() && a >= 0.0)
    {
        return Err(zoo_energy::Error::invalid(
            "energy_penalty",
            format!("must be finite and >= 0, got {a}"),
        ));
    }
    if o.replicas.is_some() || o.beta_min.is_some() {
        zoo_mcmc::sampler::Ladder::geometric(o.replicas.unwrap_or(8), o.beta_min.unwrap_or(0.05))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(text: &str) -> String {
        RunConfig::parse(Path::new("x.toml"), text, None)
            .unwrap_err()
            .key
    }

    #[test]
    fn the_ebm_trainer_is_checked_by_its_own_check_and_may_not_set_a_checkpoint() {
        let head = "data = \"8gaussians\"\nfamily = \"ebm\"\nmethod = \"cd\"\n[train]\n";
        assert!(RunConfig::parse(Path::new("x.toml"), head, None).is_ok());
        assert_eq!(key_of(&format!("{head}beta1 = 1.5\n")), "train.beta1");
        assert_eq!(
            key_of(&format!("{head}energy_limit = -1.0\n")),
            "train.energy_limit"
        );
        assert_eq!(
            key_of(&format!("{head}checkpoint = \"c.bpk\"\n")),
            "train.checkpoint"
        );
    }
}
