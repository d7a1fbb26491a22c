"""Helpers shared by the tokenizer reference tests: the corpus, the --lines escape scheme, and running
`squeeze tokenize` on many texts in one invocation."""
import os
import random
import re
import subprocess
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

SHARED = os.environ.get("SQ_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
SQ_BIN = os.environ.get("SQ_BIN", "squeeze")
TEST_DATA = os.environ.get("SQ_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))
WORK = os.environ.get("SQ_WORK", "/tmp")

_ESC = re.compile(rb"\\(\\|n|r|t|x[0-9A-Fa-f]{2})")


def unescape(line: bytes) -> bytes:
    def sub(m):
        e = m.group(1)
        return {b"\\": b"\\", b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(e) or bytes([int(e[1:], 16)])

    return _ESC.sub(sub, line)


def escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b == 0x5C:
            out += b"\\\\"
        elif 0x20 <= b < 0x7F:
            out.append(b)
        else:
            out += b"\\x%02X" % b
    return bytes(out)


def read_corpus(name):
    with open(os.path.join(TEST_DATA, "tokenizer", name), "rb") as f:
        return [unescape(l) for l in f.read().split(b"\n") if l]


def tinystories_paragraphs(n):
    with open(os.path.join(SHARED, "data/tinystories/valid-a.txt"), "rb") as f:
        paras = [p.strip(b"\n") for p in f.read().split(b"\n\n") if p.strip()]
    return paras[:n]


def random_texts(seed, n):
    """Fresh random strings drawn from pieces that stress the tokenizers: scripts, digits, whitespace, emoji."""
    rng = random.Random(seed)
    pools = ["abc xyz", "The", " the", "ing", "'s", "'LL", "0123456789", "  ", "\t", "\n", "\r\n", "日本語",
             "中文", "한국어", "Привет", "é", "e\u0301", "👍🏽", "👨‍👩‍👧", "🤖", "…", "—", "$%&", "\u00a0", "ß",
             "İ", "ﬁ", "<s>", "<|endoftext|>", "<|im_start|>", "</s", "▁", "Ġ", "\\", "\"", "x" * 40, "1" * 17]
    return [("".join(rng.choice(pools) for _ in range(rng.randint(1, 30)))).encode() for _ in range(n)]


def tokenize_lines(tokenizer, texts, *flags):
    """Runs squeeze tokenize --lines --show-decoded; returns [(ids, decoded bytes)] in order."""
    path = os.path.join(WORK, "tokenizer_batch_%d.txt" % os.getpid())
    with open(path, "wb") as f:
        f.write(b"\n".join(escape(t) for t in texts) + b"\n")
    out = subprocess.run([SQ_BIN, "tokenize", "--tokenizer", tokenizer, "-f", path, "--lines", "--show-decoded",
                          *flags], capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("squeeze tokenize failed (%d): %s" % (out.returncode, out.stderr.decode(errors="replace")))
    rows = out.stdout.split(b"\n")[:-1]
    if len(rows) != len(texts):
        raise RuntimeError("expected %d result lines, got %d" % (len(texts), len(rows)))
    result = []
    for row in rows:
        ids, dec = row.split(b"\t", 1)
        result.append(([int(x) for x in ids.split()], unescape(dec)))
    return result


def info(tokenizer):
    out = subprocess.run([SQ_BIN, "tokenize", "--tokenizer", tokenizer, "--info"], capture_output=True, check=True)
    return dict(kv.split("=") for kv in out.stdout.decode().split())


class Checker:
    def __init__(self):
        self.failures = 0
        self.checks = 0

    def expect(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures += 1
            if self.failures <= 40:
                print("FAIL:", what)

    def finish(self, name):
        print("%s: %d checks, %d failures" % (name, self.checks, self.failures))
        sys.exit(1 if self.failures else 0)


def gpt2_tokenizer_json():
    """GPT-2 as Hugging Face builds it from the original encoder.json + vocab.bpe."""
    d = os.path.join(SHARED, "tokenizers/gpt2")
    tok = Tokenizer(models.BPE.from_file(os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    out = os.path.join(WORK, "gpt2-hf")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    return path
