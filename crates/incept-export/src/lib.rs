//! `incept export`: one ONNX file holding the backbone a run's cache was made with and the run's
//! head, from pixels to class probabilities.
//!
//! # The exported file
//! - input `image`: [N, S, S, 3] uint8 RGB, already resized to S×S (S = 224 for incept's models),
//!   scaled to [-1, 1] and transposed to NCHW inside the graph; or, with [`InputKind::Float`], the
//!   backbone's own input [N, 3, S, S] float32 RGB in [-1, 1].
//! - output `probabilities`: [N, classes] float32, each row summing to 1 (an ensemble's rows are
//!   its members' mean); with a temperature T, softmax(logits / T) (an ensemble's:
//!   softmax(ln(mean) / T)).
//! - metadata properties: the keys the caller passes (incept writes `classes` as a JSON array,
//!   `backbone_sha256`, `run`, the validation accuracies, …; README, "Use your classifier
//!   elsewhere").
//!
//! The backbone's graph is copied field by field (see [`wire`]), its nodes and weights unchanged;
//! the head's nodes are appended after them and the preprocessing nodes put before them, so the
//! graph stays topologically sorted as ONNX requires.

mod head_graph;
// The protobuf wire format and ONNX's field numbers: public for tests that read a model back.
pub mod onnx;
pub mod web;
pub mod wire;

use std::collections::HashSet;
use std::path::Path;

use incept_head::HeadValues;

use crate::head_graph::Nodes;
use crate::onnx::{Attribute, Dim, TensorInfo, data_type, field};
use crate::wire::{Field, Message};

mod error;
pub use error::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the exported graph takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum InputKind {
    /// `image` [N, S, S, 3] uint8 RGB, already resized: the scaling to [-1, 1] is in the graph.
    Uint8,
    /// The backbone's own input, [N, 3, S, S] float32 RGB already scaled to [-1, 1].
    Float,
}

/// The graph input's name with [`InputKind::Uint8`].
pub const IMAGE_INPUT: &str = "image";
/// The graph output's name.
pub const OUTPUT: &str = "probabilities";
/// The oldest ONNX IR version export extends (weights no longer listed as inputs).
pub const MINIMUM_IR_VERSION: u64 = 4;
/// `producer_name` of exported files.
pub const PRODUCER: &str = "incept";

/// Everything an export needs.
#[derive(Debug)]
pub struct ExportRequest<'a> {
    /// The converted backbone the head's cache was made with (cut at the cache's layer).
    pub backbone: &'a Path,
    pub head: &'a HeadValues,
    pub classes: usize,
    pub input: InputKind,
    /// Pixels → network input: x / `pixel_scale` − `pixel_offset` (incept: 127.5 and 1).
    pub pixel_scale: f32,
    pub pixel_offset: f32,
    /// Divides the head's log-probabilities by this before its softmax (calibration);
    /// `None`: the head's own probabilities.
    pub temperature: Option<f64>,
    /// Model metadata properties; they replace the backbone's entries with the same key.
    pub metadata: Vec<(String, String)>,
    pub output: &'a Path,
}

/// What was written.
#[derive(Debug)]
pub struct ExportSummary {
    pub bytes: u64,
    /// Nodes the export added to the backbone's.
    pub added_nodes: usize,
    pub backbone_nodes: usize,
    /// The graph input, e.g. `image uint8 [batch, 224, 224, 3]`.
    pub input: String,
}

fn model_error(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |error| match error {
        Error::Malformed(reason) => Error::Model { path: path.to_path_buf(), reason },
        other => other,
    }
}

/// The backbone's graph, as export needs to know it.
struct Backbone<'a> {
    model_fields: Vec<Field<'a>>,
    graph_fields: Vec<Field<'a>>,
    opset: i64,
    input: TensorInfo,
    output: TensorInfo,
    /// Every tensor name in the graph: its inputs, weights and node outputs.
    names: HashSet<String>,
    nodes: usize,
}

