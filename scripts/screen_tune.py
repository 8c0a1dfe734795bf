"""Screen: does fine-tuning InceptionV3's top blocks on the cached maps beat the frozen-feature head?

A screen before building `train-head --tune-from` (docs/HEADS.md, "Fine-tuning the top blocks").
The blocks after the cache's layer are rebuilt in PyTorch from the ONNX backbone incept extracts
with (convolutions with their batch norms folded in, as the converter writes them: the norms'
statistics are frozen by construction) and trained on the cached maps, starting from their
pretrained weights, with a lower learning rate than the new head on top of them (global average
pooling, dropout, one dense layer). The cache's samples, split and test-time averaging are those
of an incept run on the same cache: the validation photos are read from its predictions.csv, and
the run's own predictions are the baseline each tuned model is compared with, photo by photo.

    (c) --tune-from mixed_8: mixed_8, mixed_9, mixed_10 trained on a mixed_7 cache
    (b) --tune-from mixed_10: the frozen mixed_8 and mixed_9 run once over the cache (the maps a
        mixed_9 cache would hold; no new extraction), then mixed_10 trained on them

Not part of the tool or its tests. It needs PyTorch, numpy, h5py and onnx:

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy h5py onnx
    /tmp/torchvenv/bin/python scripts/screen_tune.py features/amid5-mixed_7.h5 runs/demo-cal \\
        --tune-from mixed_8 --epochs 4 --seed 0 --aside aside-mixed_7.h5

Prints one line per epoch (losses, validation accuracy with TTA and single view, the kept-aside
photos' accuracy, seconds), then the chosen epoch's figures with 95 % Wilson intervals and the
paired comparison with the baseline run (McNemar's exact p, photos only one of them gets right).
`--benchmark` prints the training rate (samples/s) of each choice and stops. The chosen epoch's
predictions go to --out as CSV (the columns of incept's predictions.csv).
"""

import argparse
import csv
import math
import time
from pathlib import Path

import h5py
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from mislabel import wilson

ROOT = Path(__file__).resolve().parent.parent
# The top blocks, in the network's order; the output of mixed_10 is the graph's `features`.
BLOCKS = ("mixed_7", "mixed_8", "mixed_9", "mixed_10")
# Samples converted from the cache at a time: 1,000 maps of 12×12×768 float32 are 442 MB.
CHUNK = 1000
# The side of the network's input, as incept extracts (models/convert_inception.py).
INPUT_SIZE = 224


def block_output(graph: onnx.GraphProto, block: str) -> str:
    """The tensor a block ends with: its own concatenation (inner towers have longer names)."""
    if block == BLOCKS[-1]:
        return graph.output[0].name
    for node in graph.node:
        if node.name == f"{block}.concat":
            return node.output[0]
    raise SystemExit(f"no node {block}.concat in the backbone")


class Blocks(torch.nn.Module):
    """The ONNX nodes that compute tensor `end` from tensor `start`, as a PyTorch module.

    # Shapes
    [batch, C, H, W] in (`start`), [batch, C', H', W'] out.
    """

    def __init__(self, model: onnx.ModelProto, start: str, end: str):
        super().__init__()
        graph = model.graph
        producer = {output: node for node in graph.node for output in node.output}
        weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        needed, pending = set(), [end]
        while pending:
            tensor = pending.pop()
            if tensor == start or tensor in weights or tensor not in producer:
                continue
            node = producer[tensor]
            if node.name not in needed:
                needed.add(node.name)
                pending.extend(node.input)
        self.nodes = [node for node in graph.node if node.name in needed]
        self.attributes = [{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} for node in self.nodes]
        self.start, self.end = start, end
        self.weights = torch.nn.ParameterDict()
        for node in self.nodes:
            for name in node.input[1:]:
                key = name.replace(".", "_")
                if name in weights and key not in self.weights:
                    self.weights[key] = torch.nn.Parameter(torch.from_numpy(weights[name].copy()))
        unsupported = {n.op_type for n in self.nodes} - {"Conv", "Relu", "Concat", "MaxPool", "AveragePool", "Identity"}
        if unsupported:
            raise SystemExit(f"unsupported operators between {start} and {end}: {sorted(unsupported)}")

    def forward(self, x):
        values = {self.start: x}
        for node, attributes in zip(self.nodes, self.attributes):
            inputs = [values[name] for name in node.input if name in values]
            if node.op_type == "Conv":
                weight = self.weights[node.input[1].replace(".", "_")]
                bias = self.weights[node.input[2].replace(".", "_")] if len(node.input) > 2 else None
                top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
                if (top, left) != (bottom, right):
                    raise SystemExit(f"{node.name}: asymmetric padding")
                out = F.conv2d(inputs[0], weight, bias, tuple(attributes.get("strides", [1, 1])), (top, left))
            elif node.op_type == "Relu":
                out = F.relu(inputs[0])
            elif node.op_type == "Concat":
                out = torch.cat(inputs, dim=attributes["axis"])
            elif node.op_type in ("MaxPool", "AveragePool"):
                top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
                if (top, left) != (bottom, right):
                    raise SystemExit(f"{node.name}: asymmetric padding")
                kernel, strides = tuple(attributes["kernel_shape"]), tuple(attributes.get("strides", [1, 1]))
                if node.op_type == "MaxPool":
                    out = F.max_pool2d(inputs[0], kernel, strides, (top, left))
                else:
                    include = bool(attributes.get("count_include_pad", 0))
                    out = F.avg_pool2d(inputs[0], kernel, strides, (top, left), count_include_pad=include)
            else:
                out = inputs[0]
            values[node.output[0]] = out
        return values[self.end]


