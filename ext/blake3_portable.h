/* BLAKE3 (hash mode, 32-byte output), portable C, written from the BLAKE3
 * specification (O'Connor, Aumasson, Neves, Wilcox-O'Hearn, 2020): compression
 * function section 2.2, chunks section 2.4, tree section 2.5.  Used by
 * merkle's extension where per-call overhead, not bulk speed, decides:
 * node hashes (65-byte inputs) and small leaves.  Bulk leaves of large files
 * stay with the blake3 package's SIMD code. */
#ifndef MERKLE_BLAKE3_PORTABLE_H
#define MERKLE_BLAKE3_PORTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MB3_BLOCK 64
#define MB3_CHUNK 1024
#define MB3_CHUNK_START 1u
#define MB3_CHUNK_END 2u
#define MB3_PARENT 4u
#define MB3_ROOT 8u

static const uint32_t mb3_iv[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                   0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};
static const uint8_t mb3_perm[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};

static inline uint32_t mb3_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t mb3_load32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void mb3_store32(uint8_t *p, uint32_t w) {
    p[0] = (uint8_t)w; p[1] = (uint8_t)(w >> 8); p[2] = (uint8_t)(w >> 16); p[3] = (uint8_t)(w >> 24);
}

#define MB3_G(a, b, c, d, x, y)                   \
    do {                                          \
        s[a] = s[a] + s[b] + (x);                 \
        s[d] = mb3_rotr(s[d] ^ s[a], 16);         \
        s[c] = s[c] + s[d];                       \
        s[b] = mb3_rotr(s[b] ^ s[c], 12);         \
        s[a] = s[a] + s[b] + (y);                 \
        s[d] = mb3_rotr(s[d] ^ s[a], 8);          \
        s[c] = s[c] + s[d];                       \
        s[b] = mb3_rotr(s[b] ^ s[c], 7);          \
    } while (0)

/* The compression function; writes the new chaining value (8 words) to out. */
static void mb3_compress(const uint32_t cv[8], const uint8_t block[MB3_BLOCK], uint64_t counter,
                         uint32_t block_len, uint32_t flags, uint32_t out[8]) {
    uint32_t m[16], t[16], s[16];
    for (int i = 0; i < 16; i++) m[i] = mb3_load32(block + 4 * i);
    for (int i = 0; i < 8; i++) s[i] = cv[i];
    s[8] = mb3_iv[0]; s[9] = mb3_iv[1]; s[10] = mb3_iv[2]; s[11] = mb3_iv[3];
    s[12] = (uint32_t)counter; s[13] = (uint32_t)(counter >> 32); s[14] = block_len; s[15] = flags;
    for (int r = 0; r < 7; r++) {
        MB3_G(0, 4, 8, 12, m[0], m[1]);
        MB3_G(1, 5, 9, 13, m[2], m[3]);
        MB3_G(2, 6, 10, 14, m[4], m[5]);
        MB3_G(3, 7, 11, 15, m[6], m[7]);
        MB3_G(0, 5, 10, 15, m[8], m[9]);
        MB3_G(1, 6, 11, 12, m[10], m[11]);
        MB3_G(2, 7, 8, 13, m[12], m[13]);
        MB3_G(3, 4, 9, 14, m[14], m[15]);
        if (r < 6) {
            for (int i = 0; i < 16; i++) t[i] = m[mb3_perm[i]];
            memcpy(m, t, sizeof m);
        }
    }
    for (int i = 0; i < 8; i++) out[i] = s[i] ^ s[i + 8];
}

/* A pending output: compressed with ROOT when it turns out to be the root. */
typedef struct {
    uint32_t cv[8];
    uint8_t block[MB3_BLOCK];
    uint64_t counter;
    uint32_t block_len, flags;
} mb3_output;

