/* log: formats logfmt lines (ts, level, component, msg, then event pairs) and writes
 * each with a single write(2) on stderr so lines never interleave. Every module logs
 * through here; nothing else writes to stderr except fatal start-up errors. It also
 * keeps the rate limit of outage warnings (log_outage_*). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define QSLOTS 8
#define QSIZE 512

static log_level_t min_level = LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level)
{
    min_level = level;
}

void log_init(void)
{
    const char *env = getenv("DOWNLOADER_LOG_LEVEL");
    if (!env) return;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(env, level_names[i]) == 0) min_level = (log_level_t)i;
}

static char *next_slot(void)
{
    static _Thread_local char slots[QSLOTS][QSIZE];
    static _Thread_local unsigned idx;
    return slots[idx++ % QSLOTS];
}

const char *log_q(const char *value)
{
    char *out = next_slot();
    size_t o = 0;
    out[o++] = '"';
    for (const char *p = value ? value : ""; *p && o < QSIZE - 6; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '?';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = 0;
    return out;
}

const char *log_redact_url(const char *url)
{
    char *out = next_slot();
    if (!url) url = "";
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : url;
    size_t hostlen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', hostlen);
    if (!at) {
        snprintf(out, QSIZE, "%s", url);
        return out;
    }
    snprintf(out, QSIZE, "%.*s***%s", (int)(auth - url), url, at);
    return out;
}

void log_write(log_level_t level, const char *component, const char *msg, const char *fmt, ...)
{
    if (level < min_level) return;
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s component=%s pid=%d msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], component ? component : "main",
                     (int)getpid(), log_q(msg));
    if (fmt && *fmt && n > 0 && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

bool log_outage_failed(log_outage_t *o, uint64_t now_ms)
{
    o->attempts++;
    if (!o->active) {
        o->active = true;
        o->since_ms = o->warned_ms = now_ms;
        return true;
    }
    if (now_ms - o->warned_ms < LOG_OUTAGE_INTERVAL_MS) return false;
    o->warned_ms = now_ms;
    return true;
}

bool log_outage_ended(log_outage_t *o, uint64_t now_ms, uint64_t *down_ms, uint64_t *attempts)
{
    bool was = o->active;
    *down_ms = was ? now_ms - o->since_ms : 0;
    *attempts = o->attempts;
    *o = (log_outage_t){0};
    return was;
}