class Tuned(torch.nn.Module):
    """Pretrained blocks, then global average pooling, dropout and one dense layer.

    # Shapes
    [batch, C, H, W] maps of the cache's layer (or of the frozen blocks' output) → [batch, classes].
    """

    def __init__(self, blocks: Blocks, channels: int, classes: int, dropout: float):
        super().__init__()
        self.blocks = blocks
        self.dropout = torch.nn.Dropout(dropout)
        self.dense = torch.nn.Linear(channels, classes)

    def forward(self, x):
        maps = self.blocks(x)  # [batch, 2048, 5, 5]
        return self.dense(self.dropout(maps.mean(dim=(2, 3))))


def read_cache(path: Path):
    """Maps as float16 [N, C, H, W] (channels-last in memory) and each sample's label, photo, variant."""
    with h5py.File(path, "r") as cache:
        dataset = cache["features"]  # [N, H, W, C]
        n, height, width, channels = dataset.shape
        maps = np.empty((n, height, width, channels), np.float16)
        for start in range(0, n, CHUNK):
            maps[start : start + CHUNK] = dataset[start : start + CHUNK]
        sources = list(cache["sources"].asstr()[:])
        columns = cache["labels"][:], cache["source"][:], cache["variant"][:]
        classes = list(cache["classes"].asstr()[:])
        layer = cache.attrs.get("layer", "mixed_10")
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
    return torch.from_numpy(maps).permute(0, 3, 1, 2), *columns, [sources[s] for s in columns[1]], classes, layer


def batches(maps, rows, batch_size):
    for start in range(0, len(rows), batch_size):
        index = torch.from_numpy(rows[start : start + batch_size])
        yield index, maps[index].float().contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def probabilities(model, maps, rows, batch_size=64):
    model.eval()
    return torch.cat([F.softmax(model(x), dim=1) for _, x in batches(maps, rows, batch_size)]).numpy()


def per_photo(prob, rows, photo_of, variant, labels):
    """{photo: (label, TTA probabilities, single-view probabilities)} over the given rows."""
    grouped = {}
    for p, row in zip(prob, rows):
        entry = grouped.setdefault(photo_of[row], [labels[row], [], None])
        entry[1].append(p)
        if variant[row] == 0:
            entry[2] = p
    return {photo: (label, np.mean(views, axis=0), single) for photo, (label, views, single) in grouped.items()}


def accuracy(photos, which):
    return float(np.mean([value[which].argmax() == value[0] for value in photos.values()]))


def log_loss(photos, which):
    return float(np.mean([-math.log(max(value[which][value[0]], 1e-12)) for value in photos.values()]))


