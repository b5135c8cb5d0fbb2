#!/usr/bin/env bash
# Measures the margin of every learning test (pytest -m learning): reruns them over seeds and ATen's CPU
# kernels (the floating-point paths of other CPUs) and prints, per test, what each run reached against
# what the test asserts. The value written beside each learning test comes from this table.
#   bash scripts/learning_margins.sh                    seeds 0-2 under native, avx2 and default
#   SEEDS="0 1 2 3 4" CAPS="avx2" bash scripts/learning_margins.sh -k sort    (extra arguments go to pytest)
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"0 1 2"}
CAPS=${CAPS:-"native avx2 default"}
log=$(mktemp)
for cap in $CAPS; do
  for seed in $SEEDS; do
    if [ "$cap" = native ]; then unset ATEN_CPU_CAPABILITY; else export ATEN_CPU_CAPABILITY=$cap; fi
    THINKBENCH_TEST_SEED=$seed .venv/bin/python -m pytest -q -s -p no:cacheprovider -m learning "$@" 2>&1 \
      | grep '^margin ' | sed "s/^margin /$cap /" | tee -a "$log"
  done
done
echo
echo "test: lowest reached over every seed and kernel setting (asserted)"
awk '{split($4, r, "="); split($5, a, ">="); key = $2; if (!(key in low) || r[2] < low[key]) low[key] = r[2]; bound[key] = a[2]; n[key]++}
     END {for (k in low) printf "  %-40s %s over %d runs (asserts >= %s)\n", k, low[k], n[k], bound[k]}' "$log" | sort
rm -f "$log"
