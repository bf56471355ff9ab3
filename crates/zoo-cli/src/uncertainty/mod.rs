//! `zoo uncertainty graph`: energy-based out-of-distribution detection on graphs (GEBM and its
//! baselines under five distribution shifts), written as markdown, JSON and CSV tables and one
//! PNG of score histograms per shift. Every setting is checked before anything is written.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use zoo_data::GraphData;
use zoo_energy::io::write_atomic;
use zoo_energy::{BackendKind, seeded};
use zoo_uncertainty::experiment::{self, GraphExperimentConfig, ShiftResult};
mod jem;

use zoo_uncertainty::{CsbmConfig, GcnConfig, GebmConfig, Graph, SCORES, Shift, ShiftConfig};

/// The workloads of `zoo uncertainty`.
#[derive(Debug, Subcommand)]
pub enum UncertaintyCommand {
    /// Node-level OOD detection with a GCN: GEBM against the logit energy, maximum softmax,
    /// Mahalanobis and GNNSafe, on Cora, CiteSeer, a CSBM or an `.npz` graph.
    Graph(GraphArgs),
    /// Classifiers as energies: a plain MLP classifier against JEM (the same network trained as a
    /// hybrid generative model), accuracy and OOD AUROCs, samples from JEM's replay buffer.
    Jem(JemArgs),
}

/// Arguments of `zoo uncertainty jem`.
#[derive(Debug, Args)]
pub struct JemArgs {
    /// `8gaussians` (8 classes; out of distribution: uniform noise on the ring 3 <= r <= 4) or
    /// `digits` (classes 0-4 in distribution; out: classes 5-9 and uniform noise images).
    #[arg(long, default_value = "8gaussians")]
    data: String,
    /// Adam steps of each model.
    #[arg(long, default_value_t = 3000)]
    iterations: usize,
    /// alpha of JEM's SGLD x <- x - alpha grad E + sigma xi (default: JEM's 1 for digits; 0.003
    /// in 2-D, where gradients are far larger than per pixel: 0.05 sends the chains to the modes
    /// within a few steps and leaves the space between them unconstrained, docs/uncertainty.md).
    #[arg(long, allow_negative_numbers = true)]
    sgld_step: Option<f64>,
    /// sigma of JEM's SGLD.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    sgld_noise: f64,
    /// Temperature T of the energy scores.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    temperature: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Output folder (`jem.md`, `jem.json`, `jem-samples.png`).
    #[arg(long, default_value = "results/jem")]
    out: PathBuf,
}

/// Arguments of `zoo uncertainty graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// `cora`, `citeseer`, `csbm` (1200 nodes, 5 blocks, 16 features) or a path to an `.npz`
    /// graph in the Shchur et al. packaging.
    #[arg(long, default_value = "cora")]
    graph: String,
    /// Seeds 0..N.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Comma-separated shifts: leave_out_class, feature_far, feature_near, homophily, cluster
    /// (or `all`).
    #[arg(long, default_value = "all")]
    shifts: String,
    /// Share of the nodes a shift perturbs, in (0, 1).
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    fraction: f64,
    /// Comma-separated classes left out by leave_out_class (default: the last class).
    #[arg(long)]
    held_out: Option<String>,
    /// Temperature T of the energies -T logsumexp(l / T).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    temperature: f64,
    /// GEBM's gamma in e = l - gamma d~.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    gamma: f64,
    /// Labelled training nodes per class.
    #[arg(long, default_value_t = 20)]
    labels_per_class: usize,
    /// Full-batch Adam epochs of the GCN.
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// Hidden width of the GCN.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Keep the `.npz` features as stored (default: each node's features divided by their sum,
    /// Kipf & Welling's preprocessing; the shifts act on the features the network sees).
    #[arg(long)]
    raw_features: bool,
    /// flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Output folder (`uncertainty.md`, `.json`, `.csv`, `hist-<shift>.png`).
    #[arg(long, default_value = "results/uncertainty")]
    out: PathBuf,
}

/// Runs a `zoo uncertainty` workload.
pub fn run(command: UncertaintyCommand) -> Result<()> {
    match command {
        UncertaintyCommand::Graph(args) => graph(args),
        UncertaintyCommand::Jem(args) => jem::run(args),
    }
}

