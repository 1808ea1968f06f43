/* Secure aggregation, the device's side: see fedcore/secagg.h and docs/PROTOCOL.md §7.
 * Primitives from fedcore/platform/crypto.h; mask expansion with fedcore's RFC 8439 ChaCha20
 * (rng.c); Shamir sharing over GF(2^31 - 1) is written here (tests against tools/secagg). */
#include "fedcore/secagg.h"

#include <string.h>

#include "fedcore/limits.h"
#include "fedcore/link.h"
#include "fedcore/platform/crypto.h"
#include "fedcore/platform/device_id.h"
#include "fedcore/protocol.h"

#define P FC_SECAGG_PRIME
#define MAXP FC_SECAGG_MAX_PEERS
#define KEY 32u
#define SHARE_ENTRY_LEN (4u + FC_SECAGG_SHARE_CT_LEN)

enum { STAGE_NONE, STAGE_KEYS, STAGE_PEERS, STAGE_SHARES_IN, STAGE_MASKED };

static const char kMaskLabel[] = "fedhead secagg v1 mask";
static const char kShareLabel[] = "fedhead secagg v1 share";

static struct {
    int stage;
    uint32_t round;
    unsigned n, n_setup, t, bits_mod, self; /* n: peers named (<= n_setup) */
    uint8_t c_sk[KEY], s_sk[KEY], b_seed[KEY], coeff_seed[KEY];
    uint8_t c_pk[KEY], s_pk[KEY];
    uint32_t ids[MAXP];
    uint8_t c_pks[MAXP][KEY], s_pks[MAXP][KEY];
    uint8_t have_share[MAXP];
    uint8_t share_s[MAXP][FC_SECAGG_SHARE_LEN]; /* peer j's shares for my x */
    uint8_t share_b[MAXP][FC_SECAGG_SHARE_LEN];
    uint8_t in_u2[MAXP];
    unsigned u2_count;
    int revealed;
    uint8_t reveal_kind[MAXP];
} sa;

static uint8_t out_shares_s[MAXP][FC_SECAGG_SHARE_LEN];
static uint8_t out_shares_b[MAXP][FC_SECAGG_SHARE_LEN];
static uint32_t values[FEDCORE_MAX_PARAMS];
static uint8_t packed[4u * FEDCORE_MAX_PARAMS];
static size_t packed_len;

/* ---- GF(2^31 - 1) ------------------------------------------------------------------------- */

static uint32_t addmod(uint32_t a, uint32_t b) {
    uint32_t s = a + b; /* a, b < 2^31: no overflow */
    return s >= P ? s - P : s;
}

static uint32_t mulmod(uint32_t a, uint32_t b) {
    uint64_t x = (uint64_t)a * b; /* < 2^62; 2^31 = 1 mod P */
    x = (x & P) + (x >> 31);
    x = (x & P) + (x >> 31);
    return (uint32_t)(x >= P ? x - P : x);
}

static uint32_t powmod(uint32_t a, uint32_t e) {
    uint32_t r = 1;
    while (e) {
        if (e & 1u) {
            r = mulmod(r, a);
        }
        a = mulmod(a, a);
        e >>= 1;
    }
    return r;
}

static uint32_t chunk_of(const uint8_t secret[32], unsigned k) {
    uint32_t v = 0;
    for (unsigned i = 0; i < 3 && 3u * k + i < 32u; i++) {
        v |= (uint32_t)secret[3u * k + i] << (8u * i);
    }
    return v;
}

void fc_shamir_split(const uint8_t secret[32], unsigned t, unsigned n, fc_rng_t *coeff_rng,
                     uint8_t shares[][FC_SECAGG_SHARE_LEN]) {
    uint32_t coeff[MAXP];
    for (unsigned k = 0; k < FC_SECAGG_CHUNKS; k++) {
        coeff[0] = chunk_of(secret, k);
        for (unsigned j = 1; j < t; j++) {
            coeff[j] = fc_rng_below(coeff_rng, P);
        }
        for (unsigned i = 0; i < n; i++) {
            uint32_t x = i + 1u, y = 0;
            for (unsigned j = t; j-- > 0;) {
                y = addmod(mulmod(y, x), coeff[j]); /* Horner */
            }
            fc_put_u32(shares[i] + 4u * k, y);
        }
    }
    fc_crypto_wipe(coeff, sizeof coeff);
}

