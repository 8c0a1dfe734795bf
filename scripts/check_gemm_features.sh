#!/usr/bin/env bash
# The matrix products of Burn's flex backend (the default) run on `gemm`; incept-head names
# gemm only to switch on its AVX-512 kernels (`x86-v4`, chosen at run time). A Burn upgrade that
# moved flex to another gemm version would leave the feature on a gemm nothing uses and silently
# halve training speed on AVX-512 machines: this fails instead. Run by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
flex_gemm=$(cargo tree --locked --offline -p burn-flex -e normal --depth 1 --prefix none -f '{p}' \
    | grep -E '^gemm v' | head -n 1 | cut -d' ' -f2)
if [ -z "$flex_gemm" ]; then
    echo "check-gemm: burn-flex no longer depends on gemm; review the x86-v4 switch in crates/incept-head/Cargo.toml" >&2
    exit 1
fi
features=$(cargo tree --locked --offline -p incept-head -e features,normal --prefix none -f '{p} [{f}]' \
    | grep -E "^gemm $flex_gemm \[" | head -n 1)
case "$features" in
    *x86-v4*) echo "check-gemm: burn-flex's gemm $flex_gemm has x86-v4 on" ;;
    *)
        echo "check-gemm: burn-flex uses gemm $flex_gemm, built without x86-v4 ($features);" \
            "set crates/incept-head/Cargo.toml's gemm version to ${flex_gemm#v}" >&2
        exit 1
        ;;
esac
