"""Every project keeps the shared layout, and its command line answers without loading TensorFlow."""

import ast
import re

import pytest

from conftest import ROOT, run_cli, run_python

pytestmark = pytest.mark.backend_independent

PROJECTS = sorted(p.name for p in (ROOT / "projects").iterdir() if (p / "__main__.py").is_file())
LAYOUT = ("__init__.py", "__main__.py", "train.py", "model.py", "data.py", "bench.py", "README.md")
USER_MODULES = ("predict.py", "generate.py", "stylize.py", "convert.py", "vectors.py", "play.py")
HEAVY = ("keras", "tensorflow", "jax")
BACKENDS = ("tensorflow", "jax")  # only common/backend.py imports them


def imports(path):
    """The modules a Python file imports, at any depth."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_there_are_projects():
    assert len(PROJECTS) >= 7


@pytest.mark.parametrize("project", PROJECTS)
def test_project_has_the_layout(project):
    folder = ROOT / "projects" / project
    missing = [name for name in LAYOUT if not (folder / name).is_file()]
    assert not missing, f"{project} lacks {missing}"
    assert any((folder / name).is_file() for name in USER_MODULES), f"{project} has no module for trained models' users"
    assert (folder / "assets").is_dir()


@pytest.mark.parametrize("project", PROJECTS)
def test_projects_import_only_common_and_themselves(project):
    for path in (ROOT / "projects" / project).rglob("*.py"):
        for module in imports(path):
            assert not module.startswith(BACKENDS), f"{path.relative_to(ROOT)} imports {module}: backend code belongs in common/backend.py"
            if module.startswith("projects."):
                assert module.startswith(f"projects.{project}"), f"{path.relative_to(ROOT)} imports {module}"
            assert not module.endswith("__main__"), f"{path.relative_to(ROOT)} imports {module}: nothing imports a command line"


def test_readme_says_which_project_offers_which_flag():
    import dataclasses
    import importlib

    text = (ROOT / "README.md").read_text()
    table = text[text.index("<!-- support:start -->"):text.index("<!-- support:end -->")]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[3:])}
    assert sorted(rows) == PROJECTS
    for project in PROJECTS:
        fields = {f.name for f in dataclasses.fields(importlib.import_module(f"projects.{project}.train").Config)}
        offered = ["yes" if name in fields else "no" for name in ("mixed_precision", "distribute")]
        assert rows[project][2:] == offered, project


def test_common_knows_no_project():
    for path in (ROOT / "common").glob("*.py"):
        assert not [m for m in imports(path) if m.startswith("projects")], path.name
        assert not re.search(r"projects\.\w+\.", path.read_text()), f"{path.name} names a project's module"


@pytest.mark.parametrize("project", PROJECTS)
def test_command_line_loads_no_deep_learning_library(project):
    check = (f"import sys, projects.{project}.__main__, projects.{project}.train; "
             f"print(sorted({set(HEAVY)!r} & set(sys.modules)))")
    result = run_python("-c", check)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing {project}'s command line loads {result.stdout.strip()}"


@pytest.mark.parametrize("project", PROJECTS)
def test_help_and_argument_errors_are_quiet(project):
    result = run_cli(f"projects.{project}", "--help")
    assert result.returncode == 0 and result.stderr == "" and "train" in result.stdout
    result = run_cli(f"projects.{project}", "train", "--epochs", "lots")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--epochs" in result.stderr
