//! Helpers of the CLI tests: tiny generated photos, the tiny fixture model, running `incept`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The read-only `shared/` folder beside the checkout (data set and reference tensors);
/// `INCEPT_SHARED` overrides.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("INCEPT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| incept_core::project_root().join("../shared"))
}

pub fn tiny_model() -> PathBuf {
    incept_core::project_root().join("tests/fixtures/tiny_inception.onnx")
}

pub fn incept() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incept"));
    command.env_remove("ORT_DYLIB_PATH");
    inherit_no_descriptors(&mut command);
    command
}

/// Test threads open HDF5 files in this process while others spawn `incept`. HDF5 opens files
/// without close-on-exec, so a child spawned meanwhile inherits the descriptor, and with it the
/// file's lock (`flock` locks belong to the open file, which the child now shares): the lock
/// outlives the test's own close for as long as the child runs, and the next open of that file,
/// by the test or by another `incept`, fails with `unable to lock file, errno = 11`. So the
/// child marks every inherited descriptor above stderr close-on-exec before it runs `incept`.
pub fn inherit_no_descriptors(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    #[allow(unsafe_code)]
    // SAFETY: runs in the child between fork and exec and makes a single async-signal-safe
    // system call. CLOEXEC instead of closing keeps std's own exec-error pipe working.
    unsafe {
        command.pre_exec(|| {
            let flags = libc::CLOSE_RANGE_CLOEXEC as libc::c_int;
            if libc::close_range(3, libc::c_uint::MAX, flags) != 0 {
                // Kernels before 5.11: mark them one by one (fcntl is async-signal-safe too).
                for descriptor in 3..4096 {
                    libc::fcntl(descriptor, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
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

/// A small, learnable head (global average pooling keeps the model tiny), 3 epochs; `extra`
/// lines go into its `[head]` table.
pub fn small_config(dir: &Path, extra: &str) -> std::io::Result<PathBuf> {
    small_config_with(dir, 3, extra)
}

/// [`small_config`] with another epoch count.
pub fn small_config_with(dir: &Path, epochs: usize, extra: &str) -> std::io::Result<PathBuf> {
    let text = format!(
        "epochs = {epochs}\nbatch_size = 8\nlearning_rate = 0.001\n[head]\npooling = \"gap\"\ndense = [32]\n{extra}"
    );
    // Named by content: two different configs never share a file.
    let path = dir.join(format!("head-{:016x}.toml", incept_core::stable_hash(&[text.as_bytes()])));
    std::fs::write(&path, text)?;
    Ok(path)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// Extracts a tiny dataset with the tiny model: 3 classes × `per_class` photos × 2 variants.
pub fn tiny_cache(
    dir: &Path,
    per_class: usize,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let data = dir.join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], per_class)?;
    let cache = dir.join("c.h5");
    ok(extract(&data, &cache, &["--copies", "1"])?);
    Ok((data, cache))
}

/// A tiny cache whose labels contradict each other for some photos (copies of `ant` photos
/// labelled `bee` and the reverse), so that no head is right on every photo and the fitted
/// temperature is not degenerate.
pub fn ambiguous_cache(
    dir: &std::path::Path,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let data = dir.join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], 16)?;
    for i in 0..6 {
        let name = format!("img{i:03}.png");
        std::fs::copy(data.join("ant").join(&name), data.join("bee").join(format!("ant-{name}")))?;
        std::fs::copy(data.join("bee").join(&name), data.join("ant").join(format!("bee-{name}")))?;
    }
    let cache = dir.join("c.h5");
    ok(extract(&data, &cache, &["--copies", "1"])?);
    Ok((data, cache))
}
pub fn train(
    cache: &Path,
    run_dir: &Path,
    config: &Path,
    extra: &[&str],
) -> std::io::Result<std::process::Output> {
    let mut args = vec![
        "train-head",
        path_str(cache),
        "--run-dir",
        path_str(run_dir),
        "--config",
        path_str(config),
    ];
    args.extend_from_slice(extra);
    run(&args)
}
