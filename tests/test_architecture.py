"""The house's rules, read from the code's own import lines: every arrow between rooms points
down the floors below, our modules are imported at the top of a module (a function-level
import needs a comment above it naming the cycle or start-up cost it avoids), and the
package's top level stays small. A room is a top-level module or a top-level folder."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "cleargro_pipeline"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Bottom to top: a room may import only rooms on a lower floor (or itself).
FLOORS = [
    {"settings", "errors", "durable"},
    {"locks"},
    {"security"},
    {"tenants"},
    {"sources"},
    {"demo"},
    {"warehouse"},
    {"bootstrap"},
    {"reports"},
    {"controls"},
    {"privacy"},
    {"app"},  # the service: webhooks (privacy, controls) and the Shopify install (sources)
    {"ingest"},
    {"alerts"},
    {"orchestration"},
    {"defs"},
    {"definitions"},
    {"runner"},
    {"benchmarks"},  # below bench: `make bench` times a tenant through the instance with it
    {"evaluation", "bench"},
    {"cli"},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
MAX_TOP_LEVEL_MODULES = 12


def _room(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imported_rooms(node: ast.AST) -> list[str]:
    """The rooms an import statement names (`from cleargro_pipeline import x` names room x)."""
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        parts = node.module.split(".")
        if parts[0] != PACKAGE:
            return []
        return [a.name for a in node.names] if len(parts) == 1 else [parts[1]]
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + ".")]
    return []


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _function_level_imports(path: Path) -> list[ast.stmt]:
    tree = ast.parse(path.read_text())
    inner = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner += [n for n in ast.walk(function) if _imported_rooms(n)]
    return inner


def test_every_room_has_a_floor():
    rooms = {_room(p) for p in _modules()} - {"__init__"}
    assert rooms - set(FLOOR) == set(), "add the new room to FLOORS"


def test_no_room_imports_a_room_above_it():
    upward = []
    for path in _modules():
        room = _room(path)
        if room == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _imported_rooms(node):
                if target != room and FLOOR[target] >= FLOOR[room]:
                    upward.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert upward == []


def test_function_level_imports_say_why():
    unexplained = []
    for path in _modules():
        lines = path.read_text().splitlines()
        for node in _function_level_imports(path):
            above = lines[node.lineno - 2].strip()
            if not above.startswith("#"):
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unexplained == []


def test_the_top_level_stays_small():
    modules = [p.name for p in ROOT.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, sorted(modules)
