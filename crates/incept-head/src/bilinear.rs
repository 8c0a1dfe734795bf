//! Second-order ("bilinear") pooling: how a map's channels occur together, not only how strongly.
//!
//! Each position's channels are square-rooted (the maps are ReLU outputs, ≥ 0), centred and
//! projected on the first D principal directions of training positions; the D×D matrix of their
//! products is averaged over the positions, and its upper triangle, signed-square-rooted and
//! scaled to unit length, is the pooled vector of D·(D+1)/2 values. The projection is fitted once,
//! when a run starts, from a few hundred training photos, and saved with the head's weights.
//! `scripts/probe_pooling.py` screens the same pooling in numpy (its principal directions come
//! from a slightly different choice of photos; docs/HEADS.md, "Second-order pooling").

use incept_cache::Cache;
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// Training photos (their originals) whose positions the principal directions come from.
pub const FIT_PHOTOS: usize = 300;
/// Subspace iterations before the Rayleigh–Ritz step.
const ITERATIONS: usize = 30;
/// Jacobi sweeps at most; each sweep zeroes every off-diagonal entry once.
const JACOBI_SWEEPS: usize = 30;
/// Added to the pooled vector's norm: an all-zero map pools to zeros instead of NaN.
pub const NORM_EPSILON: f32 = 1e-12;

/// The centring and principal directions a bilinear head projects each position on.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    pub channels: usize,
    pub dimensions: usize,
    /// [C]: the mean square-rooted position.
    pub mean: Vec<f32>,
    /// [C, D], row-major: the principal directions, by decreasing variance.
    pub directions: Vec<f32>,
}

/// Values a map pools to: the upper triangle of a D×D matrix.
pub fn pooled_len(dimensions: usize) -> usize {
    dimensions * (dimensions + 1) / 2
}

impl Projection {
    /// Fits the projection on the square-rooted positions of some training maps.
    ///
    /// # Shapes
    /// `positions`: [rows, C], already square-rooted → mean [C], directions [C, D].
    pub fn fit(positions: ArrayView2<'_, f32>, dimensions: usize, seed: u64) -> Result<Self> {
        let (rows, channels) = positions.dim();
        if dimensions == 0 || dimensions > channels {
            return Err(Error::Config(format!(
                "bilinear_dimensions {dimensions} must be between 1 and the maps' {channels} channels"
            )));
        }
        if rows < 2 {
            return Err(Error::Data(format!(
                "{rows} positions are too few to fit a bilinear projection; add training photos"
            )));
        }
        let mean = positions
            .mean_axis(ndarray::Axis(0))
            .ok_or_else(|| Error::Data("no position to fit a bilinear projection on".into()))?;
        let centred = &positions - &mean; // [rows, C]
        let covariance = centred.t().dot(&centred).mapv(|v| f64::from(v) / (rows - 1) as f64); // [C, C]
        let directions = principal_directions(&covariance, dimensions, seed);
        Ok(Projection {
            channels,
            dimensions,
            mean: mean.to_vec(),
            directions: directions.mapv(|v| v as f32).iter().copied().collect(),
        })
    }

    /// Appends the pooled vector of one map.
    ///
    /// # Shapes
    /// `map`: [P × C] channels-last → appends [D·(D+1)/2].
    pub fn pool(&self, map: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let channels = self.channels;
        if self.mean.len() != channels || self.directions.len() != channels * self.dimensions {
            return Err(Error::Data(format!(
                "a bilinear projection of {} means and {} direction values for {channels} channels and {} directions",
                self.mean.len(),
                self.directions.len(),
                self.dimensions
            )));
        }
        if channels == 0 || map.is_empty() || !map.len().is_multiple_of(channels) {
            return Err(Error::Data(format!(
                "a map of {} values does not hold positions of {channels} channels",
                map.len()
            )));
        }
        let positions = map.len() / channels;
        let mut centred = Array2::<f32>::zeros((positions, channels)); // [P, C]
        for (mut row, position) in centred.rows_mut().into_iter().zip(map.chunks_exact(channels)) {
            for ((value, &raw), &mean) in row.iter_mut().zip(position).zip(&self.mean) {
                *value = raw.max(0.0).sqrt() - mean;
            }
        }
        let directions = ArrayView2::from_shape((channels, self.dimensions), &self.directions)
            .map_err(|e| Error::Data(format!("bilinear projection: {e}")))?;
        let projected = centred.dot(&directions); // [P, D]
        let gram = projected.t().dot(&projected); // [D, D]
        let start = out.len();
        for i in 0..self.dimensions {
            for j in i..self.dimensions {
                let value = gram[[i, j]] / positions as f32;
                out.push(value.signum() * value.abs().sqrt());
            }
        }
        let pooled = &mut out[start..];
        let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt() + NORM_EPSILON;
        pooled.iter_mut().for_each(|v| *v /= norm);
        Ok(())
    }
}

/// Fits a projection on the positions of up to [`FIT_PHOTOS`] training photos (their
/// originals, spread over `train`'s order, which follows the cache).
pub fn fit_on_cache(
    cache: &Cache,
    train: &[usize],
    dimensions: usize,
    seed: u64,
) -> Result<Projection> {
    let originals: Vec<usize> = train.iter().copied().filter(|&i| cache.variant[i] == 0).collect();
    let step = originals.len().div_ceil(FIT_PHOTOS).max(1);
    let chosen: Vec<usize> = originals.iter().copied().step_by(step).collect();
    let channels = cache.shape.channels;
    let positions = cache.shape.height * cache.shape.width;
    let mut values = Vec::with_capacity(chosen.len() * positions * channels);
    for &index in &chosen {
        let map = cache.read_block(index, 1)?;
        values.extend(map.iter().map(|v| v.max(0.0).sqrt()));
    }
    let rows = Array2::from_shape_vec((chosen.len() * positions, channels), values)
        .map_err(|e| Error::Data(format!("{}: {e}", cache.path.display())))?;
    Projection::fit(rows.view(), dimensions, seed).map_err(|error| match error {
        Error::Data(reason) => Error::Data(format!("{}: {reason}", cache.path.display())),
        other => other,
    })
}

