//! `incept export`: a run's head and its backbone as one ONNX classifier.

use std::path::PathBuf;

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
    #[arg(short, long)]
    output: PathBuf,
    /// What the classifier takes: `uint8` pixels [N, 224, 224, 3] RGB, or `float`, the backbone's
    /// [N, 3, 224, 224] RGB already scaled to [-1, 1].
    #[arg(long, value_enum, default_value = "uint8")]
    input: InputKind,
    /// The ONNX backbone [default: the model under models/ that the head's cache was made with].
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn export(args: &ExportArgs) -> Result<()> {
    let head = TrainedHead::load(&args.run_dir, Backend::default())?;
    let model = crate::commands::backbone_of(&head, args.model.as_deref())?;
    let values = head.values()?;
    let state = &head.state;
    let metrics = incept_head::run_folder::read_metrics(&args.run_dir, state)?;
    let run = args.run_dir.canonicalize().unwrap_or_else(|_| args.run_dir.clone());
    let run_name = run.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
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
    if let Some(metrics) = &metrics {
        // The run's own recipe says what its accuracy is, not which figures happen to be there.
        let label = if head.config.tta { "validation_accuracy_tta" } else { "validation_accuracy" };
        metadata.push((label.to_owned(), format!("{:.4}", metrics.accuracy)));
        if let (true, Some(single)) = (head.config.tta, metrics.single_view_accuracy) {
            metadata.push(("validation_accuracy_single_view".to_owned(), format!("{single:.4}")));
        }
        metadata.push(("validation_macro_f1".to_owned(), format!("{:.4}", metrics.macro_f1)));
    }
    let summary = incept_export::export(&ExportRequest {
        backbone: &model,
        head: &values,
        classes: head.classes().len(),
        input,
        pixel_scale: PIXEL_SCALE,
        pixel_offset: PIXEL_OFFSET,
        metadata,
        output: &args.output,
    })
    .with_context(|| format!("exporting {}", args.run_dir.display()))?;
    eprintln!(
        "wrote {} ({:.1} MB): {} -> probabilities [N, {}]; the backbone {} ({} nodes) and {} nodes \
         for the head{}",
        args.output.display(),
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
    Ok(())
}
