"""The evaluation layer: per-task metrics, plots and benchmark bookkeeping, apart from model
and training code.

- `astrozoo.evaluation.lens`: lens-finding challenge metrics (AUROC, TPR0, TPR10);
- `astrozoo.evaluation.photoz`: photo-z point and p(z) metrics, report table;
- `astrozoo.evaluation.plots`: ROC, PIT and z_phot-z_spec figures;
- `astrozoo.evaluation.report`: `record_metrics` (benchmark results into config and card).

`evaluate` runs a task's registered evaluator, so code that scores any model need not know
which task it serves.
"""

from __future__ import annotations

__all__ = ["evaluate"]


def evaluate(task: str, *args, **kwargs) -> dict:
    """Metrics of task `task` (its registered evaluator, `astrozoo.registry.Task.evaluator`)."""
    from ..registry import get_task

    return get_task(task).evaluate(*args, **kwargs)