int fc_shamir_combine(const uint8_t shares[][FC_SECAGG_SHARE_LEN], const uint32_t *xs,
                      unsigned k, uint8_t secret[32]) {
    uint32_t lagrange[MAXP];
    if (k == 0 || k > MAXP) {
        return -1;
    }
    for (unsigned i = 0; i < k; i++) { /* l_i(0) = prod_{j != i} x_j / (x_j - x_i) */
        uint32_t num = 1, den = 1;
        if (xs[i] == 0 || xs[i] >= P) {
            return -1;
        }
        for (unsigned j = 0; j < k; j++) {
            if (j == i) {
                continue;
            }
            if (xs[j] == xs[i]) {
                return -1;
            }
            num = mulmod(num, xs[j]);
            den = mulmod(den, addmod(xs[j], P - xs[i]));
        }
        lagrange[i] = mulmod(num, powmod(den, P - 2u));
    }
    for (unsigned c = 0; c < FC_SECAGG_CHUNKS; c++) {
        uint32_t v = 0;
        for (unsigned i = 0; i < k; i++) {
            uint32_t y = fc_get_u32(shares[i] + 4u * c);
            if (y >= P) {
                return -1;
            }
            v = addmod(v, mulmod(lagrange[i], y));
        }
        unsigned width = 3u * c + 3u <= 32u ? 3u : 32u - 3u * c;
        if (v >> (8u * width)) {
            return -1; /* inconsistent shares: not a secret this sharing could hold */
        }
        for (unsigned i = 0; i < width; i++) {
            secret[3u * c + i] = (uint8_t)(v >> (8u * i));
        }
    }
    return 0;
}

/* ---- masks and packing -------------------------------------------------------------------- */

static uint32_t mask_of(unsigned bits) {
    return bits >= 32u ? 0xFFFFFFFFu : (1u << bits) - 1u;
}

void fc_secagg_apply_mask(uint32_t *v, size_t n, const uint8_t seed[32], int sign, unsigned bits) {
    fc_rng_t prg;
    uint32_t m = mask_of(bits);
    fc_rng_seed(&prg, seed);
    for (size_t i = 0; i < n; i++) {
        uint32_t w = fc_rng_u32(&prg) & m;
        v[i] = (sign > 0 ? v[i] + w : v[i] - w) & m;
    }
    fc_crypto_wipe(&prg, sizeof prg);
}

size_t fc_secagg_pack(const uint32_t *v, size_t n, unsigned bits, uint8_t *out) {
    uint64_t acc = 0;
    unsigned held = 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= (uint64_t)(v[i] & mask_of(bits)) << held;
        held += bits;
        while (held >= 8u) {
            out[len++] = (uint8_t)acc;
            acc >>= 8;
            held -= 8u;
        }
    }
    if (held > 0) {
        out[len++] = (uint8_t)acc;
    }
    return len;
}

unsigned fc_secagg_min_bits(unsigned q_bits, unsigned n) {
    unsigned log2n = 0;
    while ((1u << log2n) < n) {
        log2n++;
    }
    return q_bits + log2n;
}

/* ---- keys --------------------------------------------------------------------------------- */

static void random_key(fc_rng_t *rng, uint8_t out[KEY]) {
    for (unsigned i = 0; i < KEY; i += 4u) {
        fc_put_u32(out + i, fc_rng_u32(rng));
    }
}

/* HKDF(salt = u32 round, ikm = X25519(sk, peer), info = label | u32 a | u32 b). */
static int derive(const uint8_t sk[KEY], const uint8_t peer[KEY], const char *label, uint32_t a,
                  uint32_t b, uint8_t out[KEY]) {
    uint8_t shared[KEY], salt[4], info[sizeof kShareLabel + 8u];
    size_t n = strlen(label);
    if (fc_crypto_x25519_shared(shared, sk, peer) != 0) {
        return -1;
    }
    fc_put_u32(salt, sa.round);
    memcpy(info, label, n);
    fc_put_u32(info + n, a);
    fc_put_u32(info + n + 4u, b);
    int rc = fc_crypto_hkdf_sha256(out, KEY, salt, sizeof salt, shared, KEY, info, n + 8u);
    fc_crypto_wipe(shared, sizeof shared);
    return rc;
}

