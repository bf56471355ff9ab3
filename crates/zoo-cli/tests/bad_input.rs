//! The bad-input suite: every command and every config table, given something wrong, exits
//! non-zero without a panic or an abort, prints one to three lines on stderr that name the key,
//! prints nothing on stdout and writes nothing.
//!
//! Each case runs `zoo` in a fresh empty working folder holding only the case's own files, with
//! `ZOO_MAX_MEMORY=2G`, so that the size checks answer the same on every machine: afterwards the
//! folder must hold exactly those files.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One bad input: the arguments, files to create in the working folder, and a piece of text the
/// error must contain (the key, the flag or the limit).
struct Case {
    args: Vec<String>,
    files: Vec<(&'static str, Vec<u8>)>,
    needle: &'static str,
}

fn case(args: &str, needle: &'static str) -> Case {
    Case {
        args: shell_words(args),
        files: Vec::new(),
        needle,
    }
}

fn with_file(args: &str, file: &'static str, text: &str, needle: &'static str) -> Case {
    Case {
        files: vec![(file, text.as_bytes().to_vec())],
        ..case(args, needle)
    }
}

/// Splits on spaces outside single quotes (the energy specs hold spaces).
fn shell_words(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A run config that passes, for variations.
const GOOD: &str =
    "data = \"8gaussians\"\nfamily = \"flow\"\nmethod = \"realnvp\"\n[train]\niterations = 10\n";
/// A flow-matching config that passes.
const GOOD_FM: &str = "data = \"8gaussians\"\nfamily = \"diffusion\"\nmethod = \"flow_matching\"\n[train]\niterations = 10\n";
/// A DDAEBM config that passes (its tables are appended by the cases).
const GOOD_DDAEBM: &str = "data = \"8gaussians\"\nfamily = \"gan\"\nmethod = \"ddaebm\"\n";
/// An EBM config that passes.
const GOOD_EBM: &str =
    "data = \"8gaussians\"\nfamily = \"ebm\"\nmethod = \"pcd\"\n[train]\niterations = 10\n";

fn with_bytes(args: &str, file: &'static str, bytes: Vec<u8>, needle: &'static str) -> Case {
    Case {
        files: vec![(file, bytes)],
        ..case(args, needle)
    }
}

fn run_config(text: &str, needle: &'static str) -> Case {
    with_file("run c.toml", "c.toml", text, needle)
}

fn sample_cases() -> Vec<Case> {
    let e = |spec: &str, needle| case(&format!("sample --steps 8 --energy '{spec}'"), needle);
    vec![
        case("sample", "no energy"),
        e("nonsense", "unknown energy"),
        e("gaussian{dim = 0}", "dimension"),
        e("gaussian{dim = 3", "must end with"),
        e("gaussian{kind = \"funnel\"}", "kind"),
        e("gaussian{foo = 1}", "foo"),
        e("gaussian{std = -1.0}", "std"),
        e("gaussian{std = 1.0, variance = [1.0, 1.0]}", "at most one"),
        e("gaussian{mean = [1.0, 2.0], dim = 3}", "mean"),
        e("gaussian{variance = [1.0, -2.0]}", "variance"),
        e(
            "gaussian{covariance = [[1.0, 2.0], [2.0, 1.0]]}",
            "covariance",
        ),
        e(
            "gaussian{covariance = [[1.0, 0.5], [0.4, 1.0]]}",
            "covariance",
        ),
        e("gaussian{correlation = 1.5}", "correlation"),
        e("gaussian{mean = [nan, 0.0]}", "mean"),
        e("gaussian{dim = 100000000000}", "memory limit"),
        e("correlated_gaussian{dim = 1000000}", "memory limit"),
        e("gaussian{dim = 100000000, std = 2.0}", "memory limit"),
        e("mixture{weights = [0.5, -0.5]}", "weights"),
        e("mixture{stds = [1.0]}", "means"),
        e("mixture{weights = [1.0]}", "weights"),
        e("funnel{dim = 1}", "dim"),
        e("funnel{scale = 0.0}", "scale"),
        e("banana{curvature = nan}", "curvature"),
        e("double_well{dim = 0}", "dim"),
        e("double_well{barrier = -1.0}", "barrier"),
        e("mlp{widths = [2, 0, 1]}", "widths"),
        e("mlp{widths = [2, 64, 3]}", "widths"),
        e("mlp{widths = [2, 1000000, 1000000, 1]}", "memory limit"),
        e("mlp{activation = \"relu6\"}", "activation"),
        case("sample --energy @missing.toml", "missing.toml"),
        with_file(
            "sample --energy @e.toml",
            "e.toml",
            "kind = 'gaussian'\ndim = -1\n",
            "dim",
        ),
        case("sample --energy gaussian --sampler nutz", "sampler"),
        case(
            "sample --energy gaussian --sampler nuts --max-depth 0",
            "max_depth",
        ),
        case(
            "sample --energy gaussian --sampler nuts --max-depth 21",
            "max_depth",
        ),
        case(
            "sample --energy gaussian --sampler mala --max-depth 5",
            "max_depth",
        ),
        case("sample --energy gaussian --chains 0", "chains"),
        case(
            "sample --energy gaussian --sampler pt --replicas 1",
            "replicas",
        ),
        case(
            "sample --energy gaussian --sampler pt --replicas 0",
            "replicas",
        ),
        case(
            "sample --energy gaussian --sampler pt --beta-min 1.5",
            "beta_min",
        ),
        case(
            "sample --energy gaussian --sampler pt --beta-min 0",
            "beta_min",
        ),
        case(
            "sample --energy gaussian --sampler pt --beta-min -0.5",
            "beta_min",
        ),
        case(
            "sample --energy gaussian --sampler pt --kernel nuts",
            "nuts",
        ),
        case("sample --energy gaussian --sampler pt --kernel pt", "pt"),
        case("sample --energy gaussian --replicas 4", "replicas"),
        case(
            "sample --energy gaussian --sampler hmc --kernel mala",
            "kernel",
        ),
        case("sample --energy gaussian --fixed-ladder", "fixed_ladder"),
        case(
            "sample --energy gaussian --sampler pt --replicas 100000 --chains 100000",
            "memory limit",
        ),
        case("sample --energy gaussian --steps 3", "steps"),
        case("sample --energy gaussian --thin 0", "thin"),
        case("sample --energy gaussian --step-size 0", "step_size"),
        case("sample --energy gaussian --step-size -0.1", "step_size"),
        case(
            "sample --energy gaussian --sampler hmc --leapfrog-steps 0",
            "leapfrog_steps",
        ),
        case(
            "sample --energy gaussian --target-acceptance 1.5",
            "target_acceptance",
        ),
        case(
            "sample --energy gaussian --sampler ula --target-acceptance 0.5",
            "ULA",
        ),
        case("sample --energy gaussian --init-std 0", "init_std"),
        case("sample --energy gaussian --backend tpu", "tpu"),
        case(
            "sample --energy gaussian --chains 100000000000",
            "memory limit",
        ),
        case(
            "sample --energy gaussian --chains 64 --steps 100000000000",
            "kept draws",
        ),
        with_file(
            "sample --energy gaussian --init i.csv",
            "i.csv",
            "1,2\n3\n",
            "line 2",
        ),
        with_file(
            "sample --energy gaussian --init i.csv",
            "i.csv",
            "a,b\n",
            "not a number",
        ),
        with_file(
            "sample --energy gaussian --init i.csv",
            "i.csv",
            "1,2,3\n",
            "initial position",
        ),
        with_file(
            "sample --energy gaussian --init i.csv",
            "i.csv",
            "\n",
            "no rows",
        ),
        with_file(
            "sample --energy gaussian --init i.csv",
            "i.csv",
            "1,nan\n",
            "non-finite",
        ),
        case("sample --config missing.toml", "missing.toml"),
        with_file(
            "sample --config s.toml",
            "s.toml",
            "chain = 4\n[energy]\nkind = 'gaussian'\ndim = 2\n",
            "chain",
        ),
        with_file(
            "sample --config s.toml",
            "s.toml",
            "chains = -1\n[energy]\nkind = 'gaussian'\ndim = 2\n",
            "s.toml",
        ),
        with_file(
            "sample --config s.toml",
            "s.toml",
            "chains = = 4\n",
            "s.toml",
        ),
        with_file(
            "sample --config s.toml",
            "s.toml",
            "[energy]\nkind = 'gaussian'\ndim = 2\nstd = 0.0\n",
            "std",
        ),
        case("sample --energy gaussian --seed -1", "-1"),
        case("sample --energy gaussian --frobnicate", "frobnicate"),
    ]
}

fn logz_cases() -> Vec<Case> {
    let l =
        |spec: &str, rest: &str, needle| case(&format!("logz --energy '{spec}' {rest}"), needle);
    vec![
        l("ising{L = 0, beta = 0.4}", "--method exact", "L"),
        l(
            "ising{L = 5, beta = 0.4, periodic = false}",
            "--method exact",
            "enumeration",
        ),
        l(
            "ising{L = 100000, beta = 0.4}",
            "--method ais",
            "memory limit",
        ),
        l("ising{L = 4, beta = -1.0}", "--method exact", "beta"),
        l("ising{L = 4}", "--method exact", "beta"),
        l("ising{L = 4, beta = 0.4, foo = 1}", "--method exact", "foo"),
        l(
            "curie_weiss{N = 1000000000000, beta = 1.0}",
            "--method exact",
            "memory limit",
        ),
        l(
            "curie_weiss{N = 10, beta = 1.0}",
            "--method ais",
            "curie_weiss",
        ),
        l("curie_weiss{N = 0, beta = 1.0}", "--method exact", "N"),
        l("gaussian", "--method smc --particles 1", "particles"),
        l("gaussian", "--method ais --groups 1", "groups"),
        l("gaussian", "--method ais --steps 0", "steps"),
        l(
            "gaussian",
            "--method ais --steps 100000000000000",
            "memory limit",
        ),
        l("gaussian", "--method ais --base-std 0", "base_std"),
        l("gaussian", "--method ais --step-size 0", "step_size"),
        l("mlp", "--method exact", "closed-form"),
        l("gaussian", "--method guess", "guess"),
        l(
            "gaussian",
            "--method ais --particles 100000000000",
            "memory limit",
        ),
        l(
            "ising{L = 4, beta = 0.4}",
            "--method ais --particles 1000000000000",
            "memory limit",
        ),
    ]
}

fn ising_and_bench_cases() -> Vec<Case> {
    vec![
        case("ising --L 0 --beta 0.4", "L"),
        case("ising --L 4 --beta -1", "beta"),
        case("ising --L 4 --beta nan", "beta"),
        case("ising --L 4 --beta 0.4 --sampler foo", "foo"),
        case("ising --L 4 --beta 0.4 --sweeps 2", "sweeps"),
        case("ising --L 4 --beta 0.4 --replicas 0", "replica"),
        case("ising --L 100000 --beta 0.4", "memory limit"),
        case(
            "ising --L 64 --beta 0.4 --replicas 1000000000",
            "memory limit",
        ),
        case(
            "ising --L 4 --beta 0.4 --sampler wolff --field 0.5",
            "Wolff",
        ),
        case("bench sample --particles 0", "particles"),
        case("bench sample --particles 100000000000", "memory limit"),
        case("bench sample --backend foo", "foo"),
        case("bench sample --step-size 0", "step_size"),
        case("bench sample --block 0", "block"),
        case("bench realnvp --steps 0", "steps"),
        case("bench dsm --repeats 0", "repeats"),
        case("bench fft", "fft"),
    ]
}

fn run_cases() -> Vec<Case> {
    let add = |extra: &str| format!("{GOOD}{extra}");
    let top = |extra: &str| format!("{extra}{GOOD}");
    vec![
        case("run missing.toml", "missing.toml"),
        run_config(&add("[eval]\nsamples = 1\n"), "eval.samples"),
        run_config(&add("[eval]\ntest_points = 1\n"), "eval.test_points"),
        run_config(&add("[eval]\niwae_k = 0\n"), "eval.iwae_k"),
        run_config(&add("[eval]\nsamples = 10000000000000\n"), "memory limit"),
        run_config(&add("[eval]\nsample = 10\n"), "eval.sample"),
        run_config(&add("[model]\nhidden = [0]\n"), "model.hidden"),
        run_config(&add("[model]\nlayers = 0\n"), "model.layers"),
        run_config(&add("[model]\ndim = 3\n"), "model.dim"),
        run_config(&top("seeds = []\n"), "seeds"),
        run_config(&top("name = \"../x\"\n"), "name"),
        run_config(&top("backend = \"tpu\"\n"), "backend"),
        run_config(&GOOD.replace("flow", "boltzmann"), "family"),
        run_config(&GOOD.replace("realnvp", "glow"), "method"),
        run_config(&GOOD.replace("8gaussians", "9gaussians"), "data"),
        run_config(&add("[objective]\nmcmc_steps = 3\n"), "objective"),
        run_config(
            &GOOD.replace("iterations = 10", "learning_rat = 1.0"),
            "`train.learning_rat`",
        ),
        run_config(
            &GOOD.replace("iterations = 10", "iterations = -1"),
            "train.iterations",
        ),
        run_config(
            &GOOD.replace("iterations = 10", "iterations = 0"),
            "train.iterations",
        ),
        run_config(&add("[[sampler]]\nkind = \"rk4\"\n"), "sampler[0].kind"),
        run_config(&GOOD.replace("[train]", "[train]\n[train]"), "line"),
        run_config("", "data"),
        run_config(
            &format!("{GOOD_EBM}[objective]\nmcmc_steps = 0\n"),
            "objective.mcmc_steps",
        ),
        run_config(
            &format!("{GOOD_EBM}[objective]\nstep_size = -1.0\n"),
            "objective.step_size",
        ),
        run_config(
            &format!(
                "{}[objective]\nreplicas = 0\n",
                GOOD_EBM.replace("pcd", "pt_cd")
            ),
            "objective.replicas",
        ),
        run_config(
            &format!(
                "{}[objective]\nbeta_min = 1.0\n",
                GOOD_EBM.replace("pcd", "pt_cd")
            ),
            "objective.beta_min",
        ),
        run_config(
            &format!(
                "{}[objective]\nchains = 0\n",
                GOOD_EBM.replace("pcd", "pt_cd")
            ),
            "objective.chains",
        ),
        run_config(
            &format!("{GOOD_EBM}[[sampler]]\nkind = \"mala\"\nsteps = 0\n"),
            "sampler[0].steps",
        ),
        run_config(
            &format!("{GOOD_EBM}[[sampler]]\nkind = \"mala\"\nstep_size = 0.0\n"),
            "sampler[0].step_size",
        ),
    ]
    .into_iter()
    .chain(diffusion_run_cases())
    .collect()
}

/// Flow matching and the reweighted SDE in run configs.
fn diffusion_run_cases() -> Vec<Case> {
    let fm = |extra: &str| format!("{GOOD_FM}{extra}");
    let vp_energy =
        |extra: &str| format!("{}{extra}", GOOD_FM.replace("flow_matching", "vp_energy"));
    let sampler = |kind: &str, extra: &str| format!("[[sampler]]\nkind = \"{kind}\"\n{extra}");
    vec![
        run_config(
            &fm(&sampler("euler_maruyama", "epsilon = -0.5\n")),
            "sampler[0].epsilon",
        ),
        run_config(
            &fm(&sampler("euler_maruyama", "epsilon = nan\n")),
            "sampler[0].epsilon",
        ),
        run_config(
            &vp_energy(&sampler("euler_maruyama", "epsilon = 0.5\n")),
            "sampler[0].epsilon",
        ),
        run_config(&fm(&sampler("ddim", "")), "sampler[0].kind"),
        run_config(&fm(&sampler("reweighted_sde", "")), "sampler[0].kind"),
        run_config(
            &vp_energy(&sampler("reweighted_sde", "")).replace("vp_energy", "vp_mlp"),
            "sampler[0].kind",
        ),
        run_config(
            &vp_energy(&sampler("reweighted_sde", "resample_threshold = 0.0\n")),
            "sampler[0].resample_threshold",
        ),
        run_config(
            &vp_energy(&sampler("reweighted_sde", "resample_threshold = 1.5\n")),
            "sampler[0].resample_threshold",
        ),
        run_config(
            &vp_energy(&sampler("heun", "resample_threshold = 0.5\n")),
            "sampler[0].resample_threshold",
        ),
        run_config(
            &vp_energy(&sampler("reweighted_sde", "steps = 0\n")),
            "sampler[0].steps",
        ),
        run_config(&fm("weighting = \"likelihood\"\n"), "train.weighting"),
    ]
    .into_iter()
    .chain(ddaebm_cases())
    .chain(ec_vae_cases())
    .chain(hvae_cases())
    .chain(ebm_schedule_cases())
    .collect()
}

/// The EBM trainer's learning-rate schedule: a final rate above the first, or not positive.
fn ebm_schedule_cases() -> Vec<Case> {
    let train = |t: &str| {
        format!(
            "data = \"8gaussians\"\nfamily = \"ebm\"\nmethod = \"pcd\"\n[train]\niterations = 10\n{t}\n"
        )
    };
    vec![
        run_config(&train("final_learning_rate = 0.5"), "final_learning_rate"),
        run_config(&train("final_learning_rate = 0.0"), "final_learning_rate"),
    ]
}

/// The EC-VAE: the multiplier's start, the constraint, the calibration chain, the latent width.
fn ec_vae_cases() -> Vec<Case> {
    let good = "data = \"8gaussians\"\nfamily = \"vae\"\nmethod = \"ec_vae\"\n";
    let train = |t: &str| format!("{good}[train]\niterations = 10\n{t}\n");
    vec![
        run_config(&train("lambda0 = -1.0"), "train.lambda0"),
        run_config(&train("epsilon = 0.0"), "train.epsilon"),
        run_config(&train("[train.chain]\nsteps = 0"), "train.chain.steps"),
        run_config(&train("energy_hidden = [64, 0]"), "train.energy_hidden"),
        run_config(
            &format!("{good}[model]\nlatent_dim = 0\n[train]\niterations = 10\n"),
            "model.latent_dim",
        ),
        run_config(&train("langevin_steps = 5"), "train.langevin_steps"),
    ]
}

/// The hierarchical VAE and its EBM diffusion prior: the diffusion's steps and schedule, the
/// latent layers' widths, the prior's Langevin budget.
fn hvae_cases() -> Vec<Case> {
    let good = "data = \"8gaussians\"\nfamily = \"vae\"\nmethod = \"hvae_diffusion_prior\"\n";
    let model = |t: &str| format!("{good}[model]\n{t}\n[train]\niterations = 10\n");
    let prior = |t: &str| format!("{good}[model.prior]\n{t}\n[train]\niterations = 10\n");
    let train = |t: &str| format!("{good}[train]\niterations = 10\n[train.prior]\n{t}\n");
    vec![
        run_config(&prior("steps = 0"), "model.prior.steps"),
        run_config(&prior("beta_max = 1.5"), "model.prior.beta_max"),
        run_config(
            &prior("beta_min = 0.6\nbeta_max = 0.5"),
            "model.prior.beta_min",
        ),
        run_config(&model("latent = [2, 0]"), "model.latent"),
        run_config(&model("latent = []"), "model.latent"),
        run_config(&model("layer_hidden = [0]"), "model.layer_hidden"),
        run_config(&train("langevin_steps = 0"), "train.prior.langevin_steps"),
        run_config(&train("langevin_steps = 3"), "train.prior.langevin_steps"),
        run_config(&train("iterations = 0"), "train.prior.iterations"),
    ]
}

/// DDAEBM: the diffusion's steps and betas, the R1 weight, the latent width.
fn ddaebm_cases() -> Vec<Case> {
    let model = |t: &str| format!("{GOOD_DDAEBM}[model]\n{t}\n[train]\niterations = 10\n");
    let train = |t: &str| format!("{GOOD_DDAEBM}[train]\niterations = 10\n{t}\n");
    vec![
        run_config(&model("steps = 0"), "model.steps"),
        run_config(&model("steps = 100000"), "model.steps"),
        run_config(&model("beta_min = 1.0\nbeta_max = 1.0"), "model.beta_max"),
        run_config(&model("beta_min = -0.1"), "model.beta_min"),
        run_config(&model("latent_dim = 0"), "model.latent_dim"),
        run_config(&model("energy_hidden = [64, 0]"), "model.energy_hidden"),
        run_config(&train("r1_gamma = -0.02"), "train.r1_gamma"),
        run_config(
            &train("posterior_variance_floor = 0.0"),
            "train.posterior_variance_floor",
        ),
        run_config(&train("energy_penalty = nan"), "train.energy_penalty"),
        run_config(
            &format!("{}[[sampler]]\nkind = \"latent_mala\"\n", train("")),
            "sampler[0].kind",
        ),
    ]
}

fn table_cases() -> Vec<Case> {
    let suite_file = |args: &str, needle| with_file(args, "s/a.toml", GOOD, needle);
    vec![
        case("table", "configs/table"),
        case("table --suite nowhere", "nowhere"),
        with_file("table --suite s", "s/readme.txt", "x", "no *.toml"),
        suite_file("table --suite s --shard 0/2", "shard"),
        suite_file("table --suite s --shard 3/2", "shard"),
        suite_file("table --suite s --shard x", "shard"),
        suite_file(
            "table --suite s --out o --merge elsewhere",
            "finished in none",
        ),
        suite_file("table --suite s --backend tpu", "tpu"),
        case("compare a.json b.json", "a.json"),
        with_file("compare a.json a.json", "a.json", "{", "not a table.json"),
        case("frobnicate", "frobnicate"),
        case("", "command is missing"),
    ]
}

fn uncertainty_cases() -> Vec<Case> {
    let good = zoo_data::GraphData {
        nodes: 3,
        edges: vec![(0, 1), (2, 1)],
        features: vec![1.0, 0.0, 0.0, 2.5, 0.0, 0.0],
        dim: 2,
        labels: vec![0, 1, 1],
        classes: 2,
    };
    let bad_edge = zoo_data::GraphData {
        edges: vec![(0, 1), (1, 9)],
        ..good.clone()
    };
    let bad_label = zoo_data::GraphData {
        labels: vec![0, 1, 5],
        ..good
    };
    let g = |rest: &str, needle| {
        case(
            &format!("uncertainty graph --graph csbm --seeds 1 {rest}"),
            needle,
        )
    };
    vec![
        with_bytes(
            "uncertainty graph --graph g.npz",
            "g.npz",
            bad_edge.to_npz().unwrap(),
            "edge to node 9",
        ),
        with_bytes(
            "uncertainty graph --graph g.npz",
            "g.npz",
            bad_label.to_npz().unwrap(),
            "label 5 is out of range",
        ),
        with_file(
            "uncertainty graph --graph g.npz",
            "g.npz",
            "not a zip",
            "not an .npz",
        ),
        case("uncertainty graph --graph missing.npz", "missing.npz"),
        case("uncertainty graph --graph pubmed", "unknown graph 'pubmed'"),
        g("--fraction 0", "fraction"),
        g("--fraction 1", "fraction"),
        g("--fraction -0.2", "fraction"),
        g("--fraction 1.5", "fraction"),
        g("--temperature 0", "temperature"),
        g("--temperature -1", "temperature"),
        g(
            "--held-out 0,1,2,3,4",
            "in-distribution class set would be empty",
        ),
        g("--held-out ' '", "in-distribution class set would be empty"),
        g("--held-out 7", "class 7 does not exist"),
        g("--held-out x", "--held-out"),
        g("--shifts far", "unknown shift 'far'"),
        g("--seeds 0", "seeds"),
        g("--epochs 0", "epochs"),
        g("--hidden 0", "hidden"),
        g("--labels-per-class 0", "labels_per_class"),
        g("--labels-per-class 300", "labels_per_class"),
        g("--gamma -1", "gamma"),
        g("--backend cuda", "cuda"),
        case("uncertainty jem --data cifar", "unknown data 'cifar'"),
        case("uncertainty jem --iterations 0", "iterations"),
        case("uncertainty jem --temperature 0", "temperature"),
        case("uncertainty jem --sgld-step -1", "sgld_step"),
        case("uncertainty jem --sgld-noise 0", "sgld_noise"),
    ]
}

fn scratch(k: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoo-bad-input-{}-{k}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every path below `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs one case; returns what is wrong with its outcome, if anything.
fn check(k: usize, c: &Case) -> Option<String> {
    let dir = scratch(k);
    for (name, text) in &c.files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let before = listing(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(&c.args)
        .current_dir(&dir)
        .env("ZOO_MAX_MEMORY", "2G")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let after = listing(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let problem = if out.status.success() {
        "exit status 0".to_string()
    } else if out.status.code().is_none_or(|c| c == 101 || c >= 128) {
        format!("ended by {:?} (panic or signal)", out.status)
    } else if err.contains("panicked") {
        "a panic message".into()
    } else if !(1..=3).contains(&lines.len()) {
        format!("{} stderr lines", lines.len())
    } else if !err.contains(c.needle) {
        format!("no {:?} in the message", c.needle)
    } else if !out.stdout.is_empty() {
        "output on stdout".into()
    } else if after != before {
        format!("wrote files: {after:?}")
    } else {
        return None;
    };
    Some(format!("zoo {:?}: {problem}; stderr: {err:?}", c.args))
}

#[test]
fn every_bad_input_is_one_clear_error_without_output_or_files() {
    let cases: Vec<Case> = [
        sample_cases(),
        logz_cases(),
        ising_and_bench_cases(),
        run_cases(),
        table_cases(),
        uncertainty_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(k, c)| check(k, c))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} bad inputs, each one clear error", cases.len());
}
