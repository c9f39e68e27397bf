"""Imports flow one way: streams -> engine, alerts, audit, playbooks, schemas; alerts and
audit -> schemas; playbooks -> engine, schemas; engine and schemas import nothing of ours
(function-level imports included)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"engine", "streams", "schemas", "alerts", "audit", "playbooks"}
ALLOWED = {
    "engine": set(),
    "schemas": set(),
    "alerts": {"schemas"},
    "audit": {"schemas"},
    "playbooks": {"engine", "schemas"},
    "streams": OURS - {"streams"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_its_layer_may(package):
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in OURS and top != package:
                    found.setdefault(top, []).append(path.relative_to(ROOT).as_posix())
    assert set(found) <= ALLOWED[package], {
        k: v for k, v in found.items() if k not in ALLOWED[package]
    }