static int find_peer(uint32_t id) {
    for (unsigned i = 0; i < sa.n; i++) {
        if (sa.ids[i] == id) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- protocol steps ----------------------------------------------------------------------- */

uint8_t fc_secagg_setup(const uint8_t *p, size_t len, fc_rng_t *rng, uint8_t *out,
                        size_t *out_len) {
    uint32_t round = fc_get_u32(p);
    unsigned n = fc_get_u16(p + 4), t = fc_get_u16(p + 6), bits = p[8];
    (void)len;
    if (p[9] || p[10] || p[11] || n < 2u || n > MAXP || t > n || 2u * t <= n || bits < 2u ||
        bits > 32u) {
        return FC_NACK_BAD_PARAM; /* 2t > n: a server cannot split the cohort to unmask twice */
    }
    int same = sa.stage != STAGE_NONE && sa.round == round && sa.n_setup == n && sa.t == t &&
               sa.bits_mod == bits;
    if (!same) { /* a new round: forget the last one's secrets */
        fc_crypto_wipe(&sa, sizeof sa);
        sa.round = round;
        sa.n = n;
        sa.n_setup = n;
        sa.t = t;
        sa.bits_mod = bits;
        random_key(rng, sa.c_sk);
        random_key(rng, sa.s_sk);
        random_key(rng, sa.b_seed);
        random_key(rng, sa.coeff_seed);
        if (fc_crypto_x25519_public(sa.c_pk, sa.c_sk) != 0 ||
            fc_crypto_x25519_public(sa.s_pk, sa.s_sk) != 0) {
            fc_crypto_wipe(&sa, sizeof sa);
            return FC_NACK_BAD_STATE;
        }
        sa.stage = STAGE_KEYS;
    }
    fc_put_u32(out, round);
    memcpy(out + 4, sa.c_pk, KEY);
    memcpy(out + 4 + KEY, sa.s_pk, KEY);
    *out_len = FC_SECAGG_KEYS_LEN;
    return 0;
}

/* Parse and check a PEERS list against the setup; 0 or a NACK code. */
static uint8_t take_peers(const uint8_t *p, size_t len) {
    unsigned n = fc_get_u16(p + 4);
    /* The cohort may have shrunk since SETUP (devices that never sent keys), never grown. */
    int retry = sa.stage >= STAGE_PEERS;
    if ((retry ? n != sa.n : (n < sa.t || n > sa.n)) ||
        len != FC_SECAGG_LIST_HDR_LEN + n * FC_SECAGG_PEER_LEN) {
        return FC_NACK_SECAGG_PEERS;
    }
    int self = -1;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = p + FC_SECAGG_LIST_HDR_LEN + i * FC_SECAGG_PEER_LEN;
        uint32_t id = fc_get_u32(e);
        for (unsigned j = 0; j < i; j++) {
            if (fc_get_u32(p + FC_SECAGG_LIST_HDR_LEN + j * FC_SECAGG_PEER_LEN) == id) {
                return FC_NACK_SECAGG_PEERS;
            }
        }
        if (id == fc_device_id()) {
            if (self >= 0 || memcmp(e + 4, sa.c_pk, KEY) || memcmp(e + 4 + KEY, sa.s_pk, KEY)) {
                return FC_NACK_SECAGG_PEERS;
            }
            self = (int)i;
        }
    }
    if (self < 0) {
        return FC_NACK_SECAGG_PEERS;
    }
    if (retry) { /* a retry must name the same cohort with the same keys */
        for (unsigned i = 0; i < n; i++) {
            const uint8_t *e = p + FC_SECAGG_LIST_HDR_LEN + i * FC_SECAGG_PEER_LEN;
            if (fc_get_u32(e) != sa.ids[i] || memcmp(e + 4, sa.c_pks[i], KEY) ||
                memcmp(e + 4 + KEY, sa.s_pks[i], KEY)) {
                return FC_NACK_SECAGG_CONSISTENCY;
            }
        }
        return 0;
    }
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = p + FC_SECAGG_LIST_HDR_LEN + i * FC_SECAGG_PEER_LEN;
        sa.ids[i] = fc_get_u32(e);
        memcpy(sa.c_pks[i], e + 4, KEY);
        memcpy(sa.s_pks[i], e + 4 + KEY, KEY);
    }
    sa.n = n;
    sa.self = (unsigned)self;
    return 0;
}

