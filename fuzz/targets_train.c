/* Fuzz targets for training inputs: a PEFT LoRA adapter (adapter_config.json and adapter_model.safetensors,
 * folded into the fixture model at load) and a trainer checkpoint (--resume). */
#include "harness.h"

/* The config, a NUL, then the safetensors file. */
void fuzz_lora_adapter(const uint8_t *data, size_t size) {
    const uint8_t *parts[2];
    size_t lens[2];
    int n = fuzz_split(data, size, 2, parts, lens);
    fuzz_write("adapter_config.json", parts[0], lens[0]);
    fuzz_write("adapter_model.safetensors", n > 1 ? parts[1] : (const uint8_t *)"", n > 1 ? lens[1] : 0);
    sq_model *model = fuzz_fixture_model_copy();
    int before = sq_model_n_tensors(model);
    if (!fuzz_failed(sq_model_apply_lora(model, fuzz_path(""))))
        fuzz_require(sq_model_n_tensors(model) == before, "an adapter changes weights, not the tensor list");
    sq_model_free(model);
}

void fuzz_train_state(const uint8_t *data, size_t size) {
    static sq_trainer *t;
    if (!t) {
        sq_trainer_options o = {
            .n_threads = 1, .max_tokens = 8, .lora_rank = 2, .lora_alpha = 4, .lora_targets = SQ_LORA_ALL};
        fuzz_require(!fuzz_failed(sq_trainer_create(fuzz_fixture_model(), &o, &t)), "fixture trainer");
    }
    fuzz_write("state.bin", data, size);
    if (!fuzz_failed(sq_trainer_load_state(t, fuzz_path("state.bin"))))
        fuzz_require(sq_trainer_steps(t) >= 0, "a loaded checkpoint has a step count");
}
