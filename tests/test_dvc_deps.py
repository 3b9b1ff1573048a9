"""dvc.yaml lists, for each stage, the library modules its script imports: a module left out
would let `dvc repro` keep outputs that a change to it makes stale."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# Read only under a setting, and left out on purpose (dvc.yaml says why, at the stage).
OPTIONAL = {"train": {f"stages/common/{m}.py" for m in ("copymove", "dense", "exact", "extent", "keypoint", "masks", "objects")}}


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name, or None for a module from elsewhere."""
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_files(path: Path) -> set[Path]:
    """The project files `path` imports, at module level or inside functions."""
    package = path.relative_to(ROOT).parent.parts  # a module's package, or an __init__'s own
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import x` imports module x
    return {f for f in map(module_file, names) if f is not None}


def transitive_imports(script: Path) -> set[Path]:
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path))
    return seen


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == ROOT / dep or (ROOT / dep) in path.parents for dep in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_module_is_a_dependency(name):
    stage = STAGES[name]
    script = module_file(stage["cmd"].split()[2])  # python -m stages.<module> ...
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    missing = sorted(str(p.relative_to(ROOT)) for p in transitive_imports(script)
                     if p.name != "__init__.py" and not covered(p, deps)
                     and str(p.relative_to(ROOT)) not in OPTIONAL.get(name, set()))
    assert not missing, f"stage {name} imports modules dvc.yaml does not list: {missing}"
