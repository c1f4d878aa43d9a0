"""Data-driven strategies keep the fixed patterns' promises: frozen is bit-identical, the optimiser holds exactly what
trains (LISA: its state only for the active layers), a seed fixes the run, a checkpoint resumes it, bad settings are
one clear sentence."""

import pytest
import torch

from hft_lib import Callback, Checkpointing, Finetuner, FitConfig, LambdaCallback, fit
from hft_lib.optim import build_optimizer, optimizer_parameter_ids
from hft_lib.strategies import prepare
from hft_lib.strategies.auto_rgn import AutoRGN
from hft_lib.strategies.autofreeze import AutoFreeze
from hft_lib.strategies.lisa import LISA, draw_active
from hft_lib.training import optimizer_state_bytes

from .conftest import lm_batches, tiny_batches, tiny_bert, tiny_llama
from .test_resume import Crash, crash_at, shuffled_loader, weights

pytestmark = pytest.mark.usefixtures("one_thread")

class Invariants(Callback):
    """Checks every step: parameters not trainable during it are bit-identical after it, and the optimiser holds
    exactly the trainable parameters with state for none other (after the strategy's own callbacks ran)."""

    order = 50

    def __init__(self):
        self.frozen_before: dict[str, torch.Tensor] = {}
        self.active: list[tuple[int, ...]] = []

    def on_step_start(self, run):
        self.frozen_before = {n: p.detach().clone() for n, p in run.ft.params.items() if not p.requires_grad}
        self.active.append(tuple(run.ft.trainable_layers))

    def on_step_end(self, run):
        for name, before in self.frozen_before.items():
            assert torch.equal(run.ft.params[name], before), f"{name} was frozen during step {run.step} but changed"
        trainable = {id(p) for p in run.ft.trainable_parameters()}
        assert optimizer_parameter_ids(run.optimizer) == trainable, f"optimizer groups differ from the trainable set at {run.step}"
        assert {id(p) for p in run.optimizer.state} <= trainable, f"state kept for frozen parameters at step {run.step}"


def train(strategy: str, model=None, period: int | None = 2, seed: int = 0, epochs: int = 2, batches=None):
    model = model or tiny_bert()
    ft, optimizer, own, lr = prepare(strategy, model, 1e-2, seed=seed, total_steps=12, redraw_every=period, window=period)
    check = Invariants()
    history = fit(ft, batches or tiny_batches(), epochs=epochs, lr=lr, optimizer=optimizer, callbacks=[*own, check],
                  progress=False, config=FitConfig(weight_decay=0.1, seed=seed))
    return ft, own, check, history


@pytest.mark.parametrize("strategy,kind", [("bitfit", "bias"), ("attention_only", "attention"), ("ffn_only", "ffn")])
def test_module_kind_strategies_train_that_kind_and_the_head_only(strategy, kind):
    from hft_lib.patterns import parameter_kind

    ft = prepare(strategy, tiny_bert(), 1e-3).ft
    trainable = set(ft.named_trainable_parameters())
    in_layers = {n for names in ft.parts.layers for n in names}
    assert {n for n in trainable & in_layers} == {n for n in in_layers if parameter_kind(n, ft.norm_parameters) == kind}
    assert set(ft.parts.head) <= trainable and not ft.embeddings_trainable


def test_lisa_trains_k_random_layers_embeddings_and_head_and_redraws_each_round():
    ft, (lisa,), check, _ = train("lisa")
    assert all(len(layers) == 2 for layers in check.active)
    rounds = [check.active[i] for i in range(0, 12, 2)]  # 2 steps per round
    assert all(check.active[i] == check.active[i + 1] for i in range(0, 12, 2)) and len(set(rounds)) > 1
    assert rounds == [tuple(draw_active(4, 2, 0, r)) for r in range(6)] and lisa.round == 6
    assert ft.embeddings_trainable and all(ft.params[n].requires_grad for n in ft.parts.head)


