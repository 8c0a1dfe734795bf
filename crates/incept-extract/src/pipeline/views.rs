//! One photo's network inputs: the original and its augmented variants.

use super::{ExtractConfig, Job};
use crate::augment::Augmentation;
use crate::image_io::{DecodeOptions, load_for_network, to_network_input};

/// Decodes one image and prepares each wanted variant.
///
/// # Shapes
/// Each tensor is [3 × S × S], planar RGB in [-1, 1].
pub(super) fn prepare(
    job: &Job,
    config: &ExtractConfig,
) -> std::result::Result<Vec<(Vec<f32>, u32)>, String> {
    let tensors = network_views(
        &job.image.path,
        &job.image.relative,
        &job.variants,
        &config.augmentation,
        config.seed,
        config.decode,
    )?;
    Ok(tensors.into_iter().zip(job.variants.iter().copied()).collect())
}

/// The network inputs of one photo's variants, exactly as extraction makes them: variant 0 is the
/// photo itself, variant k ≥ 1 its k-th augmented draw, which depends on `seed`, `relative` (the
/// photo's path relative to its data folder) and k alone. `incept predict --tta` uses it too.
///
/// # Shapes
/// Each tensor is [3 × S × S], planar RGB in [-1, 1].
pub fn network_views(
    path: &std::path::Path,
    relative: &str,
    variants: &[u32],
    augmentation: &Augmentation,
    seed: u64,
    decode: DecodeOptions,
) -> std::result::Result<Vec<Vec<f32>>, String> {
    let image = load_for_network(path, decode)?;
    let (width, height) = image.dimensions();
    let plane = 3 * (width * height) as usize;
    Ok(variants
        .iter()
        .map(|&variant| {
            let mut tensor = vec![0.0f32; plane];
            if variant == 0 {
                to_network_input(&image, &mut tensor);
            } else {
                augmentation
                    .draw(seed, relative, variant, height, width)
                    .apply(&image, &mut tensor);
            }
            tensor
        })
        .collect())
}
