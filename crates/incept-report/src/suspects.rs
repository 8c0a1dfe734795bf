//! Photos whose given label is probably wrong, found confident-learning style (Northcutt, Jiang
//! and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021; the
//! `confident_learning` filter of cleanlab's `find_label_issues`).
//!
//! From predicted probabilities made without the photo in training (a cross-validation's
//! out-of-fold predictions, or a run's validation photos): each class j gets a threshold t_j,
//! the mean probability of j over the photos labelled j (how sure the heads are of j when j is
//! right). A photo is counted as class j* when its probability of j* reaches t_j* (the most
//! probable such class when several do); a photo counted as another class than its label is a
//! suspect. Per-class thresholds make a rare or hard class as able to claim a photo as an easy
//! one. Suspects are ranked by the probability given to their label, lowest first.

use serde::Serialize;

use crate::predictions::PhotoPrediction;

/// A photo whose label the heads find unlikely.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    /// The photo's path relative to the data folder (`<class>/<file>`).
    pub source: String,
    /// Its given label, an index into the classes.
    pub given: usize,
    /// The class the heads count it as, an index into the classes.
    pub suggested: usize,
    /// The probability given to its label.
    pub given_probability: f64,
    /// The probability given to the suggested class.
    pub suggested_probability: f64,
}

/// Per class, the threshold a photo's probability of it must reach to be counted as it: the
/// mean probability of the class over the photos labelled with it; `None` for a class without
/// photos (nothing can be counted as it).
pub fn thresholds(classes: usize, photos: &[PhotoPrediction]) -> Vec<Option<f64>> {
    let mut sums = vec![0.0; classes];
    let mut counts = vec![0usize; classes];
    for photo in photos {
        if let (Some(sum), Some(p)) =
            (sums.get_mut(photo.truth), photo.probabilities.get(photo.truth))
        {
            *sum += p;
            counts[photo.truth] += 1;
        }
    }
    sums.iter().zip(&counts).map(|(sum, &n)| (n > 0).then(|| sum / n as f64)).collect()
}

/// The photos among `photos` whose label is probably wrong, lowest probability of their label
/// first (ties by path).
pub fn find_suspects(classes: usize, photos: &[PhotoPrediction]) -> Vec<Suspect> {
    let thresholds = thresholds(classes, photos);
    let mut suspects: Vec<Suspect> = photos
        .iter()
        .filter_map(|photo| {
            let counted = photo
                .probabilities
                .iter()
                .enumerate()
                .filter(|&(j, &p)| thresholds.get(j).copied().flatten().is_some_and(|t| p >= t))
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                .map(|(j, _)| j)?;
            (counted != photo.truth).then(|| Suspect {
                source: photo.source.clone(),
                given: photo.truth,
                suggested: counted,
                given_probability: photo.probability_of_truth(),
                suggested_probability: photo.probabilities[counted],
            })
        })
        .collect();
    suspects.sort_by(|a, b| {
        a.given_probability.total_cmp(&b.given_probability).then_with(|| a.source.cmp(&b.source))
    });
    suspects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(source: &str, truth: usize, probabilities: [f64; 3]) -> PhotoPrediction {
        let predicted =
            (0..3).fold(0, |best, j| if probabilities[j] > probabilities[best] { j } else { best });
        PhotoPrediction {
            source: source.into(),
            truth,
            predicted,
            probabilities: probabilities.to_vec(),
            single_view_predicted: None,
            single_view_probabilities: None,
        }
    }

    #[test]
    fn thresholds_are_each_class_mean_self_confidence() {
        let photos = [
            photo("a1", 0, [0.9, 0.1, 0.0]),
            photo("a2", 0, [0.5, 0.5, 0.0]),
            photo("b1", 1, [0.2, 0.4, 0.4]),
        ];
        let t = thresholds(3, &photos);
        assert!((t[0].unwrap_or(0.0) - 0.7).abs() < 1e-12);
        assert!((t[1].unwrap_or(0.0) - 0.4).abs() < 1e-12);
        assert_eq!(t[2], None);
    }

    #[test]
    fn a_photo_counted_as_another_class_is_a_suspect_ranked_by_its_label() {
        let photos = [
            // Class 0 (threshold 2.55 / 4 ≈ 0.64): confident photos, and one that class 1 claims.
            photo("a/right", 0, [0.95, 0.05, 0.0]),
            photo("a/right2", 0, [0.9, 0.1, 0.0]),
            photo("a/flipped", 0, [0.1, 0.9, 0.0]),
            photo("a/unsure", 0, [0.6, 0.3, 0.1]),
            // Class 1 (threshold 2.98 / 5 ≈ 0.60): a hard class; a photo at 0.55 of class 0 is
            // not claimed by 0 and stays put.
            photo("b/right", 1, [0.2, 0.8, 0.0]),
            photo("b/hard", 1, [0.55, 0.45, 0.0]),
            photo("b/flipped", 1, [0.97, 0.03, 0.0]),
            photo("b/ok", 1, [0.1, 0.9, 0.0]),
            photo("b/ok2", 1, [0.2, 0.8, 0.0]),
        ];
        let suspects = find_suspects(3, &photos);
        let found: Vec<(&str, usize)> =
            suspects.iter().map(|s| (s.source.as_str(), s.suggested)).collect();
        // Lowest probability of the label first.
        assert_eq!(found, [("b/flipped", 0), ("a/flipped", 1)]);
        assert!((suspects[0].given_probability - 0.03).abs() < 1e-12);
        assert!((suspects[0].suggested_probability - 0.97).abs() < 1e-12);
    }
}