def test_lisa_frees_the_optimizer_state_of_layers_that_leave():
    """After a redraw, AdamW state exists only for the active layers, embeddings and head: at most their share of full's."""
    model = tiny_bert(layers=6)
    ft, _, own, lr = prepare("lisa", model, 1e-2, redraw_every=2)
    lisa = own[0]
    fit(ft, tiny_batches(), epochs=1, lr=lr, callbacks=own, progress=False)  # 6 steps, 3 redraws
    full = Finetuner(tiny_bert(layers=6), "full", verbose=False)
    full_opt = build_optimizer(full, 1e-2)
    fit(full, tiny_batches(), epochs=1, lr=1e-2, optimizer=full_opt, progress=False)
    state, full_state = optimizer_state_bytes(lisa.optimizer), optimizer_state_bytes(full_opt)
    kept = set(ft.parts.embeddings) | set(ft.parts.head) | {n for i in lisa.active for n in ft.parts.layers[i]}
    share = sum(ft.params[n].numel() for n in kept) / ft.total_parameter_count()
    assert {id(p) for p in lisa.optimizer.state} <= {id(ft.params[n]) for n in kept}
    assert 0 < state <= share * full_state and len(lisa.freed) == 3 and all(b > 0 for b in lisa.freed)


def test_lisa_and_autofreeze_are_deterministic_under_a_seed():
    runs = [train("lisa", seed=s)[2].active for s in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    first, second = (train("autofreeze")[0] for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(weights(first).values(), weights(second).values()))


@pytest.mark.parametrize("make,message", [
    (lambda ft: LISA(ft, active=5), "LISA's active layers must be a whole number from 1 to the model's 4 layers, not 5"),
    (lambda ft: LISA(ft, active=0), "from 1 to the model's 4 layers, not 0"),
    (lambda ft: LISA(ft, every=0), "LISA's every must be a whole number of steps of at least 1, not 0"),
    (lambda ft: AutoFreeze(ft, threshold=0), "AutoFreeze's threshold must be a positive relative change"),
    (lambda ft: AutoFreeze(ft, every=1.5), "AutoFreeze's every must be a whole number of steps"),
])
def test_bad_settings_are_one_clear_sentence(make, message):
    with pytest.raises(ValueError, match=message):
        make(Finetuner(tiny_bert(), "full", verbose=False))


def test_bitfit_on_a_model_without_biases_says_what_to_choose_instead():
    with pytest.raises(ValueError, match="bitfit trains the layers' biases, and LlamaForCausalLM's layers have none; choose"):
        prepare("bitfit", tiny_llama(), 1e-3)


def test_autofreeze_freezes_a_growing_bottom_prefix_never_the_top_layer_or_head():
    model = tiny_bert()
    ft = Finetuner(model, "full", verbose=False)
    auto = AutoFreeze(ft, every=2, threshold=1e9)  # every layer counts as settled at the second window
    check = Invariants()
    fit(ft, tiny_batches(), epochs=2, lr=1e-2, callbacks=[auto, check], progress=False)
    assert auto.frozen_at == [(4, 3)] and ft.frozen_layers == [0, 1, 2] and not ft.embeddings_trainable
    assert all(ft.params[n].requires_grad for n in ft.parts.head + ft.parts.layers[3])
    assert check.active[:4] == [(0, 1, 2, 3)] * 4 and check.active[4:] == [(3,)] * 8


def test_autofreeze_stops_at_the_first_layer_still_changing():
    auto = AutoFreeze(Finetuner(tiny_bert(), "full", verbose=False), threshold=0.1)
    auto.previous = [1.0, 1.0, 1.0, 1.0]
    assert auto.settled_prefix([1.05, 1.5, 1.0, 1.0]) == 1  # layer 1 moved 50%: layer 2 stays trainable although settled
    assert auto.settled_prefix([1.0, 1.0, 1.0, 1.0]) == 3  # never the top layer


def test_autofreeze_can_serve_the_frozen_prefix_from_the_cache():
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    auto = AutoFreeze(ft, every=2, threshold=1e9, cache=True)
    hits = []
    probe = LambdaCallback(on_epoch_end=lambda run: hits.append(auto.cache.hits))
    fit(ft, tiny_batches(), epochs=3, lr=1e-2, callbacks=[auto, Invariants(), probe], progress=False)
    # layers 0-2 froze after step 4: batches 4-5 were stored in epoch 1, the rest in epoch 2; epoch 3 is all hits
    assert hits == [0, 2, 8]
    assert auto.cache is None  # removed at the end: the model's forward is its own again


def test_auto_rgn_scales_each_tensors_step_by_its_relative_gradient_norm():
    """Adam's first step moves each weight by lr * sign(g): with Auto-RGN by lr * RGN / max RGN, tensor by tensor."""
    model = tiny_bert()
    with torch.no_grad():  # no all-zero biases: every tensor then has a relative scale
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.5)
    ft = Finetuner(model, "full", verbose=False)
    rgn = AutoRGN(ft)
    optimizer = rgn.build_optimizer(1e-3, weight_decay=0.0)
    assert len(optimizer.param_groups) == len(ft.trainable_parameters())
    before = weights(ft)
    params = dict(model.named_parameters())
    history = fit(ft, tiny_batches(1), epochs=1, lr=1e-3, optimizer=optimizer, callbacks=[rgn], progress=False,
                  config=FitConfig(schedule="constant", weight_decay=0.0))
    assert max(rgn.factors.values()) == pytest.approx(1.0) and min(rgn.factors.values()) < 0.1
    for name, factor in rgn.factors.items():
        moved = (params[name].detach() - before[name]).abs().max().item()
        assert moved == pytest.approx(1e-3 * factor, rel=0.02, abs=5e-7), name  # abs: float32 spacing near 1
    assert history.steps[0]["lr"] == 1e-3 and all(g["lr"] == 1e-3 for g in optimizer.param_groups)  # rates restored


