"""Which project modules a pipeline script runs, read statically from the source (tests/test_stage_deps.py).

Imports anywhere in a module count (in functions too, not under `if TYPE_CHECKING:`), and importing
`rnnlab.a.b` runs the `__init__` of `rnnlab` and `rnnlab.a`. Of a task module (`rnnlab.tasks.<kind>`), reached
through `task_module(cfg)` or `from rnnlab.tasks.<kind> import x`, only the members used are followed, with
what they reach inside it: sound because project modules only define names when imported (no import-time
effects), and it keeps `download` off the models. A plain `import` of a task module, or the module object
handed on, follows all of it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
TASK_MODULE = "task_module"  # rnnlab.tasks.task_module(cfg) imports rnnlab.tasks.<cfg.task.kind>
Members = dict[str, "set[str] | None"]  # task module -> the members used; None: all of it


@functools.cache
def module_file(name: str) -> Path | None:
    """The source file of module `name` under src/ (a package's `__init__.py`), or None if not one."""
    base = SRC.joinpath(*name.split("."))
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


def parents(module: str) -> list[str]:
    """`rnnlab.a.b` -> rnnlab, rnnlab.a, rnnlab.a.b: importing a module runs each package's `__init__`."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@functools.cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def is_task(module: str) -> bool:
    return module.startswith("rnnlab.tasks.") and module.count(".") == 2


def is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def union(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    return None if a is None or b is None else a | b


def import_bindings(tree: ast.AST, name: str, is_package: bool = False) -> dict[str, set[str]]:
    """{bound name: the rnnlab modules its import runs} for each import in `tree`, the code of `name`."""
    package = name if is_package else name.rpartition(".")[0]
    bindings: dict[str, set[str]] = {}
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.partition(".")[0]
                bindings.setdefault(bound, set()).update(parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                runs = parents(submodule) if module_file(submodule) else parents(base)
                bindings.setdefault(alias.asname or alias.name, set()).update(runs)
        todo += ast.iter_child_nodes(node)
    ours = {bound: {m for m in modules if m.split(".")[0] == "rnnlab"} for bound, modules in bindings.items()}
    return {bound: modules for bound, modules in ours.items() if modules}


def imported_modules(tree: ast.AST, name: str, is_package: bool = False) -> set[str]:
    """The rnnlab modules that running `tree`, the code of module `name`, imports."""
    return set().union(*import_bindings(tree, name, is_package).values())


def scope_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of one scope (a module or a function), without those of the functions defined in it."""
    found, todo = [], list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo += ast.iter_child_nodes(node)
    return found


def name_of(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def task_members(tree: ast.AST) -> set[str] | None:
    """The members of the task module this code uses: `task_module(cfg).x`, or `task = task_module(cfg)` then
    `task.x` in the same function; None when the module object goes anywhere else."""
    members: set[str] = set()
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    for nodes in map(scope_nodes, scopes):
        calls = {id(n) for n in nodes if isinstance(n, ast.Call) and getattr(n.func, "id", "") == TASK_MODULE}
        assigned = [n for n in nodes if isinstance(n, ast.Assign) and id(n.value) in calls]
        names = {target.id for node in assigned for target in node.targets if isinstance(target, ast.Name)}
        handled = {id(node.value) for node in assigned}
        for node in nodes:
            if isinstance(node, ast.Attribute) and (id(node.value) in calls or name_of(node.value) in names):
                members.add(node.attr)
                handled.add(id(node.value))
        loads = {id(n) for n in nodes if name_of(n) in names and isinstance(n.ctx, ast.Load)}
        if (calls | loads) - handled:
            return None
    return members


def task_uses(tree: ast.AST, task_name: str) -> Members:
    """The task modules this code uses, with the members: `task_module(cfg)` (that is `task_name`) and
    `from rnnlab.tasks.<kind> import x`; a plain `import rnnlab.tasks.<kind>`: all of it."""
    found: Members = {}
    dynamic = task_members(tree)
    if dynamic is None or dynamic:
        found[task_name] = dynamic
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and is_task(node.module or ""):
            found[node.module] = union(found.get(node.module, set()), {alias.name for alias in node.names})
        elif isinstance(node, ast.Import):
            found.update({alias.name: None for alias in node.names if is_task(alias.name)})
    return found


def reached_imports(tree: ast.Module, name: str, members: set[str] | None) -> set[str]:
    """The rnnlab modules behind what `members` of module `name` (None: all) call, read or subclass."""
    if members is None:
        return imported_modules(tree, name)
    defined: dict[str, ast.AST] = {}
    words = list(members)  # top-level code other than definitions runs on import: what it names counts
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update({target.id: node for target in targets if isinstance(target, ast.Name)})
        elif not isinstance(node, (ast.Import, ast.ImportFrom)) and not is_docstring(node):
            words += [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    top = import_bindings(ast.Module(body=imports, type_ignores=[]), name)
    modules: set[str] = set()
    seen: set[str] = set()
    while words:
        word = words.pop()
        if word in seen:
            continue
        seen.add(word)
        modules |= top.get(word, set())
        if word in defined:
            modules |= imported_modules(defined[word], name)
            words += [n.id for n in ast.walk(defined[word]) if isinstance(n, ast.Name)]
    return modules


@functools.cache
def facts(path: Path, name: str, task_name: str) -> tuple[frozenset[str], Members]:
    """What module `name` (at `path`) imports, and the task modules it uses with their members."""
    tree = parse(path)
    return frozenset(imported_modules(tree, name, path.name == "__init__.py")), task_uses(tree, task_name)


def closure(script: Path, task_name: str, members: Members, skip) -> tuple[dict[Path, str], Members]:
    """({module file: import chain} reached from the script, following only `members` of each task module,
    never into modules for which `skip(name, path)` holds; the task members the reached code uses)."""
    required: dict[Path, str] = {}
    used: Members = {}
    followed: set[str] = set()
    todo = [("__main__", script, script.name)]
    while todo:
        name, path, chain = todo.pop()
        children, uses = facts(path, name, task_name)
        if is_task(name):
            children = reached_imports(parse(path), name, members.get(name, set()))
        for module, names in uses.items():
            used[module] = union(used.get(module, set()), names)
        for module in sorted(children - uses.keys()) + sorted(uses):
            path = module_file(module)
            if module in followed or path is None or skip(module, path):
                continue
            followed.add(module)
            via = f"{TASK_MODULE}(cfg): " if module not in children else ""
            shown = f"{via}{module}{show(members.get(module, set()))}" if is_task(module) else module
            required[path] = f"{chain} -> {shown}"
            todo.append((module, path, required[path]))
    return required, used


def show(members: set[str] | None) -> str:
    return f"[{', '.join(sorted(members))}]" if members is not None else "[all]"


def required_modules(script: Path, task_kind: str, skip=lambda name, path: False) -> dict[Path, str]:
    """{module file: the import chain from the script} for every project module the script runs, where
    `task_module(cfg)` gives `rnnlab.tasks.<task_kind>`."""
    members: Members = {}
    while True:  # the members used decide what a task module reaches, which may use more members
        required, used = closure(script, f"rnnlab.tasks.{task_kind}", members, skip)
        if used == members:
            return required
        members = used
