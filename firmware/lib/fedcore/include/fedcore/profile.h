/* Build profiles (docs/ARCHITECTURE.md "Build profiles").
 *
 * production (no define): every real board. The only thing computed from the user's examples
 *   that ever leaves the device is an update the device privatized and accounted itself.
 *   Examples come from the application on the device (fc_device_add_example), never the link.
 * replay (-DFEDHEAD_PROFILE_REPLAY=1): virtual boards for the demo, HIL and tests. Adds SAMPLE
 *   and INFER on host-supplied windows, SEED and seeded TRAIN. A replay board announces itself
 *   (INFO.profile, capability REPLAY); the aggregator refuses it unless the run is declared a
 *   simulation.
 * The replay-only code is compiled out of production builds, not switched off at run time. */
#ifndef FEDCORE_PROFILE_H
#define FEDCORE_PROFILE_H

#include "fedcore/protocol.h"

#if defined(FEDHEAD_PROFILE_REPLAY) && FEDHEAD_PROFILE_REPLAY
#define FC_PROFILE_IS_REPLAY 1
#define FC_PROFILE_ID FC_INFO_PROFILE_REPLAY
#define FC_PROFILE_NAME "replay"
#else
#define FC_PROFILE_IS_REPLAY 0
#define FC_PROFILE_ID FC_INFO_PROFILE_PRODUCTION
#define FC_PROFILE_NAME "production"
#endif

#endif /* FEDCORE_PROFILE_H */