static void mb3_chunk_output(const uint8_t *data, size_t len, uint64_t index, mb3_output *o) {
    /* len is 0..1024; every block but the last is compressed now. */
    uint32_t cv[8];
    memcpy(cv, mb3_iv, sizeof cv);
    size_t blocks = len == 0 ? 1 : (len + MB3_BLOCK - 1) / MB3_BLOCK;
    for (size_t b = 0; b + 1 < blocks; b++) {
        uint32_t flags = b == 0 ? MB3_CHUNK_START : 0;
        mb3_compress(cv, data + b * MB3_BLOCK, index, MB3_BLOCK, flags, cv);
    }
    size_t last = (blocks - 1) * MB3_BLOCK;
    memset(o->block, 0, MB3_BLOCK);
    memcpy(o->block, data + last, len - last);
    memcpy(o->cv, cv, sizeof cv);
    o->counter = index;
    o->block_len = (uint32_t)(len - last);
    o->flags = (blocks == 1 ? MB3_CHUNK_START : 0) | MB3_CHUNK_END;
}

static void mb3_parent_output(const uint32_t left[8], const uint32_t right[8], mb3_output *o) {
    for (int i = 0; i < 8; i++) {
        mb3_store32(o->block + 4 * i, left[i]);
        mb3_store32(o->block + 32 + 4 * i, right[i]);
    }
    memcpy(o->cv, mb3_iv, sizeof o->cv);
    o->counter = 0;
    o->block_len = MB3_BLOCK;
    o->flags = MB3_PARENT;
}

static inline void mb3_output_cv(const mb3_output *o, uint32_t out[8]) {
    mb3_compress(o->cv, o->block, o->counter, o->block_len, o->flags, out);
}


/* ---- eight chunks at once (AVX2), from the same specification: the
 * compression function on 8 independent chunks, one per 32-bit lane.  Used
 * for full chunks that are neither the first nor the last of an input. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MB3_HAVE_X86 1

/* Round r's message word order: the permutation of section 2.2 applied r
 * times to 0..15, written out so that every index is a constant and the
 * message words stay in registers. */
