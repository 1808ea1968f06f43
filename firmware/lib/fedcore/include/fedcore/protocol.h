/* Link protocol constants, version 2. The specification is docs/PROTOCOL.md; the Python twin
 * (tools/link) defines the same names (MsgType.HELLO <-> FC_MSG_HELLO, NackCode.BAD_CRC <->
 * FC_NACK_BAD_CRC) and a test compares both. All integers on the wire are little-endian. */
#ifndef FEDCORE_PROTOCOL_H
#define FEDCORE_PROTOCOL_H

#define FC_PROTO_VERSION 2u

/* Framing sizes (bytes, before COBS). */
#define FC_HEADER_LEN 12u
#define FC_AUTH_LEN 24u
#define FC_CRC_LEN 4u
#define FC_MAX_PAYLOAD 2048u
#define FC_MAX_FRAME (FC_HEADER_LEN + FC_MAX_PAYLOAD + FC_AUTH_LEN + FC_CRC_LEN)
#define FC_MAX_ENCODED (FC_MAX_FRAME + FC_MAX_FRAME / 254u + 1u)

#define FC_DEVICE_ANY 0xFFFFFFFFu

/* Header flags. */
#define FC_FLAG_REPLY 0x01u
#define FC_FLAG_AUTH 0x02u
/* Every other flag bit is reserved: a frame with one set is NACKed BAD_FRAME (both twins). */
#define FC_FLAG_RESERVED_MASK 0xFCu

/* Message types. */
#define FC_MSG_HELLO 0x01u
#define FC_MSG_INFO 0x02u
#define FC_MSG_LOG 0x03u
#define FC_MSG_MODEL_BEGIN 0x10u
#define FC_MSG_MODEL_CHUNK 0x11u
#define FC_MSG_MODEL_COMMIT 0x12u
#define FC_MSG_SAMPLE 0x20u
#define FC_MSG_INFER 0x21u
#define FC_MSG_RESULT 0x22u
#define FC_MSG_TRAIN 0x30u
#define FC_MSG_UPDATE_READY 0x31u
#define FC_MSG_UPDATE_GET 0x32u
#define FC_MSG_UPDATE_CHUNK 0x33u
#define FC_MSG_ACK 0x40u
#define FC_MSG_NACK 0x41u
#define FC_MSG_STATS_GET 0x50u
#define FC_MSG_STATS 0x51u
#define FC_MSG_CLEAR 0x60u
#define FC_MSG_RESET 0x61u
#define FC_MSG_SEED 0x62u
/* Enrollment and authentication (0x70-0x7F, docs/PROTOCOL.md §6). */
#define FC_MSG_ENROLL_GET 0x70u
#define FC_MSG_ENROLL_INFO 0x71u
#define FC_MSG_ENROLL_SET 0x72u
/* Secure aggregation (docs/PROTOCOL.md §7). */
#define FC_MSG_SECAGG_SETUP 0x73u
#define FC_MSG_SECAGG_KEYS 0x74u
#define FC_MSG_SECAGG_PEERS 0x75u
#define FC_MSG_SECAGG_SHARES 0x76u
#define FC_MSG_SECAGG_SHARES_IN 0x77u
#define FC_MSG_SECAGG_MASK 0x78u
#define FC_MSG_SECAGG_MASKED 0x79u
#define FC_MSG_SECAGG_UNMASK 0x7Au
#define FC_MSG_SECAGG_REVEAL 0x7Bu

