//! Which photos train and which validate: the split by source photo, stable under additions.

use std::collections::{BTreeMap, HashSet};

use incept_cache::Cache;

/// Where a source photo falls in `[0, 1)`: a stable hash of its relative path, so adding photos
/// never moves existing ones along it.
fn split_position(relative_path: &str) -> f64 {
    let hash = incept_core::stable_hash(&[b"incept validation split", relative_path.as_bytes()]);
    hash as f64 / u64::MAX as f64
}

/// Whether a source photo is held out by the unstratified split of runs from before the
/// stratified one: its position falls below `fraction`.
pub fn is_validation_source(relative_path: &str, fraction: f64) -> bool {
    split_position(relative_path) < fraction
}

/// Indices into the training cache: every variant of the training photos.
/// Indices of validation samples: variant 0 (or every variant, for test-time augmentation).
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

/// Splits one cache by source photo (every variant of a photo on one side).
///
/// Stratified: of each class's n photos, the k = round(`fraction`·n) with the lowest positions
/// along the stable hash are held out, at least one and at most n − 1 (a class of one photo
/// trains on it). Adding m photos to a class moves at most m of its other photos across the
/// split, and only those nearest the boundary. Unstratified (runs from before it): every photo
/// whose position falls below `fraction`.
pub fn split_by_source(cache: &Cache, fraction: f64, tta: bool, stratified: bool) -> Split {
    let held_out = if stratified {
        stratified_held_out(cache, fraction)
    } else {
        cache.sources.iter().map(|s| is_validation_source(s, fraction)).collect()
    };
    let mut split = Split::default();
    for index in 0..cache.len() {
        if held_out[cache.source[index] as usize] {
            if tta || cache.variant[index] == 0 {
                split.validation.push(index);
            }
        } else {
            split.train.push(index);
        }
    }
    split
}

/// Per source photo, whether the stratified split holds it out.
fn stratified_held_out(cache: &Cache, fraction: f64) -> Vec<bool> {
    held_out_per_class(&source_classes(cache), &cache.sources, fraction)
}

/// Each source photo's class, from its samples (a photo's variants share its label); `None`
/// for a source without samples.
fn source_classes(cache: &Cache) -> Vec<Option<i32>> {
    let mut class_of = vec![None; cache.sources.len()];
    for (&source, &label) in cache.source.iter().zip(&cache.labels) {
        class_of[source as usize] = Some(label);
    }
    class_of
}

/// The stratified split of photos `paths` of classes `classes` (see [`split_by_source`]).
fn held_out_per_class(classes: &[Option<i32>], paths: &[String], fraction: f64) -> Vec<bool> {
    let mut held_out = vec![false; paths.len()];
    if fraction <= 0.0 {
        return held_out;
    }
    for photos in sorted_by_class(classes, paths).values() {
        let n = photos.len();
        let wanted = (fraction * n as f64).round() as usize;
        let count = if n < 2 { 0 } else { wanted.clamp(1, n - 1) };
        for &(_, _, source) in &photos[..count] {
            held_out[source] = true;
        }
    }
    held_out
}

/// The K-fold split for fold `fold` (1..=`folds`) of a cross-validation: of each class's n
/// photos, sorted along the stable hash as [`split_by_source`] sorts them, fold k validates on
/// the ranks [round((k−1)·n/K), round(k·n/K)) and trains on the rest. Every photo validates in
/// exactly one fold; each fold holds every class of at least K photos; fold 1 is the stratified
/// split of fraction 1/K. Adding m photos to a class moves at most m of its photos across each
/// fold boundary, only those nearest it.
pub fn split_by_fold(cache: &Cache, folds: usize, fold: usize, tta: bool) -> Split {
    let of_photo = fold_of_photos(&source_classes(cache), &cache.sources, folds);
    let mut split = Split::default();
    for index in 0..cache.len() {
        if of_photo[cache.source[index] as usize] == Some(fold) {
            if tta || cache.variant[index] == 0 {
                split.validation.push(index);
            }
        } else {
            split.train.push(index);
        }
    }
    split
}