static const uint8_t mb3_schedule[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

__attribute__((target("avx2"))) static inline void mb3_transpose8(__m256i v[8]) {
    __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    __m256i t4 = _mm256_unpacklo_epi32(v[4], v[5]), t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    __m256i t6 = _mm256_unpacklo_epi32(v[6], v[7]), t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    v[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    v[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    v[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    v[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    v[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    v[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    v[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    v[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* The seven rounds with message schedule r (section 2.2): columns, then
 * diagonals; G is the vector width's G function. */
#define MB3_ROUNDS(G)                                          \
    _Pragma("GCC unroll 7") for (int r = 0; r < 7; r++) {      \
        const uint8_t *s = mb3_schedule[r];                    \
        G(0, 4, 8, 12, m[s[0]], m[s[1]]);                      \
        G(1, 5, 9, 13, m[s[2]], m[s[3]]);                      \
        G(2, 6, 10, 14, m[s[4]], m[s[5]]);                     \
        G(3, 7, 11, 15, m[s[6]], m[s[7]]);                     \
        G(0, 5, 10, 15, m[s[8]], m[s[9]]);                     \
        G(1, 6, 11, 12, m[s[10]], m[s[11]]);                   \
        G(2, 7, 8, 13, m[s[12]], m[s[13]]);                    \
        G(3, 4, 9, 14, m[s[14]], m[s[15]]);                    \
    }

#define MB3_ROTR_SHIFT(x, n) _mm256_or_si256(_mm256_srli_epi32((x), (n)), _mm256_slli_epi32((x), 32 - (n)))
#define MB3_VG(a, b, c, d, x, y)                                           \
    do {                                                                   \
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), (x));        \
        v[d] = _mm256_shuffle_epi8(_mm256_xor_si256(v[d], v[a]), rot16);   \
        v[c] = _mm256_add_epi32(v[c], v[d]);                               \
        v[b] = MB3_ROTR_SHIFT(_mm256_xor_si256(v[b], v[c]), 12);           \
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), (y));        \
        v[d] = _mm256_shuffle_epi8(_mm256_xor_si256(v[d], v[a]), rot8);    \
        v[c] = _mm256_add_epi32(v[c], v[d]);                               \
        v[b] = MB3_ROTR_SHIFT(_mm256_xor_si256(v[b], v[c]), 7);            \
    } while (0)

/* The chaining values of 8 full chunks (chunk[j] has chunk index counter + j). */
__attribute__((target("avx2"))) static void mb3_hash8_avx2(const uint8_t *const chunk[8], uint64_t counter,
                                                            uint32_t out[8][8]) {
    const __m256i rot16 = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
                                           2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const __m256i rot8 = _mm256_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
                                          1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
    uint32_t lo[8], hi[8];
    for (int j = 0; j < 8; j++) {
        lo[j] = (uint32_t)(counter + (uint64_t)j);
        hi[j] = (uint32_t)((counter + (uint64_t)j) >> 32);
    }
    const __m256i clo = _mm256_loadu_si256((const __m256i *)lo), chi = _mm256_loadu_si256((const __m256i *)hi);
    __m256i h[8], m[16], v[16];
    for (int i = 0; i < 8; i++) h[i] = _mm256_set1_epi32((int)mb3_iv[i]);
    for (int b = 0; b < MB3_CHUNK / MB3_BLOCK; b++) {
        for (int j = 0; j < 8; j++) {
            m[j] = _mm256_loadu_si256((const __m256i *)(chunk[j] + b * MB3_BLOCK));
            m[8 + j] = _mm256_loadu_si256((const __m256i *)(chunk[j] + b * MB3_BLOCK + 32));
        }
        mb3_transpose8(m);
        mb3_transpose8(m + 8);
        uint32_t flags = (b == 0 ? MB3_CHUNK_START : 0) | (b == MB3_CHUNK / MB3_BLOCK - 1 ? MB3_CHUNK_END : 0);
        for (int i = 0; i < 8; i++) v[i] = h[i];
        for (int i = 0; i < 4; i++) v[8 + i] = _mm256_set1_epi32((int)mb3_iv[i]);
        v[12] = clo;
        v[13] = chi;
        v[14] = _mm256_set1_epi32(MB3_BLOCK);
        v[15] = _mm256_set1_epi32((int)flags);
        MB3_ROUNDS(MB3_VG);
        for (int i = 0; i < 8; i++) h[i] = _mm256_xor_si256(v[i], v[i + 8]);
    }
    mb3_transpose8(h);
    for (int j = 0; j < 8; j++) _mm256_storeu_si256((__m256i *)out[j], h[j]);
}


#define MB3_VG16(a, b, c, d, x, y)                                         \
    do {                                                                   \
        v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), (x));        \
        v[d] = _mm512_ror_epi32(_mm512_xor_si512(v[d], v[a]), 16);         \
        v[c] = _mm512_add_epi32(v[c], v[d]);                               \
        v[b] = _mm512_ror_epi32(_mm512_xor_si512(v[b], v[c]), 12);         \
        v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), (y));        \
        v[d] = _mm512_ror_epi32(_mm512_xor_si512(v[d], v[a]), 8);          \
        v[c] = _mm512_add_epi32(v[c], v[d]);                               \
        v[b] = _mm512_ror_epi32(_mm512_xor_si512(v[b], v[c]), 7);          \
    } while (0)

/* The seven rounds of the compression function on 16 lanes. */
__attribute__((target("avx512f"), always_inline)) static inline void mb3_rounds16(__m512i v[16], const __m512i m[16]) {
    MB3_ROUNDS(MB3_VG16);
}

/* A 16x16 matrix of 32-bit words, one row per register, transposed in
 * registers: 4x4 blocks within each 128-bit lane (unpack), then the 4x4
 * matrix of 128-bit lanes across registers (shuffle_i32x4). */
__attribute__((target("avx512f"), always_inline)) static inline void mb3_transpose16(__m512i r[16]) {
    __m512i u[16];
    for (int g = 0; g < 4; g++) {
        const __m512i *a = r + 4 * g;
        __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]), t1 = _mm512_unpackhi_epi32(a[0], a[1]);
        __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]), t3 = _mm512_unpackhi_epi32(a[2], a[3]);
        u[4 * g + 0] = _mm512_unpacklo_epi64(t0, t2);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
    }
    /* u[4g + i], lane k = column 4k + i of rows 4g..4g+3 */
    for (int i = 0; i < 4; i++) {
        __m512i p0 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x44), p1 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xEE);
        __m512i p2 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x44);
        __m512i p3 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xEE);
        r[i] = _mm512_shuffle_i32x4(p0, p2, 0x88);
        r[4 + i] = _mm512_shuffle_i32x4(p0, p2, 0xDD);
        r[8 + i] = _mm512_shuffle_i32x4(p1, p3, 0x88);
        r[12 + i] = _mm512_shuffle_i32x4(p1, p3, 0xDD);
    }
}

