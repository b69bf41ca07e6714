"""Installation: the package asks for a torch range (so an existing CUDA or CPU torch is kept),
while the Makefile pins the CPU wheel through a constraints file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def deps() -> dict[str, Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {Requirement(d).name: Requirement(d) for d in meta["dependencies"]}


def test_torch_is_a_range_that_admits_the_cpu_and_cuda_machines():
    torch_req = deps()["torch"]
    assert not any(s.operator == "==" for s in torch_req.specifier)
    for version in ("2.11.0", "2.13.0", "2.14.1"):  # the CUDA machine's, ours, the local cap
        assert torch_req.specifier.contains(version), version
    assert "torchao" not in deps()  # optional: its builds are tied to one torch


def test_the_makefile_pins_the_cpu_wheel_through_constraints():
    pins = [ln.strip() for ln in (REPO / "constraints-cpu.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert "torch==2.13.0" in pins
    make = (REPO / "Makefile").read_text()
    assert make.count("-c constraints-cpu.txt") == 2  # torch first, then the package
    assert "torch==" not in make
