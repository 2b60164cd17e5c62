"""A warm legacy-toolchain process for batches (in the toolchain's Python 3.8/3.9).

Reads one JSON job per line on stdin and answers one JSON line on stdout, so a batch pays the
interpreter start-up and the imports of Model Optimizer and the inference engine once:
  {"op": "mo", "args": [...]}                          -> Model Optimizer, as the `mo` command
  {"op": "infer", "xml": ..., "inputs": ..., "outputs": ..., "ranges": ..., "layouts": ... (both optional)}
                                                       -> run_ir_on_cpu.run (ranges: the FP16 range check)
  {"op": "values", "xml": ..., "inputs": ..., "values": ...}  -> run_ir_on_cpu.run_values (every layer's values)
Answer: {"returncode": int, "output": everything the job printed}.
"""

import json
import os
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever prints outside a job must not corrupt the answers
    from mo.main import main as model_optimizer
    from mo.utils.cli_parser import get_all_cli_parser
    from openvino.inference_engine import IECore

    import run_ir_on_cpu

    core = IECore()
    for line in sys.stdin:
        job = json.loads(line)
        with tempfile.TemporaryFile("w+") as log:
            saved = os.dup(1), os.dup(2)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                if job["op"] == "mo":
                    sys.argv = ["mo", *job["args"]]
                    returncode = model_optimizer(get_all_cli_parser(), None)
                elif job["op"] == "values":
                    run_ir_on_cpu.run_values(core, job["xml"], job["inputs"], job["values"])
                    returncode = 0
                else:
                    run_ir_on_cpu.run(
                        core, job["xml"], job["inputs"], job["outputs"], job.get("ranges"), job.get("layouts")
                    )
                    returncode = 0
            except BaseException:  # the job's failure is the answer; the worker lives on
                traceback.print_exc()
                returncode = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            log.seek(0)
            output = log.read()
        answers.write(json.dumps({"returncode": returncode or 0, "output": output}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
