"""Write measured numbers into README.md: the models table (from each shipped model's config,
whose metrics its benchmark wrote) and the benchmark tables in ``benchmarks/results/*.md``.

Run after the benchmarks: ``python benchmarks/update_readme.py``. Nothing in the README's
marked sections is typed by hand.
"""

from __future__ import annotations

from pathlib import Path

import astrozoo
from astrozoo.cards import replace_section
from astrozoo.registry import default_model, get_entry, get_task

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = {"bench-io": "io.md", "bench-inference": "inference.md", "bench-onnx": "onnx.md",
            "setup-timing": "setup.md", "bench-scaleout": "scaleout.md",
            "bench-accelerator": "accelerator.md", "bench-gpu": "gpu.md",
            "bench-output": "output.md"}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def models_table() -> str:
    rows = ["| task | model | input | measured on held-out data (benchmark) | card |",
            "| --- | --- | --- | --- | --- |"]
    for name in astrozoo.list_models():
        entry = get_entry(name)
        cfg = entry.config
        s = cfg.input_spec
        inp = (f"{''.join(s.bands)} {s.size}x{s.size} @ {s.pixel_scale}\"/px, {s.flux_unit}"
               if s.kind == "image" else f"{''.join(s.bands)} fluxes ({s.flux_unit})")
        keys = get_task(cfg.task).key_metrics
        metrics = "<br>".join(f"{ds}: " + ", ".join(f"{k} {_fmt(vals[k])}" for k in keys if k in vals)
                              for ds, vals in cfg.metrics.items())
        star = " (default)" if default_model(entry.task) == name else ""
        card = (f"[{cfg.card}]({cfg.card})" if cfg.card else
                f"[{entry.weights.hub_repo}](https://huggingface.co/{entry.weights.hub_repo})")
        metrics = metrics or "not measured here (Hub weights; no internet on this machine)"
        rows.append(f"| {cfg.task} | `{name}`{star} | {inp} | {metrics} | {card} |")
    return "\n".join(rows)


def flags_table() -> str:
    """The output flag bits, from the `Flag` enum's own ``#:`` comments."""
    import inspect

    from astrozoo.io.flags import Flag

    docs, lines = {}, []
    for line in inspect.getsource(Flag).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            lines.append(stripped[2:].strip())
        elif "=" in stripped and lines:
            docs[stripped.split("=")[0].strip()] = " ".join(lines)
            lines = []
    rows = ["| bit | name | meaning |", "| ---: | --- | --- |"]
    rows += [f"| {int(f)} | `{f.name}` | {docs[f.name]} |" for f in Flag]
    return "\n".join(rows)


def main() -> None:
    readme = ROOT / "README.md"
    text = replace_section(readme.read_text(), "models", models_table())
    text = replace_section(text, "flags", flags_table())
    for section, fname in SECTIONS.items():
        f = RESULTS / fname
        if f.is_file():  # the results' own headings sit under the README's "## Performance"
            body = "\n".join("###" + line[1:] if line.startswith("# ") else line
                             for line in f.read_text().splitlines())
            text = replace_section(text, section, body)
    readme.write_text(text)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
