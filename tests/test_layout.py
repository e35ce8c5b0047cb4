"""The shape of tenants/: packages by concern, imports one way, no cycles, one Alembic adapter, errors in place.

Every import counts, including those inside functions: a cycle hidden in a function is still a cycle.
"""

import ast
import inspect
from pathlib import Path

import pytest

import tenants
from tenants.cli.exit_codes import EXIT_CODES, exit_code_for
from tenants.core.errors import TenantError
from tenants.core.settings import PROJECT_ROOT

TENANTS = PROJECT_ROOT / "tenants"
# Each package may import only the packages after it (and itself).
LAYERS = ["cli", "fleet", "safety", "migrate", "core"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in TENANTS.rglob("*.py")}


def imported(path: Path, name: str) -> set[str]:
    """Return every module name `path` imports, at any depth of its code (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the tenants modules it imports (a name imported from a module counts as that module)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for target in imported(path, name):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        edges[name] = targets
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle as a list of names (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle_through_function_level_imports(tmp_path):
    source = "def f():\n    from tenants.b import x\n"
    path = tmp_path / "a.py"
    path.write_text(source)
    assert "tenants.b.x" in imported(path, "tenants.a")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules():
    assert find_cycle(graph()) is None


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_packages_import_one_way():
    wrong = []
    for module, targets in graph().items():
        mine = package_of(module)
        if mine not in LAYERS:
            continue
        allowed = set(LAYERS[LAYERS.index(mine):])
        wrong += [f"{module} -> {t}" for t in targets if package_of(t) in LAYERS and package_of(t) not in allowed]
    assert wrong == []


def test_tenants_imports_nothing_from_the_web_app():
    offenders = [name for name, path in modules().items()
                 if any(t == "portal" or t.startswith("portal.") for t in imported(path, name))]
    assert offenders == []


def test_only_the_driver_uses_alembics_private_revision_walk():
    users = sorted(module_name(p) for p in [*TENANTS.rglob("*.py"), *(PROJECT_ROOT / "portal").rglob("*.py"),
                                            *(PROJECT_ROOT / "migrations").glob("*.py")]
                   if any(private in p.read_text() for private in ("_upgrade_revs", "_downgrade_revs", "_stamp_revs")))
    assert users == ["tenants.migrate.driver"]


def test_a_handful_of_modules_at_the_top_and_none_over_300_lines():
    top = sorted(p.name for p in TENANTS.glob("*.py"))
    assert top == ["__init__.py"]
    sources = [*TENANTS.rglob("*.py"), *(PROJECT_ROOT / "portal").rglob("*.py")]
    long = [f"{p.relative_to(PROJECT_ROOT)}: {n}" for p in sources if (n := len(p.read_text().splitlines())) > 300]
    assert long == []


def error_classes() -> list[type[TenantError]]:
    """Return every error class of the one hierarchy, each package's errors module imported first.

    Imported here, not by one test: a test that ran alone on its worker missed the classes of
    modules no earlier test there had imported (InvalidStaffInput, in the portal).
    """
    import portal.errors  # noqa: F401  (the web app's errors join the one hierarchy)
    import tenants.fleet.errors  # noqa: F401
    import tenants.migrate.errors  # noqa: F401
    import tenants.safety.errors  # noqa: F401

    found, todo = [], [TenantError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_errors_live_in_each_packages_errors_module_and_have_an_exit_code():
    misplaced = [f"{cls.__module__}.{cls.__name__}" for cls in error_classes()
                 if cls.__module__.startswith(("tenants.", "portal.")) and not cls.__module__.endswith(".errors")]
    assert misplaced == []
    defined = {cls for cls in error_classes() if cls.__module__.startswith("tenants.")}
    assert defined <= set(EXIT_CODES), sorted(c.__name__ for c in defined - set(EXIT_CODES))
    assert not any(hasattr(cls, "exit_code") for cls in error_classes())


@pytest.mark.parametrize("error, code", [
    ("InvalidStaffInput", 2), ("TenantNotFound", 2), ("GateBlocked", 2), ("FleetLocked", 3),
    ("StorageUnavailable", 3), ("MigrationTimeout", 1), ("BackupFailed", 1),
])
def test_exit_code_table_covers_subclasses(error, code):
    cls = next(c for c in error_classes() if c.__name__ == error)
    instance = cls.__new__(cls)
    assert exit_code_for(instance) == code


def test_package_docstrings_say_what_each_package_is_for():
    packages = [p for p in TENANTS.rglob("__init__.py")]
    assert len(packages) >= 6
    for path in packages:
        assert (ast.get_docstring(ast.parse(path.read_text())) or "").strip(), path
    assert inspect.getdoc(tenants)
