//! `incept export`: the exported file, run by Python's onnxruntime on photos read with Pillow,
//! gives the probabilities `incept predict` gives, and passes onnx's full checker.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Runs scripts/check_export.py on `model` and `photos`; returns its JSON.
fn run_in_python(
    model: &Path,
    photos: &[PathBuf],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let root = incept_core::project_root();
    let packages = root.join(".deps/ort-python");
    if !packages.join("onnxruntime").is_dir() {
        return Err(format!(
            "{}: no onnxruntime for Python; run `scripts/setup.sh ort-python` (`just test` does)",
            packages.display()
        )
        .into());
    }
    let output = Command::new("python3")
        .arg(root.join("scripts/check_export.py"))
        .arg(model)
        .args(photos)
        .env("PYTHONPATH", &packages)
        .output()?;
    assert!(
        output.status.success(),
        "check_export.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// One photo's path and the probability of each class.
type Prediction = (String, Vec<(String, f64)>);

/// `incept predict --format json` over `photos`.
fn predicted(
    run_dir: &Path,
    model: &Path,
    photos: &[PathBuf],
) -> Result<Vec<Prediction>, Box<dyn std::error::Error>> {
    let mut args = vec!["predict", path_str(run_dir)];
    args.extend(photos.iter().map(|p| path_str(p)));
    args.extend(["--model", path_str(model), "--format", "json", "--top-k", "100"]);
    let output = ok(run(&args)?);
    let mut rows = Vec::new();
    for line in stdout(&output).lines() {
        let line: serde_json::Value = serde_json::from_str(line)?;
        let top = line["top"].as_array().ok_or("top")?;
        let classes = top
            .iter()
            .map(|t| {
                Ok((
                    t["class"].as_str().ok_or("class")?.to_owned(),
                    t["probability"].as_f64().ok_or("p")?,
                ))
            })
            .collect::<Result<_, &str>>()?;
        rows.push((line["path"].as_str().ok_or("path")?.to_owned(), classes));
    }
    Ok(rows)
}

/// Exports `run_dir`, runs it in Python and compares with `incept predict`; returns the
/// largest difference of a probability.
fn compare(
    run_dir: &Path,
    model: &Path,
    photos: &[PathBuf],
    input: &str,
) -> Result<f64, Box<dyn std::error::Error>> {
    let exported = run_dir.join("classifier.onnx");
    let args = [
        "export",
        path_str(run_dir),
        "-o",
        path_str(&exported),
        "--model",
        path_str(model),
        "--input",
        input,
    ];
    ok(run(&args)?);
    let python = run_in_python(&exported, photos)?;
    let classes: Vec<String> =
        serde_json::from_str(python["metadata"]["classes"].as_str().ok_or("classes metadata")?)?;
    let head = incept_head::TrainedHead::load(run_dir, incept_head::Backend::default())?;
    assert_eq!(classes, head.classes());
    assert_eq!(python["metadata"]["backbone_sha256"], head.state.cache_model_sha256.as_str());
    // The run's temperature is inside the graph (and `predict` applies the same one); a run
    // whose fit was degenerate (every validation photo right) has none, and says so.
    match head.temperature(false) {
        Some(temperature) => {
            let recorded: f64 = python["metadata"]["temperature"]
                .as_str()
                .ok_or("temperature metadata")?
                .parse()?;
            assert!((recorded - temperature).abs() < 1e-6, "{recorded} against {temperature}");
        }
        None => assert!(python["metadata"].get("temperature").is_none()),
    }
    let predictions = python["predictions"].as_array().ok_or("predictions")?;
    let expected = predicted(run_dir, model, photos)?;
    assert_eq!(predictions.len(), photos.len());
    assert_eq!(expected.len(), photos.len());
    let mut largest: f64 = 0.0;
    for (row, (path, by_class)) in predictions.iter().zip(&expected) {
        assert_eq!(row["path"].as_str(), Some(path.as_str()));
        let values: Vec<f64> = row["probabilities"]
            .as_array()
            .ok_or("probabilities")?
            .iter()
            .map(|v| v.as_f64().ok_or("number"))
            .collect::<Result<_, _>>()?;
        assert_eq!(values.len(), classes.len());
        assert!((values.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        for (class, probability) in by_class {
            let index = classes.iter().position(|c| c == class).ok_or("class")?;
            largest = largest.max((values[index] - probability).abs());
        }
    }
    Ok(largest)
}

#[test]
fn exported_classifier_matches_predict_on_the_reference_and_amid5_photos() -> TestResult {
    let shared = shared_dir();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join("reference/reference.json"))?)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // The five reference photos and three more of each class, copied into a data folder.
    let mut photos = Vec::new();
    for name in reference["images"].as_array().ok_or("images")? {
        let source = shared.join("datasets").join(name.as_str().ok_or("image name")?);
        let class_dir = source.parent().ok_or("class folder")?;
        let class = class_dir.file_name().ok_or("class name")?;
        std::fs::create_dir_all(data.join(class))?;
        let mut others: Vec<PathBuf> =
            std::fs::read_dir(class_dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        others.sort();
        others.retain(|p| *p != source);
        for photo in std::iter::once(&source).chain(others.iter().take(3)) {
            let copy = data.join(class).join(photo.file_name().ok_or("file name")?);
            std::fs::copy(photo, &copy)?;
            photos.push(copy);
        }
    }
    let model = incept_core::project_root().join(incept_extract::Layer::Mixed9.default_model());
    let cache = dir.path().join("c.h5");
    ok(run(&[
        "extract",
        path_str(&data),
        "-o",
        path_str(&cache),
        "--model",
        path_str(&model),
        "--layer",
        "mixed_9",
        "--copies",
        "1",
    ])?);
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &[])?);
    let largest = compare(&run_dir, &model, &photos, "uint8")?;
    eprintln!(
        "exported mixed_9 classifier (uint8 input) against incept predict, {} photos: largest difference {largest:.2e}",
        photos.len()
    );
    assert!(largest <= 1e-4, "{largest}");
    Ok(())
}

#[test]
fn every_pooling_ensembles_and_float_input_export_as_predict_computes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 4)?;
    let photos: Vec<PathBuf> = ["ant", "bee", "cricket"]
        .iter()
        .flat_map(|class| {
            let folder = data.join(class);
            (0..3).map(move |i| folder.join(format!("img{i:03}.png")))
        })
        .collect();
    // Each pooling, with and without SE, one and several members, both input kinds.
    let cases = [
        ("flatten", "se = true\nensemble = 1", "uint8"),
        ("avgmax", "se = true\nensemble = 2", "float"),
        ("gap", "se = false\nensemble = 3", "uint8"),
        ("flatten", "se = false\nensemble = 2", "float"),
        ("bilinear", "se = false\nbilinear_dimensions = 3\nensemble = 2", "uint8"),
    ];
    for (index, (pooling, extra, input)) in cases.iter().enumerate() {
        let config = small_config(dir.path(), &format!("{extra}\n"))?;
        let text = std::fs::read_to_string(&config)?
            .replace("pooling = \"gap\"", &format!("pooling = \"{pooling}\""));
        std::fs::write(&config, text)?;
        let run_dir = dir.path().join(format!("run{index}"));
        ok(train(&cache, &run_dir, &config, &["--epochs", "1"])?);
        let recorded = incept_head::run_folder::load_config(&run_dir)?;
        assert_eq!(format!("{:?}", recorded.head.pooling).to_lowercase(), *pooling);
        let members: usize =
            extra.rsplit("ensemble = ").next().ok_or("ensemble")?.trim().parse()?;
        assert_eq!(recorded.head.ensemble, members);
        let largest = compare(&run_dir, &tiny_model(), &photos, input)?;
        eprintln!("{pooling}, {extra:?}, {input} input: largest difference {largest:.2e}");
        assert!(largest <= 1e-5, "{pooling} {extra} {input}: {largest}");
    }
    Ok(())
}

