/* Test driver for fedcore's rng, examples, head and privacy code (built by
 * tests/support/cbuild.py under ASan/UBSan). One subcommand per call; arrays come on stdin and
 * go to stdout as little-endian binary, so pytest can compare them with tools/fedref. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedcore/examples.h"
#include "fedcore/head.h"
#include "fedcore/ledger.h"
#include "fedcore/policy.h"
#include "fedcore/privacy.h"
#include "fedcore/rng.h"

static fc_examples_t g_examples;
static fc_head_t g_head;
static fc_train_workspace_t g_ws;
static float g_buf[FEDCORE_MAX_PARAMS];
static int32_t g_q[FEDCORE_MAX_PARAMS];

static void read_exact(void *dst, size_t len)
{
    if (fread(dst, 1, len, stdin) != len) {
        fprintf(stderr, "short read (%zu bytes)\n", len);
        exit(2);
    }
}

static void write_all(const void *src, size_t len) { fwrite(src, 1, len, stdout); }

static void seed_from_arg(fc_rng_t *rng, const char *arg)
{
    fc_rng_seed_u64(rng, strtoull(arg, NULL, 0));
}

/* rng SEED N: N words of the stream; then below/bernoulli streams via the other subcommands. */
static int cmd_rng(int argc, char **argv)
{
    if (argc < 4) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    long n = strtol(argv[3], NULL, 0);
    for (long i = 0; i < n; i++) {
        uint32_t w = fc_rng_u32(&rng);
        write_all(&w, sizeof w);
    }
    return 0;
}

/* u01 SEED N: N fc_rng_uniform01 floats. */
static int cmd_u01(int argc, char **argv)
{
    if (argc < 4) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    long n = strtol(argv[3], NULL, 0);
    for (long i = 0; i < n; i++) {
        float u = fc_rng_uniform01(&rng);
        write_all(&u, sizeof u);
    }
    return 0;
}

/* below SEED BOUND N: N bounded integers. */
static int cmd_below(int argc, char **argv)
{
    if (argc < 5) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    uint32_t bound = (uint32_t)strtoul(argv[3], NULL, 0);
    long n = strtol(argv[4], NULL, 0);
    for (long i = 0; i < n; i++) {
        uint32_t v = fc_rng_below(&rng, bound);
        write_all(&v, sizeof v);
    }
    return 0;
}

/* chacha: stdin key[32] counter(u32) nonce[12] -> 64 bytes. */
static int cmd_chacha(void)
{
    uint8_t key[32], nonce[12], out[64];
    uint32_t counter;
    read_exact(key, sizeof key);
    read_exact(&counter, sizeof counter);
    read_exact(nonce, sizeof nonce);
    fc_chacha20_block(key, counter, nonce, out);
    write_all(out, sizeof out);
    return 0;
}

/* sround SEED X SCALE N: N stochastic roundings of the float X at SCALE (int64 each). */
static int cmd_sround(int argc, char **argv)
{
    if (argc < 6) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    float x = strtof(argv[3], NULL), scale = strtof(argv[4], NULL);
    long n = strtol(argv[5], NULL, 0);
    for (long i = 0; i < n; i++) {
        int64_t q = fc_stochastic_round(&rng, x, scale);
        write_all(&q, sizeof q);
    }
    return 0;
}

/* dgauss SEED SIGMA N: N discrete Gaussian samples (int64 each). */
static int cmd_dgauss(int argc, char **argv)
{
    if (argc < 5) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    double sigma = strtod(argv[3], NULL);
    long n = strtol(argv[4], NULL, 0);
    for (long i = 0; i < n; i++) {
        int64_t z = fc_discrete_gaussian(&rng, sigma);
        write_all(&z, sizeof z);
    }
    return 0;
}

/* cround SEED RUNS: stdin factor, scale (f32), bound2 (f64), n (u32), delta[n] (f32). RUNS
 * conditional roundings on one stream; per run u32 accepted attempt, then the accepted q[n]
 * (int64, replayed from the saved state as fc_privatize does); at the end the next u32 of the
 * stream (its position). */
static int cmd_cround(int argc, char **argv)
{
    if (argc < 4) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    long runs = strtol(argv[3], NULL, 0);
    float factor, scale;
    double bound2;
    uint32_t n;
    read_exact(&factor, 4);
    read_exact(&scale, 4);
    read_exact(&bound2, 8);
    read_exact(&n, 4);
    if (n > FEDCORE_MAX_PARAMS) {
        return 2;
    }
    read_exact(g_buf, n * sizeof(float));
    for (long r = 0; r < runs; r++) {
        fc_rng_t replay;
        uint32_t attempt = fc_round_conditional(g_buf, n, factor, scale, bound2, &rng, &replay);
        write_all(&attempt, 4);
        for (uint32_t i = 0; i < n; i++) {
            int64_t q = attempt ? fc_stochastic_round(&replay, g_buf[i] * factor, scale) : 0;
            write_all(&q, sizeof q);
        }
    }
    uint32_t next = fc_rng_u32(&rng);
    write_all(&next, 4);
    return 0;
}

