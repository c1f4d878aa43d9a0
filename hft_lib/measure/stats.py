"""Paired comparisons over seeds: mean difference, 95 % interval, minimum detectable effect, verdict.

Every strategy in a sweep runs on the same seeds (the seed fixes the head's initialisation, the data
order and the training subset), so strategy B is compared with reference A seed by seed: d_s = B_s - A_s.
Pairing removes what the seed does to both (Dodge et al. 2020: on small data the seed moves results as
much as the method), so the interval is on the difference, not on two overlapping error bars.

- `paired(frame, metric, reference)`: one row per strategy: n seeds, mean difference, its spread (`sd_diff`) and
  standard error, the 95 % and 90 % t-intervals, and the minimum detectable effect (MDE): the smallest true
  difference this many seeds would find at 5 % significance with 80 % power, *estimated from the observed spread
  of the differences* (2.8 standard errors for n >= 5 or so; t-based below).
- `verdict(low, high, claim)`: "supported" when the interval lies wholly on the side the claim predicts
  (beyond `margin`), "refuted" when it lies wholly on the other side or, for claims of "no worse by
  more than margin", wholly beyond it, else "not resolved at this budget". For an equivalence claim pass the
  90 % interval: that is the two one-sided tests (TOST) at 5 % each, which a 95 % interval makes far too strict
  (`decide` picks the right interval).
- `p_value(row, claim, margin)`: the one-sided p-value of the claim (TOST's larger one for equivalence), and
  `holm(ps)`: Holm's step-down adjustment over a family of claims.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

SUPPORTED, REFUTED, UNRESOLVED = "supported", "refuted", "not resolved at this budget"
CLAIMS = ("greater", "less", "equivalent")


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of `values` (NaNs dropped); (mean, nan, nan) for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def minimum_detectable_effect(sd: float, n: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """Smallest true mean difference a two-sided paired t-test on `n` pairs detects with `power`."""
    if n < 2 or math.isnan(sd):
        return math.nan
    t_alpha = scipy_stats.t.ppf(1 - alpha / 2, n - 1)
    t_beta = scipy_stats.t.ppf(power, n - 1)
    return (t_alpha + t_beta) * sd / math.sqrt(n)


def paired(frame: pd.DataFrame, metric: str, reference: str, by: str = "strategy", seed: str = "seed",
           confidence: float = 0.95) -> pd.DataFrame:
    """Each `by` value against `reference`, paired on `seed`: n, means, mean difference, interval, MDE, spread.

    Runs whose `metric` is NaN (diverged) drop out of the pairs and are counted in `diverged`.
    """
    for column in (metric, by, seed):
        if column not in frame.columns:
            raise ValueError(f"The results have no {column!r} column (they have {', '.join(map(str, frame.columns))}).")
    if reference not in set(frame[by]):
        raise ValueError(f"No runs of the reference {reference!r} in the results; "
                         f"pick one of {', '.join(map(str, frame[by].unique()))}.")
    if frame.duplicated([by, seed]).any():
        raise ValueError(f"Several runs share a {by} and {seed}; filter the results to one configuration first.")
    table = frame.pivot(index=seed, columns=by, values=metric)
    rows = []
    for name in table.columns:
        diff = (table[name] - table[reference]).dropna()
        mean, low, high = mean_ci(diff, confidence)
        _, low90, high90 = mean_ci(diff, 0.90)
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else math.nan
        rows.append({by: name, "n": len(diff), "mean": float(table[name].mean()), "sd_diff": sd,
                     "se": sd / math.sqrt(len(diff)) if len(diff) > 1 else math.nan,
                     "reference_mean": float(table[reference].mean()), "diff": mean, "ci_low": low, "ci_high": high,
                     "ci90_low": low90, "ci90_high": high90, "mde": minimum_detectable_effect(sd, len(diff)),
                     "diverged": int(frame.loc[frame[by] == name, metric].isna().sum())})
    return pd.DataFrame(rows).set_index(by)


def verdict(low: float, high: float, claim: str = "greater", margin: float = 0.0) -> str:
    """Map an interval on (candidate - reference) to supported / refuted / not resolved at this budget.

    claim "greater": the candidate is higher by more than `margin`; "less": lower by more than `margin`;
    "equivalent": within +-margin of the reference (e.g. "matches full fine-tuning to 2 points").
    """
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {', '.join(CLAIMS)}, not {claim!r}.")
    if math.isnan(low) or math.isnan(high):
        return UNRESOLVED
    if claim == "equivalent":
        if margin <= 0:
            raise ValueError("An equivalence claim needs margin > 0 (how close counts as the same).")
        if -margin <= low and high <= margin:
            return SUPPORTED
        return REFUTED if high < -margin or low > margin else UNRESOLVED
    if claim == "less":
        low, high = -high, -low
    if low > margin:
        return SUPPORTED
    return REFUTED if high < margin else UNRESOLVED


def decide(row, claim: str = "greater", margin: float = 0.0) -> str:
    """The verdict of one row of `paired`: the 95 % interval for a directional claim, the 90 % one (TOST) for equivalence."""
    if claim == "equivalent":
        return verdict(row["ci90_low"], row["ci90_high"], claim, margin)
    return verdict(row["ci_low"], row["ci_high"], claim, margin)


def p_value(row, claim: str = "greater", margin: float = 0.0) -> float:
    """One-sided p-value that the claim holds, from a row of `paired` (mean `diff`, standard error `se`, `n`):
    greater: H0 diff <= margin; less: H0 diff >= -margin; equivalent: the larger of TOST's two one-sided p-values."""
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {', '.join(CLAIMS)}, not {claim!r}.")
    n, se, diff = row["n"], row["se"], row["diff"]
    if n < 2 or not se > 0:
        return math.nan

    def above(bound):  # p of H0: true diff <= bound
        return float(scipy_stats.t.sf((diff - bound) / se, n - 1))

    if claim == "greater":
        return above(margin)
    if claim == "less":
        return 1 - above(-margin)
    return max(above(-margin), 1 - above(margin))


def p_refute(row, claim: str = "greater", margin: float = 0.0) -> float:
    """One-sided p-value that the claim fails: greater: H0 diff >= margin; less: H0 diff <= -margin; equivalent: the
    smaller p of lying beyond either end of the margin."""
    if claim == "greater":
        return p_value(row, "less", -margin)
    if claim == "less":
        return p_value(row, "greater", -margin)
    return min(p_value(row, "greater", margin), p_value(row, "less", margin))


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the claims tested together); NaNs stay NaN."""
    ps = [float(p) for p in p_values]
    order = sorted((i for i, p in enumerate(ps) if not math.isnan(p)), key=lambda i: ps[i])
    adjusted, running = list(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def describe(row: pd.Series, scale: float = 100.0, unit: str = " points") -> str:
    """'+1.2 points [−0.5, +2.9], MDE 2.4 points, n = 5' for one row of `paired`."""
    def f(v):
        return f"{v * scale:+.1f}"

    return f"{f(row['diff'])}{unit} [{f(row['ci_low'])}, {f(row['ci_high'])}], MDE {row['mde'] * scale:.1f}{unit}, n = {row['n']}"
