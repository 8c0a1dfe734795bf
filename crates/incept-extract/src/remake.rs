//! Feature maps made again for given rows of a cache, from their photos, exactly as extraction
//! made them (the same decoding, the same draw of variant k from the seed and the photo's path,
//! the same model): what `incept verify --repair` puts in place of damaged rows.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use incept_cache::{RowKey, Settings};
use ndarray::Array4;

use crate::augment::{ALGORITHM_VERSION, Augmentation};
use crate::backbone::{Backbone, Device};
use crate::image_io::{DecodeOptions, INPUT_SIZE, PREPROCESSING};
use crate::pipeline::network_views;
use crate::{Error, Result};

/// Where the photos and the model are, and how to run it.
#[derive(Clone, Debug)]
pub struct RemakeConfig {
    /// The folder the cache's photo paths are relative to.
    pub data_dir: PathBuf,
    pub model: PathBuf,
    pub device: Device,
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads; 0 = all cores.
    pub threads: usize,
    pub decode: DecodeOptions,
}

/// The maps made again, and the rows whose photo could not be read.
#[derive(Clone, Debug, Default)]
pub struct Remade {
    /// [H × W × C] channels last, by row of the cache.
    pub maps: HashMap<usize, Vec<f32>>,
    /// (row, photo, why) of each row whose photo is gone or unreadable.
    pub missing: Vec<(usize, String, String)>,
}

/// Makes the maps of `rows` (rows of a cache whose rows are `keys`, made with `settings`) again.
/// `progress` is told of each row done.
pub fn remake_rows(
    settings: &Settings,
    keys: &[RowKey],
    rows: &[usize],
    config: &RemakeConfig,
    progress: &dyn Fn(u64),
) -> Result<Remade> {
    let cannot = |reason: String| Error::CannotRemake { reason };
    if settings.preprocessing != PREPROCESSING || settings.input_size != INPUT_SIZE {
        return Err(cannot(format!(
            "its maps were made with other preprocessing ({:?} at {} pixels) than this incept's",
            settings.preprocessing, settings.input_size
        )));
    }
    if settings.copies > 0 && settings.augmentation_version != ALGORITHM_VERSION {
        return Err(cannot(format!(
            "its variants were drawn by augmentation version {}, this incept draws version \
             {ALGORITHM_VERSION}",
            settings.augmentation_version
        )));
    }
    let augmentation = Augmentation::from_json(&settings.augmentation).unwrap_or_default();
    if !config.model.is_file() {
        return Err(Error::ModelMissing { path: config.model.clone() });
    }
    let found = incept_core::sha256_file(&config.model)?;
    if found != settings.model_sha256 {
        return Err(cannot(format!(
            "{} is not the model its maps were made with (sha256 {found}, the cache records {}); \
             pass that model with --model",
            config.model.display(),
            settings.model_sha256
        )));
    }
    // The variants wanted of each photo, photos in path order.
    let mut by_photo: BTreeMap<&str, Vec<(usize, u32)>> = BTreeMap::new();
    for &row in rows {
        let (photo, _, variant) = &keys[row];
        by_photo.entry(photo.as_str()).or_default().push((row, *variant));
    }
    let mut backbone = Backbone::load(&config.model, config.device, config.threads)?;
    let mut remade = Remade::default();
    let side = INPUT_SIZE as usize;
    let mut pending: Vec<(usize, Vec<f32>)> = Vec::new();
    let mut run = |pending: &mut Vec<(usize, Vec<f32>)>, remade: &mut Remade| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut inputs = Array4::<f32>::zeros((pending.len(), 3, side, side));
        for (mut slot, (_, tensor)) in inputs.outer_iter_mut().zip(pending.iter()) {
            slot.iter_mut().zip(tensor).for_each(|(to, from)| *to = *from);
        }
        // [n, H, W, C]
        let output = backbone.run(inputs.view())?;
        for ((row, _), map) in pending.drain(..).zip(output.outer_iter()) {
            remade.maps.insert(row, map.iter().copied().collect());
            progress(1);
        }
        Ok(())
    };
    for (photo, wanted) in by_photo {
        let path = photo_path(&config.data_dir, photo);
        let variants: Vec<u32> = wanted.iter().map(|w| w.1).collect();
        let views = if path.is_file() {
            network_views(&path, photo, &variants, &augmentation, settings.seed, config.decode)
        } else {
            Err("no such file".to_owned())
        };
        match views {
            Ok(tensors) => {
                for ((row, _), tensor) in wanted.iter().zip(tensors) {
                    pending.push((*row, tensor));
                    if pending.len() >= config.batch_size.max(1) {
                        run(&mut pending, &mut remade)?;
                    }
                }
            }
            Err(why) => {
                for (row, _) in &wanted {
                    remade.missing.push((*row, path.display().to_string(), why.clone()));
                    progress(1);
                }
            }
        }
    }
    run(&mut pending, &mut remade)?;
    remade.missing.sort();
    Ok(remade)
}

/// A cache's `/`-separated photo path under the data folder.
fn photo_path(data_dir: &Path, relative: &str) -> PathBuf {
    relative.split('/').fold(data_dir.to_path_buf(), |path, part| path.join(part))
}
