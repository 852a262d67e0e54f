"""Mods travel as source, never pickles: `serialize_mod` bundles them, `load_mod` runs them.

A bundle is a JSON object:

    {"language": "python", "module": "my_mod", "entrypoint": "my_mod", "source": "...",
     "name": "my_mod", "description": "...", "files": {"helpers.py": "..."}}   # files optional

`files` makes multi-file bundles: the main module may `import helpers` (or `from . import x`
inside packages). Each loaded bundle gets its own import namespace (its modules are registered
as `_quote_bundles.<digest>.<name>`), so two tenants' `helpers.py` never collide.
`bundle_digest` is the canonical sha256 the registry stores and signatures cover.
"""

from __future__ import annotations

import builtins
import hashlib
import inspect
import json
import linecache
import re
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quote_mod_sdk import max_compat
from quote_mod_sdk.errors import SerializationError
from quote_mod_sdk.mod import Mod, as_mod
from quote_mod_sdk.names import InvalidName, check_mod_name

__all__ = [
    "bundle_digest",
    "canonical_bundle",
    "load_bundle_module",
    "load_mod",
    "serialize_directory",
    "serialize_mod",
]

BUNDLE_FIELDS = ("language", "module", "entrypoint", "source", "name", "description", "files")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def serialize_mod(
    fn: Any,
    name: str | None = None,
    *,
    description: str | None = None,
    files: Sequence[str | Path] | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Bundle the source file that defines `fn` (plus optional extra `files`) as a JSON-able dict."""
    target = fn.fn if isinstance(fn, Mod) else fn
    # A Mod's own __module__ is where it was made (self_prompt_mod sets it to its caller's).
    module = sys.modules.get(getattr(fn, "__module__", None) or getattr(target, "__module__", "") or "")
    namespace = getattr(target, "__globals__", None)
    same_name = isinstance(namespace, dict) and module is not None and namespace.get("__name__") == module.__name__
    if same_name and namespace is not vars(module):  # same name, another module (a notebook's __main__)
        module = None
    path = getattr(module, "__file__", None)
    try:
        source = inspect.getsource(module) if module is not None and path else None
    except (OSError, TypeError):
        source = None
    label = getattr(fn, "name", None) or getattr(target, "__name__", repr(fn))
    if not source or module is None or not path:
        module, path, source = _unregistered_source(target)
    if not source or module is None or not path:
        raise SerializationError(
            f"cannot serialize mod {label!r}: its source is not retrievable (defined via exec or in a "
            "compiled module); define it in a .py file or a notebook cell"
        )
    module_name = module.__name__ if _IDENT.match(module.__name__) else "mod"
    if module_name == "__main__" or module_name.startswith("__"):
        module_name = Path(path).stem if _IDENT.match(Path(path).stem) else "mod"
    entrypoint = _entrypoint_name(module, fn, target)
    mod_obj = as_mod(fn)
    bundle: dict[str, Any] = {
        "language": "python",
        "module": module_name.rsplit(".", 1)[-1] if files is None else module_name,
        "entrypoint": entrypoint,
        "source": source,
        "name": name or mod_obj.name,
        "description": description if description is not None else mod_obj.description,
    }
    if files:
        bundle["files"] = _read_files(files, Path(path).parent)
    return bundle


def serialize_directory(directory: str | Path, *, entrypoint: str, name: str, description: str = "") -> dict[str, Any]:
    """Bundle every .py file under `directory`; `entrypoint` is "module:attribute"."""
    root = Path(directory)
    module, _, attr = entrypoint.partition(":")
    if not attr:
        raise SerializationError(f"entrypoint must look like 'module:attribute', got {entrypoint!r}")
    files = {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.py"))}
    main_file = module.replace(".", "/") + ".py"
    if main_file not in files:
        raise SerializationError(f"entrypoint module {module!r} is not in {root} (expected {main_file})")
    source = files.pop(main_file)
    bundle = {"language": "python", "module": module, "entrypoint": attr, "source": source, "name": name}
    return {**bundle, "description": description, **({"files": files} if files else {})}


def canonical_bundle(bundle: Mapping[str, Any]) -> bytes:
    """The exact bytes signatures and digests cover: known fields, sorted keys, compact UTF-8 JSON."""
    content = {k: bundle[k] for k in BUNDLE_FIELDS if bundle.get(k) not in (None, {})}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bundle_digest(bundle: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_bundle(bundle)).hexdigest()


def validate_bundle(bundle: Any) -> dict[str, Any]:
    """Check a bundle's shape; raises `SerializationError` naming the bad field."""
    if not isinstance(bundle, Mapping):
        raise SerializationError("a mod bundle must be a JSON object")
    if bundle.get("language", "python") != "python":
        raise SerializationError(f"unsupported mod language {bundle.get('language')!r}; only 'python' runs here")
    for key in ("source", "module", "entrypoint"):
        if not isinstance(bundle.get(key), str) or not bundle.get(key):
            raise SerializationError(f"mod bundle field {key!r} must be a non-empty string")
    if not _IDENT.match(bundle["module"]) or not _IDENT.match(bundle["entrypoint"]):
        raise SerializationError("mod bundle 'module' and 'entrypoint' must be Python identifiers")
    name = bundle.get("name") or bundle["entrypoint"]
    try:
        check_mod_name(name)
    except InvalidName as exc:
        raise SerializationError(str(exc)) from None
    files = bundle.get("files") or {}
    if not isinstance(files, Mapping) or not all(
        isinstance(k, str) and k.endswith(".py") and isinstance(v, str) for k, v in files.items()
    ):
        raise SerializationError("mod bundle 'files' must map relative '.py' paths to source strings")
    return {**bundle, "name": name, "language": "python", "files": dict(files)}


def load_bundle_module(bundle: Mapping[str, Any]) -> types.ModuleType:
    """Execute a bundle's main module in its own namespace and return it (tools list its mods)."""
    spec = validate_bundle(bundle)
    return _BundleNamespace(spec, tag=bundle_digest(spec)[7:19]).import_module(spec["module"])


def load_mod(bundle: Mapping[str, Any]) -> Mod:
    """Execute a bundle in its own namespace and return its entrypoint as a `Mod`."""
    spec = validate_bundle(bundle)
    module = load_bundle_module(spec)
    target = getattr(module, spec["entrypoint"], None)
    if target is None:
        raise SerializationError(f"mod bundle has no attribute {spec['entrypoint']!r} in module {spec['module']!r}")
    return as_mod(target, name=spec["name"]) if not isinstance(target, Mod) else _renamed(target, spec["name"])


def _renamed(target: Mod, name: str) -> Mod:
    target.name = name
    return target


def _unregistered_source(target: Any) -> tuple[types.ModuleType | None, str | None, str | None]:
    """Source of a mod whose module is not in `sys.modules`, from the file its code came from.

    Covers `spec_from_file_location` + `exec_module` without registering (the file is on disk) and
    notebook cells (IPython keeps each cell's text in `linecache` under the code's filename; the
    cell must hold the mod's imports too, since the bundle is that cell alone).
    """
    code = getattr(target, "__code__", None)
    namespace = getattr(target, "__globals__", None)
    if code is None or not isinstance(namespace, dict):
        return None, None, None
    filename = code.co_filename
    source: str | None = None
    if Path(filename).is_file() and filename.endswith(".py"):
        try:
            source = Path(filename).read_text()
        except OSError:
            source = None
    if source is None:
        lines = linecache.getlines(filename, namespace)
        source = "".join(lines) or None
    module = types.ModuleType(str(namespace.get("__name__") or "mod"))
    module.__dict__.update(namespace)
    return module, filename, source


def _entrypoint_name(module: types.ModuleType | None, fn: Any, target: Any) -> str:
    for attr, value in vars(module or {}).items():
        if value is fn or value is target:
            return attr
    return str(getattr(target, "__name__", "mod"))


def _read_files(files: Sequence[str | Path] | Mapping[str, str], base: Path) -> dict[str, str]:
    if isinstance(files, Mapping):
        return {str(k): str(v) for k, v in files.items()}
    out: dict[str, str] = {}
    for item in files:
        path = Path(item) if Path(item).is_absolute() else base / item
        try:
            out[path.relative_to(base).as_posix()] = path.read_text()
        except (OSError, ValueError) as exc:
            raise SerializationError(f"cannot bundle {item}: {exc}") from exc
    return out


class _BundleNamespace:
    """Imports for one bundle: its own modules first, the real import system otherwise."""

    def __init__(self, spec: Mapping[str, Any], tag: str) -> None:
        self.tag = tag
        self.label = spec["name"]
        self.sources: dict[str, str] = {spec["module"]: spec["source"]}
        for rel, source in spec["files"].items():
            mod_name = rel[:-3].replace("/", ".")
            self.sources[mod_name.removesuffix(".__init__")] = source
        self.packages = {name.rsplit(".", 1)[0] for name in self.sources if "." in name}
        self.modules: dict[str, types.ModuleType] = {}
        self.builtins = dict(vars(builtins), __import__=self._import)

    def import_module(self, name: str) -> types.ModuleType:
        if name in self.modules:
            return self.modules[name]
        if name not in self.sources and name not in self.packages:
            raise ModuleNotFoundError(f"No module named {name!r} in mod bundle {self.label!r}")
        # A unique, registered name: stdlib helpers such as @dataclass look classes' modules up in
        # sys.modules, and two bundles' "helpers" must never meet.
        unique = f"_quote_bundles.{self.tag}.{name}"
        module = types.ModuleType(unique)
        module.__dict__["__builtins__"] = self.builtins
        is_package = name in self.packages
        module.__dict__["__quote_package__"] = name if is_package else name.rpartition(".")[0]
        if is_package:
            module.__path__ = []
        self.modules[name] = module
        sys.modules[unique] = module
        source = self.sources.get(name, "")
        filename = f"<quote-mod {self.label}@{self.tag}:{name.replace('.', '/')}.py>"
        module.__file__ = filename
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), module.__dict__)
        except BaseException:
            self.modules.pop(name, None)
            sys.modules.pop(unique, None)
            raise
        return module

    def _owns(self, name: str) -> bool:
        return name in self.sources or name in self.packages

    def _import(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Sequence[str] = (), level: int = 0
    ) -> Any:
        if level:
            package = (globals or {}).get("__quote_package__") or ""
            base = package.rsplit(".", level - 1)[0] if level > 1 else package
            name = f"{base}.{name}" if name else base
        top = name.split(".")[0]
        if not self._owns(top) and not self._owns(name):
            stand_in = max_compat.standin(name)
            if stand_in is not None:
                return stand_in if fromlist else max_compat.standin(top)
            return builtins.__import__(name, globals, locals, fromlist, 0)
        module = self.import_module(name)
        for item in fromlist or ():
            if self._owns(f"{name}.{item}") and not hasattr(module, item):
                setattr(module, item, self.import_module(f"{name}.{item}"))
        if fromlist:
            return module
        return self.import_module(top)
