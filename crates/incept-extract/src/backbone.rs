//! The InceptionV3 backbone as an ONNX Runtime session, and how the runtime library is found.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::{Array4, ArrayView4};
use ort::session::Session;
use ort::value::TensorRef;

use crate::{Error, Result};

/// Default location of the converted model, relative to the project root.
pub const DEFAULT_MODEL: &str = "models/inception_v3_notop.onnx";
/// Names the model file to use where no `--model` is given.
pub const MODEL_VARIABLE: &str = "INCEPT_MODEL";

/// The InceptionV3 layer whose output is cached; each has its own converted model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Layer {
    /// Three blocks before the end: 12×12×768, what `just demo` caches (docs/HEADS.md).
    #[cfg_attr(feature = "clap", value(name = "mixed_7"))]
    Mixed7,
    /// Two blocks before the end: 5×5×1280 (`just model mixed_8` converts it).
    #[cfg_attr(feature = "clap", value(name = "mixed_8"))]
    Mixed8,
    /// One block before the end: 5×5×2048, less specific to ImageNet's classes.
    #[cfg_attr(feature = "clap", value(name = "mixed_9"))]
    Mixed9,
    /// The last block, Keras' `include_top=False` output: 5×5×2048.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "mixed_10"))]
    Mixed10,
}

impl Layer {
    /// The layer's name in the converted model (as in the weights archive).
    pub fn name(self) -> &'static str {
        match self {
            Layer::Mixed7 => "mixed_7",
            Layer::Mixed8 => "mixed_8",
            Layer::Mixed9 => "mixed_9",
            Layer::Mixed10 => "mixed_10",
        }
    }

    /// Where `just setup` writes this layer's model, relative to the project root.
    pub fn default_model(self) -> &'static str {
        match self {
            Layer::Mixed7 => "models/inception_v3_mixed_7.onnx",
            Layer::Mixed8 => "models/inception_v3_mixed_8.onnx",
            Layer::Mixed9 => "models/inception_v3_mixed_9.onnx",
            Layer::Mixed10 => DEFAULT_MODEL,
        }
    }

    /// The command that converts this layer's model: `just setup` makes those a fresh
    /// checkout uses, `just model mixed_8` the other.
    pub fn convert_command(self) -> &'static str {
        match self {
            Layer::Mixed8 => "just model mixed_8",
            Layer::Mixed7 | Layer::Mixed9 | Layer::Mixed10 => "just setup",
        }
    }

    pub const ALL: [Layer; 4] = [Layer::Mixed7, Layer::Mixed8, Layer::Mixed9, Layer::Mixed10];

    /// This layer's converted model: the file `INCEPT_MODEL` names if it is set, else
    /// [`Layer::default_model`] under the project this binary was built in (where `just setup`
    /// wrote it; found from the executable's folder or the source tree, as the runtime is), else
    /// under the working directory. The error names every place looked in.
    pub fn find_model(self) -> Result<PathBuf> {
        match model_from_environment(self)? {
            Some(path) => Ok(path),
            None => self.find_converted(),
        }
    }

    /// [`Layer::default_model`] under the project this binary was built in, else under the
    /// working directory (`INCEPT_MODEL` aside).
    pub fn find_converted(self) -> Result<PathBuf> {
        let mut roots = project_roots();
        roots.push(PathBuf::new());
        first_existing(&roots, &[self.default_model()]).map_err(|looked| Error::ModelNotFound {
            layer: self.name(),
            looked,
            convert: self.convert_command(),
        })
    }

    /// The layer of a name as [`Layer::name`] gives it.
    pub fn parse(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|layer| layer.name() == name)
    }
}
/// The model file `INCEPT_MODEL` names, if it is set; an error naming it if that file is missing.
/// Like `--model`, it is taken to end at the layer given (`--layer`): a model that says it ends
/// elsewhere is refused when it loads ([`Backbone::check_layer`]).
pub fn model_from_environment(layer: Layer) -> Result<Option<PathBuf>> {
    let Some(path) = std::env::var_os(MODEL_VARIABLE).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(Some(path))
    } else {
        Err(Error::ModelNotFound {
            layer: layer.name(),
            looked: format!("{MODEL_VARIABLE}={}", path.display()),
            convert: layer.convert_command(),
        })
    }
}

