/* json: member helpers over yajl_gen shared by the API, stats and the processor. */
#include "json.h"

#include <stdio.h>
#include <string.h>

void json_str(yajl_gen g, const char *s)
{
    s = s ? s : "";
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void json_kv_str(yajl_gen g, const char *key, const char *value)
{
    json_str(g, key);
    json_str(g, value);
}

void json_kv_int(yajl_gen g, const char *key, long long value)
{
    json_str(g, key);
    yajl_gen_integer(g, value);
}

void json_kv_double(yajl_gen g, const char *key, double value)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%.6g", value);
    json_str(g, key);
    yajl_gen_number(g, num, (size_t)n);
}
