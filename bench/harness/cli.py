"""The command-line options every benchmark takes."""

from __future__ import annotations


def common_args(ap, *, default_budget):
    ap.add_argument("--backend", default="auto", choices=("auto", "cpu", "emu", "cuda"),
                    help="whose kernels are 'ours' (auto: cuda when usable, else cpu)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one call each (CI)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--time-budget", type=float, default=default_budget,
                    help="seconds of timed calls per measurement (default %(default)s)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    ap.add_argument("--seed", type=int, default=2012)
