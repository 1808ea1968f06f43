/* Compiles libsodium's portable SHA-256, HMAC-SHA-256 and HKDF-SHA-256, extracted at set-up
 * time into build/third_party/libsodium/ by boards/scripts/third_party.py, configured here
 * instead of by libsodium's ./configure (both virtual boards are little-endian). */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libsodium's portable SHA-256 is configured little-endian here"
#endif
#define CONFIGURED 1
#define NATIVE_LITTLE_ENDIAN 1

#include "hash_sha256_cp.c"

#include "auth_hmacsha256.c"

#include "kdf_hkdf_sha256.c"
