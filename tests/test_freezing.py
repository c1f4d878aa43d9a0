"""Freezing does what it promises: frozen weights never change, trainable ones do, the optimiser holds exactly the trainable."""

import pytest
import torch

from hft_lib import Finetuner, FitConfig, build_optimizer, fit
from hft_lib.optim import optimizer_parameter_ids
from hft_lib.patterns import frozen_layer_indices

from .conftest import tiny_batches, tiny_bert


@pytest.mark.parametrize("pattern,expected", [
    ("full", []), ("head_only", [0, 1, 2, 3, 4, 5]), ("lower_half", [0, 1, 2]), ("alternate", [0, 2, 4]),
    ("upper_half", [3, 4, 5]), ("alternate_odd", [1, 3, 5]), ([1, 4], [1, 4]), (lambda i, n: i >= n - 2, [4, 5]),
])
def test_pattern_indices(pattern, expected):
    assert frozen_layer_indices(pattern, 6) == expected


def test_alternate_on_an_odd_stack():
    assert frozen_layer_indices("alternate", 5) == [0, 2, 4]
    assert frozen_layer_indices("lower_half", 5) == [0, 1]


@pytest.mark.parametrize("pattern", ["full", "head_only", "lower_half", "alternate", "upper_half", [1, 2]])
def test_frozen_parameters_are_bit_identical_after_training(pattern):
    model = tiny_bert()
    ft = Finetuner(model, pattern, verbose=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = set(ft.named_trainable_parameters())
    fit(ft, tiny_batches(), epochs=2, lr=1e-2, progress=False, config=FitConfig(weight_decay=0.1))
    for name, param in model.named_parameters():
        if name in trainable:
            assert not torch.equal(param, before[name]), f"{name} should have trained"
        else:
            assert torch.equal(param, before[name]), f"{name} is frozen but changed"


@pytest.mark.parametrize("pattern", ["full", "head_only", "lower_half", "alternate"])
def test_optimizer_holds_exactly_the_trainable_parameters(pattern):
    ft = Finetuner(tiny_bert(), pattern, verbose=False)
    optimizer = build_optimizer(ft, lr=1e-3)
    assert optimizer_parameter_ids(optimizer) == {id(p) for p in ft.trainable_parameters()}


def test_embeddings_default_follows_layer_zero():
    assert not Finetuner(tiny_bert(), "lower_half", verbose=False).embeddings_trainable
    assert Finetuner(tiny_bert(), [2, 3], verbose=False).embeddings_trainable
    assert Finetuner(tiny_bert(), "lower_half", embeddings="trainable", verbose=False).embeddings_trainable
    assert not Finetuner(tiny_bert(), "full", embeddings="frozen", verbose=False).embeddings_trainable


def test_setup_prints_what_was_frozen(capsys):
    Finetuner(tiny_bert(), "lower_half")
    out = capsys.readouterr().out
    assert "frozen layers [0, 1]" in out and "embeddings frozen" in out


def test_summary_counts_add_up():
    ft = Finetuner(tiny_bert(), "alternate", verbose=False)
    table = ft.summary()
    assert table["parameters"].sum() == ft.total_parameter_count()
    assert table["trainable"].sum() == ft.trainable_parameter_count()
    assert list(table.loc[["layer 0", "layer 1"], "state"]) == ["frozen", "trainable"]


def test_frozen_lower_layers_build_no_autograd_graph():
    model = tiny_bert()
    Finetuner(model, "lower_half", verbose=False)
    seen = {}

    def record(module, inputs, output):
        hidden = output if isinstance(output, torch.Tensor) else output[0]
        seen[len(seen)] = hidden.requires_grad

    hooks = [layer.register_forward_hook(record) for layer in model.bert.encoder.layer]
    batch = tiny_batches(1)[0]
    model(**batch).loss.backward()
    for hook in hooks:
        hook.remove()
    assert [seen[i] for i in range(4)] == [False, False, True, True]


@pytest.mark.parametrize("bad,message", [
    ("lower-half", "Unknown freeze_pattern 'lower-half'"),
    ([0, 9], r"Layer indices \[9\] are out of range"),
    (3.5, "freeze_pattern must be a pattern name"),
])
def test_bad_patterns_are_clear_errors(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Finetuner(tiny_bert(), bad, verbose=False)


def test_bad_pattern_leaves_the_model_untouched():
    model = tiny_bert()
    with pytest.raises(ValueError):
        Finetuner(model, "bogus", verbose=False)
    assert all(p.requires_grad for p in model.parameters())


def test_not_a_model_is_a_clear_error():
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        Finetuner("bert-base-uncased")


def test_fastai_verbs_freeze_freeze_to_unfreeze():
    ft = Finetuner(tiny_bert(layers=4), "full", verbose=False)
    ft.freeze()
    assert ft.frozen_layers == [0, 1, 2, 3] and not ft.embeddings_trainable
    assert set(ft.named_trainable_parameters()) == set(ft.parts.head)
    ft.freeze_to(-1)
    assert ft.frozen_layers == [0, 1, 2] and not ft.embeddings_trainable
    ft.freeze_to(1)
    assert ft.frozen_layers == [0] and ft.pattern_name == "layers [0]"
    ft.unfreeze()
    assert ft.trainable_share() == 1.0
    with pytest.raises(ValueError, match="freeze_to needs a whole number from -4 to 4"):
        ft.freeze_to(7)


def test_a_rejected_pattern_leaves_the_model_as_it_was():
    ft = Finetuner(tiny_bert(layers=4), "lower_half", verbose=False)
    with pytest.raises(ValueError, match="out of range"):
        ft.apply_pattern([9])
    assert ft.frozen_layers == [0, 1] and ft.freeze_pattern == "lower_half"


def test_freezing_by_name_glob_and_regex_with_trainable_rules_winning():
    ft = Finetuner(tiny_bert(layers=4), "full", verbose=False)
    frozen = ft.freeze_matching("*.attention.*")
    assert frozen and all(".attention." in n for n in frozen)
    assert not any(p.requires_grad for n, p in ft.params.items() if ".attention." in n)
    back = ft.unfreeze_matching(r"re:.*layer\.3\.attention\..*")
    assert back and all(ft.params[n].requires_grad for n in back)
    assert not ft.params["bert.encoder.layer.2.attention.self.query.weight"].requires_grad
    assert "freeze_matching" in ft.pattern_name and "unfreeze_matching" in ft.pattern_name
    with pytest.raises(ValueError, match="'\\*.atention.\\*' matches no parameter"):
        ft.freeze_matching("*.atention.*")  # a typo must not silently freeze nothing


def test_train_only_biases_is_bitfit_and_keeps_everything_else_bit_identical():
    model = tiny_bert(layers=2)
    ft = Finetuner(model, "full", verbose=False)
    trainable = set(ft.train_only("bias"))
    in_layers = {n for names in ft.parts.layers for n in names}
    assert trainable == {n for n in in_layers if n.endswith("bias") and n not in ft.norm_parameters} | set(ft.parts.head)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fit(ft, tiny_batches(2), epochs=1, lr=1e-2, progress=False)
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == (name not in trainable), name


def test_train_only_attention_and_unknown_kinds():
    ft = Finetuner(tiny_bert(layers=2), "full", verbose=False)
    layer_names = {n for names in ft.parts.layers for n in names}
    trainable = set(ft.train_only("attention")) & layer_names
    assert trainable and all(".attention." in n for n in trainable)
    assert "bert.encoder.layer.0.attention.output.LayerNorm.weight" not in trainable  # a norm, not attention
    with pytest.raises(ValueError, match="Unknown module kind \\['mlp'\\]; use one or more of attention, ffn, norm, bias"):
        ft.train_only("mlp")


def test_discriminative_rates_as_a_slice_run_geometrically_from_embeddings_to_head():
    ft = Finetuner(tiny_bert(layers=4), "full", verbose=False)
    history = fit(ft, tiny_batches(1), epochs=1, lr=slice(1e-5, 1e-3), progress=False, config=FitConfig(schedule="constant"))
    assert history.steps[0]["lr"] > 0
    optimizer = build_optimizer(ft, 1e-3, decay=(1e-3 / 1e-5) ** (1 / 5))
    rates = {g["part"]: g["lr"] for g in optimizer.param_groups}
    assert rates["head"] == pytest.approx(1e-3) and rates["embeddings"] == pytest.approx(1e-5)
    assert rates["0"] < rates["1"] < rates["2"] < rates["3"] < rates["head"]
    with pytest.raises(ValueError, match="lr=slice\\(lo, hi\\) needs 0 < lo <= hi"):
        fit(ft, tiny_batches(1), lr=slice(1e-3, 1e-5), progress=False)


@pytest.mark.parametrize("control,mirror", [("upper_half", "lower_half"), ("alternate_odd", "alternate")])
def test_mirror_controls_train_as_many_parameters_as_the_pattern_they_control(control, mirror):
    from hft_lib.strategies import prepare

    ctl, ref = prepare(control, tiny_bert(layers=6), 1e-3).ft, prepare(mirror, tiny_bert(layers=6), 1e-3).ft
    assert not ctl.embeddings_trainable and not ref.embeddings_trainable
    assert ctl.trainable_parameter_count() == ref.trainable_parameter_count()
    assert set(ctl.frozen_layers).isdisjoint(ref.frozen_layers) and len(ctl.frozen_layers) == len(ref.frozen_layers)


def test_prepare_can_override_a_patterns_embeddings_choice():
    from hft_lib.strategies import prepare

    assert prepare("lower_half", tiny_bert(), 1e-3, embeddings="trainable").ft.embeddings_trainable
    with pytest.raises(ValueError, match="embeddings= applies to layer patterns"):
        prepare("hft_paper", tiny_bert(), 1e-3, embeddings="trainable")
