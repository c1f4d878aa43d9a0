"""Checkpoint and resume mid gradual-unfreezing: a resumed run ends bit-identical to an uninterrupted one."""

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

from hft_lib import Checkpointing, Finetuner, GradualUnfreezing, LambdaCallback, TrainingDiverged, UnfreezeSchedule, fit
from hft_lib.checkpoint import CheckpointError, latest_checkpoint

from .conftest import tiny_bert

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: spinning threads on a shared 2-core box cost 20x


class Crash(Exception):
    """Stands for a killed process."""


def shuffled_loader(seed: int = 0) -> DataLoader:
    """24 examples, batch 4, shuffled by its own generator (data order is part of what resume restores)."""
    g = torch.Generator().manual_seed(123)
    rows = [{"input_ids": torch.randint(1, 100, (10,), generator=g), "attention_mask": torch.ones(10, dtype=torch.long),
             "labels": torch.randint(0, 3, (), generator=g)} for _ in range(24)]
    return DataLoader(rows, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(seed))


SCHEDULE = UnfreezeSchedule("top_down", stage_length=4, unit="step")
SETTINGS = {"epochs": 3, "lr": 1e-2, "progress": False}


def run(checkpoint_dir=None, checkpoint_every=None, resume_from=None, step_hook=None, **kwargs) -> tuple[Finetuner, object]:
    """A gradual-unfreezing run (dropout on: its randomness must be restored too), checkpointed / resumed as asked."""
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    callbacks = [GradualUnfreezing(SCHEDULE), Checkpointing(checkpoint_dir, checkpoint_every, resume_from)]
    if step_hook:
        callbacks.append(step_hook)
    return ft, fit(ft, shuffled_loader(), callbacks=callbacks, **{**SETTINGS, **kwargs})


def weights(ft: Finetuner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in ft.model.state_dict().items()}


def crash_at(step_to_crash: int) -> LambdaCallback:
    def hook(run):
        if run.step == step_to_crash:
            raise Crash

    return LambdaCallback(on_step_end=hook)


def stage_of(meta: dict) -> int:
    """The unfreezing stage a checkpoint holds: gradual unfreezing saves it as its callback state."""
    (state,) = [s for key, s in meta["callbacks"].items() if key.endswith(":GradualUnfreezing")]
    return state["stage"]


