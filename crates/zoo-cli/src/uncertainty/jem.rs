//! `zoo uncertainty jem`: the plain classifier against JEM on one data set, same network, seed
//! and budget; accuracy, out-of-distribution AUROCs, and a picture of JEM's replay buffer.

use super::JemArgs;
use anyhow::{Result, bail};
use burn::prelude::*;
use rand::RngExt;
use serde_json::json;
use zoo_data::Toy2d;
use zoo_data::digits::{Digits, Split};
use zoo_energy::io::write_atomic;
use zoo_energy::tensor::from_host2;
use zoo_energy::{BackendKind, ZooRng, seeded};
use zoo_neural::Activation;
use zoo_uncertainty::classifier::{ClassifierReport, Labelled, evaluate, fit};
use zoo_uncertainty::{Classifier, JemConfig};

/// In-distribution train and test sets, the out-of-distribution sets, and the classes.
struct Task {
    train: Labelled,
    test: Labelled,
    ood: Vec<(String, Tensor<2>)>,
    classes: usize,
    init: (f64, f64),
}

fn eight_gaussians(rng: &mut ZooRng, device: &Device) -> Task {
    let density = Toy2d::EightGaussians.density();
    let mut labelled = |n: usize| {
        let x = density.sample_host(rng, n);
        let y = x
            .chunks(2)
            .map(|p| density.mode_of([p[0] as f64, p[1] as f64]))
            .collect();
        Labelled {
            x: from_host2(x, [n, 2], device),
            y,
        }
    };
    let (train, test) = (labelled(4000), labelled(2000));
    let ring: Vec<f32> = (0..2000)
        .flat_map(|_| {
            let (r, a) = (
                (9.0 + 7.0 * rng.random::<f64>()).sqrt(),
                rng.random::<f64>() * std::f64::consts::TAU,
            );
            [(r * a.cos()) as f32, (r * a.sin()) as f32]
        })
        .collect();
    let ood = vec![(
        "uniform ring 3 <= r <= 4".to_string(),
        from_host2(ring, [2000, 2], device),
    )];
    Task {
        train,
        test,
        ood,
        classes: 8,
        init: (-4.0, 4.0),
    }
}

fn digits(rng: &mut ZooRng, device: &Device) -> Result<Task> {
    let split = |s: Split, keep: &dyn Fn(usize) -> bool| -> Result<(Vec<f32>, Vec<usize>)> {
        let d = Digits::load(s)?;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (img, &l) in d.scaled().chunks(64).zip(&d.labels) {
            if keep(l as usize) {
                x.extend(img.iter().map(|v| 2.0 * v - 1.0));
                y.push(l as usize);
            }
        }
        Ok((x, y))
    };
    let labelled = |(x, y): (Vec<f32>, Vec<usize>)| Labelled {
        x: from_host2(x, [y.len(), 64], device),
        y,
    };
    let train = labelled(split(Split::Train, &|l| l < 5)?);
    let test = labelled(split(Split::Test, &|l| l < 5)?);
    let near = labelled(split(Split::Test, &|l| l >= 5)?);
    let noise: Vec<f32> = (0..500 * 64)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let far: Vec<f32> = noise.iter().map(|v| 5.0 * v).collect();
    let ood = vec![
        ("digits 5-9".to_string(), near.x),
        (
            "uniform noise images".to_string(),
            from_host2(noise, [500, 64], device),
        ),
        (
            "noise images x5 (outside the pixel range)".to_string(),
            from_host2(far, [500, 64], device),
        ),
    ];
    Ok(Task {
        train,
        test,
        ood,
        classes: 5,
        init: (-1.0, 1.0),
    })
}

/// Runs the comparison.
pub fn run(args: JemArgs) -> Result<()> {
    let device = args.backend.parse::<BackendKind>()?.device()?;
    let mut rng = seeded(args.seed);
    let task = match args.data.as_str() {
        "8gaussians" => eight_gaussians(&mut rng, &device),
        "digits" => digits(&mut rng, &device)?,
        other => bail!("unknown data '{other}' for jem; known: 8gaussians, digits"),
    };
    let alpha = args
        .sgld_step
        .unwrap_or(if args.data == "digits" { 1.0 } else { 0.003 });
    let cfg = JemConfig {
        iterations: args.iterations,
        sgld_step: alpha,
        sgld_noise: args.sgld_noise,
        init_low: task.init.0,
        init_high: task.init.1,
        ..JemConfig::default()
    };
    cfg.check()?;
    zoo_energy::check_positive("temperature", args.temperature)?;
    let dim = task.train.x.dims()[1];
    let widths = [dim, 128, 128, task.classes];
    let mut reports = Vec::new();
    let mut buffer = None;
    for generative in [false, true] {
        let name = if generative {
            "JEM"
        } else {
            "plain classifier"
        };
        eprintln!("training the {name} ({} iterations)", cfg.iterations);
        let mut rng = seeded(args.seed + 1);
        let mut model = Classifier::new(
            &mut rng,
            &widths,
            Activation::Silu,
            &device.clone().autodiff(),
        )?;
        let started = std::time::Instant::now();
        let (_, b) = fit(
            &mut rng,
            &mut model,
            &task.train.x,
            &task.train.y,
            &JemConfig {
                generative,
                ..cfg.clone()
            },
        )?;
        let report = evaluate(&model, &task.train, &task.test, &task.ood, args.temperature)?;
        reports.push((name, report, started.elapsed().as_secs_f64()));
        buffer = generative.then_some(b);
    }
    let md = markdown(&args.data, &reports);
    std::fs::create_dir_all(&args.out)?;
    write_atomic(&args.out.join("jem.md"), md.as_bytes())?;
    let json = json!({
        "data": args.data, "seed": args.seed, "config": cfg,
        "models": reports.iter().map(|(n, r, s)| json!({"model": n, "report": r, "seconds": s})).collect::<Vec<_>>(),
    });
    write_atomic(
        &args.out.join("jem.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    if let Some(buffer) = buffer {
        samples_png(&args, dim, &buffer)?;
    }
    print!("{md}");
    Ok(())
}

fn markdown(data: &str, reports: &[(&str, ClassifierReport, f64)]) -> String {
    let mut s = format!(
        "## JEM against the plain classifier: {data}\n\n| model | accuracy | OOD set | AUROC energy | AUROC max-softmax | AUROC Mahalanobis | FPR95 energy | seconds |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (name, r, secs) in reports {
        for o in &r.ood {
            s += &format!(
                "| {name} | {:.3} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {secs:.0} |\n",
                r.accuracy, o.set, o.energy, o.max_softmax, o.mahalanobis, o.energy_fpr95
            );
        }
    }
    s
}

/// 64 points of JEM's replay buffer: an image grid (digits) or a scatter plot (2-D).
fn samples_png(args: &JemArgs, dim: usize, buffer: &zoo_mcmc::sampler::ReplayBuffer) -> Result<()> {
    let (data, _) = buffer.contents();
    let n = (data.len() / dim).min(if dim == 2 { 2000 } else { 64 });
    let x = data[..n * dim].to_vec();
    let path = args.out.join("jem-samples.png");
    if dim == 2 {
        let panel = zoo_plot::Scatter {
            title: "JEM replay buffer".into(),
            bounds: (-4.0, 4.0),
            points: x,
        };
        zoo_plot::scatters(&path, &[panel])?;
    } else {
        let images: Vec<Vec<f32>> = x
            .chunks(dim)
            .map(|im| {
                im.iter()
                    .map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0))
                    .collect()
            })
            .collect();
        zoo_plot::image_grid(&path, &images, 8, 8)?;
    }
    Ok(())
}
