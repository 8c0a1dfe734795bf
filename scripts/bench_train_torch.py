"""PyTorch's training rate of incept's classifier heads, for `just bench-train`.

Mirrors crates/incept-head/src/model.rs and the training step of src/train.rs: Squeeze-and-
Excitation on the channels → flatten / global average / average+max pooling → one dropout that
keeps Π(1 − pᵢ) (incept merges consecutive dropouts into one) → dense ReLU layers → logits;
cross-entropy with the configured label smoothing; SGD (momentum, no dampening), Adam (L2 decay)
or AdamW with Burn's ε = 1e-5; inputs [batch, 5, 5, 2048] channels-last, the same synthetic maps
as bench_train (about half zeros). Each timed step is what incept times: copy the batch, forward,
loss (read back), count the correct predictions, backward, optimizer step.

The bench_train example runs it right after incept's own figures for each head when the
interpreter in INCEPT_TORCH_PYTHON (default python3) can import torch, passing the head's
resolved TrainConfig as JSON. PyTorch is no dependency of incept; to get it:

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch
    /tmp/torchvenv/bin/python scripts/bench_train_torch.py --steps 12 blog

Prints `# ...` information lines, then one line per head:
`torch<TAB>head name<TAB>samples/s<TAB>parameters`.
"""

import argparse
import json
import math
import os
import sys
import time

CLASSES = 5
PER_CLASS = 160
SHAPE = (5, 5, 2048)

# Standalone use: the heads bench_train times, as its TrainConfig JSON would describe them.
DEFAULT_HEAD = {
    "se": True,
    "se_reduction": 4,
    "pooling": "gap",
    "dropout": [0.5, 0.5],
    "dense": [1024, 1024, 1024],
    "dense_dropout": 0.0,
    "ensemble": 1,
}
DEFAULT = {
    "batch_size": 32,
    "optimizer": "adamw",
    "learning_rate": 3e-4,
    "momentum": 0.9,
    "weight_decay": 1e-2,
    "label_smoothing": 0.1,
    "head": DEFAULT_HEAD,
}
BLOG = {
    **DEFAULT,
    "optimizer": "sgd",
    "learning_rate": 1e-4,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "head": {**DEFAULT_HEAD, "pooling": "flatten"},
}
GAP_ADAM = {**BLOG, "optimizer": "adam", "head": {**DEFAULT_HEAD, "pooling": "gap"}}
HEADS = {
    "default preset": DEFAULT,
    "blog: flatten, SGD+momentum, batch 32": BLOG,
    "gap, Adam, batch 32": GAP_ADAM,
}

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as error:
    print(f"cannot import torch ({error}); see this script's docstring", file=sys.stderr)
    sys.exit(2)


