//! One config, every seed, into a results folder that survives being killed:
//!
//! ```text
//! <out>/<name>/config.toml          the config as given
//! <out>/<name>/backend              the backend it runs on (another backend is refused)
//! <out>/<name>/seed-<s>/train.ckpt   the training state every 100 iterations (mid-training resume)
//! <out>/<name>/seed-<s>/checkpoint/  the trained model (burnpack), written before train.json
//! <out>/<name>/seed-<s>/train.json   stage 1 done: training seconds and the checkpoint's files
//! <out>/<name>/seed-<s>/curve.csv    the training curve
//! <out>/<name>/seed-<s>/*.png        samples, density heat map next to the truth (first seed)
//! <out>/<name>/seed-<s>/metrics.json stage 2 done: the rows of this seed
//! <out>/<name>/metrics.json, .csv    every seed's rows; curve.png
//! ```
//!
//! Every file is written atomically (temporary file, then rename), and each stage's marker is
//! written after everything the stage produced, so a run killed at any point restarts from the
//! last finished stage: a seed with `metrics.json` is read back, a seed with `train.json` is
//! evaluated from its checkpoint, any other seed continues training from its `train.ckpt`
//! (every family but the RBM, which the runner does not train).

use crate::config::RunConfig;
use crate::data::{Prepared, to_unit};
use crate::error::{Error, Result};
use crate::family::{self, Curve, Files};
use crate::metrics::Row;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zoo_energy::io::write_atomic;
use zoo_plot::{HeatMap, Scatter, heat_maps, image_grid, scatter_grid};

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The results root: a run writes into `<out>/<name>/`.
    pub out: PathBuf,
    /// Progress bars for training.
    pub progress: bool,
    /// Stage messages on stderr.
    pub verbose: bool,
    /// Configs run at a time by a suite ([`crate::table::run_all`]), each on its own thread
    /// pool of (threads / jobs) threads; 1 runs them one after the other on every thread.
    /// The metrics depend on the threads per job in their last digits (threaded GEMM
    /// reductions), so the default (one job per core: one thread each) gives the same numbers
    /// on every machine.
    pub jobs: usize,
}

/// The stage-1 marker.
#[derive(Debug, Serialize, Deserialize)]
struct TrainMarker {
    seconds: f64,
    files: Vec<String>,
}

/// Runs every seed of `cfg` (resuming what a previous call left) and returns their rows.
pub fn run(cfg: &RunConfig, opts: &RunOptions) -> Result<Vec<Row>> {
    let dir = opts.out.join(&cfg.name);
    let config_path = dir.join("config.toml");
    match std::fs::read_to_string(&config_path) {
        Ok(old) if old != cfg.text => {
            return Err(Error::Suite(format!(
                "{} holds the results of a different config than {}; choose another --out or delete the folder",
                dir.display(),
                cfg.file.display()
            )));
        }
        Ok(_) => {}
        Err(_) => write_atomic(&config_path, cfg.text.as_bytes())?,
    }
    // Results of one backend are never read back as another's.
    let backend_path = dir.join("backend");
    match std::fs::read_to_string(&backend_path) {
        Ok(old) if old.trim() != cfg.backend.name() => {
            return Err(Error::Suite(format!(
                "{} holds {} results, not {}; choose another --out",
                dir.display(),
                old.trim(),
                cfg.backend.name()
            )));
        }
        Ok(_) => {}
        Err(_) => write_atomic(&backend_path, cfg.backend.name().as_bytes())?,
    }
    let device = cfg.backend.device()?;
    let mut rows = Vec::new();
    let mut curves = Vec::new();
    for (i, &seed) in cfg.seeds.iter().enumerate() {
        let seed_dir = dir.join(format!("seed-{seed}"));
        let (seed_rows, curve) = run_seed(cfg, seed, i == 0, &seed_dir, &device, opts)?;
        rows.extend(seed_rows);
        curves.push((seed, curve));
    }
    write_json(&dir.join("metrics.json"), &rows)?;
    write_atomic(&dir.join("metrics.csv"), csv(&rows).as_bytes())?;
    plot_curves(&dir.join("curve.png"), cfg, &curves)?;
    Ok(rows)
}

