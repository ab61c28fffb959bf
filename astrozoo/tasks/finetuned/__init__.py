"""Tasks of user fine-tuned models (`astrozoo.transfer`): generic classification and
regression, and the ``finetuned`` architecture (a zoo backbone plus a new head) that serves
any task. Nothing is registered as a pretrained model here; torch-free.
"""

from astrozoo.registry import Task, register_architecture, register_task

register_task(Task(
    name="classification", columns=("label", "p_{label}"), pipeline_tag="image-classification",
    key_metrics=("accuracy", "auroc"), description="classes of a fine-tuned head"))

register_task(Task(
    name="regression", columns=("{label}", "{label}_err"), pipeline_tag="other",
    key_metrics=("loss",), description="targets with Gaussian uncertainties of a fine-tuned head"))

register_architecture("finetuned", "astrozoo.transfer.model:FineTunedModel", task=None)