fn read_backbone(bytes: &[u8]) -> Result<Backbone<'_>> {
    let model_fields = wire::fields(bytes)?;
    let graphs: Vec<&Field<'_>> =
        model_fields.iter().filter(|f| f.number == field::model::GRAPH).collect();
    let [graph] = graphs.as_slice() else {
        return Err(Error::Malformed(format!("{} graphs where one is expected", graphs.len())));
    };
    let graph_fields = wire::fields(graph.bytes()?)?;
    let opset_imports: Vec<Field<'_>> =
        model_fields.iter().filter(|f| f.number == field::model::OPSET_IMPORT).copied().collect();
    let opset = onnx::default_opset(&opset_imports)?
        .ok_or_else(|| Error::Malformed("no default operator set is imported".into()))?;
    // From IR version 4 on, weights need not be listed as graph inputs; the head's are not.
    let ir_version = model_fields.iter().find(|f| f.number == field::model::IR_VERSION);
    let ir_version = ir_version.map(Field::varint).transpose()?.unwrap_or(0);
    if ir_version < MINIMUM_IR_VERSION {
        return Err(Error::Malformed(format!(
            "IR version {ir_version}, older than the {MINIMUM_IR_VERSION} export writes"
        )));
    }
    let mut names = HashSet::new();
    let (mut inputs, mut outputs, mut nodes) = (Vec::new(), Vec::new(), 0);
    for graph_field in &graph_fields {
        match graph_field.number {
            field::graph::NODE => {
                nodes += 1;
                names.extend(onnx::strings(graph_field.bytes()?, field::node::OUTPUT)?);
            }
            field::graph::INITIALIZER => {
                let tensor = graph_field.bytes()?;
                let name = onnx::string_field(tensor, field::tensor::NAME)?.unwrap_or_default();
                // Paths to external weight files are relative to the model: they would break.
                if onnx::int_field(tensor, field::tensor::DATA_LOCATION)? == Some(1) {
                    return Err(Error::Malformed(format!(
                        "weight {name:?} is stored in an external file; save the model with its \
                         weights inside"
                    )));
                }
                names.insert(name);
            }
            field::graph::INPUT => inputs.push(onnx::read_value_info(graph_field.bytes()?)?),
            field::graph::OUTPUT => outputs.push(onnx::read_value_info(graph_field.bytes()?)?),
            _ => {}
        }
    }
    // Older exporters list the weights among the inputs too: the image is the input that is not one.
    inputs.retain(|input| !names.contains(&input.name));
    names.extend(inputs.iter().map(|input| input.name.clone()));
    let (input, output) = match (inputs.as_slice(), outputs.as_slice()) {
        ([input], [output]) => (input.clone(), output.clone()),
        _ => {
            return Err(Error::Malformed(format!(
                "{} inputs and {} outputs where one of each is expected",
                inputs.len(),
                outputs.len()
            )));
        }
    };
    Ok(Backbone { model_fields, graph_fields, opset, input, output, names, nodes })
}

