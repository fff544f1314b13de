#!/bin/bash
# Kill and resume: fashion_mnist killed with SIGKILL at random moments (after its first step checkpoint), resumed
# from its last checkpoint each time, must end with parameters bit for bit equal to an uninterrupted run's (the
# "Parameter checksum" line). Then SIGTERM to one rank: the run must save at the next step, say so and exit
# non-zero, and resuming from that checkpoint must end bit for bit equal too. With NP 2 the runs are
# `MPIEXEC... -n 2 fashion_mnist --ddp` and the signals go to one rank only.
#
# Usage: check_fashion_mnist_kill_resume.sh FASHION_MNIST WORK_DIR NP [MPIEXEC and its flags...]
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 FASHION_MNIST WORK_DIR NP [MPIEXEC FLAGS...]" >&2
  exit 2
fi
exe=$1 work=$2 np=$3
shift 3
launcher=("$@")
# Small enough to keep the test well under a minute on two busy cores, long enough for kills to land mid-run.
flags=(--limit 3072 --epochs 3 --batch-size 32 --threads 1 --workers 1 --log-every 1000000 --device cpu --seed 5)
every=4
kills=2
# Each run may take this long before the test calls it hung.
run_limit=240

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
rm -rf "$work"
mkdir -p "$work"
run_pid=
# A failing test leaves no run behind.
trap '[ -z "$run_pid" ] || { ranks_of_run | xargs -r kill -9; kill -9 "$run_pid"; } 2>/dev/null || true' EXIT

# Starts a run in the background (pid in $run_pid); its output goes to $1.
start_run() {
  local log=$1
  shift
  if ((np > 1)); then
    timeout -s KILL "$run_limit" "${launcher[@]}" -n "$np" "$exe" --ddp "${flags[@]}" "$@" >"$log" 2>&1 &
  else
    timeout -s KILL "$run_limit" "$exe" "${flags[@]}" "$@" >"$log" 2>&1 &
  fi
  run_pid=$!
}

# The training processes of the run started last (timeout > [mpiexec >] fashion_mnist ranks), lowest pid first.
ranks_of_run() {
  if ((np > 1)); then
    pgrep -P "$(pgrep -P "$run_pid" | head -1)" | sort -n
  else
    pgrep -P "$run_pid"
  fi
}

checksum_of() {
  grep -o 'Parameter checksum: crc32 [0-9a-f]*' "$1" || fail "no parameter checksum in $1:
$(cat "$1")"
}

# The inode of the checkpoint (each save renames a new file into place), or "none".
inode() { stat -c %i "$1" 2>/dev/null || echo none; }

# Waits until the checkpoint `$1` is replaced (its inode differs from `$2`); false if the run ended first.
wait_for_new_checkpoint() {
  while [ "$(inode "$1")" = "$2" ]; do
    kill -0 "$run_pid" 2>/dev/null || return 1
    sleep 0.02
  done
}

start=$SECONDS
# The uninterrupted run saves checkpoints too (elsewhere), to measure how long a run trains after its first one.
start_run "$work/straight.log" --checkpoint "$work/straight.safetensors" --checkpoint-every "$every"
wait_for_new_checkpoint "$work/straight.safetensors" none || true
first_checkpoint_ns=$(date +%s%N)
wait "$run_pid" || fail "the uninterrupted run failed:
$(cat "$work/straight.log")"
window_ms=$((($(date +%s%N) - first_checkpoint_ns) / 1000000))
expected=$(checksum_of "$work/straight.log")
echo "uninterrupted: $expected (trained $window_ms ms after its first checkpoint)"

