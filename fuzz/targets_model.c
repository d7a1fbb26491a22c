/* Fuzz targets for model files: whole llama2.c and GGUF files, and each file of a Hugging Face directory
 * (weights, shard index, config.json, generation_config.json) beside valid companions. */
#include "harness.h"

#include <stdio.h>

void fuzz_gguf(const uint8_t *data, size_t size) {
    fuzz_write("model.gguf", data, size);
    fuzz_load_model(fuzz_path("model.gguf"));
}

void fuzz_llama2c(const uint8_t *data, size_t size) {
    fuzz_write("model.bin", data, size);
    fuzz_load_model(fuzz_path("model.bin"));
}

/* A Hugging Face directory in the scratch directory: the fuzzed file `name` beside the fixture model's other
 * files (its weights in one file or in two shards), and nothing left from another layout. */
static void load_hf_dir(const char *name, const uint8_t *data, size_t size, int sharded) {
    fuzz_remove("generation_config.json");
    fuzz_remove("model.safetensors.index.json");
    fuzz_copy_fixture("model/config.json", "config.json");
    fuzz_copy_fixture("model/tokenizer.json", "tokenizer.json");
    if (sharded) {
        fuzz_remove("model.safetensors");
        fuzz_copy_fixture("sharded/model-00001-of-00002.safetensors", "model-00001-of-00002.safetensors");
        fuzz_copy_fixture("sharded/model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors");
    } else {
        fuzz_copy_fixture("model/model.safetensors", "model.safetensors");
    }
    fuzz_write(name, data, size);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fuzz_path(""));
    fuzz_load_model(dir);
}

void fuzz_safetensors(const uint8_t *data, size_t size) { load_hf_dir("model.safetensors", data, size, 0); }

void fuzz_safetensors_index(const uint8_t *data, size_t size) {
    load_hf_dir("model.safetensors.index.json", data, size, 1);
}

void fuzz_hf_config(const uint8_t *data, size_t size) { load_hf_dir("config.json", data, size, 0); }

void fuzz_generation_config(const uint8_t *data, size_t size) {
    load_hf_dir("generation_config.json", data, size, 0);
}
