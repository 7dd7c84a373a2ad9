"""The quality benchmark's code paths on tiny numpy songs (the numbers live in the benchmark itself)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from core.params import MASTER, TRACK
from training.engineer import stems_inputs

from synthetic import make_stems

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import quality  # noqa: E402

SR = quality.SAMPLE_RATE


@pytest.mark.slow
def test_tiny_run_prints_every_row_and_column(tmp_path, capsys):
    out = tmp_path / "q.json"
    assert quality.main(["--tiny", "--synthetic", "--seconds", "6", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for kind in quality.KINDS:
        assert quality.KIND_TITLES[kind] in text
    for label in quality.ROW_LABELS.values():
        assert label.format(steps=quality.TINY["steps"]) in text
    for _, header, _, _ in quality.COLUMNS:
        assert header in text
    assert text.count("*target (model + refine)*") == 2

    doc = json.loads(out.read_text())
    assert doc["meta"]["songs_cross"] == 1 and doc["meta"]["songs_same"] == 1
    assert {s["kind"] for s in doc["songs"]} == {"cross", "same"}
    for kind in quality.KINDS:
        rows = doc["summary"][kind]
        assert set(rows) == set(quality.ROWS)
        assert rows["sum"]["af_rel"] == pytest.approx(100.0)
        for r in rows.values():
            assert r["songs"] == 1
            for key in ("tonal_db", "worst_octave_db", "width_db", "dynamics", "seconds"):
                assert math.isfinite(r[key]) and r[key] >= 0
            assert 0 <= r["at_limit"] <= 100 and 0 <= r["at_limit_all"] <= 100
            assert r["eq_over"] in (0, 1) and r["fast_comp"] in (0, 1)
            assert r["af_rel"] > 0
            if kind == "same":
                assert r["mrstft_rel"] > 0 and r["balance_db"] >= 0
            else:
                assert "mrstft_rel" not in r
        assert rows["sum"]["seconds"] == 0
    same = doc["summary"]["same"]
    assert same["sum"]["mrstft_rel"] == pytest.approx(1.0)


def test_same_song_case_keeps_the_true_mix_of_the_second_half():
    def song(seed, seconds):
        return quality.numpy_song(seed, seconds)

    case = quality.same_case(0, song, 4.0)
    half = int(4.0 * SR) // 2
    assert case.inputs.frames == half and case.inputs.reference.shape[-1] == half
    assert case.true_mix.shape == (2, half)
    assert case.true_shares.sum() == pytest.approx(1.0)
    # the stems are the second half of the song
    stems = make_stems(SR, 4.0, seed=quality.SEED_SAME, bpm=90.0 + quality.SEED_SAME % 50)
    np.testing.assert_array_equal(case.inputs.stems[0, 0], stems[case.inputs.names[0]][0, half:])


def _sine_inputs(freq: float):
    t = np.arange(2 * SR) / SR
    return stems_inputs({"bass": (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)}, SR)


def test_plausibility_counts():
    inputs = _sine_inputs(60.0)
    levels = quality._stem_band_levels(inputs)
    params = inputs.default_params()
    p = quality.plausibility(inputs, params, levels)
    # defaults: nothing pinned that matters, but ratio 1:1, threshold 0 dB and makeup 0 dB sit at range ends
    assert p["at_limit"] == 0 and p["at_limit_all"] > 0 and not p["eq_over"] and not p["fast_comp"]

    shelf = params.copy()  # +12 dB at 16 kHz on a 60 Hz sine changes nothing audible
    shelf.tracks[0, TRACK.index("eq_high_shelf_gain_db")] = 12.0
    shelf.tracks[0, TRACK.index("eq_high_shelf_freq_hz")] = 16000.0
    p = quality.plausibility(inputs, shelf, levels)
    assert not p["eq_over"] and p["at_limit"] > 0  # still pinned at the range end

    boost = params.copy()  # +10 dB on the sine's own band does
    boost.tracks[0, TRACK.index("eq_band1_gain_db")] = 10.0
    boost.tracks[0, TRACK.index("eq_band1_freq_hz")] = 60.0
    assert quality.plausibility(inputs, boost, levels)["eq_over"]
    master = params.copy()  # on the master bus every band matters
    master.master[MASTER.index("eq_high_shelf_gain_db")] = -10.0
    assert quality.plausibility(inputs, master, levels)["eq_over"]

    fast = params.copy()
    fast.tracks[0, TRACK.index("comp_attack_ms")] = 0.5
    assert not quality.plausibility(inputs, fast, levels)["fast_comp"]  # compressor off (1:1)
    fast.tracks[0, TRACK.index("comp_ratio")] = 4.0
    fast.tracks[0, TRACK.index("comp_threshold_db")] = -20.0
    assert quality.plausibility(inputs, fast, levels)["fast_comp"]
    fast.tracks[0, TRACK.index("comp_attack_ms")] = 5.0
    fast.master[MASTER.index("comp_ratio")] = 2.0
    fast.master[MASTER.index("comp_release_ms")] = 12.0
    assert quality.plausibility(inputs, fast, levels)["fast_comp"]
