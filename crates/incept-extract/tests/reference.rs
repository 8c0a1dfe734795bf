//! The converted model against the original network's output (PyTorch, in ../shared/reference),
//! and the image preprocessing against PIL's. Needs `just setup` (model and ONNX Runtime).

use crate::{npy, shared_dir};
use incept_extract::{Backbone, DEFAULT_MODEL, Device};
use incept_extract::{DecodeOptions, INPUT_SIZE, load_for_network, to_network_input};
use ndarray::{Array4, ArrayView4, Axis};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn reference(name: &str) -> Result<(Vec<usize>, Vec<f32>), Box<dyn std::error::Error>> {
    let path = shared_dir().join("reference").join(name);
    Ok(npy::read_f32(&path)
        .map_err(|e| format!("{e} (the reference tensors live in ../shared/reference)"))?)
}

fn backbone() -> Result<Backbone, Box<dyn std::error::Error>> {
    let model = incept_core::project_root().join(DEFAULT_MODEL);
    Ok(Backbone::load(&model, Device::Cpu, 0)?)
}

/// [N, H, W, C] channels-last → [N, C, H, W], as the reference is stored.
fn to_nchw(features: &Array4<f32>) -> Array4<f32> {
    features.view().permuted_axes([0, 3, 1, 2]).as_standard_layout().into_owned()
}

#[test]
fn model_matches_the_original_network() -> TestResult {
    let (input_shape, inputs) = reference("inputs.npy")?;
    let (feature_shape, expected) = reference("features.npy")?;
    assert_eq!(input_shape, [5, 3, 224, 224]);
    assert_eq!(feature_shape, [5, 2048, 5, 5]);
    let inputs = ArrayView4::from_shape((5, 3, 224, 224), &inputs)?;
    let actual = to_nchw(&backbone()?.run(inputs)?);
    let max_difference =
        actual.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("max abs difference to the PyTorch reference: {max_difference:e}");
    assert!(max_difference < 1e-3, "max abs difference {max_difference}");
    Ok(())
}

#[test]
fn batch_size_does_not_change_the_features() -> TestResult {
    let (_, inputs) = reference("inputs.npy")?;
    let inputs = ArrayView4::from_shape((5, 3, 224, 224), &inputs)?;
    let mut backbone = backbone()?;
    let together = backbone.run(inputs)?;
    let alone = backbone.run(inputs.slice(ndarray::s![2..3, .., .., ..]))?;
    let difference = (&together.index_axis(Axis(0), 2) - &alone.index_axis(Axis(0), 0))
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(difference < 1e-4, "{difference}");
    Ok(())
}

#[test]
fn our_preprocessing_gives_the_reference_features() -> TestResult {
    let shared = shared_dir();
    let listing: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join("reference/reference.json"))?)?;
    let images = listing["images"].as_array().ok_or("reference.json has no images")?;
    let side = INPUT_SIZE as usize;
    let mut batch = Array4::<f32>::zeros((images.len(), 3, side, side));
    for (slot, image) in batch.outer_iter_mut().zip(images) {
        let relative = image.as_str().ok_or("image entry is not a string")?;
        let decoded =
            load_for_network(&shared.join("datasets").join(relative), DecodeOptions::default())?;
        let mut slot = slot;
        to_network_input(&decoded, slot.as_slice_mut().ok_or("layout")?);
    }
    let (_, reference_inputs) = reference("inputs.npy")?;
    let pixel_difference = batch
        .iter()
        .zip(&reference_inputs)
        .map(|(a, b)| (a - b).abs() * 127.5)
        .fold(0.0f32, f32::max);
    eprintln!(
        "largest pixel difference to PIL's decode + bilinear resize: {pixel_difference:.1} levels"
    );
    assert!(pixel_difference <= 2.0, "{pixel_difference} levels from PIL");
    let (_, expected) = reference("features.npy")?;
    let actual = to_nchw(&backbone()?.run(batch.view())?);
    let per_image = 2048 * 25;
    for (index, (a, b)) in actual
        .as_slice()
        .ok_or("layout")?
        .chunks(per_image)
        .zip(expected.chunks(per_image))
        .enumerate()
    {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let cosine = dot / (norm(a) * norm(b));
        eprintln!("image {index}: cosine similarity {cosine:.6}");
        assert!(cosine >= 0.999, "image {index}: cosine {cosine}");
    }
    Ok(())
}
