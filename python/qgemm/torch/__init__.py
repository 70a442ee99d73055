"""qgemm for PyTorch models: a replacement for PyTorch's deprecated dynamic
quantization (``torch.ao.quantization.quantize_dynamic``).

    import qgemm.torch
    model = qgemm.torch.quantize_dynamic(model)        # every torch.nn.Linear -> int8
    with torch.inference_mode():
        y = model(x)

Optional: needs PyTorch (``pip install "qgemm[torch]"``); ``import qgemm``
alone never imports torch.

- :func:`quantize_dynamic` converts a model's ``torch.nn.Linear`` layers to
  :class:`Linear` (``include``/``exclude`` choose them by qualified name).
- :class:`Linear` keeps int8 weights, float32 per-channel scales and the float32
  bias as buffers: ``state_dict()``, ``torch.save`` and ``load_state_dict`` into
  a model converted the same way round-trip exactly.
- The layer computes through one custom op, ``torch.ops.qgemm.linear_dynamic``,
  with a fake implementation: ``torch.compile(model, fullgraph=True)`` and
  ``torch.export.export`` see one opaque op (no graph break) whose results equal
  eager execution's bit for bit.
- Inference only, CPU only: inputs that require grad (in grad mode) or live on
  another device are refused with an error.
- Threads: qgemm's calls use ``torch.get_num_threads()`` threads (read on each
  call), so ``torch.set_num_threads`` governs the whole model;
  :func:`set_num_threads` fixes another number. qgemm's pool and PyTorch's
  OpenMP pool are separate and take turns, layer by layer (see ``_threads``).
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('qgemm.torch needs PyTorch: pip install "qgemm[torch]"') from e

from ._convert import quantize_dynamic
from ._linear import Linear
from ._op import linear_dynamic
from ._threads import set_num_threads

__all__ = ["Linear", "quantize_dynamic", "linear_dynamic", "set_num_threads"]
