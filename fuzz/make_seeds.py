#!/usr/bin/env python3
"""Writes small valid inputs for the fuzz targets (fuzz/harness.h): seeds (one folder per target) and fixtures
(the valid companion files a target needs: fixtures/model/ is a small Hugging Face directory, fixtures/sharded/
its weights in two shards). Independent of squeeze's own writers: numpy for llama2.c, safetensors and the
reference log-prob file, the gguf package for GGUF, sentencepiece's trainer for tokenizer.model, Python's bz2
for HellaSwag. Inputs that once made a target fail are kept here too, so every run replays them.

usage: make_seeds.py OUT_DIR   (creates OUT_DIR/seeds/<target>/ and OUT_DIR/fixtures/)"""
import bz2
import glob
import json
import os
import struct
import sys
from pathlib import Path

import gguf
import numpy as np
import sentencepiece as spm

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, CTX = 32, 64, 1, 4, 2, 16

out = sys.argv[1]
seeds, fixtures = os.path.join(out, "seeds"), os.path.join(out, "fixtures")
TARGETS = ["gguf", "llama2c", "safetensors", "safetensors_index", "hf_config", "generation_config",
           "tokenizer_json", "tokenizer_config", "tokenizer_model", "tokenizer_bin", "gpt2_vocab", "tokenize_text",
           "chat_template", "tasks", "report", "ref_logits", "eval_text", "int_list", "openai_request", "imatrix",
           "recipe", "lora_adapter", "train_state"]
for d in TARGETS:
    os.makedirs(os.path.join(seeds, d), exist_ok=True)
