"""The per-kernel evolution table of bench/RESULTS.md: for each kernel family, every version,
its idea, what its sm_90 machine code shows, its PREDICTED time, and its measured time.

    python bench/evolution.py                            # print the table (builds the SASS)
    python bench/evolution.py --sass-json sass.json      # SASS counts from sass_report.py --json
    python bench/evolution.py --write bench/RESULTS.md   # replace the table between its markers
    python bench/evolution.py --measured conv.json kernel.json ...   # a GPU run's figures

Columns, all from the tools, so that the table is regenerated when kernels change:

  idea        the kernel's entry in its csrc/<family>.cuh header comment (the line
              "<kernel>: ..." or "<kernel> (...): ..."), first sentence
  fma %       FFMA/HMMA share of the main loop's instructions (bench/sass_report.py; a range
              over the kernel's template instantiations)
  LDS.128     128-bit shared-memory loads in the main loop (most over the instantiations)
  LDGSTS/HMMA cp.async copies / tensor-core MMAs anywhere in the kernel
  step        PREDICTED milliseconds of one AlexNet training step (batch 128, H100) spent in
              this kernel where the launchers pick it (bench/perf_model.py)
  same work   PREDICTED milliseconds of every version of a family forced on the same work
              (the AlexNet calls they can all run), so that versions compare side by side
  measured    from a GPU run's benchmark JSON (--measured): the same work as "same work",
              each version forced; the tensor-core kernels from the --precision rows, one
              sum per precision; "not yet measured on a GPU" until then

A family is a kernel's name without its trailing ``_kernel<n>``; n is the version.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.checkout import use_checkout  # noqa: E402  (bench/ is not a package)

use_checkout()

import perf_model  # noqa: E402

BEGIN, END = "<!-- evolution table: begin (python bench/evolution.py --write bench/RESULTS.md) -->", \
    "<!-- evolution table: end -->"
NOT_MEASURED = "not yet measured on a GPU"
KERNEL = re.compile(r"^(?P<family>\w+?)_kernel(?P<version>\d+)$")
MAX_IDEA = 160  # characters of an idea in the table
SENTENCE_END = r"\.(?:\s+(?=[A-Z(])|\s*$)"  # not "i.e. x", not "4j .. 4j+3"


def _entry(lines, i):
    """(kernel names, note, text) of the header comment entry starting at lines[i], "// name[<T>]
    [(note)] [/ or and name2[<T>] [(note)]]: text" (the head may run over the next comment
    lines while a parenthesis is open); None for any other line. The head ends at the
    first colon outside parentheses and angle brackets, and holds nothing but names, notes
    and separators."""
    if not re.match(r"^//\s+\w+_kernel\d", lines[i]):
        return None
    body, depth = lines[i][2:], 0
    j = i
    while True:
        for k, ch in enumerate(body):
            depth += ch in "(<"
            depth -= ch in ")>"
            if ch == ":" and depth == 0:
                head, text = body[:k], body[k + 1:].strip()
                break
        else:
            if depth > 0 and j + 1 < len(lines) and lines[j + 1].startswith("//") and j - i < 2:
                j += 1
                body += " " + lines[j][2:].strip()
                depth = 0
                continue
            return None
        break
    bare = re.sub(r"<[^<>]*>", "", head)
    groups = r"\(([^()]*(?:\([^()]*\)[^()]*)*)\)"
    names_only = re.sub(groups, "", bare)
    if not re.fullmatch(r"\s*\w+_kernel\d+(?:\s*(?:/|,|and)\s*\w+_kernel\d+)*\s*", names_only):
        return None
    names = re.findall(r"\w+_kernel\d+", names_only)
    notes = re.findall(groups, bare)
    note = notes[0] if len(names) == 1 and len(notes) == 1 and "only version" not in notes[0] else ""
    return names, note, text, j


def _shorten(text: str) -> str:
    if len(text) <= MAX_IDEA:
        return text
    return text[:MAX_IDEA].rsplit(" ", 1)[0].rstrip(",;:") + " ..."


def ideas(csrc: Path = ROOT / "csrc") -> dict:
    """Kernel name -> its idea, from the header comments of csrc/*.cuh: the entry's note
    (unless it only says the version is the only one) and the first sentence of its text,
    continued over the following comment lines up to a blank one or the next entry."""
    out = {}
    for path in sorted(csrc.glob("*.cuh")):
        lines = path.read_text().splitlines()
        for i in range(len(lines)):
            entry = _entry(lines, i)
            if entry is None:
                continue
            names, note, text, last = entry
            for k in range(last + 1, len(lines)):
                if re.search(SENTENCE_END, text) or not re.match(r"^//\s*\S", lines[k]) or _entry(lines, k):
                    break
                text += " " + lines[k][2:].strip()
            sentence = re.split(SENTENCE_END, text.strip(), maxsplit=1)[0].rstrip(".")
            idea = f"({note}) {sentence}" if note else sentence
            for name in names:
                out.setdefault(name, _shorten(idea.strip()))
        # a kernel with no entry: the comment right above its definition
        for m in re.finditer(r"__global__[^;{]*?\b(\w+_kernel\d+)\s*\(", path.read_text()):
            name = m.group(1)
            if name in out:
                continue
            k = path.read_text()[:m.start()].count("\n") - 1
            while k >= 0 and re.match(r"^\s*template\s*<", lines[k]):
                k -= 1
            block = []
            while k >= 0 and lines[k].startswith("//"):
                block.insert(0, lines[k][2:].strip())
                k -= 1
            if block:
                out[name] = _shorten(re.split(SENTENCE_END, " ".join(block), maxsplit=1)[0].rstrip("."))
    return out


def _base(kernel_name: str) -> str:
    """conv_dgrad_kernel1<64, 64> -> conv_dgrad_kernel1; "channel_copy_kernel1 (split)" too."""
    return re.split(r"[<\s]", kernel_name, maxsplit=1)[0]


def step_ms(sass, batch=128) -> dict:
    """Kernel name -> PREDICTED ms of one training step spent in it (the launchers' picks)."""
    out: dict = {}
    for ln in perf_model.alexnet_launches(batch, sass):
        out[_base(ln.kernel)] = out.get(_base(ln.kernel), 0.0) + ln.seconds * 1e3
    return out


def _conv_fwd_same_work(sass, version, batch):
    geoms, _ = perf_model.alexnet_conv_geoms(batch)
    both = [(n, g) for n, g in geoms if g.cg % 4 == 0]  # conv1 (C = 3): kernel2 cannot run it
    return sum(ln.seconds for n, g in both for ln in perf_model.conv2d(sass, n, g, version)) * 1e3, \
        "+".join(n for n, _ in both) + " fwd"


def _conv_dgrad_same_work(sass, version, batch):
    geoms, _ = perf_model.alexnet_conv_geoms(batch)
    both = [(n, g) for n, g in geoms[1:] if g.cg % 4 == 0 and g.kg % 4 == 0]  # conv1 launches no dgrad
    return sum(ln.seconds for n, g in both for ln in perf_model.conv2d_dgrad(sass, n, g, version)) * 1e3, \
        "+".join(n for n, _ in both) + " dgrad"


def _gemm_same_work(sass, version, batch):
    _, fan_in = perf_model.alexnet_conv_geoms(batch)
    total, n = 0.0, batch
    from cuda_convnet import models

    cfg = models.alexnet_config()
    for j, u in enumerate(list(cfg.hidden) + [cfg.classes], 6):
        for direction, m, nn, k, ta, tb in (("fwd", n, u, fan_in, False, True), ("dgrad", n, fan_in, u, False, False),
                                            ("wgrad", u, fan_in, n, True, False)):
            total += sum(ln.seconds for ln in perf_model.gemm(sass, f"fc{j}", direction, m, nn, k, ta, tb, version))
        fan_in = u
    return total * 1e3, "fc6-fc8 fwd+dgrad+wgrad"


def _conv_wgrad_same_work(sass, version, batch):
    geoms, _ = perf_model.alexnet_conv_geoms(batch)
    every = [(n, g) for n, g in geoms if g.cg % 4 == 0 and g.kg % 4 == 0]  # conv1 (C = 3): no kernel2
    return sum(ln.seconds for n, g in every for ln in perf_model.conv2d_wgrad(sass, n, g, version)) * 1e3, \
        "+".join(n for n, _ in every) + " wgrad"


# Families whose versions perf_model can force onto the same work: family -> fn(sass, version, batch)
SAME_WORK = {"conv_fwd": _conv_fwd_same_work, "conv_dgrad": _conv_dgrad_same_work, "conv_wgrad": _conv_wgrad_same_work,
             "gemm": _gemm_same_work}


def rows(sass_stats: list[dict], batch=128, csrc: Path = ROOT / "csrc") -> list[dict]:
    """One row per kernel (family, version) of the sm_90 SASS report (sass_report's JSON rows)."""
    sass90 = [s for s in sass_stats if s["arch"] == 90]
    model_counts = {s["name"].replace("ccn::", ""): {k: s[k] for k in ("fma_share", "blocks_per_sm", "threads")}
                    for s in sass90}
    step = step_ms(model_counts, batch)
    idea = ideas(csrc)
    kernels: dict = {}
    for s in sass90:
        kernels.setdefault(s["kernel"], []).append(s)
    out = []
    for kernel, insts in kernels.items():
        m = KERNEL.match(kernel)
        if not m:
            continue
        family, version = m.group("family"), int(m.group("version"))
        fma = sorted({round(100 * s["fma_share"], 1) for s in insts})
        row = {"family": family, "version": version, "kernel": kernel, "idea": idea.get(kernel, "-"),
               "fma_pct": f"{fma[0]:.1f}" if len(fma) == 1 else f"{fma[0]:.1f}-{fma[-1]:.1f}",
               "lds128": max(s["lds128"] for s in insts),
               "ldgsts": any(s["ldgsts"] for s in insts), "hmma": any(s["hmma"] for s in insts),
               "step_ms": step.get(kernel), "measured": NOT_MEASURED}
        if family in SAME_WORK:
            try:
                row["same_ms"], row["same_work"] = SAME_WORK[family](model_counts, version, batch)
            except (KeyError, ValueError) as e:  # a version the model has no counts or rule for
                row["same_work"] = f"- ({type(e).__name__}: {e})"
        out.append(row)
    return sorted(out, key=lambda r: (r["family"], r["version"]))


# A versioned benchmark row -> (kernel, the work it sums over): conv_bench's "fwd v<n>" on
# conv2-conv5 (the layers every version runs), kernel_bench's "lrn <where> v<n>",
# "lrn_backward <where> v<n>" and the FC GEMMs' "<direction> v<n>".
def _measured_key(bench: str, row: dict):
    v = row.get("version")
    if not v or row.get("status") != "ok":
        return None
    if bench == "conv_bench" and row.get("layer") in ("conv2", "conv3", "conv4", "conv5"):
        return f"conv_fwd_kernel{v}", "conv2-conv5 fwd"
    if bench == "kernel_bench" and "layer" in row:
        return f"gemm_kernel{v}", "fc6-fc8 fwd+dgrad+wgrad"
    if bench == "kernel_bench" and row["op"].split()[0] in ("lrn", "lrn_backward"):
        op = row["op"].split()[0]
        return f"{'lrn_forward' if op == 'lrn' else op}_kernel{v}", f"{op} conv1+conv2"
    return None


# A tensor-core row (conv_bench / kernel_bench --precision tf32,bf16,3xtf32: one kernel
# per family, the launcher's pick, no version) -> (kernel, the work it sums over); summed
# per precision.
TC_PRECISIONS = ("tf32", "bf16", "3xtf32")


def _measured_tc_key(bench: str, row: dict):
    if row.get("version") or row.get("status") != "ok" or row.get("precision") not in TC_PRECISIONS:
        return None
    if bench == "conv_bench" and row.get("op") in ("fwd", "dgrad", "wgrad") \
            and row.get("layer") in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        return f"conv_tc_{row['op']}_kernel1", f"conv1-conv5 {row['op']}"
    if bench == "kernel_bench" and str(row.get("layer", "")).startswith("fc"):
        return "gemm_tc_kernel1", "fc6-fc8 fwd+dgrad+wgrad"
    return None


def measured(docs: list[dict]) -> dict:
    """Kernel -> "<ms> ms (<work>; <card>, <date>, <commit>)" from benchmark JSON documents
    (conv_bench.py / kernel_bench.py --json) of runs on a GPU; CPU-mode runs are ignored.
    The tensor-core kernels get one sum per precision: "tf32 <ms>, bf16 <ms>, 3xtf32 <ms> ms
    (<work>; ...)"."""
    sums: dict = {}
    tc: dict = {}
    for doc in docs:
        env = doc.get("env", {})
        if not str(env.get("device", "")).startswith("GPU"):
            continue
        where = f"{env['device'][5:]}, {env.get('date', '?')}, {env.get('commit', '?')}"
        for row in doc.get("rows", []):
            key = _measured_key(doc.get("bench", ""), row)
            if key is not None:
                ms = row["ours_ms"] if "ours_ms" in row else row["ours_us"] / 1e3
                total, _, _ = sums.get(key[0], (0.0, key[1], where))
                sums[key[0]] = (total + ms, key[1], where)
            key = _measured_tc_key(doc.get("bench", ""), row)
            if key is not None and row.get("ours_ms"):
                per, _, _ = tc.get(key[0], ({}, key[1], where))
                per[row["precision"]] = per.get(row["precision"], 0.0) + row["ours_ms"]
                tc[key[0]] = (per, key[1], where)
    out = {k: f"{ms:.3f} ms ({work}; {where})" for k, (ms, work, where) in sums.items()}
    for k, (per, work, where) in tc.items():
        out[k] = ", ".join(f"{p} {per[p]:.3f}" for p in TC_PRECISIONS if p in per) + f" ms ({work}; {where})"
    return out


def markdown(table_rows: list[dict], batch=128) -> str:
    head = [
        f"Generated by `python bench/evolution.py` from the sm_90 SASS (bench/sass_report.py) and the "
        f"performance model (bench/perf_model.py): **every time in the predicted columns is a PREDICTION** "
        f"for an H100 at batch {batch}, not a measurement.",
        "",
        "| family | v | kernel | idea | fma % | LDS.128 | LDGSTS | HMMA | predicted ms/step (launchers' pick) "
        "| predicted ms, same work per version | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table_rows:
        same = f"{r['same_ms']:.3f} ({r['same_work']})" if r.get("same_ms") is not None else r.get("same_work", "-")
        step = f"{r['step_ms']:.3f}" if r.get("step_ms") is not None else "- (not in a step)"
        head.append(f"| {r['family']} | {r['version']} | `{r['kernel']}` | {r['idea'].replace('|', '/')} "
                    f"| {r['fma_pct']} | {r['lds128']} | {'yes' if r['ldgsts'] else 'no'} "
                    f"| {'yes' if r['hmma'] else 'no'} | {step} | {same} | {r['measured']} |")
    return "\n".join(head)


def replace_section(text: str, table: str) -> str:
    """`text` with everything between the BEGIN and END markers replaced by `table`."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the evolution table's markers are missing: {BEGIN!r} ... {END!r}")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return before + BEGIN + "\n" + table + "\n" + END + after


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sass-json", help="kernel counts from `sass_report.py --json` (default: build them)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--write", metavar="RESULTS_MD", help="replace the table between its markers in this file")
    ap.add_argument("--measured", nargs="+", metavar="BENCH_JSON", default=[],
                    help="conv_bench.py / kernel_bench.py --json files of a GPU run: the measured column")
    args = ap.parse_args(argv)
    if args.sass_json:
        import json

        stats = json.loads(Path(args.sass_json).read_text())
    else:
        from dataclasses import asdict

        import sass_report

        try:
            stats = [asdict(s) for s in sass_report.report_cached()]
        except RuntimeError as e:
            print(f"evolution: {e}", file=sys.stderr)
            return 2
    table_rows = rows(stats, args.batch)
    if args.measured:
        import json

        found = measured([json.loads(Path(p).read_text()) for p in args.measured])
        for r in table_rows:
            r["measured"] = found.get(r["kernel"], r["measured"])
    table = markdown(table_rows, args.batch)
    if args.write:
        path = Path(args.write)
        try:
            path.write_text(replace_section(path.read_text(), table))
        except (OSError, ValueError) as e:
            print(f"evolution: {path}: {e}", file=sys.stderr)
            return 2
        print(f"evolution: {len(table.splitlines()) - 4} kernels written to {path}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
