/* Compiles Monocypher 4.0.3 (X25519, ChaCha20-Poly1305), extracted at set-up time into
 * build/third_party/monocypher/ by boards/scripts/third_party.py: every build (tests,
 * PlatformIO) then needs only its include path. */
#include "monocypher.c"
