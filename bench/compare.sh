#!/usr/bin/env bash
# Run every bench/ script of an older commit and of this tree back to back,
# interleaved (old, new, old, new …), on the same machine, and keep each
# run's output with the load average it started under.
#
#   bench/compare.sh BASE_COMMIT [ROUNDS] [-- SCRIPT ARGS…]
#
# Scripts are the ones BASE_COMMIT has (a newer script has no "before").
# Each side runs its own copy of the script against its own src/ with this
# tree's virtualenv. BENCH_ONLY="delivery scaleout" limits the run to those
# scripts. Extra arguments per script come from BENCH_ARGS_<name>
# (e.g. BENCH_ARGS_delivery="--quick"). PostgreSQL scripts read
# DISPATCH_BENCH_POSTGRES_URL as usual. Output: bench-compare/<name>.<side>.<n>.txt
# and a summary of the figure lines on stdout.
set -euo pipefail
base=${1:?usage: bench/compare.sh BASE_COMMIT [ROUNDS]}
rounds=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
old=$(mktemp -d /tmp/dispatch-bench-base.XXXXXX)
out=$here/bench-compare
mkdir -p "$out"
git -C "$here" worktree add --detach "$old" "$base" >/dev/null
# Scripts that start `dispatch` processes look for the tree's own .venv.
[ -e "$here/.venv" ] && ln -s "$(readlink -f "$here/.venv")" "$old/.venv"
trap 'git -C "$here" worktree remove --force "$old" >/dev/null 2>&1 || true' EXIT

for script in "$old"/bench/*.py; do
  name=$(basename "$script" .py)
  [ -f "$here/bench/$name.py" ] || continue
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $name "* ]]; then continue; fi
  var="BENCH_ARGS_$name"
  args=${!var:-}
  for n in $(seq 1 "$rounds"); do
    for side in before after; do
      tree=$old; [ "$side" = after ] && tree=$here
      file="$out/$name.$side.$n.txt"
      {
        echo "# $name $side round $n, $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
        (cd "$tree" && PYTHONPATH="$tree/src" timeout 1200 "$python" "bench/$name.py" $args) 2>&1 \
          || echo "# exit status $?"
      } > "$file"
      echo "== $(head -1 "$file")"
      grep -vE '^\s*$|^#' "$file" | tail -12
    done
  done
done
