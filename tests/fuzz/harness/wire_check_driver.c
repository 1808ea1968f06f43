/* Runs check_device_output on stdin (device id in argv[1]): exits 0 when every frame is well
 * formed, aborts with the violated invariant otherwise. Lets tests/fuzz show that the fuzz
 * invariants reject what they must. */
#include <stdio.h>
#include <stdlib.h>

#include "wire_check.h"

int main(int argc, char **argv) {
    static uint8_t wire[1u << 16];
    if (argc != 2) {
        return 64;
    }
    size_t n = fread(wire, 1, sizeof wire, stdin);
    size_t frames = check_device_output(wire, n, (uint32_t)strtoul(argv[1], NULL, 0));
    printf("%zu\n", frames);
    return 0;
}
