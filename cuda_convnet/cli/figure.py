"""`figure`: pictures of a trained checkpoint, as in the paper's Figures 3 and 4.

    python -m cuda_convnet figure filters CKPT                  # Figure 3: conv1's kernels per tower
    python -m cuda_convnet figure top5 CKPT digits:0 cat.png    # Figure 4 left: top-5 labels as bars
    python -m cuda_convnet figure neighbours CKPT digits        # Figure 4 right: 6 nearest training images
    python -m cuda_convnet figure neighbours CKPT STORE         # ... over a prepared store, streamed

CKPT is a checkpoint file or a training folder. top5 and neighbours feed images to the net
the way it was trained: a checkpoint written by `experiment ablate` records its pixel
standardisation, one written by `train` its mean image and crop. "digits" stands for the
bundled digits (their training split is the database, the validation split the queries);
"digits:N" for validation image N, whose label is known.
"""
from __future__ import annotations

import os

import numpy as np

DIGITS = "digits"


def add_parser(sub):
    from .args import positive_int

    p = sub.add_parser("figure", help="pictures of a checkpoint: filters (Figure 3), top5, neighbours (Figure 4)",
                       description=__doc__.split("\n\n")[0])
    which = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    f = which.add_parser("filters", help="Figure 3: conv1's kernels, the towers in two blocks, colour specificity")
    _common(f, "filters")
    f.add_argument("--layer", default="conv1", help="the conv layer to show (default conv1)")
    f.set_defaults(func=run_filters)

    t = which.add_parser("top5", help="Figure 4 (left): images with their five most probable labels")
    _common(t, "top5")
    t.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, or digits:N for the bundled digits' validation image N")
    t.add_argument("--labels", default=None,
                   help="comma-separated correct class names, one per image (default: digits:N's own label, or "
                        "a file's folder name when it is a class name)")
    t.set_defaults(func=run_top5)

    n = which.add_parser("neighbours", help="Figure 4 (right): query images and their six nearest training images "
                                            "in the last hidden layer")
    _common(n, "neighbours")
    n.add_argument("store", metavar="STORE", help="a prepared store (its train split is searched), or 'digits'")
    n.add_argument("--queries", type=positive_int, default=5,
                   help="query images, evenly spaced over the split (default 5)")
    n.add_argument("--query-split", default=None,
                   help="the split the queries come from (default: val, or test; train to check self-matches)")
    n.add_argument("--k", type=positive_int, default=6, help="neighbours per query (default 6, as in the paper)")
    n.add_argument("--layer", default=None, help="the layer whose activations are compared (default: the last "
                                                 "hidden layer, the input of the output layer)")
    n.add_argument("--chunk", type=positive_int, default=1024, help="training images per forward pass (default 1024)")
    n.set_defaults(func=run_neighbours)


def _common(p, name):
    from .common import add_precision

    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint file, or a training folder holding one")
    p.add_argument("--out", default=os.path.join("figures_out", name), help=f"output folder (default "
                                                                             f"figures_out/{name})")
    p.add_argument("--device", "--devices", dest="device", default="cpu", help="cpu (default), emu or cuda:N")
    add_precision(p, "the checkpoint's (fp32 if it records none)")


def _load(args):
    from .common import load_model, parse_devices

    return load_model(args.checkpoint, parse_devices(args.device, flag="--device"), args.precision)


def _transform(ck):
    from ..experiments.data import input_transform
    from . import UsageError

    try:
        return input_transform(ck)
    except ValueError as e:
        raise UsageError(f"the checkpoint ({ck.extra.get('data', 'no data recorded')}): {e}") from None


def run_filters(args):
    from ..experiments import filters
    from ..experiments.plotting import write_record
    from . import UsageError

    ck = _load(args)
    try:
        towers = filters.tower_kernels(ck.net, args.layer)
        spec = [float(filters.colour_specificity(k).mean()) for k in towers]
    except ValueError as e:
        raise UsageError(f"{args.checkpoint}: {e}") from None
    png = os.path.join(args.out, "filters.png")
    filters.plot(towers, spec, png, title=f"{args.layer} kernels, {len(towers)} tower(s), "
                                                     "each contrast-normalised")
    grid, blocks = filters.grid(towers)
    note = None
    if str(ck.extra.get("data", "")).startswith("digits"):
        note = ("The digits are grey (R = G = B): a kernel's colour component gets no gradient from them and only "
                "shrinks under weight decay from its random start, so the towers cannot specialise in colour on "
                "this data; the numbers measure how far learning has made the kernels grey.")
    record = write_record(args.out, "filters", {
        "kind": "filters", "png": png, "layer": args.layer, "towers": len(towers),
        "kernels": [len(k) for k in towers], "kernel_shape": list(towers[0].shape[1:]),
        "colour_specificity": spec, "grid_shape": list(grid.shape), "blocks": [list(b) for b in blocks],
        "note": note}, command=args.command_line)
    for i, (k, s) in enumerate(zip(towers, spec), start=1):
        print(f"tower {i}: {len(k)} kernels {'x'.join(map(str, k.shape[1:]))}, colour specificity {s:.3f} "
              "(0: grey, 1: pure colour contrast; random kernels 0.667)")
    if note:
        print(note)
    print(f"figure: {png}\nrecord: {record}")
    return 0


def _digits():
    from ..experiments.data import digits_uint8

    return digits_uint8(0)


