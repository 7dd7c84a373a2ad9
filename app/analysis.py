"""Analysis panel: the match report of the mix against the reference, and their spectra.

The top plot is the tonal-difference curve (mix minus reference per 1/3 octave of the mid signal,
smoothed, both at the same loudness) over a shaded +-3 dB tolerance band, as engineers read Tonal
Balance Control; the side signal's difference is drawn dashed. Below it: the long-term spectra of mix
and reference, and the report's terms as text (tonal deviation, worst octave and bands, width per
range, crest factor, loudness range, peak-to-loudness ratio, low end, air, loudness), mix beside
reference. The numbers are :mod:`core.report`'s, the same as ``stylemix compare``.

Below the terms, "Reverb decay (FX return)": the energy decay curves of the reverb's impulse response
for the return's current controls (:func:`core.decay.decay_curves`: broadband and low / mid / high
bands, dB against seconds, a dashed line at -60 dB) with each band's RT60 in the legend. When every
send is off the title says so (the curves still show what the return would do).

:class:`AnalysisController` re-measures in the background a moment after edits stop (one job at a
time; a newer request replaces an older one), and also feeds the overview and the master strip's
integrated loudness and true peak. :class:`DecayController` recomputes the decay curves in the
background a moment after the reverb's controls (or the sends) change.
"""

from __future__ import annotations

import html
import math
import threading

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core import measure
from core.decay import DecayCurve, decay_curves
from core.params import MASTER, RETURN, TRACK
from core.report import AIR_HZ, CENTRES_HZ, LOW_END_HZ, WIDTH_RANGES, band_label, short_hz, smooth_bands
from core.reverb import send_gain

from . import theme

_DEBOUNCE_MS = 400
#: The decay view waits this long after the last edit of the reverb before recomputing.
_DECAY_DEBOUNCE_MS = 120
#: How often the GUI thread looks for the decay curves being computed.
_DECAY_POLL_MS = 15
#: Decay plot: y range (dB) and the colour of each band's curve.
_DECAY_FLOOR_DB = -70.0
_DECAY_COLOURS = {"broadband": theme.TEXT, "low": theme.BAND_COLOURS[1], "mid": theme.BAND_COLOURS[3],
                  "high": theme.BAND_COLOURS[4]}
#: The return's controls that shape its decay (all but the return level).
_DECAY_KEYS = tuple(k for k in RETURN.keys if k != "reverb_return_db")
_DECAY_HELP = (
    "Energy decay (Schroeder backward integral, dB against seconds) of the reverb's impulse response\n"
    "for the return's current settings, broadband and in three bands; each curve relative to its own\n"
    "energy (the return level and the sends only scale it). RT60: the -5..-35 dB slope extrapolated\n"
    "to -60 dB (dashed line).\n"
    "The Decay control is the RT60 up to 1 kHz; HF decay shortens the high band's.")

#: Half-width of the shaded tolerance band of the tonal-difference plot, dB.
TOLERANCE_DB = 3.0
#: The tonal plot's y range is +-this at least (and grows to fit the curve, up to +-24 dB).
_TONAL_RANGE_DB = 9.0
#: A report row's difference is drawn in the warning colour beyond this (dB or LU).
_WARN = 3.0

_TERMS_HELP = (
    "Both signals at the same loudness (-16 LUFS); differences are mix minus reference.\n"
    "Tonal deviation: RMS of the mid difference over the 1/3 octaves 40 Hz-16 kHz.\n"
    "Worst octave: the octave farthest from the reference.\n"
    "Width: side/mid power in low (20-250 Hz), mid (250 Hz-4 kHz), high (4-16 kHz); -30 dB = mono.\n"
    "Crest: peak/RMS over 1 s windows (median). LRA: loudness range, EBU Tech 3342.\n"
    "PLR: true peak minus integrated loudness. Low end / air: share of the mid signal's power\n"
    "below 100 Hz / above 10 kHz.")


def _log_axis(pi: pg.PlotItem) -> None:
    major = [(np.log10(f), t) for f, t in ((100, "100"), (1000, "1k"), (10000, "10k"))]
    minor = [(np.log10(f), "") for f in (30, 50, 200, 300, 500, 2000, 3000, 5000)]
    pi.getAxis("bottom").setTicks([major, minor])
    for name in ("bottom", "left"):
        ax = pi.getAxis(name)
        ax.setStyle(tickFont=theme.small_font(7))
        ax.setTextPen(theme.TEXT_DIM)
    pi.setMouseEnabled(False, False)
    pi.setMenuEnabled(False)
    pi.hideButtons()
    pi.showGrid(x=True, y=True, alpha=0.15)
    pi.setXRange(np.log10(measure.SPECTRUM_F_LO), np.log10(measure.SPECTRUM_F_HI), padding=0)


