"""Frozen parameter sets of the analysis stages, with their documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class SpectrogramParams:
    """Log-magnitude, log-frequency spectrogram.

    Attributes
    ----------
    target_sr : int
        Audio is decimated by an integer factor to the rate closest above this (Hz).
    frame_s : float
        Analysis window length in seconds (rounded to the nearest even FFT-friendly size).
    hop_s : float
        Hop between frames in seconds (sets the frame rate, about 100 fps).
    fmin_hz, fmax_hz : float
        Frequency range of the filterbank (Hz); fmax is capped below Nyquist.
    bands_per_octave : int
        Triangular filters per octave.
    log_mul : float
        Compression ``log10(1 + log_mul * magnitude)``.
    """

    target_sr: int = 20000
    frame_s: float = 0.046
    hop_s: float = 0.010
    fmin_hz: float = 30.0
    fmax_hz: float = 11000.0
    bands_per_octave: int = 24
    log_mul: float = 10.0


@dataclass(frozen=True, slots=True)
class OnsetParams:
    """Onset strength (SuperFlux-style spectral flux) and peak picking.

    Attributes
    ----------
    lag_frames : int
        The flux compares a frame with the one ``lag_frames`` earlier (soft attacks need >1).
    max_bands : int
        Half-width of the maximum filter across frequency that suppresses vibrato.
    hold_frames, hold_ratio : int, float
        A peak counts only if at least ``hold_ratio`` of its strength is still there when
        the rise is held for ``hold_frames`` frames (rejects release clicks and knocks).
    pre_max_s, post_max_s : float
        A peak is the maximum of the onset strength within this window around it (the live
        stream uses one frame of look-ahead, see :func:`stream_params`).
    pre_avg_s, post_avg_s : float
        Window of the moving average the peak must exceed by ``delta``.
    delta : float
        Absolute threshold above the moving average (onset-strength units).
    combine_s : float
        Peaks closer than this are merged (the first is kept).
    offset_s : float
        Constant added to every onset time: the detector's measured latency calibration.
    probe_s : float, optional
        Judge a candidate peak against a probe of the next frame computed this long before
        that frame is complete (:mod:`audio_engine.dsp.probe`); needs one frame of
        look-ahead (``post_max_s`` one hop, ``post_avg_s`` 0, ``hold_frames`` 1). None: wait
        for the frames themselves.
    swell_s, swell_dip : float
        A peak at most ``swell_s`` after the last one kept, with no dip below ``swell_dip``
        of the smaller of the two between them, is a swell of the same attack and dropped
        (:func:`audio_engine.dsp.peaks.distinct_peaks`).
    report_hold_frames : int
        The live stream reports an onset once ``hold_frames`` (1) frames show it held, but
        counts it as a note of its timing report (the summary, the accuracy of its tempo
        updates) only once it has also held for this many frames, as offline analysis
        judges every onset: a synthesiser's release click or a knock passes the short hold
        and fails this one. Offline analysis does not read it.
    rise_ratio, rise_max_s, rise_rebound, rise_lead_s : float
        A slow attack's onset is placed ``rise_lead_s`` after the start of its rise (where
        the strength crosses ``rise_ratio`` of the peak's height, at most ``rise_max_s``
        before the peak, not past a dip followed by a rebound of ``rise_rebound``), or at
        the peak when that is earlier (:func:`audio_engine.dsp.peaks.rise_starts`). Both
        steps look only back, so the stream applies them too.
    slow_lag_frames, slow_delta, slow_post_s, slow_clear_s : int, float
        A second detector for attacks too slow for the flux over ``lag_frames`` (a bowed or
        blown note re-articulated legato, which rises over 50-200 ms): peaks of the flux over
        ``slow_lag_frames`` frames (0: off), ``slow_delta`` above its moving average, with
        ``slow_post_s`` of look-ahead in both windows (offline and live alike), each placed
        on the highest frame of the main onset strength from 3 frames before it to 1 after.
        Such a peak is a note of its own only when no main peak lies from ``combine_s``
        before it to ``slow_clear_s`` after it; it then passes the hold gate over
        ``report_hold_frames`` (:func:`audio_engine.dsp.peaks.slow_peaks`). Decided 60-100
        ms after it starts, such a note reaches the live stream that much later.
    """

    lag_frames: int = 2
    max_bands: int = 1
    hold_frames: int = 3
    hold_ratio: float = 0.2
    pre_max_s: float = 0.03
    post_max_s: float = 0.03
    pre_avg_s: float = 0.10
    post_avg_s: float = 0.03
    delta: float = 3.0
    combine_s: float = 0.03
    offset_s: float = 0.0
    probe_s: float | None = None
    swell_s: float = 0.07
    swell_dip: float = 0.2
    report_hold_frames: int = 3
    rise_ratio: float = 0.15
    rise_max_s: float = 0.1
    rise_rebound: float = 0.3
    rise_lead_s: float = 0.0175
    slow_lag_frames: int = 4
    slow_delta: float = 4.0
    slow_post_s: float = 0.03
    slow_clear_s: float = 0.06


@dataclass(frozen=True, slots=True)
class TempoParams:
    """Tempo estimation from the autocorrelation of the onset strength.

    Attributes
    ----------
    min_bpm, max_bpm : float
        Range of tempi considered.
    window_s, hop_s : float
        Window and hop of the local autocorrelation (tempogram).
    prior_bpm, prior_octaves : float
        Log-normal prior over tempo: centre and width (standard deviation in octaves).
    tatum_ratio : float
        The tatum is the fastest autocorrelation peak at least this share of the highest.
    subdivision_ratio : float
        Offline analysis takes a faster, weaker peak (at least this share of the highest)
        that divides the tatum into 2-4 as the tatum when the autocorrelation peaks as high
        one of its periods past the tatum (see :func:`audio_engine.dsp.tempo.subdivided_tatum`).
    accent_weight : float
        Weight of the accent contrast against the prior when grouping tatums into beats.
    level_weight, level_threshold, same_timbre : float
        Offline analysis weighs the notes' level contrast instead (what its t statistic
        exceeds ``level_threshold`` by, times ``level_weight``) when the two phases of a
        grouping in pairs sound alike (the cosine of their band profiles at least
        ``same_timbre``; see :mod:`audio_engine.dsp.accents`).
    level_window_s : float
        A note's level and timbre are read over this long from its start.
    phase_switch_cost : float or None
        Offline analysis lets the grouping phase change where the accents contradict it for
        long enough (a tatum inserted or dropped by the tracker): the cost of a change, in
        units of centred strength ranks divided by their count (see
        :func:`audio_engine.dsp.meter.group_tatums`); None keeps one phase.
    period_smooth : float
        Gaussian smoothing of each window's autocorrelation, as a share of the period, before
        the local beat period is read off it (see :func:`audio_engine.dsp.tempo.local_period`).
    backbeat_alternation, backbeat_margin, backbeat_repeat : float
        A drum kit's backbeat, where the notes' levels do not place the beats. The beats are
        the tatums of the phase whose alternate beats sound unlike each other (kick and
        snare: 1 - the cosine of their mean band profiles at least ``backbeat_alternation``)
        by ``backbeat_margin`` more than any other phase's, whatever the flux says (see
        :func:`audio_engine.dsp.meter.backbeat_phase`); and tatums that take such turns
        strictly (those two apart alike: at most ``backbeat_repeat``) are beats, not pairs
        of them (:func:`audio_engine.dsp.meter.kick_snare_tatums`). None turns both off.
    """

    min_bpm: float = 30.0
    max_bpm: float = 300.0
    window_s: float = 8.0
    hop_s: float = 1.0
    prior_bpm: float = 120.0
    prior_octaves: float = 0.5
    tatum_ratio: float = 0.5
    subdivision_ratio: float = 0.4
    accent_weight: float = 0.1
    level_weight: float = 0.7
    level_threshold: float = 1.5
    same_timbre: float = 0.85
    level_window_s: float = 0.06
    phase_switch_cost: float | None = 1.5
    period_smooth: float = 0.1
    backbeat_alternation: float | None = 0.85
    backbeat_margin: float = 0.05
    backbeat_repeat: float = 0.25


@dataclass(frozen=True, slots=True)
class BeatParams:
    """Dynamic-programming beat tracker that follows a local tempo curve.

    Attributes
    ----------
    tightness : float
        Penalty weight on deviations of an inter-beat interval from the local period.
    trim_ratio : float
        Leading/trailing beats whose onset strength is below this share of the
        median beat strength are dropped.
    snap_s : float
        A beat within this many seconds of a note's onset-strength peak is placed on the
        note's start (a slow attack peaks well after the note starts).
    """

    tightness: float = 100.0
    trim_ratio: float = 0.3
    snap_s: float = 0.035


@dataclass(frozen=True, slots=True)
class AnalysisParams:
    """All parameters of an offline analysis."""

    spectrogram: SpectrogramParams = SpectrogramParams()
    onset: OnsetParams = OnsetParams()
    tempo: TempoParams = TempoParams()
    beat: BeatParams = BeatParams()


def stream_params() -> AnalysisParams:
    """The parameters of the live stream: the offline ones with one frame (10 ms) of
    look-ahead in peak picking and the hold gate instead of three, judged on a probe of that
    frame 8 ms before it is complete, so an onset is reported 20-28 ms after it instead of
    55 ms. Offline analysis keeps the longer look-ahead: it places onsets of slow attacks
    more precisely (benchmarks/RESULTS.md)."""
    offline = AnalysisParams()
    onset = replace(offline.onset, post_max_s=0.01, post_avg_s=0.0, hold_frames=1,
                    probe_s=0.008, report_hold_frames=offline.onset.hold_frames)
    return replace(offline, onset=onset)
