"""Streaming decoding after a context (sq_detokenizer_reset) against independent decoders: sentencepiece for the
Llama-2 tokenizer.model, Hugging Face `tokenizers` for the tokenizer.json files (Llama-2-style spm BPE with byte
fallback, also rewritten with Metaspace pre-tokenizers; Llama-3, Qwen3 and GPT-2 byte-level BPE).

The property (issue 7, item 5): for any context (a prompt's ids) and continuation (generated ids), what the
stream returns is decode(context + continuation) minus decode(context), byte for byte. Checked on fresh random
cases of four kinds: one encoding split at a random token (so UTF-8 characters split over byte tokens fall on
either side), two independent encodings joined (a continuation that begins with its own spm word-start "▁",
as a model's generated " girl" after "a little" does), encodings and special tokens (BOS, EOS, chat markers)
in random order split anywhere, and random vocabulary ids. The oracle decodes the whole sequence and the context; a
context that ends inside a character cannot be decoded alone, so there squeeze's decode of the context must be
a prefix of the oracle's whole text and the stream the rest of it."""
import os
import random
import subprocess
import time

import sentencepiece
from tokenizers import Tokenizer

from tokenizer_oracle import (SHARED, Checker, gpt2_tokenizer_json, llama2_metaspace_json, random_texts,
                              tinystories_paragraphs)

TOOL = os.environ["SQ_STREAM_DECODE"]
seed = int(time.time())
print("random seed", seed)
rng = random.Random(seed)
texts = [t.decode() for t in random_texts(seed, 150)] + [p.decode() for p in tinystories_paragraphs(20)]
c = Checker()


class Spm:
    """sentencepiece: control tokens decode to nothing, <unk> to " ⁇ " (so random ids leave it out)."""

    def __init__(self, path):
        self.sp = sentencepiece.SentencePieceProcessor(model_file=path)
        n = self.sp.get_piece_size()
        self.specials = [i for i in range(n) if self.sp.is_control(i)]
        self.plain = [i for i in range(n) if not (self.sp.is_control(i) or self.sp.is_unknown(i) or self.sp.is_byte(i))]
        self.bos = self.sp.bos_id()

    def encode(self, text):
        return self.sp.encode(text)

    def decode(self, ids):
        return self.sp.decode(ids)


class Hf:
    """Hugging Face tokenizers, decoding with skip_special_tokens (squeeze's control tokens produce nothing)."""

    def __init__(self, path, bos):
        self.tok = Tokenizer.from_file(path)
        added = self.tok.get_added_tokens_decoder()
        # <unk> is special to Hugging Face (skipped) but text to squeeze, as to sentencepiece (" ⁇ "): left out
        unk = getattr(self.tok.model, "unk_token", None)
        self.specials = [i for i, t in added.items() if t.special and t.content != unk]
        self.plain = [i for i in range(self.tok.get_vocab_size()) if i not in added or not added[i].special]
        self.bos = bos

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)


def cases(oracle):
    """(context, continuation) pairs of the four kinds, fresh every run."""
    out = []
    bos = [oracle.bos] if oracle.bos is not None else []
    for _ in range(120):  # one text split anywhere
        ids = bos + oracle.encode(rng.choice(texts)) if rng.random() < 0.7 else oracle.encode(rng.choice(texts))
        k = rng.randint(0, len(ids))
        out.append((ids[:k], ids[k:]))
    for _ in range(120):  # a prompt, then a continuation encoded on its own
        out.append((bos + oracle.encode(rng.choice(texts)), oracle.encode(rng.choice(texts))))
    for _ in range(120):  # special tokens between texts (a control token inside a character's byte tokens
        # makes the oracles drop the character: they decode the byte runs on either side apart)
        ids = []
        for _ in range(rng.randint(1, 6)):
            ids += [rng.choice(oracle.specials)] if rng.random() < 0.5 else oracle.encode(rng.choice(texts))
        k = rng.randint(0, len(ids))
        out.append((ids[:k], ids[k:]))
    for _ in range(120):  # random vocabulary ids
        ids = [rng.choice(oracle.plain) for _ in range(rng.randint(0, 12))]
        k = rng.randint(0, len(ids))
        out.append((ids[:k], ids[k:]))
    out += [([], []), (bos, []), ([], oracle.encode(" Hello world")), (bos, oracle.encode(" Hello world"))]
    return out


