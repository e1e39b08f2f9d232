#!/usr/bin/env bash
# The GPU runs of the two synthetic tasks (issue #7). Called by the device_suite.sh sections induction-long,
# selective-copying and synthetic-pair, which have already set PYTHONPATH (and installed .whl/ once, so the two
# tasks can run side by side without racing on the install):
#   bash benchmarks/synthetic_gpu.sh induction-long|selective-copying|pair OUT_DIR
#
# induction-long (fit + ~1.5 min): fit configs/synthetic/induction_heads_s6_state_passing.yaml for IH_FIT_S seconds
#   (default 330) at L=256, then eval-induction at 2^6 .. 2^20 in fp32 (64 sequences per length). Results (NAME = IH_NAME, default
#   induction_long): OUT/NAME_length.{md,csv,png}, the learning curve OUT/NAME_curve.{md,png}, OUT/NAME_metrics.csv,
#   OUT/NAME.log and the checkpoint OUT/NAME_last.ckpt. IH_CONFIG picks another config and IH_ARGS adds fit options,
#   so variants can run side by side under different names.
# selective-copying (fit + ~1 min): fit configs/synthetic/selective_copying_s6.yaml (context 4096, 16 tokens, a
#   curriculum from 256) for SC_FIT_S seconds (default 450), then validate the last checkpoint on 32 fresh batches
#   (2048 sequences) in fp32. Results: OUT/selective_copying_curve.{md,png}, OUT/selective_copying_metrics.csv,
#   OUT/selective_copying.log, OUT/selective_copying_last.ckpt.
# pair: both at once, induction-long on GPU 0 and selective-copying on GPU 1 (needs 2 GPUs; separate run folders).
# Never run two trainings on one GPU: these small models are launch-bound and time-slicing starved them (2.5 steps/s
# instead of 65 in one such run).
# CPU smoke test of this script (tiny settings): SYNTH_ACCELERATOR=cpu SYNTH_MAX_LOG2=8 SYNTH_FIT_ARGS="--trainer.max_steps
# 4 --data.seq_len 32 --data.batch_size 4 --data.batches_per_epoch 2 --data.num_workers 0" bash ... induction-long /tmp/o
set -u
accel=${SYNTH_ACCELERATOR:-gpu}
max_log2=${SYNTH_MAX_LOG2:-20}
read -r -a fit_args <<< "${SYNTH_FIT_ARGS:-}"
read -r -a ih_args <<< "${IH_ARGS:-}"
ih_fit_s=${IH_FIT_S:-330}
sc_fit_s=${SC_FIT_S:-450}
ih_name=${IH_NAME:-induction_long}
ih_config=${IH_CONFIG:-configs/synthetic/induction_heads_s6_state_passing.yaml}
as_max_time() { printf '00:%02d:%02d:%02d' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }
task=${1:?usage: synthetic_gpu.sh induction-long|selective-copying|pair OUT_DIR}
out=${2:?usage: synthetic_gpu.sh induction-long|selective-copying|pair OUT_DIR}
mkdir -p "$out"
step() {  # step <seconds> <log> <command...>: hard time limit, output appended to OUT/<log>
  local limit=$1 log=$2; shift 2
  echo "### $(date +%T) [$limit s] $*" | tee -a "$out/$log"
  timeout "$limit" "$@" 2>&1 | tee -a "$out/$log"
  echo "### exit ${PIPESTATUS[0]}" | tee -a "$out/$log"
}
fit() {  # fit <seconds> <log> <run dir> <config> <max_time> [more options]: CSV metrics in <run dir>/lightning_logs
  local limit=$1 log=$2 dir=$3 config=$4 max_time=$5; shift 5
  rm -rf "$dir"
  step "$limit" "$log" python3 -m apps.synthetic.cli fit --config "$config" --trainer.max_time "$max_time" \
    --trainer.accelerator "$accel" --trainer.devices 1 --trainer.enable_progress_bar false \
    --trainer.default_root_dir "$dir" --trainer.logger lightning.pytorch.loggers.CSVLogger \
    --trainer.logger.save_dir "$dir" "$@" "${fit_args[@]}"
}
curve() {  # curve <log> <run dir> <name> <title>: learning curve table/plot and raw metrics into OUT
  local v="$2/lightning_logs/version_0"
  step 30 "$1" python3 -m apps.synthetic.report "$v/metrics.csv" --out-stem "$out/$3_curve" --title "$4"
  cp "$v/metrics.csv" "$out/$3_metrics.csv"
}
case $task in
  induction-long)
    log=$ih_name.log
    nvidia-smi -L 2>&1 | tee -a "$out/$log"
    dir=runs/synthetic/$ih_name
    fit $((ih_fit_s + 30)) "$log" "$dir" "$ih_config" "$(as_max_time "$ih_fit_s")" "${ih_args[@]}"
    curve "$log" "$dir" "$ih_name" "Induction heads ($ih_name), L=256, $ih_fit_s s fit"
    ckpt=$dir/lightning_logs/version_0/checkpoints/last.ckpt
    cp "$ckpt" "$out/${ih_name}_last.ckpt"
    step 90 "$log" python3 -m apps.synthetic.cli eval-induction --ckpt "$ckpt" --min-log2-len 6 \
      --max-log2-len "$max_log2" --num-samples 64 --precision fp32 --out-dir "$dir/eval" --overwrite --no-progress
    for ext in md csv png; do cp "$dir/eval/induction_heads_length.$ext" "$out/${ih_name}_length.$ext"; done ;;
  selective-copying)
    nvidia-smi -L 2>&1 | tee -a "$out/selective_copying.log"
    dir=runs/synthetic/selective_copying_long
    fit $((sc_fit_s + 30)) selective_copying.log "$dir" configs/synthetic/selective_copying_s6.yaml \
      "$(as_max_time "$sc_fit_s")"
    curve selective_copying.log "$dir" selective_copying "Selective copying, context 4096, 16 tokens, $sc_fit_s s fit"
    cp "$dir/lightning_logs/version_0/checkpoints/last.ckpt" "$out/selective_copying_last.ckpt"
    step 60 selective_copying.log python3 -m apps.synthetic.cli validate \
      --config configs/synthetic/selective_copying_s6.yaml \
      --ckpt_path "$dir/lightning_logs/version_0/checkpoints/last.ckpt" --data.seed 100 --data.val_batches 32 \
      --trainer.accelerator "$accel" --trainer.devices 1 --trainer.precision 32-true --trainer.logger false \
      --trainer.enable_progress_bar false --trainer.default_root_dir "$dir/validate" "${fit_args[@]}" ;;
  pair)
    gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
    if [ "$gpus" -lt 2 ]; then echo "synthetic_gpu.sh pair needs 2 GPUs, found $gpus"; exit 2; fi
    CUDA_VISIBLE_DEVICES=0 bash "$0" induction-long "$out" > /dev/null 2>&1 &
    CUDA_VISIBLE_DEVICES=1 bash "$0" selective-copying "$out" > /dev/null 2>&1 &
    wait
    tail -n 25 "$out/$ih_name.log" "$out/selective_copying.log" ;;
  *) echo "synthetic_gpu.sh: unknown task $task (induction-long, selective-copying or pair)"; exit 2 ;;
esac