fn load_graph(name: &str, raw: bool) -> Result<Graph> {
    if name == "csbm" {
        return Ok(CsbmConfig::default().sample(&mut seeded(0))?);
    }
    let data = if zoo_data::graphs::SHIPPED.contains(&name) {
        GraphData::shipped(name)?
    } else if name.ends_with(".npz") {
        GraphData::read(Path::new(name))?
    } else {
        bail!("unknown graph '{name}'; known: cora, citeseer, csbm, or a path to an .npz file");
    };
    let mut graph = Graph::new(
        data.nodes,
        &data.edges,
        data.features,
        data.labels,
        data.classes,
    )?;
    if !raw {
        graph.normalize_rows();
    }
    Ok(graph)
}

fn parse_shifts(text: &str) -> Result<Vec<Shift>> {
    if text == "all" {
        return Ok(Shift::ALL.to_vec());
    }
    text.split(',')
        .map(|s| Ok(Shift::parse(s.trim())?))
        .collect()
}

fn config(args: &GraphArgs, graph: &Graph) -> Result<GraphExperimentConfig> {
    let held_out = match &args.held_out {
        None => vec![graph.classes as u32 - 1],
        Some(t) if t.trim().is_empty() => vec![],
        Some(t) => t
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<u32>()
                    .with_context(|| format!("--held-out: '{c}' is not a class index"))
            })
            .collect::<Result<_>>()?,
    };
    let cfg = settings(args, held_out)?;
    cfg.check(graph)?;
    Ok(cfg)
}

/// The experiment's settings from the flags, with the held-out classes given.
fn settings(args: &GraphArgs, held_out: Vec<u32>) -> Result<GraphExperimentConfig> {
    Ok(GraphExperimentConfig {
        seeds: (0..args.seeds).collect(),
        shifts: parse_shifts(&args.shifts)?,
        shift: ShiftConfig {
            fraction: args.fraction,
            held_out,
        },
        labels_per_class: args.labels_per_class,
        gcn: GcnConfig {
            epochs: args.epochs,
            hidden: args.hidden,
            ..GcnConfig::default()
        },
        gebm: GebmConfig {
            temperature: args.temperature,
            gamma: args.gamma,
            ..GebmConfig::default()
        },
    })
}

fn graph(args: GraphArgs) -> Result<()> {
    // Everything is checked before the graph is loaded or anything written.
    let probe = settings(&args, vec![0])?;
    let two_classes = Graph::new(2, &[], vec![0.0, 0.0], vec![0, 1], 2)?;
    probe.check(&two_classes)?;
    let device = args.backend.parse::<BackendKind>()?.device()?;
    let graph = load_graph(&args.graph, args.raw_features)?;
    let cfg = config(&args, &graph)?;
    eprintln!(
        "{}: {} nodes, {} edges, {} features, {} classes; {} shifts x {} seeds",
        args.graph,
        graph.nodes(),
        graph.edges(),
        graph.dim,
        graph.classes,
        cfg.shifts.len(),
        cfg.seeds.len()
    );
    let started = std::time::Instant::now();
    let results = experiment::run(&graph, &cfg, &device, &mut |line| eprintln!("  {line}"))?;
    let name = Path::new(&args.graph)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("graph");
    write_outputs(
        &args.out,
        name,
        &cfg,
        &results,
        started.elapsed().as_secs_f64(),
    )?;
    print!("{}", experiment::markdown(name, &results));
    Ok(())
}

fn write_outputs(
    out: &Path,
    name: &str,
    cfg: &GraphExperimentConfig,
    results: &[ShiftResult],
    seconds: f64,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let md = experiment::markdown(name, results);
    write_atomic(&out.join("uncertainty.md"), md.as_bytes())?;
    write_atomic(
        &out.join("uncertainty.csv"),
        experiment::csv(name, &cfg.seeds, results).as_bytes(),
    )?;
    let json = json!({
        "graph": name,
        "seeds": cfg.seeds,
        "fraction": cfg.shift.fraction,
        "held_out": cfg.shift.held_out,
        "labels_per_class": cfg.labels_per_class,
        "gcn": cfg.gcn,
        "gebm": cfg.gebm,
        "scores": SCORES.iter().map(|(n, what)| json!({"name": n, "what": what})).collect::<Vec<_>>(),
        "results": results,
        "seconds": seconds,
    });
    write_atomic(
        &out.join("uncertainty.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    for r in results {
        let panels: Vec<zoo_plot::Histogram> = SCORES
            .iter()
            .zip(&r.first_scores)
            .map(|((score, _), (id, ood))| zoo_plot::Histogram {
                title: score.to_string(),
                series: vec![
                    ("in-distribution".into(), id.clone()),
                    ("out-of-distribution".into(), ood.clone()),
                ],
            })
            .collect();
        zoo_plot::histograms(
            &out.join(format!("hist-{}.png", r.shift.name())),
            &panels,
            3,
        )?;
    }
    Ok(())
}
