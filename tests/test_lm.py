"""Decoder experiments on a tiny random LLaMA (real SmolLM2 tokenizer, hand-made data): fast, no pretrained weights."""

import math

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from transformers import AutoTokenizer

from hft_lib import get_profile
from hft_lib.experiments.decoder import prepare_lm, run_lm
from hft_lib.experiments.prompts import label_token_ids, make_prompt_loader, task_metrics
from hft_lib.models import model_path
from hft_lib.strategies import DECODER_STRATEGIES

from .conftest import tiny_llama

NAMES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
QUESTIONS = ["What does NASA stand for ?", "Why is the sky blue ?", "What animal barks ?", "Who wrote Hamlet ?",
             "Where is Paris ?", "How many legs does a spider have ?", "What is the abbreviation for kilogram ?",
             "How do magnets work ?"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    tok = AutoTokenizer.from_pretrained(model_path("smollm2-135m"))
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def tiny_task() -> DatasetDict:
    features = Features({"text": Value("string"), "label": ClassLabel(names=NAMES)})
    labels = [0, 1, 2, 3, 4, 5, 0, 1]
    split = Dataset.from_dict({"text": QUESTIONS, "label": labels}, features=features)
    return DatasetDict(train=split, test=split)  # same examples: training must lower their loss


def tiny_setup(tokenizer, steps: int = 6, device: str | None = None):
    news = Dataset.from_dict({"text": ["The council approved the new budget on Tuesday after a long debate."] * 4})
    model = tiny_llama(vocab_size=len(tokenizer), max_positions=128, tie=False)
    return prepare_lm(model=model, tokenizer=tokenizer, task=tiny_task(), news=news, profile=get_profile("quick"), steps=steps, batch_size=4,
                      device=device)


def test_prompt_loader_supervises_only_the_answer_token(tokenizer):
    loader = make_prompt_loader(tiny_task()["train"], tokenizer, "trec6", batch_size=4, max_length=12)
    batch = next(iter(loader))
    answers = label_token_ids(tokenizer, ["abbreviation", "description", "entity", "person"])
    assert batch["input_ids"].shape[1] <= 12
    assert ((batch["labels"] != -100).sum(1) == 1).all()
    where = (batch["labels"] != -100).int().argmax(1)
    assert batch["labels"][torch.arange(4), where].tolist() == answers
    assert (where == batch["attention_mask"].sum(1) - 1).all()  # the answer is the last real token


def test_multi_token_label_words_are_refused(tokenizer):
    with pytest.raises(ValueError, match="one token each"):
        label_token_ids(tokenizer, ["supercalifragilistic"])


def test_training_lowers_the_task_loss_and_reports_every_measure(tokenizer):
    setup = tiny_setup(tokenizer)
    result = run_lm("full", setup=setup, steps=6, lr=1e-2, budgets=[3, 6], progress=False)
    assert result["task_loss"] < result["task_loss_before"] - 0.5
    assert 0 <= result["task_accuracy"] <= 1 and result["steps"] == 6
    assert math.isfinite(result["forgetting_pct"]) and result["news_ppl_before"] > 1
    assert [row["steps"] for row in result["budgets"]] == [3, 6]
    assert result["state_mb"] > 0 and result["trainable_pct"] == 100
    # the pristine model is untouched: runs train a copy
    assert task_metrics(setup.model, setup.test, setup.label_ids)["loss"] == pytest.approx(setup.before["task_loss"])


def test_a_run_sees_the_same_batches_whatever_ran_on_the_setup_before(tokenizer):
    # the sweep shares one setup per seed among strategies: a stored run must not depend on run order
    alone = run_lm("full", setup=tiny_setup(tokenizer, steps=3), steps=3, lr=1e-2, progress=False, keep_model=True)
    shared = tiny_setup(tokenizer, steps=3)
    run_lm("lower_half", setup=shared, steps=3, progress=False)
    second = run_lm("full", setup=shared, steps=3, lr=1e-2, progress=False, keep_model=True)
    assert [s["loss"] for s in second["history"].steps] == [s["loss"] for s in alone["history"].steps]
    assert second["task_loss"] == alone["task_loss"]


def test_every_decoder_strategy_runs_and_trains_the_expected_share(tokenizer):
    setup = tiny_setup(tokenizer, steps=2)
    shares = {s: run_lm(s, setup=setup, steps=2, progress=False)["trainable_pct"] for s in DECODER_STRATEGIES}
    assert shares["full"] == 100
    assert shares["lora"] < shares["lower_half"] < shares["hft_paper"] < shares["full"]
    assert shares["hft_paper"] == pytest.approx(shares["hft_paper_static"], abs=5)


def test_the_device_asked_for_is_the_one_trained_on(tokenizer):
    setup = tiny_setup(tokenizer, steps=1)
    assert run_lm("full", setup=setup, steps=1, progress=False)["device"] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA GPU"):
            tiny_setup(tokenizer, steps=1, device="cuda")


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown decoder strategy"):
        run_lm("gradual_top_down")


def test_decoder_cli_refuses_unknown_strategies_before_loading_anything(tmp_path, capsys):
    from hft_lib.experiments.cli import main

    assert main(["compare", "--model", "smollm2-135m", "--strategies", "full,gradual_top_down", "--out", str(tmp_path)]) == 2
    assert "Unknown decoder strategy 'gradual_top_down'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_choose_table_picks_the_measured_best_per_situation():
    import pandas as pd

    from hft_lib.experiments.frontier import choose_table, relative_cost
    rows = [("full", 0.90, 80.0, 1.0, 100.0), ("lower_half", 0.89, 95.0, 0.6, 40.0), ("lora", 0.70, 99.0, 0.8, 0.5)]
    frame = relative_cost(pd.DataFrame([{"model": "m", "strategy": s, "budget": "8 steps", "steps": 8, "quality": q,
                                          "retention": r, "step_time_s": t, "trainable_pct": p} for s, q, r, t, p in rows]))
    table = choose_table(frame)["choose"]["m"]
    assert table["best task quality, cost no object"] == "full"
    assert table["keep what the model knew"] == "lora"
    assert table["balance: within 2 points of the best accuracy, most retention"] == "lower_half"
    assert table["cheapest step"] == "lower_half"
    assert table["fewest trainable parameters (small per-task files)"] == "lora"


def test_choose_table_never_recommends_a_strategy_that_failed_and_calls_as_good_only_what_is_equivalent():
    import pandas as pd

    from hft_lib.experiments.frontier import choose_table, relative_cost
    seeds = {"full": (0.90, 0.91, 0.89, 0.90), "near": (0.90, 0.905, 0.895, 0.90),  # within 2 points on every seed
             "noisy": (0.95, 0.60, 0.75, 0.50),  # 21 points below on average, its interval touches zero
             "cheap": (0.20, 0.85, 0.20, 0.20)}  # the cheapest step, but 3 of its 4 runs failed
    failed = {"cheap": 3}
    frame = relative_cost(pd.DataFrame([{
        "model": "m", "strategy": s, "budget": "3 epochs", "steps": 0, "quality": sum(q) / 4, "quality_seeds": q,
        "retention": 90.0, "retention_seeds": (90.0,) * 4, "failed": failed.get(s, 0),
        "step_time_s": 0.1 if s == "cheap" else 1.0, "trainable_pct": 1.0 if s == "cheap" else 50.0} for s, q in seeds.items()]))
    table = choose_table(frame)["choose"]["m"]
    assert table["best task quality, cost no object"] == "full (as good: near; 1 not separated)"
    assert table["cheapest step"] != "cheap" and table["fewest trainable parameters (small per-task files)"] != "cheap"
    assert table["not recommended: a run failed to learn"] == "cheap"
