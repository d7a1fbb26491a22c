"""Vocabularies through the model formats: the tokenizer a converted model carries must encode text exactly as
the original tokenizer does.

- SentencePiece BPE: stories15M.bin with the Llama-2 tokenizer.model beside it -> HF directory (tokenizer.json)
  -> GGUF (tokenizer.ggml.*, read back with the `gguf` package: model "llama", the same 32000 tokens and token
  types as the independent stories15M GGUF) -> GGUF again.
- Byte-level BPE: tiny random Llama and Qwen2 checkpoints carrying the real Llama-3 and Qwen3 tokenizer.json
  -> GGUF (and for Qwen3 on -> HF); the Qwen3 GGUF is also read with the `gguf` package: model "gpt2", pre "qwen2", every
  token and merge of tokenizer.json in order.

Encodings of a mixed text (TinyStories, accents, CJK, emoji, digits, whitespace runs, code) are compared id for
id with `squeeze tokenize` on the original tokenizer file."""
import json
import os
import shutil
import sys

import gguf
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from formats_common import SHARED, check, finish, squeeze, work, write_safetensors

TEXT = (open(f"{SHARED}/data/tinystories/valid-a.txt", encoding="utf-8").read()[:6000]
        + "\nhéllo wörld — naïve café 1234567 3.14159  \t tabs\n\n東京の天気 你好世界 🙂👍🏽 "
        + "def f(x):\n    return x**2  # comment\n<b>html</b> don't it's I'M")


def ids(*args):
    path = work("formats-vocab-text.txt")
    open(path, "w", encoding="utf-8").write(TEXT)
    rc, out, err = squeeze("tokenize", *args, "-f", path, "--ids")
    return out.split() if rc == 0 else ("error", err.strip())


def spm_chain():
    src = work("formats-vocab-stories15M.bin")
    tok = work("tokenizer.model")
    for p, target in [(src, f"{SHARED}/models/stories15M.bin"), (tok, f"{SHARED}/models/tokenizer.model")]:
        if os.path.lexists(p):
            os.remove(p)
        os.symlink(target, p)
    hf, gg, gg2 = work("formats-vocab-spm-hf"), work("formats-vocab-spm.gguf"), work("formats-vocab-spm2.gguf")
    shutil.rmtree(hf, ignore_errors=True)
    for a, b in [(src, hf), (hf, gg), (gg, gg2)]:
        rc, _, err = squeeze("convert", "-m", a, "-o", b)
        check(rc == 0, f"spm: convert {os.path.basename(a)} -> {os.path.basename(b)} ({err.strip()})")
    check(os.path.exists(f"{hf}/tokenizer.json"), "spm: the HF directory has a tokenizer.json")
    want = ids("--tokenizer", f"{SHARED}/models/tokenizer.model")
    for m in (hf, gg, gg2):
        got = ids("-m", m)
        check(got == want and len(want) > 1000, f"spm: {os.path.basename(m)} encodes like tokenizer.model ({len(want)} ids)")
    ref, ours = gguf.GGUFReader(f"{SHARED}/models/stories15M-f16.gguf"), gguf.GGUFReader(gg)
    for k in ["tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"]:
        check(k in ours.fields and ours.fields[k].contents() == ref.fields[k].contents(),
              f"spm: {k} equals the independent stories15M GGUF's")


def byte_bpe_chain(label, tokenizer_dir, arch, n_vocab, full):
    """full: also GGUF -> HF, and read the GGUF with the gguf package (~25 s for a vocabulary this size)."""
    d = work(f"formats-vocab-{label}-hf")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        os.symlink(f"{tokenizer_dir}/{f}", f"{d}/{f}")
    rng = np.random.default_rng(1)
    hidden, inter, heads = 32, 64, 2
    t = {"model.embed_tokens.weight": ("F16", rng.uniform(-1, 1, (n_vocab, hidden)).astype(np.float16)),
         "model.norm.weight": ("F32", np.ones(hidden, np.float32))}
    p = "model.layers.0."
    for name, shape in [("input_layernorm.weight", (hidden,)), ("post_attention_layernorm.weight", (hidden,)),
                        ("self_attn.q_proj.weight", (hidden, hidden)), ("self_attn.k_proj.weight", (hidden, hidden)),
                        ("self_attn.v_proj.weight", (hidden, hidden)), ("self_attn.o_proj.weight", (hidden, hidden)),
                        ("mlp.gate_proj.weight", (inter, hidden)), ("mlp.up_proj.weight", (inter, hidden)),
                        ("mlp.down_proj.weight", (hidden, inter))]:
        t[p + name] = ("F32", rng.uniform(-1, 1, shape).astype(np.float32))
    if arch == "Qwen2ForCausalLM":
        for n, rows in [("q", hidden), ("k", hidden), ("v", hidden)]:
            t[p + f"self_attn.{n}_proj.bias"] = ("F32", rng.uniform(-1, 1, rows).astype(np.float32))
    write_safetensors(f"{d}/model.safetensors", t)
    json.dump({"architectures": [arch], "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": 1,
               "num_attention_heads": heads, "num_key_value_heads": heads, "vocab_size": n_vocab,
               "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
               "tie_word_embeddings": True}, open(f"{d}/config.json", "w"))
    gg, back = work(f"formats-vocab-{label}.gguf"), work(f"formats-vocab-{label}-back")
    shutil.rmtree(back, ignore_errors=True)
    steps = [(d, gg), (gg, back)] if full else [(d, gg)]
    for a, b in steps:
        rc, _, err = squeeze("convert", "-m", a, "-o", b)
        check(rc == 0, f"{label}: convert {os.path.basename(a)} -> {os.path.basename(b)} ({err.strip()})")
    want = ids("--tokenizer", f"{tokenizer_dir}/tokenizer.json")
    for _, m in steps:
        got = ids("-m", m)
        check(got == want and len(want) > 1000, f"{label}: {os.path.basename(m)} encodes like tokenizer.json ({len(want)} ids)")
    if not full:
        return
    tj = json.load(open(f"{tokenizer_dir}/tokenizer.json", encoding="utf-8"))
    vocab = sorted(tj["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = [k for k, _ in vocab] + [a["content"] for a in sorted(tj["added_tokens"], key=lambda a: a["id"])
                                     if a["id"] >= len(vocab)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    r = gguf.GGUFReader(gg)
    f = lambda k: r.fields[k].contents() if k in r.fields else None
    check(f("tokenizer.ggml.model") == "gpt2", f"{label}: GGUF tokenizer model gpt2")
    check(f("tokenizer.ggml.tokens") == vocab, f"{label}: GGUF tokens are tokenizer.json's {len(vocab)} in id order")
    check(f("tokenizer.ggml.merges") == merges, f"{label}: GGUF merges are tokenizer.json's {len(merges)} in order")
    check(f("tokenizer.ggml.pre") == "qwen2", f"{label}: GGUF pre-tokenizer named qwen2 ({f('tokenizer.ggml.pre')})")


def main():
    spm_chain()
    byte_bpe_chain("llama3", f"{SHARED}/tokenizers/llama3", "LlamaForCausalLM", 128256, False)
    byte_bpe_chain("qwen3", f"{SHARED}/tokenizers/qwen3", "Qwen2ForCausalLM", 151680, True)
    finish()


main()