def valid_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def check_tokenizer(name, path, oracle):
    todo = cases(oracle)
    lines = b"".join(b"%s\t%s\n" % (" ".join(map(str, a)).encode(), " ".join(map(str, b)).encode())
                     for a, b in todo)
    out = subprocess.run([TOOL, path], input=lines, capture_output=True, check=False)
    c.expect(out.returncode == 0, "%s: stream_decode failed: %s" % (name, out.stderr.decode(errors="replace")))
    rows = out.stdout.split(b"\n")[:-1]
    c.expect(len(rows) == len(todo), "%s: %d result lines for %d cases" % (name, len(rows), len(todo)))
    split_chars = leading_space = 0
    for (ctx, cont), row in zip(todo, rows):
        dec_ctx, streamed, dec_all = (bytes.fromhex(f.decode()) for f in row.split(b"\t"))
        what = "%s: context %s, continuation %s" % (name, ctx, cont)
        # squeeze's own property: the stream is exactly what the continuation adds to the decoded text
        c.expect(dec_ctx + streamed == dec_all, "%s: decode(context) %r + streamed %r != decode(all) %r"
                 % (what, dec_ctx, streamed, dec_all))
        want_all = oracle.decode(ctx + cont)
        if valid_utf8(dec_all):
            want = want_all.encode()
            c.expect(dec_all == want, "%s: decode(all) %r, oracle %r" % (what, dec_all, want))
            c.expect(want.startswith(dec_ctx) and want[len(dec_ctx):] == streamed,
                     "%s: streamed %r, oracle's continuation %r" % (what, streamed, want[len(dec_ctx):]))
            if valid_utf8(dec_ctx):
                c.expect(dec_ctx == oracle.decode(ctx).encode(), "%s: decode(context) %r, oracle %r"
                         % (what, dec_ctx, oracle.decode(ctx)))
            else:
                split_chars += 1
            leading_space += streamed[:1] == b" "
        else:  # random byte-level ids: the oracle replaces each invalid sequence, as Python's decoder does
            c.expect(isinstance(oracle, Hf) and want_all == dec_all.decode("utf-8", "replace"),
                     "%s: decode(all) %r, oracle %r" % (what, dec_all, want_all))
    print("%s: %d cases, %d with a character split at the context's end, %d streams starting with a space"
          % (name, len(todo), split_chars, leading_space))
    c.expect(leading_space > 0, "%s: no case streamed a leading space" % name)


check_tokenizer("tokenizer.model", os.path.join(SHARED, "models/tokenizer.model"),
                Spm(os.path.join(SHARED, "models/tokenizer.model")))
llama2 = os.path.join(SHARED, "tokenizers/llama2/tokenizer.json")
check_tokenizer("llama2 tokenizer.json", llama2, Hf(llama2, 1))
for scheme, split in [("first", False), ("always", True)]:
    path = llama2_metaspace_json(scheme, split)
    check_tokenizer("llama2 Metaspace %s" % scheme, path, Hf(path, 1))
llama3 = os.path.join(SHARED, "tokenizers/llama3/tokenizer.json")
check_tokenizer("llama3", llama3, Hf(llama3, 128000))
qwen3 = os.path.join(SHARED, "tokenizers/qwen3/tokenizer.json")
check_tokenizer("qwen3", qwen3, Hf(qwen3, None))
gpt2 = gpt2_tokenizer_json()
check_tokenizer("gpt2", gpt2, Hf(gpt2, None))
c.finish("test_stream_decode")
