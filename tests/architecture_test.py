"""The import direction of docs/design.md: a module imports only from its own layer or below.

Every ``import`` in the package is read (module level and inside functions), so a lazy import
that climbs back up the layers fails here too.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Lowest first. A module's layer is that of its longest matching prefix.
LAYERS = (
    (
        "foundation",
        (
            "primus_jax.contract",
            "primus_jax.identity",
            "primus_jax.rng_streams",
            "primus_jax.programs",
            "primus_jax.host_memory",
            "primus_jax.safe_pickle",
            "primus_jax.distributed",
            "primus_jax.sharding",
            "primus_jax.cli_errors",
            "primus_jax.paths",
        ),
    ),
    (
        "numerics",
        ("primus_jax.models", "primus_jax.losses", "primus_jax.queue", "primus_jax.augment"),
    ),
    ("config", ("primus_jax.config",)),
    ("embed", ("primus_jax.embed",)),
    ("data", ("primus_jax.data", "primus_jax.input_pipeline", "tfds_builders")),
    (
        "training",
        (
            "primus_jax.state",
            "primus_jax.optim",
            "primus_jax.checkpointing",
            "primus_jax.metric_writer",
            "primus_jax.nonfinite",
            "primus_jax.workdir",
            "primus_jax.objectives",
            "primus_jax.train",
        ),
    ),
    (
        "use",
        (
            "primus_jax.inference",
            "primus_jax.evaluation",
            "primus_jax.benchmarks",
            "primus_jax.tools",
        ),
    ),
    ("entry", ("primus_jax.main", "primus_jax")),
)
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    best, best_len = None, -1
    for name, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = name, len(p)
    return best


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources():
    for top in ("primus_jax", "tfds_builders"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.name.endswith("_test.py") or "dummy_data" in path.parts:
                continue
            if path.name in ("testing_utils.py", "dummy_data_generation.py"):
                continue
            yield path


def imports_of(path: pathlib.Path, module: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every import of a first-party module in ``path``."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # "from pkg import mod" imports pkg.mod when it is a module of pkg.
            names = [f"{base}.{a.name}" for a in node.names if layer_of(f"{base}.{a.name}")]
            names = names or [base]
        else:
            continue
        out += [
            (node.lineno, n) for n in names if n.split(".")[0] in ("primus_jax", "tfds_builders")
        ]
    return out


def violations(sources=None) -> list[str]:
    """``path:line: <layer> imports <module> (<layer>)`` for every upward import; ``sources``
    maps paths to module names (default: the package)."""
    bad = []
    sources = sources or {p: _module_name(p) for p in _sources()}
    for path, name in sources.items():
        own = layer_of(name)
        assert own is not None, f"{path} is in no layer of docs/design.md"
        for line, target in imports_of(path, name):
            layer = layer_of(target)
            if layer is not None and RANK[layer] > RANK[own]:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                bad.append(f"{where}:{line}: {own} imports {target} ({layer})")
    return bad


def test_no_module_imports_a_higher_layer():
    assert violations() == []


def test_the_core_never_imports_an_objective_module():
    core = ("primus_jax.train", "primus_jax.state", "primus_jax.config", "primus_jax.sharding")
    for path in _sources():
        if not _module_name(path).startswith(core):
            continue
        for line, target in imports_of(path):
            assert not target.startswith("primus_jax.objectives."), (path, line, target)


def test_the_check_fails_on_a_violating_import(tmp_path):
    # A data module that imports the evaluation package, even inside a function, is reported.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from primus_jax.evaluation import sampling\n")
    found = violations({probe: "primus_jax.data.probe"})
    assert found == ["probe.py:2: data imports primus_jax.evaluation.sampling (use)"]


@pytest.mark.parametrize(
    "module,layer",
    [
        ("primus_jax.objectives.primus", "training"),
        ("primus_jax.data.signal", "data"),
        ("primus_jax.main", "entry"),
        ("tfds_builders.uci_hapt", "data"),
    ],
)
def test_layer_lookup(module, layer):
    assert layer_of(module) == layer
