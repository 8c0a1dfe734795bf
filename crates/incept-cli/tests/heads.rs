//! `incept train-head`, `runs`, `confusion` and `predict` end to end on tiny caches.

mod caches;
mod compare;
mod confusion;
mod folds;
mod predict;
mod skew;
mod suspects;
mod train;

/// Where the cache stores variant 0 (the photo itself) of `source`.
fn original_index(cache: &incept_cache::Cache, source: &str) -> Result<usize, &'static str> {
    (0..cache.len())
        .find(|&i| cache.source_path(i) == source && cache.variant[i] == 0)
        .ok_or("photo not in cache")
}