# SIGKILL at random moments after a checkpoint, then resume; the last resume runs to the end. The random delay is
# bounded by half of that window so that a kill lands on a fast machine too; when the run still ends before the
# first kill, the chain starts again from nothing with half the bound (the last attempt kills at once).
ck=$work/state.safetensors
landed=0
max_delay_ms=$((window_ms / 2 < 400 ? window_ms / 2 : 400))
for ((attempt = 1; attempt <= 5 && landed == 0; ++attempt)); do
  ((attempt < 5)) || max_delay_ms=0
  rm -f "$ck"
  for ((round = 1; round <= kills; ++round)); do
    before=$(inode "$ck")
    resume=()
    [ "$before" = none ] || resume=(--resume "$ck")
    start_run "$work/kill$round.log" --checkpoint "$ck" --checkpoint-every "$every" "${resume[@]}"
    if ! wait_for_new_checkpoint "$ck" "$before"; then
      wait "$run_pid" || true
      break  # the run ended (the rest of the data was shorter than a checkpoint interval)
    fi
    delay=$(printf '0.%03d' $((RANDOM % (max_delay_ms + 1))))  # max_delay_ms is at most 400
    sleep "$delay"
    mapfile -t pids < <(ranks_of_run)
    if ((${#pids[@]} == 0)); then  # it ended during the delay (a fast machine)
      wait "$run_pid" || fail "round $round: the run failed:
$(cat "$work/kill$round.log")"
      echo "attempt $attempt round $round: the run finished before the kill ($delay s after a checkpoint)"
      break
    fi
    victim=${pids[$((RANDOM % ${#pids[@]}))]}
    kill -9 "$victim" 2>/dev/null || true
    if wait "$run_pid"; then
      echo "attempt $attempt round $round: the run finished before the kill ($delay s after a checkpoint)"
      break
    fi
    landed=$((landed + 1))
    echo "attempt $attempt round $round: killed rank pid $victim $delay s after a checkpoint"
  done
  max_delay_ms=$((max_delay_ms / 2))
done
((landed > 0)) || fail "no kill landed before the run ended"
[ -e "$ck" ] || fail "no checkpoint was written"
ls "$work" | grep -q '\.tmp\.' && echo "note: a killed save left a temporary (removed by the next save)"
start_run "$work/final.log" --checkpoint "$ck" --checkpoint-every "$every" --resume "$ck"
wait "$run_pid" || fail "the final resume failed:
$(cat "$work/final.log")"
grep -q "Resumed from" "$work/final.log" || fail "the final run did not resume:
$(cat "$work/final.log")"
got=$(checksum_of "$work/final.log")
[ "$got" = "$expected" ] || fail "after $landed kills and resumes: $got, uninterrupted: $expected"
echo "after $landed kills: $got"

# SIGTERM to one rank (the last): every rank stops at the same step, the state is saved there, the exit is non-zero.
term=$work/term.safetensors
start_run "$work/term.log" --checkpoint "$term" --checkpoint-every "$every"
# Its first checkpoint says it is training (its output is buffered in the file until it ends).
wait_for_new_checkpoint "$term" none || fail "the run to be stopped ended before its first checkpoint:
$(cat "$work/term.log")"
mapfile -t pids < <(ranks_of_run)
kill -TERM "${pids[-1]}"
rc=0
wait "$run_pid" || rc=$?
grep -q "stopped by SIGTERM" "$work/term.log" || fail "no stop message after SIGTERM (exit $rc):
$(cat "$work/term.log")"
((rc != 0)) || fail "the stopped run exited 0"
((np > 1 || rc == 143)) || fail "the stopped run exited $rc, expected 143 (128 + SIGTERM)"
[ -e "$term" ] || fail "SIGTERM saved no checkpoint"
start_run "$work/term_resumed.log" --checkpoint "$term" --resume "$term"
wait "$run_pid" || fail "the resume after SIGTERM failed:
$(cat "$work/term_resumed.log")"
got=$(checksum_of "$work/term_resumed.log")
[ "$got" = "$expected" ] || fail "after SIGTERM and resume: $got, uninterrupted: $expected"
echo "after SIGTERM to one rank and resume: $got"
echo "PASS ($((SECONDS - start)) s)"
rm -rf "$work"
