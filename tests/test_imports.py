"""No import circle inside omnilm/: the graph of who imports whom is read from the
source (ast, nothing imported), with the imports inside functions counted too. A lazy
import hides a circle at load time, but the two modules still cannot be understood,
tested or moved apart, so it counts the same.

An edge goes to the module an import names: `import omnilm.a.b` and `from omnilm.a
import b` (b a module) to omnilm.a.b, `from omnilm.a import name` to omnilm.a (its
__init__ when a is a package); relative imports are resolved the same way. The parent
packages Python also runs on the way are not edges: every submodule would otherwise
make a circle with its package's __init__."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "omnilm"


def module_names(root):
    """{dotted module name: file} for every .py under root/omnilm (a package is its __init__)."""
    names = {}
    for path in sorted((Path(root) / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _absolute(node, name, is_package):
    """The module a `from ... import` names, with a relative one resolved against `name`."""
    if not node.level:
        return node.module
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path, name, modules):
    """The modules of `modules` that the file `path` (module `name`) imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(Path(path).read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, name, Path(path).name == "__init__.py")
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return {m for m in found if m in modules and m != name}


def import_graph(root=REPO):
    modules = module_names(root)
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def find_cycles(graph):
    """Import circles as lists of modules in import order, the first repeated at the
    end: the shortest one through each module not already on an earlier circle."""
    cycles, done = [], set()
    for start in sorted(graph):
        if start in done:
            continue
        path = _path_back(graph, start)
        if path:
            cycles.append(path)
            done.update(path)
    return cycles


def _path_back(graph, start):
    """The shortest chain of imports from `start` back to itself (breadth first), or None."""
    came_from, frontier = {}, [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph.get(module, ())):
                if target == start:
                    chain = [module]
                    while chain[-1] != start:
                        chain.append(came_from[chain[-1]])
                    return chain[::-1] + [start]
                if target not in came_from:
                    came_from[target] = module
                    following.append(target)
        frontier = following
    return None


def test_omnilm_has_no_import_circle():
    cycles = find_cycles(import_graph())
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_a_planted_circle(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from omnilm.sub import b  # lazy: still an edge\n")
    (package / "sub" / "b.py").write_text("from ..a import f\n")
    (package / "c.py").write_text("import omnilm.a\n")  # imports into the circle, is not in it
    graph = import_graph(tmp_path)
    assert graph["omnilm.a"] == {"omnilm.sub.b"} and graph["omnilm.sub.b"] == {"omnilm.a"}
    assert find_cycles(graph) == [["omnilm.a", "omnilm.sub.b", "omnilm.a"]]
    (package / "sub" / "b.py").write_text("X = 1\n")
    assert find_cycles(import_graph(tmp_path)) == []
