/* harness: helpers for integration tests: free ports, child processes, a private
 * redis-server, a blocking HTTP client (libcurl easy) and a sync Redis client. */
#ifndef DOWNLOADER_TEST_HARNESS_H
#define DOWNLOADER_TEST_HARNESS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <yajl/yajl_tree.h>

/* A loopback TCP port that is free right now. */
int h_free_port(void);

/* Waits until 127.0.0.1:port accepts connections. 0, or -1 on timeout. */
int h_wait_port(int port, int timeout_ms);

/* Starts argv[0] (PATH searched) in its own process group with stdout+stderr
 * appended to logfile (NULL: inherit). extra_env: NULL-terminated "K=V" list or NULL. */
pid_t h_spawn(char *const argv[], const char *logfile, char *const extra_env[]);

/* Sends sig and waits up to timeout_ms; then SIGKILL. Returns the exit status as
 * waitpid reports it, or -1. */
int h_stop(pid_t pid, int sig, int timeout_ms);

/* A fresh temporary directory (mkdtemp under /tmp), malloc'd path. */
char *h_tmpdir(const char *tag);

/* Removes a directory tree. */
void h_rmtree(const char *path);

typedef struct {
    pid_t pid;
    int port;
    char *dir;
    char args[256]; /* extra redis-server arguments, space-separated (h_redis_start_ex) */
} h_redis_t;

/* Starts redis-server on a free loopback port with its data in a temp dir (AOF off
 * unless aof). 0 or -1. h_redis_restart keeps the port, data dir and arguments. */
int h_redis_start(h_redis_t *r, bool aof);
/* The same with extra arguments, NULL-terminated (e.g. {"--appendfsync", "always", NULL}:
 * with AOF, every acknowledged write survives a kill -9 of redis-server). */
int h_redis_start_ex(h_redis_t *r, bool aof, const char *const *args);
int h_redis_restart(h_redis_t *r);
void h_redis_kill(h_redis_t *r); /* SIGKILL, keeps dir */
void h_redis_stop(h_redis_t *r); /* stop and remove dir */
/* SIGSTOP / SIGCONT: a Redis that hangs (connections stay open, nothing is answered). */
void h_redis_pause(h_redis_t *r);
void h_redis_resume(h_redis_t *r);
redisContext *h_redis_connect(const h_redis_t *r);
/* Runs a command and returns the reply (caller frees with freeReplyObject). */
redisReply *h_redis(redisContext *c, const char *fmt, ...);
/* Integer reply of a command, or -1. */
long long h_redis_int(redisContext *c, const char *fmt, ...);
/* String reply of a command (malloc'd) or NULL. */
char *h_redis_str(redisContext *c, const char *fmt, ...);

typedef struct {
    long status;
    char *body;
    size_t body_len;
    char *headers; /* raw response header block */
} h_resp_t;

/* Blocking HTTP request; body may be NULL. headers: NULL-terminated "K: V" list.
 * Returns 0 (status in resp) or -1 on a transport error. */
int h_http(const char *method, const char *url, const char *body, const char *const *headers,
           h_resp_t *resp);
void h_resp_free(h_resp_t *r);

/* Sleeps ms milliseconds. */
void h_sleep_ms(int ms);

/* Polls cond(arg) every 20 ms until it returns true or timeout_ms passes. */
bool h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* Path of a test tool or of the binary under test. */
const char *h_bin(void);                              /* $DOWNLOADER_BIN or build/downloader */
const char *h_src(void);                              /* $DOWNLOADER_SRC or "." */
void h_tool(char *buf, size_t len, const char *name); /* $DOWNLOADER_TOOLS/name */

/* Writes a file (creating it). 0 or -1. */
int h_write_file(const char *path, const char *content);
/* Reads a whole file (malloc'd, NUL-terminated), length in *len. */
char *h_read_file(const char *path, size_t *len);

