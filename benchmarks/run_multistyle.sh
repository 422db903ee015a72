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
train() {  # train NAME ARGS...: one run, its wall time appended to times.jsonl
  local name=$1; shift
  local start=$SECONDS
  python train.py "${common[@]}" ckpt_dir="$work/$name" "$@" > "$work/$name.log" 2>&1
  echo "{\"run\": \"$name\", \"seconds\": $((SECONDS - start)), \"args\": \"$*\"}" >> "$work/times.jsonl"
}
judge() {  # judge CKPT: the fixed judge on 5 held-out photos (long edge 128), JSON line
  python scripts/evaluate.py ckpt="$1" content="$photos" val_count=8 limit=5 size=128 "${@:2}" | tail -n 1
}
: > "$work/times.jsonl"

# 1. Two single-style networks and one two-style network, the same steps per style.
train single_starry_night style=starry_night trainer.max_steps=$S
train single_mosaic style=mosaic trainer.max_steps=$S
train multi 'style=[starry_night,mosaic]' trainer.max_steps=$((2 * S))
# 2. Add candy: fine-tune its scales and shifts on the two-style network; or train it alone,
#    judged after 30, 60 and 120 steps (resumed exactly with ckpt_path=last) to see when it
#    gets as far.
train finetune_candy finetune="$work/multi/starry_night+mosaic.pth" 'style=[candy]' trainer.max_steps=$F
for steps in 30 60 120; do
  resume=$([ "$steps" = 30 ] && echo null || echo last)
  train single_candy style=candy trainer.max_steps=$steps ckpt_path=$resume
  cp "$work/single_candy/candy.pth" "$work/single_candy_$steps.pth"
done

{
  for s in starry_night mosaic; do judge "$work/single_$s/$s.pth" | sed "s/^/{\"net\": \"single_$s\", \"result\": /; s/$/}/"; done
  judge "$work/multi/starry_night+mosaic.pth" | sed 's/^/{"net": "multi", "result": /; s/$/}/'
  judge "$work/finetune_candy/starry_night+mosaic+candy.pth" | sed 's/^/{"net": "finetune_candy", "result": /; s/$/}/'
  for steps in 30 60 120; do
    judge "$work/single_candy_$steps.pth" | sed "s/^/{\"net\": \"single_candy_$steps\", \"result\": /; s/$/}/"
  done
} > "$out/multistyle_judge.jsonl"
cp "$work/times.jsonl" "$out/multistyle_train_times.jsonl"
