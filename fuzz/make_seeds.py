#!/usr/bin/env python3
"""Writes small valid inputs for the fuzz targets: seeds (one folder per target) and fixtures (the valid
companion files a target needs). Independent of squeeze's own writers: numpy for llama2.c and safetensors,
the gguf package for GGUF, sentencepiece's trainer for tokenizer.model.

usage: make_seeds.py OUT_DIR   (creates OUT_DIR/seeds/<target>/ and OUT_DIR/fixtures/)"""
import json
import os
import struct
import sys

import gguf
import numpy as np
import sentencepiece as spm

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, CTX = 32, 64, 1, 4, 2, 16

out = sys.argv[1]
seeds, fixtures = os.path.join(out, "seeds"), os.path.join(out, "fixtures")
for d in ["gguf", "llama2c", "safetensors", "hf_config", "tokenizer_json", "tokenizer_model", "tokenizer_bin",
          "tokenize_text", "generation_config", "chat_template", "int_list", "openai_request"]:
    os.makedirs(os.path.join(seeds, d), exist_ok=True)
os.makedirs(fixtures, exist_ok=True)
rng = np.random.default_rng(0)

# A small SentencePiece BPE model with byte fallback, trained on a few sentences.
corpus = os.path.join(out, "corpus.txt")
with open(corpus, "w") as f:
    for i in range(200):
        f.write(f"Once upon a time there was a little girl number {i} who loved to play in the park.\n")
spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(out, "tiny"), vocab_size=300,
                               model_type="bpe", byte_fallback=True, minloglevel=2)
sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "tiny.model"))
VOCAB = sp.get_piece_size()
with open(os.path.join(out, "tiny.model"), "rb") as f:
    open(os.path.join(seeds, "tokenizer_model", "tiny.model"), "wb").write(f.read())

# llama2.c tokenizer.bin of the same vocabulary
pieces = [sp.id_to_piece(i) for i in range(VOCAB)]
with open(os.path.join(seeds, "tokenizer_bin", "tokenizer.bin"), "wb") as f:
    enc = [p.replace("\u2581", " ").encode() for p in pieces]
    f.write(struct.pack("<i", max(len(e) for e in enc)))
    for i, e in enumerate(enc):
        f.write(struct.pack("<fi", sp.get_score(i), len(e)) + e)

# A byte-level BPE tokenizer.json: 256 byte symbols plus a few merges.
byte_chars = [chr(c) for c in list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))]
byte_chars += [chr(256 + i) for i in range(256 - len(byte_chars))]
vocab = {c: i for i, c in enumerate(byte_chars)}
merges = ["\u0120 t", "h e", "\u0120t he", "i n", "o n"]
for m in merges:
    vocab["".join(m.split(" "))] = len(vocab)
vocab["<|endoftext|>"] = len(vocab)
tok_json = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
              "merges": merges},
}
for d in (os.path.join(seeds, "tokenizer_json"), fixtures):
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok_json, f, ensure_ascii=False)
MODEL_VOCAB = max(VOCAB, len(vocab))

# Tiny random weights (HF layout: [out, in])
def w(*shape):
    return (rng.standard_normal(shape) * 0.2).astype(np.float32)

HD = DIM // HEADS
weights = {"model.embed_tokens.weight": w(MODEL_VOCAB, DIM), "model.norm.weight": np.ones(DIM, np.float32)}
for l in range(LAYERS):
    p = f"model.layers.{l}."
    weights.update({
        p + "input_layernorm.weight": np.ones(DIM, np.float32),
        p + "self_attn.q_proj.weight": w(HEADS * HD, DIM), p + "self_attn.k_proj.weight": w(KV_HEADS * HD, DIM),
        p + "self_attn.v_proj.weight": w(KV_HEADS * HD, DIM), p + "self_attn.o_proj.weight": w(DIM, HEADS * HD),
        p + "post_attention_layernorm.weight": np.ones(DIM, np.float32),
        p + "mlp.gate_proj.weight": w(HIDDEN, DIM), p + "mlp.up_proj.weight": w(HIDDEN, DIM),
        p + "mlp.down_proj.weight": w(DIM, HIDDEN)})

# safetensors, written by hand
header, blobs, off = {}, [], 0
for name, arr in weights.items():
    b = arr.tobytes()
    header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
hj = json.dumps(header).encode()
hj += b" " * (-len(hj) % 8)
st = struct.pack("<Q", len(hj)) + hj + b"".join(blobs)
config = {"architectures": ["LlamaForCausalLM"], "hidden_size": DIM, "intermediate_size": HIDDEN,
          "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
          "max_position_embeddings": CTX, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": MODEL_VOCAB,
          "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
for d in (os.path.join(seeds, "safetensors"), fixtures):
    open(os.path.join(d, "model.safetensors"), "wb").write(st)
for d in (os.path.join(seeds, "hf_config"), fixtures):
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
# a transformers v5 layout too: RoPE under rope_parameters, a list of stop ids, layer types
with open(os.path.join(seeds, "hf_config", "config-v5.json"), "w") as f:
    v5 = {k: v for k, v in config.items() if k != "rope_theta"}
    json.dump({**v5, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0}, "eos_token_id": [2, 3], "layer_types": ["full_attention"] * LAYERS}, f)
with open(os.path.join(seeds, "generation_config", "generation_config.json"), "w") as f:
    json.dump({"bos_token_id": 1, "eos_token_id": [2, 3], "do_sample": True, "temperature": 0.6}, f)

