"""read_audio / write_wav: round trips, mixing, resampling, and clear errors naming the file."""

import numpy as np
import pytest
import soundfile as sf
import torch

from audio.wav_io import AudioFileError, read_audio, write_wav


def _tone(n, sr, freq=440.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def test_write_then_read_round_trip_is_16bit_exact(tmp_path):
    x = _tone(1600, 16000)
    path = write_wav(tmp_path / "sub" / "a.wav", torch.from_numpy(x), 16000)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    y = read_audio(path, 16000)
    assert y.dtype == torch.float32 and y.shape == (1600,)
    assert torch.allclose(y, torch.from_numpy(x), atol=1.0 / 32768 + 1e-6)


def test_write_clips_and_refuses_to_overwrite(tmp_path):
    path = write_wav(tmp_path / "a.wav", np.array([2.0, -3.0, 0.25], np.float32), 8000)
    with pytest.raises(AudioFileError, match=r"a\.wav.*refusing to overwrite"):
        write_wav(path, np.zeros(3, np.float32), 8000)
    assert read_audio(path, 8000).tolist() == pytest.approx([32767 / 32768, -1.0, 0.25], abs=1e-4)
    write_wav(path, np.zeros(5, np.float32), 8000, overwrite=True)
    assert read_audio(path, 8000).shape == (5,)


def test_stereo_is_mixed_down_or_rejected_in_strict_mode(tmp_path):
    left, right = _tone(800, 8000, 300), _tone(800, 8000, 500, 0.25)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], 1), 8000, subtype="FLOAT")
    mixed = read_audio(path, 8000)
    assert torch.allclose(mixed, torch.from_numpy((left + right) / 2), atol=1e-6)
    with pytest.raises(AudioFileError, match=r"stereo\.wav.*2 channels"):
        read_audio(path, 8000, mono=False)


def test_resamples_when_rates_differ_unless_disabled(tmp_path):
    path = tmp_path / "r8k.wav"
    sf.write(str(path), _tone(8000, 8000, 440.0), 8000, subtype="FLOAT")
    y = read_audio(path, 16000)
    assert y.shape == (16000,)
    expected = torch.from_numpy(_tone(16000, 16000, 440.0))
    assert (y - expected)[500:-500].abs().max() < 5e-3
    with pytest.raises(AudioFileError, match=r"r8k\.wav.*8000 Hz.*16000 Hz"):
        read_audio(path, 16000, resample=False)


def test_missing_corrupt_and_empty_files_name_the_file(tmp_path):
    with pytest.raises(AudioFileError, match=r"nope\.wav.*no such"):
        read_audio(tmp_path / "nope.wav", 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x01garbage that is not a wav file" * 3)
    with pytest.raises(AudioFileError, match=r"corrupt\.wav.*cannot decode"):
        read_audio(corrupt, 16000)
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"zero\.wav.*empty"):
        read_audio(zero_bytes, 16000)
    no_frames = tmp_path / "noframes.wav"
    sf.write(str(no_frames), np.zeros(0, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioFileError, match=r"noframes\.wav.*zero samples"):
        read_audio(no_frames, 16000)
    assert issubclass(AudioFileError, ValueError)


def test_non_finite_samples_are_rejected(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(str(path), np.array([0.0, np.nan, 0.1], np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"nan\.wav.*NaN"):
        read_audio(path, 8000)
    with pytest.raises(ValueError, match="NaN"):
        write_wav(tmp_path / "out.wav", np.array([np.inf], np.float32), 8000)
