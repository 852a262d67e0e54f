"""Every `quote_*` package lives at `<component>/<import name>/`, so a checkout maps imports to files.

Static tools (import graphs, IDEs without the editable install, `python -m` from a clean checkout)
resolve `quote_serving.engine.port` to `serving/quote_serving/engine/port.py` only if the folder carries
the import name. This walks the checkout, not the installed metadata, so a package-dir remap fails it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = {
    "quote_mod_sdk": ROOT,  # the SDK's own distribution: quote_mod_sdk/ at the top
    "quote_serving": ROOT / "serving",
    "quote_registry": ROOT / "registry",
    "quote_cli": ROOT / "cli",
    "quote_operator": ROOT / "operator",
}
SKIP = {".git", ".venv", "node_modules", "build", "__pycache__"}


def _python_files(top: Path) -> list[Path]:
    return [p for p in top.rglob("*.py") if not SKIP.intersection(p.relative_to(ROOT).parts)]


def test_each_package_sits_under_its_import_name() -> None:
    for name, component in COMPONENTS.items():
        package = component / name
        assert (package / "__init__.py").is_file(), f"{name} must live in {package.relative_to(ROOT)}/"


def test_component_folders_hold_nothing_but_their_package() -> None:
    for name, component in COMPONENTS.items():
        if component == ROOT:
            continue
        stray = [
            p.relative_to(ROOT) for p in _python_files(component) if name not in p.relative_to(component).parts[:1]
        ]
        assert not stray, f"Python files outside {component.name}/{name}/: {stray}"


def test_every_quote_import_resolves_to_a_file_in_the_checkout() -> None:
    """Each `quote_*` module imported anywhere in the tree is a file at its import path."""
    pattern = re.compile(r"^quote_(mod_sdk|serving|registry|cli|operator)\b")
    missing: set[str] = set()
    seen = 0
    for path in _python_files(ROOT):
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            for module in modules:
                if not pattern.match(module):
                    continue
                seen += 1
                top = module.split(".")[0]
                base = COMPONENTS[top] / Path(*module.split("."))
                if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
                    missing.add(module)
    assert seen > 100, "the walk should see the codebase's own imports"
    assert not missing, f"imports with no file at <component>/<import path>: {sorted(missing)}"


def test_no_package_dir_remapping_in_pyproject() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert "package-dir =" not in text and "[tool.setuptools.package-dir]" not in text, (
        "packages are found under their import names, never remapped"
    )


def test_readme_folder_table_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text()
    for folder in re.findall(r"^\| `([^`]+/)`", readme, flags=re.M):
        assert (ROOT / folder).is_dir(), f"README names {folder}, which is not in the tree"
    for name, component in COMPONENTS.items():
        if component != ROOT:
            assert f"`{component.name}/{name}/`" in readme, f"README's table should say where {name} lives"
