//! Line charts as PNG or SVG (picked by the output file's extension), drawn with plotters.
//!
//! Text uses the DejaVu Sans font embedded in the binary, so rendering needs no system font
//! library. Files are replaced atomically: a crash never leaves a half-written image.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::train::atomic::write_atomic;
use crate::train::metrics::read_metrics;

/// Image size in pixels.
const SIZE: (u32, u32) = (1000, 600);
/// The font family name plotters looks up for all our text.
const FONT: &str = "sans-serif";
/// Series with at most this many points also get a marker on each point.
const MARKER_MAX_POINTS: usize = 40;

/// One named line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// What to draw: titles and the series.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic x axis (for sweeps over sizes); points with x <= 0 are then skipped.
    pub log_x: bool,
    pub series: &'a [Series],
}

/// Draws `chart` as a 1000x600 line chart with a legend into `path`, which must end in
/// `.png` or `.svg`. Points with a NaN or infinite coordinate are skipped, as are series left
/// with no points. Axis ranges follow the data with a small margin.
pub fn line_chart(path: &Path, chart: &Chart) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("png") => Format::Png,
        Some("svg") => Format::Svg,
        _ => {
            return Err(Error::Config(format!(
                "{}: unsupported chart format; the file name must end in .png or .svg",
                path.display()
            )))
        }
    };
    register_fonts()?;
    let series = clean_series(chart);
    let render_err = |e: String| Error::format(path, format!("cannot draw chart: {e}"));
    match format {
        Format::Png => {
            let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
                draw(&root, chart, &series).map_err(render_err)?;
                root.present().map_err(|e| render_err(e.to_string()))?;
            }
            let png = encode_png(&rgb, SIZE).map_err(|e| render_err(e.to_string()))?;
            write_atomic(path, &png)
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
                draw(&root, chart, &series).map_err(render_err)?;
                root.present().map_err(|e| render_err(e.to_string()))?;
            }
            write_atomic(path, svg.as_bytes())
        }
    }
}

/// Plots `y_keys` against `x_key` from a metrics.jsonl file (see [`crate::train::metrics`]), one
/// series per y key, under the y-axis label `y_label`. Records lacking a key, or holding a non-numeric value for it (`null` is
/// how NaN gets logged), are skipped for that series.
pub fn plot_jsonl(
    metrics: &Path,
    out: &Path,
    x_key: &str,
    y_keys: &[&str],
    title: &str,
    y_label: &str,
) -> Result<()> {
    let records = read_metrics(metrics)?;
    let series: Vec<Series> = y_keys
        .iter()
        .map(|&key| Series {
            name: key.to_string(),
            points: records
                .iter()
                .filter_map(|r| Some((r.get(x_key)?.as_f64()?, r.get(key)?.as_f64()?)))
                .collect(),
        })
        .collect();
    line_chart(
        out,
        &Chart {
            title,
            x_label: x_key,
            y_label,
            log_x: false,
            series: &series,
        },
    )
}

/// Encodes a buffer of 8-bit RGB pixels, row by row, as a PNG file's bytes.
fn encode_png(
    rgb: &[u8],
    (width, height): (u32, u32),
) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

enum Format {
    Png,
    Svg,
}

/// Registers the embedded DejaVu Sans fonts with plotters, once per process.
fn register_fonts() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let fonts = [
                (FontStyle::Normal, dejavu::sans::regular()),
                (FontStyle::Bold, dejavu::sans::bold()),
                (FontStyle::Oblique, dejavu::sans::oblique()),
                (FontStyle::Italic, dejavu::sans::oblique()),
            ];
            for (style, bytes) in fonts {
                plotters::style::register_font(FONT, style, bytes).map_err(|_| {
                    format!(
                        "embedded DejaVu Sans ({}) is not a valid font",
                        style.as_str()
                    )
                })?;
            }
            Ok(())
        })
        .clone()
        .map_err(Error::Config)
}

/// The series with their unplottable points removed, and empty series dropped.
fn clean_series(chart: &Chart) -> Vec<(usize, Series)> {
    chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let points = s
                .points
                .iter()
                .copied()
                .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!chart.log_x || x > 0.0))
                .collect();
            (
                i,
                Series {
                    name: s.name.clone(),
                    points,
                },
            )
        })
        .filter(|(_, s)| !s.points.is_empty())
        .collect()
}

