"""Checkers of chapters 05 to 07: the paper's half, perplexity, verdicts, seeds, the Pareto front, what a layer costs."""

from __future__ import annotations

from collections.abc import Callable

from .base import ExerciseError


# -- chapter 5: the paper's half ----------------------------------------------------------------------
def check_half_draw(student: Callable[[list, int], list]) -> None:
    """Exercise: choose half of a layer's units (rounding down) at random with a seed; the same seed, the same draw."""
    units = ["q", "k", "v", "o", "gate", "up", "down", "norm1", "norm2"]
    for seed in range(5):
        first, again = student(list(units), seed), student(list(units), seed)
        if len(first) != len(units) // 2:
            raise ExerciseError(f"Freeze half of the {len(units)} units, rounding down: {len(units) // 2}, not {len(first)}.")
        if not set(first) <= set(units) or len(set(first)) != len(first):
            raise ExerciseError("Pick distinct units from the list given.")
        if sorted(first) != sorted(again):
            raise ExerciseError("The same seed drew different units: use a generator seeded with `seed` "
                                "(random.Random(seed) or torch.Generator().manual_seed(seed)).")
    draws = {tuple(sorted(student(list(units), seed))) for seed in range(5)}
    if len(draws) == 1:
        raise ExerciseError("Every seed drew the same units: the draw must depend on the seed (that is what a redraw changes).")
    print("half draw: half the units, the same for a seed, different across seeds.")


def check_perplexity_change(student: float | None, before: float = 3.900, after: float = 3.921) -> None:
    """Exercise: the percent change of perplexity when the mean loss per token goes from `before` to `after` nats."""
    import math

    if student is None:
        raise NotImplementedError
    want = 100 * (math.exp(after - before) - 1)
    got = float(student)
    if abs(got - want) < 0.01:
        print(f"perplexity change: {want:+.2f} %, right (exp of the loss difference, minus one).")
        return
    if abs(got - 100 * (after - before) / before) < 0.01:
        raise ExerciseError("That is the loss's relative change. Perplexity is exp(loss): its ratio is exp(after - before).")
    if abs(got - (math.exp(after - before) - 1)) < 1e-4:
        raise ExerciseError("Right ratio, but as a fraction: multiply by 100 for percent.")
    raise ExerciseError(f"Not {got:+.3f} %: perplexity after / before = exp({after} - {before}); subtract 1, times 100.")


# -- chapter 6: verdicts --------------------------------------------------------------------------------
def check_verdict(student: Callable[[float, float, str, float], str]) -> None:
    """Exercise: a verdict from an interval: "supported", "refuted" or "not resolved at this budget"."""
    from ..measure.stats import verdict

    cases = [(0.01, 0.05, "greater", 0.0), (-0.05, -0.01, "greater", 0.0), (-0.01, 0.03, "greater", 0.0),
             (-0.05, -0.01, "less", 0.0), (-0.01, 0.01, "equivalent", 0.02), (-0.06, -0.03, "equivalent", 0.02),
             (-0.03, 0.01, "equivalent", 0.02)]
    for low, high, claim, margin in cases:
        want, got = verdict(low, high, claim, margin), student(low, high, claim, margin)
        if got != want:
            raise ExerciseError(f"Interval [{low:+.2f}, {high:+.2f}], claim {claim!r}, margin {margin}: {want!r}, not {got!r}. "
                                "Only an interval wholly on one side decides; one that straddles the line is not resolved.")
    print("verdicts: right on all seven intervals.")


def check_seeds_needed(student: int | None, sd: float = 0.02, effect: float = 0.01) -> None:
    """Exercise: the fewest seeds whose minimum detectable effect (80 % power, 5 % two-sided) is at most `effect` when
    the per-seed differences have standard deviation `sd`."""
    from ..measure.stats import minimum_detectable_effect

    if student is None:
        raise NotImplementedError
    want = next(n for n in range(2, 1000) if minimum_detectable_effect(sd, n) <= effect)
    got = int(student)
    if got == want:
        print(f"seeds needed: {want}, right (the MDE shrinks like 1 / sqrt(n), and the t quantiles shrink too).")
        return
    if got < want:
        raise ExerciseError(f"With {got} seeds the MDE is {100 * minimum_detectable_effect(sd, got):.2f} points, above "
                            f"{100 * effect:g}: more seeds.")
    raise ExerciseError(f"{got} seeds detect it, but fewer do too: the MDE first falls to {100 * effect:g} points at fewer "
                        "seeds; count up from 2 with stats.minimum_detectable_effect(sd, n).")


# -- chapter 7: the oracle --------------------------------------------------------------------------------
def check_pareto(student: Callable[[list, list], list]) -> None:
    """Exercise: which points are on the front: no other point is at least as fast and as accurate, and better in one."""
    from ..experiments.oracle import pareto

    cases = [([1.0, 0.5, 0.6, 0.4], [0.9, 0.8, 0.7, 0.6]),  # c is slower and worse than b
             ([0.5, 0.5, 0.3], [0.8, 0.7, 0.7]),  # same time, lower accuracy: dominated
             ([0.4, 0.4], [0.8, 0.8])]  # exact ties dominate neither
    import pandas as pd

    for times, accuracy in cases:
        want = pareto(pd.DataFrame({"step_time_s": times, "test_accuracy": accuracy})).tolist()
        got = [bool(v) for v in student(list(times), list(accuracy))]
        if got == want:
            continue
        if len(got) != len(want):
            raise ExerciseError(f"Return one True/False per point ({len(want)} here), not {len(got)}.")
        wrong = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
        why = ("another point is at least as fast and as accurate, and better in one" if not want[wrong]
               else "no point beats it on both: a tie on one axis only dominates with a strict win on the other")
        raise ExerciseError(f"Point {wrong} (time {times[wrong]}, accuracy {accuracy[wrong]}) should be "
                            f"{'on' if want[wrong] else 'off'} the front: {why}.")
    print("Pareto front: right on all three sets of points, ties included.")


def check_layer_effect(student: Callable[[object, int], float]) -> None:
    """Exercise: mean accuracy over the subsets with `layer` frozen minus over those with it trainable."""
    import pandas as pd

    from ..experiments.oracle import layer_effects, load
    from ..strategies import subset_name

    rows = [{"strategy": subset_name(i for i in range(3) if m >> i & 1), "seed": s,
             "test_accuracy": 0.9 - 0.2 * (m >> 2 & 1) - 0.05 * (m & 1) + 0.01 * s} for m in range(8) for s in (0, 1)]
    rows.append({"strategy": "full", "seed": 0, "test_accuracy": 0.99})  # a rule outside the grid: not a subset
    frame = load(pd.DataFrame(rows))  # adds frozen, n_frozen and label, as for the stored runs
    for layer, want in layer_effects(frame)["effect"].items():
        got = float(student(frame.copy(), layer))
        if abs(got - want) < 1e-9:
            continue
        if abs(got + want) < 1e-9:
            raise ExerciseError(f"Layer {layer}: the sign is flipped: frozen minus trainable is {want:+.3f}.")
        raise ExerciseError(f"Layer {layer}: {want:+.3f}, not {got:+.3f}. Use only the subset runs (frozen is not None), "
                            "split them by whether the layer is in `frozen`, and subtract the two means.")
    print("layer effect: right for every layer (the rule outside the grid left out).")
