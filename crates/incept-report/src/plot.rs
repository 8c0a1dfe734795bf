//! The confusion-matrix heatmap: annotated cells (count and row %), class names on both axes,
//! a colour scale, and the accuracy in the title. PNG or SVG by the file name's extension.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Metrics, Result};

const FONT: &str = "sans-serif";
const CELL: i32 = 110;
const MARGIN_TOP: i32 = 70;
const MARGIN_RIGHT: i32 = 130;
const MARGIN_BOTTOM: i32 = 60;

static REGISTER_FONTS: Once = Once::new();

/// Fonts are embedded (DejaVu), so plots render the same on machines without any installed.
fn register_fonts() {
    REGISTER_FONTS.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Row-normalised share → colour: white to a dark blue (the "Blues" idea).
fn shade(share: f64) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
    let mix = |light: f64, dark: f64| (light + (dark - light) * s).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

/// Draws the heatmap of `metrics` to `path` (.png or .svg), written whole
/// ([`incept_core::atomic`]): drawn in memory, then written under a temporary name and renamed.
pub fn heatmap(metrics: &Metrics, title: &str, path: &Path) -> Result<()> {
    register_fonts();
    let n = metrics.classes.len().max(1) as i32;
    let longest = metrics.classes.iter().map(|c| c.chars().count()).max().unwrap_or(4) as i32;
    // Row labels on the left, column labels rotated below: both sized by the longest name.
    let label_space = 24 + longest * 8;
    let width = (label_space + n * CELL + MARGIN_RIGHT) as u32;
    let height = (MARGIN_TOP + n * CELL + label_space + MARGIN_BOTTOM) as u32;
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let failed =
        |e: &dyn std::fmt::Display| Error::Plot { path: path.to_path_buf(), reason: e.to_string() };
    let bytes = match extension.as_deref() {
        Some("png") => {
            // [height × width × 3] RGB
            let mut pixels = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
                draw(&root, metrics, title, label_space).map_err(|e| failed(&e))?;
                root.present().map_err(|e| failed(&e))?;
            }
            let image = image::RgbImage::from_raw(width, height, pixels)
                .ok_or_else(|| failed(&"the drawing buffer does not hold width × height pixels"))?;
            let mut png = std::io::Cursor::new(Vec::new());
            image.write_to(&mut png, image::ImageFormat::Png).map_err(|e| failed(&e))?;
            png.into_inner()
        }
        Some("svg") => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                draw(&root, metrics, title, label_space).map_err(|e| failed(&e))?;
                root.present().map_err(|e| failed(&e))?;
            }
            svg.into_bytes()
        }
        _ => return Err(Error::PlotFormat { path: path.to_path_buf() }),
    };
    incept_core::write_atomically(path, &bytes).map_err(|error| match error {
        incept_core::Error::Io { path, source } => Error::Io { path, source },
        other => failed(&other),
    })
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    metrics: &Metrics,
    title: &str,
    label_space: i32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let n = metrics.classes.len() as i32;
    let left = label_space;
    let top = MARGIN_TOP;
    let title_style = TextStyle::from((FONT, 24).into_font().style(FontStyle::Bold))
        .pos(Pos::new(HPos::Center, VPos::Center));
    let full_title = format!("{title} — accuracy {:.1}%", 100.0 * metrics.accuracy);
    root.draw(&Text::new(full_title, (left + n * CELL / 2, top / 2), title_style))?;

    let label = TextStyle::from((FONT, 16).into_font());
    for (t, row) in metrics.matrix.iter().enumerate() {
        let y = top + t as i32 * CELL;
        root.draw(&Text::new(
            metrics.classes[t].clone(),
            (left - 10, y + CELL / 2),
            label.pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        for (p, &count) in row.iter().enumerate() {
            let x = left + p as i32 * CELL;
            let share = metrics.row_percent(t, p) / 100.0;
            root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], shade(share).filled()))?;
            root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], RGBColor(200, 200, 200)))?;
            let ink = if share > 0.5 { WHITE } else { BLACK };
            let count_style = TextStyle::from((FONT, 22).into_font().style(FontStyle::Bold))
                .color(&ink)
                .pos(Pos::new(HPos::Center, VPos::Center));
            let percent_style = TextStyle::from((FONT, 15).into_font())
                .color(&ink)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(
                count.to_string(),
                (x + CELL / 2, y + CELL / 2 - 12),
                count_style,
            ))?;
            root.draw(&Text::new(
                format!("{:.1}%", 100.0 * share),
                (x + CELL / 2, y + CELL / 2 + 16),
                percent_style,
            ))?;
        }
    }
    // Column labels, rotated so long species names never overlap.
    let bottom = top + n * CELL;
    for (p, name) in metrics.classes.iter().enumerate() {
        let x = left + p as i32 * CELL + CELL / 2;
        let style = TextStyle::from((FONT, 16).into_font().transform(FontTransform::Rotate270))
            .pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(name.clone(), (x, bottom + 10), style))?;
    }
    let axis = TextStyle::from((FONT, 17).into_font().style(FontStyle::Bold));
    root.draw(&Text::new(
        "predicted class".to_owned(),
        (left + n * CELL / 2, bottom + label_space + MARGIN_BOTTOM / 2),
        axis.pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    root.draw(&Text::new(
        "true class".to_owned(),
        (12, top - 22),
        axis.pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    // Colour scale: share of the true class.
    let scale_x = left + n * CELL + 30;
    let steps = 50;
    let scale_height = n * CELL;
    for step in 0..steps {
        let share = 1.0 - step as f64 / steps as f64;
        let y0 = top + step * scale_height / steps;
        let y1 = top + (step + 1) * scale_height / steps;
        root.draw(&Rectangle::new([(scale_x, y0), (scale_x + 24, y1)], shade(share).filled()))?;
    }
    root.draw(&Rectangle::new([(scale_x, top), (scale_x + 24, top + scale_height)], BLACK))?;
    let tick = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for percent in [0, 25, 50, 75, 100] {
        let y = top + scale_height - percent * scale_height / 100;
        root.draw(&Text::new(format!("{percent}%"), (scale_x + 30, y), tick.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Metrics {
        let classes = ["Aedes_aegypti", "Culex_quinquefasciatus", "Other_species"]
            .map(str::to_owned)
            .to_vec();
        Metrics::from_matrix(classes, vec![vec![8, 1, 1], vec![2, 7, 1], vec![0, 0, 10]])
    }

    #[test]
    fn png_and_svg_files_are_valid() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let png = dir.path().join("m.png");
        heatmap(&example(), "test head", &png)?;
        let bytes =
            std::fs::read(&png).map_err(|source| Error::Io { path: png.clone(), source })?;
        assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let svg = dir.path().join("m.svg");
        heatmap(&example(), "test head", &svg)?;
        let text = std::fs::read_to_string(&svg)
            .map_err(|source| Error::Io { path: svg.clone(), source })?;
        assert!(
            text.starts_with("<svg")
                && text.contains("Culex_quinquefasciatus")
                && text.contains("accuracy 83.3%")
        );
        assert!(heatmap(&example(), "x", &dir.path().join("m.gif")).is_err());
        Ok(())
    }
}
