#!/usr/bin/env bash
# The figures that depend on the machine, in one run, for a machine you have for a short time (issue 20):
# OpenBLAS's kernels, the RSA goals (and where the RDM movie's time goes), the recording overheads, 1 vs 2
# threads and, where CUDA is, the GPU path. Each step has its own time limit, so a slow one leaves the rest
# their time; logs and this run's results files go to DIR (results files under their machine kind's name, so that runs of two
# kinds never overwrite each other).
#
#   bash scripts/machine_figures.sh DIR            # about 8 minutes on an Intel Xeon with an H100
#   bash scripts/machine_figures.sh DIR --quick    # smaller sizes: a smoke run (its results are not saved)
set -u
out=${1:?usage: bash scripts/machine_figures.sh DIR [--quick]}
quick=${2:-}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
kind=$(cd benchmarks && python -c "import _machine; print(_machine.machine_kind())")
touch "$out/.started"  # results files written after this are this run's

step() {  # step NAME SECONDS COMMAND...: run with a time limit, its output to the screen and DIR/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
}

step machine 60 rnnprobe machine --kernels  # OpenBLAS's kernels timed: is its pick the fastest here?
OMP_NUM_THREADS=1 step rsa 240 python benchmarks/rsa_vs_rsatoolbox.py --repeats 1 $quick
OMP_NUM_THREADS=1 step movie_paths 90 python benchmarks/movie_paths.py  # where the RDM movie's time goes
OMP_NUM_THREADS=1 step record_overhead 300 python benchmarks/record_overhead.py $quick
step threads 240 python benchmarks/threads.py --repeats 3 $quick  # sets its own thread counts
if python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    OMP_NUM_THREADS=1 step gpu_check 300 python scripts/gpu_check.py ${quick:+--small}
fi
find benchmarks/results/"$kind" -name '*.json' -newer "$out/.started" 2>/dev/null | while read -r file; do
    cp "$file" "$out/$kind-$(basename "$file")"
done
echo "logs and $kind's results files in $out"
