/* app: the identity of this process (host, pid, instance id) shared by its components. */
#include "app.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t app_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void app_identity(app_t *app)
{
    unsigned short r = 0;
    if (gethostname(app->host, sizeof app->host) != 0)
        snprintf(app->host, sizeof app->host, "unknown");
    app->host[sizeof app->host - 1] = 0;
    app->pid = (int)getpid();
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = 0;
    snprintf(app->instance, sizeof app->instance, "%s-%d-%04x", app->host, app->pid, r);
    app->started_ms = app_now_ms();
}
