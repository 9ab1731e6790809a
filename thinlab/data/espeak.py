"""A small ctypes wrapper around libespeak-ng, as shipped by the ``espeakng-loader`` wheel.

espeak-ng runs in synchronous mode (``AUDIO_OUTPUT_SYNCHRONOUS``): ``espeak_Synth`` returns once
the text is spoken, and a synth callback collects the int16 samples. Voices are named like their
files (``en``, ``en-us``, ``en-029``, ``en-gb-scotland``, ``en-gb-x-rp``, ``en-us-nyc``, …),
optionally with a variant (``en-us+f2``; variants are the files in ``espeak-ng-data/voices/!v``).
``en-gb`` is not a voice file and fails.

Determinism: espeak-ng keeps synthesis state between utterances (and draws breath noise from a
random generator), so the same call gives different samples later in a process. A
:class:`Session` therefore loads a *fresh* instance of the library (a private copy of the
``.so``, dlopen'ed, initialised, seeded with ``espeak_ng_SetRandSeed`` and dlclose'd at the
end): the same seed and the same calls in a session give the same samples, every time.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import atexit
import ctypes
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from thinlab._io import sweep_orphans, temp_prefix
from thinlab._validate import _is_int

from ._io import DataError

#: English voices (file names) with distinct accents; en-Shaw is left out: it reads Latin text as ``en``
ENGLISH_VOICES = ("en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd")
_AUDIO_OUTPUT_SYNCHRONOUS, _POS_CHARACTER, _CHARS_UTF8 = 2, 1, 1
_RATE, _PITCH = 1, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()  # one session at a time: they share the private library file
_PRIVATE: dict = {}


class SynthError(DataError):
    """espeak-ng could not be loaded, or a voice / parameter is not valid."""


def _library() -> tuple:
    """(path of a private copy of libespeak-ng, data folder, variant names), made once per process."""
    if not _PRIVATE:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise SynthError("offline synthesis needs the espeakng-loader wheel (libespeak-ng + its data); "
                             "install it with `pip install espeakng-loader`.") from exc
        sweep_orphans(tempfile.gettempdir())  # private copies left by killed processes
        folder = Path(tempfile.mkdtemp(prefix=temp_prefix("thinlab-espeak")))
        atexit.register(shutil.rmtree, folder, True)
        private = folder / "libespeak-ng-thinlab.so"
        shutil.copyfile(espeakng_loader.get_library_path(), private)
        data = Path(espeakng_loader.get_data_path())
        _PRIVATE.update(lib=str(private), data=data,
                        variants=sorted(p.name for p in (data / "voices" / "!v").iterdir()))
    return _PRIVATE["lib"], _PRIVATE["data"], _PRIVATE["variants"]


def variants() -> list:
    """Names of the voice variants espeak-ng ships (``m1`` … ``m8``, ``f1`` … ``f5``, ``klatt``, …).

    Taught in: 00_speech_commands
    """
    return list(_library()[2])


class Session:
    """A fresh, seeded espeak-ng instance: ``with Session(seed=3) as s: s.speak("yes", voice="en-us")``.

    Taught in: 00_speech_commands
    """

    def __init__(self, *, seed: int = 0):
        if not _is_int(seed):
            raise SynthError(f"seed={seed!r} must be an integer, not a {type(seed).__name__}; pass e.g. seed=0")
        self.seed = int(seed) % 2**31
        self.lib = None

    def __enter__(self):
        path, data, self.variants = _library()
        _LOCK.acquire()
        try:
            lib = ctypes.CDLL(path)
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0)
            if self.sample_rate <= 0:
                raise SynthError(f"espeak_Initialize failed ({self.sample_rate}) with data at {data}; "
                                 "reinstall espeakng-loader.")
            self._chunks = []
            self._callback = _CALLBACK(self._collect)  # referenced until close: the C side calls it
            lib.espeak_SetSynthCallback(self._callback)
            lib.espeak_ng_SetRandSeed(self.seed)
            self.lib = lib
        except BaseException:
            _LOCK.release()
            raise
        return self

    def _collect(self, wav, n, _events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = keep going

    def __exit__(self, *exc):
        try:
            self.lib.espeak_Terminate()
            dlclose = getattr(__import__("_ctypes"), "dlclose", None)
            if dlclose is not None:  # unload, so the next session starts from a clean library state
                dlclose(self.lib._handle)
        finally:
            self.lib = None
            _LOCK.release()

    def speak(self, text: str, *, voice: str = "en", rate: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text``; returns int16 samples, shape (n,), at ``self.sample_rate`` (22050 Hz).

        Parameters
        ----------
        text : str
        voice : str
            A voice file name, optionally ``+variant`` (``"en-us+f2"``).
        rate : int
            Words per minute, 80 … 450.
        pitch : int
            Base pitch, 0 … 99.

        Taught in: 00_speech_commands
        """
        if self.lib is None:
            raise SynthError("Session.speak called outside `with Session() as s:`; open the session first.")
        if not isinstance(text, str) or not text.strip():
            raise SynthError(f"text={text!r}: expected a non-empty string to speak, e.g. 'yes'")
        if not isinstance(voice, str):
            raise SynthError(f"voice={voice!r} must be a string such as 'en-us' or 'en-us+f2'")
        if not _is_int(rate) or not _is_int(pitch):
            raise SynthError(f"rate={rate!r}, pitch={pitch!r}: expected whole numbers, rate in 80…450 words/min and "
                             "pitch in 0…99.")
        base, _, variant = voice.partition("+")
        if variant and variant not in self.variants:
            raise SynthError(f"espeak-ng has no voice variant {variant!r} (in {voice!r}); use one of "
                             f"{', '.join(self.variants[:12])}, … (see thinlab.data.espeak.variants()).")
        if not 80 <= int(rate) <= 450 or not 0 <= int(pitch) <= 99:
            raise SynthError(f"rate={rate}, pitch={pitch}: espeak-ng expects rate in 80…450 words/min and pitch "
                             "in 0…99.")
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            hint = " (British English is 'en', not 'en-gb')" if base.lower() == "en-gb" else ""
            raise SynthError(f"espeak-ng has no voice {voice!r}{hint}; use one of {', '.join(ENGLISH_VOICES)}, "
                             "optionally with +m1 … +f5.")
        self.lib.espeak_SetParameter(_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        self._chunks = []
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise SynthError(f"espeak_Synth failed with error {err} for {text!r} in voice {voice!r}.")
        out, self._chunks = self._chunks, []
        return np.concatenate(out).astype(np.int16, copy=False) if out else np.zeros(0, np.int16)


def speak(text: str, *, voice: str = "en", rate: int = 175, pitch: int = 50, seed: int = 0) -> tuple:
    """Speak ``text`` in a fresh :class:`Session` (so the same arguments give the same samples).

    Returns
    -------
    samples : np.ndarray, int16, shape (n,)
    sample_rate : int
        espeak-ng's rate (22050 Hz).

    Taught in: 00_speech_commands
    """
    with Session(seed=seed) as s:
        return s.speak(text, voice=voice, rate=rate, pitch=pitch), s.sample_rate