def _signed(v: float, unit: str = "dB") -> str:
    return f"{v:+.1f} {unit}"


class AnalysisPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
        self.title = QLabel("Analysis: waiting for audio", objectName="sectionTitle")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.tonal = self._tonal_plot()
        lay.addWidget(self.tonal, 3)
        legend = QLabel(f"<span style='color:{theme.MIX.name()}'>━ mid</span> &nbsp; "
                        f"<span style='color:{theme.TEXT_DIM.name()}'>┅ side</span> &nbsp; "
                        f"mix − reference, 1/3 octaves, shaded ±{TOLERANCE_DB:g} dB")
        legend.setObjectName("ctlLabel")
        lay.addWidget(legend)
        self.plot = self._spectrum_plot()
        lay.addWidget(self.plot, 2)
        legend = QLabel(f"<span style='color:{theme.MIX.name()}'>■ mix</span> &nbsp; "
                        f"<span style='color:{theme.REFERENCE.name()}'>■ reference</span> &nbsp; "
                        "spectra at the same loudness")
        legend.setObjectName("ctlLabel")
        lay.addWidget(legend)
        self.terms = QLabel(textFormat=Qt.RichText, objectName="reportTerms")
        self.terms.setWordWrap(True)
        self.terms.setToolTip(_TERMS_HELP)
        self.terms.setStyleSheet("font-size: 7.5pt;")
        lay.addWidget(self.terms)
        self.decay = self._decay_plot()
        lay.addWidget(self.decay, 2)
        self.decay_legend = QLabel(textFormat=Qt.RichText, objectName="ctlLabel")
        self.decay_legend.setWordWrap(True)
        self.decay_legend.setToolTip(_DECAY_HELP)
        lay.addWidget(self.decay_legend)
        self.result: measure.Analysis | None = None
        self.decay_result: list[DecayCurve] | None = None
        self.sends_on = False

    # -- plots -----------------------------------------------------------------------------------------------
    def _tonal_plot(self) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=theme.GROOVE)
        pi = plot.getPlotItem()
        _log_axis(pi)
        pi.getAxis("left").setTicks([[(v, f"{v:+g}" if v else "0") for v in (-12, -6, 0, 6, 12)],
                                     [(v, "") for v in (-18, -9, -3, 3, 9, 18)]])
        pi.setLabel("left", "dB")
        shade = QColor(theme.METER_LOW)
        shade.setAlpha(40)
        edge = QColor(theme.METER_LOW)
        edge.setAlpha(90)
        self.tolerance = pg.LinearRegionItem(values=(-TOLERANCE_DB, TOLERANCE_DB), orientation="horizontal",
                                             movable=False, brush=pg.mkBrush(shade), pen=pg.mkPen(edge))
        pi.addItem(self.tolerance)
        pi.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(theme.TEXT_DIM, width=1)))
        side = QColor(theme.TEXT_DIM)
        side.setAlpha(120)  # the side signal is context; the mid curve is what to read
        self.side_curve = plot.plot(pen=pg.mkPen(side, width=1, style=Qt.DashLine))
        self.diff_curve = plot.plot(pen=pg.mkPen(theme.MIX, width=2))
        self.diff_points = pg.ScatterPlotItem(size=5, pen=pg.mkPen(None))
        pi.addItem(self.diff_points)
        self.hint = pg.TextItem("add a reference to compare", color=theme.TEXT_DIM, anchor=(0.5, 0.5))
        self.hint.setPos(np.log10(630.0), 0.0)
        pi.addItem(self.hint)
        pi.setYRange(-_TONAL_RANGE_DB, _TONAL_RANGE_DB, padding=0)
        plot.setMinimumHeight(120)
        return plot

    def _spectrum_plot(self) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=theme.GROOVE)
        pi = plot.getPlotItem()
        _log_axis(pi)
        pi.setLabel("left", "dB")
        self.ref_curve = plot.plot(pen=pg.mkPen(theme.REFERENCE, width=1.5))
        self.mix_curve = plot.plot(pen=pg.mkPen(theme.MIX, width=1.5))
        plot.setMinimumHeight(80)
        return plot

    def _decay_plot(self) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=theme.GROOVE)
        pi = plot.getPlotItem()
        for name in ("bottom", "left"):
            ax = pi.getAxis(name)
            ax.setStyle(tickFont=theme.small_font(7))
            ax.setTextPen(theme.TEXT_DIM)
        pi.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, -20, -40, -60)],
                                     [(v, "") for v in (-10, -30, -50)]])
        pi.setMouseEnabled(False, False)
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setLabel("left", "dB")
        ref = pg.mkPen(theme.TEXT_DIM, width=1, style=Qt.DashLine)
        pi.addItem(pg.InfiniteLine(pos=-60.0, angle=0, pen=ref))  # the -60 dB that RT60 names
        self.decay_curves = {}
        for band, colour in _DECAY_COLOURS.items():
            width = 2 if band == "broadband" else 1.5
            self.decay_curves[band] = plot.plot(pen=pg.mkPen(colour, width=width))
        pi.setYRange(_DECAY_FLOOR_DB, 3.0, padding=0)
        pi.setTitle("Reverb decay (FX return)", color=theme.TEXT_DIM.name(), size="7pt")
        self.decay_title = "Reverb decay (FX return)"
        plot.setMinimumHeight(70)
        return plot

    def _set_decay_title(self, text: str) -> None:
        self.decay_title = text
        self.decay.getPlotItem().setTitle(text, color=theme.TEXT_DIM.name(), size="7pt")

    def show_decay(self, curves: list[DecayCurve], sends_on: bool) -> None:
        """Draw the reverb's decay curves (:func:`core.decay.decay_curves`); ``sends_on``: whether any
        track feeds the return."""
        self.decay_result, self.sends_on = curves, sends_on
        end = 0.0
        for c in curves:
            self.decay_curves[c.band].setData(c.times_s, np.maximum(c.edc_db, _DECAY_FLOOR_DB))
            end = max(end, float(c.times_s[-1]) if len(c.times_s) else 0.0)
        self.decay.getPlotItem().setXRange(0.0, max(end, 0.05), padding=0.02)
        self._set_decay_title("Reverb decay (FX return)" if sends_on else
                              "Reverb decay (FX return) — every send is off")
        items = []
        for c in curves:
            rt = "—" if math.isnan(c.rt60_s) else f"{c.rt60_s:.2f} s"
            name = "all" if c.band == "broadband" else c.band
            items.append(f"<span style='color:{_DECAY_COLOURS[c.band].name()}'>━ {name}</span> {rt}")
        self.decay_legend.setText("RT60 &nbsp;" + " &nbsp; ".join(items))
        bands = ", ".join(c.label for c in curves if c.band != "broadband")
        self.decay_legend.setToolTip(f"{_DECAY_HELP}\nBands: {bands}.")

    # -- showing a result ------------------------------------------------------------------------------------
    def show_result(self, result: measure.Analysis) -> None:
        self.result = result
        m, r = result.mix, result.reference
        self.mix_curve.setData(np.log10(m.freqs), m.spectrum_db)
        if r is not None:
            self.ref_curve.setData(np.log10(r.freqs), r.spectrum_db)
        else:
            self.ref_curve.setData([], [])
        # plain floats: pyqtgraph casts range limits to the value's type, and float32 overflows there
        top = float(max(np.max(m.spectrum_db), np.max(r.spectrum_db) if r is not None else -np.inf))
        self.plot.getPlotItem().setYRange(top - 70, top + 5, padding=0)
        self._show_tonal(result.match)
        self.terms.setText(self._terms_html(result))
        where = "whole song" if result.region is None else \
            f"loop {result.region[0]:.1f}-{result.region[1]:.1f} s"
        self.title.setText(f"ANALYSIS — mix ({where}) vs reference" if r is not None else
                           f"ANALYSIS — mix ({where}); add a reference to compare")

    def _show_tonal(self, match) -> None:
        pi = self.tonal.getPlotItem()
        if match is None:
            self.diff_curve.setData([], [])
            self.side_curve.setData([], [])
            self.diff_points.setData([], [])
            self.hint.setText("add a reference to compare" if self.result.reference is None else
                              "silence: nothing to compare")
            self.hint.show()
            pi.setYRange(-_TONAL_RANGE_DB, _TONAL_RANGE_DB, padding=0)
            return
        self.hint.hide()
        x = np.log10(CENTRES_HZ)
        mid = np.asarray(match.smoothed_mid_diff_db, dtype=np.float64)
        side = smooth_bands(match.side_diff_db)
        self.diff_curve.setData(x, mid)
        self.side_curve.setData(x, side)
        out = np.abs(mid) > TOLERANCE_DB
        self.diff_points.setData(x, mid, brush=[pg.mkBrush(theme.GR if o else theme.MIX) for o in out])
        span = float(min(24.0, max(_TONAL_RANGE_DB, math.ceil(np.max(np.abs(mid)) + 2.0))))
        pi.setYRange(-span, span, padding=0)

    @staticmethod
    def _terms_html(result: measure.Analysis) -> str:
        match, mix = result.match, result.mix.bands
        if mix is None:
            return f"<span style='color:{theme.TEXT_DIM.name()}'>The mix is silent.</span>"
        dim, warn = theme.TEXT_DIM.name(), theme.GR.name()
        parts = []
        if match is not None:
            oct_value = float(match.octave_diff_db[np.argmax(np.abs(match.octave_diff_db))])
            parts.append(
                f"<b>Tonal deviation {match.tonal_deviation_db:.1f} dB</b> · worst octave "
                f"{html.escape(match.worst_octave)} {_signed(oct_value)}<br>"
                f"<span style='color:{dim}'>{html.escape(match.worst_bands_text())}</span><br>"
                f"Width deviation {match.width_deviation_db:.1f} dB · dynamics deviation "
                f"{match.dynamics_deviation:.1f}")
        ref = result.reference.bands if result.reference is not None else None
        rows = [("Loudness", result.mix.lufs, result.reference.lufs if result.reference else None, "LUFS")]
        for name, lo, hi in WIDTH_RANGES:
            rows.append((f"Width {name} {short_hz(lo)}–{short_hz(hi)}", mix.width_db[name],
                         ref.width_db[name] if ref else None, "dB"))
        rows += [("Crest factor", mix.crest_db, ref.crest_db if ref else None, "dB"),
                 ("Loudness range", mix.lra_lu, ref.lra_lu if ref else None, "LU"),
                 ("Peak to loudness", mix.plr_db, ref.plr_db if ref else None, "dB"),
                 (f"Low end < {band_label(LOW_END_HZ)}", mix.low_end_db, ref.low_end_db if ref else None,
                  "dB"),
                 (f"Air > {band_label(AIR_HZ)}", mix.air_db, ref.air_db if ref else None, "dB")]
        cells = [f"<tr><td></td><td align='right' style='color:{theme.MIX.name()}'>mix</td>"
                 f"<td align='right' style='color:{theme.REFERENCE.name()}'>ref</td>"
                 f"<td align='right' style='color:{dim}'>diff</td><td></td></tr>"]
        for name, a, b, unit in rows:
            diff = "" if b is None else _signed(a - b, "").strip()
            colour = warn if b is not None and abs(a - b) > _WARN and unit != "LUFS" else theme.TEXT.name()
            cells.append(f"<tr><td style='color:{dim}'>{html.escape(name)}</td>"
                         f"<td align='right'>{a:.1f}</td>"
                         f"<td align='right'>{'' if b is None else f'{b:.1f}'}</td>"
                         f"<td align='right' style='color:{colour}'>{diff}</td>"
                         f"<td style='color:{dim}'>{unit}</td></tr>")
        parts.append("<table cellspacing='0' cellpadding='1' width='100%'>" + "".join(cells) + "</table>")
        return "".join(parts)

    def show_busy(self) -> None:
        self.title.setText(self.title.text().split(" (updating")[0] + " (updating…)")