def test_auto_rgn_body_trains_the_head_at_the_full_rate_and_scales_the_body_by_its_own_maximum():
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    rgn = AutoRGN(ft, exclude_head=True)
    fit(ft, tiny_batches(1), epochs=1, lr=1e-3, optimizer=rgn.build_optimizer(1e-3), callbacks=[rgn], progress=False)
    head, body = set(ft.parts.head), {n: f for n, f in rgn.factors.items() if n not in ft.parts.head}
    assert all(rgn.factors[n] == 1.0 for n in head)
    assert max(body.values()) == pytest.approx(1.0)  # the largest body tensor, not the head, sets the full rate
    plain = AutoRGN(Finetuner(tiny_bert(), "full", verbose=False))
    fit(plain.ft, tiny_batches(1), epochs=1, lr=1e-3, optimizer=plain.build_optimizer(1e-3), callbacks=[plain], progress=False)
    # the same first step (same weights, data and seed): scaled against a smaller maximum, no body tensor moves less
    assert all(body[n] >= plain.factors[n] * (1 - 1e-6) for n in body) and body != {n: plain.factors[n] for n in body}


def test_auto_rgn_refuses_an_optimizer_without_one_group_per_tensor():
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    with pytest.raises(ValueError, match="needs one parameter per optimiser group; pass optimizer=AutoRGN"):
        fit(ft, tiny_batches(1), epochs=1, callbacks=[AutoRGN(ft)], progress=False)


def _lisa(model):
    return prepare("lisa", model, 1e-2, seed=1, redraw_every=2)


def _autofreeze(model):
    ft = Finetuner(model, "full", verbose=False)
    return ft, None, [AutoFreeze(ft, every=2, threshold=1e9)], 1e-2


# (setup, checkpoint every, crash step): LISA resumes mid-round, its active layers holding state; AutoFreeze resumes
# with layers 0-2 frozen (since step 4) and a window half measured
@pytest.mark.parametrize("setup,every,crash", [(_lisa, 3, 5), (_autofreeze, 5, 7)], ids=["lisa", "autofreeze"])
def test_a_resumed_run_ends_with_the_same_weights(tmp_path, setup, every, crash):
    def run(folder, resume=False, crash=None):
        ft, optimizer, own, lr = setup(tiny_bert())
        callbacks = [*own, Checkpointing(folder, every, resume_from=folder if resume else None)]
        callbacks += [crash_at(crash)] if crash is not None else []
        fit(ft, shuffled_loader(), epochs=2, lr=lr, optimizer=optimizer, callbacks=callbacks, progress=False)
        return ft, own[0]

    reference, ref_cb = run(tmp_path / "reference")
    with pytest.raises(Crash):
        run(tmp_path / "crashed", crash=crash)
    resumed, cb = run(tmp_path / "crashed", resume=True)
    expected, got = weights(reference), weights(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected), "resumed weights differ from the uninterrupted run"
    assert cb.state_dict() == ref_cb.state_dict() and ref_cb.state_dict()["round" if setup is _lisa else "frozen"] > 0


@pytest.mark.parametrize("strategy", ["lisa", "autofreeze", "auto_rgn"])
def test_data_driven_strategies_keep_a_tied_lm_head_training_on_a_decoder(strategy):
    ft, _, _, history = train(strategy, model=tiny_llama(), batches=lm_batches(4), epochs=2, period=2)
    assert len(history.steps) == 8 and ft.embeddings_trainable
