/* Firmware and generated-code versions. */
#ifndef FEDCORE_VERSION_H
#define FEDCORE_VERSION_H

#define FEDCORE_FW_VERSION_MAJOR 0u
#define FEDCORE_FW_VERSION_MINOR 1u
#define FEDCORE_FW_VERSION ((FEDCORE_FW_VERSION_MAJOR << 8) | FEDCORE_FW_VERSION_MINOR)

/* The generated model_config.h declares FEDHEAD_GENERATED_API; it must equal this. */
#ifndef FEDCORE_GENERATED_API_EXPECTED
#define FEDCORE_GENERATED_API_EXPECTED 1
#endif

#endif /* FEDCORE_VERSION_H */
