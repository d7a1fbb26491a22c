"""GGUF metadata from the wild, written by the `gguf` package (llama.cpp's own writer): a tiny llama model
with a 259-token vocabulary (<unk>, <s>, </s> and the 256 byte tokens) and one metadata change per case.

Special-token ids squeeze can do without (padding 264 in 259 tokens, 0xFFFFFFFF as hub files write "none",
an out-of-range EOS, BOS or unknown id) must not block the model: it loads and runs, the id is treated as
absent (llama.cpp warns and goes on) and `squeeze: warning:` names the key and value; the logits are those of
the clean file. End-of-turn / end-of-message ids join the end-of-generation set. Metadata that changes the
arithmetic beyond what squeeze computes (linear RoPE position scaling) is refused naming the key, and a dense
file that claims experts is refused naming the key or tensor it lacks; a wrong value type stays an error
(llama.cpp refuses it too)."""
import os
import subprocess
import sys

import gguf
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from formats_common import BIN, check, finish, squeeze, work  # noqa: E402

DIM, FFN, HEADS, KV_HEADS, CTX = 32, 64, 2, 1, 64
TOKENS = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
U32, I32, F32, STR = "u32", "i32", "f32", "str"
PAD, EOS, BOS, UNK = ("tokenizer.ggml.padding_token_id", "tokenizer.ggml.eos_token_id",
                      "tokenizer.ggml.bos_token_id", "tokenizer.ggml.unknown_token_id")
EOT, EOM = "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"