/* NACK codes. */
#define FC_NACK_BAD_FRAME 1u
#define FC_NACK_BAD_CRC 2u
#define FC_NACK_BAD_VERSION 3u
#define FC_NACK_UNKNOWN_TYPE 4u
#define FC_NACK_BAD_LENGTH 5u
#define FC_NACK_BAD_STATE 6u
#define FC_NACK_BAD_HASH 7u
#define FC_NACK_NONFINITE 8u
#define FC_NACK_SHAPE 9u
#define FC_NACK_NO_DATA 10u
#define FC_NACK_UNSUPPORTED 11u
#define FC_NACK_BAD_PARAM 12u
#define FC_NACK_INCOMPLETE 13u
#define FC_NACK_STORAGE 14u
#define FC_NACK_MISMATCH 15u
/* 16-23: the device's own privacy policy and ledger (fedcore/policy.h, fedcore/ledger.h). */
#define FC_NACK_POLICY_NOISE 16u /* noise_std below z_min * clip */
#define FC_NACK_POLICY_CLIP 17u  /* clip 0 (no bound) or above the policy's maximum */
#define FC_NACK_POLICY_QUANT 18u /* bits or scale outside the policy */
#define FC_NACK_POLICY_WORK 19u  /* epochs x examples above the policy's work limit */
#define FC_NACK_BUDGET 20u       /* this release would take epsilon past the lifetime budget */
#define FC_NACK_ROUND_OLD 21u    /* round id below the last round that released an update */
/* 24-31: device robustness. */
#define FC_NACK_HEAD_NORM 24u

/* NACK BAD_STATE detail while the device trains and serves only HELLO, STATS_GET and RESET. */
#define FC_BUSY_DETAIL 0x59535542u

/* A head (MODEL_COMMIT) is refused with NACK HEAD_NORM when a value's magnitude exceeds
 * FC_HEAD_MAX_ABS or its L2 norm (over W and b) exceeds FC_HEAD_MAX_L2. */
#define FC_HEAD_MAX_ABS 64u
#define FC_HEAD_MAX_L2 1024u
/* Authentication and enrollment (32-47). */
#define FC_NACK_AUTH_REQUIRED 32u  /* protected type sent without AUTH to an enrolled device */
#define FC_NACK_AUTH_TAG 33u       /* AEAD tag does not verify: forged, damaged, other device */
#define FC_NACK_AUTH_REPLAY 34u    /* counter not above the last accepted: replayed/reordered */
#define FC_NACK_AUTH_KEY 35u       /* key_id is not the current enrollment's */
#define FC_NACK_NOT_ENROLLED 36u   /* production device without a server, or AUTH before one */
#define FC_NACK_ENROLLED 37u       /* ENROLL_SET with another server key and no FORCE */
#define FC_NACK_FORCE_REFUSED 38u  /* FORCE neither authenticated nor right after power-on */
#define FC_NACK_NO_IDENTITY 39u    /* no entropy yet to create the device key */
#define FC_NACK_BAD_KEY 40u        /* a public key that is a low-order point */
#define FC_NACK_SECAGG_STATE 41u   /* SecAgg step out of order or for another round */
#define FC_NACK_SECAGG_PEERS 42u   /* peer list: duplicate, self missing, n/t wrong, bad key */
#define FC_NACK_SECAGG_SHARE 43u   /* an encrypted share does not verify */
#define FC_NACK_SECAGG_THRESHOLD 44u /* fewer than t devices would remain */
#define FC_NACK_SECAGG_CONSISTENCY 45u /* another U2 or survivor split than before */
#define FC_NACK_SECAGG_MODULUS 46u /* the sum could wrap mod 2^bits_mod, or bits_mod > 32 */
#define FC_NACK_SECAGG_ACTIVE 47u  /* UPDATE_GET refused: this round's update leaves masked */

/* INFO capabilities. */
#define FC_CAP_SAMPLE 0x01u
#define FC_CAP_TRAIN 0x02u
#define FC_CAP_DISCRETE_GAUSSIAN 0x04u
#define FC_CAP_SEED 0x08u
#define FC_CAP_PERSISTENT_STORAGE 0x10u
#define FC_CAP_REPLAY 0x20u /* replay profile: SAMPLE/INFER on host windows, SEED, seeded TRAIN */
#define FC_CAP_LEDGER 0x40u /* the device enforces its policy and accounts every release */

/* INFO.profile. */
#define FC_INFO_PROFILE_PRODUCTION 0u
#define FC_INFO_PROFILE_REPLAY 1u

