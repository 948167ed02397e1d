#!/usr/bin/env bash
# Issue 13's GPU checks in one run (`make gpu-check`): the test suite on CUDA, the speed table (reference / fast /
# fast+compile at 200 / 500 / 1,000 bp, lab-size model) and one lab-size epoch of 0503_train1, both written into
# the GPU section of benchmarks/speed.md. Logs, JSON and the epoch's record also go to $OUT (default
# benchmarks/gpu_check/).
#
#   benchmarks/gpu_check.sh                  # all three steps
#   benchmarks/gpu_check.sh speed epoch      # some of them: tests, speed, epoch
#
# On a GPU machine without a package index (the project's device machine), prepare the wheels it lacks here with
# ../shared/tools/device-wheels.sh and carry .whl: they are installed into /tmp/site first, and the package runs
# from lib/. Elsewhere the current environment is used (PYTHON, default .venv/bin/python, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
steps=${*:-tests speed epoch}
out=${OUT:-benchmarks/gpu_check}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl 2>/dev/null \
    || { echo "installing .whl into /tmp/site failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD/lib JUPYTER_PATH=/tmp/site/share/jupyter
fi
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH=${PYTHONPATH:-$PWD/lib}
for candidate in "${SEQ2EPI_DATA:-}" shared/data ../shared/data data; do
  [ -n "$candidate" ] && [ -d "$candidate" ] && { export SEQ2EPI_DATA=$(cd "$candidate" && pwd); break; }
done
$PYTHON - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), f"no CUDA device visible to torch {torch.__version__}"
p = torch.cuda.get_device_properties(0)
print(f"{p.name}, sm{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")
PY
failed=""

if [[ " $steps " == *" tests "* ]]; then  # the device fixture adds cuda to every test that takes it
  # the cuBLAS workspace variable is read when cuBLAS starts: set before any test touches CUDA
  CUBLAS_WORKSPACE_CONFIG=:4096:8 $PYTHON -m pytest -q -rs -p no:cacheprovider ${PYTEST_ARGS:-} 2>&1 | tee "$out/pytest.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed="$failed tests"
fi

if [[ " $steps " == *" speed "* ]]; then
  $PYTHON benchmarks/speed.py --compile --out "$out/speed_gpu.json" --md benchmarks/speed.md 2>&1 \
    | tee "$out/speed.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed="$failed speed"
fi

if [[ " $steps " == *" epoch "* ]]; then  # 01-03 with one epoch: a record with its dtype in metrics.json
  before=$(ls -d executed/*_0503_train1* 2>/dev/null)
  $PYTHON -m seq2epi run 0503_train1 --stages 01,02,03 -p epochs=1 2>&1 | tee "$out/epoch.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed="$failed epoch"
  record=$(comm -13 <(echo "$before") <(ls -d executed/*_0503_train1* 2>/dev/null) | tail -1)
  if [ -n "$record" ]; then
    cp -r "$record" "$out/" && rm -rf "$out/$(basename "$record")/artifacts"
    $PYTHON - "$record" <<'PY'
import json, re, sys
from pathlib import Path
from seq2epi.lab.io import atomic_path
record = Path(sys.argv[1])
nb = json.loads((record / "02_train.ipynb").read_text())
seconds = nb["metadata"]["papermill"]["duration"]
out = "".join(t for c in nb["cells"] for o in c.get("outputs", []) for t in o.get("text", []))
setup = re.search(r"parameters on .*", out).group(0)
metrics = json.loads((record / "metrics.json").read_text())
auroc = metrics["transformer"]["auroc"]
line = (f"<!-- gpu-epoch -->\nOne lab-size epoch of `0503_train1` ({record.name}): 02_train took "
        f"{seconds:.0f} s ({setup}); test AUROC after 1 epoch {auroc:.4f}, predicted in "
        f"{metrics['precision']}.\n<!-- /gpu-epoch -->")
text = Path("benchmarks/speed.md").read_text()
text = re.sub(r"<!-- gpu-epoch -->.*?<!-- /gpu-epoch -->", lambda m: line, text, flags=re.S)
with atomic_path("benchmarks/speed.md") as tmp:
    tmp.write_text(text)
PY
  fi
fi
cp benchmarks/speed.md "$out/"
if [ -n "$failed" ]; then echo "gpu-check: failed:$failed (logs in $out)"; exit 1; fi
echo "gpu-check: done; benchmarks/speed.md holds the GPU rows (copy in $out)"
