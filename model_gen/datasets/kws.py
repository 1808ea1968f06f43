"""`kws`: synthetic per-speaker keyword spotting — SIMULATED speakers, not real people.

Each speaker is an espeak-ng voice (PyPI `espeakng-loader`, run in process through its C API)
with its own accent, voice variant, pitch, rate, microphone tilt, gain and background noise,
all drawn from a seed; every utterance jitters pitch, rate, timing and noise. Features come
from the TFLM micro frontend (PyPI `pymicro-features`, 30 ms windows every 10 ms, 40 bins):
98 frames per 1 s clip, averaged in pairs to 49 x 40. espeak-ng is GPL: it only generates
data here and is never linked into firmware. Data sets are cached under build/data/.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_gen import paths
from model_gen.datasets import OWN, TEST, TaskData

KEYWORDS = ("yes", "no", "up", "down", "stop", "go")
DEFAULT_SPEAKERS = 48  # fewer pre-training speakers do not generalize to new voices
UTTERANCES = 16  # per keyword and speaker: the earlier 10 are the speaker's own, the rest test
OWN_UTTERANCES = 10  # k = 10 labelled examples per class must be available on the device
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "croak", "klatt", "klatt2", "whisper")
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4


@dataclass(frozen=True)
class Speaker:
    voice: str
    pitch: int
    rate: int
    tilt: float  # first-order pre-emphasis (>0) or low-pass (<0) of the "microphone"
    gain: float
    snr_db: float


def make_speaker(rng: np.random.Generator) -> Speaker:
    return Speaker(
        voice=f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}",
        pitch=int(rng.integers(15, 85)),
        rate=int(rng.integers(120, 230)),
        tilt=float(rng.uniform(-0.8, 0.9)),
        gain=float(rng.uniform(0.3, 1.0)),
        snr_db=float(rng.uniform(8, 30)),
    )


class Espeak:
    """Minimal in-process binding of espeak-ng's synchronous synthesis API."""

    _callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.sample_rate = self._lib.espeak_Initialize(2, 0, data_parent, 0)  # synchronous
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialize")
        self._chunks: list[np.ndarray] = []
        self._callback = self._callback_type(self._collect)  # kept alive with self
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: object, count: int, events: object) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def say(self, text: str, voice: str, pitch: int, rate: int, seed: int) -> np.ndarray:
        """int16 samples at self.sample_rate; `seed` fixes espeak-ng's voicing jitter."""
        # espeak-ng draws random jitter from its own generator (and libc rand): seed both.
        # It also carries state from one utterance to the next, which seeding does not reset;
        # load_kws therefore synthesizes in a fresh process, so a data set is reproducible.
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        ctypes.CDLL(None).srand(ctypes.c_uint(seed))
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
        self._lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
        self._chunks = []
        encoded = text.encode() + b"\0"
        if self._lib.espeak_Synth(encoded, len(encoded), 0, 1, 0, 0, None, None) != 0:
            raise RuntimeError(f"espeak-ng failed to say {text!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    n_out = round(len(audio) * SAMPLE_RATE / rate)
    return np.interp(np.arange(n_out) * rate / SAMPLE_RATE, np.arange(len(audio)), audio)


def _place_in_clip(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    audio = audio[:CLIP_SAMPLES]
    start = int(rng.integers(0, CLIP_SAMPLES - len(audio) + 1))
    clip = np.zeros(CLIP_SAMPLES)
    clip[start : start + len(audio)] = audio
    return clip


def _channel(clip: np.ndarray, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    tilted = clip.copy()
    tilted[1:] = clip[1:] - speaker.tilt * clip[:-1]
    tilted *= speaker.gain / max(1.0, np.max(np.abs(tilted)) / 20000)
    power = np.mean(tilted**2) + 1e-9
    noise = rng.normal(0, np.sqrt(power / 10 ** (speaker.snr_db / 10)), size=tilted.shape)
    return np.clip(tilted + noise, -32768, 32767).astype(np.int16)


def frontend_features(clip: np.ndarray) -> np.ndarray:
    """int16 1 s clip -> (49, 40) float32 micro-frontend features (frame pairs averaged)."""
    from pymicro_features import MicroFrontend

    frontend = MicroFrontend()
    audio = clip.astype(np.int16).tobytes()
    frames, offset = [], 0
    while offset + 320 <= len(audio):
        out = frontend.process_samples(audio[offset : offset + 320])
        if out.samples_read <= 0:
            raise RuntimeError("micro frontend consumed no samples")
        offset += out.samples_read * 2
        if out.features:
            frames.append(out.features)
    feats = np.asarray(frames[:98], dtype=np.float32)
    return feats.reshape(49, 2, 40).mean(axis=1)


def _synthesize(speakers: int, seed: int) -> dict[str, np.ndarray]:
    espeak = Espeak()
    rng = np.random.default_rng(seed)
    voices = [make_speaker(rng) for _ in range(speakers)]
    xs, ys, devs, parts = [], [], [], []
    for index, speaker in enumerate(voices):
        for label, word in enumerate(KEYWORDS):
            for take in range(UTTERANCES):
                raw = espeak.say(word, speaker.voice,
                                 pitch=int(np.clip(speaker.pitch + rng.integers(-6, 7), 0, 99)),
                                 rate=int(speaker.rate * rng.uniform(0.9, 1.1)),
                                 seed=int(rng.integers(1, 2**31)))
                audio = _resample(raw.astype(np.float64), espeak.sample_rate)
                clip = _channel(_place_in_clip(audio, rng), speaker, rng)
                xs.append(frontend_features(clip))
                ys.append(label)
                devs.append(index)
                parts.append(OWN if take < OWN_UTTERANCES else TEST)
    return {"x": np.stack(xs)[..., None], "y": np.asarray(ys), "device": np.asarray(devs),
            "part": np.asarray(parts, dtype=np.uint8),
            "voices": np.asarray([json.dumps(vars(v)) for v in voices])}


def load_kws(speakers: int = DEFAULT_SPEAKERS, seed: int = 0) -> TaskData:
    if speakers < 3:
        raise ValueError("kws needs at least 3 speakers (pretrain, federated, held-out)")
    key = hashlib.sha256(json.dumps(
        [KEYWORDS, UTTERANCES, OWN_UTTERANCES, ACCENTS, VARIANTS, speakers, seed, 2]).encode())
    cache = paths.data_cache_dir() / f"kws-{speakers}spk-{key.hexdigest()[:12]}.npz"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        context = multiprocessing.get_context("spawn")  # fresh espeak-ng state every time
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            arrays = pool.submit(_synthesize, speakers, seed).result()
        np.savez_compressed(tmp, **arrays)
        tmp.replace(cache)
    with np.load(cache) as data:
        arrays = {k: data[k] for k in data.files}
    names = [f"spk{i:03d}" for i in range(speakers)]
    return TaskData(
        task="kws", labels=list(KEYWORDS), x=arrays["x"].astype(np.float32),
        y=arrays["y"].astype(np.int64), device=arrays["device"].astype(np.int64),
        part=arrays["part"], device_names=names, device_users=names,
    )
