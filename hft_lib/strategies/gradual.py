"""Gradual unfreezing: start with only the head trainable, then unfreeze layer groups stage by stage.

`bottom_up` follows our source text (input side first; the embeddings travel with layer 0);
`top_down` follows ULMFiT (last layer first; the embeddings come last). Stage 0 trains the head
alone. Each later stage unfreezes the next `group_size` layers and adds them to the optimiser as
new parameter groups, so they really train from that step on while frozen ones never move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..callbacks import Callback, Run
from ..freezing import Finetuner
from ..optim import add_parts
from .base import Prepared, SetupOptions, Strategy

DIRECTIONS = ("bottom_up", "top_down")
UNITS = ("epoch", "step")


@dataclass
class UnfreezeSchedule:
    """When and in which order to unfreeze.

    Args:
        direction: "bottom_up" (source text) or "top_down" (ULMFiT).
        stage_length: how many `unit`s each stage lasts (> 0).
        unit: "epoch" or "step".
        group_size: layers unfrozen per stage.
    """

    direction: str = "top_down"
    stage_length: int = 1
    unit: str = "epoch"
    group_size: int = 1

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Unknown unfreezing direction {self.direction!r}; use 'bottom_up' or 'top_down'.")
        if self.unit not in UNITS:
            raise ValueError(f"Unknown stage unit {self.unit!r}; use 'epoch' or 'step'.")
        for name in ("stage_length", "group_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}.")

    def stages(self, n_layers: int) -> list[list[int]]:
        """Layer indices unfrozen at stages 1, 2, ... (stage 0 unfreezes nothing)."""
        order = list(range(n_layers)) if self.direction == "bottom_up" else list(range(n_layers))[::-1]
        return [order[i:i + self.group_size] for i in range(0, n_layers, self.group_size)]

    def stage_at(self, step: int, epoch: int, n_layers: int) -> int:
        """Stage in force at this optimiser step / epoch (both counted from 0)."""
        elapsed = epoch if self.unit == "epoch" else step
        return min(elapsed // self.stage_length, len(self.stages(n_layers)))


class GradualUnfreezer:
    """Drives an `UnfreezeSchedule` on a Finetuner and its optimiser; call `update` before each step."""

    def __init__(self, ft: Finetuner, schedule: UnfreezeSchedule, lr: float, weight_decay: float = 0.01,
                 decay: float | None = None):
        self.ft, self.schedule = ft, schedule
        self.lr, self.weight_decay, self.decay = lr, weight_decay, decay
        # several stacks (T5): stage k unfreezes the k-th group of every stack at once
        per_stack = [[[r[i] for i in group] for group in schedule.stages(len(r))] for r in ft.parts.stack_ranges()]
        self.plan = [[i for s in per_stack if k < len(s) for i in s[k]] for k in range(max(len(s) for s in per_stack))]
        self.stage = 0
        ft.freeze_layers(range(ft.n_layers))
        ft.set_embeddings_trainable(False)

    def update(self, optimizer: torch.optim.Optimizer, step: int, epoch: int) -> list[int]:
        """Advance to the stage due at (step, epoch); returns the layers unfrozen now (often none)."""
        target = min(self.schedule.stage_at(step, epoch, self.ft.n_layers), len(self.plan))
        newly: list[int] = []
        while self.stage < target:
            layers = self.plan[self.stage]
            self.stage += 1
            self.ft.unfreeze_layers(layers)
            parts: list[str | int] = list(layers)
            if 0 in layers:  # the embeddings travel with layer 0: first bottom-up, last top-down
                self.ft.set_embeddings_trainable(True)
                parts.append("embeddings")
            add_parts(optimizer, self.ft, parts, self.lr, self.weight_decay, self.decay)
            newly += layers
        return newly


class GradualUnfreezing(Callback):
    """`fit` callback: start with only the head trainable, then unfreeze per `schedule` (see `UnfreezeSchedule`).

        fit(Finetuner(model, "head_only"), loader, callbacks=[GradualUnfreezing(UnfreezeSchedule("top_down"))])

    Its state is the schedule and the stage reached: resuming replays the stages (the same optimiser groups, in the
    same order) before the optimiser's saved state is loaded into them, and refuses another schedule.
    """

    def __init__(self, schedule: UnfreezeSchedule):
        if not isinstance(schedule, UnfreezeSchedule):
            raise TypeError(f"GradualUnfreezing needs an UnfreezeSchedule, not {type(schedule).__name__}; "
                            "e.g. UnfreezeSchedule('top_down', stage_length=1, unit='epoch').")
        self.schedule = schedule
        self.unfreezer: GradualUnfreezer | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    @property
    def stage(self) -> int:
        return self.unfreezer.stage if self.unfreezer else 0

    @property
    def progress_label(self) -> str:
        return f"gradual {self.schedule.direction}"

    def on_fit_start(self, run: Run) -> None:
        self.unfreezer = GradualUnfreezer(run.ft, self.schedule, run.lr, run.weight_decay, run.lr_decay)

    def on_optimizer(self, run: Run) -> None:
        self.optimizer = run.optimizer

    def on_step_start(self, run: Run) -> None:
        self.unfreezer.update(run.optimizer, run.step, run.epoch)

    def state_dict(self) -> dict:
        return {"kind": "GradualUnfreezing", "schedule": asdict(self.schedule), "stage": self.stage}

    def load_state_dict(self, state: dict) -> None:
        """Replay the saved stages on the optimiser (same groups, same order); the same schedule is required."""
        if state.get("schedule") != asdict(self.schedule):
            raise ValueError(f"its unfreezing schedule was {state.get('schedule')}, not {asdict(self.schedule)}; "
                             "resume with the same schedule")
        length = self.schedule.stage_length
        while self.unfreezer.stage < state["stage"]:  # a stage at a time: each adds its own groups
            before = self.unfreezer.stage
            self.unfreezer.update(self.optimizer, (before + 1) * length, (before + 1) * length)
            if self.unfreezer.stage == before:
                break


def setup(spec: Strategy, model, options: SetupOptions) -> Prepared:
    """gradual_bottom_up / gradual_top_down: one layer per stage, the stages (and the head alone) spread evenly over
    `options.total_steps`; fit builds the optimiser and the callback adds each stage's groups."""
    ft = Finetuner(model, "head_only", verbose=False)
    length = max(1, options.total_steps // (ft.n_layers + 1))
    direction = spec.name.removeprefix("gradual_")
    return Prepared(ft, None, [GradualUnfreezing(UnfreezeSchedule(direction, stage_length=length, unit="step"))], options.lr)
