#!/usr/bin/env bash
# The GPU measurements behind the issues' notes, in sections that fit one device call each (<= 10 minutes).
# Usage on the GPU machine, from the repository root, with the wheels the image lacks in .whl/ (on a 2-GPU machine
# two suites can run side by side: install first with `bash benchmarks/device_suite.sh`, then
# `CUDA_VISIBLE_DEVICES=0 bash benchmarks/device_suite.sh A & CUDA_VISIBLE_DEVICES=1 bash benchmarks/device_suite.sh B`):
#   bash benchmarks/device_suite.sh kernel dna-length synthetic audio-throughput     # call 1
#   bash benchmarks/device_suite.sh audio-pipeline                                    # call 2
# Every section has a hard time limit; logs go to $OUT (or runs/device) as <section>.log.
set -u
OUT=${OUT:-runs/device}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then  # once per machine: two suites started side by side share /tmp/site
  [ -f /tmp/site/.installed ] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl && touch /tmp/site/.installed; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
BWD_FB_DEFAULT=bwd_thread_shfl_g32_stages3,bwd_thread_shfl_g32_atomic_stages3/64,bwd_thread_shfl_g32_atomic_stages3/16
NCU_BWD_METRICS=gpu__time_duration.sum,launch__registers_per_thread,sm__warps_active.avg.per_cycle_active,\
smsp__issue_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,\
lts__t_sectors.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,lts__t_sector_hit_rate.pct,\
l1tex__t_bytes.sum,l1tex__t_sector_hit_rate.pct,l1tex__throughput.avg.pct_of_peak_sustained_active,\
dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,dram__bytes_write.sum,\
smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_lg_throttle_per_issue_active.ratio,\
smsp__average_warps_issue_stalled_wait_per_issue_active.ratio
upstream_sdist() { ls .upstream/mamba_ssm-*.tar.gz | head -1; }  # mamba_ssm's sdist, carried in .upstream/
run() {  # run <seconds> <log> <command...>
  local limit=$1 log=$2; shift 2
  echo "### $(date +%T) [$limit s] $*" | tee -a "$OUT/$log"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$log"
  echo "### exit ${PIPESTATUS[0]}" | tee -a "$OUT/$log"
}
audio_generate_and_score() {  # <generate limit s>: after a fit of sc09_mini_gpu.yaml, 64 x 16000 samples -> scores
  cp "$(ls -td runs/audio/sc09_mini_mamba_6m/version_* | head -1)/metrics.csv" "$OUT/audio_metrics.csv"
  local ckpt
  ckpt=$(ls -t runs/audio/sc09_mini_mamba_6m/version_*/checkpoints/last.ckpt | head -1)
  run "$1" audio.log python3 -m apps.audio generate --checkpoint "$ckpt" --out-dir runs/gen64 --num-samples 64 \
    --length 16000 --batch-size 64 --cuda-graph --sort-by-likelihood --no-progress
  cp runs/gen64/likelihoods.tsv runs/gen64/clips.png "$OUT/" 2>/dev/null
  run 60 audio.log python3 -m apps.audio train-classifier --data.root tests/data/sc09_mini --data.batch_size 32 \
    --trainer.max_epochs 40 --trainer.accelerator gpu --trainer.devices 1 --trainer.enable_progress_bar false \
    --trainer.default_root_dir runs/sc09_classifier --seed_everything 0
  run 45 audio.log python3 -m apps.audio score runs/gen64 --classifier runs/sc09_classifier/checkpoints/best.ckpt \
    --train-root tests/data/sc09_mini --out "$OUT/sc09_scores" --overwrite --device cuda --no-progress
}
for section in "$@"; do
  start=$SECONDS
  case $section in
    kernel)
      nvidia-smi -L
      run 110 kernel.log python3 benchmarks/scan.py --check
      run 190 kernel.log python3 benchmarks/scan.py --bench --decode ;;
    kernel-full)  # check, forward segment sweep, table, decode: ~9 minutes with compiles
      nvidia-smi -L
      run 300 kernel.log python3 benchmarks/scan.py --check
      run 250 kernel.log python3 benchmarks/scan.py --segments --bench --decode ;;
    kernel-check)  # the --check grid in 6 processes side by side: its time is mostly CPU-bound compiles (~4 min)
      nvidia-smi -L
      for i in 0 1 2 3 4 5; do
        run 330 "kernel_check_$i.log" python3 benchmarks/scan.py --check --shard "$i/6" >/dev/null &
      done
      wait
      cat "$OUT"/kernel_check_[0-5].log > "$OUT/kernel_check.log" ;;
    kernel-variants)  # opt-in thread-forward variants vs the default, (8, 2048, 2048, 16) bf16 fwd and fwd+bwd (~3 min)
      nvidia-smi -L
      run 300 kernel_variants.log python3 benchmarks/scan.py --variants ;;
    kernel-bwd-variants)  # opt-in thread-backward variants vs "auto": fwd+bwd and bwd ms, gradient errors (~3-5 min)
      nvidia-smi -L
      run 300 kernel_bwd_variants.log python3 benchmarks/scan.py --bwd-variants ;;
    upstream)  # vs mamba_ssm's CUDA kernel: builds its bf16 kernels from the sdist in .upstream/ (~75 s), then the table
      run 500 upstream.log python3 benchmarks/upstream_scan.py --source "$(upstream_sdist)" ;;
    kernel-bwd-fb)  # fwd+bwd of "auto" against backward variants, round-robin (~3 min once compiled)
      run 400 kernel_bwd_fb.log python3 benchmarks/scan.py --ab --fb --only "${BWD_FB:-$BWD_FB_DEFAULT}" ;;
    kernel-bwd-warm)  # compile the kernel-bwd-fb variants side by side (one process each), for the shapes it times
      for v in auto $(echo "${BWD_FB:-$BWD_FB_DEFAULT}" | tr , ' '); do
        for shape in 8,512,2048,16 1,16384,2048,16; do
          chunk=(); [ "${v#*/}" != "$v" ] && chunk=(--chunk "${v#*/}")
          run 300 kernel_bwd_warm.log python3 benchmarks/scan_profile.py --impl "${v%%/*}" "${chunk[@]}" --backward \
            --shape $shape --repeats 1 >/dev/null &
        done
      done
      wait ;;
    kernel-ncu-bwd)  # Nsight Compute: memory and issue metrics of our backward kernel and upstream's, 3 shapes
      for shape in 8,2048,2048,16 8,2048,8192,16 64,1024,1536,16; do
        for who in ours upstream; do
          extra=(); [ $who = upstream ] && extra=(--upstream "$(upstream_sdist)")
          echo "## $shape $who" >> "$OUT/ncu_bwd.log"
          run 150 ncu_bwd.log ncu --kernel-name regex:'_thread_bwd_kernel|selective_scan_bwd' --launch-skip 1 \
            --launch-count 1 --metrics "$NCU_BWD_METRICS" python3 benchmarks/scan_profile.py --backward \
            --shape $shape --repeats 2 "${extra[@]}"
        done
      done ;;
    kernel-bwd-sweep)  # the default forward + thread_dot backward over chunks and segment counts (~5.5 min)
      nvidia-smi -L
      run 450 kernel_bwd_sweep.log python3 benchmarks/scan.py --bwd-sweep ;;
    ddp)  # tokens/s on 1 vs 2 GPUs, DNA pretraining at L = 2^16 (issue #8)
      run 290 ddp.log python3 benchmarks/ddp_scaling.py --devices 1 2 --out runs/ddp_scaling --timeout 130
      cp runs/ddp_scaling/results.md "$OUT/ddp_results.md" 2>/dev/null ;;
    dna-length)
      run 120 dna.log python3 benchmarks/dna_length.py --device cuda --max-log2-len 20 --steps 1 --warmup 1 \
        --csv "$OUT/dna_length.csv" ;;
    synthetic)
      run 80 synthetic.log python3 -m apps.synthetic.cli fit --config configs/synthetic/induction_heads_s6.yaml \
        --trainer.max_time 00:00:01:00 --trainer.enable_progress_bar false
      ckpt=$(ls -t runs/synthetic/induction_heads_s6/lightning_logs/version_*/checkpoints/last.ckpt | head -1)
      run 60 synthetic.log python3 -m apps.synthetic.cli eval-induction --ckpt "$ckpt" --max-log2-len 20 \
        --num-samples 32 --out-dir "$OUT/induction" --no-progress ;;
    induction-long|selective-copying)  # issue #7, <= 9 min each; tables/PNG into $OUT (benchmarks/synthetic_gpu.sh)
      bash benchmarks/synthetic_gpu.sh "$section" "$OUT" ;;
    synthetic-pair)  # both of the above at once: induction-long on GPU 0, selective-copying on GPU 1 (<= 9 min)
      bash benchmarks/synthetic_gpu.sh pair "$OUT" ;;
    audio-throughput)
      run 90 audio.log python3 benchmarks/audio_throughput.py --device cuda --gen-steps 512 ;;
    audio-generation)  # eager loop vs CUDA-graph step, 6.26M U-Net, batch 1/16/64 (~1 minute), then the GPU test
      run 180 audio_generation.log python3 benchmarks/audio_generation.py --device cuda --steps 320 \
        --csv "$OUT/audio_generation.csv"
      run 90 audio_generation.log python3 -m pytest -q -p no:cacheprovider tests/audio/test_graph_generation.py ;;
    audio-pipeline)  # <= 8 minutes: 2-minute fit, 64 one-second clips (CUDA graphs, batch 64), classifier, scores
      rm -rf runs/gen64 runs/sc09_classifier
      run 180 audio.log python3 -m apps.audio fit --config configs/audio/sc09_mini_gpu.yaml \
        --trainer.max_time 00:00:02:00
      audio_generate_and_score 150 ;;
    audio-quick)  # the pipeline above with a 50 s fit (~4 minutes)
      rm -rf runs/gen64 runs/sc09_classifier
      run 95 audio.log python3 -m apps.audio fit --config configs/audio/sc09_mini_gpu.yaml \
        --trainer.max_time 00:00:00:50
      audio_generate_and_score 150 ;;
    dna-species)  # issue #5, ~6 min (<= 8): synth -> pretrain 2^12 -> 5-species classifier at 2^16 -> test -> report
      bash benchmarks/dna_species_gpu.sh "$OUT" ;;
    *) echo "unknown section $section"; exit 2 ;;
  esac
  echo "### section $section took $((SECONDS - start)) s" | tee -a "$OUT/sections.log"
done
