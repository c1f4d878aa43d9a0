"""Checkers for the notebooks' exercises: each runs the student's function on tiny models and answers with a hint.

A checker returns normally (and prints what passed) when the function does what the exercise asks, and raises
`ExerciseError` with one specific hint otherwise: which layer is wrong, which parameter the optimiser should not hold,
what to look at. The tiny models are built from configs (no download), so a check takes well under a second. A chapter
calls `check(checker, answer)`, which prints the hint instead of raising; `predict` runs a predict-then-measure
exercise. Chapters 00-04's checkers are in `encoder`, 05-07's in `evidence`.
"""

from .base import ExerciseError, check, tiny_batch, tiny_classifier
from .encoder import (
                      check_backward_depth,
                      check_freeze_function,
                      check_freeze_with_embeddings,
                      check_mean_pool,
                      check_odd_layers,
                      check_optimizer,
                      check_paired_interval,
                      check_relative_change,
                      check_schedule,
                      check_training_step,
                      check_upper_half,
)
from .evidence import (
                      check_half_draw,
                      check_layer_effect,
                      check_pareto,
                      check_perplexity_change,
                      check_seeds_needed,
                      check_verdict,
)
from .predict import measure_backward_layers, measure_paper_share, measure_trainable_share, predict

__all__ = ["ExerciseError", "check", "check_backward_depth", "check_freeze_function", "check_freeze_with_embeddings",
           "check_half_draw", "check_layer_effect", "check_mean_pool", "check_odd_layers", "check_optimizer",
           "check_paired_interval", "check_pareto", "check_perplexity_change", "check_relative_change", "check_schedule",
           "check_seeds_needed", "check_training_step", "check_upper_half", "check_verdict", "measure_backward_layers",
           "measure_paper_share", "measure_trainable_share", "predict", "tiny_batch", "tiny_classifier"]
