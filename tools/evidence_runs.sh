#!/usr/bin/env bash
# The evidence study's runs (recipes/flags/mnist_ablation.cfg), in the order the targets need
# them, as two chains of resumable commands run side by side (one per core). Every command skips
# finished cells and resumes a killed one, so rerunning this script continues where the last run
# stopped; a chain runs an IMP seed to its deepest level in one command, so that a seed finishes
# within one session. Logs go to $ROOT/chain_<a|b>.log; the table of everything finished:
#
#   python recipes/ablation.py --flagfile=recipes/flags/mnist_ablation.cfg --root=$ROOT \
#       --out=docs/ablation --collect_only
#
# Usage: tools/evidence_runs.sh [ROOT]   (default /root/tflth-runs, outside the work tree)
# A command refused as bad input (exit 2) stops its chain; a test checks every command's flags.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-/root/tflth-runs}
PY=${PYTHON:-.venv/bin/python}
SEEDS=0,1,2,3,4
mkdir -p "$ROOT"

cell() {  # chain, then the ablation flags that choose the cells
  local chain=$1; shift
  "$PY" recipes/ablation.py --flagfile=recipes/flags/mnist_ablation.cfg --root="$ROOT" --out="$ROOT/out_$chain" "$@" \
    >> "$ROOT/chain_$chain.log" 2>&1
  local status=$?
  if [ "$status" -eq 2 ]; then
    echo "chain $chain stopped: bad flags in: $*" | tee -a "$ROOT/chain_$chain.log" >&2
    exit 2
  fi
}

chain_a() {  # Bayesian trainings: the uncertainty score against |mean| and random on the same training
  cell a --methods=snr,snr:magnitude --keep=2 --seeds=$SEEDS
  cell a --methods=snr:random --keep=2 --seeds=$SEEDS
  cell a --methods=svd,svd:magnitude,horseshoe:snr,horseshoe --keep=2 --seeds=$SEEDS
  cell a --methods=snr,snr:magnitude,snr:random --keep=5,1 --seeds=$SEEDS
  cell a --methods=l0,l0:magnitude --keep=2 --seeds=$SEEDS
  cell a --methods=svd,svd:magnitude,svd:random,horseshoe:snr,horseshoe,horseshoe:random --keep=5,1 --seeds=$SEEDS
  cell a --methods=l0,l0:magnitude,l0:random --keep=5,1 --seeds=$SEEDS
}

chain_b() {  # IMP baselines, one seed at a time to the deepest level, then the one-run masked methods
  for seed in ${SEEDS//,/ }; do
    cell b --methods=imp_late --keep=10,5,2,1 --seeds=$seed
  done
  for seed in ${SEEDS//,/ }; do
    cell b --methods=imp,imp:reinit,imp:random_prune,imp:continue --keep=10,5,2,1 --seeds=$seed
  done
  cell b --methods=gradual,rigl,oneshot,snip,random,set --keep=5,2,1 --seeds=$SEEDS
  for seed in ${SEEDS//,/ }; do
    cell b --methods=imp_lr,imp_layerwise --keep=10,5,2,1 --seeds=$seed
  done
}

chain_a & chain_b & wait
