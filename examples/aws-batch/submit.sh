#!/usr/bin/env bash
# Submits a plan's extraction to AWS Batch as array job(s), then the merge that depends on them.
#   JOB_QUEUE=my-queue examples/aws-batch/submit.sh SHARDS|PLAN.json [CACHE]
# SHARDS is the plan's shard count (or give a local copy of its plan.json). Paths are as the
# containers see the EFS file system: PLAN (default /work/plan) and CACHE (default
# /work/cache/features.h5). Register the two job definitions first (README.md).
# Prints extract_jobs=ID,... and merge_job=ID.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    sed -n '2,3p' "$0" >&2
    exit 2
fi
: "${JOB_QUEUE:?set JOB_QUEUE to the AWS Batch job queue}"
plan=${PLAN:-/work/plan}
cache=${2:-/work/cache/features.h5}
say() { printf 'submit: %s\n' "$*" >&2; }

if [ -f "$1" ]; then
    shards=$(python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["shards"]))' "$1")
else
    shards=$1
fi
case $shards in '' | *[!0-9]*) say "not a shard count: $shards"; exit 2 ;; esac

# An array job holds 2 to 10000 children: larger plans are split, each part told its first
# shard (--shard-offset); a plan of one shard runs as a plain job with --shard 0.
chunk=${ARRAY_CHUNK:-10000}
ids=()
for ((offset = 0; offset < shards; offset += chunk)); do
    count=$((shards - offset < chunk ? shards - offset : chunk))
    if [ "$count" -ge 2 ]; then
        array=(--array-properties "size=$count")
        shard=auto
    else
        array=()
        shard=$offset
    fi
    id=$(aws batch submit-job --job-name "incept-extract-$offset" --job-queue "$JOB_QUEUE" \
        --job-definition incept-extract "${array[@]}" \
        --parameters "plan=$plan,shard=$shard,offset=$([ "$shard" = auto ] && echo "$offset" || echo 0)" \
        --query jobId --output text)
    ids+=("$id")
    say "extract job $id: shards $offset-$((offset + count - 1)) of $shards"
done
printf 'extract_jobs=%s\n' "$(IFS=,; echo "${ids[*]}")"

# Depending on an array job (no type) waits for all of its children and fails if one fails.
depends=()
for id in "${ids[@]}"; do depends+=("jobId=$id"); done
merge=$(aws batch submit-job --job-name incept-merge --job-queue "$JOB_QUEUE" \
    --job-definition incept-merge --depends-on "${depends[@]}" \
    --parameters "plan=$plan,cache=$cache" --query jobId --output text)
say "merge job $merge -> $cache once all shards succeeded"
printf 'merge_job=%s\n' "$merge"
