#!/usr/bin/env bash
# Every CUDA check in one go (< 5 minutes on one GPU): the engine's CUDA tests and mixed-precision training;
# for each built-in model, train briefly on the GPU,
# export (fp32 + int8 + fp16 variants, parity on CPU and CUDA), `zoo verify --require cuda` with PyTorch
# and from the bundle alone, then `zoo bench` with the CUDA provider. Everything printed also goes to
# OUT_FILE (default benchmarks/results/gpu_check.txt).
#
#   PYTHONPATH=. bash scripts/gpu_check.sh [OUT_FILE]
#   MODELS="gan vae" SKIP_ENGINE=1 ...   only these models, without the engine tests and precision runs
#
# Runs from a plain checkout with python3 (torch, onnx, onnxscript, onnxruntime-gpu, click, pluggy,
# safetensors, scikit-learn, tqdm importable): installs nothing and does not use .venv. When plugzoo is
# not installed, its entry points (the built-in plugins) are declared in a temporary dist-info.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/gpu_check.txt}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d /tmp/zoo-gpu-check.XXXXXX)
export PYTHONPATH="$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
export ZOO_LOAD_PLUGINS=""   # built-in models only

if ! python3 -c "import importlib.metadata as m; m.distribution('plugzoo')" 2>/dev/null; then
  dist="$work/site/plugzoo-0+checkout.dist-info"
  mkdir -p "$dist"
  printf 'Metadata-Version: 2.1\nName: plugzoo\nVersion: 0+checkout\n' > "$dist/METADATA"
  # the same entry points pyproject.toml declares (the built-in plugins)
  python3 - "$dist/entry_points.txt" <<'EOF'
import sys, tomllib
points = tomllib.load(open("pyproject.toml", "rb"))["project"]["entry-points"]["zoo"]
open(sys.argv[1], "w").write("[zoo]\n" + "".join(f"{name} = {target}\n" for name, target in points.items()))
EOF
  export PYTHONPATH="$work/site:$PYTHONPATH"
fi

exec > >(tee "$out") 2>&1
zoo() { python3 -m zoo "$@"; }
failed=()
run_step() {  # run_step NAME COMMAND...: print the command, run it, remember a failure
  local name=$1; shift
  echo; echo "### $name: $*"
  local start=$SECONDS
  if "$@"; then echo "--- $name: ok ($((SECONDS - start)) s)"; else echo "--- $name: FAILED ($((SECONDS - start)) s)"; failed+=("$name"); fi
}

echo "# zoo GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4
python3 - <<'EOF'
import platform, torch, onnx
from zoo.ort import import_onnxruntime, usable_providers
ort = import_onnxruntime()
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
      f"available {torch.cuda.is_available()}), onnx {onnx.__version__}, onnxruntime {ort.__version__}")
usable, skipped = usable_providers()
print("providers that really run:", ", ".join(usable))
for provider, reason in skipped.items():
    print(f"skipped {provider}: {reason}")
EOF

if [ -z "${SKIP_ENGINE:-}" ]; then
run_step "engine CUDA tests (fp32, bf16-mixed, 16-mixed, exact resume, deferred loss check)" \
  python3 -m pytest -q -p no:cacheprovider tests/test_engine_cuda.py
for precision in bf16-mixed 16-mixed; do
  run_step "train cnn --precision $precision" zoo train cnn --device cuda --precision "$precision" \
    --out "$work/precision-runs" --json
done
fi

models=${MODELS:-$(zoo list --json | python3 -c "import json, sys; print(' '.join(m['name'] for m in json.load(sys.stdin)))")}
echo "models: $models"
for model in $models; do
  run_step "train $model" zoo train "$model" --epochs 2 --device cuda --out "$work/runs" --json
  run_dir=$(ls -d "$work/runs/$model"-* 2>/dev/null | tail -1)
  [ -n "$run_dir" ] || continue
  run_step "export $model" zoo export "$run_dir" --out "$work/exports" --quantize int8 --fp16 --providers cpu,cuda
  bundle="$work/exports/$(basename "$run_dir")"
  [ -d "$bundle" ] || continue
  run_step "verify $model (PyTorch + vectors)" zoo verify "$bundle" --require cuda --providers cpu,cuda
  run_step "verify $model (bundle only)" zoo verify "$bundle" --require cuda --providers cpu,cuda --bundle-only
  run_step "bench $model" zoo bench "$bundle" --providers cpu,cuda --batch-sizes 1,64 --threads 4 --warmup 20 --runs 100
done

echo
if [ ${#failed[@]} -eq 0 ]; then echo "GPU check: PASSED (${SECONDS} s)"; else echo "GPU check: FAILED: ${failed[*]} (${SECONDS} s)"; fi
rm -rf "$work"
[ ${#failed[@]} -eq 0 ]