/// Every sample trains: a refit on all photos, with nothing to validate on.
pub fn split_all(cache: &Cache) -> Split {
    Split { train: (0..cache.len()).collect(), validation: Vec::new() }
}

/// Each photo's fold (1..=`folds`) of photos `paths` of classes `classes`; `None` for a source
/// without samples.
fn fold_of_photos(classes: &[Option<i32>], paths: &[String], folds: usize) -> Vec<Option<usize>> {
    let mut fold_of = vec![None; paths.len()];
    for photos in sorted_by_class(classes, paths).values() {
        let n = photos.len() as f64;
        for (rank, &(_, _, source)) in photos.iter().enumerate() {
            // The fold whose block [round((k−1)·n/K), round(k·n/K)) holds this rank.
            let fold = (1..=folds)
                .find(|&k| rank < (k as f64 * n / folds as f64).round() as usize)
                .unwrap_or(folds);
            fold_of[source] = Some(fold);
        }
    }
    fold_of
}

/// Per class, its photos (position along the hash, path, source index) sorted along the hash.
fn sorted_by_class<'a>(
    classes: &[Option<i32>],
    paths: &'a [String],
) -> BTreeMap<i32, Vec<(f64, &'a str, usize)>> {
    let mut by_class: BTreeMap<i32, Vec<(f64, &str, usize)>> = BTreeMap::new();
    for (source, (class, path)) in classes.iter().zip(paths).enumerate() {
        if let Some(class) = class {
            by_class.entry(*class).or_default().push((split_position(path), path, source));
        }
    }
    for photos in by_class.values_mut() {
        photos.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    }
    by_class
}

/// Photos of each class among the cache's sources.
pub fn photos_per_class(cache: &Cache) -> Vec<usize> {
    let mut counts = vec![0; cache.classes.len()];
    for class in source_classes(cache).into_iter().flatten() {
        counts[class as usize] += 1;
    }
    counts
}

/// Photos of each of `classes` classes among the samples `indices` (a photo counts once,
/// whatever its variants).
pub fn class_photo_counts(cache: &Cache, indices: &[usize], classes: usize) -> Vec<usize> {
    let photos: HashSet<(i32, i32)> =
        indices.iter().map(|&i| (cache.labels[i], cache.source[i])).collect();
    let mut counts = vec![0; classes];
    for (label, _) in photos {
        counts[label as usize] += 1;
    }
    counts
}

/// Samples of each of `classes` classes among `indices`.
pub fn class_sample_counts(cache: &Cache, indices: &[usize], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &i in indices {
        counts[cache.labels[i] as usize] += 1;
    }
    counts
}

/// Validation samples of a separate cache.
pub fn validation_samples(cache: &Cache, tta: bool) -> Vec<usize> {
    (0..cache.len()).filter(|&i| tta || cache.variant[i] == 0).collect()
}