/// Draws the whole chart. `series` carry their index in the caller's slice so a series keeps
/// its colour whether or not others were dropped.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    series: &[(usize, Series)],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let xs = || {
        series
            .iter()
            .flat_map(|(_, s)| s.points.iter().map(|p| p.0))
    };
    let ys = || {
        series
            .iter()
            .flat_map(|(_, s)| s.points.iter().map(|p| p.1))
    };
    let y_range = padded_linear(ys());
    let x_range = if chart.log_x {
        padded_log(xs())
    } else {
        padded_linear(xs())
    };
    let corner = legend_corner(series, &x_range, &y_range, chart.log_x);
    let scales = (
        axis_scale(&x_range, chart.log_x),
        axis_scale(&y_range, false),
    );
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(chart.title, (FONT, 28))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(85);
    let mut ticks: Vec<f64> = xs().collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    if chart.log_x && ticks.len() <= 12 {
        // a few sizes (the training-set sizes of `primer plot`): ticks at them, where powers of ten might
        // leave the axis without a number
        let ctx = builder
            .build_cartesian_2d(x_range.log_scale().with_key_points(ticks), y_range)
            .map_err(|e| e.to_string())?;
        draw_in(ctx, chart, series, corner, scales)
    } else if chart.log_x {
        let ctx = builder
            .build_cartesian_2d(x_range.log_scale(), y_range)
            .map_err(|e| e.to_string())?;
        draw_in(ctx, chart, series, corner, scales)
    } else {
        let ctx = builder
            .build_cartesian_2d(x_range, y_range)
            .map_err(|e| e.to_string())?;
        draw_in(ctx, chart, series, corner, scales)
    }
}

/// The corner of the plot with the fewest points in it (the part of the axes 40 % from each edge), for the
/// legend, so that it hides as little as it can: a loss falls to the lower right, an accuracy rises to the upper.
fn legend_corner(
    series: &[(usize, Series)],
    x: &Range<f64>,
    y: &Range<f64>,
    log_x: bool,
) -> SeriesLabelPosition {
    let along = |v: f64, r: &Range<f64>, log: bool| {
        let (v, lo, hi) = if log {
            (v.ln(), r.start.ln(), r.end.ln())
        } else {
            (v, r.start, r.end)
        };
        (v - lo) / (hi - lo).max(f64::MIN_POSITIVE)
    };
    let points = || series.iter().flat_map(|(_, s)| s.points.iter());
    let count = |right: bool, upper: bool| {
        points()
            .filter(|&&(px, py)| {
                let (fx, fy) = (along(px, x, log_x), along(py, y, false));
                (if right { fx > 0.6 } else { fx < 0.4 })
                    && (if upper { fy > 0.6 } else { fy < 0.4 })
            })
            .count()
    };
    // upper right first among equals, as before
    [
        (SeriesLabelPosition::UpperRight, count(true, true)),
        (SeriesLabelPosition::UpperLeft, count(false, true)),
        (SeriesLabelPosition::LowerRight, count(true, false)),
        (SeriesLabelPosition::LowerLeft, count(false, false)),
    ]
    .into_iter()
    .min_by_key(|&(_, n)| n)
    .map_or(SeriesLabelPosition::UpperRight, |(corner, _)| corner)
}

