//! The head as ONNX nodes: pooling, Squeeze-and-Excitation, dense layers, softmax, and the mean
//! over an ensemble's members. Each step mirrors `incept_head::model` (inference: no dropout).

use incept_head::{BILINEAR_NORM_EPSILON, Pooling, Projection, bilinear_pooled_len};
use incept_head::{DenseValues, HeadValues};

use crate::onnx::{self, Attribute};
use crate::wire::Message;
use crate::{Error, Result};

/// Prefix of every node, tensor and weight the head adds, to keep clear of the backbone's names.
pub const PREFIX: &str = "head/";

/// Nodes and weights to append to a graph.
#[derive(Debug, Default)]
pub struct Nodes {
    pub nodes: Vec<Message>,
    pub initializers: Vec<Message>,
    /// Operator set of the default domain the nodes are written for.
    opset: i64,
}

impl Nodes {
    pub fn new(opset: i64) -> Self {
        Nodes { opset, ..Nodes::default() }
    }

    /// Adds a node named `name` with one output, also called `name`; returns that name.
    pub fn add(
        &mut self,
        op_type: &str,
        name: String,
        inputs: &[&str],
        attributes: &[Attribute],
    ) -> String {
        self.nodes.push(onnx::node(op_type, &name, inputs, &[&name], attributes));
        name
    }

    /// Adds a node whose output has a name chosen by the caller (a graph's input or output).
    pub fn add_named(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attributes: &[Attribute],
    ) {
        self.nodes.push(onnx::node(op_type, name, inputs, &[output], attributes));
    }

    pub fn weight(&mut self, name: String, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(onnx::tensor_f32(&name, dims, values));
        name
    }

    fn int64s(&mut self, name: String, values: &[i64]) -> String {
        self.initializers.push(onnx::tensor_i64(&name, &[values.len()], values));
        name
    }

    /// `y = x·Wᵀ + b` as one Gemm (W is stored [out, in], as `transB` reads it).
    fn dense(&mut self, name: &str, layer: &DenseValues, x: &str) -> String {
        let weight =
            self.weight(format!("{name}/weight"), &[layer.outputs, layer.inputs], &layer.weight);
        let bias = self.weight(format!("{name}/bias"), &[layer.outputs], &layer.bias);
        self.add("Gemm", name.to_owned(), &[x, &weight, &bias], &[Attribute::Int("transB", 1)])
    }

    /// A reduction (mean, max, L2 norm) over `axes`. The axes are an attribute up to operator
    /// set 17 and an input from 18 on.
    fn reduce(&mut self, op_type: &str, name: &str, x: &str, axes: &[i64], keep: bool) -> String {
        let keepdims = Attribute::Int("keepdims", i64::from(keep));
        if self.opset >= 18 {
            let axes = self.int64s(format!("{name}/axes"), axes);
            self.add(op_type, name.to_owned(), &[x, &axes], &[keepdims])
        } else {
            self.add(
                op_type,
                name.to_owned(),
                &[x],
                &[Attribute::Ints("axes", axes.to_vec()), keepdims],
            )
        }
    }

    /// Second-order pooling as `incept_head`'s `Projection::pool` computes it.
    ///
    /// # Shapes
    /// `map`: [N, H, W, C] channels last → [N, D·(D+1)/2].
    fn bilinear(&mut self, projection: &Projection, map: &str, positions: usize) -> String {
        let (channels, dimensions) = (projection.channels, projection.dimensions);
        let name = |step: &str| format!("{PREFIX}bilinear/{step}");
        let shape = self.int64s(name("shape"), &[-1, positions as i64, channels as i64]);
        let rows = self.add("Reshape", name("positions"), &[map, &shape], &[]); // [N, P, C]
        let rectified = self.add("Relu", name("relu"), &[&rows], &[]);
        let roots = self.add("Sqrt", name("sqrt"), &[&rectified], &[]);
        let mean = self.weight(name("mean"), &[channels], &projection.mean);
        let centred = self.add("Sub", name("centred"), &[&roots, &mean], &[]);
        let directions =
            self.weight(name("directions"), &[channels, dimensions], &projection.directions);
        let projected = self.add("MatMul", name("projected"), &[&centred, &directions], &[]); // [N, P, D]
        let transposed = self.add(
            "Transpose",
            name("transposed"),
            &[&projected],
            &[Attribute::Ints("perm", vec![0, 2, 1])],
        ); // [N, D, P]
        let gram = self.add("MatMul", name("gram"), &[&transposed, &projected], &[]); // [N, D, D]
        let inverse = self.weight(name("inverse_positions"), &[], &[1.0 / positions as f32]);
        let mean_gram = self.add("Mul", name("mean_gram"), &[&gram, &inverse], &[]);
        let flat_shape = self.int64s(name("flat_shape"), &[-1, (dimensions * dimensions) as i64]);
        let flat = self.add("Reshape", name("flat"), &[&mean_gram, &flat_shape], &[]);
        let upper: Vec<i64> = (0..dimensions)
            .flat_map(|i| (i..dimensions).map(move |j| (i * dimensions + j) as i64))
            .collect();
        let upper = self.int64s(name("upper_triangle"), &upper);
        let triangle =
            self.add("Gather", name("triangle"), &[&flat, &upper], &[Attribute::Int("axis", 1)]);
        let sign = self.add("Sign", name("sign"), &[&triangle], &[]);
        let magnitude = self.add("Abs", name("abs"), &[&triangle], &[]);
        let root = self.add("Sqrt", name("root"), &[&magnitude], &[]);
        let signed = self.add("Mul", name("signed_root"), &[&sign, &root], &[]);
        let norm = self.reduce("ReduceL2", &name("norm"), &signed, &[1], true); // [N, 1]
        let epsilon = self.weight(name("epsilon"), &[], &[BILINEAR_NORM_EPSILON]);
        let guarded = self.add("Add", name("norm_epsilon"), &[&norm, &epsilon], &[]);
        self.add("Div", name("pooled"), &[&signed, &guarded], &[])
    }
}