/* nbound: stdin u32 count, then per query f32 clip, f32 scale, u32 n ->
 * f64 fc_rounding_norm2_bound, f64 fc_rounded_norm_bound each. */
static int cmd_nbound(void)
{
    uint32_t count;
    read_exact(&count, 4);
    for (uint32_t k = 0; k < count; k++) {
        float clip, scale;
        uint32_t n;
        read_exact(&clip, 4);
        read_exact(&scale, 4);
        read_exact(&n, 4);
        double bound2 = fc_rounding_norm2_bound(clip, scale, n);
        double bound = fc_rounded_norm_bound(clip, scale, n);
        write_all(&bound2, 8);
        write_all(&bound, 8);
    }
    return 0;
}

/* privatize SEED: stdin clip, noise_std, scale (f32), bits (u32), n (u32), delta[n] (f32)
 * -> status (i32), flags (u32), q[n] (i32). */
static int cmd_privatize(int argc, char **argv)
{
    if (argc < 3) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    fc_privacy_params_t p;
    uint32_t bits, n;
    read_exact(&p.clip, 4);
    read_exact(&p.noise_std, 4);
    read_exact(&p.scale, 4);
    read_exact(&bits, 4);
    read_exact(&n, 4);
    if (n > FEDCORE_MAX_PARAMS) {
        return 2;
    }
    p.bits = (uint8_t)bits;
    read_exact(g_buf, n * sizeof(float));
    memset(g_q, 0x5A, sizeof g_q); /* untouched output is visible to the test */
    uint8_t flags = 0xEE;
    int32_t status = fc_privatize(g_buf, n, &p, &rng, g_q, &flags);
    uint32_t flags32 = flags;
    write_all(&status, 4);
    write_all(&flags32, 4);
    write_all(g_q, n * sizeof(int32_t));
    return 0;
}

/* clip: stdin clip (f32), n (u32), x[n] -> clipped (u32), x[n]. */
static int cmd_clip(void)
{
    float clip;
    uint32_t n;
    read_exact(&clip, 4);
    read_exact(&n, 4);
    if (n > FEDCORE_MAX_PARAMS) {
        return 2;
    }
    read_exact(g_buf, n * sizeof(float));
    uint32_t clipped = (uint32_t)fc_clip_l2(g_buf, n, clip);
    write_all(&clipped, 4);
    write_all(g_buf, n * sizeof(float));
    return 0;
}

/* explog: stdin n (u32), x[n] (f32) -> fc_expf(x)[n], fc_logf(x)[n]. */
static int cmd_explog(void)
{
    uint32_t n;
    read_exact(&n, 4);
    for (uint32_t i = 0; i < n; i++) {
        float x, out[2];
        read_exact(&x, 4);
        out[0] = fc_expf(x);
        out[1] = fc_logf(x);
        write_all(out, sizeof out);
    }
    return 0;
}

/* train SEED: stdin d, c, n, capacity, epochs, batch (u32 each), lr, momentum, weight_decay,
 * example_clip (f32), w[d*c], b[c], then n examples (emb[d] f32, label u32), added in order
 * to a ring of `capacity` slots -> status (i32), loss, acc (f32), examples, steps (u32),
 * w[d*c], b[c]. With argv[3] = STRENGTH, fc_head_imprint runs after training, the device's
 * TRAIN_IMPRINT order (epochs 0 then skips training). */
static int cmd_train(int argc, char **argv)
{
    if (argc < 3) {
        return 2;
    }
    fc_rng_t rng;
    seed_from_arg(&rng, argv[2]);
    /* optional argv[3]: imprint strength applied after training (fc_head_imprint) */
    const int imprint = argc > 3;
    const float imprint_strength = imprint ? strtof(argv[3], NULL) : 0.0f;
    uint32_t hdr[6];
    read_exact(hdr, sizeof hdr);
    uint32_t d = hdr[0], c = hdr[1], n = hdr[2];
    fc_train_params_t p = {.epochs = (uint16_t)hdr[4], .batch = (uint16_t)hdr[5]};
    read_exact(&p.lr, 4);
    read_exact(&p.momentum, 4);
    read_exact(&p.weight_decay, 4);
    read_exact(&p.example_clip, 4);
    if (d > FEDCORE_MAX_D || c > FEDCORE_MAX_C || n > 100000) {
        return 2;
    }
    float w[FEDCORE_MAX_D * FEDCORE_MAX_C], b[FEDCORE_MAX_C], e[FEDCORE_MAX_D];
    read_exact(w, d * c * sizeof(float));
    read_exact(b, c * sizeof(float));
    int32_t status = fc_head_init(&g_head, (uint16_t)d, (uint16_t)c, w, b);
    if (status == FC_OK) {
        status = fc_examples_init(&g_examples, (uint16_t)d, (uint16_t)c, (uint16_t)hdr[3]);
    }
    for (uint32_t i = 0; i < n && status == FC_OK; i++) {
        uint32_t label;
        read_exact(e, d * sizeof(float));
        read_exact(&label, 4);
        status = fc_examples_add(&g_examples, e, (uint8_t)label);
    }
    fc_train_result_t res = {0};
    if (status == FC_OK && (!imprint || p.epochs > 0)) {
        status = fc_head_train(&g_head, &g_examples, &p, &rng, &g_ws, &res);
    }
    if (status == FC_OK && imprint) {
        status = fc_head_imprint(&g_head, &g_examples, imprint_strength, &g_ws);
    }
    write_all(&status, 4);
    write_all(&res.loss, 4);
    write_all(&res.acc, 4);
    write_all(&res.examples, 4);
    write_all(&res.steps, 4);
    write_all(g_head.w, d * c * sizeof(float));
    write_all(g_head.b, c * sizeof(float));
    return 0;
}

