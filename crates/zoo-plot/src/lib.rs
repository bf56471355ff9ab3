//! # zoo-plot: the pictures every family shares
//!
//! Density heat maps (a model next to the true density), sample scatter plots, 8×8 image grids and
//! curves, as PNG files written atomically (a temporary file, then a rename). The bundled DejaVu
//! Sans font is registered on first use, so nothing depends on system fonts.

use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;
use zoo_energy::{Error, Result};

static FONT: OnceLock<bool> = OnceLock::new();

fn font() -> Result<()> {
    let ok = *FONT.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../../assets/fonts/DejaVuSans.ttf"),
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Config("the bundled font does not load".into()))
    }
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("plotting failed: {e}"))
}

/// Draws into `path` (creating its folder) through a temporary `.tmp.png` and renames it into
/// place.
fn atomic_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    font()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
    }
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        context: format!("renaming {} to {}", tmp.display(), path.display()),
        source,
    })
}

/// A density on a square grid: `values[iy * n + ix]` (any non-negative scale).
#[derive(Debug, Clone)]
pub struct HeatMap {
    /// Panel title.
    pub title: String,
    /// Cells per side.
    pub n: usize,
    /// Box [lo, hi]^2.
    pub bounds: (f64, f64),
    /// Values, row by row from the bottom.
    pub values: Vec<f64>,
}

/// A set of 2-D points.
#[derive(Debug, Clone)]
pub struct Scatter {
    /// Panel title.
    pub title: String,
    /// Box [lo, hi]^2.
    pub bounds: (f64, f64),
    /// Points `[m, 2]` row-major.
    pub points: Vec<f32>,
}

/// A perceptual blue-to-yellow ramp for t in [0, 1] (viridis-like).
fn ramp(t: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = t.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Square panels on [lo, hi]^2, 400 px each, `cols` per row (all in one row when `cols` is
/// `None`), each drawn by `draw`.
fn panel_row<T>(
    path: &Path,
    panels: &[T],
    cols: Option<usize>,
    title: impl Fn(&T) -> (&str, (f64, f64)),
    draw: impl Fn(&mut Chart<'_, '_>, &T) -> Result<()>,
) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::invalid("panels", "nothing to plot"));
    }
    let cols = cols.unwrap_or(panels.len()).clamp(1, panels.len());
    let rows = panels.len().div_ceil(cols);
    atomic_png(path, (400 * cols as u32, 420 * rows as u32), |root| {
        for (area, panel) in root.split_evenly((rows, cols)).iter().zip(panels) {
            let (caption, (lo, hi)) = title(panel);
            let mut chart = ChartBuilder::on(area)
                .caption(caption, ("sans-serif", 18))
                .margin(8)
                .build_cartesian_2d(lo..hi, lo..hi)
                .map_err(plot_error)?;
            draw(&mut chart, panel)?;
        }
        Ok(())
    })
}

/// One row of heat maps (each scaled to its own maximum), 400 px per panel.
pub fn heat_maps(path: &Path, panels: &[HeatMap]) -> Result<()> {
    heat_map_grid(path, panels, None)
}

/// Heat maps (each scaled to its own maximum), 400 px per panel, `cols` per row (`None`: one row).
pub fn heat_map_grid(path: &Path, panels: &[HeatMap], cols: Option<usize>) -> Result<()> {
    panel_row(
        path,
        panels,
        cols,
        |p| (&p.title, p.bounds),
        |chart, panel| {
            let (lo, hi) = panel.bounds;
            let max = panel.values.iter().cloned().fold(0.0, f64::max).max(1e-300);
            let h = (hi - lo) / panel.n as f64;
            chart
                .draw_series(panel.values.iter().enumerate().map(|(i, v)| {
                    let (ix, iy) = ((i % panel.n) as f64, (i / panel.n) as f64);
                    let (x0, y0) = (lo + ix * h, lo + iy * h);
                    Rectangle::new([(x0, y0), (x0 + h, y0 + h)], ramp(v / max).filled())
                }))
                .map_err(plot_error)?;
            Ok(())
        },
    )
}

/// One row of scatter plots, 400 px per panel.
pub fn scatters(path: &Path, panels: &[Scatter]) -> Result<()> {
    scatter_grid(path, panels, None)
}