/* The origin's GET /data/<n> content (test/origin.py): byte i is i*31 % 251. */
unsigned char h_pattern_byte(size_t i);
/* The first of len bytes at data that differs from that pattern, or -1 when none. */
long h_pattern_mismatch(const void *data, size_t len);

/* A whole service under test: a private redis-server, the test origin/sink
 * (test/origin.py) and a config file in a temp dir; downloader processes are spawned
 * with h_env_run. */
typedef struct {
    h_redis_t redis;
    char *dir;
    pid_t origin;
    int origin_port;
    int api_port;
    char config[512];
    pid_t procs[16];
    int nprocs;
} h_env_t;

/* Starts redis and the origin, writes <dir>/config.json. The *_extra strings are JSON
 * members appended to the processor/notifier objects (e.g. "\"max_concurrency\": 8"),
 * backends is the whole backends object (NULL: http enabled). 0 or -1. */
int h_env_start(h_env_t *e, const char *processor_extra, const char *notifier_extra,
                const char *backends);
/* The same with api_extra: JSON members appended to the api object (NULL: none). */
int h_env_start_ex(h_env_t *e, const char *processor_extra, const char *notifier_extra,
                   const char *backends, const char *api_extra);

/* Everything h_env_start_ex takes, plus the Redis setup. */
typedef struct {
    const char *processor_extra, *notifier_extra, *backends, *api_extra;
    const char *redis_extra;       /* JSON members appended to the redis object, or NULL */
    bool redis_aof;                /* AOF on (appendfsync everysec unless redis_args say) */
    const char *const *redis_args; /* extra redis-server arguments, NULL-terminated, or NULL */
} h_env_opts_t;
int h_env_start_opts(h_env_t *e, const h_env_opts_t *o);

/* Starts `downloader <command>` with DOWNLOADER_TEST_TIME set; for api/all on a new
 * free port (stored in api_port) and waits until it listens. Logs to <dir>/<command>-N.log. */
pid_t h_env_run(h_env_t *e, const char *command);

/* Stops one process started by h_env_run (h_stop) and forgets it, so that h_env_stop
 * never signals its (possibly reused) pid. Returns h_stop's status. */
int h_env_kill(h_env_t *e, pid_t pid, int sig, int timeout_ms);

/* Stops every process, the origin and redis, and removes the temp dir. */
void h_env_stop(h_env_t *e);

/* URL on the API (path starts with '/') or on the origin. */
void h_api_url(const h_env_t *e, char *buf, size_t len, const char *path);
void h_origin_url(const h_env_t *e, char *buf, size_t len, const char *path);

/* POST /download; on 201 copies the id (15 bytes). Returns the HTTP status or -1. */
long h_post_job(const h_env_t *e, const char *json, char *id);

/* JSON: parse (free with yajl_tree_free) and read members (NULL/-1 when absent). */
yajl_val h_json(const char *text);
const char *h_jstr(yajl_val obj, const char *key);
long long h_jint(yajl_val obj, const char *key);
int h_jbool(yajl_val obj, const char *key); /* 1, 0, or -1 */

/* Callbacks the sink recorded for a job id (by its payload's job_id): the number of
 * attempts, of successful ones (status 200), and the last successful payload parsed
 * (caller frees) when `payload` is not NULL. */
int h_callbacks(const h_env_t *e, const char *job_id, int *ok, yajl_val *payload);
/* Successful callbacks beyond the first, summed over n job ids. */
int h_duplicates(const h_env_t *e, const char (*ids)[16], int n);
/* Waits until the sink has a successful callback for the job; returns its payload. */
yajl_val h_wait_callback(const h_env_t *e, const char *job_id, int timeout_ms);
/* GET on the origin (control endpoints), parsed JSON or NULL. */
yajl_val h_origin_json(const h_env_t *e, const char *path);
/* POST JSON to an origin control endpoint; returns the status. */
long h_origin_post(const h_env_t *e, const char *path, const char *json);

#endif