static void share_ad(uint32_t from, uint32_t to, uint8_t ad[12]) {
    fc_put_u32(ad, sa.round);
    fc_put_u32(ad + 4, from);
    fc_put_u32(ad + 8, to);
}

uint8_t fc_secagg_peers(const uint8_t *p, size_t len, uint8_t *out, size_t *out_len) {
    static const uint8_t kZeroNonce[FC_AEAD_NONCE_LEN] = {0};
    if (sa.stage < STAGE_KEYS || fc_get_u32(p) != sa.round) {
        return FC_NACK_SECAGG_STATE;
    }
    uint8_t code = take_peers(p, len);
    if (code != 0) {
        return code;
    }
    fc_rng_t coeff_rng; /* the same shares on every retry */
    fc_rng_seed(&coeff_rng, sa.coeff_seed);
    fc_shamir_split(sa.s_sk, sa.t, sa.n, &coeff_rng, out_shares_s);
    fc_shamir_split(sa.b_seed, sa.t, sa.n, &coeff_rng, out_shares_b);
    fc_crypto_wipe(&coeff_rng, sizeof coeff_rng);
    uint32_t me = fc_device_id();
    fc_put_u32(out, sa.round);
    fc_put_u16(out + 4, (uint16_t)sa.n);
    fc_put_u16(out + 6, 0);
    uint8_t plain[FC_SECAGG_SHARE_PLAIN_LEN], key[KEY], ad[12];
    for (unsigned i = 0; i < sa.n; i++) {
        uint8_t *e = out + FC_SECAGG_LIST_HDR_LEN + i * SHARE_ENTRY_LEN;
        fc_put_u32(plain, me);
        fc_put_u32(plain + 4, sa.ids[i]);
        memcpy(plain + 8, out_shares_s[i], FC_SECAGG_SHARE_LEN);
        memcpy(plain + 8 + FC_SECAGG_SHARE_LEN, out_shares_b[i], FC_SECAGG_SHARE_LEN);
        if (derive(sa.c_sk, sa.c_pks[i], kShareLabel, me, sa.ids[i], key) != 0) {
            code = FC_NACK_SECAGG_PEERS; /* a low-order key */
            break;
        }
        share_ad(me, sa.ids[i], ad);
        fc_put_u32(e, sa.ids[i]);
        (void)fc_crypto_aead_seal(e + 4, e + 4 + FC_SECAGG_SHARE_PLAIN_LEN, key, kZeroNonce, ad,
                                  sizeof ad, plain, sizeof plain);
    }
    fc_crypto_wipe(plain, sizeof plain);
    fc_crypto_wipe(key, sizeof key);
    fc_crypto_wipe(out_shares_s, sizeof out_shares_s);
    fc_crypto_wipe(out_shares_b, sizeof out_shares_b);
    if (code != 0) {
        return code;
    }
    if (sa.stage < STAGE_PEERS) {
        sa.stage = STAGE_PEERS;
    }
    *out_len = FC_SECAGG_LIST_HDR_LEN + sa.n * SHARE_ENTRY_LEN;
    return 0;
}