/// Where `just setup` unpacks the CPU runtime, relative to the project root.
pub const RUNTIME_DIR: &str = ".deps/onnxruntime";
/// Where `just setup-gpu` unpacks the runtime with the CUDA provider.
pub const GPU_RUNTIME_DIR: &str = ".deps/onnxruntime-gpu";
const LIBRARY_NAME: &str = "libonnxruntime.so";

/// Where inference runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA execution provider on this device index; fails loudly if it cannot register.
    Cuda(i32),
    /// CUDA if it registers, else CPU; says which it got.
    Auto,
}

impl Device {
    /// Parses `cpu`, `cuda`, `cuda:N` or `auto`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cpu" => Some(Device::Cpu),
            "cuda" => Some(Device::Cuda(0)),
            "auto" => Some(Device::Auto),
            other => other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Device::Cuda),
        }
    }
}

/// Folders that may hold the project's `.deps/`: beside the executable's `target/` and the
/// source tree this binary was built from.
fn project_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/{debug,release}/incept or target/{debug,release}/deps/test-binary
        roots.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    roots.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")));
    roots
}

/// Finds libonnxruntime: `ORT_DYLIB_PATH` if set, else the folders `just setup` fills
/// (the GPU build first when `prefer_gpu`).
pub fn find_runtime(prefer_gpu: bool) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(Error::RuntimeMissing { looked: format!("ORT_DYLIB_PATH={}", path.display()) })
        };
    }
    let dirs: &[&str] = if prefer_gpu { &[GPU_RUNTIME_DIR, RUNTIME_DIR] } else { &[RUNTIME_DIR] };
    find_runtime_in(&project_roots(), dirs)
}

/// The first `ROOT/DIR/libonnxruntime.so` that exists; the error names every place looked in.
fn find_runtime_in(roots: &[PathBuf], dirs: &[&str]) -> Result<PathBuf> {
    let libraries: Vec<String> = dirs.iter().map(|dir| format!("{dir}/{LIBRARY_NAME}")).collect();
    let libraries: Vec<&str> = libraries.iter().map(String::as_str).collect();
    first_existing(roots, &libraries).map_err(|looked| Error::RuntimeMissing { looked })
}

/// The first `ROOT/RELATIVE` that exists, roots in order and each root's paths in order; else
/// every place looked in, each once, for the error.
fn first_existing(roots: &[PathBuf], relative: &[&str]) -> std::result::Result<PathBuf, String> {
    let mut looked: Vec<String> = Vec::new();
    for root in roots {
        for path in relative {
            let candidate = root.join(path);
            if candidate.exists() {
                return Ok(candidate);
            }
            let shown = candidate.display().to_string();
            if !looked.contains(&shown) {
                looked.push(shown);
            }
        }
    }
    Err(looked.join(", "))
}

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// Loads the runtime library once per process (the first caller's choice of library wins).
fn environment(prefer_gpu: bool) -> Result<&'static ort::environment::Environment> {
    let library = find_runtime(prefer_gpu)?;
    let loaded = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(&library).map_err(|e| e.to_string())?;
        builder.with_name("incept").build().map_err(|e| e.to_string())
    });
    loaded
        .as_ref()
        .map_err(|reason| Error::RuntimeUnloadable { path: library, reason: reason.clone() })
}

/// An InceptionV3 feature extractor session.
pub struct Backbone {
    session: Session,
    model: PathBuf,
    input_name: String,
    /// "CPU" or "CUDA:N": the execution provider in use.
    pub provider: String,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("model", &self.model)
            .field("provider", &self.provider)
            .finish()
    }
}

