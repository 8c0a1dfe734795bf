//! One cache from several (the shards of a plan): an index over their pieces, or one
//! self-contained copy.

use std::path::{Path, PathBuf};

use crate::chunks::copy_rows;
use crate::index::{Columns, PieceRef, Stamp, folder_of, write_common_attributes, write_index};
use crate::with_suffix;
use crate::{Cache, Error, LOCK_SUFFIX, MergeSummary, Result, WithPath, create_features};

/// The lock of `output`, its folder created first. An output with pieces of its own (a cache
/// extracted there) is refused: replacing its index would orphan them.
fn lock_path(output: &Path) -> Result<PathBuf> {
    if with_suffix(output, crate::PARTS_SUFFIX).exists() {
        return Err(Error::WouldOrphan { path: output.to_path_buf() });
    }
    let folder = folder_of(output);
    std::fs::create_dir_all(folder).map_err(crate::io_error(folder))?;
    Ok(with_suffix(output, LOCK_SUFFIX))
}

/// Checks that `inputs` may form one cache: same settings and map shape, no shared row.
fn columns_of(inputs: &[Cache]) -> Result<Columns> {
    let Some(first) = inputs.first() else {
        return Err(Error::Corrupt {
            path: PathBuf::from("."),
            reason: "nothing to combine".into(),
        });
    };
    let mut columns = Columns::default();
    for cache in inputs {
        let differences = first.settings.differences(&cache.settings);
        if !differences.is_empty() {
            return Err(Error::SettingsDiffer {
                path: cache.path.clone(),
                differences: format!(
                    "{} (against {})",
                    differences.join("; "),
                    first.path.display()
                ),
            });
        }
        if cache.shape != first.shape {
            return Err(Error::ShapeDiffers {
                path: cache.path.clone(),
                expected: first.shape,
                found: cache.shape,
            });
        }
        columns.extend_from(cache)?;
    }
    Ok(columns)
}

/// Writes at `output` an index (format 2) whose rows are those of `inputs`, in order: a virtual
/// dataset over their pieces, no feature map copied. Paths are stored relative to `output`'s
/// folder, so the folder holding both can move.
pub fn index_over(output: &Path, inputs: &[Cache]) -> Result<MergeSummary> {
    let _lock = incept_core::lock::WriterLock::acquire(&lock_path(output)?, output)?;
    let columns = columns_of(inputs)?;
    let pieces: Vec<PieceRef> = inputs.iter().flat_map(Cache::as_pieces).collect();
    let (settings, shape) = (&inputs[0].settings, inputs[0].shape);
    let folder = folder_of(output).to_path_buf();
    incept_core::write_atomically_with(output, |temporary| {
        write_index(
            temporary,
            &folder,
            Stamp {
                settings,
                created: None,
                compression: inputs[0].compression,
                data_folder: inputs[0].data_folder.as_deref(),
                content_id: None,
            },
            shape,
            &pieces,
            &columns,
        )
    })?;
    Ok(MergeSummary { total: columns.len(), added: columns.len() })
}

/// Writes at `output` one self-contained cache (format 1 layout, `features` stored in the file)
/// with the rows of `inputs`, in order.
pub fn copy_into_one_file(output: &Path, inputs: &[Cache]) -> Result<MergeSummary> {
    let _lock = incept_core::lock::WriterLock::acquire(&lock_path(output)?, output)?;
    let columns = columns_of(inputs)?;
    let (settings, shape) = (&inputs[0].settings, inputs[0].shape);
    let total = columns.len();
    incept_core::write_atomically_with(output, |path| {
        let file = hdf5::File::create_excl(path).at(path)?;
        // The first input's compression: its chunks (all of them, usually) copy as they are.
        let compression = inputs[0].compression;
        let features = create_features(&file, settings.dtype, total, shape, compression, path)?;
        let mut written = 0;
        for cache in inputs {
            for piece in cache.as_pieces() {
                let file = crate::open_hdf5(&piece.path)?;
                let source = file.dataset(crate::FEATURES).at(&piece.path)?;
                let rows: Vec<usize> = (0..piece.rows).collect();
                copy_rows(&source, &piece.path, &rows, &features, path, written, settings.dtype)?;
                written += piece.rows;
            }
        }
        drop(features);
        columns.write(&file, path)?;
        let stamp = Stamp {
            settings,
            created: None,
            compression,
            data_folder: inputs[0].data_folder.as_deref(),
            content_id: None,
        };
        write_common_attributes(&file, stamp, path)?;
        file.flush().at(path)?;
        file.close().at(path)
    })?;
    Ok(MergeSummary { total, added: total })
}
