"""Causal (streaming) analysis: the engine run live on a stream of audio chunks.

The stream runs the offline kernels frame by frame, so its onsets are the offline onsets
computed with the same parameters (:func:`audio_engine.params.stream_params`):

- decimation, framing, the spectrogram, the onset strength, the hold gate and the peak
  picking are the same computations on the same samples; each frame is computed once all
  of its samples have arrived, each peak once a probe of the frame after it can be computed
  (8 ms before that frame is complete: :mod:`audio_engine.dsp.probe`), so a chunking never
  changes a value, and an onset is reported once the audio 17-28 ms past it has been fed
  (tests/audio_engine/test_stream.py holds it to 30 ms); a peak whose probe was wrong comes
  one frame (10 ms) later; a live onset becomes a note of the timing report (the summary,
  the tempo updates' accuracy) once it has also passed the offline hold gate of three
  frames, which a release click or a knock does not;
- tempo and beats come from the offline tempo stages run every half second of audio on the
  last ``TEMPO_WINDOW_S`` of onset strength: the tatum from the windows' autocorrelation
  summed over the recent updates (each update's weight decaying by ``TATUM_MEMORY``), the
  beat tracker's path over the window at the tatum period, grouped into beats (the notes'
  level and timbre, for the grouping, each measured as offline once the samples it is read
  from have arrived) in the phase that the accents have favoured over the recent updates;
  the next beat is the path's beat nearest one period after the last, and is reported once
  it is ``BEAT_CONFIRM_S`` old and the update before had it too; the first beats wait for
  ``FIRST_BEATS_S`` of audio (then reach back to the start), and at the end the weak
  trailing beats are dropped, as offline;
- metronome clicks on the target grid are recognised with a signature learnt from the
  recent grid lines instead of the whole take (:mod:`audio_engine.stream_clicks`): live by
  their flux alone (an onset event says ``is_metronome``), for the report as offline, also
  by what they leave 50 ms later (a note played with the click is still sounding); the
  notes on grid lines heard before a signature could be learnt (the first eight lines) are
  judged again once there is one, so the report does not count the first clicks as notes;
- the state is bounded: ring buffers of samples, frames and onset strength; only the notes
  and beats (the summary's content) grow with the stream, a few bytes each.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from audio_engine.analysis import check_target
from audio_engine.dsp.accents import (
    LEAD_S,
    N_PROFILE_BANDS,
    TatumNotes,
    measure_notes,
    tatum_notes,
    window_samples,
)
from audio_engine.dsp.beats import backtrack, beat_cumulative_score, trim_weak
from audio_engine.dsp.meter import (
    _strength_at_kernel,
    backbeat_phase,
    group_tatums,
    phase_evidence,
    pulse_index,
)
from audio_engine.dsp.metronome import (
    TIMED_RISE_FRAMES,
    classify_clicks,
    is_timed_click,
    late_remain_frames,
    onset_remain,
    remain_frames,
)
from audio_engine.dsp.onsets import (
    _max_filter_bands_kernel,
    _stream_spectra_kernel,
    held_strength_rows,
)
from audio_engine.dsp.peaks import (
    SLOW_SNAP_BACK,
    _pick_range_kernel,
    _refine_range_kernel,
    clear_of,
    distinct_peaks,
    pick_frames,
    rise_frames,
    rise_starts,
    slow_frames,
    snap_to_main,
    swell_frames,
)
from audio_engine.dsp.probe import PickState, Probe, Prober, passes_hold, pick_probed
from audio_engine.dsp.signal import Decimator, check_sr, decimation_factor, to_mono_float32
from audio_engine.dsp.spectrogram import (
    _filterbank_log_kernel,
    _frame_kernel,
    _hann,
    frame_geometry,
    head_frames,
    log_filterbank,
)
from audio_engine.dsp.tempo import _peak_near_kernel, estimate_tatum, local_period, tempogram
from audio_engine.errors import ParameterError, StateVersionError
from audio_engine.events import (
    BeatEvent,
    Event,
    OnsetEvent,
    StreamSummary,
    TempoEvent,
    WarningCode,
    WarningEvent,
)
from audio_engine.params import AnalysisParams, stream_params
from audio_engine.stream_clicks import RECENT_NOTES, GridClicks, Judge, Unjudged
from audio_engine.timing import (
    grid_deviations_ms,
    infer_subdivision,
    mood_for,
    timing_report,
)

MAX_CHANNELS = 8
TEMPO_UPDATE_S = 0.5  # a tempo update per half second of audio
ESTIMATE_EVERY = 1  # the tempo is re-estimated every this many updates
TEMPO_WINDOW_S = 8.0  # the tempo and the beats come from this much recent audio
TATUM_MEMORY = 0.9  # weight, per update, of the earlier windows' autocorrelation in the tatum's
BEAT_CONFIRM_S = 1.0  # a beat is reported when the audio is this far past it
FIRST_BEATS_S = 4.0  # the first beats are placed once this much audio has been heard
ON_TIME_MS = 25.0  # a note this close to its grid line is on time (the report's tolerance_ms)
CLIP_LEVEL = 0.999
CLIP_BLOCK = 4096  # input samples per clipping check
CLIP_MIN_SAMPLES = 3
QUIET_DBFS = -38.0  # the loudest 10 ms of the last seconds below this: too quiet
SILENCE_DBFS = -70.0  # a 10 ms hop below this is silence
LEVEL_WINDOW_S = 3.0
LONG_SILENCE_S = 10.0
WARNING_REPEAT_S = 10.0
PERIOD_FOLLOW = 0.15  # log-ratio within which a new period estimate is followed
SWITCH_UPDATES = 4  # agreeing estimates of another level, the current one unseen, to switch
PERIOD_SMOOTHING = 0.3  # weight of a new period estimate
PHASE_MARGIN = 4.0  # summed t statistics by which another beat phase must lead to be taken
PHASE_REFERENCE_BEATS = 4  # the previous update's last beats, whose phase the next ones continue
PHASE_DECAY = 0.95  # weight of the phase evidence of the previous updates
BACKBEAT_T = 3.0  # the phase evidence of a window whose beats alternate kick and snare
PATH_REACH = 0.5  # the path's beat within this share of a period of the prediction is next
PATH_MARGIN = 0.1  # ... once the update before had it within this share of a period
BEAT_SEARCH = 0.3  # a beat is searched within this share of a period of its prediction
BEAT_SPREAD = 0.12  # the preference for the predicted time (share of a period)


# An event with the frame count at which it became certain and its rank among events that
# became certain together; sorting by them gives the same order for any chunking.
_Keyed = tuple[int, int, Event]
_RANK = {WarningEvent: 0, OnsetEvent: 1, BeatEvent: 2, TempoEvent: 3}


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """What a stream carries and what it is timed against.

    Attributes
    ----------
    sr : int
        Sample rate in Hz (8000-96000).
    channels : int
        Interleaved channels per frame (1-8); mixed down to mono.
    target_bpm : float, optional
        Target tempo (20-400 BPM) for deviations and the timing report.
    grid_start_s : float
        Time of the target grid's first line, seconds on the stream's clock.
    subdivision : {1, 2, 3, 4}, optional
        Notes per beat; inferred when omitted.
    latency_ms : float
        Input latency subtracted from note times (within ±1000 ms).
    """

    sr: int
    channels: int = 1
    target_bpm: float | None = None
    grid_start_s: float = 0.0
    subdivision: int | None = None
    latency_ms: float = 0.0


@dataclass(slots=True)
class _Ring:
    """A growing-at-the-end, trimmed-at-the-front array addressed by absolute index.

    ``data`` is a view of a larger buffer (``data`` is ``buf[off : off + len(data)]``): an
    append writes into the room after it, and only when there is none are the live values
    copied to a new buffer of twice their size, so appending a chunk's few values does not
    copy the whole ring each time, and the buffer stays within twice the live values."""

    data: NDArray[Any]  # indexed by its first axis: values, or rows (the flux per band)
    start: int = 0
    buf: NDArray[Any] | None = None
    off: int = 0

    @property
    def end(self) -> int:
        return self.start + int(self.data.shape[0])

    def append(self, values: NDArray[Any]) -> None:
        n, k = self.data.shape[0], values.shape[0]
        buf = self.buf
        if buf is None or self.off + n + k > buf.shape[0] or buf.dtype != values.dtype:
            dtype = np.result_type(self.data, values)
            buf = np.empty((max(2 * (n + k), 64), *self.data.shape[1:]), dtype=dtype)
            buf[:n] = self.data
            self.buf, self.off = buf, 0
        buf[self.off + n : self.off + n + k] = values
        self.data = buf[self.off : self.off + n + k]

    def keep_from(self, index: int) -> None:
        cut = index - self.start
        if cut > 0:
            self.data = self.data[cut:]
            self.off += cut
            self.start = index

    def __getstate__(self) -> tuple[NDArray[Any], int]:
        return self.data.copy(), self.start  # the live values only, not the buffer

    def __setstate__(self, state: tuple[NDArray[Any], int]) -> None:
        self.data, self.start = state
        self.buf, self.off = None, 0


@dataclass(frozen=True, slots=True)
class _Window:
    """What the offline tempo stages see in the recent window of onset strength (frames
    from the start of the stream)."""

    beat_period: float  # frames, at the window's own metrical level
    confidence: float
    near: float | None  # the autocorrelation peak nearest the stream's period, frames
    tatums: NDArray[np.int64]  # the beat tracker's path at the tatum period
    tatum_period: float  # frames (median over the window)
    local_period: NDArray[np.float64]  # the tatum period at each frame of the window
    index: NDArray[np.int64]  # grid index of each tatum (a gap counts its missing tatums)
    start: int  # the window's first frame
    notes: TatumNotes  # the measured notes on the tatums


@dataclass(slots=True)
class _Heard:
    """A live onset waiting for the report's judgement (the hold gate; on a grid line, the
    metronome's)."""

    frame: int  # its onset-strength peak
    strength: float
    time_s: float
    deviation_ms: float | None
    at: int = -1  # the frame of its flux vector when it lies on a grid line, else -1
    live_click: bool = False  # reported live as a metronome click
    judge: Judge | None = None  # None on a grid line: no signature could be learnt yet
    vector: NDArray[np.float32] | None = None  # its flux vector when it lies on a grid line


