/* The libFuzzer entry point of one target: fuzz/CMakeLists.txt builds this file once per target with
 * FUZZ_TARGET naming the target's function (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_TARGET(data, size);
    return 0;
}
