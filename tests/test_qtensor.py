"""QTensor: codes with their parameters, dequantize, save and load."""

import numpy as np
import pytest

import qgemm


def test_qtensor_roundtrip_and_npz(tmp_path, rng):
    x = rng.standard_normal((5, 7)).astype(np.float32)
    for qp in [qgemm.choose_qparams(x), qgemm.choose_qparams(x, axis=1, symmetric=True)]:
        t = qgemm.QTensor.quantize(x, qp)
        np.testing.assert_allclose(t.dequantize(), x, atol=float(np.max(qp.scale)))
        path = tmp_path / "t.npz"
        t.save(path)
        u = qgemm.QTensor.load(path)
        np.testing.assert_array_equal(u.data, t.data)
        assert u.qparams == t.qparams
    with pytest.raises(ValueError, match="uint8"):
        qgemm.QTensor(np.zeros(3, np.int8), qgemm.QParams(np.float32(1), 0, "uint8"))
