/* scheduler.h — plugin-registered interval ticks on the event loop, run on workers. */
#ifndef HOSTD_SCHEDULER_H
#define HOSTD_SCHEDULER_H

#include <stdint.h>

#include "ingest/plugin.h"

typedef struct ingest_ctx instance;

/* Record a schedule during init() (any thread). Timers start later. */
int scheduler_register(instance *inst, const char *name, uint32_t interval_ms, ingest_tick_fn fn,
                       void *arg);
/* Arm / disarm the instance's timers. Loop thread. */
void scheduler_start(instance *inst);
void scheduler_stop(instance *inst);
/* Free schedules; timers must be stopped and no tick running. */
void scheduler_free(instance *inst);

/* Next delay for a schedule: interval doubled per consecutive failure (the
 * growth stops at 32x or at one hour, whichever comes first; an interval
 * longer than an hour is never shortened), then ±10 % jitter drawn from
 * rand01 in [0, 1). */
uint32_t scheduler_next_delay_ms(uint32_t interval_ms, int consecutive_failures, double rand01);

#endif
