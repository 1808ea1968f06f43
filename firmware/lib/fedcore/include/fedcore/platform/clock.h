/* Porting contract: a monotonic clock for timings and uptime. */
#ifndef FEDCORE_PLATFORM_CLOCK_H
#define FEDCORE_PLATFORM_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Microseconds since boot; wraps after ~71 minutes (differences of u32 stay correct). */
uint32_t fc_clock_us(void);

/* Milliseconds since boot. */
uint32_t fc_clock_ms(void);

#ifdef __cplusplus
}
#endif

#endif
