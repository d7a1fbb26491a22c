/* Bad tokenizer files give clear errors naming the file, never a crash or a silently wrong tokenizer:
 * truncated and garbage tokenizer.model, tokenizer.bin with absurd lengths, malformed or unsupported
 * tokenizer.json, and inconsistent vocabulary specs. Run under ASan/UBSan as well. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "tokenizer/tokenizer.h"

/* Loading path must fail, with the path and `needle` in the message. */
static void expect_load_error(const char *path, const char *needle) {
    sq_tokenizer *tok = NULL;
    sq_error *err = sq_tokenizer_load(path, &tok);
    assert_null(tok);
    if (!err) fail_msg("%s: loaded, expected an error mentioning \"%s\"", path, needle);
    if (!strstr(sq_error_message(err), path))
        fail_msg("error does not name the file: %s", sq_error_message(err));
    sq_test_fails_with(err, needle);
}

static void test_missing_and_empty(void **state) {
    (void)state;
    expect_load_error(sq_test_work("tok_does_not_exist.model"), "cannot open");
    const char *empty = sq_test_work("tok_empty.model");
    sq_test_write_file(empty, "", 0);
    expect_load_error(empty, "empty");
}

static void test_truncated_sentencepiece_model(void **state) {
    (void)state;
    size_t n;
    unsigned char *data = (unsigned char *)sq_test_read_file(sq_test_shared("models/tokenizer.model"), &n);
    const char *path = sq_test_work("tok_truncated.model");
    uint64_t seed = (uint64_t)time(NULL);
    print_message("seed %llu\n", (unsigned long long)seed);
    /* cuts inside the pieces, inside the trainer and normaliser specs, and one byte short of the end */
    size_t cuts[12] = {1, 2, 7, n - 1, n - 2, n - 100};
    for (int i = 6; i < 12; i++) cuts[i] = 3 + sq_test_rand_u64(&seed) % (n - 4);
    for (int i = 0; i < 12; i++) {
        sq_test_write_file(path, data, cuts[i]);
        sq_tokenizer *tok = NULL;
        sq_error *err = sq_tokenizer_load(path, &tok);
        /* a cut on a field boundary leaves well-formed protobuf without the trainer spec (so unigram) */
        if (!err) fail_msg("cut at %zu of %zu bytes loaded", cuts[i], n);
        assert_null(tok);
        assert_non_null(strstr(sq_error_message(err), path));
        sq_error_free(err);
    }
    free(data);
}

static void test_garbage_sentencepiece_model(void **state) {
    (void)state;
    const char *path = sq_test_work("tok_garbage.model");
    uint64_t seed = 12345;
    unsigned char buf[4096];
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)sq_test_rand_u64(&seed);
        buf[0] = 0x0A; /* looks like a first piece */
        sq_test_write_file(path, buf, sizeof buf);
        sq_tokenizer *tok = NULL;
        sq_error *err = sq_tokenizer_load(path, &tok);
        if (!err) fail_msg("random bytes (rep %d) loaded as a tokenizer", rep);
        assert_non_null(strstr(sq_error_message(err), path));
        sq_error_free(err);
    }
}

/* Found by fuzzing: a piece whose name field repeats, the second time empty, once freed its first name twice.
 */
static void test_repeated_piece_field(void **state) {
    (void)state;
    const char *path = sq_test_work("tok_repeated_field.model");
    /* ModelProto.pieces (field 1) = { piece (field 1) = "a", piece (field 1) = "" } */
    const unsigned char model[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x0a, 0x00};
    sq_test_write_file(path, model, sizeof model);
    expect_load_error(path, "empty");
}

static void test_llama2c_vocab_bad_lengths(void **state) {
    (void)state;
    const char *path = sq_test_work("tok_bad.bin");
    /* max_token_length 27, then token 0 claims 2^31-1 bytes */
    unsigned char absurd[16] = {27, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F, 'a', 'b', 'c', 'd'};
    sq_test_write_file(path, absurd, sizeof absurd);
    expect_load_error(path, "length");
    /* a length above max_token_length but inside the file */
    unsigned char too_long[20] = {2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c'};
    sq_test_write_file(path, too_long, 15);
    expect_load_error(path, "max_token_length");
    unsigned char zero_max[8] = {0};
    sq_test_write_file(path, zero_max, sizeof zero_max);
    expect_load_error(path, "max_token_length");
    /* the real file cut inside its last token */
    size_t n;
    unsigned char *data = (unsigned char *)sq_test_read_file(sq_test_shared("models/tokenizer.bin"), &n);
    sq_test_write_file(path, data, n - 1);
    expect_load_error(path, "token 31999");
    free(data);
}

static void test_malformed_tokenizer_json(void **state) {
    (void)state;
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0", "malformed JSON"},
        {"[1, 2, 3]", "malformed JSON"},
        {"{\"version\": \"1.0\"}", "no \"model\""},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", "Unigram"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "WordPiece"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": []},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "no token has id 1"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "merge 0"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -5}}}", "not a valid id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
         "{\"type\": "
         "\"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, "
         "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}}",
         "regex"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
         "{\"type\": "
         "\"Whitespace\"}}",
         "not supported"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": "
         "\"NFKC\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "NFKC"},
    };
    const char *path = sq_test_work("tok_bad.json");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sq_test_write_file(path, cases[i].json, strlen(cases[i].json));
        expect_load_error(path, cases[i].needle);
    }
}

