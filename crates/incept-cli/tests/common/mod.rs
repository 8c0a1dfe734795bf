//! Helpers of the CLI tests: tiny generated photos, the tiny fixture model, running `incept`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn tiny_model() -> PathBuf {
    incept_core::project_root().join("tests/fixtures/tiny_inception.onnx")
}

pub fn incept() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incept"));
    command.env_remove("ORT_DYLIB_PATH");
    command
}

/// Runs `incept` with `args`; returns the output, whatever the exit status.
pub fn run(args: &[&str]) -> std::io::Result<Output> {
    incept().args(args).output()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts success, showing stderr otherwise.
pub fn ok(output: Output) -> Output {
    assert!(output.status.success(), "incept failed: {}", stderr(&output));
    output
}

/// A photo whose colours depend on its class (so a head can learn them) and on `index`.
pub fn photo(class: usize, index: usize, size: u32) -> image::RgbImage {
    image::RgbImage::from_fn(size, size, |x, y| {
        let base = [(class * 90) % 256, (255 - class * 70) % 256, (class * 40 + 30) % 256];
        let wobble = ((x * 3 + y * 5 + index as u32 * 11) % 40) as usize;
        image::Rgb([
            ((base[0] + wobble) % 256) as u8,
            ((base[1] + wobble / 2) % 256) as u8,
            ((base[2] + (x as usize % 7)) % 256) as u8,
        ])
    })
}

/// Writes `per_class` photos for each of `classes` under `root/<class>/`.
pub fn make_dataset(root: &Path, classes: &[&str], per_class: usize) -> std::io::Result<()> {
    for (c, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(root.join(class))?;
        for i in 0..per_class {
            let path = root.join(class).join(format!("img{i:03}.png"));
            photo(c, i, 40 + (i as u32 % 3) * 20).save(&path).map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

/// `incept extract` with the tiny model.
pub fn extract(data: &Path, cache: &Path, extra: &[&str]) -> std::io::Result<Output> {
    let mut args = vec![
        "extract",
        data.to_str().unwrap_or_default(),
        "-o",
        cache.to_str().unwrap_or_default(),
        "--model",
    ];
    let model = tiny_model();
    let model = model.to_str().unwrap_or_default().to_owned();
    args.push(&model);
    args.extend_from_slice(extra);
    run(&args)
}
