#!/bin/bash
# iotnas against its PyTorch peer, side by side in one run, interleaved (iotnas, peer, iotnas,
# peer...) so that a noisy neighbour hits both; prints a table of ratios (medians over rounds).
#   bench/compare.sh [BUILD_DIR] [what]    what: all (default), train, latency, accuracy, steps
# (steps: median ms per training step on random data, both sides; not in `all`)
# Environment: MODELS (default "plain-1k plain-14k plain-120k"), ROUNDS (3), EPOCHS (2, training
# throughput: the best epoch after the first), ACC_EPOCHS (10), SEEDS ("0 1 2"), ACC_THREADS (2;
# accuracy does not depend on it), BACKEND (auto).
# Needs /usr/bin/python3 with python3-torch and libopenblas0-openmp (../shared/FACTS.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build/release}
what=${2:-all}
bench=$build/bench/bench_engine
peer="/usr/bin/python3 $here/peer_torch.py"
models=${MODELS:-plain-1k plain-14k plain-120k}
rounds=${ROUNDS:-3}
epochs=${EPOCHS:-2}
acc_epochs=${ACC_EPOCHS:-10}
seeds=${SEEDS:-0 1 2}
acc_threads=${ACC_THREADS:-2}
backend=${BACKEND:-auto}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -x "$bench" ] || { echo "compare.sh: no $bench (build the bench_engine target)" >&2; exit 1; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)  backend $backend"
for m in $models; do "$bench" spec "ref:$m" >"$out/$m.json"; done

# median of field $2 over the JSON lines of file $1
med() { python3 -c "
import json,statistics,sys
v=[json.loads(l)['$2'] for l in open('$1') if l.strip()]
print(statistics.median(v) if v else float('nan'))"; }

if [ "$what" = all ] || [ "$what" = latency ]; then
  for r in $(seq "$rounds"); do
    for m in $models; do
      "$bench" latency --model "ref:$m" --backend "$backend" >>"$out/lat_i_$m"
      $peer latency --spec "$out/$m.json" >>"$out/lat_p_$m"
    done
  done
  echo
  echo "batch-1 inference latency, 1 thread (median us over $rounds rounds of 2000 forwards)"
  printf '%-11s %10s %12s %8s %14s %14s\n' model iotnas torchscript speedup "iotnas/floor" "torch/floor"
  for m in $models; do
    i=$(med "$out/lat_i_$m" median_us); p=$(med "$out/lat_p_$m" median_us)
    fi=$(med "$out/lat_i_$m" floor_multiple); fp=$(med "$out/lat_p_$m" floor_multiple)
    python3 -c "print('%-11s %10.1f %12.1f %7.2fx %14.2f %14.2f' % ('$m', $i, $p, $p/$i, $fi, $fp))"
  done
  echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if [ "$what" = steps ]; then
  for r in $(seq "$rounds"); do
    for m in $models; do
      "$bench" steps --model "ref:$m" --backend "$backend" --threads "${THREADS:-2}" \
        --samples "${SAMPLES:-100}" >>"$out/st_i_$m"
      $peer steps --spec "$out/$m.json" --threads "${THREADS:-2}" --samples "${SAMPLES:-100}" \
        >>"$out/st_p_$m"
    done
  done
  echo
  echo "training steps on random data, ${THREADS:-2} threads, batch 128 (images/s from the median step; median of $rounds rounds)"
  printf '%-11s %10s %10s %8s %16s %16s\n' model iotnas pytorch ratio "iotnas GFLOP/s" "torch GFLOP/s"
  for m in $models; do
    i=$(med "$out/st_i_$m" images_per_second); p=$(med "$out/st_p_$m" images_per_second)
    gi=$(med "$out/st_i_$m" gflops); gp=$(med "$out/st_p_$m" gflops)
    python3 -c "print('%-11s %10.0f %10.0f %7.2fx %16.1f %16.1f' % ('$m', $i, $p, $i/$p, $gi, $gp))"
  done
  echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if [ "$what" = all ] || [ "$what" = train ]; then
  for r in $(seq "$rounds"); do
    for m in $models; do
      "$bench" train --model "ref:$m" --backend "$backend" --epochs "$epochs" --threads 2 \
        >>"$out/tr_i_$m"
      $peer train --spec "$out/$m.json" --epochs "$epochs" --threads 2 >>"$out/tr_p_$m"
    done
  done
  echo
  echo "training throughput, 2 threads, batch 128 (images/s, best epoch after the first; median of $rounds rounds)"
  printf '%-11s %10s %10s %8s %16s %16s\n' model iotnas pytorch ratio "iotnas GFLOP/s" "torch GFLOP/s"
  for m in $models; do
    i=$(med "$out/tr_i_$m" images_per_second); p=$(med "$out/tr_p_$m" images_per_second)
    gi=$(med "$out/tr_i_$m" gflops); gp=$(med "$out/tr_p_$m" gflops)
    python3 -c "print('%-11s %10.0f %10.0f %7.2fx %9.1f (%3.0f%%) %9.1f (%3.0f%%)' % ('$m', $i, $p, $i/$p, $gi, $gi/2.3, $gp, $gp/2.3))"
  done
  echo "  (% of 2 x 115 GFLOP/s)  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if [ "$what" = all ] || [ "$what" = accuracy ]; then
  for s in $seeds; do
    for m in $models; do
      "$bench" train --model "ref:$m" --backend "$backend" --epochs "$acc_epochs" --seed "$s" \
        --threads "$acc_threads" >>"$out/acc_i_$m"
      $peer train --spec "$out/$m.json" --epochs "$acc_epochs" --seed "$s" \
        --threads "$acc_threads" >>"$out/acc_p_$m"
    done
  done
  echo
  echo "test accuracy after $acc_epochs epochs (SGD momentum 0.9, lr 0.05 cosine, batch 128), mean over seeds $seeds"
  printf '%-11s %10s %10s %10s   per seed (iotnas / pytorch)\n' model iotnas pytorch "diff (pt)"
  for m in $models; do
    python3 -c "
import json
i=[json.loads(l)['test_accuracy'] for l in open('$out/acc_i_$m')]
p=[json.loads(l)['test_accuracy'] for l in open('$out/acc_p_$m')]
mi,mp=sum(i)/len(i),sum(p)/len(p)
print('%-11s %10.4f %10.4f %+10.2f   %s / %s' % ('$m', mi, mp, 100*(mi-mp), ' '.join('%.4f'%x for x in i), ' '.join('%.4f'%x for x in p)))"
  done
  echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
