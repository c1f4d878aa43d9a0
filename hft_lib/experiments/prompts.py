"""A classification task written as a prompt for a decoder LLM, answered by one label word.

TREC-6 becomes "Question: ...\nAnswer type:" answered by " location", " person", ...; training uses the
loss of that answer token only. Task quality is (a) accuracy of choosing the right label word by comparing
the log-likelihoods of the label words at the answer position (each label word is one token, so this is
the full continuation likelihood) and (b) the held-out task loss (nats per answer: the negative natural
log of the probability the model gives the right word; 0 is certain, ln 6 = 1.8 is a uniform guess).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

# (prompt with {text}, label word per class name); each label word must be one token after a space
PROMPTS = {
    "trec6": ("Question: {text}\nAnswer type:", {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity",
                                                 "HUM": "person", "LOC": "location", "NUM": "number"}),
    "sms_spam": ("Message: {text}\nSpam or ham:", {"ham": "ham", "spam": "spam"}),
    "movie_sentiment": ("Review: {text}\nSentiment:", {"negative": "negative", "positive": "positive"}),
    "rotten_tomatoes": ("Review: {text}\nSentiment:", {"rotten": "negative", "fresh": "positive"}),
}

def label_token_ids(tokenizer, words: list[str]) -> list[int]:
    """The single token of " word" for each label word, or a clear error."""
    ids = []
    for word in words:
        tokens = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1:
            raise ValueError(f"Label word {word!r} is {len(tokens)} tokens for this tokenizer; pick label words that are one token each.")
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError("Two label words share a token; pick distinct label words.")
    return ids


def make_prompt_loader(data, tokenizer, task_name: str, batch_size: int, max_length: int, shuffle: bool = False,
                       seed: int = 0) -> DataLoader:
    """Batches of prompt + answer token; `labels` is -100 everywhere except at the answer."""
    if task_name not in PROMPTS:
        raise ValueError(f"No prompt for task {task_name!r}; use one of {', '.join(PROMPTS)}.")
    template, words = PROMPTS[task_name]
    answers = label_token_ids(tokenizer, [words[name] for name in data.features["label"].names])
    before, after = template.split("{text}")
    pre = tokenizer(before, add_special_tokens=False)["input_ids"]
    post = tokenizer(after, add_special_tokens=False)["input_ids"]
    budget = max_length - len(pre) - len(post) - 1
    if budget < 4:
        raise ValueError(f"max_length={max_length} leaves no room for the text after the prompt; use at least {len(pre) + len(post) + 5}.")
    texts = tokenizer(list(data["text"]), add_special_tokens=False)["input_ids"]
    rows = [(pre + ids[:budget] + post, answers[label]) for ids, label in zip(texts, data["label"])]

    def collate(batch):
        width = max(len(ids) for ids, _ in batch) + 1
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, answer) in enumerate(batch):
            n = len(ids)
            input_ids[i, :n + 1] = torch.tensor([*ids, answer])
            labels[i, n] = answer
            mask[i, :n + 1] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def task_metrics(model: nn.Module, loader: DataLoader, label_ids: list[int]) -> dict[str, float]:
    """Label-word accuracy (argmax of the label words' log-likelihoods) and the answer's loss (nats)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    choices = torch.tensor(label_ids, device=device)
    correct, loss, count = 0, 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        rows = torch.arange(len(logits), device=device)
        where = (batch["labels"] != -100).int().argmax(1)  # answer position; predicted from the token before
        answer = batch["labels"][rows, where]
        logp = torch.log_softmax(logits[rows, where - 1].float(), dim=-1)
        loss += -logp[rows, answer].sum().item()
        correct += (choices[logp[:, choices].argmax(1)] == answer).sum().item()
        count += len(answer)
    model.train(was_training)
    return {"accuracy": correct / count, "loss": loss / count}
