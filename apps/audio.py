"""``mamba-audio``: train, evaluate and sample the SaShiMi/Mamba waveform model; score samples.

    mamba-audio fit|validate|test --config configs/audio/sc09_mamba_6m.yaml [--ckpt_path CKPT] [--data.root DIR]
    mamba-audio generate --checkpoint CKPT --out-dir DIR [--num-samples 64 --length 16000 --batch-size 64
                         --temperature 1.0 --top-p 1.0 --sort-by-likelihood --overwrite --no-cuda-graph]
    mamba-audio train-classifier ...   (the SC09 digit classifier; apps/audio_metrics.py)
    mamba-audio score ...              (FID / IS / mIS / AM of generated folders; apps/audio_metrics.py)
    mamba-audio convert ...            (FSDD / Speech Commands -> SC09 layout; apps/audio_metrics.py)

fit/validate/test are LightningCLI subcommands (model: :class:`audio.lightning_module.AudioLM`, data: any
LightningDataModule given by ``class_path``, e.g. :class:`audio.datasets.SC09DataModule`); ``--ckpt_path`` resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PLOT_FILE = "clips.png"


def run_lightning_cli(argv: Sequence[str] | None = None):
    """Run a LightningCLI subcommand (fit/validate/test/predict) and return the CLI object (argv None: sys.argv)."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.cli import LightningCLI

    from audio.lightning_module import AudioLM

    torch.set_float32_matmul_precision("high")  # TF32 matmuls on Ampere/Hopper GPUs; no effect on CPU
    args = None if argv is None else list(argv)
    return LightningCLI(AudioLM, pl.LightningDataModule, subclass_mode_data=True, args=args,
                        seed_everything_default=1234)


def _generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mamba-audio generate",
        description="Sample clips from a trained checkpoint in recurrent mode; write WAVs, likelihoods.tsv and a "
        "waveform/spectrogram PNG into --out-dir (existing files are never replaced without --overwrite).")
    parser.add_argument("--checkpoint", required=True, help="Lightning checkpoint (.ckpt) of mamba-audio fit")
    parser.add_argument("--out-dir", required=True, help="folder for sample_00000.wav ... and likelihoods.tsv")
    parser.add_argument("--num-samples", type=int, default=64)
    parser.add_argument("--length", type=int, default=16000, help="samples per clip (16000 = 1 s at 16 kHz)")
    parser.add_argument("--batch-size", type=int, default=64, help="clips generated in parallel")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1.0 = off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--sort-by-likelihood", action="store_true", help="number clips from most to least likely")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--plot-clips", type=int, default=4, help="clips drawn in clips.png (0: no plot)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                        help="on CUDA, replay each sampling step from CUDA graphs (same tokens as the eager loop, "
                        "much faster); --no-cuda-graph runs the eager loop. Ignored on the CPU")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _load_model(checkpoint: str, device):
    from audio.lightning_module import AudioLM

    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        module = AudioLM.load_from_checkpoint(str(path), map_location=device)
    except Exception as err:  # corrupt file, or a checkpoint of another model
        raise ValueError(f"{path}: cannot load an AudioLM checkpoint from it: {err}") from err
    return module.model.to(device).eval()


def _plot(out_dir: Path, wav_paths: list[Path], sample_rate: int, overwrite: bool) -> None:
    try:
        from audio.plots import plot_clips
    except ImportError:
        print("warning: audio.plots.plot_clips is not available; no PNG written", file=sys.stderr)
        return
    plot_clips(wav_paths, out_dir / PLOT_FILE, sample_rate=sample_rate, titles=[p.name for p in wav_paths],
               overwrite=overwrite)


def generate_main(argv: Sequence[str] | None = None) -> int:
    import torch

    from audio.generation import check_outputs_free, sample_tokens, write_clips

    args = _generate_parser().parse_args(argv)
    out_dir = Path(args.out_dir)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    try:
        if args.num_samples < 1 or args.length < 1 or args.batch_size < 1:
            raise ValueError("--num-samples, --length and --batch-size must be >= 1")
        extra = (PLOT_FILE,) if args.plot_clips > 0 else ()
        check_outputs_free(out_dir, args.num_samples, args.overwrite, extra=extra)  # before the long sampling run
        model = _load_model(args.checkpoint, device)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        start = time.perf_counter()
        tokens, log_likelihood = sample_tokens(
            model, args.num_samples, args.length, batch_size=args.batch_size, temperature=args.temperature,
            top_p=args.top_p, generator=generator, progress=not args.no_progress, use_cuda_graph=args.cuda_graph)
        elapsed = time.perf_counter() - start
        paths = write_clips(out_dir, tokens, log_likelihood, sample_rate=args.sample_rate,
                            sort_by_likelihood=args.sort_by_likelihood, overwrite=args.overwrite)
        if args.plot_clips > 0:  # the first clips written (the most likely ones with --sort-by-likelihood)
            _plot(out_dir, paths[: args.plot_clips], args.sample_rate, args.overwrite)
    except ValueError as err:
        print(f"mamba-audio generate: error: {err}", file=sys.stderr)
        return 2
    nll = -log_likelihood.mean().item() / args.length
    path = "CUDA graphs" if args.cuda_graph and device.type == "cuda" else "eager loop"
    print(f"wrote {args.num_samples} clips to {out_dir} (mean NLL {nll:.4f} nats/sample under the model; "
          f"sampled with the {path} in {elapsed:.1f} s)")
    return 0


def _metrics_command(name: str):
    from apps import audio_metrics

    return {"train-classifier": audio_metrics.train_classifier_main, "score": audio_metrics.score_main,
            "convert": audio_metrics.convert_main}[name]


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "generate":
        return generate_main(words[1:])
    if words and words[0] in ("train-classifier", "score", "convert"):
        return int(_metrics_command(words[0])(words[1:]) or 0)
    run_lightning_cli(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