/* 16 full chunks, chunk[j] with chunk index counter + j: each block loaded
 * whole per chunk, then transposed into message words. */
__attribute__((target("avx512f"))) static void mb3_hash16_avx512(const uint8_t *const chunk[16], uint64_t counter,
                                                                  uint32_t out[16][8]) {
    uint32_t lo[16], hi[16];
    for (int j = 0; j < 16; j++) {
        lo[j] = (uint32_t)(counter + (uint64_t)j);
        hi[j] = (uint32_t)((counter + (uint64_t)j) >> 32);
    }
    const __m512i clo = _mm512_loadu_si512(lo), chi = _mm512_loadu_si512(hi);
    __m512i h[16], m[16], v[16];
    for (int i = 0; i < 8; i++) h[i] = _mm512_set1_epi32((int)mb3_iv[i]);
    for (int b = 0; b < MB3_CHUNK / MB3_BLOCK; b++) {
        for (int j = 0; j < 16; j++) m[j] = _mm512_loadu_si512((const void *)(chunk[j] + b * MB3_BLOCK));
        mb3_transpose16(m);
        uint32_t flags = (b == 0 ? MB3_CHUNK_START : 0) | (b == MB3_CHUNK / MB3_BLOCK - 1 ? MB3_CHUNK_END : 0);
        for (int i = 0; i < 8; i++) v[i] = h[i];
        for (int i = 0; i < 4; i++) v[8 + i] = _mm512_set1_epi32((int)mb3_iv[i]);
        v[12] = clo;
        v[13] = chi;
        v[14] = _mm512_set1_epi32(MB3_BLOCK);
        v[15] = _mm512_set1_epi32((int)flags);
        mb3_rounds16(v, m);
        for (int i = 0; i < 8; i++) h[i] = _mm512_xor_si512(v[i], v[i + 8]);
    }
    for (int i = 8; i < 16; i++) h[i] = _mm512_setzero_si512();
    mb3_transpose16(h);
    for (int j = 0; j < 16; j++) _mm256_storeu_si256((__m256i *)out[j], _mm512_castsi512_si256(h[j]));
}


/* 16 parent nodes at once: blocks[j] = left || right (64 bytes, consecutive),
 * written as 16 chaining values to out (8 words each, consecutive). */
__attribute__((target("avx512f"))) static void mb3_parents16_avx512(const uint8_t *blocks, uint32_t *out) {
    __m512i m[16], v[16];
    for (int j = 0; j < 16; j++) m[j] = _mm512_loadu_si512((const void *)(blocks + j * MB3_BLOCK));
    mb3_transpose16(m);
    for (int i = 0; i < 8; i++) v[i] = _mm512_set1_epi32((int)mb3_iv[i]);
    for (int i = 0; i < 4; i++) v[8 + i] = _mm512_set1_epi32((int)mb3_iv[i]);
    v[12] = _mm512_setzero_si512();
    v[13] = _mm512_setzero_si512();
    v[14] = _mm512_set1_epi32(MB3_BLOCK);
    v[15] = _mm512_set1_epi32((int)MB3_PARENT);
    mb3_rounds16(v, m);
    for (int i = 0; i < 8; i++) v[i] = _mm512_xor_si512(v[i], v[i + 8]);
    for (int i = 8; i < 16; i++) v[i] = _mm512_setzero_si512();
    mb3_transpose16(v);
    for (int j = 0; j < 16; j++) _mm256_storeu_si256((__m256i *)(out + 8 * j), _mm512_castsi512_si256(v[j]));
}