fn check_width(member: usize, layer: &DenseValues, width: usize) -> Result<()> {
    if layer.inputs != width {
        return Err(Error::Head(format!(
            "member {member}: a layer takes {} values where {width} arrive",
            layer.inputs
        )));
    }
    Ok(())
}

/// The head's nodes from `features` ([N, C, H, W], the backbone's output) to `output`
/// ([N, classes] probabilities); with `temperature` T, the log-probabilities are divided by T
/// before the softmax (one member: its logits; an ensemble: the log of its members' mean).
pub fn append_head(
    nodes: &mut Nodes,
    head: &HeadValues,
    features: &str,
    output: &str,
    temperature: Option<f64>,
) -> Result<()> {
    let temperature = temperature.filter(|t| *t != 1.0);
    if let Some(t) = temperature
        && !(t.is_finite() && t > 0.0)
    {
        return Err(Error::Head(format!("temperature {t} is not a positive number")));
    }
    let [height, width, channels] = head.input_shape;
    if head.members.is_empty() {
        return Err(Error::Head("the head has no member".into()));
    }
    // Shared by every member, made by the first that needs them: [N, C] averages (and maxima),
    // or the channels-last map.
    let average = nodes.reduce("ReduceMean", &format!("{PREFIX}average"), features, &[2, 3], false);
    let mut maximum: Option<String> = None;
    let mut channels_last: Option<String> = None;
    // A bilinear head's pooled vector, shared by its members: [N, D·(D+1)/2].
    let bilinear = match (head.pooling, &head.projection) {
        (Pooling::Bilinear, Some(projection)) => {
            let map = nodes.add(
                "Transpose",
                format!("{PREFIX}channels_last"),
                &[features],
                &[Attribute::Ints("perm", vec![0, 2, 3, 1])],
            );
            let pooled = nodes.bilinear(projection, &map, height * width);
            channels_last = Some(map);
            Some((pooled, bilinear_pooled_len(projection.dimensions)))
        }
        (Pooling::Bilinear, None) => {
            return Err(Error::Head("a bilinear head without its projection".into()));
        }
        _ => None,
    };
    let mut probabilities = Vec::new();
    for (index, member) in head.members.iter().enumerate() {
        let prefix = format!("{PREFIX}member{index}");
        let gate = match &member.squeeze_excitation {
            Some((squeeze, excite)) => {
                check_width(index, squeeze, channels)?;
                let squeezed = nodes.dense(&format!("{prefix}/se/squeeze"), squeeze, &average);
                let squeezed =
                    nodes.add("Relu", format!("{prefix}/se/squeeze_relu"), &[&squeezed], &[]);
                let excited = nodes.dense(&format!("{prefix}/se/excite"), excite, &squeezed);
                Some(nodes.add("Sigmoid", format!("{prefix}/se/gate"), &[&excited], &[])) // [N, C]
            }
            None => None,
        };
        // SE gates are positive per channel: gating the pooled values equals pooling the gated map.
        let (mut x, mut width) = match (head.pooling, &gate) {
            (Pooling::Bilinear, _) => bilinear
                .clone()
                .ok_or_else(|| Error::Head("a bilinear head without its pooled vector".into()))?,
            (Pooling::Gap, Some(gate)) => {
                (nodes.add("Mul", format!("{prefix}/gated"), &[&average, gate], &[]), channels)
            }
            (Pooling::Gap, None) => (average.clone(), channels),
            (Pooling::Avgmax, gate) => {
                let maximum = maximum
                    .get_or_insert_with(|| {
                        nodes.reduce(
                            "ReduceMax",
                            &format!("{PREFIX}maximum"),
                            features,
                            &[2, 3],
                            false,
                        )
                    })
                    .as_str();
                let (mean_part, max_part) = match gate {
                    Some(gate) => (
                        nodes.add("Mul", format!("{prefix}/gated_average"), &[&average, gate], &[]),
                        nodes.add("Mul", format!("{prefix}/gated_maximum"), &[maximum, gate], &[]),
                    ),
                    None => (average.clone(), maximum.to_owned()),
                };
                let axis = Attribute::Int("axis", 1);
                (
                    nodes.add(
                        "Concat",
                        format!("{prefix}/pooled"),
                        &[&mean_part, &max_part],
                        &[axis],
                    ),
                    2 * channels,
                )
            }
            (Pooling::Flatten, gate) => {
                // The head flattens channels-last maps: [N, C, H, W] → [N, H, W, C].
                let map = channels_last
                    .get_or_insert_with(|| {
                        nodes.add(
                            "Transpose",
                            format!("{PREFIX}channels_last"),
                            &[features],
                            &[Attribute::Ints("perm", vec![0, 2, 3, 1])],
                        )
                    })
                    .as_str();
                let map = match gate {
                    Some(gate) => {
                        let shape = nodes
                            .int64s(format!("{prefix}/gate_shape"), &[-1, 1, 1, channels as i64]);
                        let gate = nodes.add(
                            "Reshape",
                            format!("{prefix}/gate_map"),
                            &[gate, &shape],
                            &[],
                        );
                        nodes.add("Mul", format!("{prefix}/gated"), &[map, &gate], &[]) // [N, H, W, C]
                    }
                    None => map.to_owned(),
                };
                let axis = Attribute::Int("axis", 1);
                (
                    nodes.add("Flatten", format!("{prefix}/flat"), &[&map], &[axis]),
                    height * width * channels,
                )
            }
        };
        for (layer_index, layer) in member.hidden.iter().enumerate() {
            check_width(index, layer, width)?;
            let name = format!("{prefix}/dense{layer_index}");
            let linear = nodes.dense(&name, layer, &x);
            x = nodes.add("Relu", format!("{name}_relu"), &[&linear], &[]);
            width = layer.outputs;
        }
        check_width(index, &member.output, width)?;
        let logits = nodes.dense(&format!("{prefix}/logits"), &member.output, &x);
        let softmax = [Attribute::Int("axis", 1)];
        if head.members.len() == 1 {
            let logits = match temperature {
                Some(t) => divide(nodes, &format!("{PREFIX}calibrated"), &logits, t),
                None => logits,
            };
            nodes.add_named("Softmax", &format!("{prefix}/softmax"), &[&logits], output, &softmax);
            return Ok(());
        }
        probabilities.push(nodes.add("Softmax", format!("{prefix}/softmax"), &[&logits], &softmax));
    }
    // An ensemble's prediction is its members' mean probability, as `incept predict` computes it.
    let members: Vec<&str> = probabilities.iter().map(String::as_str).collect();
    let Some(t) = temperature else {
        nodes.add_named("Mean", &format!("{PREFIX}ensemble_mean"), &members, output, &[]);
        return Ok(());
    };
    let mean = nodes.add("Mean", format!("{PREFIX}ensemble_mean"), &members, &[]);
    let log = nodes.add("Log", format!("{PREFIX}ensemble_log"), &[&mean], &[]);
    let scaled = divide(nodes, &format!("{PREFIX}calibrated"), &log, t);
    let softmax = [Attribute::Int("axis", 1)];
    nodes.add_named(
        "Softmax",
        &format!("{PREFIX}calibrated_softmax"),
        &[&scaled],
        output,
        &softmax,
    );
    Ok(())
}

/// `x` / `temperature` (a broadcast scalar).
fn divide(nodes: &mut Nodes, name: &str, x: &str, temperature: f64) -> String {
    let divisor = nodes.weight(format!("{name}/temperature"), &[1], &[temperature as f32]);
    nodes.add("Div", name.to_owned(), &[x, &divisor], &[])
}
