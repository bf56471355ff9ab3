//! The `zoo` binary: a sampling run writes the documented JSON, and every kind of bad input gives
//! exactly one clear error line and a non-zero exit.

use std::process::Command;

fn zoo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .output()
        .expect("zoo runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn tmp(name: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join(format!("zoo-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into()
}

/// Fails unless the command fails with one non-empty stderr line containing `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let (ok, _, err) = zoo(args);
    assert!(!ok, "{args:?} should fail");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one error line, got {err:?}"
    );
    assert!(
        lines[0].contains(needle),
        "{args:?}: {:?} does not mention {needle:?}",
        lines[0]
    );
}

#[test]
fn sample_writes_the_documented_json() {
    let run = |name: &str| -> serde_json::Value {
        let out = tmp(name, "");
        let (ok, _, err) = zoo(&[
            "sample",
            "--energy",
            "gaussian{mean = [1.0, -1.0], std = 0.5}",
            "--sampler",
            "hmc",
            "--chains",
            "8",
            "--steps",
            "400",
            "--warmup",
            "100",
            "--step-size",
            "0.2",
            "--target-acceptance",
            "0.8",
            "--seed",
            "3",
            "--out",
            &out,
        ]);
        assert!(ok, "{err}");
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    let v = run("out.json");
    assert_eq!(v["schema"], "ebm-zoo/sample/v1");
    assert_eq!(v["settings"]["sampler"], "hmc");
    assert_eq!(v["seed"], 3);
    for key in ["mean", "variance", "mcse", "ess", "rhat"] {
        assert_eq!(v[key].as_array().unwrap().len(), 2, "{key}");
    }
    // mean within 4 MCSE of the truth.
    for (i, truth) in [1.0, -1.0].iter().enumerate() {
        let (m, se) = (
            v["mean"][i].as_f64().unwrap(),
            v["mcse"][i].as_f64().unwrap(),
        );
        assert!(
            (m - truth).abs() < 4.0 * se,
            "mean {m} vs {truth} (mcse {se})"
        );
    }
    // Same seed, same numbers.
    assert_eq!(v["mean"], run("out2.json")["mean"]);
}

#[test]
fn config_files_work_and_flags_override_them() {
    let cfg = tmp(
        "run.toml",
        "sampler = 'ula'\nsteps = 50\nwarmup = 0\nchains = 2\nstep_size = 0.05\n[energy]\nkind = 'banana'\ncurvature = 0.5\n",
    );
    let (ok, out, err) = zoo(&["sample", "--config", &cfg, "--sampler", "mala"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["settings"]["sampler"], "mala");
    assert_eq!(v["energy"]["kind"], "banana");
    assert_eq!(v["settings"]["steps"], 50);
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    fails_with(&["sample", "--energy", "swirl"], "unknown energy 'swirl'");
    fails_with(
        &["sample", "--energy", "gaussian", "--sampler", "gibbs"],
        "unknown sampler 'gibbs'",
    );
    fails_with(
        &["sample", "--energy", "gaussian", "--step-size", "-0.1"],
        "step_size",
    );
    fails_with(
        &["sample", "--energy", "gaussian", "--step-size", "0"],
        "step_size",
    );
    fails_with(
        &[
            "sample",
            "--energy",
            "gaussian{mean = [0.0, 0.0], covariance = [[1.0]]}",
        ],
        "covariance",
    );
    fails_with(
        &["sample", "--energy", "gaussian", "--backend", "cuda"],
        "unknown backend 'cuda'",
    );
    fails_with(&["sample", "--energy", "funnel{dim = 1}"], "dim");
    fails_with(
        &["sample", "--energy", "funnel{dimension = 3}"],
        "dimension",
    );
    fails_with(
        &[
            "sample",
            "--energy",
            "gaussian",
            "--init",
            &tmp("nan.csv", "0.0,1.0\n0.5,nan\n"),
        ],
        "non-finite",
    );
    fails_with(
        &[
            "sample",
            "--energy",
            "gaussian",
            "--init",
            &tmp("wide.csv", "0.0,1.0,2.0\n"),
        ],
        "wrong shape",
    );
    fails_with(
        &["sample", "--config", &tmp("bad.toml", "steps = [1, 2\n")],
        "bad.toml",
    );
    fails_with(
        &[
            "sample",
            "--config",
            &tmp("typo.toml", "stepz = 10\n[energy]\nkind = 'banana'\n"),
        ],
        "stepz",
    );
    fails_with(
        &[
            "sample",
            "--config",
            &tmp("e.toml", "[energy]\nkind = 'banana'\ncurvatur = 1.0\n"),
        ],
        "curvatur",
    );
    fails_with(
        &[
            "sample",
            "--energy",
            "gaussian",
            "--sampler",
            "ula",
            "--target-acceptance",
            "0.5",
        ],
        "ULA",
    );
    fails_with(
        &[
            "sample",
            "--energy",
            "gaussian",
            "--sampler",
            "ula",
            "--step-size",
            "10",
            "--warmup",
            "0",
        ],
        "diverged at step",
    );
    fails_with(&["sample", "--bogus-flag"], "--bogus-flag");
    fails_with(
        &[
            "sample", "--energy", "gaussian", "--steps", "10", "--thin", "5",
        ],
        "kept draws",
    );
    fails_with(
        &["sample", "--energy", "gaussian", "--chains", "0"],
        "chains",
    );
}

#[test]
fn bench_prints_one_json_line_in_the_peers_shape() {
    let (ok, out, err) = zoo(&[
        "bench",
        "sample",
        "--particles",
        "64",
        "--steps",
        "5",
        "--repeats",
        "1",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["workload"], "langevin");
    let r = &v["results"][0];
    assert_eq!(r["n"], 64);
    assert!(r["particle_steps_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(r["framework"], "burn-flex-fused");
}

#[test]
fn mixtures_with_full_covariances_come_from_toml() {
    let energy = tmp(
        "mix.toml",
        "kind = 'mixture'\nweights = [1.0, 3.0]\nmeans = [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]\n\
         covariances = [[[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]], [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]]]\n",
    );
    let arg = format!("@{energy}");
    let (ok, out, err) = zoo(&["sample", "--energy", &arg, "--steps", "20", "--warmup", "0"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dim"], 3);
    fails_with(
        &[
            "sample",
            "--energy",
            "mixture{covariances = [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]}",
        ],
        "exactly one of stds and covariances",
    );
}

#[test]
fn logz_and_ising_write_json_and_reject_bad_input() {
    let (ok, out, err) = zoo(&[
        "logz",
        "--energy",
        "ising{L = 3, beta = 0.4}",
        "--method",
        "ais",
        "--steps",
        "50",
        "--particles",
        "512",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "ebm-zoo/logz/v1");
    let (est, se, exact) = (
        v["log_z"].as_f64().unwrap(),
        v["std_err"].as_f64().unwrap(),
        v["exact_log_z"].as_f64().unwrap(),
    );
    assert!((est - exact).abs() < 3.0 * se, "{est} ± {se} vs {exact}");

    let (ok, out, err) = zoo(&[
        "logz",
        "--energy",
        "gaussian{mean = [1.0, 2.0], std = 0.5}",
        "--method",
        "exact",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let expected = (2.0 * std::f64::consts::PI * 0.25f64).ln();
    assert!((v["log_z"].as_f64().unwrap() - expected).abs() < 1e-9);

    let (ok, out, err) = zoo(&[
        "ising",
        "--L",
        "4",
        "--beta",
        "0.3",
        "--sampler",
        "gibbs",
        "--sweeps",
        "500",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "ebm-zoo/ising/v1");
    let (e, se) = (
        v["observables"]["energy_per_spin"].as_f64().unwrap(),
        v["observables"]["energy_se"].as_f64().unwrap(),
    );
    let exact = v["exact"]["energy_per_spin"].as_f64().unwrap();
    assert!((e - exact).abs() < 4.0 * se, "{e} ± {se} vs {exact}");

    fails_with(&["ising", "--L", "0", "--beta", "0.3"], "at least 1 x 1");
    fails_with(&["ising", "--L", "4", "--beta", "-0.5"], "beta");
    fails_with(
        &[
            "ising",
            "--L",
            "4",
            "--beta",
            "0.3",
            "--sampler",
            "wolff",
            "--field",
            "0.1",
        ],
        "Wolff",
    );
    fails_with(
        &[
            "logz",
            "--energy",
            "ising{L = 5, beta = 0.3, periodic = false}",
            "--method",
            "exact",
        ],
        "limited to 16 spins",
    );
    fails_with(
        &[
            "logz",
            "--energy",
            "ising{L = 4, beta = 0.3, temp = 1}",
            "--method",
            "ais",
        ],
        "temp",
    );
    fails_with(
        &[
            "logz", "--energy", "banana", "--method", "ais", "--steps", "0",
        ],
        "steps",
    );
    fails_with(
        &["logz", "--energy", "mlp", "--method", "exact"],
        "no closed-form log Z",
    );
}

/// Generated from `docs/cli.md`: every preset named in the energy table and every
/// `zoo sample --energy '...'` example of the page parses and builds, and the two spellings
/// `gaussian{dim = 3, std = 2.0}` / `gaussian{std = 2.0}` give the documented dimensions.
#[test]
fn every_documented_energy_form_parses_and_builds() {
    use zoo_energy::BackendKind;
    use zoo_runner::spec::EnergySpec;
    let docs = include_str!("../../../docs/cli.md");
    let device = BackendKind::compiled()[0].device().unwrap();
    let table = docs
        .split("### Energy specifications")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("the energy table");
    let mut forms: Vec<String> = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let preset_column = row.rsplit('|').nth(1).unwrap_or_default();
        for (i, piece) in preset_column.split('`').enumerate() {
            if i % 2 == 1 {
                forms.push(piece.to_string());
            }
        }
    }
    for line in docs.lines().filter(|l| l.contains("zoo sample")) {
        if let Some(rest) = line.split("--energy '").nth(1) {
            forms.push(rest.split('\'').next().unwrap().to_string());
        }
    }
    assert!(forms.len() >= 15, "{forms:?}");
    for form in &forms {
        let spec = EnergySpec::parse(form).unwrap_or_else(|e| panic!("{form}: {e}"));
        spec.build(&device)
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        // The JSON form (the `energy` field of the output) round-trips.
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<EnergySpec>(&json).unwrap(), spec);
    }
    let dim = |form: &str| {
        EnergySpec::parse(form)
            .unwrap()
            .build(&device)
            .unwrap()
            .dim()
    };
    assert_eq!(dim("gaussian{dim = 3, std = 2.0}"), 3);
    assert_eq!(dim("gaussian{std = 2.0}"), 2);
    assert_eq!(dim("gaussian{variance = [1.0, 10.0, 100.0]}"), 3);
    assert_eq!(dim("gaussian{dim = 5}"), 5);
}

/// Runs `zoo sample` and returns (JSON, stderr).
fn sample_json(args: &[&str]) -> (serde_json::Value, String) {
    let (ok, out, err) = zoo(&[&["sample"], args].concat());
    assert!(ok, "{args:?}: {err}");
    (serde_json::from_str(&out).unwrap(), err)
}

/// HMC on an ill-conditioned diagonal Gaussian (variances 1 to 1000, log-spaced). The step
/// h = 2 sin(pi / 8) rotates the sigma = 1 coordinate by exactly pi / 4 per leapfrog step, so
/// 24 fixed steps turn it by 6 pi: back to where it started, whatever the momentum (the resonance
/// of Neal 2011, section 3.2, in its sharpest form). With the fixed length that coordinate never
/// moves and its variance is that of the initial spread; with the default jittered length every
/// variance is within 5% of the truth, and only the fixed run gets the R-hat warning.
#[test]
fn jittered_hmc_gets_every_variance_of_an_ill_conditioned_gaussian() {
    let variances: Vec<f64> = (0..8).map(|i| 10f64.powf(3.0 * i as f64 / 7.0)).collect();
    let spec = format!(
        "gaussian{{variance = [{}]}}",
        variances
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let h = format!("{:?}", 2.0 * (std::f64::consts::PI / 8.0).sin());
    let run = |extra: &[&str]| {
        let common = [
            "--energy",
            &spec,
            "--sampler",
            "hmc",
            "--chains",
            "64",
            "--steps",
            "3000",
            "--warmup",
            "200",
            "--step-size",
            &h,
            "--leapfrog-steps",
            "24",
            "--init-std",
            "5",
            "--seed",
            "1",
        ];
        sample_json(&[&common[..], extra].concat())
    };
    let rel = |v: &serde_json::Value| -> Vec<f64> {
        variances
            .iter()
            .enumerate()
            .map(|(i, t)| v["variance"][i].as_f64().unwrap() / t - 1.0)
            .collect()
    };
    let (jittered, err) = run(&[]);
    let errors = rel(&jittered);
    eprintln!("jittered HMC, relative variance errors: {errors:.3?}");
    assert!(
        errors.iter().all(|e| e.abs() <= 0.05),
        "jittered: {errors:?}"
    );
    assert!(!err.contains("warning:"), "{err}");
    let (fixed, err) = run(&["--no-jitter"]);
    assert_eq!(fixed["settings"]["jitter"], false);
    let errors = rel(&fixed);
    eprintln!("fixed-length HMC, relative variance errors: {errors:.3?}");
    // The frozen coordinate keeps the initial spread: variance ~ 25 instead of 1.
    assert!(errors[0] > 5.0, "no resonance shown: {errors:?}");
    assert!(err.contains("R-hat"), "{err}");
}

/// Neal's funnel (centred, d = 10) with HMC: the divergences are counted in the JSON and a warning
/// line goes to stderr; a well-conditioned Gaussian gives none and no warning.
#[test]
fn hmc_divergences_are_counted_and_warned_about() {
    let common = [
        "--sampler",
        "hmc",
        "--chains",
        "16",
        "--steps",
        "400",
        "--warmup",
        "100",
        "--step-size",
        "0.3",
        "--leapfrog-steps",
        "10",
        "--seed",
        "2",
    ];
    let (funnel, err) = sample_json(&[&["--energy", "funnel{dim = 10}"][..], &common].concat());
    let divergences = funnel["divergences"].as_u64().unwrap();
    assert!(divergences > 0, "{funnel}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("warning:") && l.contains("divergent")),
        "{err}"
    );
    assert!(!funnel["warnings"].as_array().unwrap().is_empty());
    let (gauss, err) = sample_json(&[&["--energy", "gaussian{dim = 2}"][..], &common].concat());
    assert_eq!(gauss["divergences"], 0);
    assert!(!err.contains("warning:"), "{err}");
}

/// Chains that do not mix (a well-separated mixture, half the chains started in each mode, MALA
/// cannot cross) give an R-hat warning on stderr.
#[test]
fn poor_rhat_is_warned_about() {
    let init = tmp("two_modes.csv", &"-8,0\n8,0\n".repeat(4));
    let (v, err) = sample_json(&[
        "--energy",
        "mixture{weights = [0.5, 0.5], means = [[-8.0, 0.0], [8.0, 0.0]], stds = [0.5, 0.5]}",
        "--init",
        &init,
        "--steps",
        "200",
        "--warmup",
        "0",
        "--step-size",
        "0.1",
    ]);
    assert!(v["rhat"][0].as_f64().unwrap() > 2.0, "{v}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("warning:") && l.contains("R-hat")),
        "{err}"
    );
}

/// `zoo logz --method exact` on a periodic lattice beyond enumeration uses Kaufman's formula.
#[test]
fn logz_is_exact_on_large_periodic_lattices_by_kaufman() {
    let (ok, out, err) = zoo(&[
        "logz",
        "--energy",
        "ising{L = 5, beta = 0.3}",
        "--method",
        "exact",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let exact = zoo_spin::kaufman_log_z(5, 5, 0.3, 1.0).unwrap();
    assert_eq!(v["log_z"].as_f64().unwrap(), exact);
    assert_eq!(v["exact_log_z"].as_f64().unwrap(), exact);
}

/// The same two separated modes with `--sampler pt`: the chains started in one mode each now
/// visit both (mean of x within 4 MCSE of 0, R-hat near 1, no warning), and the JSON has the
/// ladder, the swap rates and the acceptance per replica.
#[test]
fn parallel_tempering_mixes_between_separated_modes() {
    let init = tmp("two_modes_pt.csv", &"-8,0\n8,0\n".repeat(4));
    let (v, err) = sample_json(&[
        "--energy",
        "mixture{weights = [0.5, 0.5], means = [[-8.0, 0.0], [8.0, 0.0]], stds = [0.5, 0.5]}",
        "--init",
        &init,
        "--sampler",
        "pt",
        "--replicas",
        "10",
        "--beta-min",
        "0.005",
        "--steps",
        "4000",
        "--warmup",
        "1000",
        "--step-size",
        "0.1",
    ]);
    let (mean, mcse) = (
        v["mean"][0].as_f64().unwrap(),
        v["mcse"][0].as_f64().unwrap(),
    );
    assert!(mean.abs() < 4.0 * mcse, "mean {mean} ± {mcse}: {v}");
    assert!(v["rhat"][0].as_f64().unwrap() < 1.05, "{v}");
    assert!(!err.contains("warning:"), "{err}");
    let t = &v["tempering"];
    let betas = t["betas"].as_array().unwrap();
    assert_eq!(betas.len(), 10);
    assert_eq!(betas[0].as_f64(), Some(1.0));
    assert!((betas[9].as_f64().unwrap() - 0.005).abs() < 1e-12);
    let rates = t["swap_rates"].as_array().unwrap();
    assert_eq!(rates.len(), 9);
    assert!(
        rates
            .iter()
            .all(|r| (0.1..=1.0).contains(&r.as_f64().unwrap())),
        "{t}"
    );
    assert_eq!(t["acceptance_per_replica"].as_array().unwrap().len(), 10);
    assert_eq!(v["settings"]["tempering"]["replicas"], 10);
    assert_eq!(v["settings"]["sampler"], "mala");
}
