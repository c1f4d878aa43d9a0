"""Frozen-prefix caching: compute the frozen lower layers once, then train only the upper part.

With the embeddings and layers 0 .. k-1 frozen, the hidden states leaving layer k-1 depend only on
the input tokens, *provided those layers run without dropout*. So the first time an example is
seen they are computed and stored (keyed by the example's tokens, so shuffling, re-batching and
padding to a different width do not matter); every later time the frozen layers are skipped and
the stored hidden states go straight into layer k. Epochs after the first cost only the upper
layers' forward and backward: on MiniLM with the lower half frozen, well under half a full
fine-tuning epoch (see benchmarks/README.md).

The dropout trade-off. A frozen layer in training mode still applies dropout, so the upper layers
see a slightly different, noisy version of each example every epoch: a little data augmentation
and regularisation. A cache can only hold one version, so the prefix (embeddings and frozen
layers) always runs in eval mode here, with dropout off, from the first epoch on. The upper,
trainable layers keep their dropout. On small data this can cost some regularisation; measured on
TREC-6 the accuracy stayed within noise of the uncached run (benchmarks/README.md). If it matters
for you, train uncached (or cache and raise the upper layers' dropout).

Requirements: frozen embeddings and a frozen layer 0 (the prefix is the longest run of frozen
layers from the bottom), right-padded batches with an `attention_mask` (as `make_loader` builds),
and a prefix that stays frozen while the cache is on (gradual unfreezing of those layers raises).
Memory: tokens x hidden size floats per distinct example seen (`cache.nbytes` reports the total).
On a cache hit the skipped layers are not run, so `output_hidden_states=True` returns placeholders for
them (the embedding output); everything from the first trainable layer up is exact.

    with FrozenPrefixCache(ft):
        history = fit(ft, train_loader, eval_loader, epochs=3)
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..freezing import Finetuner


class FrozenPrefixCache:
    """Cache the output of the frozen bottom layers of `ft.model` (a context manager; see the module docstring).

    Args:
        ft: a Finetuner whose embeddings and layer 0 are frozen.
        cache_eval: also cache examples seen in eval mode (validation and test sets); their
            prefix output is the same dropout-free value, so evaluation gets cheaper too.
    """

    def __init__(self, ft: Finetuner, cache_eval: bool = True):
        frozen = ft.frozen_layers
        if ft.embeddings_trainable or 0 not in frozen:
            raise ValueError("Frozen-prefix caching needs frozen embeddings and a frozen layer 0 (e.g. "
                             "freeze_pattern='lower_half'); with those trainable there is nothing fixed to cache.")
        self.ft, self.cache_eval = ft, cache_eval
        self.prefix_layers = next((i for i in range(ft.n_layers) if i not in frozen), ft.n_layers)
        self.store: dict[bytes, torch.Tensor] = {}
        self.hits = self.misses = 0  # batches served from the cache / computed
        model = ft.model
        layer_ids = {id(m) for m in ft.layers}
        first_layer = ft.parts.layer_names[0]
        # Modules that run before layer 0 (embeddings, their norm and dropout) plus the frozen layers:
        # these are switched to eval mode for every forward pass, whatever model.train() said.
        before = []
        for name, module in model.named_modules():
            if id(module) in layer_ids or name == first_layer:
                break
            if not first_layer.startswith(name + ".") and name:
                before.append(module)
        self._prefix_modules = [m for top in before + ft.layers[:self.prefix_layers] for m in top.modules()]
        self._prefix_params = [p for top in before + ft.layers[:self.prefix_layers] for p in top.parameters()]
        self._saved_modes: list[bool] = []
        self._hit = False
        self._batch: tuple[list[bytes], list[int], int] | None = None
        self._tuple_output = False
        self._handles = [model.register_forward_pre_hook(self._before_forward, with_kwargs=True),
                         model.register_forward_hook(self._after_forward, always_call=True)]
        self._patched = ft.layers[:self.prefix_layers]
        for i, layer in enumerate(self._patched):
            layer.forward = self._wrap(layer.forward, last=i == self.prefix_layers - 1)

    # -- public -------------------------------------------------------------------------------
    @property
    def examples(self) -> int:
        """Distinct examples cached so far."""
        return len(self.store)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.store.values())

    def clear(self) -> None:
        """Forget every cached hidden state (e.g. after changing the frozen layers' weights)."""
        self.store.clear()

    def remove(self) -> None:
        """Restore the model exactly as it was (hooks removed, layer forwards unpatched, cache freed)."""
        for h in self._handles:
            h.remove()
        for layer in self._patched:
            layer.__dict__.pop("forward", None)
        self._handles, self._patched = [], []
        self.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    # -- hooks --------------------------------------------------------------------------------
    def _keys(self, kwargs: dict) -> tuple[list[bytes], list[int], int] | None:
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if ids is None or mask is None:
            return None
        lengths = mask.sum(1)
        if not bool((mask.cumsum(1) == torch.minimum(torch.arange(1, mask.shape[1] + 1, device=mask.device),
                                                     lengths[:, None])).all()):
            warnings.warn("Frozen-prefix caching skipped a batch that is not right-padded; pad on the right "
                          "(as hft_lib.make_loader does) to use the cache.", stacklevel=3)
            return None
        extra = kwargs.get("token_type_ids")
        rows = ids.cpu() if extra is None else torch.cat([ids, extra], 1).cpu()
        lengths = lengths.tolist()
        width = ids.shape[1]
        keys = [rows[i, :n].numpy().tobytes() + (b"" if extra is None else rows[i, width:width + n].numpy().tobytes())
                for i, n in enumerate(lengths)]
        return keys, lengths, width

    def _before_forward(self, module: nn.Module, args: tuple, kwargs: dict):
        self._saved_modes = []
        if any(p.requires_grad for p in self._prefix_params):
            raise RuntimeError("A layer inside the cached frozen prefix was unfrozen; call cache.remove() before "
                               "unfreezing it (cached hidden states would be stale).")
        use = module.training or self.cache_eval
        self._batch = self._keys(kwargs) if use and not args else None
        self._hit = self._batch is not None and all(k in self.store for k in self._batch[0])
        self.hits += self._hit
        self.misses += not self._hit
        self._saved_modes = [m.training for m in self._prefix_modules]
        for m in self._prefix_modules:
            m.training = False  # no dropout below the cache line (see the module docstring)

    def _after_forward(self, *_):
        for m, mode in zip(self._prefix_modules, self._saved_modes):
            m.training = mode

    def _wrap(self, forward, last: bool):
        def cached_forward(*args, **kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            if self._hit:
                out = self._cached_hidden() if last else hidden
                return (out,) if self._tuple_output else out
            out = forward(*args, **kwargs)
            if last:
                self._tuple_output = isinstance(out, tuple)
                if self._batch is not None:
                    self._remember(out[0] if self._tuple_output else out)
            return out
        return cached_forward

    def _remember(self, hidden: torch.Tensor) -> None:
        keys, lengths, _ = self._batch
        for key, n, row in zip(keys, lengths, hidden.detach()):
            if key not in self.store:
                self.store[key] = row[:n].clone()

    def _cached_hidden(self) -> torch.Tensor:
        keys, lengths, width = self._batch
        first = self.store[keys[0]]
        out = first.new_zeros(len(keys), width, first.shape[-1])
        for i, (key, n) in enumerate(zip(keys, lengths)):
            out[i, :n] = self.store[key]
        return out
