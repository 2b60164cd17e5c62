"""Scripts that run inside the toolchain's own interpreters (Python 3.8/3.9 with OpenVINO 2021.4.2
or 2022.3.1), always as files in child processes, never imported by the converter to run.

The converter's Python may import them for their tables (tests read ov2022_ir.LEGALIZATION): each
guards its OpenVINO imports, so it imports without OpenVINO, and fails only when run that way.
"""

from pathlib import Path

HERE = Path(__file__).parent
FRONTEND_SCRIPT = HERE / "ov2022_ir.py"  # OpenVINO 2022.3.1's ONNX front end (venv-ov2022)
LEGACY_WORKER_SCRIPT = HERE / "legacy_worker.py"  # warm Model Optimizer 2021.4 and CPU plugin (venv)
RUN_IR_ON_CPU_SCRIPT = HERE / "run_ir_on_cpu.py"  # one IR run on the 2021.4 CPU plugin (venv)
RUN_IR_2022_SCRIPT = (
    HERE / "run_ir_2022.py"
)  # the numeric check's second opinion on 2022.3.1's CPU plugin (venv-ov2022)
