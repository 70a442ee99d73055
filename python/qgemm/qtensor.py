"""QTensor: quantized data together with its parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np

from . import _checks
from .quantization import QParams, dequantize, quantize


@dataclass(frozen=True, eq=False)
class QTensor:
    """``data`` (int8/uint8) holding ``round(x / scale) + zero_point`` for ``qparams``.

    A negative ``qparams.axis`` is normalised against ``data.ndim`` (so -1 is
    stored as ``ndim - 1``), and per-axis parameters must have one value per
    slice of ``data`` along it."""

    data: np.ndarray
    qparams: QParams

    def __post_init__(self):
        d = _checks.quantized_array(self.data, "data")
        p = self.qparams
        if d.dtype.name != p.dtype:
            raise ValueError(f"data is {d.dtype.name} but qparams say {p.dtype}")
        if p.axis is not None:
            axis = _checks.normalize_axis(p.axis, d.ndim, "qparams.axis")
            if p.scale.shape[0] != d.shape[axis]:
                raise ValueError(f"qparams has {p.scale.shape[0]} scales but data has {d.shape[axis]} "
                                 f"slices along axis {axis}")
            if axis != p.axis:
                object.__setattr__(self, "qparams", replace(p, axis=axis))
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
        """Writes an ``.npz`` file (plain arrays; loading needs no pickle). ``axis``
        is stored as -1 for per-tensor parameters (per-axis axes are >= 0)."""
        p = self.qparams
        np.savez(path, data=self.data, scale=np.asarray(p.scale, np.float32),
                 zero_point=np.asarray(p.zero_point, np.int32),
                 axis=np.int64(-1 if p.axis is None else p.axis))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "QTensor":
        with np.load(path, allow_pickle=False) as f:
            data, scale, zp, axis = f["data"], f["scale"], f["zero_point"], int(f["axis"])
        if axis < 0 and scale.ndim == 1 and data.ndim and scale.size == data.shape[-1]:
            # written before axes were normalised: axis=-1 meant per axis along the last one
            axis = data.ndim - 1
        if axis < 0:
            qp = QParams(np.float32(scale), int(zp), data.dtype.name, None)
        else:
            qp = QParams(scale.astype(np.float32), zp.astype(np.int32), data.dtype.name, axis)
        return cls(data, qp)

    def __repr__(self) -> str:
        return f"QTensor(shape={self.shape}, dtype={self.dtype}, qparams={self.qparams!r})"
