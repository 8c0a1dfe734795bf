//! `incept verify CACHE [--repair]`: the damaged rows as a table on stdout, a summary on stderr;
//! exit 0 when the cache is whole (or was made whole), 1 when it is not.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use incept_cache::{VerifyReport, repair, verify as check};
use incept_extract::{DecodeOptions, RemakeConfig, remake_rows};

use crate::cli::VerifyArgs;
use crate::commands::backbone_with_sha256;

pub fn verify(args: &VerifyArgs) -> Result<()> {
    let report = checked(&args.cache)?;
    print_bad_rows(&report);
    describe(&report);
    if report.is_clean() {
        return Ok(());
    }
    let bad = report.bad_rows();
    if !args.repair {
        if report.columns_damaged {
            bail!(
                "{}: the index's columns are damaged (its pieces' own records are whole); run \
                 `incept verify {} --repair` to rebuild them",
                args.cache.display(),
                args.cache.display()
            );
        }
        bail!(
            "{}: {} damaged {}{}; run `incept verify {} --repair` to make them again from their \
             photos",
            args.cache.display(),
            bad.len(),
            if bad.len() == 1 { "row" } else { "rows" },
            if report.stray.is_empty() {
                String::new()
            } else {
                format!(" and {} stray files", report.stray.len())
            },
            args.cache.display()
        );
    }
    if report.self_contained && report.columns_damaged {
        bail!("{}: nothing was changed", args.cache.display());
    }
    let (maps, dropped) =
        if bad.is_empty() { Default::default() } else { remake(args, &report, &bad)? };
    let summary = repair(&report, &maps, &dropped)?;
    eprintln!(
        "repaired {}: {} rows made again from their photos, {} dropped, {} files written, {} \
         removed",
        args.cache.display(),
        summary.repaired,
        summary.dropped,
        summary.written.len(),
        summary.removed.len()
    );
    let after = checked(&args.cache)?;
    if !after.is_clean() {
        bail!("{}: still damaged after the repair; see the table above", args.cache.display());
    }
    Ok(())
}

/// Verifies with a progress bar.
fn checked(cache: &Path) -> Result<VerifyReport> {
    let rows = incept_cache::Cache::open(cache).map(|c| c.len()).unwrap_or(0);
    let progress = incept_core::progress::bar(rows as u64, "verify", "samples");
    let report = check(cache, &|n| progress.inc(n))?;
    progress.finish_and_clear();
    Ok(report)
}

/// New maps ([H × W × C]) by row of the cache.
type Maps = std::collections::HashMap<usize, Vec<f32>>;

/// The new maps of the bad rows and the rows to drop (photos gone, with `--drop-missing`).
fn remake(
    args: &VerifyArgs,
    report: &VerifyReport,
    bad: &[usize],
) -> Result<(Maps, HashSet<usize>)> {
    let data_dir: PathBuf = match (&args.data, &report.data_folder) {
        (Some(data), _) => data.clone(),
        (None, Some(recorded)) => recorded.clone(),
        (None, None) => bail!(
            "{}: records no data folder (made before incept recorded it); pass the folder its \
             photos are in with --data",
            args.cache.display()
        ),
    };
    if !data_dir.is_dir() {
        bail!(
            "{}: the data folder of {} is not there; pass the folder its photos are in with --data",
            data_dir.display(),
            args.cache.display()
        );
    }
    let model = backbone_with_sha256(
        &report.settings.model_sha256,
        args.model.as_deref(),
        "this cache was made with",
    )?;
    let config = RemakeConfig {
        data_dir,
        model,
        device: args.device,
        batch_size: args.batch_size,
        threads: args.threads,
        decode: DecodeOptions { allow_truncated: args.allow_truncated },
    };
    let progress = incept_core::progress::bar(bad.len() as u64, "repair", "samples");
    let remade = remake_rows(&report.settings, &report.keys, bad, &config, &|n| progress.inc(n))
        .with_context(|| format!("{}: repair", args.cache.display()))?;
    progress.finish_and_clear();
    for (row, photo, why) in &remade.missing {
        eprintln!("warning: row {row}: {photo}: {why}");
    }
    if !remade.missing.is_empty() && !args.drop_missing {
        bail!(
            "{}: {} damaged rows have no photo to make them from (listed above); restore the \
             photos, pass --data with their folder, or --drop-missing to drop those rows; \
             nothing was changed",
            args.cache.display(),
            remade.missing.len()
        );
    }
    let dropped = remade.missing.iter().map(|m| m.0).collect();
    Ok((remade.maps, dropped))
}

/// One line per bad row: row, photo, variant, piece, what is wrong.
fn print_bad_rows(report: &VerifyReport) {
    let folder = report.cache.parent().unwrap_or(Path::new(""));
    let bad = report.bad_rows();
    if bad.is_empty() {
        return;
    }
    println!("row\tphoto\tvariant\tpiece\tproblem");
    for piece in &report.pieces {
        let shown = piece.path.strip_prefix(folder).unwrap_or(&piece.path);
        let damaged: HashSet<usize> = piece.damaged.iter().copied().collect();
        for row in piece.bad_rows() {
            let (photo, _, variant) = &report.keys[row];
            let problem = match &piece.problem {
                Some(problem) => problem.clone(),
                None if damaged.contains(&row) => "fails its checksum".to_owned(),
                None => "the piece records another photo".to_owned(),
            };
            println!("{row}\t{photo}\t{variant}\t{}\t{problem}", shown.display());
        }
    }
}

/// The summary on stderr.
fn describe(report: &VerifyReport) {
    let rows = report.keys.len();
    let bad = report.bad_rows().len();
    let pieces = report.pieces.len();
    eprintln!(
        "{}: {rows} rows in {pieces} {}; {bad} damaged",
        report.cache.display(),
        if pieces == 1 { "piece" } else { "pieces" }
    );
    if report.columns_damaged {
        eprintln!(
            "damaged: the index's columns (each row's photo, class and variant) do not match their \
             hash; its pieces' own records, which match theirs, are whole, and `--repair` writes \
             them back into the index"
        );
    }
    let unchecked = report.unchecked_rows();
    if unchecked > 0 {
        eprintln!(
            "note: {unchecked} rows are in pieces written before incept stored checksums: they \
             were read whole, but damage that still decompresses cannot be seen there"
        );
    }
    for path in &report.pending {
        eprintln!(
            "note: {} holds samples of an extraction that stopped before it finished; the next \
             `incept extract` takes them up",
            path.display()
        );
    }
    for path in &report.stray {
        eprintln!(
            "stray: {} is named by no index (left by an earlier run); --repair deletes it",
            path.display()
        );
    }
}
