//! Loading the model on a thread of its own: on the CPU, ONNX Runtime's start and graph
//! optimisation (about 0.3 s on 2 cores) overlap hashing the model, opening the cache and
//! scanning the photos. On a GPU a load costs seconds and a device context, which a run with
//! nothing to extract must not pay: there the model loads when it is first needed.

use std::thread::JoinHandle;

use super::ExtractConfig;
use crate::backbone::{Backbone, Device};
use crate::{Error, Result};

/// A model being loaded and its layer checked; [`ModelLoad::wait`] takes the result. Dropped
/// without a wait (an error came first, or nothing was left to extract), it still waits for
/// its thread, so no load outlives the extraction that started it.
pub(crate) struct ModelLoad {
    state: State,
}

enum State {
    Loading(JoinHandle<Result<Backbone>>),
    /// Not started: loaded by `wait` on the calling thread.
    Deferred(Box<dyn FnOnce() -> Result<Backbone> + Send>),
    CouldNotStart(std::io::Error),
    Taken,
}

impl ModelLoad {
    /// Starts loading `config.model` on the CPU; on a GPU, prepares to load it in `wait`.
    pub(crate) fn start(config: &ExtractConfig) -> Self {
        let (model, device, threads, layer) =
            (config.model.clone(), config.device, config.threads, config.layer);
        let load = move || -> Result<Backbone> {
            let backbone = Backbone::load(&model, device, threads)?;
            backbone.check_layer(layer)?;
            Ok(backbone)
        };
        if device == Device::Cpu { Self::spawn(load) } else { Self::deferred(load) }
    }

    fn spawn(load: impl FnOnce() -> Result<Backbone> + Send + 'static) -> Self {
        let state = match std::thread::Builder::new().name("incept-load-model".into()).spawn(load) {
            Ok(handle) => State::Loading(handle),
            Err(error) => State::CouldNotStart(error),
        };
        ModelLoad { state }
    }

    fn deferred(load: impl FnOnce() -> Result<Backbone> + Send + 'static) -> Self {
        ModelLoad { state: State::Deferred(Box::new(load)) }
    }

    /// The loaded model, or why it could not be loaded.
    pub(crate) fn wait(mut self) -> Result<Backbone> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Loading(handle) => handle
                .join()
                .map_err(|_| Error::Pipeline("the thread loading the model panicked".into()))?,
            State::Deferred(load) => load(),
            State::CouldNotStart(error) => {
                Err(Error::Pipeline(format!("could not start a thread to load the model: {error}")))
            }
            State::Taken => Err(Error::Pipeline("the model was taken twice".into())),
        }
    }
}

impl Drop for ModelLoad {
    fn drop(&mut self) {
        if let State::Loading(handle) = std::mem::replace(&mut self.state, State::Taken) {
            // Its result is not wanted; only its end.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn config(model: std::path::PathBuf, device: Device) -> ExtractConfig {
        ExtractConfig {
            data_dir: "photos".into(),
            output: "cache.h5".into(),
            model,
            layer: crate::backbone::Layer::default(),
            copies: 0,
            augmentation: crate::augment::Augmentation::default(),
            seed: 0,
            batch_size: 1,
            device,
            dtype: incept_cache::Dtype::F32,
            overwrite: false,
            threads: 1,
            segment_samples: 1,
            decode: crate::image_io::DecodeOptions::default(),
            compression: incept_cache::Compression::default(),
        }
    }

    #[test]
    fn a_load_that_fails_says_why_when_waited_for_on_either_device() {
        let missing = std::env::temp_dir().join("incept-no-such-model.onnx");
        for device in [Device::Cpu, Device::Cuda(0)] {
            match ModelLoad::start(&config(missing.clone(), device)).wait() {
                Err(Error::ModelMissing { path }) => assert_eq!(path, missing),
                other => panic!("expected ModelMissing on {device:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_load_dropped_unwaited_has_ended_when_the_drop_returns() {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        let load = ModelLoad::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
            Err(Error::Pipeline("test load".into()))
        });
        drop(load);
        assert!(ended.load(Ordering::SeqCst), "the loading thread outlived the drop");
    }

    #[test]
    fn a_deferred_load_runs_only_when_waited_for() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let load = ModelLoad::deferred(move || {
            flag.store(true, Ordering::SeqCst);
            Err(Error::Pipeline("test load".into()))
        });
        assert!(!ran.load(Ordering::SeqCst));
        assert!(load.wait().is_err());
        assert!(ran.load(Ordering::SeqCst));
    }
}
