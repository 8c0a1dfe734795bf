//! Loading the model on a thread of its own: ONNX Runtime's start and graph optimisation (about
//! 0.3 s on 2 cores) overlap hashing the model, opening the cache and scanning the photos.

use std::thread::JoinHandle;

use super::ExtractConfig;
use crate::backbone::Backbone;
use crate::{Error, Result};

/// A model being loaded and its layer checked; [`ModelLoad::wait`] takes the result. Dropped
/// without a wait (an error came first), it still waits for the thread, so no load outlives
/// the extraction that started it.
pub(crate) struct ModelLoad {
    handle: Option<std::io::Result<JoinHandle<Result<Backbone>>>>,
}

impl ModelLoad {
    /// Starts loading `config.model` on `config.device`.
    pub(crate) fn start(config: &ExtractConfig) -> Self {
        let (model, device, threads, layer) =
            (config.model.clone(), config.device, config.threads, config.layer);
        let handle = std::thread::Builder::new().name("incept-load-model".into()).spawn(
            move || -> Result<Backbone> {
                let backbone = Backbone::load(&model, device, threads)?;
                backbone.check_layer(layer)?;
                Ok(backbone)
            },
        );
        ModelLoad { handle: Some(handle) }
    }

    /// The loaded model, or why it could not be loaded.
    pub(crate) fn wait(mut self) -> Result<Backbone> {
        match self.handle.take() {
            Some(Ok(handle)) => handle
                .join()
                .map_err(|_| Error::Pipeline("the thread loading the model panicked".into()))?,
            Some(Err(error)) => {
                Err(Error::Pipeline(format!("could not start a thread to load the model: {error}")))
            }
            None => Err(Error::Pipeline("the model was taken twice".into())),
        }
    }
}

impl Drop for ModelLoad {
    fn drop(&mut self) {
        if let Some(Ok(handle)) = self.handle.take() {
            // Its result is not wanted; only its end.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(model: std::path::PathBuf) -> ExtractConfig {
        ExtractConfig {
            data_dir: "photos".into(),
            output: "cache.h5".into(),
            model,
            layer: crate::backbone::Layer::default(),
            copies: 0,
            augmentation: crate::augment::Augmentation::default(),
            seed: 0,
            batch_size: 1,
            device: crate::backbone::Device::Cpu,
            dtype: incept_cache::Dtype::F32,
            overwrite: false,
            threads: 1,
            segment_samples: 1,
            decode: crate::image_io::DecodeOptions::default(),
            compression: incept_cache::Compression::default(),
        }
    }

    #[test]
    fn a_load_that_fails_on_its_thread_says_why_when_waited_for() {
        let missing = std::env::temp_dir().join("incept-no-such-model.onnx");
        match ModelLoad::start(&config(missing.clone())).wait() {
            Err(Error::ModelMissing { path }) => assert_eq!(path, missing),
            other => panic!("expected ModelMissing, got {other:?}"),
        }
        // Dropped unwaited: the drop waits for the thread, and returns.
        drop(ModelLoad::start(&config(missing)));
    }
}
