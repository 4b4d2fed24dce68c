"""Kubernetes quantities: the apiserver's grammar, exact values rounded up to millicores and
bytes like MilliValue()/Value(), and a clear InputError for malformed, negative or absurd ones."""

import math
from fractions import Fraction

import pytest

from neurokube.errors import InputError
from neurokube.k8s.quantity import count, cpu_milli, memory_bytes, mib_down, mib_up, parse_quantity


@pytest.mark.parametrize("text, milli", [
    ("100m", 100), ("1", 1000), ("1.5", 1500), ("0.1", 100), (".5", 500), ("2.", 2000), ("1e3", 1_000_000),
    ("1E-3", 1), ("1.0001", 1001), ("250u", 1), ("1n", 1), ("0", 0), ("+2", 2000), ("-0", 0), ("32", 32000),
    ("1k", 1_000_000), (2, 2000), (0.25, 250),
])
def test_cpu_in_millicores_rounded_up(text, milli):
    assert cpu_milli(text) == milli


@pytest.mark.parametrize("text, n_bytes", [
    ("128Mi", 128 * 2**20), ("2Gi", 2 * 2**30), ("500M", 500_000_000), ("1e3", 1000), ("1.5Gi", 3 * 2**29),
    ("1Ki", 1024), ("100", 100), ("0.5", 1), ("1Ei", 2**60), ("1k", 1000), ("7E", 7 * 10**18),
])
def test_memory_in_bytes_rounded_up(text, n_bytes):
    assert memory_bytes(text) == n_bytes


@pytest.mark.parametrize("text, why", [
    ("-1", "negative"), ("-100m", "negative"), ("abc", "not a Kubernetes quantity"), ("", "not a Kubernetes"),
    ("1.2.3", "not a Kubernetes"), ("Mi", "not a Kubernetes"), ("1 Gi", "not a Kubernetes"),
    ("1GB", "not a Kubernetes"), ("0x10", "not a Kubernetes"), ("1e30", "absurdly large"),
    ("1e999999", "absurdly large"), ("9Ei", "absurdly large"), ("1" * 80, "too long"), (None, "must be a string"),
    (True, "must be a string"), ([], "must be a string"), (float("nan"), "not a finite"), ("1e", "not a Kubernetes"),
])
def test_bad_quantities_are_input_errors(text, why):
    with pytest.raises(InputError, match=why):
        memory_bytes(text)


def test_cpu_overflowing_int64_millicores_is_absurd():
    assert cpu_milli("9e15") == 9 * 10**18
    with pytest.raises(InputError, match="absurdly large"):
        cpu_milli("1e16")


def test_exact_and_helpers():
    assert parse_quantity("1.1") == Fraction(11, 10)
    assert count("110") == 110 and count("1.5") == 1
    assert mib_up(2**20 + 1) == 2 and mib_up(2**20) == 1 and mib_down(2**21 - 1) == 1


def test_the_field_is_named_in_the_message():
    with pytest.raises(InputError, match="spec.x.cpu 'lots'"):
        cpu_milli("lots", "spec.x.cpu")


# -- generated quantities against an exact oracle built from their parts ----------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SUFFIX = {"": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
           "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
           "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
           "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60)}


@st.composite
def quantities(draw):
    """(text, exact value): digits (long mantissas too), an optional fraction, and a suffix or exponent."""
    whole = draw(st.text("0123456789", min_size=1, max_size=30))
    frac = draw(st.text("0123456789", max_size=30))
    number = f"{whole}.{frac}" if frac or draw(st.booleans()) else whole
    value = Fraction(int(whole)) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    if draw(st.booleans()):
        suffix = draw(st.sampled_from(sorted(_SUFFIX)))
        scale = _SUFFIX[suffix]
    else:
        exponent = draw(st.integers(-12, 12))
        suffix = draw(st.sampled_from(["e", "E"])) + (f"+{exponent}" if exponent >= 0 and draw(st.booleans())
                                                       else str(exponent))
        scale = Fraction(10) ** exponent
    return number + suffix, value * scale


@given(quantities())
def test_generated_quantities_are_exact_and_rounded_up(case):
    text, exact = case
    milli, n_bytes = math.ceil(exact * 1000), math.ceil(exact)
    if milli > 2**63 - 1:
        with pytest.raises(InputError, match="absurdly large"):
            cpu_milli(text)
    else:
        assert cpu_milli(text) == milli
    if n_bytes <= 2**63 - 1:
        assert memory_bytes(text) == n_bytes and parse_quantity(text) == exact
