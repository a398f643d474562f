/* live: this process's liveness entry in Redis (live.lua), refreshed every second, and
 * the takeover of the work held by instances whose entry lapsed (killed, hung, cut
 * off): their leases and reap entries go back into circulation within seconds, long
 * before the leases themselves would expire. */
#ifndef DOWNLOADER_LIVE_H
#define DOWNLOADER_LIVE_H

#include "app.h"

#define LIVE_REFRESH_MS 1000  /* how often each process refreshes and checks */
#define LIVE_DEADLINE_MS 5000 /* silence after which an instance counts as gone */
#define LIVE_GAP_MS 2500      /* nobody got through for this long: Redis was away */

typedef struct live live_t;

live_t *live_start(app_t *app);
/* Deregisters (what this instance still holds is released at once), then frees and
 * calls done. */
void live_stop(live_t *l, void (*done)(void *arg), void *arg);

#endif
