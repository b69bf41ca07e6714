"""Render BENCHMARKS.md from benchmarks/results/*.json (every figure comes from a file, every
row names the command that produced it).

    .venv/bin/python benchmarks/render.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the section modules beside this script

from sections_adabert import adabert_section, adabert_synthetic_section  # noqa: E402
from sections_core import bf16_section, compress_section, cuda_tests_section, devices_section, distill_section, finetune_section, multiteacher_section, speed_section  # noqa: E402
from sections_kd import kdclinc_section, kdsweep_section, kdvs_section  # noqa: E402
from sections_l2a import l2a_section  # noqa: E402
from sections_lexical import lexical_transfer_section, wsd_section  # noqa: E402
from sections_metakd import metakd_section  # noqa: E402
from sections_mlm import mlm_downstream_section, mlm_section  # noqa: E402
from sections_mlmdom import mlmdom_section  # noqa: E402
from sections_targets import targets_section  # noqa: E402
from render_common import OUT, load  # noqa: E402


def main() -> None:
    res = load()
    lines = ["# Benchmarks", "",
             "Every figure below is read from `benchmarks/results/*.json`, written by the "
             "command shown in its row, on the machine its section names (this project's "
             "2-core CPU machines, no GPU so far). "
             "Regenerate this page with `.venv/bin/python benchmarks/render.py`.", ""]
    lines += targets_section(res) + finetune_section(res) + distill_section(res) + multiteacher_section(res)
    lines += compress_section(res) + speed_section(res) + mlm_section(res)
    lines += mlm_downstream_section(res) + mlmdom_section(res) + adabert_section(res)
    lines += adabert_synthetic_section(res) + metakd_section(res)
    lines += wsd_section(res) + lexical_transfer_section(res) + kdvs_section(res)
    lines += kdsweep_section(res)
    lines += kdclinc_section(res)
    lines += l2a_section(res)
    lines += bf16_section(res)
    lines += devices_section(res) + cuda_tests_section(res)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