/// The first `dimensions` eigenvectors of a symmetric positive semi-definite matrix, by
/// decreasing eigenvalue: subspace iteration, then the Rayleigh–Ritz step (Jacobi on the small
/// projected matrix) to turn the subspace's basis into eigenvectors.
///
/// # Shapes
/// `matrix`: [C, C] → [C, D].
fn principal_directions(matrix: &Array2<f64>, dimensions: usize, seed: u64) -> Array2<f64> {
    let size = matrix.nrows();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut basis = Array2::from_shape_fn((size, dimensions), |_| rng.random::<f64>() - 0.5);
    orthonormalize(&mut basis);
    for _ in 0..ITERATIONS {
        basis = matrix.dot(&basis);
        orthonormalize(&mut basis);
    }
    let small = basis.t().dot(&matrix.dot(&basis)); // [D, D]
    let (values, vectors) = symmetric_eigen(small);
    let mut order: Vec<usize> = (0..dimensions).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let rotated = basis.dot(&vectors); // [C, D]
    Array2::from_shape_fn((size, dimensions), |(row, column)| rotated[[row, order[column]]])
}

/// Modified Gram–Schmidt on the columns. A column that vanishes (the matrix has lower rank than
/// the directions asked) is replaced by the first unit vector independent of the others, so the
/// directions stay orthonormal.
fn orthonormalize(basis: &mut Array2<f64>) {
    let rows = basis.nrows();
    for column in 0..basis.ncols() {
        for candidate in 0..=rows {
            for previous in 0..column {
                let dot: f64 = (0..rows).map(|r| basis[[r, column]] * basis[[r, previous]]).sum();
                for row in 0..rows {
                    basis[[row, column]] -= dot * basis[[row, previous]];
                }
            }
            let norm = (0..rows).map(|r| basis[[r, column]].powi(2)).sum::<f64>().sqrt();
            if norm > 1e-12 || candidate == rows {
                basis.column_mut(column).mapv_inplace(|v| v / norm.max(f64::MIN_POSITIVE));
                break;
            }
            basis.column_mut(column).fill(0.0);
            basis[[candidate, column]] = 1.0;
        }
    }
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut vectors = Array2::<f64>::eye(n);
    let scale: f64 = a.iter().map(|v| v * v).sum::<f64>().max(f64::MIN_POSITIVE);
    for _ in 0..JACOBI_SWEEPS {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (the smaller of the two angles).
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (vectors[[k, p]], vectors[[k, q]]);
                    vectors[[k, p]] = c * vkp - s * vkq;
                    vectors[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[[i, i]]).collect(), vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let a = ndarray::array![[4.0, 1.0, 2.0], [1.0, 3.0, 0.5], [2.0, 0.5, 5.0]];
        let (values, vectors) = symmetric_eigen(a.clone());
        let rebuilt = vectors
            .dot(&Array2::from_diag(&ndarray::Array1::from(values.clone())))
            .dot(&vectors.t());
        for (x, y) in rebuilt.iter().zip(a.iter()) {
            assert!((x - y).abs() < 1e-9, "{x} vs {y}");
        }
        let trace: f64 = values.iter().sum();
        assert!((trace - 12.0).abs() < 1e-9);
    }

    #[test]
    fn the_fit_finds_the_directions_of_largest_variance() {
        // Positions spread along channel 2 most, then channel 0; little along the others.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let positions = Array2::from_shape_fn((2000, 5), |(_, c)| {
            let spread = [3.0, 0.1, 10.0, 0.2, 0.1][c];
            1.0 + spread * (rng.random::<f32>() - 0.5)
        });
        let projection = Projection::fit(positions.view(), 2, 7).expect("fit");
        let direction = |d: usize| -> Vec<f32> {
            (0..5).map(|c| projection.directions[c * 2 + d].abs()).collect()
        };
        assert!(direction(0)[2] > 0.99, "first direction {:?}", direction(0));
        assert!(direction(1)[0] > 0.99, "second direction {:?}", direction(1));
        assert!((projection.mean[2] - 1.0).abs() < 0.3);
        assert!(Projection::fit(positions.view(), 6, 7).is_err(), "more directions than channels");
    }

    #[test]
    fn pooling_is_the_normalised_signed_root_of_the_mean_gram_matrix() {
        // Two positions, two channels, the identity projection and no centring.
        let projection = Projection {
            channels: 2,
            dimensions: 2,
            mean: vec![0.0, 0.0],
            directions: vec![1.0, 0.0, 0.0, 1.0],
        };
        let map = [4.0, 1.0, 1.0, 9.0]; // square roots: (2, 1) and (1, 3)
        let mut pooled = Vec::new();
        projection.pool(&map, &mut pooled).expect("pool");
        // Mean products: x₀x₀ = 2.5, x₀x₁ = 2.5, x₁x₁ = 5; signed roots; unit length.
        let raw = [2.5f32.sqrt(), 2.5f32.sqrt(), 5.0f32.sqrt()];
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert_eq!(pooled.len(), pooled_len(2));
        for (got, expected) in pooled.iter().zip(raw.iter().map(|v| v / norm)) {
            assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        }
        assert!(projection.pool(&[1.0, 2.0, 3.0], &mut pooled).is_err(), "not whole positions");
    }
}
