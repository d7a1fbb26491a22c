"""Llama-2 SentencePiece tokenizer (tokenizer.model protobuf and llama2.c tokenizer.bin) against python
sentencepiece: identical ids on every corpus line, TinyStories paragraph, fresh random text and invalid UTF-8
byte string, with and without BOS; decoding gives the text back (sentencepiece's own decoding for invalid
UTF-8, which it replaces by U+FFFD per bad byte); and the whole of WikiText-2 test encodes identically and fast."""
import os
import subprocess
import time

import sentencepiece as spm

from tokenizer_oracle import (SHARED, SQ_BIN, WORK, Checker, info, random_texts, read_corpus,
                              tinystories_paragraphs, tokenize_lines)

seed = int(time.time())
print("random seed", seed)
sp = spm.SentencePieceProcessor(model_file=os.path.join(SHARED, "models/tokenizer.model"))
valid = read_corpus("corpus.txt") + tinystories_paragraphs(60) + random_texts(seed, 200)
invalid = read_corpus("invalid_utf8.txt")
texts = valid + invalid
expected = [sp.encode(t) for t in texts]
c = Checker()

for name in ["tokenizer.model", "tokenizer.bin"]:
    path = os.path.join(SHARED, "models", name)
    meta = info(path)
    c.expect(meta == {"kind": "spm-bpe", "vocab": "32000", "bos": "1", "eos": "2", "adds_bos": "1"},
             "%s: info %s" % (name, meta))
    with_bos = tokenize_lines(path, texts)
    without = tokenize_lines(path, texts, "--no-bos")
    for t, e, (ids_b, dec), (ids, _) in zip(texts, expected, with_bos, without):
        c.expect(ids == e, "%s: %r: ids %s, sentencepiece %s" % (name, t, ids, e))
        c.expect(ids_b == [1] + e, "%s: %r: with BOS %s" % (name, t, ids_b[:5]))
        # sentencepiece decodes its own ids to the text, with U+FFFD for each byte that was not UTF-8
        c.expect(dec == sp.decode(e).encode(), "%s: %r: decoded %r" % (name, t, dec))
        # a literal "▁" in the text is sentencepiece's own space symbol: it decodes as a space
        if t in valid and "▁".encode() not in t:
            c.expect(dec == t, "%s: %r: round trip gave %r" % (name, t, dec))

# a special-token string is ordinary text unless --special asks for it; with it, each stretch of text between
# special tokens gets its own dummy prefix (as Hugging Face's Prepend normalizer does)
ids = tokenize_lines(os.path.join(SHARED, "models/tokenizer.model"), [b"a<s>b</s>"], "--no-bos", "--special")[0][0]
want = sp.encode("a") + [1] + sp.encode("b") + [2]
c.expect(ids == want, "--special: %s, expected %s" % (ids, want))

# WikiText-2 test in one piece: identical to sentencepiece, and quick
with open(os.path.join(SHARED, "data/wikitext-2/wiki.test.raw"), "rb") as f:
    wiki = f.read().replace(b"\r\n", b"\n")
wiki_path = os.path.join(WORK, "wiki.test.lf.txt")
with open(wiki_path, "wb") as f:
    f.write(wiki)
for name in ["tokenizer.model", "tokenizer.bin"]:
    before = os.times()
    out = subprocess.run([SQ_BIN, "tokenize", "--tokenizer", os.path.join(SHARED, "models", name), "-f", wiki_path,
                          "--ids", "--no-bos"], capture_output=True, check=True)
    after = os.times()
    # CPU time of the child (load, encode, print), not wall time: the test machine is shared
    elapsed = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    ids = [int(x) for x in out.stdout.split()]
    ref = sp.encode(wiki.decode())
    print("%s: WikiText-2 test (%d bytes) -> %d tokens in %.2f s CPU (whole process)" % (name, len(wiki), len(ids), elapsed))
    c.expect(ids == ref, "%s: WikiText-2 ids differ from sentencepiece (%d vs %d tokens)" % (name, len(ids), len(ref)))
    c.expect(elapsed < 2.0, "%s: WikiText-2 took %.2f s (limit 2 s)" % (name, elapsed))

c.finish("test_tokenizer_spm")