class AnalysisController(QObject):
    """Debounced background analysis of the current mix; emits :class:`measure.Analysis`."""

    updated = Signal(object)

    def __init__(self, model, runner, parent=None):
        super().__init__(parent)
        self.model, self.runner = model, runner
        self._timer = QTimer(self, singleShot=True, interval=_DEBOUNCE_MS, timeout=self.run_now)
        self._running = False
        self._again = False
        self._ref_cache: tuple[int, measure.Measurement] | None = None
        model.modified.connect(self.schedule)
        model.audioChanged.connect(self.schedule)

    def schedule(self) -> None:
        self._timer.start()

    def run_now(self) -> None:
        inputs = self.model.inputs
        if inputs is None:
            return
        if self._running:
            self._again = True
            return
        s = self.model.session
        args = (inputs, s.params.copy(), s.mute, s.solo, s.loop, s.fx_mute)
        cached = self._ref_cache

        def job(task):
            return self._analyse(*args, cached)

        self._running = True
        self.runner.run("analysis", job, on_done=self._done, on_error=lambda *e: self._done(None))

    @staticmethod
    def _analyse(inputs, params, mute, solo, region, fx_mute, cached):
        ref = None
        if inputs.reference is not None:
            key = id(inputs.reference)
            ref = cached[1] if cached is not None and cached[0] == key else \
                measure.measure(inputs.reference, inputs.sample_rate)
        return measure.analyse(inputs, params, mute, solo, region, ref, fx_mute=fx_mute), ref

    def _done(self, out) -> None:
        self._running = False
        if out is not None:
            result, ref = out
            inputs = self.model.inputs
            if ref is not None and inputs is not None and inputs.reference is not None:
                self._ref_cache = (id(inputs.reference), ref)
            self.updated.emit(result)
        if self._again:
            self._again = False
            self.run_now()


