"""``qgemm.torch.quantize_dynamic``: a model's ``torch.nn.Linear`` layers to
``qgemm.torch.Linear``, as ``torch.ao.quantization.quantize_dynamic`` did."""

from __future__ import annotations

import copy
from fnmatch import fnmatchcase
from typing import Iterable, List, Optional, Tuple, Union

import torch

from . import _op
from ._linear import Linear

Patterns = Union[None, str, Iterable[str]]


def _patterns(value: Patterns, arg: str) -> Optional[List[str]]:
    if value is None:
        return None
    pats = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) for p in pats):
        raise TypeError(f"{arg} must be a string or an iterable of strings, got {value!r}")
    return pats


def _matches(name: str, pattern: str) -> bool:
    """A glob on the qualified name, or the name of a module that contains it."""
    return fnmatchcase(name, pattern) or name.startswith(pattern + ".")


def quantize_dynamic(model: torch.nn.Module, *, per_token: bool = True, act_bits: int = 7,
                     inplace: bool = False, include: Patterns = None,
                     exclude: Patterns = None) -> torch.nn.Module:
    """Replaces the model's ``torch.nn.Linear`` layers with :class:`qgemm.torch.Linear`
    (int8 weights, symmetric per channel; activations quantized per call, per token
    with ``act_bits`` bits by default) and returns the model (a deep copy unless
    ``inplace``).

    ``include`` / ``exclude``: qualified module names (``"encoder.layer.0.output.dense"``)
    or globs (``"*.attention.*"``), one string or several; a pattern also matches
    every module inside the module it names. A layer is converted when it matches
    ``include`` (default: every layer) and not ``exclude``; a pattern that matches
    no ``torch.nn.Linear`` is an error (a typo would otherwise go unnoticed).

    Only modules whose type is exactly ``torch.nn.Linear`` are converted:
    subclasses may change ``forward``, and layers that PyTorch calls through
    ``F.linear`` with their weight directly, such as ``nn.MultiheadAttention``'s
    ``out_proj``, are left in float. The model is not changed if a layer fails to
    convert (e.g. weights on another device, NaN weights).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _op.scheme_kwargs(per_token, act_bits)
    inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
    if not inplace:
        model = copy.deepcopy(model)

    # (parent, attribute, layer) for every place a chosen layer sits; a layer shared
    # by several parents is converted once.
    sites: List[Tuple[Optional[torch.nn.Module], str, torch.nn.Linear]] = []
    used = set()
    for name, mod in model.named_modules(remove_duplicate=False):
        if type(mod) is not torch.nn.Linear:
            continue
        hits_inc = [p for p in inc if _matches(name, p)] if inc is not None else [None]
        hits_exc = [p for p in exc if _matches(name, p)] if exc is not None else []
        used.update(hits_inc + hits_exc)
        if hits_inc and not hits_exc:
            parent_name, _, attr = name.rpartition(".")
            sites.append((model.get_submodule(parent_name) if name else None, attr, mod))
    for arg, pats in (("include", inc), ("exclude", exc)):
        for p in pats or ():
            if p not in used:
                raise ValueError(f"{arg} pattern {p!r} matches no torch.nn.Linear in the model")

    converted = {}
    for _, _, mod in sites:
        if id(mod) not in converted:
            converted[id(mod)] = Linear.from_float(mod, per_token=per_token, act_bits=act_bits)
    for parent, attr, mod in sites:
        if parent is None:  # the model is itself a Linear
            return converted[id(mod)]
        setattr(parent, attr, converted[id(mod)])
    return model
