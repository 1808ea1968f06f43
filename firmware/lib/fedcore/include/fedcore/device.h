/* Device logic: the firmware's behaviour on the link, shared by every port.
 *
 * A port's main does: platform setup; fc_device_init(); for (;;) fc_device_poll();
 * Everything is static (no heap); sizes come from the generated model_config.h. */
#ifndef FEDCORE_DEVICE_H
#define FEDCORE_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Boot: initialise the backbone, load persisted heads (or the generated initial head), seed the
 * CSPRNG from the platform's entropy, send the unsolicited INFO. */
void fc_device_init(void);

/* Read what the UART has (fc_uart_read) and handle every complete frame. */
void fc_device_poll(void);

/* Handle received bytes (for ports whose UART driver delivers data itself). */
void fc_device_feed(const uint8_t *data, size_t len);

/* The application's own examples, on the device (never over the link, fedcore/profile.h).
 * window: fc_device_input_len() int8 values, quantized like the backbone's input. */
size_t fc_device_input_len(void);

/* Embed the window and keep (embedding, label) for the next TRAIN. FC_OK, FC_ERR_PARAM (label
 * out of range), FC_ERR_NONFINITE (the backbone failed) or what fc_examples_add returns. */
int fc_device_add_example(const int8_t *window, uint8_t label);

/* Personal-head prediction for the application: writes num_classes logits, returns the
 * predicted class (>= 0) or FC_ERR_NONFINITE when the backbone failed. */
int fc_device_predict(const int8_t *window, float *logits);

/* Send a LOG frame (level FC_LOG_*), text truncated to fit one frame. */
void fc_device_log(uint8_t level, const char *text);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_DEVICE_H */
