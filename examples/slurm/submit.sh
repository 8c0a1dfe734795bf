#!/usr/bin/env bash
# Submits the extraction of a plan as Slurm array job(s), then the merge once all succeeded.
#   examples/slurm/submit.sh [--wait] PLAN_DIR [CACHE.h5]
# PLAN_DIR comes from `incept plan DATA_DIR -o PLAN_DIR --shards S ...`, on a shared filesystem.
# Without CACHE.h5 no merge job is submitted. --wait blocks until the jobs end and exits 0 only
# if every shard is done (and the cache was written). Prints extract_jobs=ID,... and merge_job=ID.
# Environment:
#   MAX_PARALLEL   tasks of one array running at once (default 4)
#   CPUS_PER_TASK  CPUs (and ONNX Runtime threads) per task (default: extract.sbatch's)
#   INCEPT         the incept binary as the nodes see it (default: incept on their PATH)
#   ARRAY_CHUNK    tasks per array (default: MaxArraySize - 1 of the cluster)
#   MERGE_COPY=1   merge into one self-contained file instead of a virtual dataset
#   EXTRACT_ARGS   more incept extract options, e.g. "--batch-size 64 --device cuda"
#   SBATCH_PARTITION, SBATCH_ACCOUNT, ...: read by sbatch itself
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

wait_jobs=0
if [ "${1:-}" = --wait ]; then
    wait_jobs=1
    shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    sed -n '2,3p' "$0" >&2
    exit 2
fi
say() { printf 'submit: %s\n' "$*" >&2; }
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

plan=$(absolute "$1")
cache=${2:+$(absolute "$2")}
[ -f "$plan/plan.json" ] || { say "$plan/plan.json not found; run incept plan first"; exit 2; }
incept=${INCEPT:-incept}
# A relative path to the binary would be resolved in each job's working folder.
case $incept in */*) incept=$(absolute "$incept") ;; esac

# The shard count: the top-level "shards" field of plan.json.
if command -v python3 >/dev/null; then
    shards=$(python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["shards"]))' "$plan/plan.json")
else
    shards=$(sed -n 's/^ *"shards": *\([0-9][0-9]*\).*/\1/p;T;q' "$plan/plan.json")
fi
[ "${shards:-0}" -gt 0 ] || { say "no shard count in $plan/plan.json"; exit 2; }

# An array index must stay below MaxArraySize (1001 unless the admin changed it): larger
# plans are split into several arrays, each told where it starts with SHARD_OFFSET.
chunk=${ARRAY_CHUNK:-}
if [ -z "$chunk" ]; then
    max_array=$(scontrol show config | awk '$1 == "MaxArraySize" {print $3}')
    chunk=$((${max_array:-1001} - 1))
fi
max_parallel=${MAX_PARALLEL:-4}
cpus=()
[ -n "${CPUS_PER_TASK:-}" ] && cpus=(--cpus-per-task="$CPUS_PER_TASK")
mkdir -p "$plan/logs"

ids=()
for ((offset = 0; offset < shards; offset += chunk)); do
    count=$((shards - offset < chunk ? shards - offset : chunk))
    # Each array has its own %limit: with k arrays, up to k * MAX_PARALLEL tasks run at once.
    id=$(sbatch --parsable --array="0-$((count - 1))%$max_parallel" "${cpus[@]}" \
        --output="$plan/logs/extract-%A_%a.log" \
        --export="ALL,PLAN_DIR=$plan,SHARD_OFFSET=$offset,INCEPT=$incept" \
        "$here/extract.sbatch")
    id=${id%%;*} # --parsable prints "id;cluster" on multi-cluster setups
    ids+=("$id")
    say "extract job $id: shards $offset-$((offset + count - 1)) of $shards, $max_parallel at a time"
done
printf 'extract_jobs=%s\n' "$(IFS=,; echo "${ids[*]}")"

all=("${ids[@]}")
if [ -n "$cache" ]; then
    # afterok over an array waits for every task; --kill-on-invalid-dep cancels the merge
    # instead of leaving it pending forever when a shard fails (rerun it, then merge).
    merge=$(sbatch --parsable --dependency="afterok:$(IFS=:; echo "${ids[*]}")" \
        --kill-on-invalid-dep=yes --output="$plan/logs/merge-%j.log" \
        --export="ALL,PLAN_DIR=$plan,CACHE=$cache,INCEPT=$incept,MERGE_COPY=${MERGE_COPY:-}" \
        "$here/merge.sbatch")
    merge=${merge%%;*}
    all+=("$merge")
    say "merge job $merge -> $cache once all shards succeeded"
    printf 'merge_job=%s\n' "$merge"
fi
[ "$wait_jobs" -eq 1 ] || exit 0

# Wait until none of the jobs is pending or running. (sbatch --wait is no use here: it
# returns 0 for a merge job cancelled because a shard failed.)
list=$(IFS=,; echo "${all[*]}")
while [ -n "$(squeue -h -j "$list" -o %i 2>/dev/null || true)" ]; do
    sleep "${POLL_SECONDS:-5}"
done

# Judge by the outcome on disk, which outlives Slurm's memory of finished jobs.
failed=0
if ! summary=$("$incept" status "$plan"); then
    say "incept status $plan failed"
    exit 1
fi
# Its line `missing: 3,17,203-205` (shards not done) is there only when some are.
missing=$(sed -n 's/^missing: //p' <<<"$summary")
if [ -n "$missing" ]; then
    say "shards not done: $missing (logs: $plan/logs); rerun them: see examples/slurm/README.md"
    failed=1
fi
if [ -n "$cache" ]; then
    state=$(scontrol -o show job "$merge" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
    # Slurm cancels the merge when a shard failed (--kill-on-invalid-dep) and then forgets it.
    if [ ! -e "$cache" ] || { [ -n "$state" ] && [ "$state" != COMPLETED ]; }; then
        say "merge job $merge ${state:-did not complete} (log, if it ran: $plan/logs/merge-$merge.log)"
        failed=1
    fi
fi
[ "$failed" -eq 0 ] && say "all $shards shards done${cache:+, cache $cache}"
exit "$failed"