fn describe(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Value(v) => v.to_string(),
            Dim::Param(p) if p.is_empty() => "?".into(),
            Dim::Param(p) => p.clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Checks the backbone takes [N, 3, S, S] float and gives [N, C, H, W] as the head expects;
/// returns S.
fn check_interface(backbone: &Backbone<'_>, head: &HeadValues, path: &Path) -> Result<i64> {
    let malformed = |reason: String| Error::Model { path: path.to_path_buf(), reason };
    let side = match backbone.input.dims.as_slice() {
        [_, Dim::Value(3), Dim::Value(height), Dim::Value(width)]
            if height == width && backbone.input.elem_type == data_type::FLOAT =>
        {
            *height
        }
        dims => {
            return Err(malformed(format!(
                "its input {:?} is {} of type {}, not float [N, 3, S, S]",
                backbone.input.name,
                describe(dims),
                backbone.input.elem_type
            )));
        }
    };
    let [height, width, channels] = head.input_shape.map(|d| d as i64);
    let expected = [channels, height, width];
    let found = &backbone.output.dims;
    let fits = found.len() == 4
        && found[1..].iter().zip(expected).all(|(dim, want)| match dim {
            Dim::Value(value) => *value == want,
            Dim::Param(_) => true,
        });
    if !fits {
        return Err(Error::ShapeMismatch {
            path: path.to_path_buf(),
            expected: format!("[N, {channels}, {height}, {width}]"),
            found: describe(found),
        });
    }
    Ok(side)
}

/// The batch dimension of the backbone's input, for the new input and output.
fn batch_dim(backbone: &Backbone<'_>) -> Dim {
    match backbone.input.dims.first() {
        Some(Dim::Param(name)) if !name.is_empty() => Dim::Param(name.clone()),
        Some(Dim::Value(value)) => Dim::Value(*value),
        _ => Dim::Param("batch".into()),
    }
}

/// uint8 [N, S, S, 3] → float [N, 3, S, S] in [-1, 1], named as the backbone's input.
fn preprocessing(request: &ExportRequest<'_>, backbone_input: &str, opset: i64) -> Nodes {
    let mut nodes = Nodes::new(opset);
    let float = nodes.add(
        "Cast",
        "preprocess/float".into(),
        &[IMAGE_INPUT],
        &[Attribute::Int("to", data_type::FLOAT)],
    );
    // Division, then subtraction: the same operations in the same order as extraction, so the
    // network sees the same f32 values.
    let scale = nodes.weight("preprocess/pixel_scale".into(), &[], &[request.pixel_scale]);
    let offset = nodes.weight("preprocess/pixel_offset".into(), &[], &[request.pixel_offset]);
    let divided = nodes.add("Div", "preprocess/divided".into(), &[&float, &scale], &[]);
    let scaled = nodes.add("Sub", "preprocess/scaled".into(), &[&divided, &offset], &[]);
    nodes.add_named(
        "Transpose",
        "preprocess/channels_first",
        &[&scaled],
        backbone_input,
        &[Attribute::Ints("perm", vec![0, 3, 1, 2])],
    );
    nodes
}

/// Writes the classifier (see the module docs) atomically to `request.output`.
pub fn export(request: &ExportRequest<'_>) -> Result<ExportSummary> {
    let path = request.backbone;
    let bytes =
        std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let backbone = read_backbone(&bytes).map_err(model_error(path))?;
    let side = check_interface(&backbone, request.head, path)?;
    let head_classes = request.head.members.first().map(|m| m.output.outputs);
    if head_classes != Some(request.classes) {
        return Err(Error::Head(format!(
            "{} classes named, the output layer gives {head_classes:?}",
            request.classes
        )));
    }
    let before = match request.input {
        InputKind::Uint8 => Some(preprocessing(request, &backbone.input.name, backbone.opset)),
        InputKind::Float => None,
    };
    let mut head = Nodes::new(backbone.opset);
    head_graph::append_head(
        &mut head,
        request.head,
        &backbone.output.name,
        OUTPUT,
        request.temperature,
    )?;
    // `image` is only added with uint8 input.
    let reserved = match request.input {
        InputKind::Uint8 => &[IMAGE_INPUT, OUTPUT][..],
        InputKind::Float => &[OUTPUT][..],
    };
    let clash = backbone.names.iter().find(|name| {
        reserved.contains(&name.as_str())
            || name.starts_with(head_graph::PREFIX)
            || name.starts_with("preprocess/")
    });
    if let Some(name) = clash {
        return Err(Error::Model {
            path: path.to_path_buf(),
            reason: format!("it already has a tensor named {name:?}, a name the export adds"),
        });
    }

    let batch = batch_dim(&backbone);
    let mut graph = Message::new();
    let mut added_nodes = head.nodes.len();
    if let Some(before) = &before {
        added_nodes += before.nodes.len();
        graph = before.nodes.iter().fold(graph, |g, node| g.message(field::graph::NODE, node));
    }
    for graph_field in &backbone.graph_fields {
        let keep_input =
            request.input == InputKind::Float && graph_field.number == field::graph::INPUT;
        if keep_input || !matches!(graph_field.number, field::graph::INPUT | field::graph::OUTPUT) {
            graph = graph.raw(graph_field);
        }
    }
    graph = head.nodes.iter().fold(graph, |g, node| g.message(field::graph::NODE, node));
    let initializers = head.initializers.iter().chain(before.iter().flat_map(|b| &b.initializers));
    graph = initializers.fold(graph, |g, tensor| g.message(field::graph::INITIALIZER, tensor));
    let input = match request.input {
        InputKind::Uint8 => {
            let dims = [batch.clone(), Dim::Value(side), Dim::Value(side), Dim::Value(3)];
            graph = graph.message(
                field::graph::INPUT,
                &onnx::value_info(IMAGE_INPUT, data_type::UINT8, &dims),
            );
            format!("{IMAGE_INPUT} uint8 {}", describe(&dims))
        }
        InputKind::Float => {
            format!("{} float32 {}", backbone.input.name, describe(&backbone.input.dims))
        }
    };
    let output_dims = [batch, Dim::Value(request.classes as i64)];
    graph = graph
        .message(field::graph::OUTPUT, &onnx::value_info(OUTPUT, data_type::FLOAT, &output_dims));

    let mut ours = HashSet::new();
    for (key, _) in &request.metadata {
        if !ours.insert(key.as_str()) {
            return Err(Error::DuplicateMetadata(key.clone()));
        }
    }
    let mut model = Message::new();
    for model_field in &backbone.model_fields {
        match model_field.number {
            field::model::GRAPH => model = model.message(field::model::GRAPH, &graph),
            field::model::PRODUCER_NAME
            | field::model::PRODUCER_VERSION
            | field::model::DOC_STRING => {}
            field::model::METADATA_PROPS => {
                let key = onnx::string_field(model_field.bytes()?, field::entry::KEY)
                    .map_err(model_error(path))?;
                if !key.is_some_and(|key| ours.contains(key.as_str())) {
                    model = model.raw(model_field);
                }
            }
            _ => model = model.raw(model_field),
        }
    }
    model = model
        .string(field::model::PRODUCER_NAME, PRODUCER)
        .string(field::model::PRODUCER_VERSION, env!("CARGO_PKG_VERSION"))
        .string(
            field::model::DOC_STRING,
            &format!("incept classifier: {input} -> {OUTPUT} float32 [N, {}]", request.classes),
        );
    for (key, value) in &request.metadata {
        model = model.message(field::model::METADATA_PROPS, &onnx::entry(key, value));
    }
    // Protobuf messages end at 2 GiB; ONNX Runtime refuses larger ones without external data.
    if model.len() >= i32::MAX as usize {
        return Err(Error::TooLarge { path: request.output.to_path_buf(), bytes: model.len() });
    }
    let bytes = model.into_bytes();
    incept_core::atomic::write_atomically(request.output, &bytes)?;
    Ok(ExportSummary {
        bytes: bytes.len() as u64,
        added_nodes,
        backbone_nodes: backbone.nodes,
        input,
    })
}

#[cfg(test)]
mod tests;
