"""Helpers shared by the tokenizer reference tests: the corpus, the --lines escape scheme, and running
`squeeze tokenize` on many texts in one invocation."""
import os
import random
import re
import shutil
import subprocess
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

SHARED = os.environ.get("SQ_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
SQ_BIN = os.environ.get("SQ_BIN", "squeeze")
TEST_DATA = os.environ.get("SQ_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))
WORK = os.environ.get("SQ_WORK", "/tmp")

_ESC = re.compile(rb"\\(\\|n|r|t|x[0-9A-Fa-f]{2})")


def sanitized_binary():
    """Whether SQ_BIN is an AddressSanitizer build, whose timings say nothing about speed."""
    with open(SQ_BIN, "rb") as f:
        return b"__asan_init" in f.read()


def work_path(name):
    """A scratch path of this process alone (ctest runs tests in parallel in one scratch directory)."""
    return os.path.join(WORK, "%s.%d" % (name, os.getpid()))


def wikitext_lf():
    """WikiText-2 test with its CRLF line ends normalised to LF: (bytes, path of a scratch copy). Sanitizer
    builds get its first 200 kB, to keep their test time modest."""
    with open(os.path.join(SHARED, "data/wikitext-2/wiki.test.raw"), "rb") as f:
        wiki = f.read().replace(b"\r\n", b"\n")
    if sanitized_binary():
        wiki = wiki[:wiki.index(b"\n", 200000) + 1]
    path = work_path("wiki.test.lf.txt")
    with open(path, "wb") as f:
        f.write(wiki)
    return wiki, path


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


class Batch(list):
    """[(ids, decoded bytes)] per text, and .info: the tokenizer's facts from --info."""


def tokenize_lines(tokenizer, texts, *flags):
    """Runs squeeze tokenize --info --lines --show-decoded on all texts at once."""
    path = work_path("tokenizer_batch.txt")
    with open(path, "wb") as f:
        f.write(b"\n".join(escape(t) for t in texts) + b"\n")
    out = subprocess.run([SQ_BIN, "tokenize", "--tokenizer", tokenizer, "-f", path, "--info", "--lines",
                          "--show-decoded", *flags], capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("squeeze tokenize failed (%d): %s" % (out.returncode, out.stderr.decode(errors="replace")))
    head, *rows = out.stdout.split(b"\n")[:-1]
    if len(rows) != len(texts):
        raise RuntimeError("expected %d result lines, got %d" % (len(texts), len(rows)))
    result = Batch()
    result.info = dict(kv.split("=") for kv in head.decode().split())
    for row in rows:
        ids, dec = row.split(b"\t", 1)
        result.append(([int(x) for x in ids.split()], unescape(dec)))
    return result


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
    out = work_path("gpt2-hf")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    return path


def llama2_metaspace_json(scheme, split):
    """The Llama-2-style tokenizer.json rewritten in the newer form Hugging Face converts to: no normalizer,
    pre-tokenizer Metaspace(prepend_scheme, split); tokenizer_config.json copied beside it."""
    src = os.path.join(SHARED, "tokenizers/llama2")
    tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme, split=split)
    out = work_path("llama2-metaspace-%s-%s" % (scheme, split))
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    shutil.copy(os.path.join(src, "tokenizer_config.json"), out)
    return os.path.join(out, "tokenizer.json")


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data, i):
    x = shift = 0
    while True:
        b = data[i]
        i += 1
        x |= (b & 0x7F) << shift
        shift += 7
        if not (b & 0x80):
            return x, i


def sentencepiece_with_unused(src, dst, unused_ids):
    """Copies a SentencePiece model, marking the pieces unused_ids as UNUSED (type 5) by rewriting the protobuf:
    a piece message gets field 3 = 5 appended (a later field wins in protobuf)."""
    with open(src, "rb") as f:
        data = f.read()
    out, i, piece = bytearray(), 0, 0
    while i < len(data):
        key, j = _read_varint(data, i)
        length, k = _read_varint(data, j)
        body = data[k:k + length]
        if key == 0x0A:  # field 1, length-delimited: a piece
            if piece in unused_ids:
                body += b"\x18\x05"
            piece += 1
        out += _varint(key) + _varint(len(body)) + body
        i = k + length
    with open(dst, "wb") as f:
        f.write(bytes(out))
