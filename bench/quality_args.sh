# Sourced by the quality benchmarks (prune_table.sh, recovery.sh): their shared arguments [MODEL [CALIB_TEXT
# [EVAL_TEXT]]] and environment (WORK, EVAL_BYTES, THREADS) as variables: root, sq, shared, model, calib, work,
# eval_text (default: the first EVAL_BYTES (100000) bytes of ../shared TinyStories valid-a.txt), threads.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sq="$root/build/squeeze"
shared="$root/../shared"
model="${1:-$("$root/scripts/find-model.sh")}"
calib="${2:-$shared/data/classics/grimms_fairy_tales.txt}"
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work"
eval_text="${3:-}"
if [[ -z "$eval_text" ]]; then
  eval_text="$work/eval.txt"
  head -c "${EVAL_BYTES:-100000}" "$shared/data/tinystories/valid-a.txt" >"$eval_text"
fi
threads=(-t "${THREADS:-$(nproc)}")
