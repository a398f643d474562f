/* json: tiny helpers over yajl_gen for writing JSON objects. */
#ifndef DOWNLOADER_JSON_H
#define DOWNLOADER_JSON_H

#include <yajl/yajl_gen.h>

/* A string value (NULL becomes ""). */
void json_str(yajl_gen g, const char *s);
/* A member with a string or integer value. */
void json_kv_str(yajl_gen g, const char *key, const char *value);
void json_kv_int(yajl_gen g, const char *key, long long value);
/* A number member written with 6 significant digits (0.2, not 0.20000000000000001). */
void json_kv_double(yajl_gen g, const char *key, double value);

#endif
