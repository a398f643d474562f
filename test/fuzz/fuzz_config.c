/* fuzz_config: libFuzzer target for config_parse (config.json). Input: the file. The
 * first byte's low three bits choose the components (which keys are required), the
 * rest is the JSON text; the parsed config is then freed. */
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    config_t cfg;
    char err[1024];
    int components = data[0] & (CONFIG_API | CONFIG_PROCESSOR | CONFIG_NOTIFIER);
    config_parse((const char *)data + 1, size - 1, components, &cfg, err, sizeof err);
    config_free(&cfg);
    return 0;
}
