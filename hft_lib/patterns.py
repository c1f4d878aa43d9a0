"""Which parameters a freezing rule selects: layer patterns, parameter-name patterns and module kinds.

Layer patterns (layer indices count from 0 at the input side):
    full        nothing frozen
    head_only   every layer and the embeddings frozen (feature extraction)
    lower_half  layers 0 .. n//2 - 1 frozen
    alternate   layers 0, 2, 4, ... frozen
    upper_half  layers n//2 .. n - 1 frozen (the mirror of lower_half: a control)
    alternate_odd  layers 1, 3, 5, ... frozen (the mirror of alternate: a control)
    [i, j, ...] exactly these layers frozen
    callable    predicate(index, n_layers) -> True to freeze that layer

Name patterns are shell globs over parameter names (`"*.attention.*"`, `"bert.encoder.layer.1?.*"`), or
regular expressions with an `re:` prefix (`"re:.*\\.(query|value)\\."`), as ms-swift's and axolotl's
freezing options take them. Module kinds sort every parameter inside a layer into `attention`
(modules named attn/attention), `norm` (by module type: LayerNorm, RMSNorm and the families' own),
`bias`, and `ffn` (the rest of the layer).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence

FreezePattern = str | Sequence[int] | Callable[[int, int], bool]
PATTERNS = ("full", "head_only", "lower_half", "alternate", "upper_half", "alternate_odd")
MODULE_KINDS = ("attention", "ffn", "norm", "bias")
_ATTENTION = re.compile(r"attn|attention", re.IGNORECASE)


def frozen_layer_indices(pattern: FreezePattern, n_layers: int) -> list[int]:
    """The layer indices a pattern freezes in a stack of `n_layers`."""
    if isinstance(pattern, str):
        rules = {
            "full": lambda i: False,
            "head_only": lambda i: True,
            "lower_half": lambda i: i < n_layers // 2,
            "alternate": lambda i: i % 2 == 0,
            "upper_half": lambda i: i >= n_layers // 2,
            "alternate_odd": lambda i: i % 2 == 1,
        }
        if pattern not in rules:
            raise ValueError(
                f"Unknown freeze_pattern {pattern!r}; use one of {', '.join(PATTERNS)}, a list of layer indices or a function (index, n_layers) -> bool."
            )
        return [i for i in range(n_layers) if rules[pattern](i)]
    if callable(pattern):
        return [i for i in range(n_layers) if pattern(i, n_layers)]
    if isinstance(pattern, Sequence) and all(isinstance(i, int) and not isinstance(i, bool) for i in pattern):
        bad = [i for i in pattern if not 0 <= i < n_layers]
        if bad:
            raise ValueError(f"Layer indices {bad} are out of range for a model with {n_layers} layers; use indices 0 to {n_layers - 1}.")
        return sorted(set(pattern))
    raise TypeError(
        f"freeze_pattern must be a pattern name, a list of layer indices or a function, not {type(pattern).__name__}; e.g. freeze_pattern='lower_half'."
    )


def match_names(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The names matching any pattern (glob, or regex after `re:`); a pattern that matches nothing is an error."""
    if isinstance(patterns, str):
        patterns = [patterns]
    hits: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"Name patterns are non-empty strings (globs, or 're:' + a regex), not {pattern!r}.")
        if pattern.startswith("re:"):
            try:
                regex = re.compile(pattern[3:])
            except re.error as err:
                raise ValueError(f"Name pattern {pattern!r} is not a valid regular expression ({err}).") from None
            found = [n for n in names if regex.fullmatch(n)]
        else:
            found = fnmatch.filter(names, pattern)
        if not found:
            raise ValueError(f"Name pattern {pattern!r} matches no parameter; list them with "
                             "[n for n, _ in model.named_parameters()] (globs match the whole name, e.g. '*.attention.*').")
        hits.update(found)
    return [n for n in names if n in hits]


def module_kind(module_path: str, is_norm: bool = False) -> str:
    """"attention", "ffn" or "norm" for a module inside a transformer layer (norms by type, the rest by name)."""
    if is_norm:
        return "norm"
    if _ATTENTION.search(module_path):
        return "attention"
    return "ffn"


def parameter_kind(name: str, norm_names: set[str]) -> str:
    """"bias", "norm", "attention" or "ffn" for a parameter inside a layer (`norm_names`: `layers.norm_parameter_names`)."""
    if name in norm_names:
        return "norm"
    if name.endswith("bias"):
        return "bias"
    return module_kind(name.rsplit(".", 1)[0])