class Member(nn.Module):
    """One head of model.rs's `Member`. nn.Linear stores its weight [out, in] as incept's Dense
    does, and draws it from the same U(±1/√fan_in)."""

    def __init__(self, head, shape, classes):
        super().__init__()
        height, width, channels = shape
        self.pooling = head["pooling"]
        self.se = head["se"]
        if self.se:
            bottleneck = max(channels // head["se_reduction"], 1)
            self.squeeze = nn.Linear(channels, bottleneck)
            self.excite = nn.Linear(bottleneck, channels)
        features = {"flatten": height * width * channels, "gap": channels, "avgmax": 2 * channels}
        size = features[self.pooling]
        self.keep = math.prod(1.0 - p for p in head["dropout"])
        self.hidden_keep = 1.0 - head["dense_dropout"]
        self.dense = nn.ModuleList()
        for units in head["dense"]:
            self.dense.append(nn.Linear(size, units))
            size = units
        self.output = nn.Linear(size, classes)

    def gate(self, pooled):
        """[batch, C] → [batch, C] gates in (0, 1)."""
        return torch.sigmoid(self.excite(torch.relu(self.squeeze(pooled))))

    def forward(self, x):
        """[batch, H, W, C] → logits [batch, classes], with dropout (training)."""
        batch, height, width, channels = x.shape
        positions = x.reshape(batch, height * width, channels)
        if self.pooling == "flatten":
            if self.se:
                positions = positions * self.gate(positions.mean(1)).unsqueeze(1)
            features = positions.reshape(batch, height * width * channels)
        else:
            # As incept: the positive gates commute with pooling, so the pooled features are gated.
            pooled = positions.mean(1)
            gate = self.gate(pooled) if self.se else None
            if self.pooling == "gap":
                features = pooled * gate if self.se else pooled
            else:
                largest = positions.amax(1)
                if self.se:
                    pooled, largest = pooled * gate, largest * gate
                features = torch.cat([pooled, largest], 1)
        if self.keep < 1.0:
            features = F.dropout(features, p=1.0 - self.keep, training=True)
        for layer in self.dense:
            features = torch.relu(layer(features))
            if self.hidden_keep < 1.0:
                features = F.dropout(features, p=1.0 - self.hidden_keep, training=True)
        return self.output(features)


def synthetic_maps():
    """bench_train's cache: 5 classes × 160 maps, value k of sample i of class c is
    max(((k·2654435761 + 97·i + c) mod 1000) / 500 − 1, 0); [N, 5, 5, 2048] and labels [N]."""
    length = math.prod(SHAPE)
    base = (torch.arange(length, dtype=torch.int64) * 2654435761) % 1000
    offsets = torch.arange(PER_CLASS, dtype=torch.int64) * 97
    maps, labels = [], []
    for label in range(CLASSES):
        codes = (base.unsqueeze(0) + (offsets + label).unsqueeze(1)) % 1000
        maps.append((codes.to(torch.float32) / 500.0 - 1.0).clamp_min(0.0).reshape(-1, *SHAPE))
        labels.append(torch.full((PER_CLASS,), label, dtype=torch.int64))
    return torch.cat(maps), torch.cat(labels)


def make_optimizer(config, parameters, implementation):
    extra = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[implementation]
    kind, rate, decay = config["optimizer"], config["learning_rate"], config["weight_decay"]
    if kind == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=rate,
            momentum=config["momentum"],
            dampening=0.0,
            weight_decay=decay,
            **extra,
        )
    # Burn's ε (1e-5), not PyTorch's 1e-8; the rest are both libraries' defaults.
    options = {"lr": rate, "betas": (0.9, 0.999), "eps": 1e-5, "weight_decay": decay, **extra}
    if kind == "adam":
        return torch.optim.Adam(parameters, **options)
    if kind == "adamw":
        return torch.optim.AdamW(parameters, **options)
    raise ValueError(f"unknown optimizer {kind!r}")


def rate(config, maps, labels, steps, warmup, implementation):
    """Trains `warmup` untimed steps then `steps` timed ones; samples/s and the parameter count."""
    torch.manual_seed(config.get("seed", 0))
    head = config["head"]
    members = nn.ModuleList(
        Member(head, SHAPE, CLASSES) for _ in range(max(head.get("ensemble", 1), 1))
    )
    members.train()
    parameters = sum(p.numel() for p in members.parameters())
    optimizer = make_optimizer(config, members.parameters(), implementation)
    smoothing = config["label_smoothing"]
    batch_size = config["batch_size"]
    order = torch.randperm(len(labels))
    cursor, seconds, samples = 0, 0.0, 0
    for step in range(warmup + steps):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(labels)), 0
        indices = order[cursor : cursor + batch_size]
        cursor += batch_size
        started = time.perf_counter()
        x, y = maps[indices], labels[indices]  # a copy of the batch, as incept's from_data
        logits = [member(x) for member in members]
        loss = sum(F.cross_entropy(l, y, label_smoothing=smoothing) for l in logits)
        loss.item()
        combined = logits[0] if len(logits) == 1 else sum(F.softmax(l, 1) for l in logits)
        int((combined.detach().argmax(1) == y).sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            seconds += time.perf_counter() - started
            samples += len(indices)
    return samples / max(seconds, 1e-9), parameters


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "heads",
        nargs="+",
        help="head names of bench_train (or any part of one, e.g. blog); with --config, the "
        "name printed for that config",
    )
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per head")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--config", help="a TrainConfig as JSON (bench_train passes the head's)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument(
        "--optimizer-impl",
        choices=["default", "foreach", "fused"],
        default="default",
        help="PyTorch's optimizer implementation (default: PyTorch's choice for CPU tensors)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.config:
        with open(args.config, encoding="utf-8") as file:
            config = json.load(file)
        chosen = [(name, config) for name in args.heads]
    else:
        chosen = []
        for wanted in args.heads:
            matches = [(name, config) for name, config in HEADS.items() if wanted in name]
            if not matches:
                parser.error(f"no head named {wanted!r}; the heads are {', '.join(HEADS)}")
            chosen += matches
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    maps, labels = synthetic_maps()
    for name, config in chosen:
        samples_per_second, parameters = rate(
            config, maps, labels, args.steps, args.warmup, args.optimizer_impl
        )
        print(f"torch\t{name}\t{samples_per_second:.1f}\t{parameters}", flush=True)


if __name__ == "__main__":
    main()
