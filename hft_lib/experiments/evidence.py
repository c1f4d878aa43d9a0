"""The claims this package tests, each as a paired comparison on stored sweep results, with its verdict.

A claim names an experiment, a metric, a candidate and a reference variant, and what it predicts
(`greater`, `less`, or `equivalent` within a margin). `verdicts()` computes every claim from the
results store: mean paired difference over seeds, 95 % interval, minimum detectable effect, and the
verdict that interval implies (`measure.stats.decide`: the 95 % interval for a directional claim, the 90 %
one, i.e. two one-sided tests, for equivalence), and beside it the verdict after Holm's adjustment over every
claim in the table (`verdict_holm`: 19 claims tested together would otherwise find some by chance). A claim
whose precondition fails (the candidate did not learn; the reference forgot nothing; task A fell to the floor;
full fine-tuning did not overfit) is "not testable here", with the reason. The README's results and the
notebooks' verdicts are this table; none is written by hand.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..measure import stats
from .claims import ACCURACY_MARGIN, CLAIMS, FAIR, SECOND_BUDGET, SHARED_RATE_CLAIMS, Claim  # noqa: F401 (the API)
from .sweep import load_results

OVERFIT_GAP = 0.10  # full fine-tuning overfits here if its train accuracy exceeds its test accuracy by this much


PEAK_FALL = 0.03  # v2: full fine-tuning overfits if its validation accuracy falls this far from its peak by the end
FLOOR_MARGIN = 0.05  # task A at or below its majority class + 5 points after task B: at the floor, forgetting is capped
LEARNED_A = 0.15  # task A must be this far above its majority class before task B, on every seed (v2)


def _learned(claim: Claim, frame: pd.DataFrame) -> str | None:
    """Every claim's precondition: the candidate learned (at most half of its runs failed), and, for forgetting, the
    reference forgot something, above the floor."""
    runs = frame[frame["variant"] == claim.candidate]
    failed = int(runs["failed"].astype(bool).sum()) if "failed" in runs else 0
    if failed > len(runs) / 2:
        return f"not testable here: {claim.candidate} did not learn ({failed} of {len(runs)} runs failed)"
    reference = frame[frame["variant"] == claim.reference]
    if claim.metric == "retention_cc" and reference[claim.metric].mean() >= 100:
        return (f"not testable here: {claim.reference} kept {reference[claim.metric].mean():.0f} % of the probes' "
                "above-chance accuracy, so there was no forgetting to prevent")
    if claim.metric == "forgetting" and "majority_baseline_a" in reference:
        weak = reference["task_a_before"] < reference["majority_baseline_a"] + LEARNED_A
        if weak.any():
            return (f"not testable here: task A was not learned {100 * LEARNED_A:.0f} points above chance before task B on "
                    f"{int(weak.sum())} of {len(reference)} seeds, so there was little to forget")
    if claim.metric == "forgetting" and "task_a_after" in reference:
        # runs stored before the protocol recorded task A's majority class had a balanced binary task A: chance 0.5
        chance = reference.get("majority_baseline_a", 0.5)
        floor = reference["task_a_after"] <= chance + FLOOR_MARGIN
        if floor.any():
            return (f"not testable here: {claim.reference} left task A at the floor (chance) on {int(floor.sum())} of "
                    f"{len(reference)} seeds, which caps how much any strategy can forget")
    if claim.metric in ("forgetting", "forgetting_pct") and not stats.mean_ci(reference[claim.metric])[1] > 0:
        return f"not testable here: {claim.reference} forgot nothing measurable (its interval reaches 0)"
    return None


def _curve(value) -> list[float]:
    """A stored per-epoch curve (a list, or its text in a CSV cell)."""
    import json

    return json.loads(value) if isinstance(value, str) else list(value)


def _precondition(claim: Claim, frame: pd.DataFrame) -> str | None:
    """Why the claim cannot be tested in this regime, or None."""
    learned = _learned(claim, frame)
    if learned:
        return learned
    if claim.precondition == "candidate_froze":
        share = frame.loc[frame["variant"] == claim.candidate, "trainable_pct"]
        if len(share) and (share >= 100).all():
            return f"not testable here: {claim.candidate} froze nothing within this budget (it ran as full fine-tuning)"
    if claim.precondition == "full_peaks":
        curves = frame.loc[frame["variant"] == claim.reference, "val_curve"].map(_curve)
        fall = float((curves.map(max) - curves.map(lambda c: c[-1])).mean())
        if fall < PEAK_FALL:
            return (f"not testable here: full fine-tuning's validation accuracy fell {100 * fall:.1f} points on average "
                    f"from its best epoch to its last (< {100 * PEAK_FALL:.0f}), so there was no overfitting to cure")
    if claim.precondition == "full_overfits":
        gap = frame.loc[frame["variant"] == claim.reference, "train_test_gap"].mean()
        if gap < OVERFIT_GAP:
            return f"not testable here: full fine-tuning's train-test gap is {100 * gap:.1f} points (< {100 * OVERFIT_GAP:.0f})"
    return None


def verdicts(out: str | Path | None = None, profile: str = "quick", claims=CLAIMS) -> pd.DataFrame:
    """Every claim whose experiment has results: the paired comparison and its verdict (one row per claim), the rates
    and budget it holds at (`setting`), and, where a second budget was run, its verdict there (`budget2_verdict`) and
    whether the two budgets agree (`holds`: "agree" or "disagree"; a verdict holds only where they agree)."""
    rows, frames = [], {}

    def frame_of(experiment):
        if experiment not in frames:
            try:
                frames[experiment] = load_results(experiment, profile, out)
            except ValueError:
                frames[experiment] = None
        return frames[experiment]

    for claim in claims:
        frame = frame_of(claim.experiment)
        if frame is None or not {claim.candidate, claim.reference} <= set(frame["variant"]):
            continue
        row, blocked = _compare(claim, frame)
        verdict = blocked or stats.decide(row, claim.predicts, claim.margin)
        rows.append({"claim": claim.id, "text": claim.text, "experiment": claim.experiment, "metric": claim.metric,
                     "candidate": claim.candidate, "reference": claim.reference, **_setting(claim, frame),
                     "n": int(row["n"]), "candidate_mean": row["mean"],
                     "reference_mean": row["reference_mean"], "diff": row["diff"], "ci_low": row["ci_low"],
                     "ci_high": row["ci_high"], "ci90_low": row["ci90_low"], "ci90_high": row["ci90_high"],
                     "mde": row["mde"], "predicts": claim.predicts, "margin": claim.margin, "verdict": verdict,
                     "p_support": stats.p_value(row, claim.predicts, claim.margin),
                     "p_refute": stats.p_refute(row, claim.predicts, claim.margin), "testable": blocked is None,
                     **_second_budget(claim, verdict, frame_of)})
    return _holm(pd.DataFrame(rows))


def _compare(claim: Claim, frame: pd.DataFrame):
    """The paired row of candidate against reference, and why the claim is not testable here (or None)."""
    table = stats.paired(frame[frame["variant"].isin([claim.candidate, claim.reference])], claim.metric,
                         claim.reference, by="variant")
    return table.loc[claim.candidate], _precondition(claim, frame)


def _setting(claim: Claim, frame: pd.DataFrame) -> dict:
    """The rates and budget a verdict holds at: `rates` ("3e-4 vs 3e-4", "" without a rate column), `budget` ("500
    examples x 3 epochs" or "64 steps") and `setting`, the two in words."""
    from .protocols import cell_profile

    first = frame.iloc[0].dropna().to_dict()
    rates = ""
    if "lr" in frame:
        rate = {v: frame.loc[frame["variant"] == v, "lr"].iloc[0] for v in (claim.candidate, claim.reference)}
        rates = " vs ".join(f"{rate[v]:.0e}".replace("e-0", "e-") for v in rate)
    if "lm_steps" in frame:
        budget = f"{int(first['lm_steps'])} steps"
    else:
        profile = cell_profile({k: int(v) if k in ("train_size", "epochs") else v for k, v in first.items()})
        budget = f"{profile.train_size:,} examples x {profile.epochs} epochs"
    return {"rates": rates, "budget": budget, "setting": ", ".join(p for p in (rates, budget) if p)}


def _second_budget(claim: Claim, verdict: str, frame_of) -> dict:
    """The claim's verdict on the second budget's runs, and whether it agrees with the first (`holds`)."""
    experiment = SECOND_BUDGET.get(claim.experiment)
    frame = frame_of(experiment) if experiment else None
    if frame is None or claim.metric not in frame or not {claim.candidate, claim.reference} <= set(frame["variant"]):
        return {}
    row, blocked = _compare(claim, frame)
    second = blocked or stats.decide(row, claim.predicts, claim.margin)
    size = _setting(claim, frame)["budget"]
    return {"budget2": size, "budget2_diff": row["diff"], "budget2_ci_low": row["ci_low"],
            "budget2_ci_high": row["ci_high"], "budget2_verdict": second,
            "holds": "agree" if second == verdict else "disagree"}


def flips(out: str | Path | None = None, profile: str = "quick", fair: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each claim's verdict at one shared rate beside its verdict with every strategy at its own rate: where they
    differ, the shared rate was speaking, not the strategy (`changed`). `fair`: `verdicts(out, profile)` if the caller
    has it already."""
    shared = verdicts(out, profile, SHARED_RATE_CLAIMS).set_index("claim")
    fair = (verdicts(out, profile) if fair is None else fair).set_index("claim")
    table = pd.DataFrame({"text": shared["text"], "one shared rate": shared["verdict"].map(_short),
                          "shared diff": shared["diff"], "each at its own rate": fair["verdict"].map(_short),
                          "own diff": fair["diff"], "metric": shared["metric"]})
    table = table.reindex([c.id for c in SHARED_RATE_CLAIMS])
    table["changed"] = table["each at its own rate"].notna() & (table["one shared rate"] != table["each at its own rate"])
    return table


def _holm(table: pd.DataFrame) -> pd.DataFrame:
    """`verdict_holm`: the verdict once the p-values of every testable claim are Holm-adjusted together (support and
    refutation each a family), at the level the raw verdict uses (2.5 % one-sided for a direction, 5 % for TOST)."""
    if table.empty:
        return table
    testable = table["testable"]
    for column in ("p_support", "p_refute"):
        table[f"{column}_holm"] = float("nan")
        table.loc[testable, f"{column}_holm"] = stats.holm(table.loc[testable, column])
    alpha = table["predicts"].map(lambda c: 0.05 if c == "equivalent" else 0.025)
    table["verdict_holm"] = [
        v if not ok else stats.SUPPORTED if s < a else stats.REFUTED if (v == stats.REFUTED and r < a) else stats.UNRESOLVED
        for v, ok, s, r, a in zip(table["verdict"], testable, table["p_support_holm"], table["p_refute_holm"], alpha)]
    return table


def summary_table(out: str | Path | None = None, profile: str = "quick", experiment: str = "strategies",
                  metrics: tuple[str, ...] = ("test_accuracy",)) -> pd.DataFrame:
    """Mean, 95 % interval and failed runs of each variant of one experiment (for tables and error bars)."""
    from .sweep import get_experiment, variant_label

    frame = load_results(experiment, profile, out)
    order = [variant_label(v) for v in get_experiment(experiment).variants]
    rows = []
    rank = {v: i for i, v in enumerate(order)}  # a picked subset is named by what it froze: first
    for variant, group in sorted(frame.groupby("variant"), key=lambda item: rank.get(item[0], -1)):
        row = {"variant": variant, "n": len(group), "failed": int(group["failed"].sum()) if "failed" in group else 0,
               **({"lr": group["lr"].iloc[0]} if "lr" in group and group["lr"].nunique() == 1 else {})}
        for metric in metrics:
            mean, low, high = stats.mean_ci(group[metric])
            row.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high, f"{metric}_sd": group[metric].std()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


SCALE = {"test_accuracy": (100, "points"), "task_accuracy": (100, "points"), "forgetting": (100, "points"),
         "retention_cc": (1, "% kept"), "forgetting_pct": (1, "% perplexity")}


def markdown(table: pd.DataFrame, compact: bool = False) -> str:
    """The verdict table as Markdown: claim, comparison, the rates and budget it holds at, paired difference [95 % CI],
    MDE, seeds, verdict, after Holm, and at the second budget where one was run. `compact` (a notebook's width): the
    claim with what it says, the comparison, the difference, the seeds, the verdict and after Holm."""
    if compact:
        lines = ["| claim | candidate vs reference (rates) | difference [95 % CI] | seeds | verdict | after Holm |",
                 "|---|---|---:|---:|---|---|"]
        for r in table.itertuples():
            scale, unit = SCALE.get(r.metric, (1, ""))
            lines.append(f"| **{r.claim}**: {r.text} | {r.candidate} vs {r.reference} ({r.rates or r.budget}) | "
                         f"{r.diff * scale:+.1f} [{r.ci_low * scale:+.1f}, {r.ci_high * scale:+.1f}] {unit} | {r.n} | "
                         f"**{r.verdict}** | {_short(r.verdict_holm)} |")
        return "\n".join(lines)
    second = "holds" in table
    lines = [("| claim | what it says | metric | candidate vs reference | rates, budget | difference [95 % CI] | MDE | seeds "
              "| verdict | after Holm |" + (" at the second budget |" if second else "")),
             "|---|---|---|---|---|---:|---:|---:|---|---|" + ("---|" if second else "")]
    for r in table.itertuples():
        scale, unit = SCALE.get(r.metric, (1, ""))
        line = (f"| {r.claim} | {r.text} | {r.metric} | {r.candidate} vs {r.reference} | {r.setting} | "
                f"{r.diff * scale:+.1f} [{r.ci_low * scale:+.1f}, {r.ci_high * scale:+.1f}] {unit} | "
                f"{r.mde * scale:.1f} | {r.n} | **{r.verdict}** | {_short(r.verdict_holm)} |")
        if second:
            line += (f" {r.budget2}: {r.budget2_diff * scale:+.1f} [{r.budget2_ci_low * scale:+.1f}, "
                     f"{r.budget2_ci_high * scale:+.1f}], {_short(r.budget2_verdict)}; the budgets {r.holds} |"
                     if isinstance(r.holds, str) else " |")
        lines.append(line)
    return "\n".join(lines)


def flips_markdown(table: pd.DataFrame) -> str:
    """`flips` as Markdown: the claims whose verdict changed once each strategy ran at its own rate."""
    lines = ["| claim | what it says | one shared rate | each at its own rate |", "|---|---|---|---|"]
    for claim, r in table.iterrows():
        scale, unit = SCALE.get(r["metric"], (1, ""))
        own = f"{r['each at its own rate']} ({r['own diff'] * scale:+.1f} {unit})" if r["changed"] or isinstance(
            r["each at its own rate"], str) else "not tested: no shared rate to raise"
        mark = "**" if r["changed"] else ""
        lines.append(f"| {claim} | {r['text']} | {r['one shared rate']} ({r['shared diff'] * scale:+.1f} {unit}) | "
                     f"{mark}{own}{mark} |")
    return "\n".join(lines)


def _short(verdict: str) -> str:
    """The Holm column repeats a "not testable here: why" verdict as "not testable" (the why is beside it)."""
    return verdict.split(":")[0]


# What the README shows of each experiment: (experiment, metric -> column title, scale for the numbers).
README_TABLES = (
    ("confirm", {"test_accuracy": "TREC-6 test accuracy", "retention_cc": "probe retention, above chance (%)",
                 "step_time_s": "s per step"}),
    ("budget2", {"test_accuracy": "TREC-6 test accuracy"}),
    ("oracle_confirm", {"test_accuracy": "TREC-6 test accuracy"}),
    ("small_data2", {"test_accuracy_best": "test accuracy, best epoch", "test_accuracy": "test accuracy, last epoch",
                     "train_accuracy": "train accuracy"}),
    ("sequential2", {"task_a_before": "movie_sentiment before", "forgetting": "movie_sentiment accuracy lost",
                     "test_accuracy": "TREC-6 test accuracy"}),
    ("decoder2", {"task_accuracy": "task accuracy", "forgetting_pct": "news perplexity change (%)"}),
)


def _cell(mean: float, low: float, high: float, percent: bool) -> str:
    if percent:
        return f"{mean:.1f} [{low:.1f}, {high:.1f}]"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def summary_markdown(experiment: str, metrics: dict[str, str], out: str | Path | None = None, profile: str = "quick") -> str:
    """One experiment's variants as a Markdown table: its rate, mean [95 % interval] of each metric, seeds, failed runs."""
    table = summary_table(out, profile, experiment, tuple(metrics))
    rate = "lr" in table
    lines = ["| variant | " + ("peak rate | " if rate else "") + "seeds | " + " | ".join(metrics.values()) + " | failed runs |",
             "|---|" + ("---:|" if rate else "") + "---:|" + "---:|" * len(metrics) + "---:|"]
    for variant, r in table.iterrows():
        cells = [_cell(r[m], r[f"{m}_low"], r[f"{m}_high"], m in ("retention_cc", "forgetting_pct")) for m in metrics]
        lr = f"{r['lr']:.0e} | ".replace("e-0", "e-") if rate else ""
        lines.append(f"| {variant} | {lr}{int(r['n'])} | " + " | ".join(cells) + f" | {int(r['failed'])} |")
    return "\n".join(lines)


def readme_block(out: str | Path | None = None, profile: str = "quick") -> str:
    """The README's results: every experiment's table and every claim's verdict, all computed from the store."""
    from .sweep import EXPERIMENTS, ResultsStore

    parts = []
    for experiment, metrics in README_TABLES:
        if not ResultsStore(out, EXPERIMENTS[experiment], profile).csv.exists():
            continue
        parts += [f"**{experiment}**: {EXPERIMENTS[experiment].question}", "", summary_markdown(experiment, metrics, out, profile), ""]
    if ResultsStore(out, EXPERIMENTS["oracle"], profile).csv.exists():
        from . import oracle

        parts += [("**oracle** (every subset and rule at one shared rate, 3e-4: the set the best subset is chosen from, not a "
                  "verdict; the rules at their own rates are in confirm above, the chosen subset on fresh seeds in "
                  "oracle_confirm):"), "", oracle.markdown(oracle.load(load_results("oracle", profile, out))), ""]
    heading = ("**Verdicts** (paired over the same seeds; equivalence by two one-sided tests, i.e. the 90 % interval inside "
               "the margin; MDE: the smallest true difference these seeds would detect 80 % of the time, estimated from "
               "the observed spread of the differences; after Holm: adjusted over every claim in the table):")
    fair = verdicts(out, profile)
    parts += [heading, "", markdown(fair), ""]
    parts += [("**One shared rate vs each its own** (the first comparison ran every encoder strategy at one shared peak rate; "
              "in bold, the verdicts that changed once each ran at the rate its validation runs selected, i.e. the ones "
              "that compared rates, not strategies, and are retracted; forgetting, small data and the decoder also moved to "
              "their v2 protocols):"), "", flips_markdown(flips(out, profile, fair))]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """`python -m hft_lib.experiments.evidence`: print the README's results block (tables and verdicts) from the store."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--results", default=None)
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)
    print(readme_block(args.results, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