class DecayController(QObject):
    """Recomputes the reverb's decay curves (:func:`core.decay.decay_curves`) a moment after the return's
    controls or the sends change; emits ``updated(curves, sends_on)``.

    The curves are computed on a thread of their own (tens of milliseconds for a long decay), which
    touches no Qt object: the GUI thread polls for its answer. They do not queue behind the analysis,
    Predict or export jobs of the window's task runner. Edits elsewhere on the console change neither
    the curves nor the sends and cost a comparison of a few numbers."""

    updated = Signal(object, bool)

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self._timer = QTimer(self, singleShot=True, interval=_DECAY_DEBOUNCE_MS, timeout=self.run_now)
        self._poll = QTimer(self, interval=_DECAY_POLL_MS, timeout=self._check)
        self._job: dict | None = None  # the computation in flight: its setting, then its answer
        self._again = False
        self._shown: tuple | None = None  # what the last emitted curves were for
        self._curves: tuple[tuple, list[DecayCurve]] | None = None  # (setting, curves) cache
        model.modified.connect(self.schedule)
        model.sessionChanged.connect(self.schedule)
        model.consoleReset.connect(self.schedule)
        self.schedule()

    def _state(self) -> tuple[tuple, bool]:
        s = self.model.session
        master = np.asarray(s.params.master, dtype=np.float64)
        # the return level only scales the curves: a change of it alone recomputes nothing
        setting = tuple(float(master[MASTER.index(k)]) for k in _DECAY_KEYS) + (int(s.sample_rate),)
        tracks = np.asarray(s.params.tracks, dtype=np.float64).reshape(-1, len(TRACK))
        sends = tracks[:, TRACK.index("send_db")]
        return setting, bool(np.any(send_gain(sends) > 0))

    @property
    def busy(self) -> bool:
        """A computation is in flight or an edit waits for the debounce."""
        return self._job is not None or self._timer.isActive()

    def schedule(self) -> None:
        if self._state() != self._shown:
            self._timer.start()

    def run_now(self) -> None:
        if self._job is not None:
            self._again = True
            return
        setting, sends_on = self._state()
        if self._curves is not None and self._curves[0] == setting:
            self._emit(setting, sends_on, self._curves[1])
            return
        params = RETURN.to_vector(dict(zip(_DECAY_KEYS, setting[:-1], strict=True)))
        job = self._job = {"setting": setting}

        def work():
            try:
                job["curves"] = decay_curves(params, setting[-1])
            except Exception as exc:  # shown as no update; the next edit tries again
                job["error"] = exc
            job["done"] = True

        threading.Thread(target=work, name="reverb decay", daemon=True).start()
        self._poll.start()

    def _check(self) -> None:
        job = self._job
        if job is None or not job.get("done"):
            return
        self._poll.stop()
        self._job = None
        if "curves" in job:
            self._curves = (job["setting"], job["curves"])
            current, sends_on = self._state()
            self._emit(job["setting"], sends_on, job["curves"])
            if current != job["setting"]:
                self._again = True
        if self._again:
            self._again = False
            self.run_now()

    def _emit(self, setting: tuple, sends_on: bool, curves: list[DecayCurve]) -> None:
        self._shown = (setting, sends_on)
        self.updated.emit(curves, sends_on)
