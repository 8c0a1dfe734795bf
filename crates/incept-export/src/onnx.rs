//! The subset of `onnx.proto` (ONNX 1.19) that export reads and writes, by field number.
//!
//! Hand-kept instead of generated: the generated code for the whole schema is ~5,000 lines and
//! needs `protoc` at build time, and a typed decode would drop the fields it does not know. Export
//! only adds nodes, weights, an input, an output and metadata to a graph it otherwise copies.

use crate::Result;
use crate::wire::{self, Field, Message};

/// Field numbers, as `onnx.proto` gives them.
pub mod field {
    pub mod model {
        pub const IR_VERSION: u32 = 1;
        pub const PRODUCER_NAME: u32 = 2;
        pub const PRODUCER_VERSION: u32 = 3;
        pub const DOC_STRING: u32 = 6;
        pub const GRAPH: u32 = 7;
        pub const OPSET_IMPORT: u32 = 8;
        pub const METADATA_PROPS: u32 = 14;
    }
    pub mod graph {
        pub const NODE: u32 = 1;
        pub const NAME: u32 = 2;
        pub const INITIALIZER: u32 = 5;
        pub const INPUT: u32 = 11;
        pub const OUTPUT: u32 = 12;
    }
    pub mod node {
        pub const INPUT: u32 = 1;
        pub const OUTPUT: u32 = 2;
        pub const NAME: u32 = 3;
        pub const OP_TYPE: u32 = 4;
        pub const ATTRIBUTE: u32 = 5;
    }
    pub mod attribute {
        pub const NAME: u32 = 1;
        pub const F: u32 = 2;
        pub const I: u32 = 3;
        pub const INTS: u32 = 8;
        pub const TYPE: u32 = 20;
    }
    pub mod tensor {
        pub const DIMS: u32 = 1;
        pub const DATA_TYPE: u32 = 2;
        pub const NAME: u32 = 8;
        pub const RAW_DATA: u32 = 9;
        /// `DataLocation`: 0 inside the file, 1 in an external file.
        pub const DATA_LOCATION: u32 = 14;
    }
    pub mod value_info {
        pub const NAME: u32 = 1;
        pub const TYPE: u32 = 2;
    }
    /// `TypeProto.tensor_type`, then `TypeProto.Tensor`'s fields.
    pub mod type_proto {
        pub const TENSOR_TYPE: u32 = 1;
        pub const ELEM_TYPE: u32 = 1;
        pub const SHAPE: u32 = 2;
    }
    /// `TensorShapeProto.dim`, then `Dimension`'s fields.
    pub mod shape {
        pub const DIM: u32 = 1;
        pub const DIM_VALUE: u32 = 1;
        pub const DIM_PARAM: u32 = 2;
    }
    pub mod entry {
        pub const KEY: u32 = 1;
        pub const VALUE: u32 = 2;
    }
    pub mod opset {
        pub const DOMAIN: u32 = 1;
        pub const VERSION: u32 = 2;
    }
}

/// `TensorProto.DataType` values.
pub mod data_type {
    pub const FLOAT: i64 = 1;
    pub const UINT8: i64 = 2;
    pub const INT64: i64 = 7;
}

/// `AttributeProto.AttributeType` values.
mod attribute_type {
    pub const FLOAT: i64 = 1;
    pub const INT: i64 = 2;
    pub const INTS: i64 = 7;
}

/// A node attribute.
#[derive(Clone, Debug)]
pub enum Attribute {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
}

impl Attribute {
    fn encode(&self) -> Message {
        use field::attribute::*;
        match self {
            Attribute::Int(name, value) => {
                Message::new().string(NAME, name).int(TYPE, attribute_type::INT).int(I, *value)
            }
            Attribute::Ints(name, values) => values.iter().fold(
                Message::new().string(NAME, name).int(TYPE, attribute_type::INTS),
                |message, value| message.int(INTS, *value),
            ),
            Attribute::Float(name, value) => {
                Message::new().string(NAME, name).int(TYPE, attribute_type::FLOAT).float(F, *value)
            }
        }
    }
}

/// A `NodeProto`.
pub fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: &[Attribute],
) -> Message {
    use field::node::*;
    let mut message = Message::new();
    for input in inputs {
        message = message.string(INPUT, input);
    }
    for output in outputs {
        message = message.string(OUTPUT, output);
    }
    message = message.string(NAME, name).string(OP_TYPE, op_type);
    for attribute in attributes {
        message = message.message(ATTRIBUTE, &attribute.encode());
    }
    message
}

/// A `TensorProto` of f32 values, row-major, stored as little-endian raw data.
pub fn tensor_f32(name: &str, dims: &[usize], values: &[f32]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, data_type::FLOAT, &raw)
}

