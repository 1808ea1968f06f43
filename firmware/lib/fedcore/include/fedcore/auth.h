/* Device identity, enrollment and the authenticated link (docs/PROTOCOL.md §6).
 *
 * Identity: an X25519 key pair made on the device from its CSPRNG (seeded by platform entropy)
 * at first boot and kept in storage ("fh_identity"). Enrollment: the server's X25519 public key
 * and a key_id ("fh_enrolled"), set once by ENROLL_SET (trust on first use); another server key
 * needs FORCE, honoured only when the request is authenticated by the enrolled server or comes
 * within FC_ENROLL_FORCE_WINDOW_MS of a power-on boot (physical presence), never after a
 * link RESET.
 *
 * Link: each boot draws a public 16-byte session nonce; per-direction keys are
 * HKDF-SHA-256(salt = nonce, ikm = X25519(device, server), info = label | device_id | device_pk
 * | server_pk). Protected frames carry the auth block (u32 counter, tag[16], reserved[4]); the
 * payload is ChaCha20-Poly1305 encrypted under nonce = u32 counter | 8 zero bytes, with the
 * 12 header bytes, counter and reserved bytes as associated data. Counters only go up.
 * Everything is static; the secret key never leaves this module. */
#ifndef FEDCORE_AUTH_H
#define FEDCORE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "fedcore/link.h"
#include "fedcore/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef FC_ENROLL_FORCE_WINDOW_MS
#define FC_ENROLL_FORCE_WINDOW_MS 30000u
#endif

/* Boot: load identity and enrollment; with rng (NULL when there is no entropy yet) create a
 * missing identity and this boot's session nonce. power_on: this boot was not a link RESET. */
void fc_auth_init(fc_rng_t *rng, int power_on);

/* Randomness arrived later (QEMU's SEED): create what fc_auth_init could not. */
void fc_auth_randomness(fc_rng_t *rng);

/* Check a received frame before dispatch. Returns 0 and *payload (decrypted when the frame
 * was authenticated) or a NACK code. Remembers whether the frame was authenticated, so that
 * the replies to it are sealed, until fc_auth_request_done(). */
uint8_t fc_auth_accept(const fc_frame_t *frame, const uint8_t **payload);
void fc_auth_request_done(void);

/* Seal an outgoing frame when it must be: replies to an authenticated request and every
 * UPDATE_READY / UPDATE_CHUNK of an enrolled device. Returns 1 with hdr->key_id set, cipher
 * (len bytes) and auth filled; 0 when the frame goes out plain. */
int fc_auth_seal(fc_header_t *hdr, const uint8_t *payload, size_t len, uint8_t *cipher,
                 uint8_t auth[FC_AUTH_LEN]);

/* ENROLL_GET: the ENROLL_INFO payload (FC_ENROLL_INFO_LEN bytes), or 0 without identity. */
size_t fc_enroll_info(uint8_t *out);

/* ENROLL_SET payload: 0 and *key_id on success, else a NACK code. */
uint8_t fc_enroll_set(const uint8_t *payload, uint32_t *key_id);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_AUTH_H */
