"""An embedded task's fixed split is made once per process: a second load_task is fast and returns the same examples."""

import pytest

import hft_lib as hft
from hft_lib import assets, data


def test_a_task_loaded_twice_is_the_same_and_its_split_is_made_once():
    data._embedded_splits.cache_clear()
    first = hft.load_task("sms_spam", 40, 10, 20, seed=2)
    second = hft.load_task("sms_spam", 40, 10, 20, seed=2)
    assert all(first[s]["text"] == second[s]["text"] for s in ("train", "validation", "test"))
    assert data._embedded_splits.cache_info().misses == 1
    other = hft.load_task("sms_spam", 40, seed=3)  # another seed, another sample of the same fixed split
    assert other["train"]["text"] != first["train"]["text"]
    assert set(other["test"]["text"]) == set(hft.load_task("sms_spam", seed=0)["test"]["text"])


def test_another_assets_folder_is_read_and_verified_afresh(tmp_path, monkeypatch):
    hft.load_task("trec6", 8)  # made once, from the real assets
    monkeypatch.setenv("HFT_ASSETS", str(tmp_path / "empty"))
    with pytest.raises(assets.AssetError, match="run `hft fetch`"):
        hft.load_task("trec6", 8)