/// A `TensorProto` of int64 values.
pub fn tensor_i64(name: &str, dims: &[usize], values: &[i64]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, data_type::INT64, &raw)
}

fn tensor(name: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> Message {
    use field::tensor::*;
    let message = dims.iter().fold(Message::new(), |m, &d| m.int(DIMS, d as i64));
    message.int(DATA_TYPE, data_type).string(NAME, name).bytes(RAW_DATA, raw)
}

/// One dimension of a tensor's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Value(i64),
    Param(String),
}

/// A `ValueInfoProto` for a tensor: name, element type and shape.
pub fn value_info(name: &str, elem_type: i64, dims: &[Dim]) -> Message {
    use field::{shape, type_proto};
    let shape = dims.iter().fold(Message::new(), |message, dim| {
        let dimension = match dim {
            Dim::Value(value) => Message::new().int(shape::DIM_VALUE, *value),
            Dim::Param(name) => Message::new().string(shape::DIM_PARAM, name),
        };
        message.message(shape::DIM, &dimension)
    });
    let tensor =
        Message::new().int(type_proto::ELEM_TYPE, elem_type).message(type_proto::SHAPE, &shape);
    let type_message = Message::new().message(type_proto::TENSOR_TYPE, &tensor);
    Message::new()
        .string(field::value_info::NAME, name)
        .message(field::value_info::TYPE, &type_message)
}

/// A `StringStringEntryProto` (model metadata).
pub fn entry(key: &str, value: &str) -> Message {
    Message::new().string(field::entry::KEY, key).string(field::entry::VALUE, value)
}

/// A graph input or output as read: its name, element type and dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub elem_type: i64,
    pub dims: Vec<Dim>,
}

/// Reads a `ValueInfoProto` describing a tensor.
pub fn read_value_info(bytes: &[u8]) -> Result<TensorInfo> {
    use field::{shape, type_proto};
    let mut info = TensorInfo { name: String::new(), elem_type: 0, dims: Vec::new() };
    for value_field in wire::fields(bytes)? {
        match value_field.number {
            field::value_info::NAME => info.name = value_field.string()?.to_owned(),
            field::value_info::TYPE => {
                for type_field in wire::fields(value_field.bytes()?)? {
                    if type_field.number != type_proto::TENSOR_TYPE {
                        continue;
                    }
                    for tensor_field in wire::fields(type_field.bytes()?)? {
                        match tensor_field.number {
                            type_proto::ELEM_TYPE => info.elem_type = tensor_field.varint()? as i64,
                            type_proto::SHAPE => {
                                for dim in wire::fields(tensor_field.bytes()?)? {
                                    if dim.number == shape::DIM {
                                        info.dims.push(read_dim(dim.bytes()?)?);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn read_dim(bytes: &[u8]) -> Result<Dim> {
    for dim_field in wire::fields(bytes)? {
        match dim_field.number {
            field::shape::DIM_VALUE => return Ok(Dim::Value(dim_field.varint()? as i64)),
            field::shape::DIM_PARAM => return Ok(Dim::Param(dim_field.string()?.to_owned())),
            _ => {}
        }
    }
    // A dimension with neither is unknown: ONNX allows it.
    Ok(Dim::Param(String::new()))
}

/// The names a message lists in one repeated string field (a node's inputs or outputs).
pub fn strings(bytes: &[u8], number: u32) -> Result<Vec<String>> {
    wire::fields(bytes)?
        .iter()
        .filter(|f| f.number == number)
        .map(|f| f.string().map(str::to_owned))
        .collect()
}

/// The last integer field `number` of a message, if present.
pub fn int_field(bytes: &[u8], number: u32) -> Result<Option<u64>> {
    let fields = wire::fields(bytes)?;
    fields.iter().rev().find(|f| f.number == number).map(Field::varint).transpose()
}

/// The one string field `number` of a message, if present.
pub fn string_field(bytes: &[u8], number: u32) -> Result<Option<String>> {
    Ok(strings(bytes, number)?.pop())
}

/// The version of the default (`ai.onnx`) operator set a model imports.
pub fn default_opset(opset_imports: &[Field<'_>]) -> Result<Option<i64>> {
    for import in opset_imports {
        let mut domain = String::new();
        let mut version = None;
        for opset_field in wire::fields(import.bytes()?)? {
            match opset_field.number {
                field::opset::DOMAIN => domain = opset_field.string()?.to_owned(),
                field::opset::VERSION => version = Some(opset_field.varint()? as i64),
                _ => {}
            }
        }
        if domain.is_empty() || domain == "ai.onnx" {
            return Ok(version);
        }
    }
    Ok(None)
}
