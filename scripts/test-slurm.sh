#!/usr/bin/env bash
# End-to-end test of examples/slurm/ on a one-node Slurm cluster started here (just test-slurm):
#   1. plan 4 shards of a small photo set, run the shipped submit.sh --wait, check incept status
#      and that the merged cache equals a plain `incept extract` of the same photos;
#   2. a permanent failure (exit 2) of extract.sbatch is not retried;
#   3. kill round: SIGKILL one task mid-shard with scancel, check that incept status lists it,
#      resubmit exactly the printed indices with sbatch --array, merge (--copy), compare again.
# Environment: INCEPT (default ./target/release/incept), DATA (default ../shared/datasets/amid5,
# one folder per class), PYTHON (a python3 that finds h5py and numpy with .deps/python on its
# path; default python3), KEEP=1 keeps the temporary folder. Needs root (Slurm's daemons).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started_at=$SECONDS

absolute() { case $1 in /*) echo "$1" ;; *) echo "$root/$1" ;; esac; }
INCEPT=$(absolute "${INCEPT:-./target/release/incept}")
DATA=$(absolute "${DATA:-../shared/datasets/amid5}")
MODEL=$root/tests/fixtures/tiny_inception.onnx
PYTHON=${PYTHON:-python3}
export PYTHONPATH=$root/.deps/python${PYTHONPATH:+:$PYTHONPATH}
# The binary finds ONNX Runtime when started from the repository; jobs start elsewhere.
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ -e "$root/.deps/onnxruntime/libonnxruntime.so" ]; then
    export ORT_DYLIB_PATH=$root/.deps/onnxruntime/libonnxruntime.so
fi
export INCEPT

passed=0
reported=0
work=""
we_started_slurm=0
jobs_to_cancel=()
pass() { echo "PASS [$((SECONDS - started_at)) s]: $*"; passed=$((passed + 1)); }
fail() {
    echo "FAIL: $*"
    [ -z "$work" ] || echo "      (kept $work; job logs in $work/plan*/logs)"
    echo "test-slurm: $passed passed, 1 failed"
    reported=1
    exit 1
}
cleanup() {
    local status=$?
    if [ "$status" -ne 0 ] && [ "$reported" -eq 0 ]; then
        echo "FAIL: stopped by an unexpected error (exit $status)${work:+; kept $work}"
        echo "test-slurm: $passed passed, 1 failed"
    fi
    if [ "${#jobs_to_cancel[@]}" -gt 0 ]; then scancel "${jobs_to_cancel[@]}" 2>/dev/null || true; fi
    if [ "$we_started_slurm" -eq 1 ]; then scripts/slurm-local.sh stop || true; fi
    if [ -n "$work" ] && [ "$status" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that cleanup runs: cancel our jobs, stop what we started

# The first N lines of stdin; unlike head, reads to the end (no SIGPIPE under pipefail).
first() { awk -v n="$1" 'NR <= n'; }

# Copies the first N photos of the first 3 classes (sorted) into DEST.
pick_photos() { # N DEST
    local class count=0
    while read -r class; do
        mkdir -p "$2/$class"
        find "$DATA/$class" -maxdepth 1 -type f -iname '*.jpg' | sort | first "$1" |
            xargs -r cp -t "$2/$class/"
        count=$((count + 1))
    done < <(find "$DATA" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | first 3)
    [ "$count" -eq 3 ] || fail "$DATA has fewer than 3 class folders"
}

status_field() { # PLAN_DIR python-expression-over-d
    "$INCEPT" status "$1" --format json | "$PYTHON" -c "import json, sys; d = json.load(sys.stdin); print($2)"
}

compare() { # A B what
    local out
    if out=$("$PYTHON" scripts/compare_caches.py "$1" "$2" 2>&1); then
        pass "$3: $(tail -n 1 <<<"$out")"
    else
        fail "$3: $out"
    fi
}

# Waits until none of the given jobs is pending or running (at most $2 seconds).
drain() { # jobs seconds
    local deadline=$((SECONDS + $2))
    while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null || true)" ]; do
        [ "$SECONDS" -lt "$deadline" ] || fail "jobs $1 still queued after $2 s"
        sleep 1
    done
}

# sbatch OPTIONS..., then wait for the job (polling each second: sbatch --wait sleeps up to
# 10 s between looks). Sets $job; returns the highest exit code of its tasks (128 + signal),
# or 1 for a task that ended otherwise (cancelled) with code 0.
sbatch_wait() {
    job=$(sbatch --parsable "$@") || return 1
    job=${job%%;*}
    jobs_to_cancel+=("$job")
    drain "$job" 300
    return "$(scontrol -o show job "$job" | awk '
        { state = ""; code = 0
          for (i = 1; i <= NF; i++) {
              if ($i ~ /^JobState=/) state = substr($i, 10)
              if ($i ~ /^ExitCode=/) { split(substr($i, 10), c, ":"); code = c[2] > 0 ? 128 + c[2] : c[1] }
          }
          if (code == 0 && state != "COMPLETED") code = 1
          if (code > worst) worst = code }
        END { print worst + 0 }')"
}

[ -x "$INCEPT" ] || fail "no incept binary at $INCEPT (cargo build --release -p incept-cli)"
[ -d "$DATA" ] || fail "no photos at $DATA (set DATA)"
"$PYTHON" -c 'import h5py, numpy' 2>/dev/null || fail "$PYTHON cannot import h5py and numpy (scripts/setup.sh)"

if scripts/slurm-local.sh status >/dev/null 2>&1; then
    echo "test-slurm: using the Slurm cluster that is already running"
else
    we_started_slurm=1
    scripts/slurm-local.sh start || fail "scripts/slurm-local.sh start"
fi
pass "slurm is up: $(sinfo -h -o '%P %D node(s) %c CPUs %T')"
work=$(mktemp -d /tmp/incept-test-slurm.XXXXXX)
sbatch_common=(--cpus-per-task=1 --chdir="$work")
# Read by sbatch; overrides the scripts' --mem, in case this node has less than they ask.
export SBATCH_MEM_PER_NODE=1G

# --- Round 1: submit.sh --wait, status, merge, compare with a plain extraction ---------------
pick_photos 4 "$work/data1"
"$INCEPT" plan "$work/data1" -o "$work/plan1" --shards 4 --copies 1 --model "$MODEL" >/dev/null 2>&1 ||
    fail "incept plan"
"$INCEPT" plan "$work/data1" -o "$work/plan1" --shards 4 --copies 1 --model "$MODEL" >/dev/null 2>&1 ||
    fail "planning again with the same arguments is not a no-op"
rc=0
"$INCEPT" plan "$work/data1" -o "$work/plan1" --shards 5 --copies 1 --model "$MODEL" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "planning again with other arguments exited $rc, not 2"
pass "incept plan: 4 shards; same arguments again is a no-op, other arguments exit 2"

# Relative paths from another folder: submit.sh must hand absolute ones to the jobs.
# ARRAY_CHUNK=3 splits the 4 shards into two arrays, so --shard-offset is exercised too.
rc=0
(cd "$work" && MAX_PARALLEL=2 CPUS_PER_TASK=1 ARRAY_CHUNK=3 POLL_SECONDS=1 \
    "$root/examples/slurm/submit.sh" --wait plan1 merged1.h5) >"$work/submit1.out" 2>&1 || rc=$?
sed 's/^/    /' "$work/submit1.out"
[ "$rc" -eq 0 ] || fail "examples/slurm/submit.sh --wait exited $rc"
pass "submit.sh --wait: two arrays (offsets 0 and 3) and the merge job succeeded"

done_count=$(status_field "$work/plan1" 'd["done"], d["missing_array"] or "-"')
[ "$done_count" = "4 -" ] || fail "incept status plan1: done/missing = $done_count, want 4 -"
pass "incept status: 4 of 4 shards done, none missing"

touch "$work/before-rerun"
sleep 1
"$INCEPT" extract --plan "$work/plan1" --shard 2 >/dev/null 2>&1 || fail "rerun of a done shard failed"
changed=$(find "$work/plan1/shards" -newer "$work/before-rerun" | first 3)
[ -z "$changed" ] || fail "rerun of a done shard changed: $changed"
pass "rerunning a done shard exits 0 and touches nothing"

"$INCEPT" extract "$work/data1" -o "$work/plain1.h5" --copies 1 --model "$MODEL" >/dev/null 2>&1 ||
    fail "plain incept extract"
compare "$work/merged1.h5" "$work/plain1.h5" "merged (virtual dataset) = plain extraction"

# --- Permanent failure: index out of range exits 2 and is not requeued ----------------------
rc=0
sbatch_wait --array=7 "${sbatch_common[@]}" --output="$work/plan1/logs/out-of-range-%A_%a.log" \
    --export="ALL,PLAN_DIR=$work/plan1,SHARD_OFFSET=0" examples/slurm/extract.sbatch || rc=$?
restarts=$(scontrol -o show job "$job" 2>/dev/null | grep -o 'Restarts=[0-9]*' | first 1)
[ "$rc" -eq 2 ] || fail "array task 7 of a 4-shard plan exited $rc, not 2"
[ "$restarts" = Restarts=0 ] || fail "the permanent failure was requeued ($restarts)"
pass "extract.sbatch: index out of range exits 2 and is not requeued"

# --- Round 2: kill a task mid-shard, resubmit what incept status prints ----------------------
# Shards large enough (1,125 samples, a few seconds, 256 per piece) to catch one mid-way.
pick_photos 250 "$work/data2"
"$INCEPT" plan "$work/data2" -o "$work/plan2" --shards 4 --copies 5 --model "$MODEL" >/dev/null 2>&1 ||
    fail "incept plan (round 2)"
ids=$(cd "$work" && MAX_PARALLEL=2 CPUS_PER_TASK=1 EXTRACT_ARGS="--batch-size 2" \
    "$root/examples/slurm/submit.sh" plan2 2>/dev/null | sed -n 's/^extract_jobs=//p')
[ -n "$ids" ] || fail "submit.sh plan2 printed no job id"
jobs_to_cancel+=("$ids")

# Kill the first running task that has written part of its shard (a piece, not the marker);
# should it finish before the signal lands, try the next one.
victim=""
deadline=$((SECONDS + 120))
while [ -z "$victim" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "no task was caught mid-shard within 120 s"
    [ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null || true)" ] ||
        fail "all shards finished before one could be killed mid-shard (use more photos)"
    states=$(status_field "$work/plan2" '" ".join(d["states"])')
    read -ra state <<<"$states"
    for task in $(squeue -h -j "$ids" -t RUNNING -o %K 2>/dev/null); do
        if [ "${state[$task]}" = partial ]; then
            scancel --signal=KILL "${ids}_$task"
            sleep 1
            state_after=$(status_field "$work/plan2" 'd["states"]['"$task"']')
            if [ "$state_after" = "done" ]; then
                echo "test-slurm: task $task finished before the kill landed; trying another"
                continue
            fi
            victim=$task
            break
        fi
    done
    sleep 0.2
done
drain "$ids" 300
state_after=$(status_field "$work/plan2" 'd["states"]['"$victim"']')
pass "scancel --signal=KILL of task ${ids}_$victim mid-shard; the other tasks finished"

missing=$("$INCEPT" status "$work/plan2" | sed -n 's/^missing: //p')
[ "$missing" = "$victim" ] || fail "incept status lists missing '$missing', want '$victim' ($state_after)"
pass "incept status lists the killed shard: missing: $missing ($state_after)"

rc=0
sbatch_wait --array="$missing" "${sbatch_common[@]}" --output="$work/plan2/logs/extract-%A_%a.log" \
    --export="ALL,PLAN_DIR=$work/plan2,SHARD_OFFSET=0,EXTRACT_ARGS=--batch-size 2" \
    examples/slurm/extract.sbatch || rc=$?
[ "$rc" -eq 0 ] || fail "resubmitted array $missing exited $rc"
log=$work/plan2/logs/extract-${job}_$victim.log
grep -Eq '(^|[^0-9])[1-9][0-9]* samples cached or pending' "$log" ||
    fail "the rerun of shard $victim did not resume from its pieces: $(grep -m 1 'cached or pending' "$log")"
done_count=$(status_field "$work/plan2" 'd["done"], d["missing_array"] or "-"')
[ "$done_count" = "4 -" ] || fail "incept status plan2 after the rerun: done/missing = $done_count"
pass "sbatch --array=$missing resumed the shard ($(grep -m 1 -o '[0-9]* samples cached or pending' "$log")); 4 of 4 done"

rc=0
sbatch_wait "${sbatch_common[@]}" --output="$work/plan2/logs/merge-%j.log" \
    --export="ALL,PLAN_DIR=$work/plan2,CACHE=$work/merged2.h5,MERGE_COPY=1" \
    examples/slurm/merge.sbatch || rc=$?
if [ "$rc" -ne 0 ] || [ ! -s "$work/merged2.h5" ]; then fail "merge.sbatch (MERGE_COPY=1) exited $rc"; fi
virtual=$("$PYTHON" -c 'import h5py, sys; print(h5py.File(sys.argv[1], "r")["features"].is_virtual)' "$work/merged2.h5")
[ "$virtual" = False ] || fail "MERGE_COPY=1 wrote a virtual dataset"
pass "merge.sbatch with MERGE_COPY=1 wrote one self-contained cache"

"$INCEPT" extract "$work/data2" -o "$work/plain2.h5" --copies 5 --model "$MODEL" >/dev/null 2>&1 ||
    fail "plain incept extract (round 2)"
compare "$work/merged2.h5" "$work/plain2.h5" "merged after kill and resubmit = plain extraction"

echo "test-slurm: $passed passed, 0 failed"
echo "test-slurm: took $((SECONDS - started_at)) s"