#[test]
fn a_model_that_does_not_fit_the_head_is_refused_and_nothing_is_written() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 3)?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &["--epochs", "1"])?);
    let output = dir.path().join("classifier.onnx");
    std::fs::write(&output, b"kept")?;
    // Not an ONNX file: refused by name, the existing output untouched.
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\x0bnot a model")?;
    let refused = run(&[
        "export",
        path_str(&run_dir),
        "-o",
        path_str(&output),
        "--model",
        path_str(&garbage),
    ])?;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("garbage.onnx"), "{message}");
    assert_eq!(std::fs::read(&output)?, b"kept");
    // A run that has not finished an epoch has no weights to export.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    let refused = run(&["export", path_str(&empty), "-o", path_str(&output)])?;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("empty"), "{}", stderr(&refused));
    assert_eq!(std::fs::read(&output)?, b"kept");
    Ok(())
}

#[test]
fn int8_exports_measure_what_the_int8_backbone_changes_and_say_when_it_is_missing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 6)?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &["--epochs", "2"])?);
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models)?;
    let model = models.join("tiny.onnx");
    std::fs::copy(tiny_model(), &model)?;
    let ort = dir.path().join("ort-dist");
    std::fs::create_dir_all(&ort)?;
    for name in incept_export::web::ORT_FILES {
        std::fs::write(ort.join(name), name)?;
    }
    let page = dir.path().join("page");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", path_str(&run_dir), "--web", path_str(&page)];
        args.extend(["--model", path_str(&model), "--onnxruntime-web", path_str(&ort)]);
        args.extend(extra);
        run(&args)
    };
    // No int8 model beside the float one: refused, naming the file and the recipe that makes it.
    let refused = export(&["--int8", "--photos", path_str(&data)])?;
    let message = stderr(&refused);
    assert!(!refused.status.success(), "{message}");
    assert!(message.contains("tiny.int8.onnx") && message.contains("just model-int8"), "{message}");
    assert!(!page.join("classifier.json").exists());
    // --int8 needs the photos it measures on.
    assert!(!export(&["--int8"])?.status.success());
    // A stand-in int8 backbone (the same graph): both backbones agree on every validation photo.
    std::fs::copy(tiny_model(), models.join("tiny.int8.onnx"))?;
    let exported = ok(export(&["--int8", "--photos", path_str(&data)])?);
    assert!(stderr(&exported).contains("int8 backbone on the run's"), "{}", stderr(&exported));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(page.join("classifier.json"))?)?;
    assert_eq!(info["int8"], true);
    let check = &info["int8_check"];
    let validated = std::fs::read_to_string(run_dir.join("predictions.csv"))?.lines().count() - 1;
    assert_eq!(check["photos"].as_u64(), Some(validated as u64), "{check}");
    assert_eq!(check["agreement"].as_f64(), Some(1.0), "{check}");
    assert_eq!(check["int8_accuracy"], check["float_accuracy"], "{check}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("metrics.json"))?)?;
    let single = metrics["single_view_accuracy"].as_f64().ok_or("single view")?;
    assert!((check["float_accuracy"].as_f64().ok_or("float")? - single).abs() < 1e-9, "{check}");
    // The wrong photos folder: refused, naming --photos.
    let wrong = export(&["--int8", "--photos", path_str(&models)])?;
    assert!(!wrong.status.success() && stderr(&wrong).contains("--photos"), "{}", stderr(&wrong));
    Ok(())
}