def write(name, extra):
    """The tiny model with the standard special ids (unk 0, bos 1, eos 2) overridden or extended by
    extra = {key: (type, value)}. Same weights in every file."""
    rng = np.random.default_rng(7)
    path = work(f"gguf-meta-{name}.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_block_count(1)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")
    w.add_token_list(TOKENS)
    w.add_token_scores([0.0] * len(TOKENS))
    w.add_token_types([2, 3, 3] + [6] * 256)
    ids = {UNK: (U32, 0), BOS: (U32, 1), EOS: (U32, 2), **extra}
    add = {U32: w.add_uint32, I32: w.add_int32, F32: w.add_float32, STR: w.add_string}
    for key, (typ, value) in ids.items():
        add[typ](key, value)
    hd = DIM // HEADS

    def t(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    w.add_tensor("token_embd.weight", rng.standard_normal((len(TOKENS), DIM)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones(DIM, np.float32))
    w.add_tensor("output.weight", t(len(TOKENS), DIM))
    for n, shape in [("attn_norm.weight", None), ("attn_q.weight", (HEADS * hd, DIM)),
                     ("attn_k.weight", (KV_HEADS * hd, DIM)), ("attn_v.weight", (KV_HEADS * hd, DIM)),
                     ("attn_output.weight", (DIM, HEADS * hd)), ("ffn_norm.weight", None),
                     ("ffn_gate.weight", (FFN, DIM)), ("ffn_up.weight", (FFN, DIM)), ("ffn_down.weight", (DIM, FFN))]:
        w.add_tensor(f"blk.0.{n}", np.ones(DIM, np.float32) if shape is None else t(*shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def logits(path):
    out = work("gguf-meta-logits.f32")
    rc, _, err = squeeze("logits", "-m", path, "--tokens", "1 72 105 33 10 200", "-o", out, "-t", "1")
    return np.fromfile(out, dtype="<f4") if rc == 0 else err


def warnings_of(stderr):
    return [l[len("squeeze: warning: "):] for l in stderr.splitlines() if l.startswith("squeeze: warning: ")]


# name, metadata changes, the warning it must give (None: none), what `info` must show
TOLERATED = [
    ("pad-264", {PAD: (U32, 264)}, f"{PAD} = 264 is outside the vocabulary of 259 tokens; treated as absent",
     "bos 1, eos 2"),
    ("pad-sep-none", {PAD: (U32, 0xFFFFFFFF), "tokenizer.ggml.seperator_token_id": (U32, 0xFFFFFFFF)},
     f"{PAD} = 4294967295 is outside", "eos ids:         2\n"),
    ("pad-int32-minus-1", {PAD: (I32, -1)}, f"{PAD} = -1 is outside", "bos 1, eos 2"),
    ("eos-300", {EOS: (U32, 300)}, f"{EOS} = 300 is outside", "eos ids:         none"),
    ("bos-none", {BOS: (U32, 0xFFFFFFFF)}, f"{BOS} = 4294967295 is outside", "bos -1, eos 2"),
    ("unk-999", {UNK: (U32, 999)}, f"{UNK} = 999 is outside", "bos 1, eos 2"),
    ("eot-eom", {EOT: (U32, 5), EOM: (U32, 6)}, None, "eos ids:         2, 5, 6\n"),
    ("eot-none", {EOT: (U32, 0xFFFFFFFF)}, f"{EOT} = 4294967295 is outside", "eos ids:         2\n"),
    ("rope-linear-factor-1", {"llama.rope.scaling.type": (STR, "linear"), "llama.rope.scaling.factor": (F32, 1.0)},
     None, "theta 10000"),
    ("dense-expert-count-0", {"llama.expert_count": (U32, 0)}, None, "bos 1, eos 2"),
]

REFUSED = [
    ("rope-scaling-factor-4", {"llama.rope.scaling.factor": (F32, 4.0)},
     "llama.rope.scaling.factor = 4 (linear RoPE position scaling) is not supported"),
    ("rope-scale-linear-2", {"llama.rope.scale_linear": (F32, 2.0)}, "llama.rope.scale_linear = 2"),
    ("rope-yarn", {"llama.rope.scaling.type": (STR, "yarn"), "llama.rope.scaling.factor": (F32, 4.0)},
     "rope scaling type 'yarn' is not supported"),
    # mixture of experts is supported since issue 14 (a llama file with experts reads as Mixtral): a dense file
    # that claims experts is refused naming the missing top-k key, or, with it, the missing router tensor
    ("experts-8", {"llama.expert_count": (U32, 8)}, "GGUF metadata key llama.expert_used_count is missing"),
    ("experts-8-top-2", {"llama.expert_count": (U32, 8), "llama.expert_used_count": (U32, 2)},
     "router tensor blk.0.ffn_gate_inp.weight is missing"),
    ("pad-string", {PAD: (STR, "none")}, f"{PAD} is a string, expected an integer"),
]


def main():
    clean = write("clean", {})
    rc, out, err = squeeze("info", "-m", clean)
    check(rc == 0 and not warnings_of(err) and "spm-bpe, 259 tokens, bos 1, eos 2" in out
          and "eos ids:         2\n" in out, f"clean file: loads without warnings ({err.strip()})")
    want = logits(clean)
    check(isinstance(want, np.ndarray), f"clean file: logits ({want if isinstance(want, str) else ''})")
    for name, extra, warning, shown in TOLERATED:
        path = write(name, extra)
        rc, out, err = squeeze("info", "-m", path)
        got = warnings_of(err)
        check(rc == 0, f"{name}: loads ({err.strip()})")
        if warning:
            check(len(got) == 1 and warning in got[0] and path in got[0], f"{name}: one warning naming it: {got}")
        else:
            check(not got, f"{name}: no warning: {got}")
        check(shown in out, f"{name}: info shows {shown.strip()!r}")
        got_logits = logits(path)
        check(isinstance(got_logits, np.ndarray) and np.array_equal(got_logits, want),
              f"{name}: the same logits as the clean file")
        # random weights emit arbitrary bytes: compare them as bytes
        r = subprocess.run([BIN, "run", "-m", path, "-p", "Hi", "-n", "4", "--temp", "0", "-t", "1"],
                           capture_output=True)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 0 and r.stdout.startswith(b"Hi") and (not warning or "squeeze: warning: " in err),
              f"{name}: run generates and warns ({err.strip()[-200:]})")
    # BOS treated as absent: nothing is prepended
    rc, out, _ = squeeze("tokenize", "-m", work("gguf-meta-bos-none.gguf"), "-p", "Hi", "--ids")
    check(rc == 0 and out.split() and out.split()[0] != "1", f"bos-none: no BOS prepended ({out.strip()})")
    for name, extra, needle in REFUSED:
        path = write(name, extra)
        rc, _, err = squeeze("info", "-m", path)
        check(rc == 1 and needle in err and path in err, f"{name}: refused naming the key ({err.strip()})")
    finish()


main()
