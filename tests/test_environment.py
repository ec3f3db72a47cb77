"""requirements.txt and environment.yml pin the same packages; the helpers package never pulls torch."""

import re

import tomllib

# pip name -> conda-forge name, where they differ.
CONDA_NAMES = {"torch": "pytorch"}


def _pip_pins(root):
    pins = {}
    for line in (root / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-e"):
            continue
        name, version = line.split("==")
        pins[CONDA_NAMES.get(name.lower(), name.lower())] = version
    return pins


def _conda_pins(root):
    pins, in_pip = {}, False
    for line in (root / "environment.yml").read_text().splitlines():
        if re.match(r"\s*- pip:\s*$", line):
            in_pip = True
            continue
        m = re.match(r"\s*- ([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m and not in_pip:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_pip_and_conda_environments_agree(root):
    pip, conda = _pip_pins(root), _conda_pins(root)
    assert pip, "no pins found in requirements.txt"
    assert pip == conda, {k: (pip.get(k), conda.get(k)) for k in set(pip) | set(conda) if pip.get(k) != conda.get(k)}
    assert pip["pytorch"] == "2.14.1" and pip["torchvision"] == "0.29.1"


def test_environment_installs_helpers_with_pip(root):
    text = (root / "environment.yml").read_text()
    assert re.search(r"- pip:\s*\n\s*- -e \.", text)
    assert "python=3.11" in text
    assert "-e ." in (root / "requirements.txt").read_text()


def test_helpers_requirements_are_loose_and_never_torch(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + sum(project.get("optional-dependencies", {}).values(), [])
    for dep in deps:
        name = re.split(r"[<>=!~\[ ]", dep)[0].lower()
        assert name not in {"torch", "torchvision", "pytorch"}, dep
        assert "==" not in dep, f"{dep}: keep the helpers package's requirements loose"
