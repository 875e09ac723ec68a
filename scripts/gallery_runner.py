"""Run one jupytext percent-format tutorial cell by cell; print its cells with their output as JSON.

Usage: python scripts/gallery_runner.py tutorial.py   (run by scripts/gallery_hook.py in a temporary folder)

Each code cell is executed in one shared namespace; its printed text is captured, and after it every open
matplotlib figure is saved as a PNG (base64 in the JSON) and closed. Markdown cells lose their "# " prefix.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
from pathlib import Path


def cells(text: str) -> list[dict]:
    """The cells of a percent-format script: [{"kind": "markdown" | "code", "source": str}]."""
    out: list[dict] = []
    kind, lines = None, []
    body = text.split("# ---\n", 2)[-1] if text.startswith("# ---") else text  # the jupytext header
    for line in body.splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                out.append({"kind": kind, "source": "\n".join(lines).strip("\n")})
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
            continue
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else line.lstrip("#")
        lines.append(line)
    if kind is not None:
        out.append({"kind": kind, "source": "\n".join(lines).strip("\n")})
    return [cell for cell in out if cell["source"].strip()]


def main(path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__main__", "__file__": str(Path(path).resolve())}
    result = []
    real_stdout = sys.stdout
    for i, cell in enumerate(cells(Path(path).read_text())):
        entry = {**cell, "stdout": "", "figures": []}
        if cell["kind"] == "code":
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(cell["source"], f"{Path(path).name}:cell {i}", "exec"), namespace)
            entry["stdout"] = buffer.getvalue()
            for number in plt.get_fignums():
                png = io.BytesIO()
                plt.figure(number).savefig(png, format="png", dpi=80, bbox_inches="tight")
                entry["figures"].append(base64.b64encode(png.getvalue()).decode("ascii"))
            plt.close("all")
        result.append(entry)
    real_stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