@dataclass(slots=True)
class _Levels:
    """Per-frame signal levels for the input warnings."""

    frame_power: deque[float] = field(default_factory=deque)
    power_sum: float = 0.0
    silent_frames: int = 0
    last_warning: dict[str, float] = field(default_factory=dict)


class StreamAnalyzer:
    """Analyse one live stream chunk by chunk; one instance per stream, not thread-safe.

    ``process(chunk)`` returns the events that the audio fed so far makes certain; the
    same audio in any chunking gives the same events. ``finish()`` flushes and returns the
    last events and the summary.

    Parameters
    ----------
    config : StreamConfig
        Sample rate, channels and the optional target.
    params : AnalysisParams, optional
        The analysis parameters (default :func:`audio_engine.params.stream_params`).

    Raises
    ------
    ParameterError
        On an invalid configuration.
    """

    def __init__(self, config: StreamConfig, params: AnalysisParams | None = None) -> None:
        self.config = config
        self.params = p = params or stream_params()
        self._sr = check_sr(config.sr)
        if not 1 <= config.channels <= MAX_CHANNELS:
            raise ParameterError(f"channels must be 1-{MAX_CHANNELS}, got {config.channels!r}")
        check_target(config.target_bpm, config.grid_start_s, config.subdivision, config.latency_ms)
        factor = decimation_factor(self._sr, p.spectrogram.target_sr)
        self._geom = frame_geometry(self._sr / factor, p.spectrogram)
        self._fb = log_filterbank(
            self._geom.sr,
            self._geom.n_fft,
            p.spectrogram.fmin_hz,
            p.spectrogram.fmax_hz,
            p.spectrogram.bands_per_octave,
        )
        fps = self._geom.fps
        o = p.onset
        (self._pre_max, self._post_max, self._pre_avg, self._post_avg,
         self._combine) = pick_frames(o, fps)
        self._swell = swell_frames(o, fps)
        self._rise = rise_frames(o, fps)
        self._slow_post, self._slow_clear = slow_frames(o, fps)
        self._look = max(self._post_max, self._post_avg, o.hold_frames if o.hold_ratio > 0 else 0)
        self._head = head_frames(self._geom, o.lag_frames)
        self._slow_head = head_frames(self._geom, o.slow_lag_frames)
        self._prober = Prober.of(self._geom, p.spectrogram, o)
        self._tempo_every = max(1, round(TEMPO_UPDATE_S * fps))
        self._tempo_window = max(16, round(TEMPO_WINDOW_S * fps))
        self._beat_confirm = round(BEAT_CONFIRM_S * fps)
        self._first_beats = round(FIRST_BEATS_S * fps)
        self._remain_ahead = remain_frames(fps)
        self._remain_late = late_remain_frames(fps)
        # the offline look-ahead of peak picking, which the report applies (:meth:`_confirm`)
        self._report_post = max(0, round(AnalysisParams().onset.post_max_s * fps))
        self._note_lead = round(LEAD_S * self._geom.sr)  # a note's level is read from before it
        self.reset()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled analyzer (a checkpoint of a cut stream).

        Raises
        ------
        StateVersionError
            The state was pickled by an engine whose analyzer kept other attributes (an
            older or newer version, during a rolling upgrade): carrying it on would fail
            half-way through the stream.
        """
        expected = _state_names()
        if set(state) != expected:
            missing = sorted(expected - set(state))
            extra = sorted(set(state) - expected)
            raise StateVersionError(
                "the stream's state was saved by another version of the engine "
                f"(missing {missing[:5]}, unknown {extra[:5]})"
            )
        self.__dict__.update(state)

    def reset(self) -> None:
        """Forget everything fed so far (a new stream with the same configuration)."""
        n_bands = self._fb[0].shape[0]
        lag = max(self.params.onset.lag_frames, self.params.onset.slow_lag_frames)
        self._n_in = 0
        self._decimator = Decimator.of(self._sr, self.params.spectrogram.target_sr)
        self._n_dec = 0
        self._dec = _Ring(np.zeros(0, dtype=np.float32))  # decimated samples
        self._n_frames = 0
        # spectra: the last frames (for the lag reference, the hold and click vectors)
        self._spec = _Ring(np.zeros((0, n_bands), dtype=np.float32))
        self._ref = np.zeros((lag, n_bands), dtype=np.float32)  # max-filtered, before frame 0
        self._ref_start = -lag
        self._odf = _Ring(np.zeros(0))
        self._odf_slow = _Ring(np.zeros(0))  # the slow detector's flux (OnsetParams.slow_*)
        self._held = _Ring(np.zeros(0))
        self._n_held = 0
        self._n_peaked = 0
        self._last_peak = -(10**9)
        self._last_onset_peak = -(10**9)  # the frame of the last peak reported as an onset
        # the slow detector: frames picked, its last peak, its peaks waiting for the main
        # peaks after them to be known (peak frame, frame and position placed on the main
        # curve), the last one placed, and the recent main peaks past the hold gate
        self._n_slow_picked = 0
        self._last_slow_peak = -(10**9)
        self._slow_pending: deque[tuple[int, int, float]] = deque()
        self._last_slow_frame = -(10**9)
        self._main_frames: deque[int] = deque()
        self._probed = PickState()
        self._flux = _Ring(np.zeros((0, n_bands), dtype=np.float32))  # per-band flux rows
        # the notes' level and timbre for the metrical level (:mod:`audio_engine.dsp.accents`):
        # the start frames of notes not yet measured (their samples still to come), and
        # (start frame, level dB, profile) of the notes measured, over the tempo window
        self._unmeasured: deque[int] = deque()
        self._sounds: deque[tuple[int, float, NDArray[np.float64]]] = deque()
        # outputs
        self._notes: list[float] = []  # the notes reported live
        self._sound_at_start = False  # an onset peak in the head frames (not a note)
        # the live onsets not yet judged for the report (its hold gate, the metronome), and
        # the start times of the notes that passed
        self._pending: deque[_Heard] = deque()
        self._report_notes: list[float] = []
        # (peak frame, start time s) of the recent notes, for placing beats on note starts
        self._note_peaks: deque[tuple[int, float]] = deque(maxlen=RECENT_NOTES)
        self._deviations: list[float] = []  # of the report's notes
        self._n_on_time = 0  # of those deviations, how many are within ON_TIME_MS
        self._beats: list[float] = []
        self._last_beat_frame: int | None = None
        # accent evidence for each beat phase (row: tatums per beat), relative to the phase of
        # the previous update's beats
        self._phase_scores = np.zeros((5, 4))
        self._next_tempo_frame = self._tempo_every
        self._last_tempo_frame = 0
        self._emit_at = 0
        self._period: float | None = None  # beat period in frames
        self._switch: deque[float] = deque(maxlen=SWITCH_UPDATES + 1)
        self._path: NDArray[np.int64] = np.zeros(0, dtype=np.int64)  # the recent beat path
        self._previous_path: NDArray[np.int64] = self._path  # the path of the update before
        self._confidence = 0.0
        # the windows' autocorrelations, each update's weighted by TATUM_MEMORY per update
        self._acf_sum: NDArray[np.float64] | None = None
        self._subdivision = self.config.subdivision
        # metronome: the target grid's lines (None without a target), where a bleeding click
        # is recorded (latency_ms after the line, as a note played with it)
        target = self.config.target_bpm
        self._grid = None if target is None else GridClicks(
            60.0 / target * self._geom.fps,
            self._geom.fps,
            self.config.grid_start_s + self.config.latency_ms / 1000.0,
            offset_s=self.params.onset.offset_s,
            delta=self.params.onset.delta,
            remain_frames=self._remain_ahead,
        )
        self._clicks_removed = 0
        self._bleed_warned = False
        # input checks
        self._clip_block_count = 0
        self._clip_block_start = 0
        self._levels = _Levels()
        self._finished = False

    # ------------------------------------------------------------------ public

    @property
    def audio_s(self) -> float:
        """Seconds of audio fed so far."""
        return self._n_in / self._sr

    def process(self, samples: NDArray[np.generic]) -> list[Event]:
        """Feed samples shaped (n,) or (n, channels), int16 or float; return new events.

        Raises
        ------
        ParameterError
            On a wrong shape, dtype, channel count or NaN/infinite samples.
        """
        if self._finished:
            raise ParameterError("the stream has ended; no more audio can be fed")
        x = np.asarray(samples)
        if x.ndim not in (1, 2):
            raise ParameterError(f"a chunk must have shape (n,) or (n, channels), got {x.shape}")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ParameterError(f"unsupported sample dtype {x.dtype}; use int16, int32 or float")
        if x.ndim == 2 and x.shape[1] != self.config.channels:
            raise ParameterError(
                f"chunk has {x.shape[1]} channels, the stream was configured with "
                f"{self.config.channels}"
            )
        if x.ndim == 1 and self.config.channels > 1:
            if x.shape[0] % self.config.channels:
                raise ParameterError(
                    f"{x.shape[0]} samples do not split into {self.config.channels} channels"
                )
            x = x.reshape(-1, self.config.channels)
        y = to_mono_float32(x)  # validates before anything changes
        events: list[_Keyed] = []
        self._check_clipping(x, events)
        if y.size:
            self._feed(y, events)
        return [e for _, _, e in sorted(events, key=lambda k: (k[0], k[1]))]

    def finish(self) -> tuple[list[Event], StreamSummary]:
        """End the stream: the remaining events and the summary."""
        if self._finished:
            raise ParameterError("the stream has already ended")
        self._finished = True
        events: list[_Keyed] = []
        # the last decimated samples (zeros past the end, as offline)
        self._add_decimated(self._decimator.finish())
        total_frames = self._n_dec // self._geom.hop_length + 1 if self._n_dec else 0
        tail = max(0, (self._n_dec - self._geom.n_fft // 2) // self._geom.hop_length + 1)
        self._frames_until(total_frames, events, final=True, mute_from=tail)
        self._update_tempo(events, final=True)
        duration_s = self.audio_s
        notes = np.asarray(self._report_notes, dtype=np.float64)
        beats = np.asarray(self._beats, dtype=np.float64)
        tempo_bpm = (
            float(60.0 / np.median(np.diff(beats)))
            if beats.size >= 4
            else (None if self._period is None else 60.0 * self._geom.fps / self._period)
        )
        timing = None
        if self.config.target_bpm is not None:
            timing = timing_report(
                notes,
                beats,
                duration_s,
                target_bpm=self.config.target_bpm,
                grid_start_s=self.config.grid_start_s,
                subdivision=self.config.subdivision,
                latency_ms=self.config.latency_ms,
                metronome_clicks_removed=self._clicks_removed,
            )
        summary = StreamSummary(
            duration_s=duration_s,
            tempo_bpm=tempo_bpm,
            n_onsets=int(notes.size),
            n_beats=int(beats.size),
            timing=timing,
        )
        return [e for _, _, e in sorted(events, key=lambda k: (k[0], k[1]))], summary

    # ------------------------------------------------------------------ stages

    def _feed(self, y: NDArray[np.float32], events: list[_Keyed]) -> None:
        self._n_in += y.shape[0]
        self._add_decimated(self._decimator.push(y))
        hop, half_win = self._geom.hop_length, self._geom.n_fft // 2
        frames_ready = (self._n_dec - half_win) // hop + 1 if self._n_dec >= half_win else 0
        self._frames_until(frames_ready, events, final=False, mute_from=None)

    def _add_decimated(self, new: NDArray[np.float32]) -> None:
        self._dec.append(new)
        self._n_dec += new.shape[0]

    def _frames_until(
        self, n_frames: int, events: list[_Keyed], *, final: bool, mute_from: int | None
    ) -> None:
        """Compute frames up to ``n_frames`` and everything that depends on them."""
        geom = self._geom
        f0 = self._n_frames
        if n_frames > f0:
            # frame f covers decimated samples f*hop - n_fft/2 ..; the buffer keeps them all
            start = f0 * geom.hop_length - geom.n_fft // 2 - self._dec.start
            frames = _frame_kernel(
                self._dec.data, _hann(geom.n_fft), geom.hop_length, start, n_frames - f0
            )
            spec = scipy.fft.rfft(frames, axis=1)
            fb = self._fb
            S = _filterbank_log_kernel(
                spec, fb[0], fb[1], fb[2], fb[3], self.params.spectrogram.log_mul
            )
            self._add_spectra(S, f0, mute_from)
            self._track_levels(f0, n_frames, events)
            self._n_frames = n_frames
        self._update_held(final)
        self._metronome_positions(final)
        # in frame order: the onsets certain before each tempo update, then the update
        while self._n_frames >= self._next_tempo_frame and not final:
            b = self._next_tempo_frame
            self._pick(events, final=False, upto=b - self._look)
            self._confirm(b, events, final=False)
            self._update_tempo(events, final=False, at_frame=b)
            self._next_tempo_frame += self._tempo_every
        self._pick(events, final)
        self._confirm(self._n_frames, events, final=final)
        # the samples of the next frame, of the probes of the undecided frames, and of the
        # notes still to be measured (a note starts up to a rise, or the slow detector's
        # snap back, before its peak)
        first = min(self._n_frames, self._n_peaked - self._rise - SLOW_SNAP_BACK - 2,
                    self._slow_first())
        if self._unmeasured:
            first = min(first, self._unmeasured[0])
        keep = max(0, first * geom.hop_length - geom.n_fft // 2 - self._note_lead)
        self._dec.keep_from(keep)
        self._trim()

    def _add_spectra(self, S: NDArray[np.float32], f0: int, mute_from: int | None) -> None:
        o = self.params.onset
        ref_new, odf, odf_slow, flux = _stream_spectra_kernel(
            S, self._ref, o.lag_frames, o.slow_lag_frames, o.max_bands
        )
        muted = max(0, mute_from - f0) if mute_from is not None else S.shape[0]
        odf[muted:] = 0.0
        self._odf.append(odf)
        if o.slow_lag_frames > 0:
            odf_slow[muted:] = 0.0
            self._odf_slow.append(odf_slow)
        keep = max(o.lag_frames, o.slow_lag_frames) + 1
        self._ref = np.concatenate([self._ref, ref_new])[-keep:]
        if self._spec.data.shape[0] == 0:
            self._spec.start = f0
        self._spec.append(S)
        # per-band flux rows, for the metronome's click and note vectors
        self._flux.append(flux)

    def _update_held(self, final: bool) -> None:
        o = self.params.onset
        if o.hold_ratio <= 0:
            return
        hold = o.hold_frames
        upto = self._n_frames if final else self._n_frames - hold
        if upto <= self._n_held:
            return
        self._held.append(self._held_strength(self._n_held, upto, hold))
        self._n_held = upto

    def _held_strength(self, lo: int, upto: int, hold: int) -> NDArray[np.float64]:
        """Held strength (:func:`~audio_engine.dsp.onsets.sustained_strength` with ``hold``
        frames) of frames ``lo .. upto-1``, from the spectra of frames ``lo - lag`` to
        ``upto + hold`` (those that exist)."""
        lag = self.params.onset.lag_frames
        s0 = self._spec.start
        S = self._spec.data[lo - s0 : min(self._n_frames, upto + hold) - s0]
        return held_strength_rows(S, upto - lo, self._ref_rows(lo - lag, upto - lag),
                                  lag_frames=lag, hold_frames=hold)

    def _ref_rows(self, a: int, b: int) -> NDArray[np.float32]:
        """Max-filtered spectra of frames ``a .. b+lag-1`` (zeros before frame 0)."""
        o = self.params.onset
        lag = o.lag_frames
        s0 = self._spec.start
        lo, hi = max(a, 0), max(a, 0, b + lag)
        n_zero = min(lo, b + lag) - a if b + lag > a else 0  # frames before 0: zeros
        S = self._spec.data[lo - s0 : hi - s0]
        if n_zero:
            S = np.concatenate([np.zeros((n_zero, S.shape[1]), np.float32), S])
        S = np.ascontiguousarray(S, dtype=np.float32)
        return _max_filter_bands_kernel(S, o.max_bands) if o.max_bands > 0 else S

    def _pick(self, events: list[_Keyed], final: bool, upto: int | None = None) -> None:
        if self._prober is not None:
            self._pick_probed(self._prober, events, final, upto)
            return
        if upto is None:
            upto = self._n_frames if final else self._n_frames - self._look
        upto = min(upto, self._n_held) if self.params.onset.hold_ratio > 0 else upto
        if upto <= self._n_peaked:
            return
        frames, self._last_peak = _pick_range_kernel(
            self._odf.data,
            self._odf.start,
            self._n_frames,
            self._n_peaked,
            upto,
            self._pre_max,
            self._post_max,
            self._pre_avg,
            self._post_avg,
            self.params.onset.delta,
            self._combine,
            self._last_peak,
        )
        peaks = _refine_range_kernel(self._odf.data, self._odf.start, self._n_frames, frames)
        self._n_peaked = upto
        main = [(round(pk), float(pk), round(pk), None) for pk in peaks]
        self._onsets([m for m in main if self._holds(m[0])], events, final)

    def _holds(self, i: int) -> bool:
        """Whether the peak at frame ``i`` passes the live hold gate
        (:func:`~audio_engine.dsp.peaks.held_peaks`)."""
        o = self.params.onset
        if o.hold_ratio <= 0:
            return True
        held, hs = self._held.data, self._held.start
        best = max(held[max(i - 1, hs) - hs], held[i - hs])
        return bool(best >= o.hold_ratio * float(self._odf.data[i - self._odf.start]))

    def _onsets(
        self,
        main: list[tuple[int, float, int, NDArray[np.float32] | None]],
        events: list[_Keyed],
        final: bool,
    ) -> None:
        """Report the main detector's peaks past the hold gate, each (frame, position,
        frame decided, probe flux), and the slow detector's peaks now decided
        (:meth:`_slow_onsets`), in the order of their frames."""
        o = self.params.onset
        fps = self._geom.fps
        main = self._past_head(main, self._head)
        self._main_frames.extend(m[0] for m in main)
        slow = self._past_head(self._slow_onsets(final), self._slow_head)
        for i, pos, decided, ahead in sorted(main + slow, key=lambda m: m[0]):
            start = self._attack_start(pos)
            if start is None:
                continue
            strength = float(self._odf.data[i - self._odf.start])
            time_s = max(0.0, start / fps + o.offset_s)
            events.append(
                (
                    decided + self._look + 1,
                    _RANK[OnsetEvent],
                    self._note(time_s, strength, i, events, ahead),
                )
            )

    def _past_head(
        self, peaks: list[tuple[int, float, int, NDArray[np.float32] | None]], head: int
    ) -> list[tuple[int, float, int, NDArray[np.float32] | None]]:
        """The peaks (frame, position, ...) picked at frame ``head`` or later: the earlier
        ones are the recording's start, no note (:func:`~audio_engine.dsp.spectrogram.
        head_frames`), but a sound there lets the beats start there (:meth:`_start_beats`)."""
        kept = [p for p in peaks if math.ceil(p[1] - 0.5) >= head]
        self._sound_at_start |= len(kept) < len(peaks)
        return kept

    def _slow_onsets(
        self, final: bool
    ) -> list[tuple[int, float, int, NDArray[np.float32] | None]]:
        """The slow detector's peaks (:func:`~audio_engine.dsp.peaks.slow_peaks`) whose
        frames up to ``slow_clear_s`` after them the main detector has decided, past the
        hold gate of the report (``report_hold_frames``): (frame, position, frame decided,
        None)."""
        o = self.params.onset
        if o.slow_lag_frames <= 0:
            return []
        n = self._n_frames
        upto = n if final else min(n - self._slow_post, self._n_peaked)
        if upto > self._n_slow_picked:
            frames, self._last_slow_peak = _pick_range_kernel(
                self._odf_slow.data,
                self._odf_slow.start,
                n,
                self._n_slow_picked,
                upto,
                self._pre_max,
                self._slow_post,
                self._pre_avg,
                self._slow_post,
                o.slow_delta,
                self._combine,
                self._last_slow_peak,
            )
            self._n_slow_picked = upto
            for i in frames:
                j, pos = snap_to_main(self._odf.data, self._odf.start, n, int(i))
                self._slow_pending.append((int(i), j, pos))
        out: list[tuple[int, float, int, NDArray[np.float32] | None]] = []
        while self._slow_pending:
            i, j, pos = self._slow_pending[0]
            if not final and j + self._slow_clear >= self._n_peaked:
                break
            self._slow_pending.popleft()
            main = np.fromiter(self._main_frames, dtype=np.int64)
            if j == self._last_slow_frame or not clear_of(main, j, self._combine,
                                                          self._slow_clear):
                continue
            self._last_slow_frame = j
            # decided this late, it passes the report's hold gate at once, as offline
            need = o.hold_ratio * float(self._odf.data[j - self._odf.start])
            if o.hold_ratio <= 0 or self._report_held(j, o.report_hold_frames) >= need:
                out.append((j, pos, max(i + self._slow_post, j + self._slow_clear + 1), None))
        return out

    def _pick_probed(
        self, prober: Prober, events: list[_Keyed], final: bool, upto: int | None
    ) -> None:
        """:meth:`_pick` with probes: frame ``i`` is decided once the probe of frame
        ``i + 1`` can be computed (``cut`` samples before that frame is complete)."""
        geom = self._geom
        decidable = max(0, (self._n_dec - geom.n_fft // 2 + prober.cut) // geom.hop_length)
        limit = self._n_frames if final else min(self._n_frames, decidable, self._n_held + 1)
        upto = limit if upto is None else min(upto, limit)
        if upto <= self._n_peaked:
            return
        o = self.params.onset
        lag = o.lag_frames

        def probe_at(f: int) -> Probe:
            refs = self._ref_rows(f - 1 - lag, f + 1 - 2 * lag)
            S_i = self._spec.data[f - 1 - self._spec.start]
            return prober.probe(
                self._dec.data, self._dec.start, self._n_dec, f, S_i, refs[0], refs[1]
            )

        picked = pick_probed(
            self._odf.data,
            self._odf.start,
            self._n_frames,
            self._n_peaked,
            upto,
            last_frame=self._n_frames - 1 if final else None,
            pre_max=self._pre_max,
            pre_avg=self._pre_avg,
            delta=o.delta,
            combine=self._combine,
            state=self._probed,
            probe_at=probe_at,
        )
        self._n_peaked = upto
        held, hs = self._held.data, self._held.start
        main = []
        for pos, i, ahead, decided in picked:
            strength = float(self._odf.data[i - self._odf.start])
            if o.hold_ratio > 0 and not passes_hold(
                lambda f: float(held[f - hs]), i, ahead, o.hold_ratio * strength
            ):
                continue
            main.append((i, pos, decided, None if ahead is None else ahead.flux))
        self._onsets(main, events, final)

    def _attack_start(self, pos: float) -> float | None:
        """Where the onset of the peak at ``pos`` (frames, past the hold gate) starts, in
        frames, as offline analysis places it (:func:`~audio_engine.dsp.peaks.rise_starts`);
        None when it is a swell of the last onset's attack
        (:func:`~audio_engine.dsp.peaks.distinct_peaks`). Both look only back."""
        o = self.params.onset
        fps = self._geom.fps
        odf, o0 = self._odf.data, self._odf.start
        i = math.floor(pos + 0.5)  # the peak's frame, as the offline kernels take it
        last = self._last_onset_peak
        if i - last <= self._swell and last >= o0:
            window = odf[last - o0 : i - o0 + 1]
            pair = np.array([0.0, float(i - last)])
            if not distinct_peaks(window, pair, max_frames=i - last, dip_ratio=o.swell_dip)[1]:
                return None
        lo = max(o0, i - self._rise, last + 1)
        self._last_onset_peak = i
        start = rise_starts(odf[lo - o0 : i - o0 + 1], np.array([pos - lo]), ratio=o.rise_ratio,
                            max_frames=i - lo, rebound=o.rise_rebound,
                            lead_frames=o.rise_lead_s * fps)
        return float(start[0]) + lo

    def _note(
        self,
        time_s: float,
        strength: float,
        frame: int,
        events: list[_Keyed],
        ahead: NDArray[np.float32] | None = None,
    ) -> OnsetEvent:
        cfg = self.config
        if cfg.target_bpm is None:
            self._keep_note(frame, time_s)
            self._pending.append(_Heard(frame, strength, time_s, None))
            return OnsetEvent(time_s=time_s, strength=strength)
        # judged at the note's start, as offline (a slow attack peaks well after the click)
        start = min(round((time_s - self.params.onset.offset_s) * self._geom.fps), frame)
        at, vector = self._flux_at(max(start, 0), 1, ahead, ahead_frame=frame + 1)
        on_grid, judge = self._click_judge(max(start, 0), time_s, vector, at, events)
        live_click = judge is not None and bool(
            classify_clicks(vector[None, :], judge.signature)[0]
        )
        if not live_click:
            self._keep_note(frame, time_s)
            if cfg.subdivision is None and len(self._notes) >= 8 and len(self._notes) % 8 == 0:
                recent = np.asarray(self._notes[-RECENT_NOTES:])
                self._subdivision = infer_subdivision(recent, target_bpm=cfg.target_bpm)
        dev = float(
            grid_deviations_ms(
                np.array([time_s]),
                target_bpm=cfg.target_bpm,
                grid_start_s=cfg.grid_start_s,
                subdivision=self._subdivision or 1,
                latency_ms=cfg.latency_ms,
            )[0]
        )
        self._pending.append(
            _Heard(
                frame,
                strength,
                time_s,
                dev,
                at=at if on_grid else -1,
                live_click=live_click,
                judge=judge,
                vector=vector if on_grid else None,
            )
        )
        if live_click:
            return OnsetEvent(time_s=time_s, strength=strength, is_metronome=True)
        return OnsetEvent(time_s=time_s, strength=strength, deviation_ms=dev)

    def _confirm(self, upto: int, events: list[_Keyed], *, final: bool) -> None:
        """Judge the pending live onsets whose hold of ``report_hold_frames`` frames ends
        before frame ``upto`` (every one when ``final``) with the offline hold gate
        (:func:`~audio_engine.dsp.peaks.held_peaks`), and those on a grid line, once what
        they leave behind can be measured (and the onsets after them are known), as offline
        metronome removal does: the onsets that pass are the notes of the timing report and
        of the accuracy. A frame bound, not the frames computed so far, so that a chunking
        never changes a tempo update's accuracy."""
        o = self.params.onset
        hold = o.report_hold_frames
        # (the onset after it is known by then, if it peaks within what the timed test reads)
        wait = self._remain_late + TIMED_RISE_FRAMES + self._look + 1
        # the onset after it, if it follows within twice the offline look-ahead, is picked
        # by then (probes may wait a frame more)
        ahead = 2 * self._report_post + self._look + 2
        while self._pending:
            heard = self._pending[0]
            if not final and (
                heard.frame + max(hold, ahead) >= upto or heard.at + wait >= upto
            ):
                break
            self._pending.popleft()
            if self._pending and self._overtaken(heard.frame, self._pending[0].frame):
                # the rise before a stronger attack with an onset of its own, which offline
                # peak picking (a peak is the highest within its look-ahead) does not take
                # for an onset
                self._clicks_removed += heard.live_click
                continue
            if heard.judge is not None:
                assert self._grid is not None
                for time_s in self._grid.rejudge(heard.judge):
                    self._drop_report_note(time_s)
                    self._clicks_removed += 1
            if o.hold_ratio > 0 and self._report_held(heard.frame, hold) < (
                o.hold_ratio * heard.strength
            ):
                self._clicks_removed += heard.live_click  # reported live as one
                continue
            if heard.at >= 0 and not self._judged_a_note(heard, events, heard.at + wait):
                continue
            self._report_notes.append(heard.time_s)
            if heard.deviation_ms is not None:
                self._deviations.append(heard.deviation_ms)
                self._n_on_time += _on_time(heard.deviation_ms)

    def _overtaken(self, frame: int, next_frame: int) -> bool:
        """Whether the onset strength rises above that of ``frame`` within the offline
        look-ahead after it, and the next onset (at ``next_frame``) follows within twice
        that: the onset at ``frame`` was a live pick (one frame of look-ahead) that offline
        peak picking would not make, and the attack has an onset of its own."""
        post = self._report_post
        if next_frame - frame > 2 * post:
            return False
        odf, o0 = self._odf.data, self._odf.start
        later = odf[frame + 1 - o0 : min(frame + post + 1, self._n_frames) - o0]
        return bool(later.size) and float(later.max()) > float(odf[frame - o0])

    def _judged_a_note(self, heard: _Heard, events: list[_Keyed], key: int) -> bool:
        """Whether an onset on a grid line is a note for the report: not a click by its flux
        against the click as heard on the lines so far (:meth:`GridClicks.refined`,
        :func:`~audio_engine.dsp.metronome.classify_clicks`), or a note played with the
        click, which leaves more behind than a click alone unless the next onset comes
        first (:func:`~audio_engine.dsp.metronome.metronome_clicks`). Without a signature
        yet it is a note until the next onset judged by one (:meth:`_rejudge`), unless the
        metronome is told by its timing (:meth:`GridClicks.timed`; the first time, with the
        ``metronome_bleed`` warning, keyed ``key``: the frame by which the onset is judged)."""
        gap = self._pending[0].frame - heard.frame if self._pending else math.inf
        early = self._remain_at(heard.at, self._remain_ahead)
        late = self._remain_at(heard.at, self._remain_late)
        remain = float(onset_remain(early, late, gap, self._remain_late))
        timed_remain = float(onset_remain(early, late, gap, self._remain_late + TIMED_RISE_FRAMES))
        followed = gap <= self._remain_ahead
        assert self._grid is not None and heard.vector is not None
        offset = self._grid.hear(heard.frame, heard.time_s, heard.vector, remain, followed,
                                 timed_remain)
        if heard.judge is None:
            # no signature: a metronome may still be told by its timing (as offline)
            timed = (self._grid.timed()
                     if self._grid.could_be_timed_click(timed_remain, followed) else None)
            if timed is not None:
                centre, limit = timed
                self._warn_bleed(events, heard.frame, key)
                for time_s in self._grid.rejudge_timed(centre, limit):
                    self._drop_report_note(time_s)
                    self._clicks_removed += 1
                if is_timed_click(np.array([offset]), centre, dies=timed_remain <= limit,
                                  followed=followed)[0]:
                    self._clicks_removed += 1
                    return False
                return True
            self._grid.keep_unjudged(
                Unjudged(heard.frame, heard.time_s, heard.vector, remain, followed,
                         timed_remain)
            )
            return True
        if not classify_clicks(heard.vector[None, :], self._grid.refined(heard.judge))[0]:
            return True  # not the click as heard on the lines
        if remain > self._grid.limit(heard.judge) and not followed:
            return True  # a note played with the click
        self._clicks_removed += 1
        return False

    def _drop_report_note(self, time_s: float) -> None:
        """Remove a note (and its deviation) from the report (searched from the latest)."""
        for k in range(len(self._report_notes) - 1, -1, -1):
            if self._report_notes[k] == time_s:
                del self._report_notes[k]
                self._n_on_time -= _on_time(self._deviations[k])
                del self._deviations[k]  # with a target every note has a deviation
                return
        raise AssertionError(f"no report note at {time_s!r} s")

    def _remain_at(self, frame: int, ahead: int) -> float:
        """:func:`~audio_engine.dsp.metronome.remain_shares` of one frame, from the kept
        spectra (the frame ``ahead`` after it clipped to the last one, as offline)."""
        lag = self.params.onset.lag_frames
        s0 = self._spec.start
        b = max(frame - lag, 0)
        before = self._ref_rows(b, b - lag + 1)[0]
        now = self._spec.data[frame - s0]
        later = self._spec.data[min(frame + ahead, self._n_frames - 1) - s0]
        flux = float(np.maximum(now - before, np.float32(0.0)).sum())
        left = float(np.maximum(later - before, np.float32(0.0)).sum())
        return left / max(flux, 1e-12) if flux > 0 else 0.0

    def _report_held(self, frame: int, hold: int) -> float:
        """The larger held strength (:meth:`_held_strength`) of ``frame`` and the frame
        before it."""
        return float(self._held_strength(max(0, frame - 1), frame + 1, hold).max())

    # ------------------------------------------------------------------ metronome

    def _flux_at(
        self,
        frame: int,
        w: int,
        ahead: NDArray[np.float32] | None = None,
        *,
        ahead_frame: int = -1,
    ) -> tuple[int, NDArray[np.float32]]:
        """The frame within ``±w`` of ``frame`` with the largest total flux, and its
        per-band flux; with a probe's flux ``ahead``, that stands for frame ``ahead_frame``
        (not computed yet) and those after it."""
        lo = max(frame - w, self._flux.start)
        hi = min(frame + w + 1, self._flux.end)
        if ahead is not None:
            hi = min(hi, ahead_frame)
        rows = self._flux.data[lo - self._flux.start : max(lo, hi) - self._flux.start]
        totals = rows.sum(axis=1)
        # the probe's row stands for its frame, after the rows before it
        if (
            ahead is not None
            and abs(ahead_frame - frame) <= w
            and (totals.size == 0 or float(ahead.sum()) > float(totals.max()))
        ):
            return ahead_frame, ahead
        if totals.size == 0:
            return frame, np.zeros(self._spec.data.shape[1], dtype=np.float32)
        k = int(np.argmax(totals))
        return lo + k, rows[k].copy()

    def _metronome_positions(self, final: bool) -> None:
        """The grid lines' flux and leftovers, once the frames they read exist."""
        if self._grid is not None:
            self._grid.add_lines(
                self._n_frames,
                final=final,
                flux_at=self._flux_at,
                remain_at=lambda at: self._remain_at(at, self._remain_ahead),
            )

    def _click_judge(
        self,
        frame: int,
        time_s: float,
        vector: NDArray[np.float32],
        at: int,
        events: list[_Keyed],
    ) -> tuple[bool, Judge | None]:
        """Whether the onset starting at ``frame`` lies on a grid line, and the metronome
        signature to judge it by (:meth:`GridClicks.judge`); the first signature warns that
        the metronome is heard."""
        if self._grid is None:
            return False, None
        on_grid, judge = self._grid.judge(frame, time_s, vector, at)
        if judge is not None:
            self._warn_bleed(events, frame, frame + self._look + 1)
        return on_grid, judge

    def _warn_bleed(self, events: list[_Keyed], frame: int, key: int) -> None:
        """Warn once that the metronome is heard (found at ``frame``; event key ``key``)."""
        if self._bleed_warned:
            return
        self._bleed_warned = True
        self._warn(
            events,
            "metronome_bleed",
            frame / self._geom.fps,
            "the metronome is audible in the recording; its clicks are not counted as notes",
            key,
        )

    # ------------------------------------------------------------------ tempo and beats

    def _window_tatums(self, odf: NDArray[np.float64], start: int) -> _Window | None:
        """The offline tempo stages (tempogram, tatum, local period, the beat tracker's
        path, grouping) on a window of onset strength starting at frame ``start``; the
        tatum from the window's autocorrelation added to the recent updates' (``TATUM_MEMORY``),
        which this call updates."""
        t = self.params.tempo
        fps = self._geom.fps
        win = len(odf)
        max_lag = math.ceil(60.0 * fps / t.min_bpm * 2) + 2
        tg = tempogram(odf, win, win, max_lag)
        acf = tg.mean(axis=0)
        near: float | None = None
        if self._period is not None:
            lag = _peak_near_kernel(
                acf, self._period * math.exp(-PERIOD_FOLLOW), self._period * math.exp(PERIOD_FOLLOW)
            )
            near = lag if lag > 0 else None
        # the tatum from the windows' autocorrelations summed over the recent updates
        # (the stream's counterpart of offline's mean over the whole recording): one
        # window's alone settled 3:2 and octave errors that the stream then kept
        self._acf_sum = acf if self._acf_sum is None else TATUM_MEMORY * self._acf_sum + acf
        tatum = estimate_tatum(self._acf_sum, fps, t)
        if tatum is None:
            return None
        period = local_period(tg, tatum, win, win, win, smooth=t.period_smooth)
        cum, back = beat_cumulative_score(odf, period, tightness=self.params.beat.tightness)
        tatums = backtrack(cum, back)
        notes = self._window_notes(start, tatums=tatums, period=period)
        # one phase per window: the updates' phase evidence follows a slip (_grouping_phase)
        beats, group = group_tatums(odf, tatums, period, 60.0 * fps / tatum, t, notes=notes,
                                    phase_switches=False)
        if beats.size == 0:
            return None
        beat_period = tatum * group
        if beats.size >= 3:
            beat_period = float(np.median(np.diff(beats)))
        return _Window(
            beat_period=beat_period,
            confidence=float(np.clip(np.interp(tatum * group, np.arange(acf.size), acf), 0, 1)),
            near=near,
            tatums=start + tatums,
            tatum_period=float(np.median(period)),
            local_period=period,
            index=pulse_index(tatums, period),
            start=start,
            notes=notes,
        )

    def _follow_period(self, window: _Window, full: bool) -> None:
        """Follow the window's beat period when it is within ``PERIOD_FOLLOW`` of the
        current one; switch to a new metrical level only after ``SWITCH_UPDATES`` updates in
        a row agree on it, the current level unseen by the window (until a full window has
        been heard, take each estimate as it is)."""
        period, current = window.beat_period, self._period
        if current is None or not full:
            self._period = period
        elif abs(math.log(period / current)) < PERIOD_FOLLOW:
            self._period = (1 - PERIOD_SMOOTHING) * current + PERIOD_SMOOTHING * period
            self._switch.clear()
        elif window.near is not None:
            self._period = (1 - PERIOD_SMOOTHING) * current + PERIOD_SMOOTHING * window.near
            self._switch.clear()
        else:
            self._switch.append(period)
            votes = [q for q in self._switch if abs(math.log(q / period)) < PERIOD_FOLLOW]
            if len(votes) >= SWITCH_UPDATES:
                self._period = float(np.median(votes))
                self._switch.clear()

    def _grouping_phase(self, window: _Window, odf: NDArray[np.float64]) -> NDArray[np.int64]:
        """The window's tatums that are beats at the stream's period (frames from the start
        of the stream): every ``group``-th tatum (tatums of half the period when the window's
        tatum is the period and there are beats to continue, so that the off-beats compete),
        in the phase nearest the previous
        update's beats unless the accent evidence (:func:`phase_evidence`), summed over the
        updates with weight ``PHASE_DECAY`` per update, favours another phase by more than
        ``PHASE_MARGIN``; none when the period is not 1-4 tatums."""
        assert self._period is not None
        group = round(self._period / window.tatum_period)
        if not 1 <= group <= 4:
            return window.tatums[:0]
        if abs(math.log(self._period / (group * window.tatum_period))) > PERIOD_FOLLOW:
            return window.tatums[:0]
        tatums, index = window.tatums, window.index
        if group == 1 and self._path.size == 0:
            return tatums
        halved = group == 1
        if halved:
            tatums, index = self._half_tatums(odf, window)
            group = 2
        evidence = phase_evidence(_strength_at_kernel(odf, tatums - window.start, 2), index, group)
        backbeat = self._backbeat_phase(window, tatums, index, group, halved)
        if backbeat is not None:
            # kick and snare alternating on one phase's beats outweigh the flux
            evidence = np.where(np.arange(group) == backbeat, BACKBEAT_T, -BACKBEAT_T)
        reference = self._path[-PHASE_REFERENCE_BEATS:]
        if reference.size == 0:
            current = int(np.argmax(evidence))
        else:
            current = _nearest_phase(tatums, index % group, reference, group)
        scores = self._phase_scores[group, :group]
        if np.all(np.isfinite(evidence)):
            scores *= PHASE_DECAY
            scores += np.roll(evidence, -current)
        shift = int(np.argmax(scores))
        if scores[shift] - scores[0] > PHASE_MARGIN:
            scores[:] = np.roll(scores, -shift)
            current = (current + shift) % group
        on_phase: NDArray[np.int64] = tatums[index % group == current]
        return on_phase

    def _backbeat_phase(
        self,
        window: _Window,
        tatums: NDArray[np.int64],
        index: NDArray[np.int64],
        group: int,
        halved: bool,
    ) -> int | None:
        """The phase whose beats alternate between unlike sounds (kick and snare) where the
        others' do not, as offline (:func:`group_tatums` with ``backbeat_alternation``);
        None when no phase does."""
        t = self.params.tempo
        if t.backbeat_alternation is None or BACKBEAT_T <= 0.0:
            return None
        notes = window.notes
        if halved:
            notes = self._window_notes(window.start, tatums=tatums - window.start,
                                       period=window.local_period / 2.0)
        return backbeat_phase(notes, index, group, t)

    def _half_tatums(
        self, odf: NDArray[np.float64], window: _Window
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The beat tracker's path at half the window's tatum period (frames from the start
        of the stream), and the grid index of each of its tatums."""
        period = window.local_period / 2.0
        cum, back = beat_cumulative_score(odf, period, tightness=self.params.beat.tightness)
        tatums = backtrack(cum, back)
        return window.start + tatums, pulse_index(tatums, period)

    def _update_tempo(self, events: list[_Keyed], *, final: bool, at_frame: int = -1) -> None:
        """Every half second of audio: re-estimate the beat period and the beat path on the
        recent window, report the beats that can no longer move, and a tempo update."""
        fps = self._geom.fps
        end = self._n_frames if final else at_frame
        self._emit_at = end
        start = max(0, end - self._tempo_window)
        estimate_now = final or (end // self._tempo_every) % ESTIMATE_EVERY == 0
        if end - start >= 16 and estimate_now:
            self._measure_notes(self._n_dec if final else end * self._geom.hop_length, final)
            odf = self._odf.data[start - self._odf.start : end - self._odf.start]
            # notes the stream had picked by then: before ``end - look`` (chunking-independent)
            lo_s, hi_s = start / fps, (end - self._look) / fps
            recent = [t for t in self._notes[-64:] if lo_s <= t < hi_s]
            heard = len(recent) >= 4 and np.any(odf > 0)
            window = self._window_tatums(odf, start) if heard else None
            if window is not None:
                self._confidence = window.confidence
                self._follow_period(window, end - start >= self._tempo_window)
                self._previous_path = self._path
                self._path = self._grouping_phase(window, odf)
                if self._last_beat_frame is None and (final or end >= self._first_beats):
                    self._start_beats()
        self._emit_beats(events, end if final else end - self._beat_confirm, final=final)
        if not final or end > self._last_tempo_frame:
            self._last_tempo_frame = end
            acc = self._accuracy()
            target = self.config.target_bpm
            events.append(
                (
                    end,
                    _RANK[TempoEvent],
                    TempoEvent(
                        time_s=min(end / fps, self.audio_s),
                        bpm=None if self._period is None else 60.0 * fps / self._period,
                        confidence=self._confidence,
                        accuracy_pct=acc,
                        mood=None if target is None else mood_for(acc),
                        meditation=target is not None and target < 60.0,
                    ),
                ),
            )

    def _start_beats(self) -> None:
        """Place the first beat on the path's first beat that the audio still holds, after
        the first note (or from the start when the recording starts on a sound), the weak
        leading beats dropped as offline (``params.beat.trim_ratio``)."""
        assert self._period is not None
        earliest = max(self._odf.start, 0)
        if self._notes and not self._sound_at_start:
            earliest = max(earliest, round(self._notes[0] * self._geom.fps) - 2)
        path = self._path[self._path >= earliest]
        strong = self._trim_weak(path)
        if strong.size:
            self._last_beat_frame = round(strong[0] - self._period)

    def _trim_weak(self, beats: NDArray[np.int64]) -> NDArray[np.int64]:
        """``beats`` (frames) without their weak leading and trailing beats."""
        assert self._period is not None
        if beats.size == 0:
            return beats
        lo = max(self._odf.start, int(beats[0]) - round(self._period))
        hi = min(self._odf.end, int(beats[-1]) + round(self._period))
        odf = self._odf.data[lo - self._odf.start : hi - self._odf.start]
        period = np.full(odf.shape[0], self._period)
        return lo + trim_weak(odf, beats - lo, period, self.params.beat.trim_ratio)

    def _next_beat(self, limit: int, *, final: bool) -> int | None:
        """The beat after the last one reported, once no later audio can move it (at frame
        ``limit`` or before): the path's beat within ``PATH_REACH`` periods of the
        prediction (one period after the last), else the strongest onset near the prediction
        (none past the end of the path at the end of the stream)."""
        assert self._period is not None
        period = self._period
        last = self._last_beat_frame
        assert last is not None
        expected = last + period
        lo, hi = expected - PATH_REACH * period, expected + PATH_REACH * period
        on_path = self._path[(self._path > lo) & (self._path <= hi)]
        if on_path.size:
            beat = int(on_path[int(np.argmin(np.abs(on_path - expected)))])
            settled = final or beat <= limit - self._beat_confirm
            settled |= bool(np.any(np.abs(self._previous_path - beat) <= PATH_MARGIN * period))
            return beat if beat <= limit and settled else None
        if hi > limit or (final and (self._path.size == 0 or self._path[-1] < expected)):
            return None
        lo_f = max(round(expected - BEAT_SEARCH * period), self._odf.start, last + 1)
        hi_f = round(expected + BEAT_SEARCH * period) + 1
        seg = self._odf.data[lo_f - self._odf.start : hi_f - self._odf.start]
        frames = np.arange(lo_f, lo_f + seg.shape[0])
        weight = np.exp(-0.5 * ((frames - expected) / (BEAT_SPREAD * period)) ** 2)
        score = seg * weight
        if seg.size and float(score.max()) > 0.0:
            return int(frames[int(np.argmax(score))])
        return round(expected)

    def _emit_beats(self, events: list[_Keyed], limit: int, *, final: bool) -> None:
        """Report the beats up to frame ``limit``; at the end of the stream, without the weak
        trailing beats (as offline)."""
        if self._period is None or self._last_beat_frame is None:
            return
        new: list[int] = []
        while (beat := self._next_beat(limit, final=final)) is not None:
            new.append(beat)
            self._last_beat_frame = beat
        if final and new:
            kept = self._trim_weak(self._path)
            new = [b for b in new if kept.size and b <= kept[-1]]
        fps = self._geom.fps
        for beat in new:
            time_s = self._beat_time(beat)
            self._beats.append(time_s)
            events.append(
                (
                    self._emit_at,
                    _RANK[BeatEvent],
                    BeatEvent(time_s=time_s, bpm=60.0 * fps / self._period),
                )
            )

    def _keep_note(self, frame: int, time_s: float) -> None:
        """Remember a student's note (not a click): its start, its peak for the beats, and
        that its sound is to be measured."""
        self._notes.append(time_s)
        self._note_peaks.append((frame, time_s))
        self._unmeasured.append(round((time_s - self.params.onset.offset_s) * self._geom.fps))

    def _measure_notes(self, upto: int, final: bool) -> None:
        """Measure the notes whose sound the decimated samples hold up to sample ``upto``
        (all of them at the end), as offline (:func:`measure_notes`); forget those that
        have left the tempo window."""
        hop, sr = self._geom.hop_length, self._geom.sr
        need = window_samples(sr, self.params.tempo.level_window_s)
        ready: list[int] = []
        while self._unmeasured and (final or self._unmeasured[0] * hop + need <= upto):
            ready.append(self._unmeasured.popleft())
        if ready:
            frames = np.asarray(ready, dtype=np.int64)
            # only the samples the notes' sound is read from
            lo = max(self._dec.start, ready[0] * hop - self._note_lead)
            hi = min(self._n_dec, ready[-1] * hop + need) if final else upto
            level, profile = measure_notes(
                self._dec.data[lo - self._dec.start : hi - self._dec.start],
                sr,
                hop,
                frames,
                window_s=self.params.tempo.level_window_s,
                y0=lo,
            )
            self._sounds.extend(zip(ready, level.tolist(), profile, strict=True))
        oldest = self._n_frames - self._tempo_window - 2
        while self._sounds and self._sounds[0][0] < oldest:
            self._sounds.popleft()

    def _window_notes(
        self, start: int, *, tatums: NDArray[np.int64], period: NDArray[np.float64]
    ) -> TatumNotes:
        """The measured notes on a window's tatums (frames from the window's start)."""
        inside = [sound for sound in self._sounds if sound[0] >= start]
        frames = np.asarray([f - start for f, _, _ in inside], dtype=np.int64)
        level = np.asarray([lv for _, lv, _ in inside], dtype=np.float64)
        profile = np.asarray([pr for _, _, pr in inside]).reshape(-1, N_PROFILE_BANDS)
        return tatum_notes(frames, level, profile, tatums, period)

    def _beat_time(self, beat: int) -> float:
        """Time in seconds of the beat at frame ``beat``: the start of the note whose
        onset-strength peak lies within ``params.beat.snap_s`` of it, as offline analysis
        places beats (a slow attack peaks well after the note starts), else the frame's own
        time."""
        fps = self._geom.fps
        best = beat / fps + self.params.onset.offset_s
        best_d = self.params.beat.snap_s * fps + 1e-9
        for frame, start_s in self._note_peaks:
            d = abs(frame - beat)
            if d <= best_d:
                best, best_d = start_s, d
        return best

    def _accuracy(self) -> float | None:
        """Share of the report's notes within ``ON_TIME_MS`` of the grid, % (None before
        the first); counted as the notes come and go, not over all of them at every tempo
        update (an hour's 14,000 notes took 0.6 ms an update, +14 % of the stream's CPU)."""
        if not self._deviations:
            return None
        return 100.0 * (self._n_on_time / len(self._deviations))

    # ------------------------------------------------------------------ housekeeping

    def _slow_first(self) -> int:
        """The earliest frame a note of the slow detector still to come may start at: its
        peaks still to come (or waiting) are placed from SLOW_SNAP_BACK frames before their
        own, and read like any onset from a rise before that (the main detector's frames
        when there is no slow detector)."""
        slow = self._n_slow_picked if self.params.onset.slow_lag_frames > 0 else self._n_peaked
        if self._slow_pending:
            slow = min(slow, self._slow_pending[0][1])
        return slow - SLOW_SNAP_BACK - self._rise - 2

    def _trim(self) -> None:
        lag = self.params.onset.lag_frames
        slow_first = self._slow_first()
        decided = min(self._n_peaked, slow_first)
        keep_odf = min(self._n_frames - self._tempo_window - 2, self._n_peaked - self._pre_avg - 2,
                       slow_first, self._pending[0].frame if self._pending else slow_first)
        self._odf.keep_from(max(0, keep_odf))
        self._odf_slow.keep_from(max(0, self._n_slow_picked - self._pre_avg - 2))
        self._held.keep_from(max(0, decided - 2))
        while self._main_frames and self._main_frames[0] < slow_first:
            self._main_frames.popleft()
        keep_spec = min(self._n_held, self._n_frames, decided) - lag - 2
        if self._pending:  # the report's hold gate reads them from one before the note on,
            # what it leaves from a lag before its flux vector's frame
            first = self._pending[0]
            keep_spec = min(keep_spec, first.frame - 1 - lag)
            if first.at >= 0:
                keep_spec = min(keep_spec, first.at - lag)
        if self._grid is not None:  # what a grid line's click leaves is read from a lag
            # before its flux vector's frame
            keep_spec = min(keep_spec, self._grid.first_unmeasured() - lag)
        self._spec.keep_from(keep_spec)
        # the flux at a note's start, up to a rise before its peak (and one frame around)
        keep_flux = min(self._n_frames - 8, decided - self._rise - 2)
        self._flux.keep_from(keep_flux)
        if self._grid is not None:
            pending = self._pending[0].frame if self._pending else None
            self._grid.trim(decided, pending, self._rise)

    def _frames_at_input(self, n_in: int) -> int:
        """How many frames exist once ``n_in`` input samples have been fed."""
        n_dec = self._decimator.ready(n_in)
        half_win = self._geom.n_fft // 2
        return (n_dec - half_win) // self._geom.hop_length + 1 if n_dec >= half_win else 0

    def _check_clipping(self, x: NDArray[np.generic], events: list[_Keyed]) -> None:
        if x.dtype in (np.int16, np.int32):
            # |x| / 2**15 (2**31) >= CLIP_LEVEL, exactly, without floats
            full_scale = 32768.0 if x.dtype == np.int16 else 2147483648.0
            a = np.abs(x.astype(np.int64))
            level: float = math.ceil(CLIP_LEVEL * full_scale)
        elif x.dtype == np.uint8:  # (to_mono_float32 has refused other integer types)
            a = np.abs(x.astype(np.float64) - 128.0) / 128.0
            level = CLIP_LEVEL
        else:
            a = np.abs(np.asarray(x, dtype=np.float64))
            level = CLIP_LEVEL
        per_sample = a.max(axis=1) if a.ndim == 2 else a
        clipped = per_sample >= level
        pos = self._n_in  # absolute index of the first sample of this chunk
        n = per_sample.shape[0]
        i = 0
        while i < n:
            block_end = self._clip_block_start + CLIP_BLOCK
            take = min(n - i, block_end - (pos + i))
            self._clip_block_count += int(np.count_nonzero(clipped[i : i + take]))
            i += take
            if pos + i >= block_end:
                if self._clip_block_count >= CLIP_MIN_SAMPLES:
                    self._warn(
                        events,
                        "clipping",
                        block_end / self._sr,
                        "the input is clipping: lower the microphone gain",
                        self._frames_at_input(block_end),
                    )
                self._clip_block_start = block_end
                self._clip_block_count = 0

    def _track_levels(self, f0: int, f1: int, events: list[_Keyed]) -> None:
        """Input-level warnings from each frame's hop of samples (chunk-independent)."""
        lv = self._levels
        fps = self._geom.fps
        hop = self._geom.hop_length
        n_keep = round(LEVEL_WINDOW_S * fps)
        second = round(fps)
        a = f0 * hop - self._dec.start
        seg = self._dec.data[a : a + (f1 - f0) * hop].astype(np.float64)
        if seg.size < (f1 - f0) * hop:  # the last, partial hop at the end of a stream
            seg = np.concatenate([seg, np.zeros((f1 - f0) * hop - seg.size)])
        powers = np.add.reduce((seg * seg).reshape(f1 - f0, hop), axis=1) / hop  # the mean
        silent_db = 10.0 ** (SILENCE_DBFS / 10.0)
        for k, power in enumerate(powers.tolist()):
            f = f0 + k
            lv.frame_power.append(power)
            lv.power_sum += power
            if len(lv.frame_power) > n_keep:
                lv.power_sum -= lv.frame_power.popleft()
            lv.silent_frames = lv.silent_frames + 1 if power < silent_db else 0
            if lv.silent_frames >= LONG_SILENCE_S * fps:
                t = (f + 1) / fps
                self._warn(
                    events, "long_silence", t, "no sound for a while: is the microphone on?", f + 1
                )
            if f % second == 0 and len(lv.frame_power) == n_keep:
                level = 10.0 * math.log10(max(lv.frame_power) + 1e-20)  # the loudest 10 ms
                if SILENCE_DBFS <= level < QUIET_DBFS:
                    t = (f + 1) / fps
                    self._warn(
                        events, "too_quiet", t, "the input is very quiet: move closer", f + 1
                    )

    def _warn(
        self, events: list[_Keyed], code: WarningCode, time_s: float, message: str, key: int
    ) -> None:
        last = self._levels.last_warning.get(code)
        if last is not None and time_s - last < WARNING_REPEAT_S:
            return
        self._levels.last_warning[code] = time_s
        events.append((key, _RANK[WarningEvent], WarningEvent(time_s, code, message)))


def _on_time(deviation_ms: float) -> int:
    """1 when a note's deviation is within ``ON_TIME_MS`` of its grid line, else 0."""
    return int(abs(deviation_ms) <= ON_TIME_MS + 1e-9)


def _nearest_phase(
    tatums: NDArray[np.int64], phases: NDArray[np.int64], beats: NDArray[np.int64], group: int
) -> int:
    """The phase (of ``group``) whose tatums lie nearest, in total, to ``beats``."""
    distance = np.abs(beats[:, None] - tatums[None, :])
    cost = [
        float(distance[:, phases == p].min(axis=1).sum()) if np.any(phases == p) else np.inf
        for p in range(group)
    ]
    return int(np.argmin(cost))


@cache
def _state_names() -> frozenset[str]:
    """The attributes of a StreamAnalyzer (every one is set whatever the configuration)."""
    return frozenset(vars(StreamAnalyzer(StreamConfig(sr=16000, target_bpm=120.0))))
