#!/usr/bin/env bash
# Every GPU check in one run: the CUDA tests, the device decode deviation and speed, end-to-end
# indexing images/s with ImageBind huge, the CLI on CUDA, and encoder throughput.
#
#   bash benchmarks/gpu_check.sh OUTDIR [WHEELS] [DATA]
#   STEPS="tests cli" bash benchmarks/gpu_check.sh OUTDIR      # some of: tests gpu_decode
#                                                             # gpu_ingest cli throughput
#   GPU_INGEST_ARGS="--sizes 640x480:8192 --precision fp16" ...  # options added to gpu_ingest
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

steps=" ${STEPS:-tests gpu_decode gpu_ingest cli throughput} "
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
    tests/modalities/test_gpu_parallel.py tests/bind/test_train.py
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
  want throughput && step throughput 120 python3 -m benchmarks.throughput --config huge --device cuda \
    --precision bf16,fp16,fp32 --modality vision,text,audio --batch 64,256 --mode fast,official \
    --warmup 1 --runs 3 --out "$out/throughput-huge.json"
} 2>&1 | tee "$out/log.txt"
