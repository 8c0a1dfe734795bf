//! Walking a data folder of `<class>/<image>` sub-folders.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

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

/// A file reached by [`walk`]: the path it was reached by, and its canonical path, which
/// identifies the file however many links lead to it.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    canonical: PathBuf,
}

/// Classes are the sorted sub-folder names; each class folder is walked recursively (hidden
/// entries skipped, entries in name order, symbolic links followed). A link back to a folder on
/// the current path is a loop: reported and skipped. A photo reached by several paths is kept
/// once, by the first path in walk order (classes in name order), with a warning. Names that are
/// not valid UTF-8 are skipped with a warning, since `relative` must stay one-to-one with files.
pub fn scan(data_dir: &Path) -> Result<Scan> {
    if !data_dir.is_dir() {
        return Err(Error::DataMissing { path: data_dir.to_path_buf() });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let data_canonical = data_dir.canonicalize().map_err(io(data_dir))?;
    let mut result = Scan::default();
    let mut class_dirs = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(io(data_dir))? {
        let entry = entry.map_err(io(data_dir))?;
        let path = entry.path();
        if is_hidden(&entry.file_name()) || !path.is_dir() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => class_dirs.push((name, path)),
            Err(name) => result.warnings.push(format!(
                "{}: class folder name is not valid UTF-8 ({name:?}); skipped: rename it to UTF-8",
                path.display()
            )),
        }
    }
    class_dirs.sort();
    // Canonical path → index in `result.images` of the first path that reached it.
    let mut first_path: HashMap<PathBuf, usize> = HashMap::new();
    for (class, dir) in class_dirs {
        // The data folder counts as an ancestor: a link back to it is a loop too.
        let mut ancestors = vec![data_canonical.clone()];
        let mut found = Vec::new();
        walk(&dir, &mut ancestors, &mut found, &mut result.warnings);
        if found.is_empty() {
            result
                .warnings
                .push(format!("{}: class folder holds no files; skipped", dir.display()));
            continue;
        }
        let images_before = result.images.len();
        for Found { path, canonical } in found {
            let relative = match relative_path(data_dir, &path) {
                Ok(relative) => relative,
                Err(warning) => {
                    result.warnings.push(warning);
                    continue;
                }
            };
            match first_path.entry(canonical) {
                Entry::Occupied(first) => {
                    let first = &result.images[*first.get()];
                    result.warnings.push(format!(
                        "{} is the same file as {}; extracted once, as {}",
                        path.display(),
                        first.path.display(),
                        first.relative
                    ));
                }
                Entry::Vacant(slot) => {
                    slot.insert(result.images.len());
                    result.images.push(ImageFile { path, relative, class: class.clone() });
                }
            }
        }
        if result.images.len() == images_before {
            result.warnings.push(format!(
                "{}: class folder has no files left after the skips above; skipped",
                dir.display()
            ));
            continue;
        }
        result.classes.push(class);
    }
    result.images.sort_by(|a, b| a.relative.cmp(&b.relative));
    warn_small_classes(data_dir, &mut result);
    Ok(result)
}

/// A warning for each class with fewer than [`incept_core::FEW_PHOTOS`] photos, naming it.
fn warn_small_classes(data_dir: &Path, scan: &mut Scan) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for image in &scan.images {
        *counts.entry(image.class.as_str()).or_default() += 1;
    }
    for class in &scan.classes {
        let photos = counts.get(class.as_str()).copied().unwrap_or(0);
        if photos < incept_core::FEW_PHOTOS {
            scan.warnings.push(format!(
                "{}: class {class:?} has only {photos} photos: its figures will be unreliable (fewer than {}); add photos of it",
                data_dir.join(class).display(),
                incept_core::FEW_PHOTOS
            ));
        }
    }
}

/// `path` relative to `data_dir`, its components joined by `/`. Only plain, UTF-8 components are
/// accepted (none can hold a `/`), so two different files never share a relative path; a lossy
/// conversion would map names differing only in their invalid bytes to one string.
pub fn relative_path(data_dir: &Path, path: &Path) -> std::result::Result<String, String> {
    let inside = path.strip_prefix(data_dir).map_err(|_| {
        format!("{}: not inside the data folder {}; skipped", path.display(), data_dir.display())
    })?;
    let mut parts = Vec::new();
    for component in inside.components() {
        let Component::Normal(name) = component else {
            return Err(format!(
                "{}: path holds a {component:?} component; skipped",
                path.display()
            ));
        };
        let Some(name) = name.to_str() else {
            return Err(format!(
                "{}: name is not valid UTF-8 ({name:?}); skipped: rename it to UTF-8 to extract it",
                path.display()
            ));
        };
        parts.push(name);
    }
    Ok(parts.join("/"))
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".")
}

