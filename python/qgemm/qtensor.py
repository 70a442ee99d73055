"""QTensor: quantized data together with its parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from . import _checks
from .quantization import QParams, dequantize, quantize


@dataclass(frozen=True, eq=False)
class QTensor:
    """``data`` (int8/uint8) holding ``round(x / scale) + zero_point`` for ``qparams``."""

    data: np.ndarray
    qparams: QParams

    def __post_init__(self):
        d = _checks.quantized_array(self.data, "data")
        if d.dtype.name != self.qparams.dtype:
            raise ValueError(f"data is {d.dtype.name} but qparams say {self.qparams.dtype}")
        object.__setattr__(self, "data", d)

    @classmethod
    def quantize(cls, x: Any, qparams: QParams) -> "QTensor":
        return cls(quantize(x, qparams.scale, qparams.zero_point, qparams.dtype, qparams.axis), qparams)

    def dequantize(self) -> np.ndarray:
        p = self.qparams
        return dequantize(self.data, p.scale, p.zero_point, p.axis)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes an ``.npz`` file (plain arrays; loading needs no pickle)."""
        p = self.qparams
        np.savez(path, data=self.data, scale=np.asarray(p.scale, np.float32),
                 zero_point=np.asarray(p.zero_point, np.int32),
                 axis=np.int64(-1 if p.axis is None else p.axis))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "QTensor":
        with np.load(path, allow_pickle=False) as f:
            data, scale, zp, axis = f["data"], f["scale"], f["zero_point"], int(f["axis"])
        if axis < 0:
            qp = QParams(np.float32(scale), int(zp), data.dtype.name, None)
        else:
            qp = QParams(scale.astype(np.float32), zp.astype(np.int32), data.dtype.name, axis)
        return cls(data, qp)

    def __repr__(self) -> str:
        return f"QTensor(shape={self.shape}, dtype={self.dtype}, qparams={self.qparams!r})"
