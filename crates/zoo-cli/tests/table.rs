//! `zoo table` and `zoo run`: a suite killed by SIGKILL half-way and started again finishes with
//! the same table as an uninterrupted run, a finished suite is read back and not redone, and
//! every kind of bad config is one error line naming the file and the key, with nothing written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn zoo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zoo"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoo-table-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny suite on 8 Gaussians: three families, two seeds, short budgets.
fn write_suite(dir: &Path) {
    let common =
        "data = \"8gaussians\"\nseeds = [0, 1]\n[eval]\nsamples = 500\ntest_points = 300\n";
    let files = [
        (
            "a_ebm.toml",
            "family = \"ebm\"\nmethod = \"pcd\"\n[train]\niterations = 150\n[[sampler]]\nkind = \"mala\"\nsteps = 100\nstep_size = 0.002\n",
        ),
        (
            "b_flow.toml",
            "family = \"flow\"\nmethod = \"realnvp\"\n[model]\nlayers = 4\nhidden = [32, 32]\n[train]\niterations = 150\n",
        ),
        (
            "c_diffusion.toml",
            "family = \"diffusion\"\nmethod = \"vp_mlp\"\n[model]\nhidden = [32, 32]\n[train]\niterations = 300\n[[sampler]]\nkind = \"ddim\"\nsteps = 20\n",
        ),
    ];
    for (name, body) in files {
        // Top-level keys must precede the tables.
        let (top, tables) = common.split_once("[eval]").unwrap();
        let (own_top, own_tables) = match body.find('[') {
            Some(i) => body.split_at(i),
            None => (body, ""),
        };
        let text = format!("{top}{own_top}{own_tables}[eval]{tables}");
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn rows_without_timing(out: &Path) -> Vec<serde_json::Value> {
    json_rows_without_timing(&out.join("table.json"))
}

/// The rows of a `table.json` or `metrics.json` without their wall-clock columns.
fn json_rows_without_timing(file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for r in &mut rows {
        let o = r.as_object_mut().unwrap();
        o.remove("train_seconds");
        o.remove("ms_per_1000_samples");
    }
    rows
}

fn table(suite: &Path, out: &Path) -> std::process::Output {
    zoo()
        .args(["table", "--quiet", "--suite"])
        .arg(suite)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Runs `zoo table` to the end; fails with its stderr if it fails.
fn table_ok(suite: &Path, out: &Path) {
    let run = table(suite, out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Starts `zoo table` and SIGKILLs it once `marker` exists (or fails after a minute).
fn kill_when(suite: &Path, out: &Path, marker: &Path) {
    let mut child = zoo()
        .args(["table", "--quiet", "--suite"])
        .arg(suite)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("zoo table ended ({status}) before {}", marker.display());
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no {}",
            marker.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[test]
fn a_killed_table_resumes_to_the_same_table_and_a_finished_one_is_not_redone() {
    let suite = scratch("suite");
    write_suite(&suite);
    // Uninterrupted.
    let whole = scratch("whole");
    let out = table(&suite, &whole);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = rows_without_timing(&whole);
    assert_eq!(reference.len(), 3 * 2, "a row per config, sampler and seed");
    // Killed twice: once right after the first model's checkpoint (before its evaluation can
    // finish), once while the second config trains; then run to the end.
    let killed = scratch("killed");
    kill_when(&suite, &killed, &killed.join("a_ebm/seed-0/train.json"));
    assert!(!killed.join("TABLE.md").exists());
    kill_when(&suite, &killed, &killed.join("b_flow/config.toml"));
    assert!(!killed.join("TABLE.md").exists());
    table_ok(&suite, &killed);
    assert_eq!(rows_without_timing(&killed), reference);
    // A finished suite is read back: nothing is retrained or rewritten.
    let marker = killed.join("c_diffusion/seed-1/metrics.json");
    let before = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let again = table(&suite, &killed);
    assert!(again.status.success());
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(rows_without_timing(&killed), reference);
    // Another backend's results are never read back as these.
    let other = zoo()
        .args(["table", "--quiet", "--backend", "ndarray", "--suite"])
        .arg(&suite)
        .arg("--out")
        .arg(&killed)
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("holds flex results"));
    // The results folder holds what the issue asks for.
    for f in [
        "TABLE.md",
        "table.csv",
        "gallery.md",
        "a_ebm/config.toml",
        "a_ebm/metrics.csv",
        "a_ebm/curve.png",
        "a_ebm/seed-0/curve.csv",
        "a_ebm/seed-0/checkpoint/energy.bpk",
        "a_ebm/seed-0/samples.png",
        "a_ebm/seed-0/density.png",
        "b_flow/seed-1/checkpoint/flow.bpk",
    ] {
        assert!(killed.join(f).exists(), "missing {f}");
    }
    for d in [&suite, &whole, &killed] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Fails unless `zoo run FILE` fails with one stderr line naming `file` and `key`, and writes
/// nothing.
fn rejected(file: &Path, key: &str) {
    let out_dir = std::env::temp_dir().join(format!("zoo-table-test-{}-none", std::process::id()));
    let out = zoo()
        .args(["run", "--quiet"])
        .arg(file)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{} should be rejected",
        file.display()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line, got {err:?}");
    assert!(
        lines[0].contains(&*file.to_string_lossy()) && lines[0].contains(key),
        "{:?} should name {} and {key:?}",
        lines[0],
        file.display()
    );
    assert!(
        !out_dir.exists(),
        "nothing may be written for a rejected config"
    );
}

#[test]
fn bad_configs_are_one_line_naming_the_file_and_the_key() {
    let dir = scratch("bad");
    let good = "data = \"8gaussians\"\nfamily = \"flow\"\nmethod = \"realnvp\"\n[train]\niterations = 10\n";
    let cases = [
        (
            "unknown_key.toml",
            good.replace("iterations = 10", "iterations = 10\nfoo = 1"),
            "train.foo",
        ),
        (
            "wrong_type.toml",
            good.replace("iterations = 10", "iterations = \"many\""),
            "train.iterations",
        ),
        (
            "unknown_method.toml",
            good.replace("realnvp", "glow"),
            "method",
        ),
        (
            "budget_zero.toml",
            good.replace("iterations = 10", "iterations = 0"),
            "train.iterations",
        ),
        ("unknown_top.toml", format!("colour = 1\n{good}"), "colour"),
        (
            "unknown_data.toml",
            good.replace("8gaussians", "9gaussians"),
            "data",
        ),
        (
            "bad_sampler.toml",
            format!("{good}[[sampler]]\nkind = \"rk4\"\n"),
            "sampler[0].kind",
        ),
        (
            "model_dim.toml",
            format!("{good}[model]\ndim = 3\n"),
            "model.dim",
        ),
        (
            "syntax.toml",
            good.replace("iterations = 10", "iterations = = 10"),
            "line 5",
        ),
    ];
    for (name, text, key) in &cases {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        rejected(&f, key);
    }
    rejected(&dir.join("missing.toml"), "cannot read");
    // A suite with one bad config writes nothing at all, not even the good configs' runs.
    let suite = scratch("bad-suite");
    std::fs::write(suite.join("a_good.toml"), good).unwrap();
    std::fs::write(suite.join("b_bad.toml"), &cases[0].1).unwrap();
    let out_dir = scratch("bad-suite-out").join("results");
    let out = table(&suite, &out_dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("b_bad.toml") && err.contains("train.foo"),
        "{err}"
    );
    assert!(!out_dir.exists());
    for d in [&dir, &suite] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Every shipped config loads and validates: the standard and quick suites as `zoo table` reads
/// them (names unique, every key known, every size within the memory budget), on every backend.
#[test]
fn every_shipped_config_loads_and_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut total = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let suite = zoo_runner::Suite::load(&dir, None)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "toml")
            })
            .count();
        assert_eq!(suite.configs.len(), files, "{}", dir.display());
        total += files;
    }
    assert!(
        total >= 60,
        "only {total} configs found under {}",
        root.display()
    );
}

/// `--shard 1/2` and `--shard 2/2` into two folders, then `--merge` of both, give the table of
/// the unsharded run, field for field except timings; a merge missing a shard names the runs
/// it lacks and writes no table (all with the default jobs: the threads per run, and so the
/// last digits, are the same). `--jobs 0` is one error line.
#[test]
fn two_shards_and_a_merge_equal_the_unsharded_table() {
    let suite = scratch("shard-suite");
    write_suite(&suite);
    let whole = scratch("shard-whole");
    assert!(table(&suite, &whole).status.success());
    let (a, b, merged) = (
        scratch("shard-a"),
        scratch("shard-b"),
        scratch("shard-merged"),
    );
    for (i, out) in [(1, &a), (2, &b)] {
        let status = zoo()
            .args(["table", "--quiet", "--shard", &format!("{i}/2"), "--suite"])
            .arg(&suite)
            .arg("--out")
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(!out.join("table.json").exists(), "a shard writes no table");
    }
    // Disjoint: 2 runs in the first shard, 1 in the second.
    assert!(a.join("a_ebm").exists() && a.join("c_diffusion").exists());
    assert!(b.join("b_flow").exists() && !b.join("a_ebm").exists());
    let merge = |from: &[&PathBuf]| {
        zoo()
            .args(["table", "--quiet", "--suite"])
            .arg(&suite)
            .arg("--out")
            .arg(&merged)
            .arg("--merge")
            .args(from)
            .output()
            .unwrap()
    };
    let zero = zoo()
        .args(["table", "--quiet", "--jobs", "0", "--suite"])
        .arg(&suite)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&zero.stderr);
    assert!(
        !zero.status.success() && said.trim().lines().count() == 1,
        "{said}"
    );
    assert!(said.contains("--jobs"), "{said}");
    let partial = merge(&[&a]);
    assert!(!partial.status.success());
    assert!(String::from_utf8_lossy(&partial.stderr).contains("b_flow"));
    assert!(!merged.join("table.json").exists());
    let out = merge(&[&a, &b]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows_without_timing(&merged), rows_without_timing(&whole));
    for d in [&suite, &whole, &a, &b, &merged] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A table killed by SIGKILL at 10 moments drawn from a seeded generator (spread over the
/// uninterrupted run's duration, so that kills land in training, in evaluation and between runs)
/// and restarted each time ends with a table equal to an uninterrupted run's in every field but
/// the timings. In CI the suite is the small one of this file (three families, two seeds);
/// `ZOO_KILL_QUICK=1` uses `configs/quick` (`zoo table --quick`, 20 runs: 10 of 10 kills landed
/// and the tables were equal, 9 min 16 s on 2 cores).
#[test]
fn a_table_survives_ten_random_sigkills() {
    let suite = if std::env::var("ZOO_KILL_QUICK").is_ok_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quick")
    } else {
        let dir = scratch("kill-suite");
        write_suite(&dir);
        dir
    };
    let whole = scratch("quick-whole");
    let started = Instant::now();
    let out = table(&suite, &whole);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duration = started.elapsed();
    let reference = rows_without_timing(&whole);
    let killed = scratch("quick-killed");
    // A small LCG (seeded): the kill times as fractions of the uninterrupted duration. Each
    // restart resumes from the last finished stage, so short lives still make progress.
    let mut state: u64 = 20_261_130;
    let mut kills = 0;
    // Each life's stderr: a life that finishes a training killed earlier says so ("training
    // resumed from its checkpoint at iteration N"), which counts the kills that landed inside
    // training and were resumed there.
    let logs = scratch("quick-killed-logs");
    std::fs::create_dir_all(&logs).unwrap();
    for life in 0..10 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let fraction = 0.03 + 0.17 * ((state >> 11) as f64 / (1u64 << 53) as f64);
        let log = std::fs::File::create(logs.join(format!("life-{life}.txt"))).unwrap();
        let mut child = zoo()
            .args(["table", "--suite"])
            .arg(&suite)
            .arg("--out")
            .arg(&killed)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + duration.mul_f64(fraction);
        let mut finished = false;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if finished {
            break; // the table is complete: no later kill could land
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    eprintln!("{kills} kills landed before the table finished");
    assert!(
        kills >= 8,
        "only {kills} kills landed: the test did not interrupt"
    );
    let log = logs.join("last.txt");
    let out = table_logged(&suite, &killed, &log);
    assert!(out.status.success());
    let resumed: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .flat_map(|f| {
            std::fs::read_to_string(f.unwrap().path())
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("training resumed from its checkpoint"))
        .collect();
    eprintln!("{} trainings resumed mid-way: {resumed:?}", resumed.len());
    if suite.ends_with("configs/quick") {
        assert!(!resumed.is_empty(), "no kill landed inside a training");
    }
    assert_eq!(rows_without_timing(&killed), reference);
    for d in [&whole, &killed, &logs] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `zoo table` on `suite` into `out`, stderr into `log`.
fn table_logged(suite: &Path, out: &Path, log: &Path) -> std::process::Output {
    let file = std::fs::File::create(log).unwrap();
    zoo()
        .args(["table", "--suite"])
        .arg(suite)
        .arg("--out")
        .arg(out)
        .stderr(file)
        .output()
        .unwrap()
}

/// `zoo run` SIGKILLed mid-training (after its first periodic training checkpoint, at a moment
/// drawn from a seeded generator) and started again continues from `train.ckpt` rather than
/// from scratch, and ends with a training checkpoint byte-identical to an uninterrupted run's
/// and the same metrics. The two-stage hierarchical VAE is killed in its second stage (after the
/// prior's first checkpoint, `train.prior.ckpt`): the finished generator stage is read back and
/// the prior continues; both checkpoints end byte-identical.
#[test]
fn runs_killed_mid_training_resume_to_byte_identical_checkpoints() {
    let dir = scratch("mid-training");
    // One single-stage family by SIGKILL (the runner's path is the same for every family; GAN
    // and VAE resume in-process in tests/training.rs) and the two-stage one, killed in stage 2.
    // (name, config, the checkpoint whose appearance starts the kill timer, the checkpoints).
    let hvae = "family = \"vae\"\nmethod = \"hvae_diffusion_prior\"\n[model]\nlatent = [2, 2]\n\
                hidden = [32]\nlayer_hidden = [16]\n[model.prior]\nhidden = [32]\n[train]\n\
                iterations = 150\nbatch_size = 128\n[train.prior]\niterations = 700\n\
                batch_size = 64\nlangevin_steps = 30\n";
    let configs = [
        (
            "ebm",
            "family = \"ebm\"\nmethod = \"pcd\"\n[train]\niterations = 700\nbatch_size = 64\n",
            "train.ckpt",
            &["train.ckpt"][..],
        ),
        (
            "hvae",
            hvae,
            "train.prior.ckpt",
            &["train.ckpt", "train.prior.ckpt"][..],
        ),
    ];
    let mut lcg = 0x2545_f491_4f6c_dd1du64;
    for (name, body, first, checkpoints) in configs {
        let file = dir.join(format!("{name}.toml"));
        let text = format!(
            "data = \"8gaussians\"\nseeds = [0]\n{body}[eval]\nsamples = 300\ntest_points = 200\n"
        );
        std::fs::write(&file, text).unwrap();
        let run = |out: &Path| {
            let mut c = zoo();
            c.arg("run").arg(&file).arg("--out").arg(out);
            c
        };
        let whole = dir.join(format!("{name}-whole"));
        assert!(run(&whole).output().unwrap().status.success());
        let killed = dir.join(format!("{name}-killed"));
        let seed_dir = killed.join(name).join("seed-0");
        let mut child = run(&killed).stderr(Stdio::null()).spawn().unwrap();
        let start = Instant::now();
        while !seed_dir.join(first).exists() {
            assert!(child.try_wait().unwrap().is_none(), "{name}: ended early");
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{name}: no checkpoint"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        lcg = lcg
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((lcg >> 33) % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let landed = !seed_dir.join("train.json").exists();
        eprintln!(
            "{name}: killed after {:?}, in training: {landed}",
            start.elapsed()
        );
        let again = run(&killed).output().unwrap();
        let said = String::from_utf8_lossy(&again.stderr);
        assert!(again.status.success(), "{said}");
        assert!(
            !landed || said.contains("training resumed from its checkpoint at iteration"),
            "{name}: the second run did not resume: {said}"
        );
        for file in checkpoints {
            let ckpt = |root: &Path| std::fs::read(root.join(name).join("seed-0").join(file));
            assert!(
                ckpt(&whole).unwrap() == ckpt(&killed).unwrap(),
                "{name}: {file} differs"
            );
        }
        let metrics = |root: &Path| json_rows_without_timing(&root.join(name).join("metrics.json"));
        assert_eq!(metrics(&whole), metrics(&killed), "{name}: metrics differ");
    }
    std::fs::remove_dir_all(&dir).ok();
}
