"""Worked solutions to notebook 09b's exercises (tests/test_exercises.py checks them)."""


def seconds_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """The first time a curve of (seconds, bits per byte) reaches ``target``: the first
    evaluation at or below it, and the straight line from the evaluation before it (a run is
    scored only at its evaluations; between them, the line is the honest guess). A curve that
    starts at or below the target reaches it at its first point; one that never does, None."""
    for i, (seconds, figure) in enumerate(curve):
        if figure <= target:
            if i == 0:
                return seconds
            earlier, before = curve[i - 1]
            return earlier + (seconds - earlier) * (before - target) / (before - figure)
    return None


def helped(rows: list[dict], noise: float) -> list[str]:
    """The pieces whose row beats the row before it by more than ``noise``: an ablation adds one
    piece a row, so a piece's gain is its row against the previous one, not against the first
    (which would credit it with every piece before it). Lower bits per byte are better."""
    return [row["name"] for previous, row in zip(rows, rows[1:]) if previous["val_bpb"] - row["val_bpb"] > noise]


def exercise_1():
    return seconds_to_reach


def exercise_2(noise: float = 0.03):
    return helped
