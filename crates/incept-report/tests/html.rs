//! The HTML report on made-up predictions: thumbnails, escaping, sections, missing photos.

use std::path::Path;

use incept_report::{EpochCurve, PhotoPrediction, metrics_of};
use incept_report::{Layout, ReportData, build_html as build, write_html as write};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn classes() -> Vec<String> {
    ["Aedes <aegypti>", "Culex & co", "Other"].map(str::to_owned).to_vec()
}

/// Six photos per class under `dir/<class index>/`; photo i of class c is predicted as class
/// (c + 1) % 3 when i < 2 (so three confused pairs of two photos each), else correctly.
fn predictions(dir: &Path) -> Result<Vec<PhotoPrediction>, Box<dyn std::error::Error>> {
    let mut predictions = Vec::new();
    for truth in 0..3 {
        std::fs::create_dir_all(dir.join(format!("c{truth}")))?;
        for i in 0..6 {
            let source = format!("c{truth}/photo {i}.png");
            let shade = (truth * 80 + i * 10) as u8;
            image::RgbImage::from_pixel(300, 200, image::Rgb([shade, 100, 200]))
                .save(dir.join(&source))?;
            let predicted = if i < 2 { (truth + 1) % 3 } else { truth };
            let mut probabilities = vec![0.1; 3];
            probabilities[predicted] = 0.8;
            probabilities[truth] += if predicted == truth { 0.0 } else { 0.01 * i as f64 };
            predictions.push(PhotoPrediction {
                source,
                truth,
                predicted,
                probabilities,
                single_view_predicted: None,
                single_view_probabilities: None,
            });
        }
    }
    Ok(predictions)
}

fn data(dir: &Path) -> Result<ReportData, Box<dyn std::error::Error>> {
    let predictions = predictions(dir)?;
    let mut metrics = metrics_of(&classes(), &predictions)?;
    metrics.set_single_view_accuracy(Some(0.5));
    Ok(ReportData {
        run_name: "run <1>".into(),
        run_dir: "runs/run <1>".into(),
        recipe: vec![("learning rate".into(), "0.0003".into())],
        recipe_text: Some("learning_rate = 0.0003\n".into()),
        metrics,
        predictions,
        predictions_from: "The run's validation photos.".into(),
        tta: true,
        epochs: (1..=3)
            .map(|epoch| EpochCurve {
                epoch,
                train_loss: 1.0 / epoch as f64,
                train_accuracy: 0.5 + 0.1 * epoch as f64,
                validation_loss: 1.2 / epoch as f64,
                validation_accuracy: 0.4 + 0.1 * epoch as f64,
            })
            .collect(),
        best_epoch: Some(3),
        photos_dir: dir.to_path_buf(),
        calibration: Some(incept_report::ReportCalibration {
            temperature: 1.5,
            tta: true,
            fitted_on: "the run's 18 validation photos".into(),
            fitted_here: true,
        }),
    })
}

#[test]
fn the_page_shows_the_confused_photos_and_the_top_losses() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = data(dir.path())?;
    let layout = Layout {
        confused_pairs: 2,
        photos_per_pair: 12,
        top_losses: 5,
        suspects: 0,
        ..Layout::default()
    };
    let page = build(&data, &layout)?;
    // Two pairs of two photos, five top losses.
    assert_eq!(page.html.matches("<img ").count(), 2 * 2 + 5);
    assert_eq!((page.thumbnails, page.placeholders), (9, 0));
    assert!(page.warnings.is_empty(), "{:?}", page.warnings);
    let html = &page.html;
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert!(html.contains("Aedes &lt;aegypti&gt;") && html.contains("Culex &amp; co"));
    assert!(!html.contains("Aedes <aegypti>") && !html.contains("run <1>"));
    assert!(html.contains("id=\"top-losses\"") && html.contains("id=\"confused\""));
    assert!(html.contains("accuracy with TTA") && html.contains("single-view accuracy"));
    assert!(html.contains("Aedes &lt;aegypti&gt; taken for Culex &amp; co: 2 photos"));
    // Training curves, the reliability diagram and the accuracy–coverage curve.
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("id=\"calibration\"") && html.contains("<b>1.500</b>"));
    assert!(
        html.contains("fitted on the run&#39;s 18 validation photos")
            || html.contains("fitted on the run's 18 validation photos"),
        "{html}"
    );
    // 12 of 18 photos right at 0.8 (or a little less) each: 80 % is reached keeping every
    // photo, 90 % and 95 % at no threshold.
    assert!(html.contains("<td class=\"num\">80.0%</td>"), "{html}");
    assert_eq!(html.matches("not reached at any threshold").count(), 2, "{html}");
    // No script, nothing fetched from elsewhere.
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    assert!(!html.contains("href=\"http") && !html.contains("url("));
    // The top losses name the photo's full path.
    let full = std::fs::canonicalize(dir.path())?.join("c0/photo 1.png");
    assert!(html.contains(&full.display().to_string()));
    let output = dir.path().join("report.html");
    write(&output, &page)?;
    assert_eq!(std::fs::read_to_string(&output)?, page.html);
    Ok(())
}

#[test]
fn a_missing_photo_is_a_placeholder_and_a_warning_and_all_missing_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut data = data(dir.path())?;
    let gone = dir.path().join("c0/photo 0.png");
    std::fs::remove_file(&gone)?;
    let layout = Layout {
        confused_pairs: 1,
        photos_per_pair: 12,
        top_losses: 3,
        suspects: 0,
        ..Layout::default()
    };
    let page = build(&data, &layout)?;
    // c0/photo 0 is in the first pair and among the top losses: two placeholders.
    assert_eq!((page.thumbnails, page.placeholders), (2 + 3 - 2, 2));
    assert_eq!(page.html.matches("<img ").count(), page.thumbnails);
    assert_eq!(page.html.matches("class=\"placeholder\"").count(), 2);
    assert_eq!(page.warnings.len(), 1);
    assert!(page.warnings[0].contains(&gone.display().to_string()), "{:?}", page.warnings);
    assert!(page.html.contains("Photos not shown"));

    data.photos_dir = dir.path().join("elsewhere");
    let error = build(&data, &layout).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("elsewhere") && error.contains("--photos"), "{error}");
    Ok(())
}
