"""Measuring what fine-tuning did: retention probes (`retention`), layer similarity and weight change (`similarity`),
the per-block cost model that predicts a strategy's step time (`costmodel`), and paired intervals and verdicts (`stats`)."""