static int mb3_avx512 = -1;
static int mb3_avx2 = -1;

static inline int mb3_use_avx2(void) {
    if (mb3_avx2 < 0) {
        __builtin_cpu_init();
        mb3_avx2 = __builtin_cpu_supports("avx2") && getenv("MERKLE_NO_AVX2") == NULL ? 1 : 0;
        mb3_avx512 = mb3_avx2 && __builtin_cpu_supports("avx512f") && getenv("MERKLE_NO_AVX512") == NULL ? 1 : 0;
    }
    return mb3_avx2;
}
#else
#define MB3_HAVE_X86 0
static inline int mb3_use_avx2(void) { return 0; }
#endif

static inline int mb3_use_avx512(void) {
#if MB3_HAVE_X86
    mb3_use_avx2();
    return mb3_avx512;
#else
    return 0;
#endif
}

#if MB3_HAVE_X86

#define MB3_WIDE_MAX_CHUNKS 4096

/* Every chunk's chaining value into cvs (n >= 2 chunks), then the tree level
 * by level (the same shape: the left subtree holds the largest power of two
 * of chunks), 16 parents at a time; the last parent is the root.  Every full
 * chunk goes through the 16-lane path (the first one, which straddles the
 * prefix byte, from a copy; a last group of fewer than 16 with its spare
 * lanes repeating a chunk, their results dropped); only a short last chunk
 * is hashed alone. */
static void mb3_hash_wide(int prefix, const uint8_t *data, size_t total, uint64_t n, uint32_t *cvs,
                          uint8_t out[32]) {
    uint8_t first[MB3_CHUNK];
    const uint8_t *base = data - (prefix >= 0 ? 1 : 0); /* chunk i at base + i * MB3_CHUNK, except chunk 0 */
    uint64_t full = total % MB3_CHUNK == 0 ? n : n - 1;
    mb3_output o;
    if (prefix >= 0) {
        size_t len0 = total < MB3_CHUNK ? total : MB3_CHUNK;
        first[0] = (uint8_t)prefix;
        memcpy(first + 1, data, len0 - 1);
    }
    for (uint64_t i = 0; i < full; i += 16) {
        const uint8_t *ptrs[16];
        uint32_t block_cvs[16][8];
        uint64_t lanes = full - i < 16 ? full - i : 16;
        for (uint64_t j = 0; j < 16; j++) {
            uint64_t c = i + (j < lanes ? j : 0);
            ptrs[j] = c == 0 && prefix >= 0 ? first : base + (size_t)c * MB3_CHUNK;
        }
        mb3_hash16_avx512(ptrs, i, block_cvs);
        memcpy(cvs + 8 * i, block_cvs, (size_t)lanes * sizeof block_cvs[0]);
    }
    if (full < n) { /* a short last chunk (n >= 2, so never the first) */
        size_t start = (size_t)full * MB3_CHUNK;
        mb3_chunk_output(base + start, total - start, full, &o);
        mb3_output_cv(&o, cvs + 8 * full);
    }
    uint64_t count = n;
    while (count > 2) {
        uint64_t pairs = count / 2, k = 0;
        for (; k + 16 <= pairs; k += 16) mb3_parents16_avx512((const uint8_t *)(cvs + 16 * k), cvs + 8 * k);
        if (pairs - k > 1) { /* the rest through the 16-lane path too, from a padded copy */
            uint32_t blocks[16 * 16], parents[16 * 8];
            memset(blocks, 0, sizeof blocks);
            memcpy(blocks, cvs + 16 * k, (size_t)(pairs - k) * 64);
            mb3_parents16_avx512((const uint8_t *)blocks, parents);
            memcpy(cvs + 8 * k, parents, (size_t)(pairs - k) * 32);
            k = pairs;
        }
        for (; k < pairs; k++) {
            mb3_output parent;
            mb3_parent_output(cvs + 16 * k, cvs + 16 * k + 8, &parent);
            mb3_output_cv(&parent, cvs + 8 * k);
        }
        if (count & 1) memmove(cvs + 8 * pairs, cvs + 8 * (count - 1), 32);
        count = pairs + (count & 1);
    }
    mb3_parent_output(cvs, cvs + 8, &o);
    uint32_t words[8];
    mb3_compress(o.cv, o.block, o.counter, o.block_len, o.flags | MB3_ROOT, words);
    for (int i = 0; i < 8; i++) mb3_store32(out + 4 * i, words[i]);
}
#endif

