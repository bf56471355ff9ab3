//! Energy-based uncertainty (`zoo-uncertainty`): the GCN's propagation against a hand-computed
//! graph, label propagation, AUROC against closed forms, the shipped graphs, and GEBM's terms on a
//! contextual stochastic block model where the structure of each term says what it must detect.

use crate::common::cpu_device;
use ebm_zoo::data::GraphData;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::rng::normal_vec;
use ebm_zoo::energy::seeded;
use ebm_zoo::energy::tensor::to_host2;
use ebm_zoo::uncertainty::experiment::{self, GraphExperimentConfig, mean_sd};
use ebm_zoo::uncertainty::scores::{auroc, fpr_at_95_tpr};
use ebm_zoo::uncertainty::{CsbmConfig, Gcn, Graph, GraphTensors, Shift, propagate};

/// The path 0-1-2-3 with one feature per node: degrees with self-loops (2, 3, 3, 2).
fn path_graph() -> Graph {
    let edges = [(0, 1), (1, 2), (3, 2), (2, 1)]; // one duplicate, one reversed
    Graph::new(4, &edges, vec![1.0, 2.0, 3.0, 4.0], vec![0, 1, 0, 1], 2).unwrap()
}

#[test]
fn gcn_propagation_matches_a_hand_computed_four_node_graph() {
    let g = path_graph();
    assert_eq!(g.edges(), 3);
    let s6 = 6f64.sqrt();
    // Â x for x = (1, 2, 3, 4), Â = D̃^(-1/2)(A + I)D̃^(-1/2).
    let expected = [
        0.5 + 2.0 / s6,
        1.0 / s6 + 2.0 / 3.0 + 1.0,
        2.0 / 3.0 + 1.0 + 4.0 / s6,
        3.0 / s6 + 2.0,
    ];
    let host = g.gcn_operator().apply(&[1.0, 2.0, 3.0, 4.0], 1);
    let device = cpu_device();
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [4, 1]),
        &device,
    );
    let op = g.gcn_operator();
    let burn = to_host2(&GraphTensors::new(&g, Some(&op), &device).propagate(x));
    for i in 0..4 {
        assert!(
            (host[i] - expected[i]).abs() < 1e-6,
            "host row {i}: {} vs {}",
            host[i],
            expected[i]
        );
        assert!(
            (f64::from(burn[i]) - expected[i]).abs() < 1e-5,
            "burn row {i}: {} vs {}",
            burn[i],
            expected[i]
        );
    }
    // The whole network against a dense host computation: Â ReLU(Â X W1 + b1) W2 + b2.
    let gcn = Gcn::new(&mut seeded(3), 1, 5, 2, &device).unwrap();
    let (h, logits) = gcn.embed(&GraphTensors::new(&g, Some(&op), &device));
    let host_of = |t: Tensor<2>| -> Vec<f64> { to_host2(&t).into_iter().map(f64::from).collect() };
    let (w1, b1) = (
        host_of(gcn.input.weight.val()),
        host_of(gcn.input.bias.clone().unwrap().val().unsqueeze_dim(0)),
    );
    let (w2, b2) = (
        host_of(gcn.output.weight.val()),
        host_of(gcn.output.bias.clone().unwrap().val().unsqueeze_dim(0)),
    );
    let w1 = &w1;
    let xw: Vec<f64> = (0..4)
        .flat_map(|i| (0..5).map(move |k| (i + 1) as f64 * w1[k]))
        .collect();
    let axw = op.apply(&xw, 5);
    let h_ref: Vec<f64> = axw
        .iter()
        .enumerate()
        .map(|(j, v)| (v + b1[j % 5]).max(0.0))
        .collect();
    let hw: Vec<f64> = (0..4)
        .flat_map(|i| {
            (0..2)
                .map(|c| {
                    (0..5)
                        .map(|k| h_ref[i * 5 + k] * w2[k * 2 + c])
                        .sum::<f64>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let l_ref: Vec<f64> = op
        .apply(&hw, 2)
        .iter()
        .enumerate()
        .map(|(j, v)| v + b2[j % 2])
        .collect();
    for (a, b) in h.iter().zip(&h_ref).chain(logits.iter().zip(&l_ref)) {
        assert!((a - b).abs() < 1e-5, "GCN forward {a} vs dense {b}");
    }
}

#[test]
fn label_propagation_preserves_constants_and_the_gcn_operator_is_symmetric() {
    let g = CsbmConfig::default().sample(&mut seeded(1)).unwrap();
    let p = g.mean_operator();
    let constant = vec![2.5; g.nodes() * 3];
    let out = propagate(&p, &constant, 3, 10, 0.5);
    // The weights 1/(deg + 1) are f32: rows sum to 1 within a few ulps.
    let worst = out.iter().map(|v| (v - 2.5).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-5, "LP moved a constant by {worst}");
    // ... and it does move a non-constant signal towards its neighbours' mean.
    let x: Vec<f64> = (0..g.nodes()).map(|i| i as f64).collect();
    assert!(propagate(&p, &x, 1, 10, 0.5) != x);
    let a = g.gcn_operator();
    let mut dense = vec![0.0f32; g.nodes() * g.nodes()];
    for ((&i, &j), &w) in a.rows.iter().zip(&a.cols).zip(&a.weights) {
        dense[i as usize * g.nodes() + j as usize] = w;
    }
    for i in 0..g.nodes() {
        for j in 0..i {
            assert_eq!(dense[i * g.nodes() + j], dense[j * g.nodes() + i]);
        }
    }
}

#[test]
fn auroc_matches_the_closed_form_of_two_gaussians_and_handles_ties() {
    // Scores N(1, 1) (positives) against N(0, 1): AUROC = Φ(1/√2) = 0.760250.
    let mut rng = seeded(7);
    let n = 20_000;
    let pos: Vec<f64> = normal_vec(&mut rng, n)
        .iter()
        .map(|&z| 1.0 + f64::from(z))
        .collect();
    let neg: Vec<f64> = normal_vec(&mut rng, n)
        .iter()
        .map(|&z| f64::from(z))
        .collect();
    let a = auroc(&pos, &neg);
    // Hanley & McNeil's standard error at A = 0.76, n = m = 20 000: 0.0034.
    assert!((a - 0.760_250).abs() < 4.0 * 0.0034, "AUROC {a}");
    // FPR at 95% TPR: the threshold is the 5% quantile of N(1, 1), 1 - 1.645 = -0.645, so
    // FPR = P(N(0, 1) > -0.645) = 0.7405 (s.e. 0.006 with the threshold's own error).
    let f = fpr_at_95_tpr(&pos, &neg);
    assert!((f - 0.7405).abs() < 0.025, "FPR95 {f}");
    // Ties count one half: a constant score is a coin flip, whatever the sizes.
    assert_eq!(auroc(&[3.0; 10], &[3.0; 1000]), 0.5);
    assert_eq!(
        auroc(&[1.0, 2.0, 2.0], &[2.0, 0.0]),
        (1.0 + 0.5 + 1.0 + 0.5 + 1.0 + 0.0) / 6.0
    );
}

#[test]
fn the_shipped_graphs_read_with_their_published_counts() {
    for (name, nodes, edges, dim, classes) in [
        ("cora", 2708, 5429, 1433, 7),
        ("citeseer", 3312, 4715, 3703, 6),
    ] {
        let g = GraphData::shipped(name).unwrap();
        assert_eq!(
            (g.nodes, g.edges.len(), g.dim, g.classes),
            (nodes, edges, dim, classes),
            "{name}"
        );
        let graph = Graph::new(g.nodes, &g.edges, g.features, g.labels, g.classes).unwrap();
        assert!(graph.edges() > 0 && graph.edges() <= edges);
    }
}

fn csbm_config(seeds: Vec<u64>) -> GraphExperimentConfig {
    let shifts = vec![Shift::LeaveOutClass, Shift::FeatureFar, Shift::Homophily];
    GraphExperimentConfig::new(seeds, shifts, vec![4])
}

/// The expectations from the structure of each term, on the CSBM of the issue (1200
/// nodes, 5 blocks, one held out, 16 features, means 3 apart, p_in 0.03, p_out 0.002), 3 seeds.
#[test]
fn gebm_terms_detect_what_their_structure_says_on_a_csbm() {
    let graph = CsbmConfig::default().sample(&mut seeded(0)).unwrap();
    let results = experiment::run(
        &graph,
        &csbm_config(vec![0, 1, 2]),
        &cpu_device(),
        &mut |_| {},
    )
    .unwrap();
    let table = experiment::markdown("csbm", &results);
    println!("{table}");
    let mean = |shift: usize, score: &str| {
        let k = ebm_zoo::uncertainty::SCORES
            .iter()
            .position(|s| s.0 == score)
            .unwrap();
        mean_sd(&results[shift].auroc[k]).0
    };
    for r in &results {
        assert!(
            mean_sd(&r.accuracy).0 > 0.85,
            "{}: accuracy {:?}",
            r.shift.name(),
            r.accuracy
        );
    }
    assert!(
        mean(0, "e_group") >= 0.95,
        "E_group on leave-out-class\n{table}"
    );
    assert!(
        mean(1, "e_ind") >= mean(1, "logit_energy_no_edges") + 0.1,
        "E_ind vs the edge-free logit energy on far features\n{table}"
    );
    assert!(
        mean(2, "e_local") >= mean(2, "e_ind") + 0.15,
        "E_local vs E_ind on the homophily shift\n{table}"
    );
}
