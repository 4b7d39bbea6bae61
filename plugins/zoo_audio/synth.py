"""The embedded ``spoken-digits`` data set: the ten digits spoken by Debian's ``espeak-ng``, synthesised on first
use and cached in ``$ZOO_CACHE_DIR`` (rebuilt when ``espeak-ng --version`` or this recipe changes).

A *voice* is one of espeak-ng's voice variants (``m1``, ``f3``, ``klatt2``, …: a speaker), spoken with each of
:data:`ACCENTS`; every (voice, accent) pair says the ten digits :data:`TAKES` times, each take at its own speed
and pitch drawn from :data:`SYNTH_SEED`. One espeak-ng call says the ten digits with long breaks between them,
and the words are cut at the silences (far fewer processes than one per word). Each word is placed at a random
offset in a one-second clip at :data:`RATE` Hz and mixed with noise at a random level. The recipe is fixed (the
clips do not depend on a run's seed, so the cache serves every run); the run's seed picks which voices are
held out for validation (:mod:`zoo_audio.data`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: espeak-ng's English accents (its gmw voices; the mbrola ones need another package).
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
#: The speakers: espeak-ng voice variants (files of espeak-ng-data/voices/!v).
VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
          "klatt4", "Alex", "Andrea", "Annie", "belinda", "benjamin", "boris", "caleb", "david", "edward", "iven",
          "john", "linda", "max", "michel", "norbert", "paul", "quincy", "rob", "steph", "travis")
TAKES = 2
RATE = 16000
CLIP = RATE  # one second
SYNTH_SEED = 20261206
#: Bumped whenever the recipe changes, so the cache is rebuilt.
RECIPE = 1
_BREAK_MS = 600
_QUIET = 64 / 32768  # espeak-ng's pauses are digital silence; this is far below any spoken sound
_MERGE_GAP = 0.15  # seconds: silences shorter than this are inside a word (the stop of "eight")


@dataclass(frozen=True)
class Take:
    """One espeak-ng call: a voice and accent saying the ten digits at a speed (words/min) and pitch (0-99)."""

    voice: str
    accent: str
    speed: int
    pitch: int


def espeak() -> str:
    """The espeak-ng executable; one line saying how to install it when it is missing."""
    found = shutil.which("espeak-ng")
    if not found:
        raise ZooError("spoken-digits needs Debian's espeak-ng to synthesise the clips: install it "
                       "(sudo apt-get install espeak-ng) or train on your own recordings with --data wav:DIR")
    return found


def espeak_version() -> str:
    """``espeak-ng --version``'s first line (the cache key's main part)."""
    done = subprocess.run([espeak(), "--version"], capture_output=True, text=True, check=False, timeout=30)
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown"


def cache_key(voices: tuple[str, ...] | None = None, takes: int | None = None) -> str:
    """What the cached clips depend on (default: :data:`VOICES`, :data:`TAKES`)."""
    voices, takes = voices or VOICES, takes or TAKES
    return f"{espeak_version()} | recipe {RECIPE} | {','.join(voices)} x {takes} | {','.join(ACCENTS)}"


def plan(voices: tuple[str, ...], takes: int) -> list[Take]:
    """Every espeak-ng call of the data set, with speeds and pitches drawn from :data:`SYNTH_SEED`."""
    rng = np.random.default_rng(SYNTH_SEED)
    calls = []
    for voice in voices:
        for accent in ACCENTS:
            for _ in range(takes):
                calls.append(Take(voice, accent, int(rng.integers(120, 211)), int(rng.integers(20, 81))))
    return calls


def synthesise(voices: tuple[str, ...] | None = None, takes: int | None = None, workers: int = 4,
               ) -> dict[str, np.ndarray]:
    """All clips: ``audio`` (N×:data:`CLIP` int16 at :data:`RATE`), ``labels``, ``voice`` (index into
    ``voices``, default :data:`VOICES`), ``accent`` (index into :data:`ACCENTS`)."""
    voices, takes = voices or VOICES, takes or TAKES
    exe = espeak()
    calls = plan(voices, takes)
    with tempfile.TemporaryDirectory(prefix="zoo-espeak-") as tmp, ThreadPoolExecutor(workers) as pool:
        spoken = list(pool.map(lambda item: _say(exe, item[1], Path(tmp) / f"{item[0]}.wav"), enumerate(calls)))
    rng = np.random.default_rng(SYNTH_SEED + 1)
    audio, labels, voice_ids, accent_ids = [], [], [], []
    for take, words in zip(calls, spoken, strict=True):
        for label, word in enumerate(words):
            audio.append(_place(word, rng))
            labels.append(label)
            voice_ids.append(voices.index(take.voice))
            accent_ids.append(ACCENTS.index(take.accent))
    return {"audio": np.stack(audio), "labels": np.asarray(labels, np.int64),
            "voice": np.asarray(voice_ids, np.int64), "accent": np.asarray(accent_ids, np.int64)}


def _say(exe: str, take: Take, out: Path) -> list[np.ndarray]:
    """The ten words of one take at :data:`RATE` (float32), cut at the silences between them."""
    from zoo_audio.wav import decode, resample

    pause = f"<break time='{_BREAK_MS}ms'/>"
    text = "<speak>" + pause.join(WORDS) + "</speak>"
    subprocess.run([exe, "-m", "-v", f"{take.accent}+{take.voice}", "-s", str(take.speed), "-p", str(take.pitch),
                    "-w", str(out), text], check=True, capture_output=True, timeout=120)
    samples, rate = decode(out)
    words = split_words(samples, rate)
    if len(words) != len(WORDS):  # the cut failed for this voice: say each word alone
        words = []
        for word in WORDS:
            subprocess.run([exe, "-v", f"{take.accent}+{take.voice}", "-s", str(take.speed), "-p", str(take.pitch),
                            "-w", str(out), word], check=True, capture_output=True, timeout=120)
            samples, rate = decode(out)
            words.append(_trim(samples))
    return [resample(w, rate, RATE)[:CLIP] for w in words]


def split_words(samples: np.ndarray, rate: int) -> list[np.ndarray]:
    """Sounds separated by at least :data:`_MERGE_GAP` seconds of silence."""
    loud = np.abs(samples) > _QUIET
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    spans: list[list[int]] = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if spans and start - spans[-1][1] < _MERGE_GAP * rate:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [samples[a:b] for a, b in spans if b - a > 0.05 * rate]


def _trim(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > _QUIET)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def _place(word: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The word at a random offset in a one-second clip, at a random level, over noise; int16."""
    clip = np.zeros(CLIP, np.float32)
    offset = int(rng.integers(0, CLIP - len(word) + 1))
    peak = float(np.abs(word).max()) or 1.0
    clip[offset : offset + len(word)] = word / peak * rng.uniform(0.3, 0.9)
    clip += rng.standard_normal(CLIP).astype(np.float32) * np.float32(rng.uniform(0.0, 0.02))
    return (np.clip(clip, -1.0, 32767 / 32768) * 32768).astype(np.int16)
