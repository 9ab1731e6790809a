"""Speech Commands for the course: reader, speaker-disjoint splits, download, offline synthesis,
features and their cache.

The one call most code needs::

    ds = thinlab.data.load_dataset("auto", task="10words", feature="logmel")
    print(ds.source.message)      # which data this is, and how to get the real set
    ds.X_train.shape              # (N, 101, 40) float32; ds.y_train (N,) int64

Modules: ``layout`` (folder reader), ``splits`` (which_set and friends), ``tasks`` (10words /
12class), ``audio`` (loading, augmentation), ``features`` (log-mel / MFCC + cache),
``downloader`` + ``extract`` (archives), ``espeak`` + ``synth`` (offline keywords), ``source`` (auto
resolution), ``dataset`` (``load_dataset``). CLI: ``python -m thinlab.data --help``.

Taught in: 00_speech_commands
"""
from thinlab._io import CacheError, cache_root

from ._io import (ArchiveError, AudioError, AudioWarning, ChecksumError, DataError, DataTypeError, DownloadError,
                  UnsafeArchiveError)
from .audio import SAMPLE_RATE, load_audio, mix_noise, random_augment, read_audio, time_shift, write_wav
from .dataset import AUGMENT_DEFAULTS, Dataset, load_dataset
from .downloader import ARCHIVES, Archive, download
from .evalset import EvalSet, fixture_dir, load_eval_set
from .extract import extract_archive
from .features import FeatureCacheWarning, FeatureParams, compute_features, logmel, mfcc
from .layout import SILENCE, UNKNOWN, WORDS10, scan
from .source import DataSource, resolve_source
from .splits import split_clips, which_set
from .synth import synthesize, synthetic_dir
from .tasks import TASKS, plan_task

__all__ = [
    "load_dataset", "Dataset", "load_eval_set", "EvalSet", "fixture_dir", "AUGMENT_DEFAULTS", "load_audio", "read_audio", "write_wav", "mix_noise",
    "time_shift", "random_augment", "SAMPLE_RATE", "resolve_source", "DataSource", "download", "extract_archive",
    "ARCHIVES", "Archive", "synthesize", "synthetic_dir", "logmel", "mfcc", "compute_features", "FeatureParams",
    "FeatureCacheWarning", "scan", "which_set", "split_clips", "plan_task", "TASKS", "WORDS10", "UNKNOWN",
    "SILENCE", "cache_root", "DataError", "AudioError", "DownloadError", "ChecksumError", "ArchiveError",
    "UnsafeArchiveError", "DataTypeError", "AudioWarning", "CacheError",
]