impl Backbone {
    /// Opens `model` on `device` with `threads` intra-op threads (0 = ONNX Runtime's default).
    pub fn load(model: &Path, device: Device, threads: usize) -> Result<Self> {
        if !model.is_file() {
            return Err(Error::ModelMissing { path: model.to_path_buf() });
        }
        let environment = environment(device != Device::Cpu)?;
        let runtime =
            |e: ort::Error| Error::Runtime { path: model.to_path_buf(), reason: e.to_string() };
        let build = |cuda: Option<i32>| -> Result<Session> {
            let mut builder = Session::builder(environment).map_err(runtime)?;
            if threads > 0 {
                builder = builder.with_intra_threads(threads).map_err(|e| Error::Runtime {
                    path: model.to_path_buf(),
                    reason: e.to_string(),
                })?;
            }
            if let Some(device_id) = cuda {
                let provider =
                    ort::ep::CUDA::default().with_device_id(device_id).build().error_on_failure();
                builder = builder
                    .with_execution_providers([provider])
                    .map_err(|e| Error::CudaUnavailable { reason: e.to_string() })?;
            }
            builder.commit_from_file(model).map_err(runtime)
        };
        let (session, provider) = match device {
            Device::Cpu => (build(None)?, "CPU".to_owned()),
            Device::Cuda(id) => (build(Some(id))?, format!("CUDA:{id}")),
            Device::Auto => match build(Some(0)) {
                Ok(session) => (session, "CUDA:0".to_owned()),
                Err(Error::CudaUnavailable { reason }) => {
                    eprintln!("warning: CUDA unavailable ({reason}); using the CPU");
                    (build(None)?, "CPU".to_owned())
                }
                Err(other) => return Err(other),
            },
        };
        let input_name =
            session.inputs().first().map(|input| input.name().to_owned()).ok_or_else(|| {
                Error::ModelInterface { path: model.to_path_buf(), reason: "no input".into() }
            })?;
        Ok(Backbone { session, model: model.to_path_buf(), input_name, provider })
    }

    /// The layer the model says it ends at: incept's converter writes "… output mixed_9 feature
    /// maps." into the model's description. `None` for models that do not say.
    pub fn declared_layer(&self) -> Option<Layer> {
        let description = self.session.metadata().ok()?.description()?;
        Layer::ALL
            .into_iter()
            .find(|layer| description.contains(&format!("output {} feature maps", layer.name())))
    }

    /// Refuses a model that says it ends at another layer than `layer`, the one a cache would
    /// record for its maps (both are 5×5×2048: no shape check would notice).
    pub fn check_layer(&self, layer: Layer) -> Result<()> {
        match self.declared_layer() {
            Some(declared) if declared != layer => Err(Error::LayerMismatch {
                path: self.model.clone(),
                declared: declared.name(),
                given: layer.name(),
            }),
            _ => Ok(()),
        }
    }

    /// Runs a batch through the network.
    ///
    /// # Shapes
    /// `batch`: [N, 3, S, S] RGB in [-1, 1] → [N, H, W, C] feature maps, channels last.
    pub fn run(&mut self, batch: ArrayView4<'_, f32>) -> Result<Array4<f32>> {
        let model = self.model.clone();
        let runtime = |e: ort::Error| Error::Runtime { path: model.clone(), reason: e.to_string() };
        let input = TensorRef::from_array_view(batch).map_err(runtime)?;
        let outputs =
            self.session.run(ort::inputs![self.input_name.as_str() => input]).map_err(runtime)?;
        let output = outputs.values().next().ok_or_else(|| Error::ModelInterface {
            path: model.clone(),
            reason: "no output".into(),
        })?;
        let array = output.try_extract_array::<f32>().map_err(runtime)?;
        let nchw =
            array.into_dimensionality::<ndarray::Ix4>().map_err(|e| Error::ModelInterface {
                path: model.clone(),
                reason: format!("output is not 4-dimensional: {e}"),
            })?;
        // [N, C, H, W] -> [N, H, W, C]
        Ok(nchw.permuted_axes([0, 2, 3, 1]).as_standard_layout().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_runtime_names_every_place_looked_in() {
        let roots = [PathBuf::from("/nonexistent/a"), PathBuf::from("/nonexistent/b")];
        let message = find_runtime_in(&roots, &[GPU_RUNTIME_DIR, RUNTIME_DIR])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        for root in ["/nonexistent/a", "/nonexistent/b"] {
            for dir in [GPU_RUNTIME_DIR, RUNTIME_DIR] {
                assert!(message.contains(&format!("{root}/{dir}/{LIBRARY_NAME}")), "{message}");
            }
        }
    }

    #[test]
    fn devices_parse() {
        assert_eq!(Device::parse("cpu"), Some(Device::Cpu));
        assert_eq!(Device::parse("cuda"), Some(Device::Cuda(0)));
        assert_eq!(Device::parse("cuda:3"), Some(Device::Cuda(3)));
        assert_eq!(Device::parse("auto"), Some(Device::Auto));
        assert_eq!(Device::parse("gpu"), None);
        assert_eq!(Device::parse("cuda:x"), None);
    }
}
