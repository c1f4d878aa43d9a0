"""Each chapter's "What we found", written by code from the verdicts and numbers the chapter shows.

A conclusion typed by hand drifts from the outputs it describes (another profile, another machine, new evidence);
one written by code cannot. `chapter(n)` returns the sentences of chapter n's claims (`CHAPTER_CLAIMS`), each naming
the claim it answers, the verdict its interval gives, the difference with that interval and the rate and budget it
holds at, then the chapter's further reading (`READING`). The chapters whose evidence is their own live run (00, 01)
pass their sentences in (`Prose.of`). `Prose` shows as Markdown in JupyterLab and as the same text in a terminal, on
GitHub and to nbval, which compares it with the committed output.
"""

from __future__ import annotations

import math

import pandas as pd

from .evidence import CLAIMS, SCALE, verdicts

GLOSSARY = "../docs/glossary.md"  # from a notebook's folder

# The claims each chapter tests, in the order its "What we found" answers them; 06 reads them all.
CHAPTER_CLAIMS = {
    2: ("C1", "C1-control", "C2", "C2-probes", "C4"),
    3: ("C6", "C6-control", "C1"),
    4: ("C3", "C3-ULMFiT", "C5"),
    5: ("P2-decoder", "P1-decoder", "Head"),
    6: ("C1", "C6", "P2"),  # the headline claims; its `tally` and `changed` sentences speak for the rest
    7: ("LISA", "BitFit", "AutoFreeze", "Auto-RGN"),
}

SOURCE_TEXT = "[the source text's HFT page](../../shared/sources/half_fine_tuning.txt) (UbiAI's LLM guide)"
READING = {
    0: ["[PyTorch autograd mechanics: excluding subgraphs from backward](https://pytorch.org/docs/stable/notes/autograd.html)",
        ("[`torch.optim.AdamW`](https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html): parameters whose `.grad` "
        "is None are skipped"),
        "[Hugging Face: fine-tune a pretrained model](https://huggingface.co/docs/transformers/training)"],
    1: ["Yosinski et al. 2014, [How transferable are features in deep neural networks?](https://arxiv.org/abs/1411.1792)",
        ("Kornblith et al. 2019, [Similarity of neural network representations revisited](https://arxiv.org/abs/1905.00414) "
        "(linear CKA)"),
        "Tenney et al. 2019, [BERT rediscovers the classical NLP pipeline](https://arxiv.org/abs/1905.05950)",
        ("Reimers and Gurevych 2019, [Sentence-BERT](https://arxiv.org/abs/1908.10084) (how all-MiniLM-L6-v2 was trained: "
        "mean pooling)")],
    2: [SOURCE_TEXT, ("Lee et al. 2019, [What would Elsa do? Freezing layers during transformer fine-tuning]"
        "(https://arxiv.org/abs/1911.03090)"),
        "Hui et al. 2024, [HFT: Half Fine-Tuning for large language models](https://arxiv.org/abs/2404.18466)"],
    3: [SOURCE_TEXT, "Lee et al. 2019, [What would Elsa do?](https://arxiv.org/abs/1911.03090)",
        "Lee et al. 2023, [Surgical fine-tuning improves adaptation to distribution shifts](https://arxiv.org/abs/2210.11466)"],
    4: ["[the source text on gradual unfreezing](../../shared/sources/gradual_unfreezing.txt)",
        "Howard and Ruder 2018, [Universal language model fine-tuning (ULMFiT)](https://arxiv.org/abs/1801.06146)",
        "[fastai's `freeze_to` and discriminative rates](https://docs.fast.ai/learner.html)"],
    5: ["Hui et al. 2024, [HFT: Half Fine-Tuning for large language models](https://arxiv.org/abs/2404.18466)",
        "Hu et al. 2021, [LoRA](https://arxiv.org/abs/2106.09685)",
        "Allal et al. 2025, [SmolLM2](https://arxiv.org/abs/2502.02737) (the decoder here is SmolLM2-135M-Instruct)",
        "Luo et al. 2023, [catastrophic forgetting in LLMs during continual fine-tuning](https://arxiv.org/abs/2308.08747)"],
    6: ["Ben Zaken et al. 2022, [BitFit](https://arxiv.org/abs/2106.10199)",
        "Hu et al. 2021, [LoRA](https://arxiv.org/abs/2106.09685)",
        "Lakens 2017, [Equivalence tests (TOST)](https://doi.org/10.1177/1948550617697177)",
        "Holm 1979, [a simple sequentially rejective multiple test procedure](https://www.jstor.org/stable/4615733)"],
    7: [("Pan et al. 2024, [LISA: layerwise importance sampling](https://arxiv.org/abs/2403.17919) "
        "([LMFlow's trainer](https://github.com/OptimalScale/LMFlow))"),
        "Liu et al. 2021, [AutoFreeze](https://arxiv.org/abs/2102.01386)",
        "Lee et al. 2023, [Surgical fine-tuning (Auto-RGN)](https://arxiv.org/abs/2210.11466)",
        "Ben Zaken et al. 2022, [BitFit](https://arxiv.org/abs/2106.10199)"],
}


