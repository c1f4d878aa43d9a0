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