/* INFO.reset_reason (fc_platform_reset_reason). */
#define FC_RESET_UNKNOWN 0u
#define FC_RESET_POWER_ON 1u
#define FC_RESET_SOFTWARE 2u
#define FC_RESET_WATCHDOG 3u
#define FC_RESET_PANIC 4u
#define FC_RESET_BROWNOUT 5u
#define FC_RESET_EXTERNAL 6u

/* LOG levels. */
#define FC_LOG_DEBUG 0u
#define FC_LOG_INFO 1u
#define FC_LOG_WARN 2u
#define FC_LOG_ERROR 3u

/* SAMPLE / INFER flags. */
#define FC_SAMPLE_LABELLED 0x01u
#define FC_INFER_USE_GLOBAL 0x01u
#define FC_INFER_WANT_EMBEDDING 0x02u

/* TRAIN flags. */
#define FC_TRAIN_USE_SEED 0x01u
#define FC_TRAIN_IMPRINT 0x02u /* after training, add the class prototypes (fc_head_imprint) */
#define FC_TRAIN_IMPRINT_STRENGTH 1.0f

/* UPDATE_READY flags. bit0 (was CLIPPED) is reserved: whether the un-noised delta exceeded the
 * clip is a bit about the user's data, so it is never sent. SATURATED is computed from the
 * released integers themselves (some q at the edge of the wire width): post-processing. */
#define FC_UPDATE_SATURATED 0x02u

/* CLEAR bits. */
#define FC_CLEAR_EXAMPLES 0x01u
#define FC_CLEAR_PERSONAL_HEAD 0x02u

/* ENROLL_SET flags and ENROLL_INFO flags. */
#define FC_ENROLL_FORCE 0x01u
#define FC_ENROLL_INFO_ENROLLED 0x01u
#define FC_ENROLL_INFO_FORCE_WINDOW 0x02u
#define FC_ENROLL_INFO_REPLAY_PROFILE 0x04u

/* SECAGG_UNMASK kinds: what to reveal about a peer. */
#define FC_SECAGG_SURVIVOR 0u /* its self-mask seed share */
#define FC_SECAGG_DROPPED 1u  /* its mask key share */

/* UPDATE_GET offset asking for UPDATE_READY again. */
#define FC_UPDATE_GET_READY 0xFFFFFFFFu

/* Fixed payload sizes (bytes). */
#define FC_BOARD_NAME_LEN 15u
#define FC_INFO_LEN 144u
#define FC_MODEL_BEGIN_LEN 44u
#define FC_MODEL_CHUNK_HDR_LEN 8u
#define FC_MODEL_COMMIT_LEN 4u
#define FC_WINDOW_HDR_LEN 4u
#define FC_TRAIN_LEN 48u
#define FC_UPDATE_READY_LEN 36u
#define FC_UPDATE_GET_LEN 10u
#define FC_UPDATE_CHUNK_HDR_LEN 8u
#define FC_ACK_LEN 8u
#define FC_SEED_LEN 32u
#define FC_ENROLL_INFO_LEN 108u
#define FC_ENROLL_SET_LEN 36u
#define FC_SESSION_NONCE_LEN 16u
#define FC_SECAGG_SETUP_LEN 12u
#define FC_SECAGG_KEYS_LEN 68u
#define FC_SECAGG_LIST_HDR_LEN 8u  /* u32 round, u16 n, u16 0: PEERS, SHARES, UNMASK, REVEAL */
#define FC_SECAGG_PEER_LEN 68u     /* u32 id, c_pk[32], s_pk[32] */
#define FC_SECAGG_MASK_HDR_LEN 12u
#define FC_SECAGG_MASKED_HDR_LEN 16u
#define FC_SECAGG_UNMASK_ENTRY_LEN 8u
#define FC_SECAGG_REVEAL_ENTRY_LEN 52u
/* STATS: link and health counters only, none derived from the user's data. */
#define FC_STATS_COUNTERS 10u
#define FC_STATS_LEN (4u * FC_STATS_COUNTERS)

#endif /* FEDCORE_PROTOCOL_H */
