"""The exercise checkers accept a right answer and answer each typical wrong one with its own hint."""

import pytest
import torch

from hft_lib import exercises
from hft_lib.exercises import ExerciseError


def upper_half(model):
    layers = model.bert.encoder.layer
    for layer in layers[len(layers) // 2:]:
        for p in layer.parameters():
            p.requires_grad = False


def test_upper_half_accepts_the_right_answer(capsys):
    exercises.check_upper_half(upper_half)
    assert "correct on 4, 5 and 6 layers" in capsys.readouterr().out


def lower_half(model):
    layers = model.bert.encoder.layer
    for layer in layers[: len(layers) // 2]:
        for p in layer.parameters():
            p.requires_grad = False


def on_modules(model):
    for layer in model.bert.encoder.layer[2:]:
        layer.requires_grad = False  # sets an attribute; freezes nothing


def half_a_layer(model):
    upper_half(model)
    model.bert.encoder.layer[-1].output.dense.weight.requires_grad = True


def off_by_one(model):
    layers = model.bert.encoder.layer
    for layer in layers[len(layers) // 2 + 1:]:
        for p in layer.parameters():
            p.requires_grad = False


def head_too(model):
    upper_half(model)
    for p in model.classifier.parameters():
        p.requires_grad = False


@pytest.mark.parametrize("wrong,hint", [
    (lower_half, r"should freeze layers \[2, 3\], but froze \[0, 1\]"),
    (on_modules, "Nothing is frozen .* rather than on the layer module"),
    (half_a_layer, "Layer 3 is only partly frozen"),
    (off_by_one, r"should freeze layers \[2, 3\], but froze \[3\]"),
    (head_too, "the head.* must always train"),
])
def test_upper_half_hints(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        exercises.check_upper_half(wrong)


def test_optimizer_checker():
    exercises.check_optimizer(lambda m: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3))
    with pytest.raises(ExerciseError, match="holds 32 frozen tensors"):
        exercises.check_optimizer(lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3))
    with pytest.raises(ExerciseError, match="missing from the optimizer"):
        exercises.check_optimizer(lambda m: torch.optim.AdamW(m.classifier.parameters(), lr=1e-3))
    with pytest.raises(ExerciseError, match="Return the optimizer"):
        exercises.check_optimizer(lambda m: [p for p in m.parameters() if p.requires_grad])


def step(model, optimizer, batch):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def test_training_step_checker():
    exercises.check_training_step(step)

    def no_backward(model, optimizer, batch):
        loss = model(**batch).loss
        optimizer.step()
        return loss.item()

    def no_zero_grad(model, optimizer, batch):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    with pytest.raises(ExerciseError, match="call `loss.backward\\(\\)`"):
        exercises.check_training_step(no_backward)
    with pytest.raises(ExerciseError, match="Gradients are left over"):
        exercises.check_training_step(no_zero_grad)
    with pytest.raises(ExerciseError, match="Return the loss as a Python number"):
        exercises.check_training_step(lambda m, o, b: step(m, o, b) and m(**b).loss)


def test_check_prints_the_hint_instead_of_raising(capsys):
    def stub(model):
        raise NotImplementedError

    exercises.check(exercises.check_upper_half, stub)
    exercises.check(exercises.check_upper_half, upper_half)
    out = capsys.readouterr().out
    assert "Not yet: the function still raises NotImplementedError" in out and "correct on 4, 5 and 6 layers" in out


@pytest.mark.parametrize("checker,right,wrong,hint", [
    (exercises.check_relative_change, lambda b, a: (torch.linalg.norm(a - b) / torch.linalg.norm(b)).item(),
     lambda b, a: torch.linalg.norm(a - b).item(), "absolute change"),
    (exercises.check_mean_pool, lambda h, m: (h * m[..., None]).sum(1) / m.sum(1, keepdim=True),
     lambda h, m: h.mean(1), "Padding is averaged in"),
    (exercises.check_freeze_with_embeddings,
     lambda m: [p.requires_grad_(False) for mod in (m.bert.embeddings, *m.bert.encoder.layer[: len(m.bert.encoder.layer) // 2])
                for p in mod.parameters()],
     lower_half, "embeddings should be frozen"),
    (exercises.check_odd_layers, lambda m: [p.requires_grad_(False) for layer in m.bert.encoder.layer[1::2] for p in layer.parameters()],
     lambda m: [p.requires_grad_(False) for layer in m.bert.encoder.layer[0::2] for p in layer.parameters()], "should freeze layers"),
    (exercises.check_backward_depth, lambda frozen, n, emb: n if emb else (n - min(set(range(n)) - set(frozen))
                                                                          if set(range(n)) - set(frozen) else 0),
     lambda frozen, n, emb: n - len(frozen), "frozen layers above it still pass the gradient down"),
    (exercises.check_schedule, lambda stage, n: list(range(n - min(n, stage), n)), lambda stage, n: list(range(min(n, stage))),
     "top_down, 1 layer"),
    (exercises.check_half_draw, lambda units, seed: __import__("random").Random(seed).sample(units, len(units) // 2),
     lambda units, seed: units[: len(units) // 2], "Every seed drew the same units"),
    (exercises.check_verdict, lambda lo, hi, claim, margin: __import__("hft_lib.measure.stats").measure.stats.verdict(lo, hi, claim, margin),
     lambda lo, hi, claim, margin: "supported" if (lo + hi) / 2 > 0 else "refuted", "not resolved"),
])
def test_chapter_checkers(checker, right, wrong, hint, capsys):
    checker(right)
    assert capsys.readouterr().out.strip()  # says what passed
    with pytest.raises(ExerciseError, match=hint):
        checker(wrong)


def test_paired_interval_checker_explains_the_unpaired_mistake():
    import numpy as np
    from scipy import stats as st

    from hft_lib.measure.stats import mean_ci

    exercises.check_paired_interval(lambda a, b: mean_ci(np.array(b) - np.array(a)))

    def unpaired(a, b):
        diff = np.mean(b) - np.mean(a)
        half = st.t.ppf(0.975, 2 * len(a) - 2) * np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
        return diff, diff - half, diff + half

    with pytest.raises(ExerciseError, match="Pair them"):
        exercises.check_paired_interval(unpaired)


def test_two_per_stage_schedule():
    exercises.check_schedule(lambda stage, n: list(range(n - min(n, 2 * stage), n)), group=2)
    with pytest.raises(ExerciseError, match="2 layer\\(s\\) per stage"):
        exercises.check_schedule(lambda stage, n: list(range(n - min(n, stage), n)), group=2)


def test_pareto_checker_accepts_a_right_front_and_explains_a_wrong_one():
    def right(times, accuracy):
        return [not any(t2 <= t and a2 >= a and (t2 < t or a2 > a) for t2, a2 in zip(times, accuracy))
                for t, a in zip(times, accuracy)]

    exercises.check_pareto(right)
    with pytest.raises(ExerciseError, match="should be off the front"):  # forgets that ties on one axis still dominate
        exercises.check_pareto(lambda t, a: [not any(t2 < x and a2 > y for t2, a2 in zip(t, a)) for x, y in zip(t, a)])


def test_layer_effect_checker_catches_a_flipped_sign_and_rules_in_the_grid():
    def right(frame, layer):
        grid = frame[frame["frozen"].notna()]
        has = grid["frozen"].map(lambda f: layer in f)
        return grid[has]["test_accuracy"].mean() - grid[~has]["test_accuracy"].mean()

    exercises.check_layer_effect(right)
    with pytest.raises(ExerciseError, match="sign is flipped"):
        exercises.check_layer_effect(lambda f, layer: -right(f, layer))
    with pytest.raises(ExerciseError, match="Use only the subset runs"):
        exercises.check_layer_effect(lambda f, layer: f[f["frozen"].map(lambda s: s is not None and layer in s)]["test_accuracy"].mean()
                                     - f[f["frozen"].map(lambda s: s is None or layer not in s)]["test_accuracy"].mean())


def test_no_reference_answer_is_importable_under_its_exercise_name():
    import json
    import re
    from pathlib import Path

    names = set()
    for notebook in Path(__file__).parents[1].glob("notebooks/0*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            names |= set(re.findall(r"^def (\w+)\(", "".join(cell["source"]), re.MULTILINE))
    assert not [n for n in names if hasattr(exercises, n)]


def test_predict_measures_only_after_a_prediction(capsys):
    calls = []

    def measure():
        calls.append(1)
        return 24.5, "why"

    assert exercises.predict(measure, None) is None and not calls  # nothing to peek at
    assert exercises.predict(measure, 25, tolerance=1) is True and exercises.predict(measure, 50, tolerance=1) is False
    out = capsys.readouterr().out
    assert "Not yet: write your prediction first" in out and "off by 25.5" in out


def test_the_predictions_measure_a_real_model():
    share, _ = exercises.measure_trainable_share("lower_half", "frozen")()
    trainable, _ = exercises.measure_trainable_share("lower_half", "trainable")()
    assert 10 < share < 50 < trainable  # the embeddings decide the share
    depth, why = exercises.measure_backward_layers("alternate", "frozen")()
    assert depth == 5 and "[1, 2, 3, 4, 5]" in why  # layer 0 frozen with the embeddings: backward stops above it


def test_value_checkers_explain_the_usual_mistakes():
    import math

    exercises.check_perplexity_change(100 * (math.exp(0.021) - 1))
    with pytest.raises(ExerciseError, match="loss's relative change"):
        exercises.check_perplexity_change(100 * 0.021 / 3.9)
    with pytest.raises(ExerciseError, match="as a fraction"):
        exercises.check_perplexity_change(math.exp(0.021) - 1)
    from hft_lib.measure.stats import minimum_detectable_effect

    need = next(n for n in range(2, 100) if minimum_detectable_effect(0.02, n) <= 0.01)
    exercises.check_seeds_needed(need)
    with pytest.raises(ExerciseError, match="more seeds"):
        exercises.check_seeds_needed(need - 1)
    with pytest.raises(ExerciseError, match="fewer do too"):
        exercises.check_seeds_needed(need + 3)