/* The path of encoder.json in a new folder `dir` of the work directory (a static buffer). */
static const char *encoder_json_path(const char *dir) {
    static char path[4200];
    const char *work = sq_test_work(dir);
    mkdir(work, 0777);
    snprintf(path, sizeof path, "%s/encoder.json", work);
    return path;
}

static void test_gpt2_encoder_without_merges(void **state) {
    (void)state;
    const char *path = encoder_json_path("tok_gpt2_alone");
    const char json[] = "{\"<|endoftext|>\": 1, \"a\": 0}";
    sq_test_write_file(path, json, strlen(json));
    expect_load_error(path, "vocab.bpe");
}

/* Loads path in a child process whose address space may grow by at most 256 MiB, and expects the error
 * `needle`: a file naming a huge id must be refused before anything sized by that id is allocated. Under
 * AddressSanitizer, whose shadow memory needs the address space, only the message is checked. */
static void expect_bounded_load_error(const char *path, const char *needle) {
#if defined(__SANITIZE_ADDRESS__)
    expect_load_error(path, needle);
#else
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *statm = fopen("/proc/self/statm", "r");
        if (!statm || fscanf(statm, "%ld", &pages) != 1) _exit(2);
        fclose(statm);
        struct rlimit lim = {.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20)};
        lim.rlim_max = lim.rlim_cur;
        if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(2);
        sq_tokenizer *tok = NULL;
        sq_error *err = sq_tokenizer_load(path, &tok);
        int ok = err && !tok && strstr(sq_error_message(err), needle);
        if (!ok) fprintf(stderr, "%s: expected \"%s\", got: %s\n", path, needle, sq_error_message(err));
        sq_error_free(err);
        sq_tokenizer_free(tok);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

/* Vocabulary ids must be 0..n-1: a huge id in a small file is refused without allocating for it (found by
 * fuzzing: 11 s and 800 MB under ASan), a gap is named. */
static void test_huge_and_missing_ids(void **state) {
    (void)state;
    const char *path = encoder_json_path("tok_gpt2_ids");
    const char huge[] = "{\"<|endoftext|>\": 62688564}", gap[] = "{\"a\": 0, \"<|endoftext|>\": 2, \"c\": 3}";
    sq_test_write_file(path, huge, strlen(huge));
    expect_bounded_load_error(path, "no token has id 0 (ids must be 0..62688564)");
    sq_test_write_file(path, gap, strlen(gap));
    expect_load_error(path, "no token has id 1 (ids must be 0..3)");
    const char *json = sq_test_work("tok_huge_id.json");
    const char vocab[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 62688564}, \"merges\": []},"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
               added[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []},"
                         " \"added_tokens\": [{\"id\": 67000000, \"content\": \"<x>\"}],"
                         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    sq_test_write_file(json, vocab, strlen(vocab));
    expect_bounded_load_error(json, "no token has id 1 (ids must be 0..62688564)");
    sq_test_write_file(json, added, strlen(added));
    expect_bounded_load_error(json, "no token has id 2 (ids must be 0..67000000)");
}

static void test_bad_specs(void **state) {
    (void)state;
    const char *tokens[] = {"a", "b", "ab"};
    const int32_t bad_types[] = {1, 1, 9};
    const float scores[] = {0, 0, -1};
    sq_vocab_spec spec = {.type = SQ_TOKENIZER_SPM_BPE,
                          .n_tokens = 3,
                          .tokens = tokens,
                          .scores = scores,
                          .bos_id = -1,
                          .eos_id = 7,
                          .unk_id = -1,
                          .pad_id = -1};
    sq_tokenizer *tok = NULL;
    sq_test_fails_with(sq_tokenizer_from_spec(&spec, &tok), "eos id 7");
    spec.eos_id = -1;
    spec.types = bad_types;
    sq_test_fails_with(sq_tokenizer_from_spec(&spec, &tok), "type 9");
    spec.types = NULL;
    spec.scores = NULL;
    sq_test_fails_with(sq_tokenizer_from_spec(&spec, &tok), "neither scores nor merges");
    spec.type = SQ_TOKENIZER_BYTE_BPE;
    spec.pre = "no-such-pre-tokenizer";
    sq_test_fails_with(sq_tokenizer_from_spec(&spec, &tok), "no-such-pre-tokenizer");
    spec.n_tokens = 0;
    sq_test_fails_with(sq_tokenizer_from_spec(&spec, &tok), "empty");
    assert_null(tok);
}

static void test_bad_ids_to_decode(void **state) {
    (void)state;
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(sq_test_shared("models/tokenizer.bin"), &tok));
    char *text;
    size_t len;
    int32_t ids[] = {1, 15043, 32000};
    sq_test_fails_with(sq_detokenize(tok, ids, 3, &text, &len), "32000");
    ids[2] = -1;
    sq_test_fails_with(sq_detokenize(tok, ids, 3, &text, &len), "-1");
    sq_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_and_empty),
        cmocka_unit_test(test_truncated_sentencepiece_model),
        cmocka_unit_test(test_garbage_sentencepiece_model),
        cmocka_unit_test(test_repeated_piece_field),
        cmocka_unit_test(test_llama2c_vocab_bad_lengths),
        cmocka_unit_test(test_malformed_tokenizer_json),
        cmocka_unit_test(test_gpt2_encoder_without_merges),
        cmocka_unit_test(test_huge_and_missing_ids),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_bad_ids_to_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
