"""Cut the in-repo real fixture ``tests/data/speech_commands_mini/`` from ``../shared/speech_commands_sample``.

Run once by a maintainer (``python tests/data/make_fixture.py``); the result is committed so tests pass on a
fresh clone without ``../shared``. Deterministic: the first 10 speakers (sorted by id) who said all ten words
and also have an ``_unknown_`` clip; one clip per (speaker, word), one ``_unknown_`` clip per speaker, and the
first 11 s of one background-noise recording (long enough to cut 1-s ``_silence_`` windows for every split).
"""
from __future__ import annotations

import shutil
import sys
from collections import defaultdict
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
OUT = HERE / "speech_commands_mini"
WORDS = "yes no up down left right on off stop go".split()
N_SPEAKERS = 10
NOISE, NOISE_SECONDS = "running_tap.wav", 11


def main(src: Path) -> None:
    clips = defaultdict(dict)                      # speaker -> word -> first file name
    for w in WORDS:
        for f in sorted((src / w).glob("*.wav")):
            clips[f.name.split("_nohash_")[0]].setdefault(w, f.name)
    unknown = defaultdict(list)
    for f in sorted((src / "_unknown_").glob("*.wav")):
        unknown[f.name.split("_")[-3]].append(f.name)
    speakers = sorted(s for s, d in clips.items() if len(d) == len(WORDS) and unknown[s])[:N_SPEAKERS]
    if OUT.exists():
        shutil.rmtree(OUT)
    for s in speakers:
        for w in WORDS:
            (OUT / w).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / w / clips[s][w], OUT / w / clips[s][w])
        (OUT / "_unknown_").mkdir(exist_ok=True)
        shutil.copyfile(src / "_unknown_" / unknown[s][0], OUT / "_unknown_" / unknown[s][0])
    audio, sr = sf.read(src / "_background_noise_" / NOISE, dtype="int16")
    (OUT / "_background_noise_").mkdir()
    sf.write(OUT / "_background_noise_" / NOISE, audio[: NOISE_SECONDS * sr], sr, subtype="PCM_16")
    shutil.copyfile(src / "LICENSE", OUT / "LICENSE")
    print(f"{sum(1 for _ in OUT.rglob('*.wav'))} wav files, "
          f"{sum(p.stat().st_size for p in OUT.rglob('*') if p.is_file()) / 1e6:.2f} MB, speakers {speakers}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "speech_commands_sample")
