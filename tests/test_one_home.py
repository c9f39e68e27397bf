"""Every small formula has one home: the forward, the discount factor and Black's d1 in
``engine.blackscholes``, a quote's mid in ``schemas.mid``. A copy written inline elsewhere
fails here (aside: schemas/bounds.py, whose layer imports no engine, and bench/stream.py, whose
naive peer computes with QuantLib and ``math``, apart from the engine it is compared with)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "streams", "schemas", "alerts", "audit", "playbooks", "bench")
PEER = ("bench/stream.py",)
COPIES = {  # formula -> (a pattern of an inline copy, a copy it catches, its home, files allowed)
    "forward S e^{(r-q)T}": (
        r"exp\(\((self\.)?(r|rate|rates|carry)\b[^)]*-[^)]*\)\s*\*",
        "spot * jnp.exp((rate - dividend) * expiry)", "engine/blackscholes.py", PEER,
    ),
    "discount e^{-rT}": (
        r"exp\(-\s*(np\.asarray\()?(\w+\.)?(r|rate|rates)\b", "np.exp(-o.rate * o.t)",
        "engine/blackscholes.py", ("schemas/bounds.py", *PEER),
    ),
    "Black's d1": (
        r"log\([^)]*/[^)]*\)\s*/\s*\(?[\w. *()]+\)?\s*\+\s*0\.5\s*\*",
        "np.log(o.forward / o.k) / (vol * np.sqrt(o.t)) + 0.5 * vol * np.sqrt(o.t)",
        "engine/blackscholes.py", PEER,
    ),
    "a quote's mid": (
        r"0\.5\s*\*\s*\((\w+\[?\"?)?\w*bid\w*", '0.5 * (num["bid_price"] + num["ask_price"])',
        "schemas/quote_rules.py", (),
    ),
}  # fmt: skip


@pytest.mark.parametrize("formula", sorted(COPIES))
def test_a_formula_is_written_once(formula):
    pattern, copy, home, allowed = COPIES[formula]
    assert re.search(pattern, copy)  # the pattern finds what a copy looks like
    found = [
        f"{path.relative_to(ROOT).as_posix()}:{i}: {line.strip()}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT).as_posix() not in (home, *allowed)
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not found, f"{formula} has a home, {home}: use it in\n" + "\n".join(found)


def _imported(source: str) -> list[str]:
    """The names every ``from ... import ...`` statement of ``source`` takes."""
    statements = re.findall(r"^from\s+[\w.]+\s+import\s+(\([^)]*\)|.*)$", source, re.M)
    return [n for s in statements for n in re.findall(r"(\w+)(?:\s+as\s+\w+)?", s)]


def test_no_module_imports_another_modules_private_names():
    """A private name is its module's business: what a second module needs is made public
    (the Heston problem and packing, shared by the joint and time-dependent fits, are)."""
    sample = "from engine.heston.calibrator import (\n    HestonSurface,\n    _errors,\n)\n"
    assert _imported(sample) == ["HestonSurface", "_errors"]
    found = [
        f"{path.relative_to(ROOT).as_posix()}: {name}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in _imported(path.read_text())
        if name.startswith("_") and name != "__future__"
    ]
    assert not found, "private names imported across modules:\n" + "\n".join(found)