/// Scatter plots, 400 px per panel, `cols` per row (`None`: one row).
pub fn scatter_grid(path: &Path, panels: &[Scatter], cols: Option<usize>) -> Result<()> {
    if let Some(p) = panels.iter().find(|p| p.points.len() % 2 != 0) {
        return Err(Error::invalid(
            "points",
            format!(
                "panel '{}' has {} values: points are (x, y) pairs",
                p.title,
                p.points.len()
            ),
        ));
    }
    panel_row(
        path,
        panels,
        cols,
        |p| (&p.title, p.bounds),
        |chart, panel| {
            chart
                .draw_series(
                    panel
                        .points
                        .chunks(2)
                        .filter(|p| p[0].is_finite() && p[1].is_finite())
                        .map(|p| {
                            Circle::new((p[0] as f64, p[1] as f64), 1, BLUE.mix(0.4).filled())
                        }),
                )
                .map_err(plot_error)?;
            Ok(())
        },
    )
}

/// A grid of square grey-scale images (`side x side` values in [0, 1], 0 = black), `cols` per row.
pub fn image_grid(path: &Path, images: &[Vec<f32>], side: usize, cols: usize) -> Result<()> {
    if images.is_empty() || cols == 0 || images.iter().any(|im| im.len() != side * side) {
        return Err(Error::invalid(
            "images",
            format!("need >= 1 image of {side}x{side} values"),
        ));
    }
    let rows = images.len().div_ceil(cols);
    let scale = 6u32;
    let cell = side as u32 * scale + 4;
    atomic_png(path, (cols as u32 * cell, rows as u32 * cell), |root| {
        for (k, image) in images.iter().enumerate() {
            let (r, c) = ((k / cols) as i32, (k % cols) as i32);
            for (p, v) in image.iter().enumerate() {
                let g = (v.clamp(0.0, 1.0) * 255.0) as u8;
                let x = c * cell as i32 + 2 + (p % side) as i32 * scale as i32;
                let y = r * cell as i32 + 2 + (p / side) as i32 * scale as i32;
                root.draw(&Rectangle::new(
                    [(x, y), (x + scale as i32, y + scale as i32)],
                    RGBColor(g, g, g).filled(),
                ))
                .map_err(plot_error)?;
            }
        }
        Ok(())
    })
}

/// Line curves on one chart.
pub fn curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let points = series
        .iter()
        .flat_map(|(_, s)| s.iter())
        .filter(|p| p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points {
        (x0, x1, y0, y1) = (x0.min(p.0), x1.max(p.0), y0.min(p.1), y1.max(p.1));
    }
    if x0 >= x1 {
        return Err(Error::invalid(
            "series",
            "need at least two distinct x values",
        ));
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    atomic_png(path, (800, 500), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(plot_error)?;
        for (k, (name, s)) in series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    s.iter().copied().filter(|p| p.1.is_finite()),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// One panel of overlaid histograms: named series of raw values.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// The panel's caption.
    pub title: String,
    /// (legend name, values) per series; non-finite values are left out.
    pub series: Vec<(String, Vec<f64>)>,
}

/// Histograms, each series normalised to unit area over 40 bins spanning the panel's 1-99%
/// range of all its values; 400 x 300 px per panel, `cols` per row.
pub fn histograms(path: &Path, panels: &[Histogram], cols: usize) -> Result<()> {
    if panels.is_empty() || cols == 0 {
        return Err(Error::invalid(
            "histograms",
            "need at least one panel and one column",
        ));
    }
    let rows = panels.len().div_ceil(cols);
    let size = (400 * cols.min(panels.len()) as u32, 300 * rows as u32);
    atomic_png(path, size, |root| {
        for (panel, area) in panels.iter().zip(root.split_evenly((rows, cols))) {
            histogram_panel(&area, panel)?;
        }
        Ok(())
    })
}

fn histogram_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Histogram,
) -> Result<()> {
    const BINS: usize = 40;
    let mut all: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    all.sort_by(f64::total_cmp);
    if all.is_empty() {
        return Ok(());
    }
    let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
    let (lo, mut hi) = (at(0.01), at(0.99));
    if hi <= lo {
        hi = lo + 1.0;
    }
    let width = (hi - lo) / BINS as f64;
    let densities: Vec<Vec<f64>> = panel
        .series
        .iter()
        .map(|(_, values)| {
            let mut counts = vec![0.0; BINS];
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            for v in &finite {
                let b = (((v - lo) / width).floor().max(0.0) as usize).min(BINS - 1);
                counts[b] += 1.0 / (finite.len().max(1) as f64 * width);
            }
            counts
        })
        .collect();
    let top = densities
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(25)
        .y_label_area_size(40)
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .draw()
        .map_err(plot_error)?;
    for (k, ((name, _), counts)) in panel.series.iter().zip(&densities).enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(counts.iter().enumerate().map(|(b, &c)| {
                let x0 = lo + b as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, c)], color.mix(0.45).filled())
            }))
            .map_err(plot_error)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}