# llama2.c checkpoint (interleaved RoPE: same random weights, order per the format)
with open(os.path.join(seeds, "llama2c", "model.bin"), "wb") as f:
    f.write(struct.pack("<7i", DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, MODEL_VOCAB, CTX))
    order = [("model.embed_tokens.weight", False), ("input_layernorm.weight", True), ("self_attn.q_proj.weight", True),
             ("self_attn.k_proj.weight", True), ("self_attn.v_proj.weight", True), ("self_attn.o_proj.weight", True),
             ("post_attention_layernorm.weight", True), ("mlp.gate_proj.weight", True), ("mlp.down_proj.weight", True),
             ("mlp.up_proj.weight", True), ("model.norm.weight", False)]
    for name, per_layer in order:
        for l in range(LAYERS if per_layer else 1):
            f.write(weights[f"model.layers.{l}.{name}" if per_layer else name].tobytes())
    f.write(np.zeros(CTX * HD, np.float32).tobytes())

# GGUF through the gguf package, with the SentencePiece vocabulary; Q8_0 and F16 tensors. A second seed states
# the head counts and FFN width as per-layer arrays (as pruned models do).
def write_gguf(path, per_layer):
    widths = (lambda v: [v] * LAYERS) if per_layer else (lambda v: v)
    gw = gguf.GGUFWriter(path, "llama")
    gw.add_context_length(CTX)
    gw.add_embedding_length(DIM)
    gw.add_block_count(LAYERS)
    gw.add_feed_forward_length(widths(HIDDEN))
    gw.add_head_count(widths(HEADS))
    gw.add_head_count_kv(widths(KV_HEADS))
    gw.add_layer_norm_rms_eps(1e-5)
    gw.add_rope_freq_base(10000.0)
    gw.add_tokenizer_model("llama")
    gw.add_token_list(pieces + [f"<extra{i}>" for i in range(MODEL_VOCAB - VOCAB)])
    gw.add_token_scores([sp.get_score(i) for i in range(VOCAB)] + [0.0] * (MODEL_VOCAB - VOCAB))
    gw.add_token_types([2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1
                        for i in range(VOCAB)] + [4] * (MODEL_VOCAB - VOCAB))
    gw.add_bos_token_id(1)
    gw.add_eos_token_id(2)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    layer_names = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                   "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                   "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight"}
    for name, arr in weights.items():
        if name in names:
            gname = names[name]
        else:
            l, rest = name.split(".")[2], ".".join(name.split(".")[3:])
            gname = f"blk.{l}.{layer_names[rest]}"
        if arr.ndim == 2 and "attn_q" in gname:
            gw.add_tensor(gname, gguf.quants.quantize(arr, gguf.GGMLQuantizationType.Q8_0),
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        elif arr.ndim == 2 and "ffn" in gname:
            gw.add_tensor(gname, arr.astype(np.float16))
        else:
            gw.add_tensor(gname, arr)
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()


write_gguf(os.path.join(seeds, "gguf", "model.gguf"), False)
write_gguf(os.path.join(seeds, "gguf", "model_per_layer.gguf"), True)

for i, text in enumerate(["Once upon a time", "héllo wörld 你好 🙂\n\n  x", "<|endoftext|>def f(x):\n\treturn 42"]):
    open(os.path.join(seeds, "tokenize_text", f"t{i}"), "w").write(text)
for i, text in enumerate(["1 2 3\n", "1,4,16", " 7 , 8\n9 \r\n", "-5 +0 1000000", "1,,2", "12abc"]):
    open(os.path.join(seeds, "int_list", f"l{i}"), "w").write(text)
# OpenAI request bodies: completions and chat, every field the parser reads
requests = [
    {"model": "squeeze", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "n": 2,
     "seed": 5, "stop": ["\n", "The"], "stream": True, "stream_options": {"include_usage": True}, "logprobs": 3,
     "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "u", "echo": False},
    {"prompt": [1, 2, 3, 4], "max_tokens": None, "stop": "x", "logit_bias": {}},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "hé"}]},
                  {"role": "assistant", "content": None, "tool_calls": []}],
     "max_completion_tokens": 5, "logprobs": True, "top_logprobs": 2, "seed": -1},
]
for i, r in enumerate(requests):
    open(os.path.join(seeds, "openai_request", f"r{i}.json"), "w").write(json.dumps(r, ensure_ascii=False))
print(f"seeds and fixtures written to {out}")

# Chat templates: the real ones of ../shared/tokenizers, the test suite's feature templates, and one with its
# own messages after a NUL byte.
shared = os.environ.get("SQ_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared"))
chat_seeds = os.path.join(seeds, "chat_template")
for name in ["llama3", "qwen3"]:
    with open(os.path.join(shared, "tokenizers", name, "tokenizer_config.json")) as f:
        open(os.path.join(chat_seeds, name + ".jinja"), "w").write(json.load(f)["chat_template"])
feature_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/data/chat")
for name in sorted(os.listdir(feature_dir)):
    if name.endswith(".jinja"):
        with open(os.path.join(feature_dir, name)) as f:
            open(os.path.join(chat_seeds, name), "w").write(f.read())
with open(os.path.join(chat_seeds, "with_messages"), "wb") as f:
    f.write(b"{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim | tojson }}{% endfor %}\0"
            + json.dumps([{"role": "user", "content": " hi \u00e9 "}, {"role": "x", "n": [1, 2.5, None]}]).encode())
