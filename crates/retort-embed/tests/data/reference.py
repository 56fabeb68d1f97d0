# Independent numpy reimplementation of sentence-transformers all-MiniLM-L6-v2 (float64),
# used to produce reference.jsonl for tests/minilm.rs. Reproduce with:
#   python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy tokenizers safetensors
#   /tmp/v/bin/python reference.py <models>/all-minilm-l6-v2 reference_texts.json > reference.jsonl
#   /tmp/v/bin/python reference.py <models>/all-minilm-l6-v2 truncation_texts.json 24 > reference_truncated.jsonl
# Its output for "This is an example sentence" agrees with the values published with the model.
import sys, json, numpy as np
from math import erf
from tokenizers import Tokenizer
from safetensors.numpy import load_file
d = sys.argv[1]
W = load_file(f"{d}/model.safetensors")
cfg = json.load(open(f"{d}/config.json"))
tok = Tokenizer.from_file(f"{d}/tokenizer.json")
MAX_TOKENS = int(sys.argv[3]) if len(sys.argv) > 3 else 256
tok.no_padding(); tok.enable_truncation(MAX_TOKENS)
H = cfg["hidden_size"]; nh = cfg["num_attention_heads"]; hd = H // nh; eps = cfg["layer_norm_eps"]
def ln(x, p): 
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * W[p + ".weight"] + W[p + ".bias"]
def lin(x, p): return x @ W[p + ".weight"].T + W[p + ".bias"]
verf = np.vectorize(erf)
def gelu(x): return 0.5 * x * (1 + verf(x / np.sqrt(2)))
def embed(text):
    ids = np.array(tok.encode(text).ids)
    n = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] + W["embeddings.token_type_embeddings.weight"][0]
    x = ln(x.astype(np.float64), "embeddings.LayerNorm")
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        q = lin(x, p + "attention.self.query").reshape(n, nh, hd).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(n, nh, hd).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(n, nh, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, H)
        x = ln(lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = gelu(lin(x, p + "intermediate.dense"))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    m = x.mean(0)
    return m / np.linalg.norm(m), n
for t in json.load(open(sys.argv[2])):
    e, n = embed(t)
    print(json.dumps({"text": t, "tokens": n, "head": [round(float(v), 6) for v in e[:8]], "idx": {str(i): round(float(e[i]), 6) for i in (17, 100, 200, 383)}}))
