/* fuzz_imgsize: libFuzzer target for imgsize_buf, the JPEG (SOFn), PNG (IHDR) and GIF
 * header decoders. Input: one selector byte (JPEG, PNG, GIF by its value mod 3), then
 * the file's bytes (libFuzzer hands over an exact-size heap copy, so any read past the
 * end is caught by ASan). */
#include <stdint.h>
#include <stdlib.h>

#include "imgsize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *types[] = {"image/jpeg", "image/png", "image/gif"};
    if (size < 1) return 0;
    unsigned w = 0, h = 0;
    (void)imgsize_buf(types[data[0] % 3], data + 1, size - 1, &w, &h);
    return 0;
}
