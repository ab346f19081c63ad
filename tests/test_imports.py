"""The import contract: layers only import downward, and no module imports itself in a circle.

In the spirit of import-linter's "layers" and "independence" contracts (harlequin declares
its layers that way), read straight from the source with ``ast``: every ``import`` and
``from ... import`` in ``crowdtui/`` and ``qms/``, including the ones inside functions
(a lazy import is still a dependency, it only runs later).

Layers, lowest first; a module may import its own layer and the ones below it:

    qms < terminal < base < roster < runners < runtime < hub < dispatch < channels < host < tui < cli

``base`` holds the small leaf modules every layer may use (errors, text safety, the grant
rule language, the workspace, the process lock, agent folders, secrets); ``host`` is the one
assembly of hub, runtime, roster and dispatch that the console and the CLI start. A failure
names each offending import as ``file:line``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("qms", "crowdtui")

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("qms", ("qms",)),
    ("terminal", ("crowdtui.terminal",)),
    ("base", (
        "=crowdtui",  # the package's face alone (only __version__); "=" means this module only
        "crowdtui.errors",
        "crowdtui.text_safety",
        "crowdtui.grant_rules",
        "crowdtui.process_lock",
        "crowdtui.workspace",
        "crowdtui.agent_folder",
        "crowdtui.secrets",
        "crowdtui.shipped",
        "crowdtui.engine_config",
    )),
    ("roster", ("crowdtui.roster",)),
    ("runners", ("crowdtui.runners",)),
    ("runtime", ("crowdtui.runtime",)),
    ("hub", ("crowdtui.hub",)),
    ("dispatch", ("crowdtui.dispatch",)),
    ("channels", ("crowdtui.channels",)),
    ("host", ("crowdtui.host", "crowdtui.host_relay")),
    ("tui", ("crowdtui.tui",)),
    ("cli", ("crowdtui.cli", "crowdtui.__main__")),
]


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (a submodule where ``from pkg import sub`` names one)
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def read_imports(files: dict[str, Path]) -> list[Import]:
    """Every import of a module of ours, wherever it stands in the file."""
    found: list[Import] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                origin = _resolve(module, node, is_package)
                for alias in node.names:
                    sub = f"{origin}.{alias.name}"
                    targets.append(sub if sub in files else origin)
            for target in targets:
                if target.split(".")[0] not in PACKAGES:
                    continue
                # ``import a.b.c`` of something that is not a file of ours: nearest module
                while target not in files and "." in target:
                    target = target.rsplit(".", 1)[0]
                imp = Import(module, target, path, node.lineno)
                if target != module and imp not in found:
                    found.append(imp)
    return found


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix.startswith("="):
                matches = module == prefix[1:]
            else:
                matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def upward_imports(imports: list[Import]) -> list[Import]:
    return [i for i in imports if layer_of(i.target) > layer_of(i.source)]


def cycles(imports: list[Import]) -> list[list[Import]]:
    """Strongly connected components of the module graph, each given as one loop of imports."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        graph.setdefault(imp.source, {}).setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan; the graph is small enough for recursion
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)

    loops = []
    for component in components:
        start = min(component)
        # breadth-first from start back to start inside the component: the shortest loop
        paths: dict[str, list[Import]] = {start: []}
        frontier = [start]
        loop: list[Import] | None = None
        while frontier and loop is None:
            following = []
            for node in frontier:
                for nxt, imp in sorted(graph.get(node, {}).items()):
                    if nxt not in component:
                        continue
                    if nxt == start:
                        loop = paths[node] + [imp]
                        break
                    if nxt not in paths:
                        paths[nxt] = paths[node] + [imp]
                        following.append(nxt)
                if loop is not None:
                    break
            frontier = following
        loops.append(loop or [])
    return loops


FILES = module_files()
IMPORTS = read_imports(FILES)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in FILES if layer_of(m) < 0)
    assert not unplaced, f"modules in no layer (add them to LAYERS in {Path(__file__).name}): {unplaced}"


def test_imports_only_run_downward():
    upward = upward_imports(IMPORTS)
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"  {i.where()}: {i.source} ({LAYERS[layer_of(i.source)][0]}) imports "
        f"{i.target} ({LAYERS[layer_of(i.target)][0]})"
        for i in upward
    )


def test_no_module_imports_itself_in_a_circle():
    loops = cycles(IMPORTS)
    assert not loops, "import cycles:\n" + "\n".join(
        "  " + " -> ".join(f"{i.source} ({i.where()})" for i in loop) + f" -> {loop[0].source}"
        for loop in loops
    )


def test_qms_imports_nothing_of_crowdtui():
    wrong = [i for i in IMPORTS if i.source.split(".")[0] == "qms" and i.target.split(".")[0] != "qms"]
    assert not wrong, "\n".join(f"  {i.where()}: {i.source} imports {i.target}" for i in wrong)


# The checks themselves must be able to fail: run them on a made-up graph.

def _fake(source: str, target: str, line: int = 1) -> Import:
    return Import(source, target, ROOT / "crowdtui" / "x.py", line)


def test_the_layer_check_catches_an_upward_import():
    caught = upward_imports([_fake("crowdtui.roster", "crowdtui.hub.grants", 435),
                             _fake("crowdtui.hub.grants", "crowdtui.roster", 12)])
    assert [(i.source, i.target, i.line) for i in caught] == [("crowdtui.roster", "crowdtui.hub.grants", 435)]
    assert caught[0].where() == "crowdtui/x.py:435"


def test_the_cycle_check_catches_a_loop_through_a_lazy_import():
    loops = cycles([_fake("crowdtui.runtime.containers", "crowdtui.runtime.logs"),
                    _fake("crowdtui.runtime.logs", "crowdtui.runtime.containers"),
                    _fake("crowdtui.runtime.logs", "crowdtui.errors")])
    assert len(loops) == 1
    assert {i.source for i in loops[0]} == {"crowdtui.runtime.containers", "crowdtui.runtime.logs"}


def test_the_reader_sees_imports_inside_functions(tmp_path):
    (tmp_path / "pkg").mkdir()
    source = "def f():\n    from qms.store import Store\n    return Store\n"
    tree_file = tmp_path / "pkg" / "m.py"
    tree_file.write_text(source)
    found = read_imports({"qms.m": tree_file, "qms.store": tree_file})
    assert [(i.source, i.target, i.line) for i in found] == [("qms.m", "qms.store", 2)]


@pytest.mark.parametrize("module", ["crowdtui.host", "crowdtui.tui.app", "crowdtui.cli"])
def test_layers_are_ordered_as_designed(module):
    order = [name for name, _ in LAYERS]
    assert order.index("dispatch") < order.index("host") < order.index("tui") < order.index("cli")
    assert layer_of(module) >= order.index("host")
