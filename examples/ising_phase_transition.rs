//! The Ising phase transition: <|m|> and the specific heat per spin against temperature for
//! L = 8, 16, 32 (Wolff cluster updates), with Onsager's critical temperature
//! T_c = 2 / ln(1 + sqrt 2) ≈ 2.269 marked. Writes a PNG.
//!
//! Run: `cargo run --release --example ising_phase_transition -- --out ising.png`
//! Expected: <|m|> falls from ~1 to ~0 around T_c, more sharply for larger L; the specific heat
//! peaks near T_c, higher for larger L. Takes about 20 s on 2 cores.

use clap::Parser;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::spin::{Ising, SpinSampler, observe};
use plotters::prelude::*;

#[derive(Parser)]
struct Args {
    /// Output PNG.
    #[arg(long, default_value = "ising_phase_transition.png")]
    out: String,
    /// Measured Wolff steps per temperature (after as many warm-up steps / 4).
    #[arg(long, default_value_t = 4000)]
    steps: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        include_bytes!("../assets/fonts/DejaVuSans.ttf"),
    )
    .map_err(|_| anyhow::anyhow!("the bundled font does not load"))?;
    let t_c = 2.0 / (1.0 + 2f64.sqrt()).ln();
    let temperatures: Vec<f64> = (0..25).map(|i| 1.5 + 1.5 * i as f64 / 24.0).collect();
    let mut curves = Vec::new();
    for (k, l) in [8usize, 16, 32].into_iter().enumerate() {
        let model = Ising::new(l, l, 1.0, 0.0, true)?;
        let mut points = Vec::new();
        for (i, t) in temperatures.iter().enumerate() {
            let mut rng = seeded(args.seed + 1000 * k as u64 + i as u64);
            let o = observe(
                &mut rng,
                &model,
                SpinSampler::Wolff,
                1.0 / t,
                4,
                args.steps / 4,
                args.steps,
            )?;
            points.push((*t, o.abs_magnetisation, o.specific_heat));
        }
        println!(
            "L = {l}: specific heat peaks at T = {:.3}",
            points.iter().max_by(|a, b| a.2.total_cmp(&b.2)).unwrap().0
        );
        curves.push((l, points));
    }
    let root = BitMapBackend::new(&args.out, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let c_max = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.2))
        .fold(0.0, f64::max)
        * 1.1;
    for (area, title, y_max, pick) in [
        (&left, "mean |m|", 1.05, 1usize),
        (&right, "specific heat per spin", c_max, 2usize),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("2-D Ising, Wolff: {title}"), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(1.5..3.0, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("temperature T (J = 1)")
            .y_desc(title)
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                vec![(t_c, 0.0), (t_c, y_max)],
                BLACK.stroke_width(1),
            ))?
            .label(format!("T_c = {t_c:.3} (Onsager)"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        for ((l, points), color) in curves.iter().zip([BLUE, GREEN, RED]) {
            let series: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.0, if pick == 1 { p.1 } else { p.2 }))
                .collect();
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
                .label(format!("L = {l}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    println!("wrote {}", args.out);
    Ok(())
}
