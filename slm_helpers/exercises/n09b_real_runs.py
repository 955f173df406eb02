"""Checks of notebook 09b's exercises (the modern recipe on real stories)."""

from __future__ import annotations

import math

from slm_helpers.exercises.registry import exercise

# Development curves of (seconds, bits per byte) and targets: a crossing between evaluations,
# one exactly at an evaluation, a curve that starts below, one that never gets there, and a
# curve that dips below, rises, and dips again (the first crossing counts).
CURVES = [([(0, 4.0), (100, 2.0), (200, 1.0), (300, 0.8)], 1.5),
          ([(0, 4.0), (100, 2.0), (200, 1.0), (300, 0.8)], 1.0),
          ([(0, 0.7), (100, 0.6)], 0.9),
          ([(0, 4.0), (150, 2.0), (300, 1.2)], 1.0),
          ([(0, 3.0), (60, 1.4), (120, 0.9), (180, 1.1), (240, 0.85)], 1.0),
          ([(0.0, 5.1), (45.5, 1.31), (91.0, 1.02), (136.5, 0.95)], 1.0)]


@exercise("09b.1")
def _seconds_to_reach(answer, **_):
    """The learner's crossing time against :func:`slm_helpers.speed.seconds_to_reach` on
    curves that cross between evaluations, at one, from the start, never, and twice."""
    from slm_helpers.speed import seconds_to_reach

    for curve, target in CURVES:
        expected, got = seconds_to_reach(curve, target), answer([tuple(p) for p in curve], target)
        if expected is None:
            if got is not None:
                return False, f"the curve {curve} never reaches {target}: return None, not {got}"
            continue
        if got is None or not math.isclose(float(got), expected, abs_tol=1e-6):
            return False, (f"the curve {curve} first reaches {target} at {expected:g} s, not {got}: find the first "
                           "evaluation at or below the target, then read the straight line from the evaluation "
                           "before it (a curve that starts below it reaches it at its first point)")
    return True, ""


ROWS = [("baseline", 1.40), ("+ a", 1.20), ("+ b", 1.19), ("+ c", 1.23), ("+ d", 1.12), ("+ e", 1.115),
        ("+ f", 1.05)]


@exercise("09b.2")
def _helped(answer, noise: float = 0.03, **_):
    """The learner's pieces that helped beyond ``noise``: each row against the row before it
    (what that one piece added), lower being better."""
    rows = [{"name": name, "val_bpb": bpb} for name, bpb in ROWS]
    expected = [b["name"] for a, b in zip(rows, rows[1:]) if a["val_bpb"] - b["val_bpb"] > noise]
    got = answer([dict(r) for r in rows], noise)
    got = [got] if isinstance(got, str) else list(got or [])
    if sorted(got) == sorted(expected):
        return True, ""
    return False, (f"with rows {ROWS} and noise {noise} the pieces that helped are {expected}, not {got}: compare "
                   "each row with the row before it (not with the first), lower is better, and a gain within the "
                   "noise is no gain")