/// Appends the files under `dir` to `files`, entries in name order. `ancestors` holds the
/// canonical folders on the path from the walk's root to `dir`: reaching one of them again is a
/// loop. A folder reached again by another path is walked again; callers drop duplicate files.
fn walk(
    dir: &Path,
    ancestors: &mut Vec<PathBuf>,
    files: &mut Vec<Found>,
    warnings: &mut Vec<String>,
) {
    let canonical = match dir.canonicalize() {
        Ok(path) => path,
        Err(error) => {
            warnings.push(format!("{}: {error}; skipped", dir.display()));
            return;
        }
    };
    if ancestors.contains(&canonical) {
        warnings.push(format!(
            "{}: symbolic link loop (leads back to {}); skipped",
            dir.display(),
            canonical.display()
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            warnings.push(format!("{}: {error}; skipped", dir.display()));
            return;
        }
    };
    let mut visible = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) if is_hidden(&entry.file_name()) => {}
            Ok(entry) => visible.push(entry),
            Err(error) => warnings.push(format!("{}: {error}; an entry skipped", dir.display())),
        }
    }
    visible.sort_by_key(std::fs::DirEntry::file_name);
    ancestors.push(canonical.clone());
    for entry in visible {
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, ancestors, files, warnings),
            Ok(meta) if meta.is_file() => {
                // Only a link needs resolving; otherwise the canonical folder plus the name is
                // the file's canonical path, without another system call per photo.
                let is_link = entry.file_type().is_ok_and(|kind| kind.is_symlink());
                let file_canonical = if is_link {
                    path.canonicalize()
                } else {
                    Ok(canonical.join(entry.file_name()))
                };
                match file_canonical {
                    Ok(file_canonical) => files.push(Found { path, canonical: file_canonical }),
                    Err(error) => warnings.push(format!("{}: {error}; skipped", path.display())),
                }
            }
            Ok(_) => warnings.push(format!("{}: not a regular file; skipped", path.display())),
            Err(error) => warnings.push(format!("{}: {error}; skipped", path.display())),
        }
    }
    ancestors.pop();
}