/* ledger DELTA: stdin u32 count, then per release f32 clip, noise_std, scale, u32 n_params,
 * u32 round. Out: f64 rho of each release, then f64 total rho and f64 epsilon at DELTA, then a
 * decode of the encoded ledger (u32 status, u32 releases, u32 last_round, f64 rho). */
static int cmd_ledger(int argc, char **argv)
{
    if (argc < 3) {
        return 2;
    }
    double delta = strtod(argv[2], NULL);
    uint32_t count = 0;
    read_exact(&count, sizeof count);
    fc_ledger_t ledger = {0};
    for (uint32_t i = 0; i < count; i++) {
        fc_privacy_params_t p = {0};
        uint32_t n_params = 0, round = 0;
        read_exact(&p.clip, 4);
        read_exact(&p.noise_std, 4);
        read_exact(&p.scale, 4);
        read_exact(&n_params, 4);
        read_exact(&round, 4);
        double rho = fc_ledger_release_rho(&p, n_params);
        fc_ledger_add(&ledger, round, rho);
        write_all(&rho, sizeof rho);
    }
    double eps = fc_ledger_epsilon(ledger.rho, delta);
    write_all(&ledger.rho, sizeof ledger.rho);
    write_all(&eps, sizeof eps);
    uint8_t blob[FC_LEDGER_BLOB_LEN];
    fc_ledger_encode(&ledger, blob);
    fc_ledger_t back = {0};
    uint32_t status = (uint32_t)fc_ledger_decode(blob, sizeof blob, &back);
    blob[13] ^= 1u; /* one flipped bit must be caught */
    fc_ledger_t ignored = {0};
    status |= fc_ledger_decode(blob, sizeof blob, &ignored) == 0 ? 2u : 0u;
    write_all(&status, sizeof status);
    write_all(&back.releases, sizeof back.releases);
    write_all(&back.last_round, sizeof back.last_round);
    write_all(&back.rho, sizeof back.rho);
    return 0;
}

/* policy: stdin f32 clip, noise_std, scale, u8 bits, u16 epochs, u16 capacity per query (until
 * EOF); out one u8 verdict (0 or the NACK code) per query, under this build's policy. */
static int cmd_policy(void)
{
    uint8_t rec[17];
    while (fread(rec, 1, sizeof rec, stdin) == sizeof rec) {
        fc_privacy_params_t p;
        fc_train_params_t t = {0};
        uint16_t capacity;
        memcpy(&p.clip, rec, 4);
        memcpy(&p.noise_std, rec + 4, 4);
        memcpy(&p.scale, rec + 8, 4);
        p.bits = rec[12];
        memcpy(&t.epochs, rec + 13, 2);
        memcpy(&capacity, rec + 15, 2);
        uint8_t verdict = fc_policy_check(fc_policy(), &t, &p, capacity);
        write_all(&verdict, 1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s rng|u01|below|chacha|sround|dgauss|privatize|cround|nbound|clip|train|explog|ledger|policy ...\n",
                argv[0]);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "rng")) return cmd_rng(argc, argv);
    if (!strcmp(cmd, "below")) return cmd_below(argc, argv);
    if (!strcmp(cmd, "u01")) return cmd_u01(argc, argv);
    if (!strcmp(cmd, "chacha")) return cmd_chacha();
    if (!strcmp(cmd, "sround")) return cmd_sround(argc, argv);
    if (!strcmp(cmd, "dgauss")) return cmd_dgauss(argc, argv);
    if (!strcmp(cmd, "privatize")) return cmd_privatize(argc, argv);
    if (!strcmp(cmd, "cround")) return cmd_cround(argc, argv);
    if (!strcmp(cmd, "nbound")) return cmd_nbound();
    if (!strcmp(cmd, "clip")) return cmd_clip();
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    if (!strcmp(cmd, "explog")) return cmd_explog();
    if (!strcmp(cmd, "ledger")) return cmd_ledger(argc, argv);
    if (!strcmp(cmd, "policy")) return cmd_policy();
    fprintf(stderr, "unknown command %s\n", cmd);
    return 2;
}
