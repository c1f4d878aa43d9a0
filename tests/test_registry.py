"""Every registered strategy keeps the promises of the package, by construction: a new registry row is tested here
with no test edit. Frozen weights stay bit-identical, everything trainable is in the optimiser, a crashed run resumes
to the weights of an uninterrupted one, and decoder rows run on a tiny LLaMA."""

import pytest
import torch

from hft_lib import Checkpointing, FitConfig, fit
from hft_lib.optim import optimizer_parameter_ids
from hft_lib.strategies import DECODER_STRATEGIES, REGISTRY, prepare

from .conftest import lm_batches, tiny_batches, tiny_bert, tiny_llama
from .test_datadriven import Invariants
from .test_resume import Crash, crash_at, shuffled_loader, weights

pytestmark = pytest.mark.usefixtures("one_thread")


class EveryTrainableTrains(Invariants):
    """`Invariants` for a strategy whose optimiser `fit` builds; for one that brings its own (the paper's half keeps every
    round's parameters, Auto-RGN one group per tensor), only that frozen stays bit-identical and nothing trainable is left
    out of the optimiser (the silent failure: a layer that unfreezes and never trains)."""

    def __init__(self, exact: bool):
        super().__init__()
        self.exact = exact

    def on_step_end(self, run):
        if self.exact:
            return super().on_step_end(run)
        for name, before in self.frozen_before.items():
            assert torch.equal(run.ft.params[name], before), f"{name} was frozen during step {run.step} but changed"
        missing = {id(p) for p in run.ft.trainable_parameters()} - optimizer_parameter_ids(run.optimizer)
        assert not missing, f"{len(missing)} trainable parameters are not in the optimiser at step {run.step}"


def train(strategy: str, model, batches, epochs: int = 2, callbacks=()):
    ft, optimizer, own, lr = prepare(strategy, model, 1e-2, total_steps=epochs * len(batches), redraw_every=2, window=2)
    check = EveryTrainableTrains(exact=optimizer is None)
    history = fit(ft, batches, epochs=epochs, lr=lr, optimizer=optimizer, callbacks=[*own, check, *callbacks],
                  progress=False, config=FitConfig(weight_decay=0.1))
    return ft, own, check, history


@pytest.mark.parametrize("strategy", list(REGISTRY))
def test_every_strategy_keeps_frozen_weights_frozen_and_trains_what_is_trainable(strategy):
    ft, _, check, history = train(strategy, tiny_bert(), tiny_batches())
    assert len(check.active) == len(history.steps) == 12 and all(torch.isfinite(torch.tensor(s["loss"])) for s in history.steps)
    assert ft.trainable_parameter_count() > 0


@pytest.mark.parametrize("strategy", list(REGISTRY))
def test_every_strategy_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, strategy):
    def run(folder, resume=False, crash=None):
        ft, optimizer, own, lr = prepare(strategy, tiny_bert(), 1e-2, total_steps=12, redraw_every=2, window=2)
        callbacks = [*own, Checkpointing(folder, 3, resume_from=folder if resume else None)]
        callbacks += [crash_at(crash)] if crash is not None else []
        fit(ft, shuffled_loader(), epochs=2, lr=lr, optimizer=optimizer, callbacks=callbacks, progress=False)
        return ft, own

    reference, ref_own = run(tmp_path / "reference")
    with pytest.raises(Crash):
        run(tmp_path / "crashed", crash=7)  # mid-epoch, after a checkpoint at step 6
    resumed, own = run(tmp_path / "crashed", resume=True)
    expected, got = weights(reference), weights(resumed)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected), \
        "resumed weights differ from the uninterrupted run"
    assert [c.state_dict() for c in own] == [c.state_dict() for c in ref_own]


@pytest.mark.parametrize("strategy", list(DECODER_STRATEGIES))
def test_every_decoder_strategy_runs_on_a_tiny_llama(strategy):
    ft, _, _, history = train(strategy, tiny_llama(), lm_batches(4))
    assert len(history.steps) == 8 and all(torch.isfinite(torch.tensor(s["loss"])) for s in history.steps)
    assert ft.trainable_parameter_count() > 0