fn run_seed(
    cfg: &RunConfig,
    seed: u64,
    first: bool,
    dir: &Path,
    device: &burn::prelude::Device,
    opts: &RunOptions,
) -> Result<(Vec<Row>, Curve)> {
    let say = |what: &str| {
        if opts.verbose {
            eprintln!("{} seed {seed}: {what}", cfg.name);
        }
    };
    let metrics_path = dir.join("metrics.json");
    let train_path = dir.join("train.json");
    let curve_path = dir.join("curve.csv");
    if metrics_path.exists() {
        say("done (read back)");
        let rows: Vec<Row> = read_json(&metrics_path)?;
        return Ok((rows, read_curve(&curve_path)?));
    }
    let data = Prepared::new(cfg.data, seed, &cfg.eval, device)?;
    let (files, seconds, curve) = if train_path.exists() {
        say("trained; evaluating the checkpoint");
        let marker: TrainMarker = read_json(&train_path)?;
        let mut files: Files = Vec::new();
        for name in &marker.files {
            let p = dir.join("checkpoint").join(name);
            files.push((
                name.clone(),
                std::fs::read(&p).map_err(Error::io(format!("reading {}", p.display())))?,
            ));
        }
        (files, marker.seconds, read_curve(&curve_path)?)
    } else {
        say("training");
        // Families on the one training loop resume mid-training from this file.
        let resume = zoo_train::Resume::at(
            dir.join("train.ckpt"),
            &format!("{}\nbackend {}\nseed {seed}", cfg.text, cfg.backend.name()),
        );
        let trained = family::train(cfg, &data, seed, device, opts.progress, resume)?;
        if trained.resumed_from > 0 {
            say(&format!(
                "training resumed from its checkpoint at iteration {}",
                trained.resumed_from
            ));
        }
        for (name, bytes) in &trained.files {
            write_atomic(&dir.join("checkpoint").join(name), bytes)?;
        }
        write_atomic(&curve_path, curve_csv(&trained.curve).as_bytes())?;
        let marker = TrainMarker {
            seconds: trained.seconds,
            files: trained.files.iter().map(|(n, _)| n.clone()).collect(),
        };
        write_json(&train_path, &marker)?;
        say(&format!("trained in {:.1} s; evaluating", trained.seconds));
        (trained.files, trained.seconds, trained.curve)
    };
    let started = std::time::Instant::now();
    let evaluated = crate::evaluate::evaluate(cfg, &files, &data, seed, seconds, device)?;
    if first {
        plots(cfg, &data, &evaluated, dir)?;
        keep_for_gallery(&data, &evaluated, dir)?;
    }
    write_json(&metrics_path, &evaluated.rows)?;
    say(&format!(
        "evaluated in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok((evaluated.rows, curve))
}

/// Samples next to the data (2-D), sample grids (digits), the density next to the truth.
fn plots(
    cfg: &RunConfig,
    data: &Prepared,
    ev: &crate::evaluate::Evaluated,
    dir: &Path,
) -> Result<()> {
    const SHOWN: usize = 4000;
    match &data.truth {
        Some(truth) => {
            let bounds = truth.density.bounds();
            let mut panels = vec![Scatter {
                title: format!("{}: held-out data", cfg.data.name()),
                bounds,
                points: data.test[..data.test.len().min(2 * SHOWN)].to_vec(),
            }];
            for (label, x) in &ev.samples {
                panels.push(Scatter {
                    title: format!("{} {}: {label}", cfg.family.name(), cfg.method),
                    bounds,
                    points: x[..x.len().min(2 * SHOWN)].to_vec(),
                });
            }
            scatter_grid(&dir.join("samples.png"), &panels, Some(panels.len().min(4)))?;
            if let Some(q) = &ev.density {
                heat_maps(
                    &dir.join("density.png"),
                    &[
                        HeatMap {
                            title: "true density".into(),
                            n: truth.grid.n,
                            bounds,
                            values: truth.grid_density.clone(),
                        },
                        HeatMap {
                            title: format!("{} {}", cfg.family.name(), cfg.method),
                            n: truth.grid.n,
                            bounds,
                            values: q.clone(),
                        },
                    ],
                )?;
            }
        }
        None => {
            let d = data.dim;
            let side = (d as f64).sqrt() as usize;
            for (k, (_, x)) in ev.samples.iter().enumerate() {
                let images: Vec<Vec<f32>> = x.chunks(d).take(64).map(to_unit).collect();
                image_grid(&dir.join(format!("samples_{k}.png")), &images, side, 8)?;
            }
        }
    }
    Ok(())
}

/// Samples shown per panel of the gallery (2-D) and images per digits row.
pub(crate) const GALLERY_POINTS: usize = 2000;
pub(crate) const GALLERY_IMAGES: usize = 8;

/// The first seed's samples (`gallery_samples_K.csv`: 2-D points, or images on digits) and its
/// density grid (`gallery_density.f32`, little-endian), read back by the suite's gallery.
fn keep_for_gallery(data: &Prepared, ev: &crate::evaluate::Evaluated, dir: &Path) -> Result<()> {
    let d = data.dim;
    let keep = if data.truth.is_some() {
        GALLERY_POINTS
    } else {
        GALLERY_IMAGES
    };
    for (k, (_, x)) in ev.samples.iter().enumerate() {
        let mut text = String::new();
        for row in x.chunks(d).take(keep) {
            let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        write_atomic(
            &dir.join(format!("gallery_samples_{k}.csv")),
            text.as_bytes(),
        )?;
    }
    if let Some(q) = &ev.density {
        let bytes: Vec<u8> = q.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
        write_atomic(&dir.join("gallery_density.f32"), &bytes)?;
    }
    Ok(())
}

/// Reads `gallery_samples_K.csv` back (row-major values), `None` if absent.
pub(crate) fn read_gallery_samples(dir: &Path, k: usize) -> Option<Vec<f32>> {
    let text = std::fs::read_to_string(dir.join(format!("gallery_samples_{k}.csv"))).ok()?;
    text.lines()
        .flat_map(|l| l.split(','))
        .map(|v| v.parse().ok())
        .collect()
}

/// Reads `gallery_density.f32` back, `None` if absent.
pub(crate) fn read_gallery_density(dir: &Path) -> Option<Vec<f64>> {
    let bytes = std::fs::read(dir.join("gallery_density.f32")).ok()?;
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
    )
}

fn plot_curves(path: &Path, cfg: &RunConfig, curves: &[(u64, Curve)]) -> Result<()> {
    let mut series = Vec::new();
    for (seed, c) in curves {
        let stride = (c.rows.len() / 400).max(1);
        for (j, name) in c.columns.iter().enumerate().skip(1) {
            let pts: Vec<(f64, f64)> = c
                .rows
                .iter()
                .step_by(stride)
                .map(|r| (r[0], r[j]))
                .filter(|p| p.1.is_finite())
                .collect();
            series.push((format!("{name}, seed {seed}"), pts));
        }
    }
    if series.iter().all(|(_, s)| s.len() < 2) {
        return Ok(());
    }
    zoo_plot::curves(
        path,
        &format!("{}: training curve", cfg.name),
        "iteration",
        "loss",
        &series,
    )?;
    Ok(())
}

pub(crate) fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("rows serialise");
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn curve_csv(c: &Curve) -> String {
    let mut s = c.columns.join(",");
    s.push('\n');
    for r in &c.rows {
        let line: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
        s.push_str(&line.join(","));
        s.push('\n');
    }
    s
}

fn read_curve(path: &Path) -> Result<Curve> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let mut lines = text.lines();
    let columns = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(String::from)
        .collect();
    let corrupt = |message: String| Error::Corrupt {
        path: path.display().to_string(),
        message,
    };
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(str::parse).collect())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| corrupt(format!("not a number: {e}")))?;
    let width = Vec::<String>::len(&columns);
    if let Some(i) = rows.iter().position(|r| r.len() != width) {
        return Err(corrupt(format!(
            "line {} has {} fields, the header {width}",
            i + 2,
            rows[i].len()
        )));
    }
    Ok(Curve { columns, rows })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The rows as CSV, one column per field of [`Row`] (empty cells for undefined metrics).
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut header_done = false;
    for row in rows {
        let value = serde_json::to_value(row).expect("rows serialise");
        let obj = value.as_object().expect("a row is an object");
        if !header_done {
            out.push_str(&obj.keys().cloned().collect::<Vec<_>>().join(","));
            out.push('\n');
            header_done = true;
        }
        let cells: Vec<String> = obj
            .values()
            .map(|v| match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => csv_field(s),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}