def _read_images(specs, size):
    """uint8 (N, size, size, 3) and the known labels (-1 where unknown) of IMAGE arguments."""
    from . import UsageError
    from .predict import decode

    images, labels, names = [], [], []
    digits = None
    for s in specs:
        if s.startswith(DIGITS + ":"):
            digits = digits or _digits()
            try:
                i = int(s.split(":", 1)[1])
                img, lab = digits[2][i], int(digits[3][i])
            except (ValueError, IndexError):
                raise UsageError(f"{s}: not digits:N with N a validation image index "
                                 f"(0..{len(digits[3]) - 1})") from None
            if img.shape[0] != size:
                raise UsageError(f"{s}: the digits are 32x32, the checkpoint reads {size}x{size} images")
            images.append(img)
            labels.append(lab)
        else:
            images.append(decode(s, size))
            labels.append(None)
        names.append(s)
    return np.stack(images), labels, names


def run_top5(args):
    from ..experiments import top5
    from ..experiments.plotting import write_record
    from . import UsageError

    ck = _load(args)
    size, transform = _transform(ck)
    classes = ck.extra.get("classes")
    n_out = ck.net.shapes[ck.net.output_name][-1]
    if not classes or len(classes) != n_out:
        raise UsageError(f"{args.checkpoint}: carries no class names for its {n_out} outputs")
    images, labels, names = _read_images(args.images, size)
    given = None if args.labels is None else [c.strip() for c in args.labels.split(",")]
    if given is not None and len(given) != len(names):
        raise UsageError(f"--labels: {len(given)} names for {len(names)} images")
    for j, name in enumerate(names):
        want = given[j] if given is not None else (
            os.path.basename(os.path.dirname(os.path.abspath(name))) if labels[j] is None else None)
        if want is not None and want != "":
            if want in classes:
                labels[j] = classes.index(want)
            elif given is not None:
                raise UsageError(f"--labels: {want!r} is not one of the checkpoint's classes")
    labels = [-1 if lab is None else lab for lab in labels]
    probs = top5.predict(ck.net, transform, images)
    png = os.path.join(args.out, "top5.png")
    _, (idx, p) = top5.plot(images, probs, classes, labels, png)
    known = [j for j, lab in enumerate(labels) if lab >= 0]
    rows = [{"image": names[j], "label": None if labels[j] < 0 else classes[labels[j]],
             "top5": [{"class": classes[int(c)], "probability": float(q)} for c, q in zip(idx[j], p[j])]}
            for j in range(len(names))]
    record = write_record(args.out, "top5", {
        "kind": "top5", "png": png, "images": rows, "known": len(known),
        **{f"correct_top{k}": n for k, n in top5.correct_counts(probs, labels, (1, 5)).items()}},
        command=args.command_line)
    for r in rows:
        print(f"{r['image']}" + (f" (label {r['label']})" if r["label"] is not None else ""))
        for rank, e in enumerate(r["top5"], start=1):
            print(f"  {rank}. {e['class']:<12} {e['probability']:.4f}")
    print(f"figure: {png}\nrecord: {record}")
    return 0


def run_neighbours(args):
    from ..experiments import neighbours
    from ..experiments.plotting import write_record
    from . import UsageError
    from .common import open_store, subset

    if args.queries < 1 or args.k < 1 or args.chunk < 1:
        raise UsageError("--queries, --k and --chunk must be >= 1")
    ck = _load(args)
    size, transform = _transform(ck)
    if args.store == DIGITS:
        xt, yt, xv, yv, _ = _digits()
        split = args.query_split or "val"
        if split not in ("train", "val"):
            raise UsageError(f"--query-split: the digits have train and val, not {split!r}")
        db, db_labels = xt, yt
        q_all, q_labels_all = (xt, yt) if split == "train" else (xv, yv)
    else:
        from ..data.store import read_manifest

        train = open_store(args.store, "train")
        splits = read_manifest(args.store).get("splits", {})
        split = args.query_split or next((s for s in ("val", "validation", "test") if s in splits), "train")
        qs = train if split == "train" else open_store(args.store, split)
        db, db_labels, q_all, q_labels_all = train.images, train.labels, qs.images, qs.labels
    if db.shape[1] != size:
        raise UsageError(f"{args.store}: {db.shape[1]}x{db.shape[1]} images, the checkpoint reads {size}x{size}")
    if len(db) < args.k:
        raise UsageError(f"{args.store}: {len(db)} training images, fewer than --k {args.k}")
    pick = subset(len(q_all), args.queries)
    pick = np.arange(len(q_all)) if pick is None else pick
    queries, q_labels = np.asarray(q_all[pick]), np.asarray(q_labels_all)[pick]
    layer = args.layer or neighbours.last_hidden_layer(ck.net)
    try:
        idx, dist = neighbours.nearest(ck.net, transform, queries, db, k=args.k, layer=layer, chunk=args.chunk)
    except ValueError as e:
        raise UsageError(str(e)) from None
    png = os.path.join(args.out, "neighbours.png")
    neighbours.plot(queries, db, idx, dist, png, layer=layer)
    db_labels = np.asarray(db_labels)
    same = int((db_labels[idx] == q_labels[:, None]).sum())
    record = write_record(args.out, "neighbours", {
        "kind": "neighbours", "png": png, "layer": layer, "queries": len(pick), "k": args.k,
        "database": len(db), "query_split": split, "query_indices": [int(i) for i in pick],
        "neighbours": idx.tolist(), "distances": dist.tolist(), "same_label": same}, command=args.command_line)
    for r in range(len(pick)):
        print(f"query {split}[{int(pick[r])}]: " + ", ".join(f"train[{int(i)}] {d:.3f}"
                                                             for i, d in zip(idx[r], dist[r])))
    print(f"{same} of {idx.size} neighbours share the query's label")
    print(f"figure: {png}\nrecord: {record}")
    return 0
