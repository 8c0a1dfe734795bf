//! `incept export`: a run's head and its backbone as one ONNX classifier.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use incept_export::{ExportRequest, InputKind};
use incept_extract::{INPUT_SIZE, PIXEL_OFFSET, PIXEL_SCALE, PREPROCESSING};
use incept_head::{Backend, TrainedHead};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run folder made by `incept train-head`.
    run_dir: PathBuf,
    /// The ONNX file to write (e.g. RUN_DIR/classifier.onnx).
    #[arg(short, long, required_unless_present = "web")]
    output: Option<PathBuf>,
    /// Also (or only) write a static page that classifies photos in a browser, offline after
    /// its first load: DIR/index.html, the classifier and onnxruntime-web (README, "Take it to
    /// the field"). Serve DIR with any static server.
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
    /// onnxruntime-web's dist/ folder for --web [default: web/node_modules/onnxruntime-web/dist
    /// in this folder or in incept's, installed by `just setup`].
    #[arg(long, value_name = "DIR")]
    onnxruntime_web: Option<PathBuf>,
    /// Record this "not sure" threshold (a calibrated top probability) in the metadata and the
    /// page: below it, answer "not sure". The report's accuracy–coverage table suggests one.
    #[arg(long, value_name = "P", value_parser = crate::cli::parse_confidence)]
    min_confidence: Option<f64>,
    /// Leave the run's temperature out: the head's own probabilities.
    #[arg(long)]
    uncalibrated: bool,
    /// Use the int8 backbone beside the run's (`NAME.int8.onnx`, which `just model-int8 PHOTOS
    /// LAYER` writes) instead of it: about half the size; the head, trained on float features,
    /// then sees int8 ones, so answers can differ (docs/BENCHMARKS.md measures by how much).
    #[arg(long, requires = "photos")]
    int8: bool,
    /// With --int8: the folder the run's cache was extracted from, whose validation photos are
    /// classified through both backbones to state what int8 changes.
    #[arg(long, value_name = "DATA_DIR", requires = "int8")]
    photos: Option<PathBuf>,
    /// What the classifier takes: `uint8` pixels [N, 224, 224, 3] RGB, or `float`, the backbone's
    /// [N, 3, 224, 224] RGB already scaled to [-1, 1].
    #[arg(long, value_enum, default_value = "uint8")]
    input: InputKind,
    /// The ONNX backbone [default: the model under models/ that the head's cache was made with].
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn export(args: &ExportArgs) -> Result<()> {
    // What a page needs is checked before anything is written: a failed export must not leave a
    // working page half replaced.
    let runtime = match &args.web {
        Some(_) if args.input != InputKind::Uint8 => {
            anyhow::bail!("--web needs --input uint8: the page hands the classifier pixels")
        }
        Some(_) => Some(incept_export::web::find_runtime(args.onnxruntime_web.as_deref())?),
        None => None,
    };
    let head = TrainedHead::load(&args.run_dir, Backend::default())?;
    let float_model = crate::commands::backbone_of(&head, args.model.as_deref())?;
    let model = if args.int8 { int8_beside(&float_model)? } else { float_model.clone() };
    let values = head.values()?;
    let state = &head.state;
    let metrics = incept_head::run_folder::read_metrics(&args.run_dir, state)?;
    let run_name = run_name_of(&args.run_dir);
    let input = args.input;
    let input_note = match input {
        InputKind::Uint8 => format!(
            "image: uint8 RGB [N, {INPUT_SIZE}, {INPUT_SIZE}, 3], resized to \
             {INPUT_SIZE}x{INPUT_SIZE} with an antialiased bilinear filter (PIL's BILINEAR); the \
             scaling to [-1, 1] is inside the graph"
        ),
        InputKind::Float => {
            format!("input: float32 RGB [N, 3, {INPUT_SIZE}, {INPUT_SIZE}] in [-1, 1]")
        }
    };
    let mut metadata = vec![
        ("classes".to_owned(), serde_json::to_string(head.classes())?),
        ("run".to_owned(), run_name),
        ("backbone_sha256".to_owned(), state.cache_model_sha256.clone()),
        (
            "backbone".to_owned(),
            model.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        ),
        ("input".to_owned(), input_note),
        ("preprocessing".to_owned(), PREPROCESSING.to_owned()),
        ("best_epoch".to_owned(), state.best_epoch.to_string()),
        ("incept_version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
    ];
    if head.members() > 1 {
        metadata.push(("ensemble".to_owned(), head.members().to_string()));
    }
    let int8_check = match (&args.photos, args.int8) {
        (Some(photos), true) => {
            let check = crate::int8::check(&head, &args.run_dir, photos, &float_model, &model)?;
            eprintln!(
                "int8 backbone on {}: accuracy {:.1} % (float {:.1} %), the same answer for \
                 {:.1} %",
                check.photos_described(),
                100.0 * check.int8_accuracy,
                100.0 * check.float_accuracy,
                100.0 * check.agreement
            );
            // The head was trained on the float backbone (`backbone_sha256`); this one stands in.
            metadata.push(("int8_backbone_sha256".to_owned(), incept_core::sha256_file(&model)?));
            metadata.push((
                "int8_validation_accuracy".to_owned(),
                format!(
                    "{:.4} (float backbone {:.4}; the same answer for {:.4} of {})",
                    check.int8_accuracy,
                    check.float_accuracy,
                    check.agreement,
                    check.photos_described()
                ),
            ));
            Some(check)
        }
        _ => None,
    };
    // A single prediction's temperature: the exported graph sees one view.
    let temperature = if args.uncalibrated { None } else { head.temperature(false) };
    match temperature {
        Some(t) => {
            metadata.push(("temperature".to_owned(), format!("{t:.6}")));
            metadata.push((
                "calibration".to_owned(),
                "probabilities are softmax(log-probabilities / temperature), the temperature \
                 fitted on the run's validation photos (out-of-fold for a cross-validation)"
                    .to_owned(),
            ));
        }
        None if !args.uncalibrated => eprintln!(
            "note: {} has no temperature (no validation photo, a TTA run of an earlier \
             incept, or every validation photo right: a degenerate fit): the classifier gives the head's own probabilities",
            args.run_dir.display()
        ),
        None => {}
    }
    if let Some(p) = args.min_confidence {
        metadata.push(("min_confidence".to_owned(), format!("{p}")));
    }
    if let Some(metrics) = &metrics {
        // The run's own recipe says what its accuracy is, not which figures happen to be there.
        let label = if head.config.tta { "validation_accuracy_tta" } else { "validation_accuracy" };
        metadata.push((label.to_owned(), format!("{:.4}", metrics.accuracy)));
        if let (true, Some(single)) = (head.config.tta, metrics.single_view_accuracy) {
            metadata.push(("validation_accuracy_single_view".to_owned(), format!("{single:.4}")));
        }
        metadata.push(("validation_macro_f1".to_owned(), format!("{:.4}", metrics.macro_f1)));
    }
    // With --web the classifier is written into the page's folder (and copied to -o if given).
    let output = match (&args.web, &args.output) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
            incept_export::web::model_path(dir)
        }
        (None, Some(output)) => output.clone(),
        (None, None) => anyhow::bail!("pass -o FILE or --web DIR"),
    };
    let summary = incept_export::export(&ExportRequest {
        backbone: &model,
        head: &values,
        classes: head.classes().len(),
        input,
        pixel_scale: PIXEL_SCALE,
        pixel_offset: PIXEL_OFFSET,
        temperature,
        metadata,
        output: &output,
    })
    .with_context(|| format!("exporting {}", args.run_dir.display()))?;
    eprintln!(
        "wrote {} ({:.1} MB): {} -> probabilities [N, {}]; the backbone {} ({} nodes) and {} nodes \
         for the head{}",
        output.display(),
        summary.bytes as f64 / 1e6,
        summary.input,
        head.classes().len(),
        model.display(),
        summary.backbone_nodes,
        summary.added_nodes,
        if head.members() > 1 {
            format!(" (the mean of {} members)", head.members())
        } else {
            String::new()
        },
    );
    if let (Some(dir), Some(runtime)) = (&args.web, &runtime) {
        let info = incept_export::web::PageInfo {
            run: run_name_of(&args.run_dir),
            classes: head.classes().to_vec(),
            temperature: temperature.unwrap_or(1.0),
            min_confidence: args.min_confidence,
            input_size: INPUT_SIZE,
            max_dimension: incept_core::MAX_IMAGE_DIMENSION,
            validation_accuracy: metrics
                .as_ref()
                .map(|m| m.single_view_accuracy.unwrap_or(m.accuracy)),
            int8: args.int8,
            int8_check: int8_check
                .map(|c| crate::int8::with_float_size(c, summary.bytes, &float_model, &model))
                .transpose()?,
            incept_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let page = incept_export::web::write_page(dir, runtime, &info)
            .with_context(|| format!("writing the page {}", dir.display()))?;
        eprintln!(
            "wrote the page {} ({} files, {:.1} MB): serve it with any static server, e.g. \
             `python3 -m http.server -d {} 8000`, and open http://localhost:8000/",
            dir.display(),
            page.files,
            page.bytes as f64 / 1e6,
            dir.display()
        );
        if let Some(copy) = &args.output {
            let bytes =
                std::fs::read(&output).with_context(|| format!("reading {}", output.display()))?;
            incept_core::write_atomically(copy, &bytes)?;
            eprintln!("wrote {} (the page's classifier)", copy.display());
        }
    }
    Ok(())
}

/// The int8 backbone `just model-int8` writes beside `model` (`NAME.int8.onnx`).
fn int8_beside(model: &Path) -> Result<PathBuf> {
    let int8 = model.with_extension("int8.onnx");
    if !int8.is_file() {
        // The recipe's LAYER: the layer whose converted model this is.
        let file_name = model.file_name();
        let layer = incept_extract::Layer::ALL
            .into_iter()
            .find(|layer| Path::new(layer.default_model()).file_name() == file_name)
            .map_or("LAYER", incept_extract::Layer::name);
        anyhow::bail!(
            "--int8: no int8 backbone at {}; make it from 320 of your photos with `just \
             model-int8 PHOTOS {layer}`",
            int8.display()
        );
    }
    Ok(int8)
}

/// A run's name: its folder's name, never a path.
fn run_name_of(run_dir: &Path) -> String {
    let run = run_dir.canonicalize().unwrap_or_else(|_| run_dir.to_path_buf());
    run.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}
