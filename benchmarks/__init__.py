"""Accuracy and speed benchmarks of the engine against its peers (librosa, essentia, aubio).

Benchmark-only code: nothing here is imported by ``audio_engine`` or ``mpt``. aubio (GPLv3)
and essentia (AGPL) are used here and only here.
"""
