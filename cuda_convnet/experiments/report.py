"""`experiment report RUN_DIRS...`: one Markdown page from the JSON records the runs wrote.

Every experiment and figure writes OUT/<kind>.json (with "kind", "png", "command" and its
numbers) next to its PNG; this page shows each picture (linked relative to the page), our
numbers beside the paper's, and the command that made it. Records are ordered as the
paper presents them (Figure 1, the ablations, Figure 3, Figure 4).
"""
from __future__ import annotations

import glob
import json
import os

from ..data.store import write_bytes_atomic

ORDER = ("relu-vs-tanh", "ablate", "filters", "top5", "neighbours")


def collect(run_dirs) -> list[dict]:
    """Every record (*.json with a "kind") under the given folders, in ORDER; each gets "dir".

    Raises FileNotFoundError for a missing folder and ValueError when none holds a record."""
    records = []
    for d in run_dirs:
        if not os.path.isdir(d):
            raise FileNotFoundError(f"{d}: {'not a folder' if os.path.exists(d) else 'no such folder'}")
        for path in sorted(glob.glob(os.path.join(d, "*.json"))):
            try:
                with open(path) as f:
                    rec = json.load(f)
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(rec, dict) and rec.get("kind") in ORDER:
                records.append({**rec, "dir": os.path.abspath(d)})
    if not records:
        raise ValueError(f"no experiment records (relu-vs-tanh.json, ablate.json, ...) in {list(run_dirs)}")
    return sorted(records, key=lambda r: ORDER.index(r["kind"]))


def _image(rec, page_dir) -> str:
    png = rec.get("png")
    if not png:
        return ""
    rel = os.path.relpath(os.path.join(rec["dir"], os.path.basename(png)), page_dir)
    return f"![{rec['kind']}]({rel})\n"


def section(rec: dict, page_dir: str) -> str:
    from . import paper

    kind = rec["kind"]
    out = []
    if kind == "relu-vs-tanh":
        b = rec["best"]
        fmt = lambda t: "not reached" if t is None else f"{t:.2f}"
        ratio = "—" if rec.get("ratio") is None else f"{rec['ratio']:.2f}"
        out += ["## Figure 1: ReLU vs tanh (§3.1)", "",
                f"Training error of a four-layer conv net on {rec['data']}, each unit with its best learning rate "
                f"from {rec['lrs']} ({rec['epochs']} epoch{'s' * (rec['epochs'] != 1)}, no regularisation).", "",
                "| | ReLU | tanh | tanh / ReLU |", "|---|---:|---:|---:|",
                f"| best learning rate | {b['relu']['lr']:g} | {b['tanh']['lr']:g} | |",
                f"| epochs to {100 * rec['target']:g}% training error | {fmt(b['relu']['epochs_to_target'])} | "
                f"{fmt(b['tanh']['epochs_to_target'])} | "
                f"{ratio} |",
                f"| paper (CIFAR-10, 25% training error) | | | {paper.RELU_TANH['speedup']:g} |", ""]
        if rec.get("ratio") is not None and rec["ratio"] < 1:
            out += [f"Here tanh reached the target first: the opposite of the paper's \"{paper.RELU_TANH['quote']}\" "
                    "(which adds: \"The magnitude of the effect demonstrated here varies with network "
                    "architecture\").", ""]
    elif kind == "ablate":
        out += ["## Ablations (§3.2-§4.2, §7)", "", rec.get("markdown", ""), ""]
    elif kind == "filters":
        towers = ", ".join(f"tower {i + 1}: {s:.3f}" for i, s in enumerate(rec["colour_specificity"]))
        out += ["## Figure 3: conv1 kernels (§6.1)", "",
                f"Colour specificity (mean fraction of a kernel's energy outside its grey component; random "
                f"kernels: 0.667): {towers}. Paper: \"{paper.FILTERS_QUOTE}\"", ""]
        if rec.get("note"):
            out += [rec["note"], ""]
    elif kind == "top5":
        out += ["## Figure 4 (left): the five most probable labels", "",
                f"{rec.get('correct_top1', 0)} of {rec.get('known', 0)} images with a known label have it first, "
                f"{rec.get('correct_top5', 0)} in the top five.", ""]
    elif kind == "neighbours":
        out += ["## Figure 4 (right): nearest neighbours in the last hidden layer", "",
                f"{rec['queries']} queries against {rec['database']} training images, features of layer "
                f"`{rec['layer']}`; {rec.get('same_label', 0)} of {rec['queries'] * rec['k']} neighbours share the "
                "query's label.", ""]
    out += [_image(rec, page_dir), "Made by:", "", "    " + rec.get("command", "(command not recorded)"), ""]
    return "\n".join(out)


def write(run_dirs, path) -> str:
    """The page at `path` (folders made as needed); returns the path."""
    records = collect(run_dirs)
    page_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(page_dir, exist_ok=True)
    text = ["# The paper's figures, reproduced", "",
            "Krizhevsky, Sutskever, Hinton (2012), ImageNet Classification with Deep Convolutional Neural "
            "Networks: our measurements beside the paper's numbers. Measured on a CPU unless a record says "
            "otherwise.", ""]
    text += [section(r, page_dir) for r in records]
    write_bytes_atomic(path, "\n".join(text).encode())  # the previous page stays whole on a crash
    return os.fspath(path)