uint8_t fc_secagg_shares_in(const uint8_t *p, size_t len, uint32_t *count) {
    static const uint8_t kZeroNonce[FC_AEAD_NONCE_LEN] = {0};
    unsigned m = fc_get_u16(p + 4);
    if (sa.stage < STAGE_PEERS || sa.stage >= STAGE_MASKED || fc_get_u32(p) != sa.round) {
        return FC_NACK_SECAGG_STATE;
    }
    if (m > sa.n || len != FC_SECAGG_LIST_HDR_LEN + m * SHARE_ENTRY_LEN) {
        return FC_NACK_BAD_LENGTH;
    }
    if (m < sa.t) {
        return FC_NACK_SECAGG_THRESHOLD;
    }
    uint8_t seen[MAXP] = {0};
    uint8_t plain[FC_SECAGG_SHARE_PLAIN_LEN], key[KEY], ad[12];
    uint32_t me = fc_device_id();
    uint8_t code = 0;
    for (unsigned i = 0; i < m && code == 0; i++) {
        const uint8_t *e = p + FC_SECAGG_LIST_HDR_LEN + i * SHARE_ENTRY_LEN;
        uint32_t from = fc_get_u32(e);
        int j = find_peer(from);
        if (j < 0 || seen[j]) {
            code = FC_NACK_SECAGG_PEERS;
            break;
        }
        seen[j] = 1;
        share_ad(from, me, ad);
        if (derive(sa.c_sk, sa.c_pks[j], kShareLabel, from, me, key) != 0 ||
            fc_crypto_aead_open(plain, key, kZeroNonce, e + 4 + FC_SECAGG_SHARE_PLAIN_LEN, ad,
                                sizeof ad, e + 4, FC_SECAGG_SHARE_PLAIN_LEN) != 0 ||
            fc_get_u32(plain) != from || fc_get_u32(plain + 4) != me) {
            code = FC_NACK_SECAGG_SHARE;
            break;
        }
        memcpy(sa.share_s[j], plain + 8, FC_SECAGG_SHARE_LEN);
        memcpy(sa.share_b[j], plain + 8 + FC_SECAGG_SHARE_LEN, FC_SECAGG_SHARE_LEN);
    }
    fc_crypto_wipe(plain, sizeof plain);
    fc_crypto_wipe(key, sizeof key);
    if (code != 0 || !seen[sa.self]) {
        fc_crypto_wipe(sa.share_s, sizeof sa.share_s); /* all or nothing */
        fc_crypto_wipe(sa.share_b, sizeof sa.share_b);
        memset(sa.have_share, 0, sizeof sa.have_share);
        return code != 0 ? code : FC_NACK_SECAGG_PEERS;
    }
    memcpy(sa.have_share, seen, sizeof seen);
    sa.stage = STAGE_SHARES_IN;
    *count = m;
    return 0;
}

/* U2 of a MASK request (the devices whose shares everyone holds): checked, fixed once. */
static uint8_t take_u2(const uint8_t *ids, unsigned k) {
    uint8_t member[MAXP] = {0};
    for (unsigned i = 0; i < k; i++) {
        int j = find_peer(fc_get_u32(ids + 4u * i));
        if (j < 0 || member[j] || !sa.have_share[j]) {
            return FC_NACK_SECAGG_PEERS;
        }
        member[j] = 1;
    }
    if (!member[sa.self]) {
        return FC_NACK_SECAGG_PEERS;
    }
    if (k < sa.t) {
        return FC_NACK_SECAGG_THRESHOLD;
    }
    if (sa.stage == STAGE_MASKED) {
        return memcmp(member, sa.in_u2, sizeof member) == 0 ? 0 : FC_NACK_SECAGG_CONSISTENCY;
    }
    memcpy(sa.in_u2, member, sizeof member);
    sa.u2_count = k;
    return 0;
}

static uint8_t compute_masked(const fc_secagg_input_t *in) {
    uint32_t m = mask_of(sa.bits_mod), me = fc_device_id();
    for (size_t i = 0; i < in->n_params; i++) {
        values[i] = fc_get_u32(in->wrapped + 4u * i) & m; /* (x mod 2^32) mod 2^b = x mod 2^b */
    }
    fc_secagg_apply_mask(values, in->n_params, sa.b_seed, +1, sa.bits_mod);
    uint8_t seed[KEY];
    for (unsigned j = 0; j < sa.n; j++) {
        if (!sa.in_u2[j] || j == sa.self) {
            continue;
        }
        uint32_t lo = me < sa.ids[j] ? me : sa.ids[j], hi = me < sa.ids[j] ? sa.ids[j] : me;
        if (derive(sa.s_sk, sa.s_pks[j], kMaskLabel, lo, hi, seed) != 0) {
            return FC_NACK_SECAGG_PEERS;
        }
        fc_secagg_apply_mask(values, in->n_params, seed, me < sa.ids[j] ? +1 : -1, sa.bits_mod);
    }
    fc_crypto_wipe(seed, sizeof seed);
    packed_len = fc_secagg_pack(values, in->n_params, sa.bits_mod, packed);
    return 0;
}