@pytest.mark.parametrize("crash_step", [5, 7, 11])  # mid-epoch, mid-stage; and on an epoch boundary (6 steps/epoch)
def test_resumed_run_ends_with_the_same_weights(tmp_path, crash_step):
    reference, ref_history = run()
    with pytest.raises(Crash):
        run(checkpoint_dir=tmp_path, checkpoint_every=3, step_hook=crash_at(crash_step))
    saved = latest_checkpoint(tmp_path)
    meta = json.loads((saved / "meta.json").read_text())
    assert meta["step"] == (crash_step // 3) * 3 and stage_of(meta) == (meta["step"] - 1) // 4
    resumed, history = run(resume_from=tmp_path)
    expected, got = weights(reference), weights(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected), "resumed weights differ from the uninterrupted run"
    assert [s["loss"] for s in history.steps] == [s["loss"] for s in ref_history.steps]
    assert [s["trainable_layers"] for s in history.steps] == [s["trainable_layers"] for s in ref_history.steps]
    assert len(history.epochs) == 3


def test_checkpoint_records_the_stage_and_optimizer_groups(tmp_path):
    run(checkpoint_dir=tmp_path, checkpoint_every=6, max_steps=12)
    meta = json.loads((tmp_path / "step-000012" / "meta.json").read_text())
    assert stage_of(meta) == 2 and meta["identity"]["architecture"] == "BertForSequenceClassification"
    state = torch.load(tmp_path / "step-000012" / "state.pt", weights_only=True)
    # stage 2 (the last step done, index 11, ran in stage 11 // 4): head and two layers, each 2 groups (decay or not)
    assert len(state["optimizer"]["param_groups"]) == 2 + 2 * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000006", "step-000012"]


def test_resume_from_another_models_checkpoint_is_a_clear_error(tmp_path):
    run(checkpoint_dir=tmp_path, max_steps=6)
    ft = Finetuner(tiny_bert(num_labels=5), "full", verbose=False)
    with pytest.raises(CheckpointError, match="was saved from model .*resume with the model and task it was saved from"):
        fit(ft, shuffled_loader(), callbacks=[GradualUnfreezing(SCHEDULE), Checkpointing(resume_from=tmp_path)], **SETTINGS)


def test_resume_with_other_settings_is_a_clear_error(tmp_path):
    run(checkpoint_dir=tmp_path, max_steps=6)
    with pytest.raises(CheckpointError, match="other settings .*epochs"):
        run(resume_from=tmp_path, epochs=4)


def test_resume_with_another_unfreezing_schedule_is_a_clear_error(tmp_path):
    run(checkpoint_dir=tmp_path, max_steps=6)
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    other = GradualUnfreezing(UnfreezeSchedule("bottom_up", stage_length=4, unit="step"))
    with pytest.raises(CheckpointError, match="cannot continue this run: .*unfreezing schedule.*same schedule"):
        fit(ft, shuffled_loader(), callbacks=[other, Checkpointing(resume_from=tmp_path)], **SETTINGS, max_steps=6)


def test_a_checkpoint_of_another_format_is_a_clear_error(tmp_path):
    run(checkpoint_dir=tmp_path, max_steps=6)
    meta_path = latest_checkpoint(tmp_path) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(CheckpointError, match="has format 1.*start afresh"):
        run(resume_from=tmp_path)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    def poison_at_7(run):
        if run.step == 7:
            with torch.no_grad():
                run.model.classifier.weight.fill_(math.nan)

    poison = LambdaCallback(on_step_end=poison_at_7)

    with pytest.raises(TrainingDiverged, match=r"lower the learning rate.*last good checkpoint is kept in .*step-000006"):
        run(checkpoint_dir=tmp_path, checkpoint_every=3, step_hook=poison)
    good = latest_checkpoint(tmp_path)
    assert good.name == "step-000006"
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    fit(ft, shuffled_loader(), callbacks=[GradualUnfreezing(SCHEDULE), Checkpointing(resume_from=good)],
        **{**SETTINGS, "lr": 5e-3})  # resumes, with a lower rate
    assert all(torch.isfinite(p).all() for p in ft.model.parameters())
    assert good.exists()  # resuming never modifies the checkpoint it started from


def test_resuming_into_the_same_folder_keeps_checkpointing(tmp_path):
    with pytest.raises(Crash):
        run(checkpoint_dir=tmp_path, checkpoint_every=3, step_hook=crash_at(7))
    run(checkpoint_dir=tmp_path, checkpoint_every=3, resume_from=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000015", "step-000018"]  # the newest two are kept


def test_hft_paper_redraw_resumes_in_the_round_it_stopped():
    """Old code restarted the redraw from round 0 on resume: a different mask, so different weights."""
    from hft_lib.strategies.hft_paper import HalfParameterRedraw

    def hft_run(tmp, crash=None, resume=False):
        ft = Finetuner(tiny_bert(), "full", verbose=False)
        redraw = HalfParameterRedraw(ft, seed=1, every=2)
        callbacks = [redraw, Checkpointing(tmp, 3, resume_from=tmp if resume else None)]
        callbacks += [crash_at(crash)] if crash is not None else []
        fit(ft, shuffled_loader(), epochs=2, lr=1e-2, progress=False, optimizer=redraw.build_optimizer(1e-2), callbacks=callbacks)
        return ft, redraw

    import tempfile
    with tempfile.TemporaryDirectory() as ref_dir, tempfile.TemporaryDirectory() as crash_dir:
        reference, ref_redraw = hft_run(ref_dir)
        with pytest.raises(Crash):
            hft_run(crash_dir, crash=7)
        resumed, redraw = hft_run(crash_dir, resume=True)
    assert redraw.round == ref_redraw.round == 6
    expected, got = weights(reference), weights(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected), "resumed HFT weights differ from the uninterrupted run"


def test_resuming_without_the_stateful_callback_it_was_saved_with_is_a_clear_error(tmp_path):
    from hft_lib.strategies.hft_paper import HalfParameterRedraw

    def train(*callbacks, with_redraw=True):
        ft = Finetuner(tiny_bert(), "full", verbose=False)
        redraw = HalfParameterRedraw(ft, seed=1, every=2)
        fit(ft, shuffled_loader(), epochs=1, lr=1e-2, progress=False, optimizer=redraw.build_optimizer(1e-2),
            callbacks=[redraw, *callbacks] if with_redraw else list(callbacks))

    with pytest.raises(Crash):
        train(Checkpointing(tmp_path, 3), crash_at(4))
    with pytest.raises(CheckpointError, match="saved with a stateful callback \\(HalfParameterRedraw\\); pass the same callbacks"):
        train(Checkpointing(resume_from=tmp_path), with_redraw=False)
