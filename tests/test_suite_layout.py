"""The suite's shape: test modules share code through `tests.support` only, never by
importing one another or `conftest` (an import chain between test modules runs their
module-level set-up twice and hides which file a helper belongs to)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, anywhere in the file (also inside functions)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):  # relative: `from . import test_x`
            base = ".".join(["tests", *(node.module or "").split(".")]).rstrip(".")
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def forbidden(name: str) -> bool:
    parts = name.split(".")
    return (
        len(parts) >= 2
        and parts[0] == "tests"
        and (parts[1] == "conftest" or parts[1].startswith("test_"))
    )


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    found = {
        path.name: sorted({name for name in imported_modules(path) if forbidden(name)})
        for path in sorted([*TESTS.glob("test_*.py"), *TESTS.glob("support/*.py")])
    }
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_the_check_sees_each_kind_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import tests.test_a\n"
        "from tests.test_b import x\n"
        "from tests import test_c, conftest\n"
        "from tests.conftest import make_config\n"
        "from . import test_d\n"
        "def f():\n    from tests.test_e import y\n"
        "from tests.support.config import make_config\n"
        "from tests.fakes.chat import ChatRecorder\n"
    )
    bad = sorted({name for name in imported_modules(sample) if forbidden(name)})
    assert bad == [
        "tests.conftest",
        "tests.conftest.make_config",
        "tests.test_a",
        "tests.test_b",
        "tests.test_b.x",
        "tests.test_c",
        "tests.test_d",
        "tests.test_e",
        "tests.test_e.y",
    ]