/// Mesh, lines, markers and legend, for either kind of x axis.
fn draw_in<'a, DB, X>(
    mut ctx: ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    chart: &Chart,
    series: &[(usize, Series)],
    corner: SeriesLabelPosition,
    scales: (Option<Scale>, Option<Scale>),
) -> std::result::Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_labels(10)
        .y_labels(10)
        .x_label_formatter(&|v| tick_label(*v, scales.0))
        .y_label_formatter(&|v| tick_label(*v, scales.1))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .max_light_lines(4)
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, s) in series {
        let colour = colour(*index);
        let style = colour.stroke_width(2);
        ctx.draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(|e| e.to_string())?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
        if s.points.len() <= MARKER_MAX_POINTS {
            ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    if !series.is_empty() {
        ctx.configure_series_labels()
            .position(corner)
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(120, 120, 120))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Colour of the series at `index`: ten well-separated colours, then plotters' palette.
fn colour(index: usize) -> RGBColor {
    const TEN: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    match TEN.get(index) {
        Some(&(r, g, b)) => RGBColor(r, g, b),
        None => {
            let (r, g, b) = Palette99::pick(index).rgb();
            RGBColor(r, g, b)
        }
    }
}

/// Min..max of `values` widened by 5% on each side; a single value gets a window of at least
/// one unit.
/// No values at all give 0..1.
fn padded_linear(values: impl Iterator<Item = f64>) -> Range<f64> {
    let Some((lo, hi)) = min_max(values) else {
        return 0.0..1.0;
    };
    let span = hi - lo;
    let pad = if span > 0.0 {
        0.05 * span
    } else {
        0.5 * lo.abs().max(1.0)
    };
    let (start, end) = (lo - pad, hi + pad);
    if start.is_finite() && end.is_finite() {
        start..end
    } else {
        // Values near f64::MAX: no room for a margin.
        lo..hi
    }
}

/// Like [`padded_linear`] for positive values on a log axis: the margin is a factor.
fn padded_log(values: impl Iterator<Item = f64>) -> Range<f64> {
    let Some((lo, hi)) = min_max(values) else {
        return 1.0..10.0;
    };
    let factor = if hi > lo { (hi / lo).powf(0.05) } else { 2.0 };
    (lo / factor)..(hi * factor)
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A tick suffix and the value it stands for.
type Scale = (f64, &'static str);

const SUFFIXES: [Scale; 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];

/// The suffix for a value of size `a`: none below 10 000.
fn scale_for(a: f64) -> Option<Scale> {
    SUFFIXES.into_iter().find(|&(scale, _)| a >= scale.max(1e4))
}

/// The suffix that all ticks of an axis reaching 10 000 share, so that it reads 0, 2k, …, 10k rather than 8000
/// beside 10k. A log axis shares one only when its lowest value reaches the suffix too (2k, 6k, 12k); one that
/// spans decades below it (100, 1000, 10k) reads best with each tick on its own.
fn axis_scale(r: &Range<f64>, log: bool) -> Option<Scale> {
    let scale = scale_for(r.start.abs().max(r.end.abs()))?;
    (!log || r.start >= scale.0).then_some(scale)
}

/// Short tick text: plain decimals, k/M/G/T suffixes for large values (token and step counts, with three
/// significant digits: a tick at a data size of 67349 reads 67.3k) or for every tick of an axis that shares
/// one (`scale`, see [`axis_scale`]), scientific notation for tiny or huge ones.
fn tick_label(v: f64, scale: Option<Scale>) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e15).contains(&a) {
        return format!("{v:.1e}");
    }
    let Some((scale, suffix)) = scale.or_else(|| scale_for(a)) else {
        return trimmed(v, 4);
    };
    let x = v / scale;
    let decimals = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{}{suffix}", trimmed(x, decimals))
}

/// `v` with at most `decimals` decimals and no trailing zeros.
fn trimmed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    // only a fraction's zeros: 100 keeps its own
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> crate::testutil::Scratch {
        crate::testutil::scratch_dir("plot", name)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        crate::testutil::file_names(dir)
    }

    fn sample_series() -> Vec<Series> {
        vec![
            Series {
                name: "train_loss".into(),
                points: (0..200)
                    .map(|i| (i as f64, 4.0 * (-(i as f64) / 60.0).exp() + 1.0))
                    .collect(),
            },
            Series {
                name: "val_loss".into(),
                points: vec![
                    (0.0, 5.1),
                    (50.0, 2.4),
                    (100.0, f64::NAN),
                    (150.0, 1.6),
                    (199.0, 1.5),
                ],
            },
            Series {
                name: "never_logged".into(),
                points: vec![],
            },
            Series {
                name: "only_nan".into(),
                points: vec![(1.0, f64::NAN), (f64::INFINITY, 2.0)],
            },
            Series {
                name: "single".into(),
                points: vec![(100.0, 3.0)],
            },
        ]
    }

    fn chart(series: &[Series]) -> Chart<'_> {
        Chart {
            title: "Loss curves",
            x_label: "step",
            y_label: "loss",
            log_x: false,
            series,
        }
    }

    /// The text of every `<text>` element of an SVG document.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn png_is_written_with_the_right_size() {
        let dir = scratch("png");
        let path = dir.join("loss.png");
        let series = sample_series();
        line_chart(&path, &chart(&series)).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (1000, 600));
        // The pixels decode: a white background with dark text and coloured lines on it.
        let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes))
            .read_info()
            .unwrap();
        let mut pixels = vec![0u8; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let rgb: Vec<&[u8]> = pixels[..info.buffer_size()].chunks(3).collect();
        let white = rgb.iter().filter(|p| p.iter().all(|&c| c == 255)).count();
        assert!(
            white > rgb.len() / 2 && white < rgb.len(),
            "{white} of {} white",
            rgb.len()
        );
        // Only the chart is left: the temporary file was renamed.
        assert_eq!(files_in(&dir), vec!["loss.png".to_string()]);

        // Text reaches the pixels: a different title gives a different image.
        let other = dir.join("other.png");
        line_chart(
            &other,
            &Chart {
                title: "Other title",
                ..chart(&series)
            },
        )
        .unwrap();
        assert_ne!(fs::read(&other).unwrap(), bytes);
    }

    #[test]
    fn svg_has_title_labels_and_legend_of_plottable_series() {
        let dir = scratch("svg");
        let path = dir.join("loss.SVG");
        let series = sample_series();
        line_chart(&path, &chart(&series)).unwrap();
        let svg = fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
        let texts = svg_texts(&svg);
        for expected in [
            "Loss curves",
            "step",
            "loss",
            "train_loss",
            "val_loss",
            "single",
        ] {
            assert!(
                texts.iter().any(|t| t == expected),
                "missing <text>{expected}</text> in {texts:?}"
            );
        }
        for skipped in ["never_logged", "only_nan"] {
            assert!(
                !texts.iter().any(|t| t == skipped),
                "{skipped} should not be in the legend"
            );
        }
        // Distinct colours for the drawn series (first two of the palette).
        assert!(
            svg.contains("#1F77B4") || svg.contains("#1f77b4"),
            "first series colour missing"
        );
        assert!(
            svg.contains("#FF7F0E") || svg.contains("#ff7f0e"),
            "second series colour missing"
        );
    }

    /// Training-set sizes within one decade still get numbers on a log axis: ticks at the data's sizes.
    #[test]
    fn a_few_sizes_on_a_log_axis_are_labelled() {
        let dir = scratch("sizes");
        let sizes = vec![Series {
            name: "pretrained".into(),
            points: vec![(30.0, 0.6), (60.0, 0.7)],
        }];
        let path = dir.join("sizes.svg");
        line_chart(
            &path,
            &Chart {
                log_x: true,
                ..chart(&sizes)
            },
        )
        .unwrap();
        let texts = svg_texts(&fs::read_to_string(&path).unwrap());
        for tick in ["30", "60"] {
            assert!(texts.iter().any(|t| t == tick), "{tick} in {texts:?}");
        }
    }

    /// The legend goes where the lines are not: away from a rising curve's end, into a falling one's corner.
    #[test]
    fn the_legend_avoids_the_points() {
        let line = |points: Vec<(f64, f64)>| {
            vec![(
                0,
                Series {
                    name: "s".into(),
                    points,
                },
            )]
        };
        let corner = |points: Vec<(f64, f64)>| {
            let s = line(points);
            legend_corner(&s, &(0.0..4.0), &(0.0..1.0), false)
        };
        let rising = corner(vec![(0.5, 0.1), (1.0, 0.5), (3.5, 0.9)]);
        assert!(
            matches!(rising, SeriesLabelPosition::UpperLeft),
            "{rising:?}"
        );
        let falling = corner(vec![(0.5, 0.9), (1.0, 0.5), (3.5, 0.1)]);
        assert!(
            matches!(falling, SeriesLabelPosition::UpperRight),
            "{falling:?}"
        );
    }

    #[test]
    fn log_x_and_degenerate_inputs_render() {
        let dir = scratch("log");
        let sweep = vec![Series {
            name: "final loss".into(),
            points: vec![(0.0, 9.0), (1e3, 4.0), (1e4, 3.1), (1e5, 2.6), (1e6, 2.3)],
        }];
        let path = dir.join("sweep.svg");
        line_chart(
            &path,
            &Chart {
                log_x: true,
                ..chart(&sweep)
            },
        )
        .unwrap();
        let texts = svg_texts(&fs::read_to_string(&path).unwrap());
        assert!(texts.iter().any(|t| t == "final loss"));
        // Ticks span the decades of the data.
        assert!(
            texts.iter().any(|t| t == "1.0e3" || t == "1000"),
            "{texts:?}"
        );

        // Nothing plottable at all still gives a chart (axes and title).
        let nothing = vec![Series {
            name: "empty".into(),
            points: vec![],
        }];
        let path = dir.join("empty.png");
        line_chart(&path, &chart(&nothing)).unwrap();
        assert_eq!(&fs::read(&path).unwrap()[..4], b"\x89PNG");
        line_chart(&dir.join("none.svg"), &chart(&[])).unwrap();
    }

    #[test]
    fn unsupported_extension_is_a_clear_error() {
        let dir = scratch("ext");
        let series = sample_series();
        for name in ["loss.jpg", "loss"] {
            let path = dir.join(name);
            let msg = line_chart(&path, &chart(&series)).unwrap_err().to_string();
            assert!(
                msg.contains(name) && msg.contains(".png") && msg.contains(".svg"),
                "{msg}"
            );
        }
        assert!(files_in(&dir).is_empty());
    }

    #[test]
    fn plot_jsonl_plots_present_keys_and_reports_bad_lines() {
        let dir = scratch("jsonl");
        let metrics = dir.join("metrics.jsonl");
        fs::write(
            &metrics,
            "{\"step\": 0, \"loss\": 3.0}\n\
             {\"step\": 1, \"loss\": 2.5, \"val_loss\": 2.7}\n\
             {\"step\": 2, \"loss\": null}\n\
             {\"event\": \"checkpoint\"}\n\
             {\"step\": 3, \"loss\": 2.0, \"val_loss\": 2.2}\n",
        )
        .unwrap();
        let out = dir.join("loss.svg");
        plot_jsonl(
            &metrics,
            &out,
            "step",
            &["loss", "val_loss", "absent"],
            "Run 1",
            "value",
        )
        .unwrap();
        let texts = svg_texts(&fs::read_to_string(&out).unwrap());
        for expected in ["Run 1", "step", "value", "loss", "val_loss"] {
            assert!(
                texts.iter().any(|t| t == expected),
                "missing {expected} in {texts:?}"
            );
        }
        assert!(!texts.iter().any(|t| t == "absent"));

        fs::write(
            &metrics,
            "{\"step\": 0, \"loss\": 3.0}\nnot json\n{\"step\": 1}\n",
        )
        .unwrap();
        let msg = plot_jsonl(&metrics, &out, "step", &["loss"], "Run 1", "loss")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("metrics.jsonl") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn ranges_have_margins() {
        let r = padded_linear([0.0, 100.0].into_iter());
        assert_eq!((r.start, r.end), (-5.0, 105.0));
        let r = padded_linear([3.0].into_iter());
        assert!(r.start < 3.0 && r.end > 3.0);
        let r = padded_linear([-f64::MAX, f64::MAX].into_iter());
        assert!(r.start.is_finite() && r.end.is_finite());
        let r = padded_log([10.0, 1e6].into_iter());
        assert!(
            r.start < 10.0 && r.start > 5.0 && r.end > 1e6 && r.end < 2e6,
            "{r:?}"
        );
        assert_eq!(tick_label(0.25, None), "0.25");
        assert_eq!(tick_label(1500.0, None), "1500");
        assert_eq!(tick_label(25_000.0, None), "25k");
        assert_eq!(tick_label(67_349.0, None), "67.3k");
        assert_eq!(tick_label(123_456.0, None), "123k");
        assert_eq!(tick_label(100_000.0, None), "100k");
        assert_eq!(tick_label(120_000.0, None), "120k");
        assert_eq!(tick_label(5e8, None), "500M");
        assert_eq!(tick_label(-200_000.0, None), "-200k");
        assert_eq!(tick_label(1e6, None), "1M");
        assert_eq!(tick_label(2.5e9, None), "2.5G");
        assert_eq!(tick_label(-0.0001, None), "-1.0e-4");
        assert_eq!(tick_label(3e20, None), "3.0e20");
        // one axis, one suffix: the ticks of a 12 000-step run
        let steps = axis_scale(&padded_linear([0.0, 12_000.0].into_iter()), false);
        let ticks: Vec<String> = [0.0, 2000.0, 8000.0, 10_000.0, 12_000.0]
            .iter()
            .map(|&v| tick_label(v, steps))
            .collect();
        assert_eq!(ticks, ["0", "2k", "8k", "10k", "12k"]);
        let tokens = axis_scale(&(0.0..1.5e6), false);
        assert_eq!(tick_label(250_000.0, tokens), "0.25M");
        assert_eq!(tick_label(1.5e6, tokens), "1.5M");
        // below 10 000, and on a log axis, each tick by itself
        assert_eq!(axis_scale(&(0.0..8000.0), false), None);
        assert_eq!(
            tick_label(2000.0, axis_scale(&(0.0..8000.0), false)),
            "2000"
        );
        assert_eq!(axis_scale(&(100.0..67_349.0), true), None);
        // a log axis of sizes from 2000 up: 2k, 6k, 12k
        let sizes = axis_scale(&padded_log([2000.0, 12_000.0].into_iter()), true);
        assert_eq!(tick_label(2000.0, sizes), "2k");
        assert_eq!(tick_label(6000.0, sizes), "6k");
    }
}
