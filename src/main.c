/* main: the command line (`downloader api|processor|notifier|all|version`), config
 * loading, and the process lifecycle: one libuv loop, one store connection shared by
 * the components it runs, and a graceful stop on SIGINT/SIGTERM (a second signal exits
 * at once). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api.h"
#include "app.h"
#include "config.h"
#include "live.h"
#include "log.h"
#include "notifier.h"
#include "processor.h"
#include "store.h"

typedef struct {
    const char *command;
    const char *config;
    const char *host;
    int port;
    bool help;
} cli_t;

typedef struct {
    app_t app;
    api_t *api;
    processor_t *processor;
    notifier_t *notifier;
    live_t *live;
    uv_signal_t sigint, sigterm;
    int stopping;
    int pending;
} proc_t;

static const char usage[] =
    "downloader: downloads resources at a controlled rate and reports back.\n\n"
    "Usage: downloader <command> [options]\n\n"
    "Commands:\n"
    "  api        HTTP API (POST /download, /hb, /retry, stats, dashboard)\n"
    "  processor  download jobs\n"
    "  notifier   deliver callbacks\n"
    "  all        api, processor and notifier in one process\n"
    "  version    print the version\n\n"
    "Options:\n"
    "  -c, --config FILE   config file (default config.json)\n"
    "      --host HOST     api listen host (default: all interfaces)\n"
    "  -p, --port PORT     api listen port (default 8000)\n"
    "  -h, --help          this help\n";

/* Matches -name, --name, -name=value, --name=value. Returns the value or NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *lng, const char *shrt)
{
    const char *a = argv[*i];
    if (a[0] != '-') return NULL;
    a += a[1] == '-' ? 2 : 1;
    const char *names[] = {lng, shrt};
    for (int k = 0; k < 2; k++) {
        if (!names[k]) continue;
        size_t n = strlen(names[k]);
        if (strncmp(a, names[k], n) != 0) continue;
        if (a[n] == '=') return a + n + 1;
        if (a[n] == 0 && *i + 1 < argc) return argv[++*i];
    }
    return NULL;
}

static int parse_cli(int argc, char **argv, cli_t *c)
{
    *c = (cli_t){.config = "config.json", .host = "", .port = 8000};
    for (int i = 1; i < argc; i++) {
        const char *v;
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "-help") == 0 ||
            strcmp(a, "help") == 0)
            c->help = true;
        else if ((v = flag_value(argc, argv, &i, "config", "c")))
            c->config = v;
        else if ((v = flag_value(argc, argv, &i, "host", NULL)))
            c->host = v;
        else if ((v = flag_value(argc, argv, &i, "port", "p"))) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end || p < 0 || p > 65535) {
                fprintf(stderr, "downloader: invalid port %s\n", v);
                return -1;
            }
            c->port = (int)p;
        } else if (a[0] == '-') {
            fprintf(stderr, "downloader: unknown or incomplete option %s\n\n%s", a, usage);
            return -1;
        } else if (!c->command) {
            c->command = a;
        } else {
            fprintf(stderr, "downloader: unexpected argument %s\n", a);
            return -1;
        }
    }
    return 0;
}

static int components_of(const char *cmd)
{
    if (strcmp(cmd, "api") == 0) return CONFIG_API;
    if (strcmp(cmd, "processor") == 0) return CONFIG_PROCESSOR;
    if (strcmp(cmd, "notifier") == 0) return CONFIG_NOTIFIER;
    if (strcmp(cmd, "all") == 0) return CONFIG_API | CONFIG_PROCESSOR | CONFIG_NOTIFIER;
    return 0;
}

static void on_store_closed(void *arg)
{
    proc_t *p = arg;
    uv_close((uv_handle_t *)&p->sigint, NULL);
    uv_close((uv_handle_t *)&p->sigterm, NULL);
}

static void live_stopped(void *arg)
{
    proc_t *p = arg;
    log_info("main", "bye", "");
    store_close(p->app.store, on_store_closed, p);
}

static void component_stopped(void *arg)
{
    proc_t *p = arg;
    if (--p->pending > 0) return;
    /* after the components handed their work back: deregister, then close */
    live_stop(p->live, live_stopped, p);
}

static void begin_stop(proc_t *p)
{
    p->pending = 1 + (p->api != NULL) + (p->processor != NULL) + (p->notifier != NULL);
    if (p->api) api_stop(p->api, component_stopped, p);
    if (p->processor) processor_stop(p->processor, component_stopped, p);
    if (p->notifier) notifier_stop(p->notifier, component_stopped, p);
    component_stopped(p);
}

static void on_signal(uv_signal_t *h, int signum)
{
    proc_t *p = h->data;
    if (p->stopping++) {
        log_warn("main", "second signal, exiting now", "signal=%d", signum);
        exit(1);
    }
    log_info("main", "shutting down", "signal=%d", signum);
    begin_stop(p);
}

static int start(proc_t *p, const cli_t *c, int comps)
{
    char err[1024] = "";
    p->live = live_start(&p->app);
    if ((comps & CONFIG_API) && !(p->api = api_start(&p->app, c->host, c->port, err, sizeof err)))
        goto fail;
    if ((comps & CONFIG_PROCESSOR) && !(p->processor = processor_start(&p->app, err, sizeof err)))
        goto fail;
    if ((comps & CONFIG_NOTIFIER) && !(p->notifier = notifier_start(&p->app, err, sizeof err)))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "%s\n", err);
    log_error("main", "start failed", "error=%s", log_q(err));
    return -1;
}

int main(int argc, char **argv)
{
    cli_t c;
    if (parse_cli(argc, argv, &c) < 0) return 2;
    if (c.help || !c.command) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(c.command, "version") == 0) {
        printf("Downloader Version %s\n", DOWNLOADER_VERSION);
        return 0;
    }
    int comps = components_of(c.command);
    if (!comps) {
        fprintf(stderr, "downloader: unknown command %s\n\n%s", c.command, usage);
        return 2;
    }
    log_init();
    signal(SIGPIPE, SIG_IGN);
    static proc_t p;
    char err[1024];
    if (config_load(c.config, comps, &p.app.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    p.app.loop = uv_default_loop();
    app_identity(&p.app);
    char name[256];
    snprintf(name, sizeof name, "downloader-%s-%s", c.command, p.app.instance);
    p.app.store = store_new(p.app.loop, &p.app.cfg, name);
    if (!p.app.store) return 1;
    uv_signal_init(p.app.loop, &p.sigint);
    uv_signal_init(p.app.loop, &p.sigterm);
    p.sigint.data = p.sigterm.data = &p;
    uv_signal_start(&p.sigint, on_signal, SIGINT);
    uv_signal_start(&p.sigterm, on_signal, SIGTERM);
    if (start(&p, &c, comps) < 0) return 1;
    log_info("main", "running", "command=%s version=%s instance=%s", c.command, DOWNLOADER_VERSION,
             p.app.instance);
    uv_run(p.app.loop, UV_RUN_DEFAULT);
    uv_loop_close(p.app.loop);
    config_free(&p.app.cfg);
    return 0;
}
