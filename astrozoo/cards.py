"""Model cards: the ``README.md`` of a model directory, in the Hugging Face format.

The prose lives in ``model_cards/<name>.md`` in the repository (benchmarks rewrite the metrics
section between ``<!-- metrics:start -->`` and ``<!-- metrics:end -->``); the YAML metadata is
generated from `ModelConfig` by huggingface_hub's `ModelCardData`, so the Hub shows the
metrics and licence that the config records.
"""

from __future__ import annotations

import re
from pathlib import Path

from .config import ModelConfig

__all__ = ["render_card", "card_body", "replace_section", "card_source_path", "read_card_source"]

#: The repository's card sources; absent in a non-editable install.
CARD_SOURCES = Path(__file__).resolve().parents[1] / "model_cards"


def card_source_path(name: str) -> Path:
    """``model_cards/<name>.md`` of the repository, found from the package (not from the
    working directory, so recipes run from anywhere)."""
    return CARD_SOURCES / f"{name}.md"


def read_card_source(name: str) -> str:
    """The card source of model `name`; a clear error when the repository is not there."""
    path = card_source_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no model card source at {path}; training recipes and "
                                "benchmarks run from a repository checkout (pip install -e .)")
    return path.read_text()


def _eval_results(config: ModelConfig, pipeline_tag: str):
    from huggingface_hub import EvalResult

    out = []
    for dataset, values in config.metrics.items():
        for metric, value in values.items():
            if isinstance(value, (int, float)):
                out.append(EvalResult(task_type=pipeline_tag, dataset_type=dataset,
                                      dataset_name=dataset, metric_type=metric,
                                      metric_value=float(value)))
    return out or None


def render_card(config: ModelConfig, body: str) -> str:
    """Full ``README.md`` text: YAML metadata from `config`, then `body` (markdown)."""
    from huggingface_hub import ModelCard, ModelCardData

    from .registry import get_task

    tag = get_task(config.task).pipeline_tag
    data = ModelCardData(
        model_name=config.name, license=config.license.lower(), library_name="astrozoo",
        pipeline_tag=tag,
        tags=["astronomy", "astrozoo", config.task, config.input_spec.survey, "safetensors"],
        eval_results=_eval_results(config, tag))
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


