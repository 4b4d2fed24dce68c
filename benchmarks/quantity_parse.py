"""Quantity parsing: the official client's ``kubernetes.utils.parse_quantity``, as
neurokube/k8s/quantity.py wraps it (the apiserver's grammar checked, exact decimal context,
negative and absurd values refused, rounded up to millicores or bytes), against the hand-written
``Fraction`` parser the module had before (kept here as the baseline).

Usage: .venv/bin/python benchmarks/quantity_parse.py [--repeats 7] [--no-write]
Writes the "quantity-parse" section of docs/BENCHMARKS.md. Each number is the median of
``--repeats`` timeit runs over a realistic mix of request strings ("100m", "2", "1.5", "512Mi",
"1Gi", "250M", "1e3", "0.5Ki"), per string:

* uncached: one parse and rounding per string, no memo (what a string never seen before costs);
* hot path: ``cpu_milli`` / ``memory_bytes`` as the pod cache calls them for every pod, both
  memoised the same way (a cluster repeats a few dozen distinct strings).
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import statistics
import sys
import timeit
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from neurokube.k8s import quantity  # noqa: E402

MIX = ("100m", "2", "1.5", "512Mi", "1Gi", "250M", "1e3", "0.5Ki")
CPU = frozenset(("100m", "2", "1.5", "1e3"))

# -- the baseline: the hand-written parser (exact Fractions) ----------------------------------------
_GRAMMAR = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def hand_value(text: str) -> Fraction | str:
    match = _GRAMMAR.match(text)
    if match is None:
        return "is not a Kubernetes quantity"
    sign, number, suffix = match.group(1), match.group(2), match.group(3) or ""
    value = Fraction(number)
    if sign == "-" and value != 0:
        return "is negative"
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    if exponent > quantity.MAX_EXPONENT:
        return "is absurdly large"
    if exponent < -quantity.MAX_EXPONENT:
        return Fraction(0) if value == 0 else Fraction(1, 10**quantity.MAX_EXPONENT)
    return value * Fraction(10) ** exponent


def hand_scaled(text: str, scale: int) -> int | None:
    if len(text) > quantity.MAX_TEXT:
        return None
    value = hand_value(text)
    if isinstance(value, str):
        return None
    scaled = math.ceil(value * scale)
    return scaled if scaled <= quantity.INT64_MAX else None


hand_scaled_memo = functools.lru_cache(maxsize=4096)(hand_scaled)


def hand_cpu_milli(text: object) -> int | None:  # the old entry points' fast path
    return hand_scaled_memo(text, 1000) if isinstance(text, str) else None


def hand_memory_bytes(text: object) -> int | None:
    return hand_scaled_memo(text, 1) if isinstance(text, str) else None


# -- the module: kubernetes.utils.parse_quantity, wrapped --------------------------------------------
wrapped_value = quantity._value.__wrapped__  # the module's parser without its memo
wrapped_scaled = quantity._scaled.__wrapped__


def median_ns(fn, repeats: int, number: int) -> float:
    """Median over ``repeats`` runs of the time per string of ``fn`` (which handles all of MIX), ns."""
    return statistics.median(timeit.repeat(fn, repeat=repeats, number=number)) / number / len(MIX) * 1e9


def measure(repeats: int) -> list[tuple[str, float, float]]:
    scales = [(t, 1000 if t in CPU else 1) for t in MIX]
    for t, s in scales:  # both agree on the mix, else the comparison is meaningless
        assert hand_scaled(t, s) == wrapped_scaled(t, s), t

    def cold_hand() -> None:
        for t, s in scales:
            hand_scaled(t, s)

    def cold_wrapped() -> None:
        for t, s in scales:
            wrapped_scaled(t, s)

    def hot_hand() -> None:
        for t, s in scales:
            hand_cpu_milli(t) if s == 1000 else hand_memory_bytes(t)

    def hot_wrapped() -> None:
        for t, s in scales:
            quantity.cpu_milli(t) if s == 1000 else quantity.memory_bytes(t)

    return [("uncached: parse and round", median_ns(cold_hand, repeats, 5000), median_ns(cold_wrapped, repeats, 5000)),
            ("hot path: memoised cpu_milli / memory_bytes", median_ns(hot_hand, repeats, 50000),
             median_ns(hot_wrapped, repeats, 50000))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    rows = measure(args.repeats)
    lines = ["| measurement | hand-written (Fraction), ns per string | kubernetes.utils.parse_quantity wrapped, "
             "ns per string | ratio (parse_quantity / hand-written) |", "|---|---:|---:|---:|"]
    for name, hand, k8s in rows:
        lines.append(f"| {name} | {hand:,.0f} | {k8s:,.0f} | {k8s / hand:.2f}x |")
    body = ("Strings: " + ", ".join(f"`{t}`" for t in MIX) + f". Median of {args.repeats} timeit runs. "
            "neurokube/k8s/quantity.py uses parse_quantity (wrapped) since this measurement.\n\n" + "\n".join(lines))
    print(body)
    if not args.no_write:
        path = write_section("quantity-parse", "Quantity parsing", "python benchmarks/quantity_parse.py", body)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
