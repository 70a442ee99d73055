"""What qgemm's results are checked against, shared by tests/ and bench/:
random quantized arrays, the exact int64 GEMM, ONNX's float requantization,
and ONNX Runtime running one-node models (the peer users migrate from; CI
installs it, so the parity tests run there)."""

from __future__ import annotations

import numpy as np

QR = {"int8": (-128, 127), "uint8": (0, 255)}  # the range of each quantized dtype
QR.update({np.dtype(name).type: r for name, r in list(QR.items())})  # np.int8 / np.uint8 as keys too


def rand_q(rng, shape, dtype, lo=None, hi=None):
    """Uniform random codes of `dtype` over its whole range, or over [lo, hi]."""
    qlo, qhi = QR[np.dtype(dtype).name]
    return rng.integers(qlo if lo is None else lo, (qhi if hi is None else hi) + 1, shape).astype(dtype)


def exact_matmul(a, b, za=0, zb=0, dtype=np.int64):
    """(A - za) @ (B - zb) exactly, in int64 (not wrapped to int32): za a scalar or one
    per row of A (A's leading dimensions), zb a scalar or one per column of B; batch
    dimensions broadcast like np.matmul. dtype=np.float64 gives the same integers at
    BLAS speed (partial sums of 8-bit products stay below 2**53 while K < 2**37)."""
    za = np.asarray(za, dtype)
    if za.ndim:  # one per row of a: broadcast along K
        za = za[..., None]
    return np.matmul(np.asarray(a).astype(dtype) - za, np.asarray(b).astype(dtype) - np.asarray(zb, dtype))


def exact_matmul_int32(a, b, za=0, zb=0):
    """exact_matmul wrapped to int32 the way qgemm documents (modulo 2**32 past the int32 range)."""
    return exact_matmul(a, b, za, zb).astype(np.int32)


def requantize_float(acc, multiplier, zero_point, lo, hi, offset=None):
    """ONNX QLinearMatMul's requantization of an exact accumulator, in float32:
    clamp(rint((acc + offset) * multiplier) + zero_point, lo, hi)."""
    v = acc.astype(np.float32)
    if offset is not None:
        v = (v + np.asarray(offset, np.float32)).astype(np.float32)
    v = (v * np.asarray(multiplier, np.float32)).astype(np.float32)
    return np.clip(np.rint(v) + zero_point, lo, hi)


# ---- ONNX Runtime: one-node models -----------------------------------------------------------

ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6}


def onnx_node(op: str, inputs: dict, initializers: dict, out_dtype, attrs=None, domain: str = "",
              threads: int | None = None):
    """ONNX Runtime running one ONNX node, as a callable run(*arrays): `inputs` (name ->
    array, giving the dtype and shape) are fed per call, positionally in that order;
    `initializers` (name -> array) are constants ORT may prepack. `domain`: a contrib
    op's domain (com.microsoft); `threads`: ORT's intra-op threads (None: its default)."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node(op, list(inputs) + list(initializers), ["y"], domain=domain, **(attrs or {}))],
        "g",
        [helper.make_tensor_value_info(k, ONNX_TYPES[v.dtype], list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", ONNX_TYPES[np.dtype(out_dtype)], None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    opsets = [helper.make_opsetid("", 19)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = list(inputs)
    return lambda *arrays: sess.run(None, dict(zip(names, arrays)))[0]


def run_onnx_node(op: str, inputs: dict, initializers: dict, out_dtype, attrs=None):
    """Runs one ONNX node once on `inputs` (see onnx_node)."""
    return onnx_node(op, inputs, initializers, out_dtype, attrs)(*inputs.values())


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