/// Classes (by index) that have no sample among `indices`.
pub fn empty_classes(cache: &Cache, indices: &[usize], classes: usize) -> Vec<usize> {
    let present: HashSet<i32> = indices.iter().map(|&i| cache.labels[i]).collect();
    (0..classes).filter(|c| !present.contains(&(*c as i32))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stable_and_near_the_fraction() {
        let paths: Vec<String> = (0..2000).map(|i| format!("class/{i}.jpg")).collect();
        let held: usize = paths.iter().filter(|p| is_validation_source(p, 0.2)).count();
        assert!((340..=460).contains(&held), "{held} of 2000 held out");
        // Which photos are held out depends on their path alone (not on what else is in the
        // cache, so adding photos never moves existing ones) and never changes between versions:
        // pinned, computed outside Rust (Python's hashlib, the same length-prefixed SHA-256).
        let held_out: Vec<usize> =
            (0..40).filter(|i| is_validation_source(&format!("class/{i}.jpg"), 0.2)).collect();
        assert_eq!(held_out, [0, 12, 15, 18, 22, 31, 32, 38, 39]);
        // A larger fraction only adds photos to the validation side.
        assert!(
            paths.iter().all(|p| !is_validation_source(p, 0.1) || is_validation_source(p, 0.2))
        );
        assert!(paths.iter().all(|p| !is_validation_source(p, 0.0)));
    }

    fn photos(class: i32, range: std::ops::Range<usize>) -> (Vec<Option<i32>>, Vec<String>) {
        range.map(|i| (Some(class), format!("c{class}/{i}.jpg"))).unzip()
    }

    #[test]
    fn stratified_split_keeps_each_class_fraction() {
        let (mut classes, mut paths) = photos(0, 0..1000);
        for (class, count) in [(1, 38), (2, 5), (3, 2), (4, 1)] {
            let (c, p) = photos(class, 0..count);
            classes.extend(c);
            paths.extend(p);
        }
        let held = held_out_per_class(&classes, &paths, 0.2);
        let held_in = |class: i32| {
            classes.iter().zip(&held).filter(|(c, h)| **c == Some(class) && **h).count()
        };
        // round(0.2·n), at least one held out and one trained on.
        assert_eq!([held_in(0), held_in(1), held_in(2), held_in(3)], [200, 8, 1, 1]);
        // A class of one photo trains on it.
        assert_eq!(held_in(4), 0);
        assert!(held_out_per_class(&classes, &paths, 0.0).iter().all(|h| !h));
    }

    #[test]
    fn folds_cover_every_photo_once_stratified_and_fold_one_is_the_split() {
        let (mut classes, mut paths) = photos(0, 0..1000);
        for (class, count) in [(1, 38), (2, 5)] {
            let (c, p) = photos(class, 0..count);
            classes.extend(c);
            paths.extend(p);
        }
        let folds = fold_of_photos(&classes, &paths, 5);
        assert!(folds.iter().all(|f| f.is_some_and(|k| (1..=5).contains(&k))));
        let count = |class: i32, fold: usize| {
            classes
                .iter()
                .zip(&folds)
                .filter(|(c, f)| **c == Some(class) && **f == Some(fold))
                .count()
        };
        for fold in 1..=5 {
            // Each class's photos spread evenly: 200 a fold, 7 or 8 of 38, 1 of 5.
            assert_eq!(count(0, fold), 200);
            assert!((7..=8).contains(&count(1, fold)), "fold {fold}: {}", count(1, fold));
            assert_eq!(count(2, fold), 1);
        }
        // Fold 1 validates on the photos the stratified split of 1/K holds out.
        let held = held_out_per_class(&classes, &paths, 0.2);
        for (h, f) in held.iter().zip(&folds) {
            assert_eq!(*h, *f == Some(1));
        }
    }

    #[test]
    fn adding_photos_moves_few_across_folds() {
        let (classes, paths) = photos(0, 0..300);
        let before = fold_of_photos(&classes, &paths, 5);
        for added in [1usize, 7, 30] {
            let (more_classes, more_paths) = photos(0, 0..300 + added);
            let after = fold_of_photos(&more_classes, &more_paths, 5);
            let moved = (0..300).filter(|&i| before[i] != after[i]).count();
            // At most `added` across each of the 4 boundaries.
            assert!(moved <= 4 * added, "{added} added, {moved} moved");
        }
    }

    #[test]
    fn adding_photos_moves_few_across_the_stratified_split() {
        let (classes, paths) = photos(0, 0..300);
        let before = held_out_per_class(&classes, &paths, 0.2);
        for added in [1usize, 7, 30] {
            let (more_classes, more_paths) = photos(0, 0..300 + added);
            let after = held_out_per_class(&more_classes, &more_paths, 0.2);
            let moved = (0..300).filter(|&i| before[i] != after[i]).count();
            assert!(moved <= added, "{added} added, {moved} moved");
        }
        // The same photos in another order (another cache's source order) split the same.
        let mut reversed_paths = paths.clone();
        reversed_paths.reverse();
        let reversed = held_out_per_class(&classes, &reversed_paths, 0.2);
        let held: HashSet<&String> =
            paths.iter().zip(&before).filter(|(_, h)| **h).map(|(p, _)| p).collect();
        let held_again: HashSet<&String> =
            reversed_paths.iter().zip(&reversed).filter(|(_, h)| **h).map(|(p, _)| p).collect();
        assert_eq!(held, held_again);
    }
}
