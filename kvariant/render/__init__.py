"""The reports of a comparison, one module a format: :mod:`.markdown`
(report.md), :mod:`.html` (report.html, with :mod:`.plots`) and :mod:`.json`
(report.json); :mod:`.text` holds the words they share."""

from __future__ import annotations

from pathlib import Path

from ..comparison import Comparison
from ..files import write_atomic
from .html import comparison_html
from .json import comparison_json
from .markdown import comparison_markdown


def write_reports(c: Comparison, out_dir: Path) -> list[Path]:
    """report.md, report.html and report.json in *out_dir*, each written
    atomically; returns their paths."""
    out_dir = Path(out_dir)
    files = [(out_dir / "report.md", comparison_markdown(c)),
             (out_dir / "report.html", comparison_html(c)),
             (out_dir / "report.json", comparison_json(c))]
    for path, text in files:
        write_atomic(path, text)
    return [p for p, _ in files]


