#!/usr/bin/env bash
# Run the README's test command (`make test`) several times in a row and keep every run's log, to catch a
# flaky test: one that fails now and then with no change to the code.
#
#   bash scripts/repeat_suite.sh 10                 # ten runs, logs in build/repeat-suite/
#   BUSY_CORES=1 bash scripts/repeat_suite.sh 3      # three runs with one core kept busy by `yes`
#   OUT=/tmp/runs bash scripts/repeat_suite.sh 5     # logs elsewhere
#
# Each run's full output is kept in OUT/run-<n>.log; OUT/summary.tsv gets one line per run: its number,
# start time (UTC), the busy cores, the exit code, the wall seconds, the load average at the start and
# pytest's last line (`905 passed, 1 skipped in 185.68s`). A failed run does not stop the loop, so one
# batch shows how often a failure comes back; the script exits 1 if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."

runs="${1:-10}"
busy="${BUSY_CORES:-0}"
out="${OUT:-build/repeat-suite}"
mkdir -p "$out"
[ -f "$out/summary.tsv" ] || printf 'run\tstarted_utc\tbusy_cores\texit\twall_s\tload_at_start\tpytest\n' >"$out/summary.tsv"

hogs=()
stop_hogs() { ((${#hogs[@]})) && kill "${hogs[@]}" 2>/dev/null; hogs=(); }
trap stop_hogs EXIT

failed=0
first=$(($(ls "$out"/run-*.log 2>/dev/null | wc -l) + 1))
for ((n = first; n < first + runs; n++)); do
  for ((i = 0; i < busy; i++)); do
    yes >/dev/null &
    hogs+=($!)
  done
  log="$out/run-$n.log"
  load=$(cut -d' ' -f1 /proc/loadavg)
  started=$(date -u +%H:%M:%S)
  t0=$SECONDS
  make test >"$log" 2>&1
  code=$?
  wall=$((SECONDS - t0))
  stop_hogs
  last=$(grep -E '(passed|failed|error)' "$log" | grep -E ' in [0-9.]+s' | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$started" "$busy" "$code" "$wall" "$load" "$last" >>"$out/summary.tsv"
  echo "run $n: exit $code, ${wall} s, busy cores $busy: $last"
  if ((code != 0)); then
    failed=1
    grep -E '^(FAILED|ERROR) ' "$log" | head -20
  fi
done
exit "$failed"