/* BLAKE3 of (prefix byte, if prefix >= 0) || data, 32 bytes into out.
 * The prefix lets a leaf or node be hashed without copying its input. */
static void mb3_hash(int prefix, const uint8_t *data, size_t len, uint8_t out[32]) {
    size_t total = len + (prefix >= 0 ? 1 : 0);
    uint32_t stack[64][8];
    int depth = 0;
    uint8_t chunk[MB3_CHUNK];
    mb3_output o;
    uint64_t n = total == 0 ? 1 : (total + MB3_CHUNK - 1) / MB3_CHUNK;
    int simd = mb3_use_avx2(), wide = mb3_use_avx512();
#if MB3_HAVE_X86
    if (wide && n >= 2 && n <= MB3_WIDE_MAX_CHUNKS) {
        uint32_t cvs[MB3_WIDE_MAX_CHUNKS * 8];
        mb3_hash_wide(prefix, data, total, n, cvs, out);
        return;
    }
#endif
    for (uint64_t i = 0; i < n;) {
        uint32_t cvs[16][8];
        int got = 0;
#if MB3_HAVE_X86
        if (wide && i + 16 < n && !(prefix >= 0 && i == 0)) { /* 16 full chunks, as below */
            const uint8_t *ptrs[16];
            for (int j = 0; j < 16; j++) ptrs[j] = data + (size_t)(i + j) * MB3_CHUNK - (prefix >= 0 ? 1 : 0);
            mb3_hash16_avx512(ptrs, i, cvs);
            got = 16;
        } else if (simd && i + 8 < n && !(prefix >= 0 && i == 0)) { /* 8 full chunks, none first-with-prefix nor last */
            const uint8_t *ptrs[8];
            for (int j = 0; j < 8; j++) ptrs[j] = data + (size_t)(i + j) * MB3_CHUNK - (prefix >= 0 ? 1 : 0);
            mb3_hash8_avx2(ptrs, i, cvs);
            got = 8;
        }
#endif
        if (!got) {
            size_t start = (size_t)i * MB3_CHUNK, clen = total - start < MB3_CHUNK ? total - start : MB3_CHUNK;
            const uint8_t *p;
            if (prefix >= 0 && i == 0) { /* the first chunk is the only one that straddles the prefix */
                chunk[0] = (uint8_t)prefix;
                if (clen > 1) memcpy(chunk + 1, data, clen - 1);
                p = chunk;
            } else {
                p = data + start - (prefix >= 0 ? 1 : 0);
            }
            mb3_chunk_output(p, clen, i, &o);
            if (i + 1 == n) break;
            mb3_output_cv(&o, cvs[0]);
            got = 1;
        }
        for (int j = 0; j < got; j++) {
            uint32_t cv[8];
            memcpy(cv, cvs[j], sizeof cv);
            /* Merge completed subtrees: one merge per trailing zero bit of the chunk count. */
            uint64_t count = i + (uint64_t)j + 1;
            while ((count & 1) == 0) {
                mb3_output parent;
                depth--;
                mb3_parent_output(stack[depth], cv, &parent);
                mb3_output_cv(&parent, cv);
                count >>= 1;
            }
            memcpy(stack[depth++], cv, sizeof cv);
        }
        i += (uint64_t)got;
    }
    while (depth > 0) {
        uint32_t cv[8];
        mb3_output_cv(&o, cv);
        depth--;
        mb3_parent_output(stack[depth], cv, &o);
    }
    uint32_t words[8];
    mb3_compress(o.cv, o.block, o.counter, o.block_len, o.flags | MB3_ROOT, words);
    for (int i = 0; i < 8; i++) mb3_store32(out + 4 * i, words[i]);
}

#endif
