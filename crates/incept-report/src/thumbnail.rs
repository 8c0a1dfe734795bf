//! Small JPEG thumbnails of photos, as `data:` URIs an HTML page embeds (no file beside it, no
//! network).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use image::{DynamicImage, ImageDecoder as _, ImageReader, Limits};
use rayon::prelude::*;

use crate::{Error, Result};

/// Longest side of a thumbnail, pixels.
pub const LONG_SIDE: u32 = 128;
/// JPEG quality of thumbnails (1–100): small files, faces of mosquitoes still recognisable.
pub const QUALITY: u8 = 80;
/// Most bytes one decode may allocate: a 100-megapixel RGB photo fits (300 MB).
const MAX_DECODE_BYTES: u64 = 384 << 20;

/// One photo, shrunk.
#[derive(Clone, Debug, PartialEq)]
pub struct Thumbnail {
    /// `data:image/jpeg;base64,...`
    pub data_uri: String,
    /// Pixels.
    pub width: u32,
    pub height: u32,
}

/// A photo that could not be shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Where it was looked for.
    pub path: PathBuf,
    /// Why it could not be shown ("not found", a decoding error).
    pub reason: String,
    pub missing: bool,
}

/// The thumbnails of a set of photos, by source (path relative to the photos folder).
#[derive(Clone, Debug, Default)]
pub struct Thumbnails {
    by_source: HashMap<String, std::result::Result<Thumbnail, Problem>>,
}

impl Thumbnails {
    /// The thumbnail of `source`, or why there is none.
    pub fn get(&self, source: &str) -> Option<&std::result::Result<Thumbnail, Problem>> {
        self.by_source.get(source)
    }

    /// Photos that could not be shown, sorted by path.
    pub fn problems(&self) -> Vec<&Problem> {
        let mut problems: Vec<&Problem> =
            self.by_source.values().filter_map(|t| t.as_ref().err()).collect();
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        problems
    }

    /// One warning line per photo that could not be shown.
    pub fn warnings(&self) -> Vec<String> {
        self.problems()
            .iter()
            .map(|p| format!("{}: {}; the report shows a placeholder", p.path.display(), p.reason))
            .collect()
    }
}

/// Where `source` lies under `photos_dir`; `None` for a path that would leave the folder
/// (absolute, or with `..`): sources come from files a user may have edited.
pub fn photo_path(photos_dir: &Path, source: &str) -> Option<PathBuf> {
    let relative = Path::new(source);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then(|| photos_dir.join(relative))
}

/// Thumbnails of `sources` (paths relative to `photos_dir`), decoded in parallel, at most
/// `long_side` pixels on their longer side. A photo that is missing or unreadable gets a
/// [`Problem`]; when every photo is missing, the folder is wrong and that is an error.
pub fn make_thumbnails(photos_dir: &Path, sources: &[&str], long_side: u32) -> Result<Thumbnails> {
    let mut unique: Vec<&str> = sources.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let by_source: HashMap<String, std::result::Result<Thumbnail, Problem>> = unique
        .par_iter()
        .map(|&source| {
            let shown = match photo_path(photos_dir, source) {
                None => Err(Problem {
                    path: PathBuf::from(source),
                    reason: "not a path inside the photos folder".into(),
                    missing: true,
                }),
                Some(path) => thumbnail(&path, long_side).map_err(|reason| Problem {
                    missing: !path.exists(),
                    path,
                    reason,
                }),
            };
            (source.to_owned(), shown)
        })
        .collect();
    let thumbnails = Thumbnails { by_source };
    let problems = thumbnails.problems();
    if !unique.is_empty() && problems.len() == unique.len() && problems.iter().all(|p| p.missing) {
        let example = problems.first().map(|p| p.path.clone()).unwrap_or_default();
        return Err(Error::PhotosMissing {
            folder: photos_dir.to_path_buf(),
            count: unique.len(),
            example,
        });
    }
    Ok(thumbnails)
}

/// One photo decoded (EXIF orientation applied), shrunk and encoded as a JPEG `data:` URI.
pub fn thumbnail(path: &Path, long_side: u32) -> std::result::Result<Thumbnail, String> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "photo not found".to_owned(),
        _ => e.to_string(),
    })?;
    let mut reader = ImageReader::new(Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(incept_core::MAX_IMAGE_DIMENSION);
    limits.max_image_height = Some(incept_core::MAX_IMAGE_DIMENSION);
    // Decodes run on every core at once: a few photos at the size limit must not exhaust memory.
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| format!("cannot decode: {e}"))?;
    let orientation = decoder.orientation().map_err(|e| format!("cannot decode: {e}"))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?;
    // Shrink first, then turn the small copy: no second full-size image.
    let mut small = image.thumbnail(long_side, long_side);
    drop(image);
    small.apply_orientation(orientation);
    let small = small.to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
        .encode_image(&small)
        .map_err(|e| format!("cannot encode the thumbnail: {e}"))?;
    Ok(Thumbnail {
        data_uri: format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&jpeg)
        ),
        width: small.width(),
        height: small.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io { path: path.to_path_buf(), source }
    }

    #[test]
    fn thumbnails_are_small_jpegs_and_missing_photos_are_problems() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        std::fs::create_dir_all(dir.path().join("ant")).map_err(io(dir.path()))?;
        let wide = image::RgbImage::from_fn(400, 200, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let path = dir.path().join("ant/wide.png");
        wide.save(&path).map_err(|e| Error::Plot { path: path.clone(), reason: e.to_string() })?;
        std::fs::write(dir.path().join("ant/junk.jpg"), b"not an image").map_err(io(dir.path()))?;

        let thumbnails =
            make_thumbnails(dir.path(), &["ant/wide.png", "ant/gone.jpg", "ant/junk.jpg"], 128)?;
        let Some(Ok(small)) = thumbnails.get("ant/wide.png") else {
            panic!("no thumbnail: {:?}", thumbnails.get("ant/wide.png"));
        };
        assert_eq!((small.width, small.height), (128, 64));
        let encoded = small.data_uri.trim_start_matches("data:image/jpeg;base64,");
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| Error::Plot { path: path.clone(), reason: e.to_string() })?;
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.len() < 8000, "{} bytes", jpeg.len());

        let problems = thumbnails.problems();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].path.ends_with("ant/gone.jpg") && problems[0].missing);
        assert!(problems[1].reason.contains("decode") && !problems[1].missing, "{problems:?}");
        assert!(thumbnails.warnings()[0].contains("gone.jpg: photo not found"));

        // Every photo missing: the folder is the wrong one.
        let error = make_thumbnails(&dir.path().join("ant"), &["ant/wide.png"], 128)
            .err()
            .map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains("--photos")), "{error:?}");
        assert!(photo_path(dir.path(), "../etc/passwd").is_none());
        Ok(())
    }
}
