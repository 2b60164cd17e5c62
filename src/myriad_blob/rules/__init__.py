"""The op rules: what the 2021.4 Myriad compiler accepts, and how to get there from what exporters write.

- onnx_rules.ONNX_RULES: rewrites of the ONNX graph (one row each), run by the ONNX preparation
  (onnx_prep.py) before an IR front end reads the model; each is kept only if ONNX Runtime gives
  the same outputs afterwards, within the row's tolerance.
- The IR-level table, LEGALIZATION, lives in the OpenVINO 2022.3 front end's script
  (toolchain/scripts/ov2022_ir.py): rewrites of op versions the 2021.4 IR reader or the plugin rejects.
- advice.REFUSED: IR layer types the compiler refuses (measured by the op sweep), each with the
  ONNX op or PyTorch code it comes from and what to change; a failed compile names every such
  layer of the IR at once, in the user's terms.
- sweep.py: the op sweep, a micro-model per op and form, converted by the real pipeline
  (`make op-table` writes the README's "Supported ops" table from it).
"""
