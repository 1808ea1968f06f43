/* The device's own privacy ledger: what its released updates cost, by the noise it added itself.
 *
 * One release = one privatized update (fc_privatize) that the host can fetch. Its cost is the
 * zero-concentrated DP (zCDP) rho of the multivariate discrete Gaussian the device adds, with the
 * L2 sensitivity the device can verify on its own, in grid units (where the noise is added):
 *   sens  = 2 * fc_rounded_norm_bound(clip, scale, P)
 *           replace-one of the user's data against any observer of the update: fc_privatize
 *           releases a rounded vector of L2 norm <= that bound (conditional rounding, with the
 *           clip's float slack; fedcore/privacy.h) whatever the data, so two outcomes differ by
 *           at most twice it; no sampling amplification: the device cannot verify it was
 *           sampled.
 *   sigma = noise_std / scale  (as fc_privatize computes it, double)
 *   rho   = sens^2 / (2 sigma^2) + P * tau,
 *           tau = 10 * sum_{k=1}^{P-1} exp(-2 pi^2 sigma^2 k / (k+1))
 *           (Canonne, Kamath, Steinke 2020; Kairouz, Liu, Steinke 2021, multivariate discrete
 *           Gaussian); sigma = 0 or clip = 0 (no bound) gives rho = +inf.
 * RDP of order a is a * rho; releases compose by adding rho (exact for this mechanism). The
 * (epsilon, delta) is the smallest over the fixed order grid FC_LEDGER_ORDERS of dp-accounting's
 * conversion (compute_epsilon, Canonne-Kamath-Steinke 2020 Prop. 12 / Asoodeh et al. 2020):
 *   eps(a) = a*rho + log1p(-1/a) - log(delta * a) / (a - 1),  0 when delta^2 + expm1(-a rho) > 0.
 * Twin: tools/fedref/ledger.py. docs/PRIVACY.md "The device's ledger" states the guarantee. */
#ifndef FEDCORE_LEDGER_H
#define FEDCORE_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "fedcore/privacy.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FC_LEDGER_N_ORDERS 28
extern const double FC_LEDGER_ORDERS[FC_LEDGER_N_ORDERS];

/* What the device persists, before any update can be fetched. */
typedef struct {
    uint32_t releases;   /* updates released over the device's life */
    uint32_t last_round; /* round id of the last release (valid when releases > 0) */
    double rho;          /* zCDP of everything released so far (sum of each release's rho) */
} fc_ledger_t;

#define FC_LEDGER_BLOB_LEN 24u

/* rho of one release of P = n_params coordinates with these parameters (rule above). */
double fc_ledger_release_rho(const fc_privacy_params_t *params, size_t n_params);

/* Smallest epsilon at delta over FC_LEDGER_ORDERS for total zCDP rho; +inf when rho is. */
double fc_ledger_epsilon(double rho, double delta);

/* Record a release (call only once it is committed to storage). */
void fc_ledger_add(fc_ledger_t *ledger, uint32_t round, double rho);

/* Fixed little-endian record: "FHL1", releases, last_round, rho (f64), crc32 of the first 20. */
void fc_ledger_encode(const fc_ledger_t *ledger, uint8_t out[FC_LEDGER_BLOB_LEN]);
/* 0 when the record is intact (magic and CRC), nonzero otherwise (ledger untouched). */
int fc_ledger_decode(const uint8_t *blob, size_t len, fc_ledger_t *ledger);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_LEDGER_H */