def mcnemar(only_a, only_b):
    """Exact two-sided McNemar p-value from the discordant counts."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def baseline_predictions(run: Path):
    """{photo: (TTA predicted, single-view predicted)} of an incept run."""
    with open(run / "predictions.csv", newline="") as file:
        return {r["source"]: (r["predicted"], r.get("single_view_predicted") or r["predicted"]) for r in csv.DictReader(file)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", type=Path, help="a mixed_7 cache made by incept extract")
    parser.add_argument("run", type=Path, nargs="+", help="incept runs on that cache: the first's predictions.csv gives the validation photos; each is a baseline")
    parser.add_argument("--backbone", type=Path, default=ROOT / "models/inception_v3_notop.onnx")
    parser.add_argument("--tune-from", choices=BLOCKS[1:], default="mixed_8", help="the first block trained")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="the new head's")
    parser.add_argument("--block-learning-rate-multiplier", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--final-learning-rate-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aside", type=Path, help="a cache of photos in neither set (same backbone and layer), judged single view")
    parser.add_argument("--out", type=Path, default=Path("/tmp/incept-screen-tune"))
    parser.add_argument("--benchmark", type=int, default=0, metavar="STEPS", help="time this many training steps and stop")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    generator = np.random.default_rng(args.seed)
    model_proto = onnx.load(args.backbone)
    maps, labels, _, variant, photo_of, classes, layer = read_cache(args.cache)
    if layer != "mixed_7":
        raise SystemExit(f"{args.cache}: a {layer} cache; this screen starts from mixed_7")
    validation_photos = set(baseline_predictions(args.run[0]))
    is_validation = np.array([photo in validation_photos for photo in photo_of])
    train_rows, validation_rows = np.flatnonzero(~is_validation), np.flatnonzero(is_validation)
    print(f"# {len(validation_photos)} validation photos ({len(validation_rows)} samples), {len(train_rows)} training samples, threads {torch.get_num_threads()}")

    graph = model_proto.graph
    first = BLOCKS.index(args.tune_from)
    start = block_output(graph, BLOCKS[0])
    aside = read_cache(args.aside) if args.aside else None
    if first > 1:
        # The frozen blocks run once: what a cache of the layer before --tune-from would hold.
        frozen = Blocks(model_proto, start, block_output(graph, BLOCKS[first - 1])).eval()
        began = time.perf_counter()
        with torch.no_grad():
            def run(cached):
                return torch.cat([frozen(x).to(torch.float16) for _, x in batches(cached, np.arange(len(cached)), 64)])

            maps = run(maps)
            if aside:
                aside = (run(aside[0]), *aside[1:])
        print(f"# frozen {BLOCKS[1]}..{BLOCKS[first - 1]} over the cache: {time.perf_counter() - began:.0f} s, maps {tuple(maps.shape[1:])}")
        start = block_output(graph, BLOCKS[first - 1])
    blocks = Blocks(model_proto, start, block_output(graph, BLOCKS[-1]))
    model = Tuned(blocks, 2048, len(classes), args.dropout).to(memory_format=torch.channels_last)
    block_rate = args.learning_rate * args.block_learning_rate_multiplier
    optimizer = torch.optim.AdamW(
        [
            {"params": model.blocks.parameters(), "lr": block_rate, "initial": block_rate},
            {"params": model.dense.parameters(), "lr": args.learning_rate, "initial": args.learning_rate},
        ],
        weight_decay=args.weight_decay,
        eps=1e-5,
    )
    steps_per_epoch = math.ceil(len(train_rows) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    labels_tensor = torch.from_numpy(labels.astype(np.int64))

    def train_steps(order, limit=None):
        model.train()
        loss_sum = seen = 0
        for step, (index, x) in enumerate(batches(maps, order, args.batch_size)):
            if limit is not None and step >= limit:
                break
            done = train_steps.step / total_steps
            for group in optimizer.param_groups:
                scale = args.final_learning_rate_fraction + (1 - args.final_learning_rate_fraction) * 0.5 * (1 + math.cos(math.pi * done))
                group["lr"] = group["initial"] * scale
            loss = F.cross_entropy(model(x), labels_tensor[index], label_smoothing=args.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_steps.step += 1
            loss_sum += loss.item() * len(index)
            seen += len(index)
        return loss_sum / max(seen, 1), seen

    train_steps.step = 0
    if args.benchmark:
        order = generator.permutation(train_rows)
        train_steps(order, 2)
        began = time.perf_counter()
        _, seen = train_steps(order[2 * args.batch_size :], args.benchmark)
        elapsed = time.perf_counter() - began
        began = time.perf_counter()
        probabilities(model, maps, validation_rows[:512])
        inference = time.perf_counter() - began
        print(f"tune-from {args.tune_from}: training {seen / elapsed:.1f} samples/s, inference {512 / inference:.1f} samples/s", flush=True)
        # What this design saves: the same training, with the frozen layers run on photos each step.
        stem = Blocks(model_proto, graph.input[0].name, start).eval()
        photos = torch.randn(args.batch_size, 3, INPUT_SIZE, INPUT_SIZE).contiguous(memory_format=torch.channels_last)
        targets = torch.randint(0, len(classes), (args.batch_size,))
        steps = max(1, args.benchmark // 4)
        model.train()
        for step in range(steps + 1):
            if step == 1:
                began = time.perf_counter()
            with torch.no_grad():
                maps_in = stem(photos)
            loss = F.cross_entropy(model(maps_in), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rate = steps * args.batch_size / (time.perf_counter() - began)
        print(f"the same from photos (frozen layers run each step): {rate:.1f} samples/s; on the cache it is {seen / elapsed / rate:.1f}x that")
        return 0

    best = None
    baselines = {run: baseline_predictions(run) for run in args.run}
    for epoch in range(1, args.epochs + 1):
        began = time.perf_counter()
        train_loss, _ = train_steps(generator.permutation(train_rows))
        trained = time.perf_counter() - began
        photos = per_photo(probabilities(model, maps, validation_rows), validation_rows, photo_of, variant, labels)
        loss = log_loss(photos, 1)
        line = f"epoch {epoch}/{args.epochs}: train loss {train_loss:.4f} | validation loss {loss:.4f} TTA {accuracy(photos, 1):.3f} single {accuracy(photos, 2):.3f}"
        aside_photos = None
        if aside:
            aside_rows = np.arange(len(aside[0]))
            aside_photos = per_photo(probabilities(model, aside[0], aside_rows), aside_rows, aside[4], aside[3], aside[1])
            line += f" | aside {accuracy(aside_photos, 2):.3f}"
        print(f"{line} | train {trained:.0f} s, total {time.perf_counter() - began:.0f} s", flush=True)
        if best is None or loss < best[0]:
            best = (loss, epoch, photos, aside_photos)

    loss, epoch, photos, aside_photos = best
    print(f"chosen epoch {epoch} (validation loss {loss:.4f})")
    for which, name in ((1, "TTA"), (2, "single view")):
        right = sum(value[which].argmax() == value[0] for value in photos.values())
        low, high = wilson(right, len(photos))
        print(f"  {name}: {right}/{len(photos)} = {right / len(photos):.3f} (95 % {low:.3f}..{high:.3f})")
        for run, predicted in baselines.items():
            mine = {p: classes[v[which].argmax()] == classes[v[0]] for p, v in photos.items()}
            theirs = {p: predicted[p][which - 1] == classes[photos[p][0]] for p in photos}
            only_mine = sum(mine[p] and not theirs[p] for p in photos)
            only_theirs = sum(theirs[p] and not mine[p] for p in photos)
            difference = (only_mine - only_theirs) / len(photos) * 100
            print(f"    against {run.name}: {difference:+.1f} points (only this {only_mine}, only {run.name} {only_theirs}), McNemar p = {mcnemar(only_mine, only_theirs):.2g}")
    if aside_photos:
        right = sum(value[2].argmax() == value[0] for value in aside_photos.values())
        low, high = wilson(right, len(aside_photos))
        print(f"  aside, single view: {right}/{len(aside_photos)} = {right / len(aside_photos):.3f} (95 % {low:.3f}..{high:.3f})")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{args.tune_from}-seed{args.seed}.csv"
    with open(out, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["source", "label", "predicted", *(f"p_{c}" for c in classes), "single_view_predicted", *(f"single_view_p_{c}" for c in classes)])
        for photo, (label, tta, single) in sorted(photos.items()):
            writer.writerow([photo, classes[label], classes[tta.argmax()], *(f"{v:.6f}" for v in tta), classes[single.argmax()], *(f"{v:.6f}" for v in single)])
    print(f"# predictions: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
