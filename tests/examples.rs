//! Every program under `examples/`, compiled into this test binary as a module: type-checked and
//! borrow-checked with the tests, so CI catches an example that no longer compiles, without
//! building and linking one release binary per example (about 200 CPU-seconds of the cold CI
//! build: each example instantiated the generic trainers again). Nothing here runs; `cargo run
//! --release --example NAME` builds the example itself.
#![allow(dead_code, unused_imports)]

#[path = "../examples/ddaebm.rs"]
mod ddaebm;
#[path = "../examples/diffusion.rs"]
mod diffusion;
#[path = "../examples/ebm_2d.rs"]
mod ebm_2d;
#[path = "../examples/ebm_contrastive.rs"]
mod ebm_contrastive;
#[path = "../examples/ebm_digits.rs"]
mod ebm_digits;
#[path = "../examples/ebm_fused_pcd.rs"]
mod ebm_fused_pcd;
#[path = "../examples/ebm_mixture_weights.rs"]
mod ebm_mixture_weights;
#[path = "../examples/ebm_nce.rs"]
mod ebm_nce;
#[path = "../examples/ebm_score_matching.rs"]
mod ebm_score_matching;
#[path = "../examples/ec_vae.rs"]
mod ec_vae;
#[path = "../examples/flow_2d.rs"]
mod flow_2d;
#[path = "../examples/flow_boltzmann.rs"]
mod flow_boltzmann;
#[path = "../examples/flow_matching.rs"]
mod flow_matching;
#[path = "../examples/flow_mcmc.rs"]
mod flow_mcmc;
#[path = "../examples/flows.rs"]
mod flows;
#[path = "../examples/gan.rs"]
mod gan;
#[path = "../examples/ising_phase_transition.rs"]
mod ising_phase_transition;
#[path = "../examples/jem.rs"]
mod jem;
#[path = "../examples/latent_diffusion.rs"]
mod latent_diffusion;
#[path = "../examples/rbm_digits.rs"]
mod rbm_digits;
#[path = "../examples/sample_energy.rs"]
mod sample_energy;
#[path = "../examples/uncertainty_graph.rs"]
mod uncertainty_graph;
#[path = "../examples/vae.rs"]
mod vae;

/// A new example must be listed above, or CI would not compile it.
#[test]
fn every_example_is_compiled_here() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = std::fs::read_to_string(root.join("tests/examples.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".rs") && !listed.contains(&format!("\"../examples/{name}\"")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "examples missing from tests/examples.rs: {missing:?}"
    );
}
