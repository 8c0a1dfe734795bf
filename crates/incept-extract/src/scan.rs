//! Walking a data folder of `<class>/<image>` sub-folders.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One image file found under a class folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    pub path: PathBuf,
    /// Path relative to the data folder, `/`-separated: the cache's `sources` entry.
    pub relative: String,
    pub class: String,
}

/// What a scan found: images sorted by relative path, and warnings about what it skipped.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub classes: Vec<String>,
    pub images: Vec<ImageFile>,
    pub warnings: Vec<String>,
}

/// Classes are the sorted sub-folder names; each class folder is walked recursively (hidden
/// entries skipped, symbolic links followed once: loops are detected and reported).
pub fn scan(data_dir: &Path) -> Result<Scan> {
    if !data_dir.is_dir() {
        return Err(Error::DataMissing { path: data_dir.to_path_buf() });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut class_dirs = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(io(data_dir))? {
        let entry = entry.map_err(io(data_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            class_dirs.push((name, entry.path()));
        }
    }
    class_dirs.sort();
    let mut result = Scan::default();
    for (class, dir) in class_dirs {
        let mut visited = HashSet::new();
        let mut files = Vec::new();
        walk(&dir, &mut visited, &mut files, &mut result.warnings);
        if files.is_empty() {
            result
                .warnings
                .push(format!("{}: class folder holds no files; skipped", dir.display()));
            continue;
        }
        for path in files {
            let relative = path
                .strip_prefix(data_dir)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            result.images.push(ImageFile { path, relative, class: class.clone() });
        }
        result.classes.push(class);
    }
    result.images.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(result)
}

fn walk(
    dir: &Path,
    visited: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) {
    let canonical = match dir.canonicalize() {
        Ok(path) => path,
        Err(error) => {
            warnings.push(format!("{}: {error}; skipped", dir.display()));
            return;
        }
    };
    if !visited.insert(canonical) {
        warnings.push(format!("{}: symbolic link loop; skipped", dir.display()));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            warnings.push(format!("{}: {error}; skipped", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, visited, files, warnings),
            Ok(meta) if meta.is_file() => files.push(path),
            Ok(_) => warnings.push(format!("{}: not a regular file; skipped", path.display())),
            Err(error) => warnings.push(format!("{}: {error}; skipped", path.display())),
        }
    }
}

/// Files to classify: each path that is a file, and every file under each folder (recursively,
/// sorted, hidden entries and symbolic-link loops skipped). Warnings name what was skipped.
pub fn image_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut visited = HashSet::new();
            walk(path, &mut visited, &mut files, &mut warnings);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            warnings.push(format!("{}: no such file or folder; skipped", path.display()));
        }
    }
    (files, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_sorted_and_loops_reported() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        for path in ["b/x.png", "a/y.png", "a/deep/z.png"] {
            std::fs::create_dir_all(root.join(path).parent().unwrap_or(root))?;
            std::fs::write(root.join(path), b"")?;
        }
        std::fs::create_dir_all(root.join("empty"))?;
        std::os::unix::fs::symlink(root.join("a"), root.join("a/deep/loop"))?;
        std::fs::write(root.join("README.md"), b"not a class")?;
        let scan = scan(root).map_err(std::io::Error::other)?;
        assert_eq!(scan.classes, ["a", "b"]);
        let relative: Vec<_> = scan.images.iter().map(|i| i.relative.as_str()).collect();
        assert_eq!(relative, ["a/deep/z.png", "a/y.png", "b/x.png"]);
        assert!(scan.warnings.iter().any(|w| w.contains("loop")), "{:?}", scan.warnings);
        assert!(scan.warnings.iter().any(|w| w.contains("empty")), "{:?}", scan.warnings);
        Ok(())
    }
}