MODEL_DIR, SHARD_DIR = os.path.join(fixtures, "model"), os.path.join(fixtures, "sharded")
os.makedirs(MODEL_DIR, exist_ok=True)
os.makedirs(SHARD_DIR, exist_ok=True)
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def seed(target, name, data):
    with open(os.path.join(seeds, target, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)

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
for d in (os.path.join(seeds, "tokenizer_json"), MODEL_DIR):
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
def safetensors(tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    return struct.pack("<Q", len(hj)) + hj + b"".join(blobs)


st = safetensors(weights)
config = {"architectures": ["LlamaForCausalLM"], "hidden_size": DIM, "intermediate_size": HIDDEN,
          "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
          "max_position_embeddings": CTX, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": MODEL_VOCAB,
          "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
for d in (os.path.join(seeds, "safetensors"), MODEL_DIR):
    open(os.path.join(d, "model.safetensors"), "wb").write(st)
for d in (os.path.join(seeds, "hf_config"), MODEL_DIR):
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
# a transformers v5 layout too: RoPE under rope_parameters, a list of stop ids, layer types
with open(os.path.join(seeds, "hf_config", "config-v5.json"), "w") as f:
    v5 = {k: v for k, v in config.items() if k != "rope_theta"}
    json.dump({**v5, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0}, "eos_token_id": [2, 3], "layer_types": ["full_attention"] * LAYERS}, f)
# Phi-3 with LongRoPE factor lists and a window, Gemma 2 with soft-capping: the paths those families add
with open(os.path.join(seeds, "hf_config", "config-phi3.json"), "w") as f:
    pairs = DIM // HEADS // 2
    json.dump({**config, "architectures": ["Phi3ForCausalLM"], "original_max_position_embeddings": CTX // 4,
               "sliding_window": 7, "rope_scaling": {"type": "longrope", "short_factor": [1.0] * pairs,
                                                     "long_factor": [2.0] * pairs}}, f)
with open(os.path.join(seeds, "hf_config", "config-gemma2.json"), "w") as f:
    json.dump({**config, "architectures": ["Gemma2ForCausalLM"], "hidden_activation": "gelu_pytorch_tanh",
               "attn_logit_softcapping": 50.0, "final_logit_softcapping": None, "query_pre_attn_scalar": 16,
               "sliding_window": 4}, f)
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

# The same weights in two shards with their index
names = list(weights)
shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
          "model-00002-of-00002.safetensors": names[len(names) // 2:]}
for file, part in shards.items():
    open(os.path.join(SHARD_DIR, file), "wb").write(safetensors({n: weights[n] for n in part}))
weight_map = {n: file for file, part in shards.items() for n in part}
total = sum(a.nbytes for a in weights.values())
seed("safetensors_index", "index.json", json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))

# tokenizer_config.json beside the byte-level tokenizer.json: special tokens as strings and as objects
seed("tokenizer_config", "plain.json", json.dumps({"add_bos_token": False, "bos_token": "<|endoftext|>",
                                                   "eos_token": "<|endoftext|>", "model_max_length": 16}))
seed("tokenizer_config", "objects.json", json.dumps({
    "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
    "bos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False},
    "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False},
    "unk_token": None, "pad_token": "<|pad|>",
    "added_tokens_decoder": {str(vocab["<|endoftext|>"]): {"content": "<|endoftext|>", "special": True}}}))

# GPT-2's original files: encoder.json, a NUL byte, vocab.bpe
seed("gpt2_vocab", "gpt2", json.dumps(vocab, ensure_ascii=False).encode() + b"\0" +
     ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())

# Chat templates: the real ones of ../shared/tokenizers, the test suite's feature templates, and one with its
# own messages after a NUL byte.
shared = os.environ.get("SQ_SHARED", os.path.join(REPO, "..", "shared"))
for name in ["llama3", "qwen3"]:
    with open(os.path.join(shared, "tokenizers", name, "tokenizer_config.json")) as f:
        seed("chat_template", name + ".jinja", json.load(f)["chat_template"])
feature_dir = os.path.join(REPO, "tests", "data", "chat")
for name in sorted(os.listdir(feature_dir)):
    if name.endswith(".jinja"):
        with open(os.path.join(feature_dir, name)) as f:
            seed("chat_template", name, f.read())
seed("chat_template", "with_messages",
     b"{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim | tojson }}{% endfor %}\0"
     + json.dumps([{"role": "user", "content": " hi \u00e9 "}, {"role": "x", "n": [1, 2.5, None]}]).encode())

# Zero-shot task files (the harness's first byte picks the task: bits 0-2, batch bits 4-5; bit 3 keeps a
# HellaSwag input as raw .bz2 bytes)
good = os.path.join(REPO, "tests", "data", "eval", "good")
piqa = open(os.path.join(good, "piqa.jsonl"), "rb").read()
for i, task in enumerate(["piqa", "arc_easy", "arc_challenge", "boolq", "openbook_qa"]):
    seed("tasks", task, bytes([i | (i % 4) << 4]) + piqa)
seed("tasks", "winogrande", b"\x05" + open(os.path.join(good, "winogrande.jsonl"), "rb").read())
seed("tasks", "lambada", b"\x16" + open(os.path.join(good, "lambada_openai.jsonl"), "rb").read())
hellaswag_bz2 = open(os.path.join(good, "hellaswag_val.txt.bz2"), "rb").read()
seed("tasks", "hellaswag_text", b"\x07" + bz2.decompress(hellaswag_bz2))
seed("tasks", "hellaswag_bz2", b"\x0f" + hellaswag_bz2)
seed("tasks", "hellaswag_two_streams", b"\x2f" + hellaswag_bz2 + bz2.compress(bz2.decompress(hellaswag_bz2)))

# Reports: the test suite's examples, several per input (separated by NUL bytes) so that variants merge
reports = {os.path.basename(f): open(f, "rb").read() for f in glob.glob(os.path.join(REPO, "tests", "data", "report", "*.json"))}
groups = [["bench_f32_vs_q8.json", "ppl_f32.json", "ppl_q8.json", "eval_f32.json"],
          ["ppl_q4.json", "ppl_q4_pruned.json", "eval_q4.json", "bench_q4.json"],
          ["ppl_diverged.json", "bench_bf16_only.json", "ppl_f16.json", "bench_f16.json"]]
for i, group in enumerate(groups):
    seed("report", f"group{i}", b"\0".join(reports[name] for name in group))
for name, data in reports.items():
    seed("report", name, data)

# Reference log-prob files (docs/eval.md) for the harness's run: ids (7i+1) mod vocab, windows of 8
N_IDS, REF_CTX = 24, 8
ids = [(7 * i + 1) % MODEL_VOCAB for i in range(N_IDS)]
fnv = 1469598103934665603
for v in ids:
    for b in struct.pack("<i", v):
        fnv = ((fnv ^ b) * 1099511628211) % 2**64
targets = [ids[w * REF_CTX + p] for w in range(N_IDS // REF_CTX) for p in range(1, REF_CTX)]
for top_k in (1, 4, MODEL_VOCAB):
    head = b"SQREFLP1" + struct.pack("<6I4Q", 1, MODEL_VOCAB, REF_CTX, 0, 0, top_k, N_IDS, fnv, len(targets), 0)
    body = b""
    for target in targets:
        z = rng.standard_normal(MODEL_VOCAB) * 2
        lse = np.log(np.sum(np.exp(z - z.max()))) + z.max()
        order = np.argsort(-z, kind="stable")[:top_k]
        tail = np.exp(np.delete(z, order) - lse).sum()
        body += struct.pack("<2f", z[target] - lse, tail) + order.astype("<i4").tobytes() + \
            (z[order] - lse).astype("<f4").tobytes()
    seed("ref_logits", f"top{top_k}", head + body)

# Evaluation text
seed("eval_text", "crlf", "Once upon a time\r\nthere was a girl.\r\n\r\nThe end.\n")
seed("eval_text", "unicode", "héllo wörld 你好 🙂\n\tx \u2028 y\0z")
seed("eval_text", "bad_utf8", b"valid line\nthen \xe4\xbd a cut sequence\n")

# Integer lists (ppl --ids-file)
for i, text in enumerate(["1 2 3\n", "1,4,16", " 7 , 8\n9 \r\n", "-5 +0 1000000", "1,,2", "12abc"]):
    seed("int_list", f"l{i}", text)

# OpenAI request bodies: completions and chat, every field the parser reads
requests = [
    {"model": "squeeze", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "n": 2,
     "seed": 5, "stop": ["\n", "The"], "stream": True, "stream_options": {"include_usage": True}, "logprobs": 3,
     "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "u", "echo": False},
    {"prompt": [1, 2, 3, 4], "max_tokens": None, "stop": "x", "logit_bias": {}},
    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": "h\u00e9"}]},
                  {"role": "assistant", "content": None, "tool_calls": []}],
     "max_completion_tokens": 5, "logprobs": True, "top_logprobs": 2, "seed": -1},
]
for i, r in enumerate(requests):
    seed("openai_request", f"r{i}.json", json.dumps(r, ensure_ascii=False))
# Compression recipes: the shipped ones and every key the parser reads
for path in sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.json")):
    seed("recipe", path.name, path.read_bytes())
seed("recipe", "all_keys.json", json.dumps({"name": "n", "steps": [
    {"prune": {"method": "width", "heads": 0.25, "ffn": 0.5}},
    {"prune": {"method": "sparsegpt", "sparsity": 0.5}},
    {"prune": {"method": "depth", "remove": 2, "criterion": "magnitude"}},
    {"quantize": {"type": "q4_0", "method": "gptq", "damp": 0.05, "act_order": True,
                  "keep": {"blk.*.ffn_down.weight": "q8_0", "output.weight": "f16"}}}]}))
# A PEFT LoRA adapter for the fixture model (its config, a NUL, its safetensors) and a trainer checkpoint of
# rank 2 on every linear layer (src/train/optim.c's layout: magic, step, rank, targets, arrays; each array
# its length, values, AdamW m and v).
LORA_SHAPES = [("self_attn.q_proj", HEADS * HD, DIM), ("self_attn.k_proj", KV_HEADS * HD, DIM),
               ("self_attn.v_proj", KV_HEADS * HD, DIM), ("self_attn.o_proj", DIM, HEADS * HD),
               ("mlp.gate_proj", HIDDEN, DIM), ("mlp.up_proj", HIDDEN, DIM), ("mlp.down_proj", DIM, HIDDEN)]
adapter, state = {}, [b"SQTRAIN1", struct.pack("<4q", 3, 2, 127, 2 * LAYERS * len(LORA_SHAPES))]
for l in range(LAYERS):
    for mod, o, i_ in LORA_SHAPES:
        for kind, shape in (("A", (2, i_)), ("B", (o, 2))):
            a = w(*shape)
            adapter[f"base_model.model.model.layers.{l}.{mod}.lora_{kind}.weight"] = a
            state += [struct.pack("<q", a.size), a.tobytes(), (a * 0.1).tobytes(), np.abs(a).tobytes()]
lora_cfg = json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "bias": "none", "use_rslora": False,
                       "target_modules": [m.split(".")[1] for m, _, _ in LORA_SHAPES]}).encode()
seed("lora_adapter", "adapter", lora_cfg + b"\0" + safetensors(adapter))
seed("train_state", "state.bin", b"".join(state))

print(f"seeds and fixtures written to {out}")

# imatrix files (docs/formats.md, "imatrix files"), written here from the layout alone: two entries, none.
def imatrix_file(entries):
    out = b"SQIMATRX" + struct.pack("<II", 1, len(entries))
    for name, n_tokens, values in entries:
        out += struct.pack("<I", len(name)) + name.encode() + struct.pack("<QI", n_tokens, len(values))
        out += np.asarray(values, dtype="<f4").tobytes()
    return out


seed("imatrix", "two", imatrix_file([("blk.0.attn_q.weight", 64, [0.5, 1.0, 0.0, 2.5]),
                                     ("blk.0.ffn_down.weight", 64, [1e-3] * 8)]))
seed("imatrix", "empty", imatrix_file([]))

