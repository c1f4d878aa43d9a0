"""Predict, then measure: the student commits to a number, then a small real measurement on this machine answers."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


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
        from ..freezing import Finetuner
        from ..models import load_model

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
        from ..data import load_task, make_loader
        from ..freezing import Finetuner
        from ..models import load_model

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

        from ..strategies import prepare

        prepared = prepare("hft_paper", copy.deepcopy(model), 1e-4, seed=seed)
        params = list(prepared.ft.model.parameters())
        share = 100 * sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)
        return round(share, 1), ("Half of the matrices inside every layer freeze, but the embeddings and the LM head "
                                 "always train, and in a small model they are a large share: more than half trains.")
    return measure
