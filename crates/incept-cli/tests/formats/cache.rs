//! A fresh cache's index and pieces against their contract tables.

use super::checks::{Problems, check_hdf5, file_names};
use super::tables::{contract_tables, table};
use crate::common::*;

#[test]
fn a_fresh_cache_and_its_pieces_are_as_documented() -> TestResult {
    let tables = contract_tables()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], 3)?;
    let cache_path = dir.path().join("c.h5");
    let output = ok(extract(&data, &cache_path, &["--copies", "1", "--threads", "1"])?);
    let mut problems = Problems::default();
    problems.check(stdout(&output).trim() == path_str(&cache_path), || {
        format!("incept extract printed {:?}, not the cache's path", stdout(&output))
    });

    let (index_datasets, index_attributes) =
        (table(&tables, "cache-index-datasets")?, table(&tables, "cache-index-attributes")?);
    check_hdf5(&mut problems, &cache_path, index_datasets, index_attributes, &[])?;
    let file = hdf5::File::open(&cache_path)?;
    let features = file.dataset("features")?;
    problems.check(features.layout() == hdf5::dataset::Layout::Virtual, || {
        format!("{}: `features` of an index is not a virtual dataset", cache_path.display())
    });
    let fill = features.fill_value()?.map(|v| v.cast::<f32>());
    problems.check(matches!(fill, Some(Ok(value)) if value.is_nan()), || {
        format!("{}: the virtual `features` does not have the fill value NaN", cache_path.display())
    });
    let format_version: u32 = file.attr("format_version")?.read_scalar()?;
    problems.check(format_version == 2, || format!("format_version is {format_version}, not 2"));
    let compression: hdf5::types::VarLenUnicode = file.attr("compression")?.read_scalar()?;
    problems.check(compression.as_str() == "lzf", || {
        format!("the default compression attribute is {compression:?}, not lzf")
    });
    let pieces: Vec<hdf5::types::VarLenUnicode> = file.dataset("pieces")?.read_raw()?;
    drop((features, file));

    let (piece_datasets, piece_attributes) =
        (table(&tables, "cache-piece-datasets")?, table(&tables, "cache-piece-attributes")?);
    problems.check(!pieces.is_empty(), || "the fresh index names no piece".into());
    for piece in &pieces {
        problems.check(piece.as_str().starts_with("c.h5.parts/segment-"), || {
            format!("piece {piece:?} is not named c.h5.parts/segment-NNNNNNNN.h5")
        });
        let path = dir.path().join(piece.as_str());
        check_hdf5(&mut problems, &path, piece_datasets, piece_attributes, &[])?;
        let file = hdf5::File::open(&path)?;
        let features = file.dataset("features")?;
        problems.check(features.chunk() == Some(vec![1, 5, 5, 2048]), || {
            format!("{piece}: `features` is chunked {:?}, not one chunk a sample", features.chunk())
        });
        let filters = features.filters();
        // The compressor, then the checksum of the compressed bytes ("Checksums").
        let documented = [hdf5::filters::Filter::LZF, hdf5::filters::Filter::Fletcher32];
        problems.check(filters == documented, || {
            format!("{piece}: filters {filters:?}, not LZF then Fletcher-32")
        });
    }
    // Beside the cache: the index, its pieces' folder and the writer lock; nothing else is left.
    let beside = file_names(dir.path())?;
    let expected = ["c.h5", "c.h5.lock", "c.h5.parts", "data"];
    problems.check(beside == expected, || {
        format!("beside the cache: {beside:?}, expected {expected:?}")
    });
    problems.finish()
}
