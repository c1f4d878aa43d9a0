"""Checkers for the notebooks' exercises: each runs the student's function on tiny models and answers with a hint.

A checker returns normally (and prints what passed) when the function does what the exercise asks,
and raises `ExerciseError` with one specific hint otherwise: which layer is wrong, which parameter the
optimiser should not hold, what to look at. The tiny models are built from configs (no download), so
a check takes well under a second.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ExerciseError(AssertionError):
    """The student's function does not do what the exercise asks; the message is the hint."""


def tiny_classifier(layers: int = 4, num_labels: int = 3, seed: int = 0) -> nn.Module:
    """A BERT classifier with `layers` layers of width 16 (built locally, random weights)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=num_labels)
    return BertForSequenceClassification(config)


def tiny_batch(num_labels: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 100, (4, 10), generator=g), "attention_mask": torch.ones(4, 10, dtype=torch.long),
            "labels": torch.randint(0, num_labels, (4,), generator=g)}


def _frozen_layers(model: nn.Module) -> list[int]:
    return [i for i, layer in enumerate(model.bert.encoder.layer) if not any(p.requires_grad for p in layer.parameters())]


def _partly_frozen(model: nn.Module) -> list[int]:
    out = []
    for i, layer in enumerate(model.bert.encoder.layer):
        flags = {p.requires_grad for p in layer.parameters()}
        if len(flags) == 2:
            out.append(i)
    return out


def check_freeze_function(student: Callable[[nn.Module], object], expected: Callable[[int], list[int]], name: str,
                          embeddings_frozen: bool | None = None) -> None:
    """Run `student(model)` on 4-, 5- and 6-layer models; compare the frozen layers with `expected(n_layers)`."""
    for n in (4, 5, 6):
        model = tiny_classifier(layers=n)
        student(model)
        partly = _partly_frozen(model)
        if partly:
            raise ExerciseError(f"Layer {partly[0]} is only partly frozen: set requires_grad on every tensor of the layer "
                                "(`for p in layer.parameters(): p.requires_grad = False`).")
        got, want = _frozen_layers(model), expected(n)
        if not got and want:
            raise ExerciseError(f"Nothing is frozen in a {n}-layer model: did you set `requires_grad` on the parameters "
                                "(`layer.parameters()`) rather than on the layer module itself?")
        if got != want:
            raise ExerciseError(f"With {n} layers, {name} should freeze layers {want}, but froze {got}. "
                                f"Hint: layers count from 0 at the input; n // 2 = {n // 2} here.")
        head = [p for p in model.classifier.parameters()]
        if not all(p.requires_grad for p in head):
            raise ExerciseError("The classifier (the head) is frozen: a new task's head must always train.")
        emb = all(p.requires_grad for p in model.bert.embeddings.parameters())
        if embeddings_frozen is not None and emb == embeddings_frozen:
            raise ExerciseError(f"The embeddings should be {'frozen' if embeddings_frozen else 'trainable'} here.")
    print(f"{name}: correct on 4, 5 and 6 layers (the head trains).")


def check_upper_half(student: Callable[[nn.Module], object]) -> None:
    """Exercise: freeze the upper half of the layers (n // 2 .. n - 1); the embeddings and the head train."""
    check_freeze_function(student, lambda n: list(range(n // 2, n)), "freeze_upper_half", embeddings_frozen=False)


def check_optimizer(student: Callable[[nn.Module], torch.optim.Optimizer]) -> None:
    """Exercise: build an AdamW over exactly the trainable parameters of a model whose lower half is frozen."""
    model = tiny_classifier(layers=4)
    for layer in model.bert.encoder.layer[:2]:
        for p in layer.parameters():
            p.requires_grad = False
    optimizer = student(model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ExerciseError(f"Return the optimizer (a torch.optim.Optimizer), not {type(optimizer).__name__}.")
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    frozen = [names[i] for i in held if i in names and not dict(model.named_parameters())[names[i]].requires_grad]
    if frozen:
        raise ExerciseError(f"The optimizer holds {len(frozen)} frozen tensors (e.g. {frozen[0]}): pass only the parameters "
                            "with requires_grad. AdamW skips a tensor whose .grad is None, so today they cost nothing, but "
                            "a zero gradient left by zero_grad(set_to_none=False) or a later unfreezing would give them "
                            "moments and weight decay you did not intend.")
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    if missing:
        raise ExerciseError(f"{len(missing)} trainable tensors are missing from the optimizer (e.g. {missing[0]}): "
                            "they would never be updated.")
    print("optimizer: holds exactly the trainable parameters.")


def check_training_step(student: Callable[[nn.Module, torch.optim.Optimizer, dict], float]) -> None:
    """Exercise: one training step (forward, loss, backward, optimizer step, zero the gradients); frozen weights stay."""
    model = tiny_classifier(layers=4)
    for layer in model.bert.encoder.layer[:2]:
        for p in layer.parameters():
            p.requires_grad = False
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = student(model, optimizer, tiny_batch())
    if not isinstance(loss, (float, int)):
        raise ExerciseError(f"Return the loss as a Python number (`loss.item()`), not {type(loss).__name__}.")
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    if not moved:
        raise ExerciseError("No trainable weight changed: call `loss.backward()` and then `optimizer.step()`.")
    changed_frozen = [n for n, p in model.named_parameters() if not p.requires_grad and not torch.equal(p, before[n])]
    if changed_frozen:
        raise ExerciseError(f"A frozen weight changed ({changed_frozen[0]}): only the optimizer may update weights.")
    stale = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    if stale:
        raise ExerciseError("Gradients are left over after the step: call `optimizer.zero_grad()`, or the next step adds "
                            "this step's gradients to its own.")
    print(f"training step: loss {loss:.3f}; {len(moved)} trainable tensors moved, every frozen one unchanged.")


def predict(measure: Callable[[], tuple[float, str]], prediction: float | None, tolerance: float = 0.0,
            unit: str = "") -> bool | None:
    """A predict-then-measure exercise: the student writes `prediction` *before* running the cell; only then does
    `measure` run (a small real measurement on this machine) and the two are compared. Without a prediction nothing is
    measured, so the answer cannot be peeked at. Returns whether the prediction held (None: no prediction yet)."""
    if prediction is None:
        print("Not yet: write your prediction first (replace None with a number), then run the cell; it measures only "
              "once you have committed to one.")
        return None
    measured, why = measure()
    held = abs(float(prediction) - measured) <= tolerance
    verdict = "your prediction held" if held else f"off by {abs(float(prediction) - measured):g}{unit}"
    print(f"You predicted {prediction:g}{unit}; measured {measured:g}{unit} ({verdict}, tolerance {tolerance:g}{unit}). {why}")
    return held


def measure_trainable_share(pattern: str = "lower_half", embeddings: str = "frozen", model_name: str = "minilm-l6"):
    """The share of `model_name`'s parameters (%) that `pattern` trains with this embeddings choice, on a fresh model."""
    def measure():
        from .freezing import Finetuner
        from .models import load_model

        model, _ = load_model(model_name, num_labels=6)
        Finetuner(model, pattern, embeddings=embeddings, verbose=False)
        share = 100 * sum(p.numel() for p in model.parameters() if p.requires_grad) / sum(p.numel() for p in model.parameters())
        return round(share, 1), (f"{pattern} with the embeddings {embeddings}: the embedding matrix alone holds about half "
                                 "of a small encoder's parameters, so which way the embeddings go decides the share more "
                                 "than how many layers are frozen.")
    return measure


def measure_backward_layers(pattern: str = "alternate", embeddings: str = "frozen", model_name: str = "minilm-l6"):
    """How many of `model_name`'s layers the backward pass runs through under `pattern`, seen by forward hooks (a layer is
    on the backward path when its output needs a gradient)."""
    def measure():
        from .data import load_task, make_loader
        from .freezing import Finetuner
        from .models import load_model

        model, tokenizer = load_model(model_name, num_labels=6)
        ft = Finetuner(model, pattern, embeddings=embeddings, verbose=False)
        batch = next(iter(make_loader(load_task("trec6", 8, 4, 4, seed=0)["train"], tokenizer, 8, 32)))
        seen = {}
        hooks = [layer.register_forward_hook(lambda mod, args, out, i=i: seen.__setitem__(i, out[0].requires_grad))
                 for i, layer in enumerate(ft.layers)]
        model(**{k: v for k, v in batch.items() if k != "labels"})
        for hook in hooks:
            hook.remove()
        through = [i for i, needed in seen.items() if needed]
        return len(through), (f"{pattern}, embeddings {embeddings}: backward runs through layers {through}. It starts at "
                              "the top and goes down to the lowest trainable layer; frozen layers above that one still "
                              "pass the gradient down, so they cost their backward pass anyway.")
    return measure


def measure_paper_share(model: nn.Module, seed: int = 0):
    """The share (%) of `model`'s parameters the HFT paper's half trains in its first round (a copy is set up)."""
    def measure():
        import copy

        from .strategies import prepare

        prepared = prepare("hft_paper", copy.deepcopy(model), 1e-4, seed=seed)
        params = list(prepared.ft.model.parameters())
        share = 100 * sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)
        return round(share, 1), ("Half of the matrices inside every layer freeze, but the embeddings and the LM head "
                                 "always train, and in a small model they are a large share: more than half trains.")
    return measure


def check(checker: Callable[[Callable], None], student) -> None:
    """Run a checker in a chapter on the student's function (or value): prints what passed, or "Not yet:" and the hint
    (never raises)."""
    if student is None:
        print("Not yet: replace None with your answer.")
        return
    try:
        checker(student)
    except NotImplementedError:
        print("Not yet: the function still raises NotImplementedError; replace that line with your code.")
    except ExerciseError as err:
        print(f"Not yet: {err}")


# -- chapter 1: which layers change -----------------------------------------------------------------
def check_relative_change(student: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Exercise: relative weight change ||after - before|| / ||before|| of one tensor (notebook 1's measure)."""
    g = torch.Generator().manual_seed(0)
    before = torch.randn(8, 8, generator=g)
    cases = [(before, 0.0), (before * 1.1, 0.1), (-before, 2.0)]
    for after, want in cases:
        got = float(student(before.clone(), after.clone()))
        if abs(got - want) > 1e-4:
            if abs(got - want * before.norm().item()) < 1e-3:
                raise ExerciseError("You returned the absolute change ||after - before||: divide by ||before|| so layers "
                                    "of different sizes and scales compare.")
            raise ExerciseError(f"For after = {'-before' if want == 2.0 else f'{1 + want:g} x before'}, the relative change "
                                f"is {want:g}, not {got:.4g}. Use torch.linalg.norm (the Frobenius norm) of the difference.")
    print("relative change: right on all three cases.")


def check_mean_pool(student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise: mean-pool token features over the real tokens only (the features the probes read)."""
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    want = torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    got = student(hidden, mask)
    if tuple(got.shape) != (2, 2):
        raise ExerciseError(f"Return one vector per example, shape (batch, hidden) = (2, 2), not {tuple(got.shape)}.")
    if torch.allclose(got, hidden.mean(1)):
        raise ExerciseError("Padding is averaged in: multiply by the attention mask and divide by the number of real tokens.")
    if not torch.allclose(got, want):
        raise ExerciseError(f"Expected {want.tolist()}, got {got.tolist()}: sum features where mask = 1, divide by mask.sum(1).")
    print("mean pooling: right, padding ignored.")


# -- chapter 2: the cost of freezing, and pairing -----------------------------------------------------
def check_freeze_with_embeddings(student: Callable[[nn.Module], object]) -> None:
    """Exercise: freeze the embeddings and the lower half (what embeddings="auto" does), so backward stops early."""
    check_freeze_function(student, lambda n: list(range(n // 2)), "lower half + embeddings", embeddings_frozen=True)


def check_paired_interval(student: Callable[[list, list], tuple]) -> None:
    """Exercise: mean and 95 % t-interval of the per-seed differences b - a (paired over seeds)."""
    from .measure.stats import mean_ci

    a = [0.80, 0.90, 0.70, 0.85, 0.75]
    b = [0.82, 0.91, 0.73, 0.86, 0.78]
    want = mean_ci([y - x for x, y in zip(a, b)])
    got = tuple(float(v) for v in student(list(a), list(b)))
    if len(got) != 3:
        raise ExerciseError("Return three numbers: (mean difference, low, high).")
    if all(abs(g - w) < 1e-6 for g, w in zip(got, want)):
        print(f"paired interval: {got[0]:+.3f} [{got[1]:+.3f}, {got[2]:+.3f}], right.")
        return
    if abs(got[0] - want[0]) < 1e-6 and got[2] - got[1] > 3 * (want[2] - want[1]):
        raise ExerciseError("The interval is far too wide: you treated the two lists as independent samples. Pair them: "
                            "take the difference seed by seed, then the interval of those differences.")
    if abs(got[0] - want[0]) < 1e-6:
        raise ExerciseError("The mean is right but not the interval: use the t quantile scipy.stats.t.ppf(0.975, n - 1) "
                            "times the standard deviation (ddof=1) over sqrt(n).")
    raise ExerciseError(f"The mean difference b - a is {want[0]:+.3f}, not {got[0]:+.3f}.")


# -- chapter 3: alternate, and where the backward pass goes -------------------------------------------
def check_odd_layers(student: Callable[[nn.Module], object]) -> None:
    """Exercise: freeze the odd-numbered layers (1, 3, 5, ...), the control for alternate."""
    check_freeze_function(student, lambda n: list(range(1, n, 2)), "freeze_odd_layers")


def _backward_depth(frozen: list[int], n_layers: int, embeddings_trainable: bool) -> int:
    """How many layers the backward pass runs through (what `check_backward_depth` compares with; private, so the
    exercise's answer is not importable under its name)."""
    if embeddings_trainable:
        return n_layers
    trainable = [i for i in range(n_layers) if i not in frozen]
    return n_layers - min(trainable) if trainable else 0


def check_backward_depth(student: Callable[[list, int, bool], int]) -> None:
    """Exercise: the number of layers backward runs through, given the frozen layers and the embeddings choice."""
    cases = [([0, 1, 2], 6, False), ([0, 2, 4], 6, False), ([0, 2, 4], 6, True), ([], 6, False), ([0, 1, 2, 3, 4, 5], 6, False),
             ([3, 4, 5], 6, False), ([0, 1], 4, False)]
    for frozen, n, emb in cases:
        want, got = _backward_depth(frozen, n, emb), student(list(frozen), n, emb)
        if got != want:
            why = ("with trainable embeddings the gradient must reach the input, through every layer" if emb else
                   "backward starts at the top and stops below the lowest trainable layer; frozen layers above it still "
                   "pass the gradient down")
            raise ExerciseError(f"Frozen {frozen} of {n}, embeddings {'trainable' if emb else 'frozen'}: {want} layers, not {got}; {why}.")
    print("backward depth: right on all seven cases.")


# -- chapter 4: schedules -----------------------------------------------------------------------------
def check_schedule(student: Callable[[int, int], list[int]], direction: str = "top_down", group: int = 1) -> None:
    """Exercise: the layers trainable at stage k (stage 0: the head alone; each stage unfreezes `group` more layers)."""
    for n in (4, 6):
        for stage in range(n + 2):
            k = min(n, stage * group)
            want = list(range(n - k, n)) if direction == "top_down" else list(range(k))
            got = sorted(student(stage, n))
            if got != want:
                raise ExerciseError(f"{direction}, {group} layer(s) per stage, {n} layers, stage {stage}: trainable {want}, not "
                                    f"{got}. Stage 0 trains only the head; never go past layer {n - 1}.")
    print(f"{direction} schedule ({group} per stage): right for 4 and 6 layers at every stage.")


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
    from .measure.stats import verdict

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
    from .measure.stats import minimum_detectable_effect

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
    from .experiments.oracle import pareto

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

    from .experiments.oracle import layer_effects, load
    from .strategies import subset_name

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
