"""The layering the design card fixes: core/ knows nothing of bot/ or Telegram; flows know nothing of aiogram."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("core", {"bot", "aiogram", "telegram"}), ("bot/flows", {"aiogram", "telegram"})],
)
def test_layer_imports(folder: str, forbidden: set[str]) -> None:
    files = list((ROOT / folder).rglob("*.py"))
    assert files, f"{folder} has no Python files"
    offenders = {str(f.relative_to(ROOT)): imported_modules(f) & forbidden for f in files}
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import os\nfrom aiogram.types import Message\nfrom . import sibling\n", encoding="utf-8")
    assert imported_modules(sample) == {"os", "aiogram"}


def test_every_filter_and_handler_runs_on_the_event_loop() -> None:
    """aiogram runs a synchronous filter or handler in a worker thread on every update (bot/handlers/filters.py)."""
    from aiogram import Router

    from bot.handlers import admin, agent, console_login, participant

    routers: list[Router] = [participant.router, agent.router, admin.make_router(), console_login.make_router()]
    synchronous = []
    for router in routers:
        for name, observer in router.observers.items():
            for handler in observer.handlers:
                for obj in (handler, *(handler.filters or [])):
                    if not obj.awaitable:
                        synchronous.append(f"{router.name}.{name}: {obj.callback!r}")
            for obj in observer._handler.filters or []:
                if not obj.awaitable:
                    synchronous.append(f"{router.name}.{name} (router filter): {obj.callback!r}")
    assert synchronous == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports, at the top or inside a function; what only a type checker reads (under
    `if TYPE_CHECKING:`) is left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in checking_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
    return found - {_module_name(path)}


def test_no_import_cycles() -> None:
    """Two modules that import each other cannot be understood, tested or moved apart (the CLI and its stats
    command did, and so did the import backends and the import spec)."""
    files = [f for folder in ("core", "bot") for f in (ROOT / folder).rglob("*.py") if "migrations" not in f.parts]
    modules = {_module_name(f) for f in files}
    graph = {_module_name(f): project_imports(f, modules) for f in files}
    # A package imports its own submodules (bot.cli registers its command groups): that is not a cycle.
    edges = {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(edges.get(module, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_test_modules_do_not_import_each_other() -> None:
    """Shared test machinery lives in modules of its own (tests/harness.py, the tests/fake_bot_api package, …): a
    test module importing another one runs that one's module fixtures and marks, and the two cannot be changed apart."""
    offenders = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests.test_")
        }
        if imported:
            offenders[path.name] = sorted(imported)
    assert offenders == {}
