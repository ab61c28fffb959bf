"""Benchmark bookkeeping: measured metrics into a model's ``config.json`` and card."""

from __future__ import annotations

from pathlib import Path

__all__ = ["record_metrics", "record_section"]


def record_metrics(model_dir, metrics: dict, section: str, card_path=None) -> None:
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
    card_path : path, optional
        The card source; default ``model_cards/<name>.md`` of the repository.
    """
    from ..cards import card_source_path, render_card, replace_section
    from ..config import ModelConfig
    from ..hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, sha256_file

    d = Path(model_dir)
    before = sha256_file(d / WEIGHTS_NAME)
    config = ModelConfig.from_json(d / CONFIG_NAME).replace(metrics=metrics)
    card_path = Path(card_path) if card_path else card_source_path(config.name)
    config.to_json(d / CONFIG_NAME)
    card = replace_section(card_path.read_text(), "metrics", section)
    card_path.write_text(card)
    (d / CARD_NAME).write_text(render_card(config, card))
    if sha256_file(d / WEIGHTS_NAME) != before:
        raise RuntimeError(f"{d / WEIGHTS_NAME} changed while recording metrics")


def record_section(model_dir, section: str, content: str, card_path=None) -> None:
    """Write `content` (markdown) into the card source's `section` and re-render the bundled
    ``README.md``; config and weights untouched. For benchmarks that add to a card measured
    by another (e.g. ``rail`` beside ``metrics``)."""
    from ..cards import card_source_path, render_card, replace_section
    from ..config import ModelConfig
    from ..hub import CARD_NAME, CONFIG_NAME

    d = Path(model_dir)
    config = ModelConfig.from_json(d / CONFIG_NAME)
    card_path = Path(card_path) if card_path else card_source_path(config.name)
    card = replace_section(card_path.read_text(), section, content)
    card_path.write_text(card)
    (d / CARD_NAME).write_text(render_card(config, card))
