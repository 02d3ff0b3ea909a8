#!/usr/bin/env bash
# Every GPU check in one run: the CUDA tests, the device decode deviation and speed, end-to-end
# indexing images/s with ImageBind huge, the CLI on CUDA, and encoder throughput.
#
#   bash benchmarks/gpu_check.sh OUTDIR [WHEELS] [DATA]
#   STEPS="tests cli" bash benchmarks/gpu_check.sh OUTDIR      # some of: tests gpu_decode
#                                                             # gpu_ingest cli throughput
#                                                             # official fp8 levers
#                                                             # levers_autotune
#   GPU_INGEST_ARGS="--sizes 640x480:8192 --precision fp16" ...  # options added to gpu_ingest
#   SMOKE=1 bash benchmarks/gpu_check.sh OUTDIR    # a first try: throughput steps, tiny model
#
# Steps `official` (our fast path beside the official ImageBind code on the same random weights,
# all six towers, bf16 and fp16) and `fp8` (the fp8 path beside bf16) need the official code's
# wheel and what its model files import (timm, whose dependencies but torch/torchvision are
# fetched too), which are not embedstore dependencies; fetch them for the device's Python with
#   pip download --no-deps -d .whl imagebind-unofficial==0.1.1 timm
#   pip download -d .whl einops iopath ftfy regex huggingface_hub safetensors pyyaml
#
# Step `levers` measures the speed levers one at a time (`throughput --levers`, bf16, one JSON
# row per lever with items/s, peak memory, MFU, first-call seconds and the cosine to eager):
# vision at batch 64 with each SDPA kernel (flash, cuDNN, efficient, math) and CUDA graphs (75 s);
# depth/thermal/IMU at batch 128 with CUDA graphs and the flash/cuDNN kernels (60 s); compiled
# blocks (torch.compile default mode) for vision and IMU at batch 64 (120 s); the batch-size sweep
# of vision within 90% of the card's memory (45 s): at most 5 minutes. `levers_autotune`
# (max-autotune compile of vision, up to 5 more minutes) runs only when STEPS names it. With
# SMOKE=1 one call of the tiny model runs every lever but max-autotune at batch 2 (90 s).
#
# For a CUDA machine whose Python has torch, torchvision and numpy but not the rest of
# embedstore's dependencies and no network: WHEELS (default .whl) holds wheels of the missing ones
# (faiss-cpu, sqlalchemy, alembic, pydantic, pydantic-settings, soundfile and what they need) and
# DATA (default .gpudata) holds `media/` (made by `python -m benchmarks.gpu_decode --export-media`)
# and `shared/fixtures/imagebind/` (the reference model and assets the CUDA tests read), copied to
# ../shared when that is missing. Results go to OUTDIR as JSON, with the whole log in log.txt.
set -u
out=${1:?usage: gpu_check.sh OUTDIR [WHEELS] [DATA]}
wheels=${2:-.whl}
data=${3:-.gpudata}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/embedstore-site "$wheels"/*.whl || exit 1
  export PYTHONPATH="/tmp/embedstore-site:$PWD"
fi
if [ -d "$data/shared" ] && [ ! -e ../shared ]; then cp -r "$data/shared" ../shared; fi

steps=" ${STEPS:-tests gpu_decode gpu_ingest cli throughput official fp8 levers} "
# throughput-style steps: the huge model, or the tiny one for a smoke run (default steps: the
# throughput ones, about a minute, to check the wheels and code paths before the full run)
if [ -n "${SMOKE:-}" ]; then
  steps=" ${STEPS:-throughput official fp8 levers} "
  tp=(python3 -m benchmarks.throughput --config test --device cuda --warmup 0 --runs 1)
  b_big=2 b_text=2 b_small=2
else
  tp=(python3 -m benchmarks.throughput --config huge --device cuda --warmup 1 --runs 3)
  b_big=64 b_text=256 b_small=128
fi
want() { [[ $steps == *" $1 "* ]]; }

step() {  # step NAME SECONDS COMMAND...: run with a time limit, report status and seconds
  local name=$1 limit=$2 start rc
  shift 2
  echo "== $name: $*"
  start=$(date +%s)
  timeout "$limit" "$@"
  rc=$?
  echo "== $name: exit $rc after $(($(date +%s) - start)) s"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, torch.cuda.get_device_name(0))'
  nproc
  want tests && step tests 120 python3 -m pytest -p no:cacheprovider -q -m gpu \
    tests/encoders/test_imagebind_gpu.py tests/modalities/test_gpu_decode.py \
    tests/modalities/test_gpu_parallel.py tests/bind/test_train.py tests/encoders/test_levers_gpu.py \
    tests/engine/test_embed_overlap.py
  want gpu_decode && step gpu_decode 120 python3 -m benchmarks.gpu_decode --device cuda --media "$data/media" \
    --model test --model huge --out "$out/gpu-decode-cuda.json"
  want gpu_ingest && step gpu_ingest 200 python3 -m benchmarks.gpu_ingest --device cuda --media "$data/media" \
    --out "$out/gpu-ingest.json" ${GPU_INGEST_ARGS:-}
  if want cli; then  # the real CLI on CUDA: index (device JPEG decode), unchanged re-run, search
    export EMBEDSTORE_DATA_DIR=/tmp/embedstore-cli
    cli=(python3 -m cli --device cuda)
    media=("$data/media/tuxpaint-photos" "$data/media/visp-jpeg" "$data/media/sounds")
    step cli_index 45 "${cli[@]}" index "${media[@]}" -c media --encoder imagebind_test --json
    step cli_reindex 45 "${cli[@]}" index "${media[@]}" -c media --encoder imagebind_test --json
    step cli_search 45 "${cli[@]}" search --file "$data/media/imagebind-assets/001_car_image.jpg" \
      -c media -k 3 --json
  fi
  want throughput && step throughput 120 "${tp[@]}" \
    --precision bf16,fp16,fp32 --modality vision,text,audio --batch $b_big,$b_text --mode fast,official \
    --out "$out/throughput-huge.json"
  if want official; then  # the official code on the same weights, precision, batch and card
    step official_big 90 "${tp[@]}" --precision bf16,fp16 --modality vision,audio --batch $b_big \
      --mode fast,official_code --out "$out/throughput-official-vision-audio.json"
    step official_text 45 "${tp[@]}" --precision bf16,fp16 --modality text --batch $b_text \
      --mode fast,official_code --out "$out/throughput-official-text.json"
    step official_small 60 "${tp[@]}" --precision bf16,fp16 --modality depth,thermal,imu \
      --batch $b_small --mode fast,official_code --out "$out/throughput-official-small.json"
  fi
  want fp8 && step fp8 60 "${tp[@]}" --precision fp8,bf16 --modality vision,text,audio \
    --batch $b_big --mode fast --out "$out/throughput-fp8.json"
  if want levers && [ -n "${SMOKE:-}" ]; then  # every lever but max-autotune, tiny model
    step levers 90 "${tp[@]}" --precision bf16 --modality vision,imu --batch 2 \
      --levers eager,compile_default,cuda_graphs,sdpa_flash,sdpa_cudnn,sdpa_efficient,sdpa_math,batch_sweep \
      --sweep-batches 1,2,4 --out "$out/throughput-levers.json"
  elif want levers; then  # one lever at a time on ImageBind huge, bf16
    step levers_vision 75 "${tp[@]}" --precision bf16 --modality vision --batch $b_big \
      --levers eager,sdpa_flash,sdpa_cudnn,sdpa_efficient,sdpa_math,cuda_graphs \
      --out "$out/throughput-levers-vision.json"
    step levers_small 60 "${tp[@]}" --precision bf16 --modality depth,thermal,imu --batch $b_small \
      --levers eager,cuda_graphs,sdpa_flash,sdpa_cudnn --out "$out/throughput-levers-small.json"
    step levers_compile 120 "${tp[@]}" --precision bf16 --modality vision,imu --batch $b_big \
      --levers eager,compile_default --out "$out/throughput-levers-compile.json"
    step levers_sweep 45 "${tp[@]}" --precision bf16 --modality vision --sweep \
      --sweep-batches 32,64,128,256,512 --out "$out/throughput-levers-sweep.json"
  fi
  want levers_autotune && step levers_autotune 300 "${tp[@]}" --precision bf16 --modality vision \
    --batch $b_big --levers eager,compile_max_autotune_no_cudagraphs,compile_max_autotune \
    --out "$out/throughput-levers-autotune.json"
} 2>&1 | tee "$out/log.txt"