class Prose:
    """Markdown that reads the same everywhere: rendered in JupyterLab, plain text in a terminal and to nbval."""

    def __init__(self, text: str):
        self.text = text

    @classmethod
    def of(cls, sentences: list[str], chapter: int | None = None, title: str = "What we found") -> Prose:
        """A "What we found" section from `sentences` (one bullet each), then the chapter's further reading."""
        lines = [f"### {title}", "", *(f"- {s}" for s in sentences)]
        if chapter is not None:
            lines += ["", "### Further reading", "", *(f"- {r}" for r in READING[chapter])]
        return cls("\n".join(lines))

    def _repr_markdown_(self) -> str:
        return self.text

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.text)

    def __str__(self) -> str:
        return self.text


def rate(lr: float) -> str:
    """A learning rate as people write it: 1e-4, 3e-4, 0.01 as 1e-2."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def claim_sentence(row, shared: pd.Series | None = None) -> str:
    """One claim's finding: what it says, the verdict, the paired difference and interval, the rates and budget it
    holds at, whether a second budget agrees, and (`shared`: its row of `evidence.flips()`) what one shared rate said."""
    from .catalogue import EXPERIMENTS

    claim = next(c for c in CLAIMS if c.id == row["claim"])
    scale, unit = SCALE.get(row["metric"], (1, ""))
    head = f"**{row['claim']}** (*{row['text']}*, from {claim.source}):"
    own = " (each at its own rate, chosen on validation)" if EXPERIMENTS[claim.experiment].rates_from else ""
    at = f"at {row['setting']}{own}"
    if not row["testable"]:
        return f"{head} {row['verdict']}; {at}."
    diff = (f"{row['candidate']} minus {row['reference']} is {row['diff'] * scale:+.1f} {unit} "
            f"[95 % interval {row['ci_low'] * scale:+.1f}, {row['ci_high'] * scale:+.1f}] over {row['n']} paired seeds")
    if row["predicts"] == "equivalent":
        diff += (f" (90 % interval {row['ci90_low'] * scale:+.1f}, {row['ci90_high'] * scale:+.1f}; the claim needs it "
                 f"inside ±{row['margin'] * scale:g})")
    notes = [] if row["verdict_holm"] == row["verdict"] else [f"adjusted over every claim (Holm): {row['verdict_holm']}"]
    if isinstance(row.get("holds"), str):
        notes.append(f"with {row['budget2']}: {row['budget2_verdict']} (the two budgets {row['holds']})")
    if shared is not None and shared["changed"]:
        retracted = ", now retracted" if shared["one shared rate"] in ("supported", "refuted") else ""
        notes.append(f"the first comparison (one shared rate) read *{shared['one shared rate']}*{retracted}")
    return f"{head} **{row['verdict']}**: {diff}, {at}" + "".join(f"; {n}" for n in notes) + "."


def chapter(number: int, profile: str = "quick", out=None, extra: list[str] | None = None) -> Prose:
    """Chapter `number`'s "What we found" from its claims' verdicts (and `extra` sentences first), then its reading."""
    from .evidence import flips

    if number not in READING:
        raise ValueError(f"There is no chapter {number}; the chapters are {', '.join(map(str, sorted(READING)))}.")
    table = verdicts(out, profile)
    before = flips(out, profile, table)
    ids = CHAPTER_CLAIMS.get(number)
    rows = table if ids is None else table.set_index("claim").loc[[i for i in ids if i in set(table["claim"])]].reset_index()
    return Prose.of([*(extra or []), *(claim_sentence(r, before.loc[r["claim"]]) for _, r in rows.iterrows())], number)


def tally(table: pd.DataFrame) -> str:
    """How many claims each verdict got, raw and after Holm, in one sentence."""
    def counts(column):
        kinds = table[column].map(lambda v: v.split(":")[0])
        return ", ".join(f"{n} {kind}" for kind, n in kinds.value_counts().items())
    return (f"Of {len(table)} claims, {counts('verdict')}; adjusted together for multiple comparisons (Holm): "
            f"{counts('verdict_holm')}.")


def changed(flips: pd.DataFrame) -> str:
    """Which verdicts changed once each strategy ran at its own rate (`evidence.flips()`), in one sentence."""
    moved = flips[flips["changed"]]
    pairs = "; ".join(f"{claim} from {r['one shared rate']} to {r['each at its own rate']}" for claim, r in moved.iterrows())
    return (f"{len(moved)} of {int(flips['each at its own rate'].notna().sum())} verdicts changed once each strategy ran "
            f"at its own rate instead of one shared rate ({pairs}): those compared learning rates, not strategies.")


def fmt(value: float, digits: int = 3) -> str:
    """A number for prose (nan as "n/a")."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
