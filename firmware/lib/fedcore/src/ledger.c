/* The device's privacy ledger (rules and references in fedcore/ledger.h). */
#include "fedcore/ledger.h"

#include <math.h>
#include <string.h>

#include "fedcore/crc32.h"
#include "fedcore/link.h"

/* The same orders go to dp-accounting's RdpAccountant(orders=...) in the tests. */
const double FC_LEDGER_ORDERS[FC_LEDGER_N_ORDERS] = {
    1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0,  3.5,  4.0,  4.5,   5.0,   6.0,   7.0,   8.0,
    10.0, 12.0, 14.0, 16.0, 20.0, 24.0, 28.0, 32.0, 48.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
};

static const double kPi = 3.14159265358979323846;
static const uint8_t kMagic[4] = {'F', 'H', 'L', '1'};

/* P * tau of the multivariate discrete Gaussian bound; 0 once the terms underflow. */
static double discreteness_slack(double sigma, size_t n_params) {
    double a = 2.0 * kPi * kPi * sigma * sigma;
    double tau = 0.0;
    for (size_t k = 1; k < n_params; k++) {
        double term = exp(-a * (double)k / (double)(k + 1u));
        if (term == 0.0) {
            break; /* the exponent only grows with k */
        }
        tau += term;
    }
    return (double)n_params * 10.0 * tau;
}

double fc_ledger_release_rho(const fc_privacy_params_t *params, size_t n_params) {
    double scale = (double)params->scale;
    double sigma = (double)params->noise_std / scale;
    if (!(params->clip > 0.0f) || !(sigma > 0.0)) {
        return INFINITY;
    }
    double sens = 2.0 * fc_rounded_norm_bound(params->clip, params->scale, n_params);
    return sens * sens / (2.0 * sigma * sigma) + discreteness_slack(sigma, n_params);
}

double fc_ledger_epsilon(double rho, double delta) {
    if (isinf(rho)) {
        return INFINITY;
    }
    double best = INFINITY;
    for (size_t i = 0; i < FC_LEDGER_N_ORDERS; i++) {
        double a = FC_LEDGER_ORDERS[i];
        double r = a * rho;
        double eps;
        if (r < 0.0 || delta * delta + expm1(-r) > 0.0) {
            eps = 0.0;
        } else if (a > 1.01) {
            eps = r + log1p(-1.0 / a) - log(delta * a) / (a - 1.0);
        } else {
            eps = INFINITY;
        }
        if (eps < best) {
            best = eps;
        }
    }
    return best > 0.0 ? best : 0.0;
}

void fc_ledger_add(fc_ledger_t *ledger, uint32_t round, double rho) {
    ledger->releases++;
    ledger->last_round = round;
    ledger->rho += rho;
}

void fc_ledger_encode(const fc_ledger_t *ledger, uint8_t out[FC_LEDGER_BLOB_LEN]) {
    uint64_t bits;
    memcpy(&bits, &ledger->rho, sizeof bits);
    memcpy(out, kMagic, 4);
    fc_put_u32(out + 4, ledger->releases);
    fc_put_u32(out + 8, ledger->last_round);
    fc_put_u64(out + 12, bits);
    fc_put_u32(out + 20, fc_crc32(out, 20));
}

int fc_ledger_decode(const uint8_t *blob, size_t len, fc_ledger_t *ledger) {
    if (len < FC_LEDGER_BLOB_LEN || memcmp(blob, kMagic, 4) != 0 ||
        fc_get_u32(blob + 20) != fc_crc32(blob, 20)) {
        return -1;
    }
    uint64_t bits = fc_get_u64(blob + 12);
    ledger->releases = fc_get_u32(blob + 4);
    ledger->last_round = fc_get_u32(blob + 8);
    memcpy(&ledger->rho, &bits, sizeof ledger->rho);
    return 0;
}
