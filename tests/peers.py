"""Reference peers for parity tests: ONNX Runtime sessions built from one-node
models, and PyTorch. CI installs both, so these tests run there."""

from __future__ import annotations

import numpy as np

ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6}


def run_onnx_node(op: str, inputs: dict, initializers: dict, out_dtype, attrs=None, opset: int = 19):
    """Runs one ONNX node. `inputs` are fed at run time, `initializers` are constants;
    both are dicts name -> ndarray, in the node's input order (inputs first)."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    names = list(inputs) + list(initializers)
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **(attrs or {}))],
        "g",
        [helper.make_tensor_value_info(k, ONNX_TYPES[v.dtype], list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", ONNX_TYPES[np.dtype(out_dtype)], None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)[0]


def ort_quantize(x, scale, zp, axis=None):
    attrs = {} if axis is None else {"axis": axis}
    return run_onnx_node("QuantizeLinear", {"x": x}, {"s": np.asarray(scale, np.float32), "z": zp},
                         zp.dtype, attrs)


def ort_dequantize(q, scale, zp, axis=None):
    attrs = {} if axis is None else {"axis": axis}
    return run_onnx_node("DequantizeLinear", {"q": q}, {"s": np.asarray(scale, np.float32), "z": zp},
                         np.float32, attrs)


def ort_matmul_integer(a, b, za, zb):
    return run_onnx_node("MatMulInteger", {"a": a}, {"b": b, "za": za, "zb": zb}, np.int32)
