#!/usr/bin/env bash
# bench/gpu: on a machine with an NVIDIA GPU (sm_80 or sm_90), build the CUDA backend and the
# check driver, check every kernel and one training step against the CPU engine, then time
# herd and PyTorch on the ~125M, ~350M and ~1B presets at sequence length 2048.
# Needs nvcc, cuBLAS, python3 with torch; nothing from the network. A few minutes in all.
#   bash bench/gpu/run.sh            everything
#   STEPS=5 PRESETS="llama-125m" bash bench/gpu/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="${OUT:-$root/bench/gpu/out}"
mkdir -p "$out"
build="$root/native/build-gpu"
mkdir -p "$build"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
cuda_home="$(cd "$(dirname "$nvcc")/.." && pwd)"
arch="${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}"
steps="${STEPS:-10}"
presets="${PRESETS:-llama-125m llama-350m llama-1b}"
echo "== $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader), sm_$arch, $(date -u +%F)"

# cuBLAS and NCCL may live in the CUDA toolkit or in PyTorch's nvidia wheels.
wheels="$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)"
libpath="$cuda_home/lib64"
for d in "$wheels"/nvidia/*/lib "$wheels"/nvidia/cu*/lib; do [ -d "$d" ] && libpath="$libpath:$d"; done
export LD_LIBRARY_PATH="$libpath:${LD_LIBRARY_PATH:-}"
cublas_dir=""
for d in ${libpath//:/ }; do [ -e "$d/libcublasLt.so.13" ] || [ -e "$d/libcublasLt.so" ] && { cublas_dir="$d"; break; }; done
[ -n "$cublas_dir" ] || { echo "no libcublasLt found in $libpath" >&2; exit 1; }
cublaslt="$(ls "$cublas_dir"/libcublasLt.so* | head -1)"

echo "== build (nvcc $("$nvcc" --version | grep -o 'release [0-9.]*'))"
t0=$(date +%s)
objs=()
for f in native/cuda/*.cu; do
  o="$build/$(basename "$f").o"
  "$nvcc" -c "$f" -o "$o" -O3 -std=c++17 -I native/src -gencode "arch=compute_$arch,code=sm_$arch" \
    -Xcompiler -fPIC &
  objs+=("$o")
done
wait
"$nvcc" -shared -o "$build/libherd_cuda.so" "${objs[@]}" "$cublaslt" -ldl
g++ -O2 -std=c++17 -fopenmp -I bench/gpu/cblas -I native/src -I native/cuda bench/gpu/check.cc \
  native/src/engine/model.cc native/src/engine/optimizer.cc native/src/engine/cuda_device.cc \
  -o "$build/herd-gpu-bench" \
  -L"$build" -lherd_cuda -Wl,-rpath,"$build" -ldl
echo "built in $(( $(date +%s) - t0 )) s"

echo "== kernel and training-step checks against the CPU engine"
set +e
"$build/herd-gpu-bench" check | tee "$out/check.txt"
check_rc=${PIPESTATUS[0]}
set -e

echo "== speed: $steps steps per run after 2 warm-up steps"
: > "$out/speed.jsonl"
for p in $presets; do
  read -r dim layers heads kv ffn vocab seq < <(python3 -c "import json,sys; c=json.load(open('bench/gpu/presets.json'))['$p']; print(c['dim'],c['nLayers'],c['nHeads'],c['nKvHeads'],c['ffnHidden'],c['vocabSize'],c['maxSeqLen'])")
  batch=$([ "$p" = llama-1b ] && echo "${BATCH_1B:-8}" || echo "${BATCH:-8}")
  # The first preset also runs with the CUDA-core attention kernels: the tensor cores' gain.
  impls="herd pytorch"
  [ "$p" = "${presets%% *}" ] && impls="herd herd-simt pytorch"
  for impl in $impls; do
    if [ $impl != pytorch ]; then
      attention=$([ $impl = herd-simt ] && echo simt || echo tensor)
      line=$(HERD_CUDA_ATTENTION=$attention "$build/herd-gpu-bench" speed "$dim" "$layers" "$heads" "$kv" "$ffn" "$vocab" "$seq" "$batch" "$steps" 2>"$out/err.txt" || echo "{\"impl\":\"herd\",\"batch\":$batch,\"seq\":$seq,\"error\":\"$(tail -1 "$out/err.txt" | tr -d '"')\"}")
      line="${line/\"impl\":\"herd\"/\"impl\":\"$impl\"}"
    else
      line=$(python3 bench/gpu/torch_llama.py "$(python3 -c "import json; print(json.dumps(json.load(open('bench/gpu/presets.json'))['$p']))")" "$batch" "$steps" 2>"$out/err.txt" || echo "{\"impl\":\"pytorch\",\"batch\":$batch,\"seq\":$seq,\"error\":\"failed: $(tail -1 "$out/err.txt" | tr -d '"')\"}")
    fi
    echo "${line%\}},\"preset\":\"$p\"}" | tee -a "$out/speed.jsonl"
  done
done

echo "== results (MFU: 6N + 12·L·d·T FLOPs per token over 989 TFLOP/s, H100 SXM bf16 dense)"
python3 bench/gpu/table.py bench/gpu/presets.json "$out/speed.jsonl" | tee "$out/table.txt"
grep -E "^(PASS|FAIL)" "$out/check.txt" || true
exit "$check_rc"