/// Files to classify: each path that is a file, and every file under each folder (recursively,
/// sorted, hidden entries and symbolic-link loops skipped, a file reached twice inside one folder
/// listed once). Warnings name what was skipped.
pub fn image_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut Vec::new(), &mut found, &mut warnings);
            let mut first_path: HashMap<PathBuf, PathBuf> = HashMap::new();
            for Found { path, canonical } in found {
                match first_path.entry(canonical) {
                    Entry::Occupied(first) => warnings.push(format!(
                        "{} is the same file as {}; classified once",
                        path.display(),
                        first.get().display()
                    )),
                    Entry::Vacant(slot) => {
                        slot.insert(path.clone());
                        files.push(path);
                    }
                }
            }
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
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    /// Creates the folders, then an empty file at each of `files` under `root`.
    fn make_files(root: &Path, folders: &[&str], files: &[&str]) -> std::io::Result<()> {
        for folder in folders {
            std::fs::create_dir_all(root.join(folder))?;
        }
        for file in files {
            std::fs::write(root.join(file), b"")?;
        }
        Ok(())
    }

    fn relatives(scan: &Scan) -> Vec<&str> {
        scan.images.iter().map(|image| image.relative.as_str()).collect()
    }

    fn count(warnings: &[String], needle: &str) -> usize {
        warnings.iter().filter(|warning| warning.contains(needle)).count()
    }

    #[test]
    fn classes_are_sorted_and_loops_reported() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        make_files(root, &["b", "a/deep", "empty"], &["b/x.png", "a/y.png", "a/deep/z.png"])?;
        symlink(root.join("a"), root.join("a/deep/loop"))?;
        std::fs::write(root.join("README.md"), b"not a class")?;
        let scan = scan(root).map_err(std::io::Error::other)?;
        assert_eq!(scan.classes, ["a", "b"]);
        assert_eq!(relatives(&scan), ["a/deep/z.png", "a/y.png", "b/x.png"]);
        assert_eq!(count(&scan.warnings, "loop"), 1, "{:?}", scan.warnings);
        assert!(scan.warnings.iter().any(|w| w.contains("a/deep/loop")), "{:?}", scan.warnings);
        assert_eq!(count(&scan.warnings, "empty"), 1, "{:?}", scan.warnings);
        Ok(())
    }

    #[test]
    fn a_link_back_to_the_data_folder_is_a_loop() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        make_files(root, &["a", "b"], &["a/x.png", "b/y.png"])?;
        symlink(root, root.join("b/up"))?;
        let scan = scan(root).map_err(std::io::Error::other)?;
        // Without the data folder as an ancestor, b/up/a/x.png would be walked into class b.
        assert_eq!(relatives(&scan), ["a/x.png", "b/y.png"]);
        assert_eq!(count(&scan.warnings, "symbolic link loop"), 1, "{:?}", scan.warnings);
        assert!(scan.warnings.iter().any(|w| w.contains("b/up:")), "{:?}", scan.warnings);
        Ok(())
    }

    #[test]
    fn a_photo_reached_by_several_paths_is_kept_once_without_a_loop() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let outside = dir.path().join("shared");
        let root = dir.path().join("data");
        make_files(dir.path(), &["shared"], &["shared/s.png"])?;
        make_files(&root, &["a", "b"], &["a/x.png", "a/y.png", "b/z.png"])?;
        // Two links to one folder, a link to a file in another class, a class linked to another.
        symlink(&outside, root.join("a/link1"))?;
        symlink(&outside, root.join("a/link2"))?;
        symlink(root.join("a/x.png"), root.join("b/file_link.png"))?;
        symlink(root.join("b"), root.join("c"))?;
        let scan = scan(&root).map_err(std::io::Error::other)?;
        assert_eq!(scan.classes, ["a", "b"]);
        assert_eq!(relatives(&scan), ["a/link1/s.png", "a/x.png", "a/y.png", "b/z.png"]);
        assert_eq!(count(&scan.warnings, "loop"), 0, "{:?}", scan.warnings);
        let expected = [
            format!(
                "{} is the same file as {}; extracted once, as a/link1/s.png",
                root.join("a/link2/s.png").display(),
                root.join("a/link1/s.png").display()
            ),
            format!(
                "{} is the same file as {}; extracted once, as a/x.png",
                root.join("b/file_link.png").display(),
                root.join("a/x.png").display()
            ),
        ];
        for warning in &expected {
            assert!(scan.warnings.contains(warning), "{warning} not in {:?}", scan.warnings);
        }
        // Class c holds only b's photos: each a duplicate, then the class itself skipped.
        assert_eq!(count(&scan.warnings, "same file"), 2 + 2, "{:?}", scan.warnings);
        assert!(
            scan.warnings.iter().any(|w| w.contains("no files left") && w.contains("/c:")),
            "{:?}",
            scan.warnings
        );
        // Deterministic: a second scan finds the same.
        let again = super::scan(&root).map_err(std::io::Error::other)?;
        assert_eq!(again.images, scan.images);
        assert_eq!(again.warnings, scan.warnings);
        Ok(())
    }

    #[test]
    fn names_that_are_not_utf8_are_skipped_never_merged() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        make_files(root, &["a", "b"], &["a/good.png", "b/fine.png"])?;
        let name = |bytes: &[u8]| OsStr::from_bytes(bytes).to_os_string();
        // Lossy conversion maps both to "bad\u{FFFD}name.png".
        std::fs::write(root.join("a").join(name(b"bad\xffname.png")), b"")?;
        std::fs::write(root.join("a").join(name(b"bad\xfename.png")), b"")?;
        std::fs::create_dir(root.join("a").join(name(b"sub\xff")))?;
        std::fs::write(root.join("a").join(name(b"sub\xff")).join("in.png"), b"")?;
        std::fs::create_dir(root.join(name(b"class\xff")))?;
        std::fs::write(root.join(name(b"class\xff")).join("x.png"), b"")?;
        let scan = scan(root).map_err(std::io::Error::other)?;
        assert_eq!(scan.classes, ["a", "b"]);
        assert_eq!(relatives(&scan), ["a/good.png", "b/fine.png"]);
        assert_eq!(count(&scan.warnings, "not valid UTF-8"), 4, "{:?}", scan.warnings);
        assert_eq!(count(&scan.warnings, "rename it to UTF-8"), 4, "{:?}", scan.warnings);
        assert_eq!(count(&scan.warnings, "bad\u{FFFD}name.png"), 2, "{:?}", scan.warnings);
        // The escaped bytes tell the two apart.
        for needle in
            ["bad\\xFFname.png", "bad\\xFEname.png", "sub\u{FFFD}/in.png", "class\u{FFFD}"]
        {
            assert_eq!(count(&scan.warnings, needle), 1, "{needle}: {:?}", scan.warnings);
        }
        Ok(())
    }

    #[test]
    fn image_files_lists_a_file_reached_twice_once() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        make_files(root, &["photos/real"], &["photos/real/p.png", "single.png"])?;
        symlink(root.join("photos/real"), root.join("photos/twin"))?;
        symlink(root.join("photos"), root.join("photos/real/loop"))?;
        let inputs = [root.join("photos"), root.join("single.png"), root.join("missing.png")];
        let (files, warnings) = image_files(&inputs);
        assert_eq!(files, [root.join("photos/real/p.png"), root.join("single.png")]);
        assert_eq!(count(&warnings, "symbolic link loop"), 2, "{warnings:?}");
        assert_eq!(count(&warnings, "classified once"), 1, "{warnings:?}");
        assert_eq!(count(&warnings, "missing.png: no such file"), 1, "{warnings:?}");
        Ok(())
    }
}