uint8_t fc_secagg_mask(const uint8_t *p, size_t len, const fc_secagg_input_t *in, uint8_t *out,
                       size_t *out_len) {
    uint32_t offset = fc_get_u32(p + 4);
    uint16_t max_len = fc_get_u16(p + 8);
    unsigned k = fc_get_u16(p + 10);
    if (sa.stage < STAGE_SHARES_IN || fc_get_u32(p) != sa.round || in->round != sa.round) {
        return FC_NACK_SECAGG_STATE;
    }
    if (k > sa.n || len != FC_SECAGG_MASK_HDR_LEN + 4u * k) {
        return FC_NACK_BAD_LENGTH;
    }
    if (in->n_params > FEDCORE_MAX_PARAMS ||
        sa.bits_mod < fc_secagg_min_bits(in->q_bits, sa.n)) {
        return FC_NACK_SECAGG_MODULUS; /* the true sum could wrap: refuse before masking */
    }
    uint8_t code = take_u2(p + FC_SECAGG_MASK_HDR_LEN, k);
    if (code != 0) {
        return code;
    }
    if (sa.stage != STAGE_MASKED) {
        code = compute_masked(in);
        if (code != 0) {
            return code;
        }
        sa.stage = STAGE_MASKED;
    }
    if (offset > packed_len || max_len == 0) {
        return FC_NACK_BAD_PARAM;
    }
    size_t n = packed_len - offset;
    size_t cap = FC_MAX_PAYLOAD - FC_SECAGG_MASKED_HDR_LEN;
    n = n < max_len ? n : max_len;
    n = n < cap ? n : cap;
    fc_put_u32(out, sa.round);
    fc_put_u32(out + 4, offset);
    fc_put_u32(out + 8, (uint32_t)packed_len);
    out[12] = (uint8_t)sa.bits_mod;
    out[13] = out[14] = out[15] = 0;
    memcpy(out + FC_SECAGG_MASKED_HDR_LEN, packed + offset, n);
    *out_len = FC_SECAGG_MASKED_HDR_LEN + n;
    return 0;
}

uint8_t fc_secagg_unmask(const uint8_t *p, size_t len, uint8_t *out, size_t *out_len) {
    unsigned k = fc_get_u16(p + 4);
    if (sa.stage != STAGE_MASKED || fc_get_u32(p) != sa.round) {
        return FC_NACK_SECAGG_STATE;
    }
    if (len != FC_SECAGG_LIST_HDR_LEN + k * FC_SECAGG_UNMASK_ENTRY_LEN) {
        return FC_NACK_BAD_LENGTH;
    }
    /* The request must split U2 exactly into survivors and dropped, as before if asked again. */
    uint8_t kind[MAXP], named[MAXP] = {0};
    unsigned survivors = 0;
    for (unsigned i = 0; i < k; i++) {
        const uint8_t *e = p + FC_SECAGG_LIST_HDR_LEN + i * FC_SECAGG_UNMASK_ENTRY_LEN;
        int j = find_peer(fc_get_u32(e));
        if (j < 0 || !sa.in_u2[j] || named[j] || e[4] > FC_SECAGG_DROPPED || e[5] || e[6] ||
            e[7]) {
            return FC_NACK_SECAGG_PEERS;
        }
        named[j] = 1;
        kind[j] = e[4];
        survivors += e[4] == FC_SECAGG_SURVIVOR;
    }
    if (k != sa.u2_count || kind[sa.self] != FC_SECAGG_SURVIVOR) {
        return FC_NACK_SECAGG_PEERS;
    }
    if (survivors < sa.t) {
        return FC_NACK_SECAGG_THRESHOLD; /* too few left: the sum would not hide anyone */
    }
    for (unsigned j = 0; j < sa.n; j++) {
        if (sa.revealed && named[j] && kind[j] != sa.reveal_kind[j]) {
            return FC_NACK_SECAGG_CONSISTENCY; /* never both shares of one peer */
        }
    }
    fc_put_u32(out, sa.round);
    fc_put_u16(out + 4, (uint16_t)k);
    fc_put_u16(out + 6, 0);
    uint8_t *e = out + FC_SECAGG_LIST_HDR_LEN;
    for (unsigned j = 0; j < sa.n; j++) {
        if (!named[j]) {
            continue;
        }
        fc_put_u32(e, sa.ids[j]);
        e[4] = kind[j];
        e[5] = e[6] = e[7] = 0;
        memcpy(e + 8, kind[j] == FC_SECAGG_SURVIVOR ? sa.share_b[j] : sa.share_s[j],
               FC_SECAGG_SHARE_LEN);
        sa.reveal_kind[j] = kind[j];
        e += FC_SECAGG_REVEAL_ENTRY_LEN;
    }
    sa.revealed = 1;
    *out_len = (size_t)(e - out);
    return 0;
}

int fc_secagg_guards(uint32_t round) {
    return sa.stage != STAGE_NONE && sa.round == round;
}
