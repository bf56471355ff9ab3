//! A suite: a folder of run configs (the standard one ships in `configs/table/`, the quick one in
//! `configs/quick/`), run side by side (`--jobs`) into one results folder, then printed as the
//! review-style table (one table per data set, a row per config and sampler, mean ± sd over
//! seeds) and a gallery page linking every run's plots.

use crate::config::{ConfigError, DataSet, RunConfig};
use crate::error::{Error, Result};
use crate::metrics::Row;
use crate::run::{
    GALLERY_IMAGES, GALLERY_POINTS, RunOptions, csv, read_gallery_density, read_gallery_samples,
    run, write_json,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use zoo_energy::BackendKind;
use zoo_energy::io::write_atomic;

/// The configs of a suite, validated together before anything runs.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The folder they came from.
    pub dir: PathBuf,
    /// The configs, in file-name order.
    pub configs: Vec<RunConfig>,
}

impl Suite {
    /// Reads every `*.toml` of `dir` (sorted by name); `backend` overrides the files'.
    pub fn load(
        dir: &Path,
        backend: Option<BackendKind>,
    ) -> std::result::Result<Self, ConfigError> {
        let fail = |message: String| ConfigError::new(dir, "", message);
        let entries = std::fs::read_dir(dir)
            .map_err(|e| fail(format!("cannot read the suite folder: {e}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(fail("holds no *.toml config".into()));
        }
        let mut configs: Vec<RunConfig> = Vec::new();
        for f in files {
            let c = RunConfig::load(&f, backend)?;
            if let Some(other) = configs.iter().find(|o| o.name == c.name) {
                return Err(ConfigError {
                    file: f,
                    key: "name".into(),
                    message: format!(
                        "{:?} is also the name of {}: every run needs its own folder",
                        c.name,
                        other.file.display()
                    ),
                });
            }
            configs.push(c);
        }
        // Table order: the 2-D sets in their usual order, digits last; families in review order.
        configs.sort_by_key(|c| {
            let set = match c.data {
                DataSet::Toy(t) => zoo_data::Toy2d::ALL
                    .iter()
                    .position(|s| *s == t)
                    .unwrap_or(0),
                DataSet::Digits => usize::MAX,
            };
            let family = crate::config::Family::ALL
                .iter()
                .position(|f| *f == c.family)
                .unwrap_or(0);
            (set, family)
        });
        Ok(Suite {
            dir: dir.into(),
            configs,
        })
    }
}

impl Suite {
    /// The `index`-th (from 1) of `count` disjoint slices of the suite, for runs spread over
    /// machines: config k (in table order, from 0) belongs to slice k mod count + 1, so every
    /// slice gets a share of each data set. The slices together are the suite.
    pub fn shard(&self, index: usize, count: usize) -> Result<Suite> {
        if count == 0 || index == 0 || index > count {
            return Err(Error::Suite(format!(
                "invalid shard {index}/{count}: need 1 <= I <= N"
            )));
        }
        let configs = self
            .configs
            .iter()
            .enumerate()
            .filter(|(k, _)| k % count == index - 1)
            .map(|(_, c)| c.clone())
            .collect();
        Ok(Suite {
            dir: self.dir.clone(),
            configs,
        })
    }

    /// How many configs to run at a time by default: one per available core on the CPU
    /// backends, one when a config runs on wgpu (its runs share the one device).
    pub fn default_jobs(&self) -> usize {
        if self.configs.iter().any(|c| c.backend == BackendKind::Wgpu) {
            return 1;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Parses `I/N` (a shard of `zoo table --shard`).
pub fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let bad = || Error::Suite(format!("invalid shard {text:?}: write I/N, e.g. 2/8"));
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(Error::Suite(format!(
            "invalid shard {text:?}: need 1 <= I <= N"
        )));
    }
    Ok((i, n))
}

/// Runs every config of `suite` into `opts.out` (resuming; finished runs are read back) and
/// returns their rows in suite order. `opts.jobs` configs run at a time, each worker on its own
/// rayon pool of (threads / jobs) threads and taking the next config when it is done (the small
/// 2-D models keep about one core busy: on 2 cores the standard suite took 514 s with two jobs
/// against 1092 s one after the other). The metrics depend on the threads per run in the last
/// digits (GEMM reductions split by thread: about 1e-7 relative on the digits, 1e-8 on a small
/// RealNVP), so one thread per job, the default, gives the same numbers on every machine. With
/// several jobs the training progress bars are off. After a failure no new config starts; the first failing config's
/// error (in suite order) is returned. With `opts.verbose`, a line per run says how many are
/// done and an estimate of the time left.
pub fn run_all(suite: &Suite, opts: &RunOptions) -> Result<Vec<Row>> {
    let total = suite.configs.len();
    let jobs = opts.jobs.clamp(1, total.max(1));
    let per_run = RunOptions {
        progress: opts.progress && jobs == 1,
        ..opts.clone()
    };
    let pools = worker_pools(opts.jobs, jobs)?;
    let tally = Tally::new(
        zoo_mcmc::progress::bar(opts.progress, total, "suite"),
        total,
        jobs,
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = std::sync::Mutex::new((0..total).map(|_| None).collect::<Vec<_>>());
    let work = || loop {
        use std::sync::atomic::Ordering::SeqCst;
        let k = next.fetch_add(1, SeqCst);
        if k >= total || failed.load(SeqCst) {
            break;
        }
        let cfg = &suite.configs[k];
        let (t, before) = (std::time::Instant::now(), finished(&opts.out, cfg));
        let out = run(cfg, &per_run);
        failed.fetch_or(out.is_err(), SeqCst);
        tally.done(cfg, t.elapsed().as_secs_f64(), !before, opts.verbose);
        results.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(out);
    };
    match &pools {
        None => work(),
        Some(pools) => std::thread::scope(|s| {
            for pool in pools {
                s.spawn(|| pool.install(&work));
            }
        }),
    }
    tally.bar.finish_and_clear();
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut rows = Vec::new();
    for out in results.into_iter().flatten() {
        rows.extend(out?);
    }
    Ok(rows)
}

/// `workers` rayon pools of (threads / `jobs`) threads each (at least one), also when fewer
/// configs than jobs are left to run (a run's threads, and so its last digits, depend on
/// `jobs` alone); `None` for one job (the global pool).
fn worker_pools(jobs: usize, workers: usize) -> Result<Option<Vec<rayon::ThreadPool>>> {
    if jobs <= 1 {
        return Ok(None);
    }
    let threads = (rayon::current_num_threads() / jobs).max(1);
    (0..workers)
        .map(|_| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| Error::Suite(format!("cannot start a worker's threads: {e}")))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The suite's progress: runs done, and the time of those computed (not read back).
struct Tally {
    bar: indicatif::ProgressBar,
    total: usize,
    jobs: usize,
    started: std::time::Instant,
    /// (runs done, runs computed, seconds computing them)
    counts: std::sync::Mutex<(usize, usize, f64)>,
}

impl Tally {
    fn new(bar: indicatif::ProgressBar, total: usize, jobs: usize) -> Self {
        Self {
            bar,
            total,
            jobs,
            started: std::time::Instant::now(),
            counts: std::sync::Mutex::new((0, 0, 0.0)),
        }
    }

    /// Counts `cfg` done after `secs` (`computed`: not read back) and, with `verbose`, says so
    /// with the time left: the mean time of the runs computed so far times those left, over the
    /// jobs.
    fn done(&self, cfg: &RunConfig, secs: f64, computed: bool, verbose: bool) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.0 += 1;
        if computed {
            (c.1, c.2) = (c.1 + 1, c.2 + secs);
        }
        self.bar.inc(1);
        if !verbose {
            return;
        }
        let left = self.total - c.0;
        let eta = match c.1 {
            0 => "unknown".to_string(),
            n => format!(
                "{:.1} min",
                c.2 / n as f64 * left as f64 / self.jobs as f64 / 60.0
            ),
        };
        self.bar.suspend(|| {
            eprintln!(
                "table: {}/{} runs done ({}, {secs:.1} s; {:.1} min so far); about {eta} left",
                c.0,
                self.total,
                cfg.name,
                self.started.elapsed().as_secs_f64() / 60.0
            )
        });
    }
}

/// Whether every seed of `cfg` has its metrics in `out/<name>/` (a finished run).
fn finished(out: &Path, cfg: &RunConfig) -> bool {
    let dir = out.join(&cfg.name);
    std::fs::read_to_string(dir.join("config.toml")).is_ok_and(|t| t == cfg.text)
        && std::fs::read_to_string(dir.join("backend"))
            .is_ok_and(|b| b.trim() == cfg.backend.name())
        && cfg
            .seeds
            .iter()
            .all(|s| dir.join(format!("seed-{s}/metrics.json")).exists())
}

/// Gathers the finished runs of `suite` from the results folders `from` (e.g. one per shard)
/// into `out`: each run folder missing from `out` is copied from the first folder that holds it
/// finished (same config text and backend). Every run must be found finished somewhere; the
/// error lists those that are not. Then `table` on `out` reads everything back.
pub fn merge(suite: &Suite, from: &[PathBuf], out: &Path) -> Result<()> {
    // Every run is found before anything is copied: a failed merge writes nothing.
    let (mut copies, mut missing) = (Vec::new(), Vec::new());
    for cfg in suite.configs.iter().filter(|c| !finished(out, c)) {
        match from.iter().find(|d| finished(d, cfg)) {
            Some(src) => copies.push((src.join(&cfg.name), out.join(&cfg.name))),
            None => missing.push(cfg.name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Suite(format!(
            "{} of {} runs are finished in none of the folders: {}",
            missing.len(),
            suite.configs.len(),
            missing.join(", ")
        )));
    }
    for (src, dst) in &copies {
        copy_run(src, dst)?;
    }
    Ok(())
}

/// Copies the run folder `src` to `dst` through a temporary sibling and a rename, replacing an
/// unfinished `dst`.
fn copy_run(src: &Path, dst: &Path) -> Result<()> {
    let io = |what: &str, p: &Path| Error::io(format!("{what} {}", p.display()));
    let parent = dst.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    let name = dst.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.merge{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_tree(src, &tmp)?;
    if dst.exists() {
        std::fs::remove_dir_all(dst).map_err(io("removing", dst))?;
    }
    std::fs::rename(&tmp, dst).map_err(io("renaming onto", dst))
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let io = |what: &str, p: &Path| Error::io(format!("{what} {}", p.display()));
    std::fs::create_dir_all(dst).map_err(io("creating", dst))?;
    for entry in std::fs::read_dir(src).map_err(io("reading", src))? {
        let entry = entry.map_err(io("reading", src))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if entry.file_type().map_err(io("reading", &from))?.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(io("copying", &from))?;
        }
    }
    Ok(())
}

/// Runs every config of `suite` (resuming), writes `TABLE.md`, `table.json`, `table.csv` and
/// `gallery.md` into `opts.out`, and returns the markdown table.
pub fn table(suite: &Suite, opts: &RunOptions) -> Result<String> {
    if suite.configs.is_empty() {
        return Err(Error::Suite("the suite is empty".into()));
    }
    let rows = run_all(suite, opts)?;
    let md = markdown(&rows, &suite.configs);
    write_atomic(&opts.out.join("TABLE.md"), md.as_bytes())?;
    write_json(&opts.out.join("table.json"), &rows)?;
    write_atomic(&opts.out.join("table.csv"), csv(&rows).as_bytes())?;
    let composites = composites(&suite.configs, &opts.out)?;
    write_atomic(
        &opts.out.join("gallery.md"),
        gallery(&suite.configs, &opts.out, &composites).as_bytes(),
    )?;
    Ok(md)
}

/// The distinct items, in order of first appearance.
fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Mean and sample variance over seeds (variance 0 for one seed).
fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var)
}

/// Mean ± sd (over seeds) with `digits` decimals; a dash when no seed defines the metric.
fn cell(values: &[Option<f64>], digits: usize) -> String {
    let v: Vec<f64> = values.iter().flatten().copied().collect();
    let (m, var) = mean_var(&v);
    match v.len() {
        0 => "–".into(),
        1 => format!("{m:.digits$}"),
        _ => format!("{m:.digits$} ± {:.digits$}", var.sqrt()),
    }
}

/// The review-style table of `rows`: a section per data set, a row per (config, sampler).
pub fn markdown(rows: &[Row], configs: &[RunConfig]) -> String {
    let mut out = String::new();
    for set in distinct(rows.iter().map(|r| r.data.as_str())) {
        let here: Vec<&Row> = rows.iter().filter(|r| r.data == set).collect();
        let digits = set == DataSet::Digits.name();
        let _ = writeln!(out, "{}", heading(set, &here, digits));
        for (config, sampler) in
            distinct(here.iter().map(|r| (r.config.as_str(), r.sampler.as_str())))
        {
            let rs: Vec<&Row> = here
                .iter()
                .filter(|r| r.config == config && r.sampler == sampler)
                .copied()
                .collect();
            let _ = writeln!(out, "{}", table_line(&rs, sampler, digits));
        }
        let samples = configs
            .iter()
            .find(|c| c.data.name() == set)
            .map_or(0, |c| c.eval.samples);
        let _ = writeln!(out, "{}", footnote(&here, samples, digits));
    }
    out
}

/// A data set's heading and column header, with its references (true NLL, exact samples' TV,
/// the MMD² of as many training images).
fn heading(set: &str, here: &[&Row], digits: bool) -> String {
    let first_of = |f: &dyn Fn(&Row) -> Option<f64>| {
        here.iter()
            .find_map(|r| f(r))
            .map_or("–".to_string(), |v| format!("{v:.3}"))
    };
    let true_nll = first_of(&|r| r.true_nll);
    let floor = first_of(&|r| r.sample_tv_floor);
    let mmd_floor = here
        .iter()
        .find_map(|r| r.mmd2_floor)
        .map_or("–".to_string(), |v| format!("{v:.4}"));
    let fd_floor = first_of(&|r| r.fd_floor);
    if digits {
        format!(
            "\n### digits (8×8, 64 dimensions; as many training images as samples: MMD² {mmd_floor}, FD {fd_floor})\n\n| family | method | sampler | params | NLL (bits/dim) | NLL by | MMD² to test | FD | precision | recall | evals / sample | train s | ms / 1000 samples |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        )
    } else {
        format!(
            "\n### {set} (true density: held-out NLL {true_nll} nats; exact samples: TV {floor})\n\n| family | method | sampler | params | NLL (nats) | NLL by | TV (density) | TV (samples) | modes | mode-weight error | evals / sample | train s | ms / 1000 samples |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        )
    }
}

/// One table row: the seeds of one (config, sampler), mean ± sd per column.
fn table_line(rs: &[&Row], sampler: &str, digits: bool) -> String {
    let first = rs[0];
    let col = |f: &dyn Fn(&Row) -> Option<f64>, d: usize| {
        cell(&rs.iter().map(|r| f(r)).collect::<Vec<_>>(), d)
    };
    let nll = col(&|r| r.nll, 3);
    let tag = crate::metrics::estimator::tag(&first.nll_estimator);
    let evals = col(&|r| Some(r.evals_per_sample), 0);
    let train = col(&|r| Some(r.train_seconds), 1);
    let ms = col(&|r| Some(r.ms_per_1000_samples), 1);
    let mut sampler_cell = sampler.to_string();
    for (name, rate) in [
        ("acc.", col(&|r| r.acceptance, 2)),
        ("swap", col(&|r| r.swap_rate, 2)),
    ] {
        if rate != "–" {
            sampler_cell.push_str(&format!(", {name} {rate}"));
        }
    }
    let (family, method, params) = (&first.family, &first.method, first.params);
    if digits {
        let mmd = col(&|r| r.mmd2, 4);
        let (fd, precision, recall) = (
            col(&|r| r.fd, 3),
            col(&|r| r.precision, 3),
            col(&|r| r.recall, 3),
        );
        return format!(
            "| {family} | {method} | {sampler_cell} | {params} | {nll} | {tag} | {mmd} | {fd} | {precision} | {recall} | {evals} | {train} | {ms} |"
        );
    }
    let modes = match first.modes {
        Some(m) => format!("{} / {m}", col(&|r| r.modes_covered.map(|v| v as f64), 1)),
        None => "–".into(),
    };
    let (density_tv, sample_tv) = (col(&|r| r.density_tv, 3), col(&|r| r.sample_tv, 3));
    let weight_error = col(&|r| r.mode_weight_error, 3);
    format!(
        "| {family} | {method} | {sampler_cell} | {params} | {nll} | {tag} | {density_tv} | {sample_tv} | {modes} | {weight_error} | {evals} | {train} | {ms} |"
    )
}

/// What a data set's section measured and how: seeds, backend, estimators, references.
fn footnote(here: &[&Row], samples: usize, digits: bool) -> String {
    let mut seeds: Vec<u64> = here.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let seeds_text = seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let backend = &here[0].backend;
    let ode = ode_steps(here);
    if digits {
        format!(
            "\nSeeds {seeds_text} (mean ± sd over seeds), backend {backend}. Pixels p ∈ {{0..16}} dequantised as y = 2(p + u)/17 − 1, u ~ U(0, 1); NLL in bits per dimension of the discrete digits (the Jacobian of p → y included; an upper bound for a dequantised model) on the 299 test images. MMD²: Gaussian kernel, bandwidth by the median heuristic on training vs test images, {samples} samples vs the test images (as many training images score the MMD² in the heading, the finite-sample floor). FD, precision, recall: on the 32 penultimate features of a fixed MLP digit classifier (`zoo_data::features`, 64-128-32-10, trained once per process with a fixed seed), the Fréchet distance between Gaussians fitted to the samples' and the test images' features (FID's formula), and k-NN precision and recall with k = 5 (Kynkäänniemi et al. 2019); the heading's FD is that of as many training images. Evals / sample: network passes per sample (MCMC steps, NFE, one decoder or generator pass)."
        )
    } else {
        format!(
            "\nSeeds {seeds_text} (mean ± sd over seeds; each seed draws its own 20 000 training points, the held-out points are shared), backend {backend}. NLL in nats per point on held-out points: exact by quadrature of log Z on a 256² grid of the box for every model with an energy (EBMs, the GAN discriminator read as E = −D), exact by change of variables for flows, the PF-ODE estimate ({ode} RK4 steps, exact divergence) for diffusion models and the same change of variables along the learned ODE for flow matching, the IWAE bound (a VAE with a Gaussian prior) or IWAE with the prior's log Z estimated by SMC and importance sampling (EBM prior). TV (density): the model's density against the truth by the same quadrature; TV (samples): a 64 × 64 histogram of {samples} samples against the true cell masses (exact samples of the same size score the TV in the heading, the finite-sample floor); modes: modes holding at least 20/2500 of the samples within 3σ (PacGAN protocol); mode-weight error: TV between the samples' nearest-mode shares and the true weights."
        )
    }
}

/// The RK4 step counts of the rows' ODE likelihoods ("50", "50 or 100"; "no" if none), read
/// from their estimator texts ("... (50 RK4 steps, ...)").
fn ode_steps(here: &[&Row]) -> String {
    let counts = distinct(here.iter().filter_map(|r| {
        let head = r.nll_estimator.split(" RK4 steps").next()?;
        (head.len() < r.nll_estimator.len()).then(|| head.rsplit('(').next().unwrap_or(head))
    }));
    if counts.is_empty() {
        "no".into()
    } else {
        counts.join(" or ")
    }
}

/// One picture per data set and kind, every run side by side (first seed): `gallery/<set>_samples.png`
/// (2-D: held-out data, then every config and sampler; digits: a row of test images, then a row
/// per config), `gallery/<set>_density.png` (the true density, then every model with one).
/// Returns (set, file, caption) per picture written.
fn composites(configs: &[RunConfig], out: &Path) -> Result<Vec<(String, String, String)>> {
    let mut written = Vec::new();
    let device = configs[0].backend.device()?;
    for set in distinct(configs.iter().map(|c| c.data)) {
        let here: Vec<&RunConfig> = configs.iter().filter(|c| c.data == set).collect();
        let data = crate::data::Prepared::new(set, here[0].seeds[0], &here[0].eval, &device)?;
        let pictures = match &data.truth {
            Some(truth) => toy_composites(&data, truth, &here, out)?,
            None => digit_composites(&data, &here, out)?,
        };
        let name = set.name().to_string();
        written.extend(pictures.into_iter().map(|(f, c)| (name.clone(), f, c)));
    }
    Ok(written)
}

/// The first seed's folder of a run.
fn first_seed_dir(c: &RunConfig, out: &Path) -> PathBuf {
    out.join(&c.name).join(format!("seed-{}", c.seeds[0]))
}

/// A 2-D set: every run's samples next to the held-out data, every density next to the truth.
fn toy_composites(
    data: &crate::data::Prepared,
    truth: &crate::data::Truth,
    here: &[&RunConfig],
    out: &Path,
) -> Result<Vec<(String, String)>> {
    use zoo_plot::{HeatMap, Scatter, heat_map_grid, scatter_grid};
    let name = data.set.name();
    let bounds = truth.density.bounds();
    let mut panels = vec![Scatter {
        title: format!("{name}: held-out data"),
        bounds,
        points: data.test[..data.test.len().min(2 * GALLERY_POINTS)].to_vec(),
    }];
    let heat = |title: String, values: Vec<f64>| HeatMap {
        title,
        n: truth.grid.n,
        bounds,
        values,
    };
    let mut maps = vec![heat(
        format!("{name}: true density"),
        truth.grid_density.clone(),
    )];
    for c in here {
        let dir = first_seed_dir(c, out);
        for (k, s) in c.samplers.iter().enumerate() {
            if let Some(points) = read_gallery_samples(&dir, k) {
                let title = format!("{} {}: {}", c.family.name(), c.method, s.label());
                panels.push(Scatter {
                    title,
                    bounds,
                    points,
                });
            }
        }
        if let Some(values) = read_gallery_density(&dir) {
            maps.push(heat(format!("{} {}", c.family.name(), c.method), values));
        }
    }
    let samples = format!("gallery/{name}_samples.png");
    scatter_grid(&out.join(&samples), &panels, Some(6))?;
    let density = format!("gallery/{name}_density.png");
    heat_map_grid(&out.join(&density), &maps, Some(6))?;
    Ok(vec![
        (
            samples,
            "samples (first seed) next to the held-out data".to_string(),
        ),
        (
            density,
            "learned densities next to the true one (models with an energy or a density)"
                .to_string(),
        ),
    ])
}

/// Digits: a row of test images, then a row per run and sampler.
fn digit_composites(
    data: &crate::data::Prepared,
    here: &[&RunConfig],
    out: &Path,
) -> Result<Vec<(String, String)>> {
    let d = data.dim;
    let side = (d as f64).sqrt() as usize;
    let mut images: Vec<Vec<f32>> = data
        .test
        .chunks(d)
        .take(GALLERY_IMAGES)
        .map(crate::data::to_unit)
        .collect();
    let mut rows = vec!["held-out test images".to_string()];
    for c in here {
        for (k, s) in c.samplers.iter().enumerate() {
            if let Some(x) = read_gallery_samples(&first_seed_dir(c, out), k) {
                images.extend(x.chunks(d).take(GALLERY_IMAGES).map(crate::data::to_unit));
                rows.push(format!("{} {}: {}", c.family.name(), c.method, s.label()));
            }
        }
    }
    let file = format!("gallery/{}_samples.png", data.set.name());
    zoo_plot::image_grid(&out.join(&file), &images, side, GALLERY_IMAGES)?;
    Ok(vec![(
        file,
        format!("rows, top to bottom: {}", rows.join("; ")),
    )])
}

/// The gallery: the side-by-side pictures, then every run's plots, linked relative to `out`.
fn gallery(configs: &[RunConfig], out: &Path, composites: &[(String, String, String)]) -> String {
    let mut md = String::from(
        "# Gallery\n\nThe first seed of every run: samples next to the held-out data, the learned density next to the true one (models with an energy or a density), the training curves of every seed.\n",
    );
    for (set, file, caption) in composites {
        let _ = writeln!(md, "\n**{set}**: {caption}\n\n![{set}]({file})");
    }
    for set in distinct(configs.iter().map(|c| c.data.name())) {
        let _ = writeln!(md, "\n## {set}\n");
        for c in configs.iter().filter(|c| c.data.name() == set) {
            let seed = c.seeds[0];
            let base = format!("{}/seed-{seed}", c.name);
            let _ = writeln!(md, "### {} {} (`{}`)\n", c.family.name(), c.method, c.name);
            for (file, alt) in [
                ("samples.png", "samples"),
                ("density.png", "density"),
                ("samples_0.png", "samples"),
            ] {
                if out.join(&base).join(file).exists() {
                    let _ = writeln!(md, "![{alt}]({base}/{file})");
                }
            }
            if out.join(&c.name).join("curve.png").exists() {
                let _ = writeln!(md, "![training curve]({}/curve.png)", c.name);
            }
            md.push('\n');
        }
    }
    md
}

/// How two tables of the same suite (two backends, two machines) agree, metric by metric.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Agreement {
    /// The metric.
    pub metric: String,
    /// (config, sampler) rows where both tables define it.
    pub rows: usize,
    /// Rows whose means differ by at most `k` standard errors of the difference.
    pub within: usize,
    /// The rows that do not, with both means and the standard error of the difference.
    pub outside: Vec<(String, f64, f64, f64)>,
}

/// Compares the means over seeds of two tables' rows: for every (config, sampler) and metric,
/// the difference of the means against `k` times its standard error, sqrt(sd_a²/n_a + sd_b²/n_b)
/// from the spread over seeds (at least 1e-3 of the mean, so identical seeds do not demand
/// bit-equality).
pub fn compare(a: &[Row], b: &[Row], k: f64) -> Vec<Agreement> {
    type Get = fn(&Row) -> Option<f64>;
    let metrics: [(&str, Get); 8] = [
        ("nll", |r| r.nll),
        ("density_tv", |r| r.density_tv),
        ("sample_tv", |r| r.sample_tv),
        ("modes_covered", |r| r.modes_covered.map(|m| m as f64)),
        ("mode_weight_error", |r| r.mode_weight_error),
        ("mmd2", |r| r.mmd2),
        ("fd", |r| r.fd),
        ("evals_per_sample", |r| Some(r.evals_per_sample)),
    ];
    let stats = |rows: &[Row], key: (&str, &str), get: Get| -> Option<(f64, f64, usize)> {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| (r.config.as_str(), r.sampler.as_str()) == key)
            .filter_map(get)
            .collect();
        if v.is_empty() {
            return None;
        }
        let (m, var) = mean_var(&v);
        Some((m, var, v.len()))
    };
    let keys = distinct(a.iter().map(|r| (r.config.as_str(), r.sampler.as_str())));
    metrics
        .iter()
        .map(|(name, get)| {
            let mut agreement = Agreement {
                metric: name.to_string(),
                rows: 0,
                within: 0,
                outside: Vec::new(),
            };
            for &key in &keys {
                let (Some((ma, va, na)), Some((mb, vb, nb))) =
                    (stats(a, key, *get), stats(b, key, *get))
                else {
                    continue;
                };
                agreement.rows += 1;
                let se = (va / na as f64 + vb / nb as f64)
                    .sqrt()
                    .max(1e-3 * ma.abs().max(mb.abs()));
                if (ma - mb).abs() <= k * se {
                    agreement.within += 1;
                } else {
                    agreement
                        .outside
                        .push((format!("{} / {}", key.0, key.1), ma, mb, se));
                }
            }
            agreement
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(config: &str, seed: u64, nll: f64) -> Row {
        Row {
            config: config.into(),
            data: "8gaussians".into(),
            family: "flow".into(),
            method: "nsf".into(),
            sampler: "exact".into(),
            seed,
            backend: "flex".into(),
            params: 10,
            nll: Some(nll),
            nll_se: Some(0.01),
            nll_unit: "nats".into(),
            nll_estimator: "exact (change of variables)".into(),
            true_nll: Some(1.6),
            density_tv: None,
            sample_tv: Some(0.2),
            sample_tv_floor: Some(0.1),
            modes_covered: Some(8),
            modes: Some(8),
            mode_weight_error: Some(0.05),
            high_quality: Some(0.9),
            mmd2: None,
            mmd2_floor: None,
            fd: None,
            fd_floor: None,
            precision: None,
            recall: None,
            evals_per_sample: 1.0,
            acceptance: None,
            swap_rate: None,
            train_seconds: 1.0,
            ms_per_1000_samples: 1.0,
        }
    }

    #[test]
    fn cells_are_mean_and_sd_over_seeds_or_a_dash() {
        assert_eq!(cell(&[Some(1.0), Some(3.0)], 2), "2.00 ± 1.41");
        assert_eq!(cell(&[Some(1.5)], 1), "1.5");
        assert_eq!(cell(&[None, None], 1), "–");
    }

    #[test]
    fn compare_flags_a_difference_beyond_the_seed_spread_and_only_that() {
        let a = vec![
            row("x", 0, 2.0),
            row("x", 1, 2.2),
            row("y", 0, 1.0),
            row("y", 1, 1.0),
        ];
        // x moves by 0.1 with a spread of 0.14 per seed: within; y moves by 0.5 with no spread.
        let b = vec![
            row("x", 0, 2.1),
            row("x", 1, 2.3),
            row("y", 0, 1.5),
            row("y", 1, 1.5),
        ];
        let nll = compare(&a, &b, 3.0)
            .into_iter()
            .find(|g| g.metric == "nll")
            .unwrap();
        assert_eq!((nll.rows, nll.within), (2, 1));
        assert!(nll.outside[0].0.starts_with("y /"));
        // A table agrees with itself on every metric it defines.
        for g in compare(&a, &a, 3.0) {
            assert_eq!(g.within, g.rows, "{}", g.metric);
        }
    }

    #[test]
    fn the_footnote_names_the_rows_ode_step_counts() {
        let mut a = row("a", 0, 2.0);
        let mut b = row("b", 0, 2.0);
        let c = row("c", 0, 2.0);
        a.nll_estimator = "PF-ODE (50 RK4 steps, exact divergence)".into();
        b.nll_estimator = "flow-matching ODE (100 RK4 steps, exact divergence)".into();
        assert_eq!(ode_steps(&[&a, &b, &c, &a]), "50 or 100");
        assert_eq!(ode_steps(&[&c]), "no");
        assert!(footnote(&[&a, &c], 4000, false).contains("PF-ODE estimate (50 RK4 steps"));
    }

    #[test]
    fn every_estimator_text_gets_its_own_tag() {
        use crate::metrics::estimator::*;
        let texts = [
            QUADRATURE.to_string(),
            DISCRIMINATOR.to_string(),
            FLOW.to_string(),
            format!("{PF_ODE} (100 RK4 steps, exact divergence)"),
            format!("{IWAE_BOUND} (K = 200)"),
            format!("{IWAE_LOG_Z} (K = 200) with the prior's log Z by SMC / IS (an estimate)"),
        ];
        let tags: Vec<&str> = texts.iter().map(|t| tag(t)).collect();
        assert!(!tags.contains(&"–"), "{tags:?}");
        assert_eq!(
            distinct(tags.iter().copied()).len(),
            texts.len(),
            "{tags:?}"
        );
        assert_eq!(tag("IWAEX"), "–");
    }

    #[test]
    fn markdown_has_a_row_per_config_and_sampler_and_names_the_estimator() {
        let rows = vec![row("x", 0, 2.0), row("x", 1, 2.2)];
        let md = markdown(&rows, &[]);
        assert_eq!(md.matches("| flow | nsf | exact |").count(), 1, "{md}");
        assert!(md.contains("2.100 ± 0.141 | exact (flow)"), "{md}");
        assert!(md.contains("Seeds 0, 1"), "{md}");
    }
}
