"""Command lines for the audio metrics tools: convert digit recordings, train the SC09 classifier, score samples.

``apps/audio.py`` (``mamba-audio train-classifier|score|convert``) dispatches to the three ``*_main(argv)`` functions
here; each also runs as ``python -m apps.audio_metrics <convert|train-classifier|score> ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["convert_main", "train_classifier_main", "score_main", "main"]


def _int_set(text: str) -> list[int]:
    """'0-4,7' -> [0, 1, 2, 3, 4, 7]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def _name_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def convert_main(argv: Sequence[str] | None = None) -> int:
    """Lay an FSDD checkout or a Speech Commands copy out as an SC09-layout folder at 16 kHz."""
    from audio.fsdd import convert_to_sc09

    parser = argparse.ArgumentParser(
        prog="mamba-audio convert",
        description="Convert an FSDD checkout (recordings/<digit>_<speaker>_<take>.wav) or a Speech Commands copy "
        "into the SC09 layout <target>/{zero..nine}/<speaker>_nohash_<take>.wav + validation_list.txt + "
        "testing_list.txt, resampled to --sample-rate. Refuses to write into an existing target.",
    )
    parser.add_argument("source", help="FSDD checkout (or its recordings/ folder) or Speech Commands folder")
    parser.add_argument("target", help="new folder to create (must not exist)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--speakers", type=_name_list, default=None, help="comma list of speakers to keep")
    parser.add_argument("--digits", type=_int_set, default=None, help="digits to keep, e.g. 0-9 or 0,1,2")
    parser.add_argument("--takes", type=_int_set, default=None, help="take numbers to keep, e.g. 0-4")
    parser.add_argument("--validation-speakers", type=_name_list, default=None, help="comma list held out for val")
    parser.add_argument("--test-speakers", type=_name_list, default=None, help="comma list held out for test")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    summary = convert_to_sc09(
        args.source, args.target, sample_rate=args.sample_rate, speakers=args.speakers, digits=args.digits,
        takes=args.takes, validation_speakers=args.validation_speakers, test_speakers=args.test_speakers,
        progress=not args.no_progress,
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(f"wrote {summary.target} from a {summary.source_kind} source: {counts} files")
    return 0


def train_classifier_main(argv: Sequence[str] | None = None) -> int:
    """Train the SC09 digit classifier (LightningCLI; see ``--help``)."""
    from audio.classifier import run_classifier_cli

    run_classifier_cli(argv)
    return 0


def score_main(argv: Sequence[str] | None = None) -> int:
    """Score folders of generated clips: FID / IS / mIS / AM table (see ``--help``)."""
    from audio.scoring import score_cli

    return score_cli(argv)


_COMMANDS = {"convert": convert_main, "train-classifier": train_classifier_main, "score": score_main}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _COMMANDS:
        print(f"usage: python -m apps.audio_metrics {{{','.join(_COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return _COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
