#!/usr/bin/env bash
# The quality and time figures of benchmarks/multistyle.md, in one sitting (CPU, small budget).
# Results: benchmarks/results/multistyle_*.json; networks under $WORK (not committed).
#   S    steps per style (default 60), batch 4, 64 px crops (the shared 2-core CPU gave one run
#        about a third of a core: this is what fitted; read it as a first look, not a result)
#   F    fine-tuning steps to add a style to the two-style network (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
work=${WORK:-outputs/multistyle_bench}
S=${S:-60}
F=${F:-30}
mkdir -p "$out" "$work"
photos="${FAST_STYLE_DATA:?set FAST_STYLE_DATA}/bsds300-train"
# Same settings for every run: fp32 (this CPU has no native bf16), validation only at the end.
common=(trainer=cpu trainer.precision=32-true logger=csv data.image_size=64 data.batch_size=4
        data.num_workers=0 data.val_count=8 trainer.val_check_interval=100000
        trainer.num_sanity_val_steps=0 checkpoint_every_n_steps=100000 sample_every_n_steps=0
        overwrite=true log_dir=$work/logs hydra.run.dir=$work/hydra)
train() {  # train NAME ARGS...: one run, its wall and CPU time appended to times.jsonl
  local name=$1; shift
  [ -f "$work/$name.done" ] && return  # re-running the script skips finished runs
  local start=$SECONDS
  /usr/bin/time -f "%U %S" -o "$work/$name.cpu" \
    python train.py "${common[@]}" ckpt_dir="$work/${dir:-$name}" "$@" > "$work/$name.log" 2>&1
  local cpu; cpu=$(awk '{print $1 + $2}' "$work/$name.cpu")
  echo "{\"run\": \"$name\", \"seconds\": $((SECONDS - start)), \"cpu_seconds\": $cpu, \"args\": \"$*\"}" >> "$work/times.jsonl"
  touch "$work/$name.done"
}
judge() {  # judge CKPT: the fixed judge on 5 held-out photos (long edge 128), JSON line
  python scripts/evaluate.py ckpt="$1" content="$photos" val_count=8 limit=5 size=128 "${@:2}" | tail -n 1
}
touch "$work/times.jsonl"

# Three streams side by side (the machine is shared and oversubscribed; a run of ours got a
# third of a core, so one after the other did not fit in the time there was).
# 1. Two single-style networks, and 2. one two-style network: the same steps per style.
( train single_starry_night style=starry_night trainer.max_steps=$S
  train single_mosaic style=mosaic trainer.max_steps=$S ) &
train multi 'style=[starry_night,mosaic]' trainer.max_steps=$((2 * S)) &
# 3. Add candy to a trained network (the single-style Starry Night one, which is ready first):
#    fine-tune its scales and shifts; or train candy alone, judged after 30 and 60 steps
#    (resumed exactly with ckpt_path=last) to see when it gets as far.
( while [ ! -f "$work/single_starry_night.done" ]; do sleep 10; done
  train finetune_candy finetune="$work/single_starry_night/starry_night.pth" 'style=[candy]' trainer.max_steps=$F
  for steps in 30 60; do
    resume=$([ "$steps" = 30 ] && echo null || echo last)
    dir=single_candy train single_candy_$steps style=candy trainer.max_steps=$steps ckpt_path=$resume
    cp "$work/single_candy/candy.pth" "$work/single_candy_$steps.pth"
  done ) &
wait

{
  for s in starry_night mosaic; do judge "$work/single_$s/$s.pth" | sed "s/^/{\"net\": \"single_$s\", \"result\": /; s/$/}/"; done
  judge "$work/multi/starry_night+mosaic.pth" | sed 's/^/{"net": "multi", "result": /; s/$/}/'
  judge "$work/finetune_candy/starry_night+candy.pth" | sed 's/^/{"net": "finetune_candy", "result": /; s/$/}/'
  for steps in 30 60; do
    judge "$work/single_candy_$steps.pth" | sed "s/^/{\"net\": \"single_candy_$steps\", \"result\": /; s/$/}/"
  done
} > "$out/multistyle_judge.jsonl"
cp "$work/times.jsonl" "$out/multistyle_train_times.jsonl"
