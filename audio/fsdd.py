"""Lay spoken-digit recordings out in the SC09 folder layout at 16 kHz.

SC09 (the ten digit words of Google Speech Commands) is stored as ``<root>/{zero,...,nine}/<speaker>_nohash_<n>.wav``
with ``validation_list.txt`` and ``testing_list.txt`` at the root naming the held-out files (relative paths, one a
line); every other file is training data. The audio app's classifier, scorer and datasets read that layout.

:func:`convert_to_sc09` builds it from either

* a Free Spoken Digit Dataset checkout (github Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0): 8 kHz files
  ``recordings/{digit}_{speaker}_{take}.wav`` (the ``recordings`` folder itself may be given), or
* a Speech Commands copy: ``{zero,...,nine}/<speaker>_nohash_<n>.wav`` (other words are ignored), with its own
  validation/testing lists reused unless speakers are named for the splits.

Files are resampled to ``sample_rate`` with :func:`audio.wav_io.read_audio` and written as 16-bit PCM. The split is by
speaker, so no voice appears in two splits. Conversion writes into a temporary sibling folder and renames it at the
end, and refuses to touch an existing target.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from audio.wav_io import read_audio, write_wav

__all__ = ["DIGIT_WORDS", "ConversionError", "DigitClip", "ConversionSummary", "find_clips", "convert_to_sc09"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9-]+)_(\d+)\.wav$")
_SC_NAME = re.compile(r"^([0-9A-Za-z-]+)_nohash_(\d+)\.wav$")

FSDD_LICENSE_NOTE = """\
Audio in this folder is derived from the Free Spoken Digit Dataset (FSDD),
https://github.com/Jakobovski/free-spoken-digit-dataset (Zohar Jackson and contributors),
licensed under Creative Commons Attribution-ShareAlike 4.0 International
(https://creativecommons.org/licenses/by-sa/4.0/).
Changes: selected recordings resampled from 8 kHz to {rate} Hz, renamed and laid out in the SC09 folder layout
(<digit word>/<speaker>_nohash_<take>.wav). This derived folder is shared under the same licence (CC BY-SA 4.0).
"""

SPEECH_COMMANDS_LICENSE_NOTE = """\
Audio in this folder is derived from the Speech Commands dataset (Pete Warden, Google),
licensed under Creative Commons Attribution 4.0 International (https://creativecommons.org/licenses/by/4.0/).
Changes: the ten digit words kept, resampled to {rate} Hz where needed.
"""


class ConversionError(ValueError):
    """The source folder is not a recognisable FSDD / Speech Commands copy, or the target already exists."""


@dataclass(frozen=True)
class DigitClip:
    """One recording: where it is, which digit (0-9), who spoke it, and the speaker's take number."""

    path: Path
    digit: int
    speaker: str
    take: int

    @property
    def sc09_relpath(self) -> str:
        return f"{DIGIT_WORDS[self.digit]}/{self.speaker}_nohash_{self.take}.wav"


@dataclass
class ConversionSummary:
    target: Path
    source_kind: str
    counts: dict[str, int] = field(default_factory=dict)  # split name -> number of files


def _fsdd_dir(source: Path) -> Path | None:
    for cand in (source / "recordings", source):
        if cand.is_dir() and any(_FSDD_NAME.match(p.name) for p in cand.iterdir()):
            return cand
    return None


def find_clips(source: str | Path) -> tuple[str, list[DigitClip]]:
    """Identify ``source`` as ``"fsdd"`` or ``"speech_commands"`` and list its digit recordings (sorted)."""
    source = Path(source)
    if not source.is_dir():
        raise ConversionError(f"{source}: source folder does not exist")
    fsdd = _fsdd_dir(source)
    if fsdd is not None:
        clips = []
        for p in fsdd.iterdir():
            m = _FSDD_NAME.match(p.name)
            if m:
                clips.append(DigitClip(p, int(m.group(1)), m.group(2), int(m.group(3))))
        kind = "fsdd"
    elif any((source / w).is_dir() for w in DIGIT_WORDS):
        clips = []
        for digit, word in enumerate(DIGIT_WORDS):
            folder = source / word
            if not folder.is_dir():
                continue
            for p in folder.iterdir():
                m = _SC_NAME.match(p.name)
                if m:
                    clips.append(DigitClip(p, digit, m.group(1), int(m.group(2))))
        kind = "speech_commands"
    else:
        raise ConversionError(
            f"{source}: not an FSDD checkout (no recordings/<digit>_<speaker>_<take>.wav) and not a Speech Commands "
            "copy (no zero/ ... nine/ folders)"
        )
    if not clips:
        raise ConversionError(f"{source}: found no digit recordings")
    clips.sort(key=lambda c: (c.digit, c.speaker, c.take))
    return kind, clips


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()} if path.is_file() else set()


def _assign_splits(
    kind: str, source: Path, clips: Sequence[DigitClip], validation_speakers: Iterable[str] | None,
    test_speakers: Iterable[str] | None,
) -> dict[str, list[DigitClip]]:
    speakers = sorted({c.speaker for c in clips})
    if validation_speakers is None and test_speakers is None and kind == "speech_commands":
        val_list, test_list = _read_list(source / "validation_list.txt"), _read_list(source / "testing_list.txt")
        rel = {c: f"{DIGIT_WORDS[c.digit]}/{c.path.name}" for c in clips}
        splits = {"validation": [c for c in clips if rel[c] in val_list],
                  "test": [c for c in clips if rel[c] in test_list]}
        held = set(splits["validation"]) | set(splits["test"])
        splits["train"] = [c for c in clips if c not in held]
        return splits
    if validation_speakers is None and test_speakers is None:
        # default: the last speaker (sorted) is the test set, the one before it validation
        if len(speakers) < 3:
            raise ConversionError(f"{source}: need >= 3 speakers for a default speaker split, found {speakers}")
        validation_speakers, test_speakers = [speakers[-2]], [speakers[-1]]
    val_set, test_set = set(validation_speakers or ()), set(test_speakers or ())
    for name, chosen in (("validation", val_set), ("test", test_set)):
        unknown = chosen - set(speakers)
        if unknown:
            raise ConversionError(f"{source}: {name} speakers {sorted(unknown)} not among the speakers {speakers}")
    if val_set & test_set:
        raise ConversionError(f"speakers {sorted(val_set & test_set)} are in both the validation and the test split")
    return {
        "train": [c for c in clips if c.speaker not in val_set | test_set],
        "validation": [c for c in clips if c.speaker in val_set],
        "test": [c for c in clips if c.speaker in test_set],
    }


def convert_to_sc09(
    source: str | Path,
    target: str | Path,
    sample_rate: int = 16000,
    speakers: Iterable[str] | None = None,
    digits: Iterable[int] | None = None,
    takes: Iterable[int] | None = None,
    validation_speakers: Iterable[str] | None = None,
    test_speakers: Iterable[str] | None = None,
    progress: bool = True,
) -> ConversionSummary:
    """Convert the recordings under ``source`` into a new SC09-layout folder ``target`` (which must not exist).

    ``speakers`` / ``digits`` / ``takes`` keep only those recordings (all if None). Splits: the named
    ``validation_speakers`` / ``test_speakers`` are held out; if neither is named, a Speech Commands source keeps its
    own lists and an FSDD source holds out the last speaker (sorted by name) for test and the one before for
    validation. A ``LICENSE.txt`` crediting the source dataset is written next to the lists.
    """
    source, target = Path(source), Path(target)
    if target.exists():
        raise ConversionError(f"{target}: target already exists; refusing to overwrite it (choose a new folder)")
    kind, clips = find_clips(source)
    if speakers is not None:
        keep = set(speakers)
        missing = keep - {c.speaker for c in clips}
        if missing:
            raise ConversionError(f"{source}: no recordings by speakers {sorted(missing)}")
        clips = [c for c in clips if c.speaker in keep]
    if digits is not None:
        keep_digits = {int(d) for d in digits}
        clips = [c for c in clips if c.digit in keep_digits]
    if takes is not None:
        keep_takes = {int(t) for t in takes}
        clips = [c for c in clips if c.take in keep_takes]
    if not clips:
        raise ConversionError(f"{source}: no recordings left after the speaker/digit/take filters")
    splits = _assign_splits(kind, source, clips, validation_speakers, test_speakers)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        for clip in tqdm(clips, desc=f"convert {kind} -> {target.name}", unit="file", disable=not progress):
            wave = read_audio(clip.path, sample_rate, mono=True)
            write_wav(staging / clip.sc09_relpath, wave, sample_rate)
        for split, list_name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
            lines = sorted(c.sc09_relpath for c in splits[split])
            (staging / list_name).write_text("".join(line + "\n" for line in lines))
        note = FSDD_LICENSE_NOTE if kind == "fsdd" else SPEECH_COMMANDS_LICENSE_NOTE
        (staging / "LICENSE.txt").write_text(note.format(rate=sample_rate))
        if target.exists():  # appeared while we worked
            raise ConversionError(f"{target}: target appeared during conversion; refusing to overwrite it")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ConversionSummary(target, kind, {k: len(v) for k, v in splits.items()})
