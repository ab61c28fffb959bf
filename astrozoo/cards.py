"""Model cards: the ``README.md`` of a model directory, in the Hugging Face format.

The prose lives in ``model_cards/<name>.md`` in the repository (benchmarks rewrite the metrics
section between ``<!-- metrics:start -->`` and ``<!-- metrics:end -->``); the YAML metadata is
generated from `ModelConfig` by huggingface_hub's `ModelCardData`, so the Hub shows the
metrics and licence that the config records.
"""

from __future__ import annotations

import re

from .config import ModelConfig

__all__ = ["render_card", "card_body", "replace_section", "record_metrics", "KEY_METRICS"]

#: The metrics summaries show per task, most important first (`astrozoo list` shows the first).
KEY_METRICS = {"lens-finding": ("auroc", "tpr0", "tpr10"),
               "photo-z": ("sigma_mad", "bias", "outlier_frac", "pit_ks", "coverage68")}

_PIPELINE_TAG = {"lens-finding": "image-classification", "morphology": "image-classification",
                 "photo-z": "tabular-regression", "deblending": "image-segmentation",
                 "features": "image-feature-extraction"}


def _eval_results(config: ModelConfig):
    from huggingface_hub import EvalResult

    out = []
    for dataset, values in config.metrics.items():
        for metric, value in values.items():
            if isinstance(value, (int, float)):
                out.append(EvalResult(task_type=_PIPELINE_TAG[config.task], dataset_type=dataset,
                                      dataset_name=dataset, metric_type=metric,
                                      metric_value=float(value)))
    return out or None


def render_card(config: ModelConfig, body: str) -> str:
    """Full ``README.md`` text: YAML metadata from `config`, then `body` (markdown)."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        model_name=config.name, license=config.license.lower(), library_name="astrozoo",
        pipeline_tag=_PIPELINE_TAG[config.task],
        tags=["astronomy", "astrozoo", config.task, config.input_spec.survey, "safetensors"],
        eval_results=_eval_results(config))
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_body(body).strip()}\n"))


def card_body(text: str) -> str:
    """`text` without its YAML front matter."""
    m = re.match(r"^---\n.*?\n---\n", text, flags=re.S)
    return text[m.end():] if m else text


def replace_section(text: str, section: str, content: str) -> str:
    """Replace what lies between ``<!-- {section}:start -->`` and ``<!-- {section}:end -->``."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"card has no '{section}' section markers ({start} ... {end})")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content.strip()}\n{end}{tail}"


def record_metrics(model_dir, metrics: dict, section: str, card_path) -> None:
    """Record a benchmark's results next to a model, leaving its weights untouched.

    Writes ``metrics`` into ``config.json``, `section` (markdown) into the card source's
    ``metrics`` section at `card_path`, and re-renders the bundled ``README.md`` from both.

    Parameters
    ----------
    model_dir : path
        Model directory in Hub layout (e.g. a bundled ``astrozoo/weights/<name>``).
    metrics : dict
        ``{dataset: {metric: value}}``.
    section : str
        Markdown for the card's metrics section.
    card_path : path
        The card source, ``model_cards/<name>.md``.
    """
    from pathlib import Path

    from .hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, sha256_file

    d, card_path = Path(model_dir), Path(card_path)
    before = sha256_file(d / WEIGHTS_NAME)
    config = ModelConfig.from_json(d / CONFIG_NAME).replace(metrics=metrics)
    config.to_json(d / CONFIG_NAME)
    card = replace_section(card_path.read_text(), "metrics", section)
    card_path.write_text(card)
    (d / CARD_NAME).write_text(render_card(config, card))
    if sha256_file(d / WEIGHTS_NAME) != before:
        raise RuntimeError(f"{d / WEIGHTS_NAME} changed while recording metrics")
