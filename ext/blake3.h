/* BLAKE3 (hash mode, 32-byte output), written from the BLAKE3 specification
 * (O'Connor, Aumasson, Neves, Wilcox-O'Hearn, 2020): compression function
 * section 2.2, chunks section 2.4, tree section 2.5.
 *
 * Three tiers, picked once from the CPU (mb3_tier): portable C; AVX2, which
 * compresses 8 chunks or 8 parent nodes per step; AVX-512, 16 per step.  The
 * driver (mb3_hash) sends every full chunk and every parent node of an input
 * through the widest kernel, a window of chunks at a time, so memory stays
 * bounded whatever the input's size.  Where the tier is portable, merkle's
 * bulk paths hash with the blake3 package instead (merkle/_native.py); the
 * portable code still serves node hashes (65-byte inputs), where the cost of
 * a call decides, not bulk speed. */
#ifndef MERKLE_BLAKE3_H
#define MERKLE_BLAKE3_H

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
/* How far ahead in each chunk the kernels ask for data (four blocks): a
 * batch reads 8 or 16 streams at once, more than the hardware prefetcher
 * follows well.  On a 256 MiB input in RAM (the page cache's case) AVX-512
 * went from 3.35 to 3.95 GB/s per core and AVX2 from 2.34 to 2.48; inputs
 * already in cache did not change (128 to 512 bytes tried; 128-256 best). */
#ifndef MB3_AHEAD
#define MB3_AHEAD 256
#endif

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

/* G (section 2.2) on one column or diagonal (a, b, c, d) with message words
 * x and y, for any vector width: ADD, XOR and the four rotations are the
 * width's operations.  (Written one G after another: GCC keeps more in
 * registers this way than with the four G steps interleaved by hand.) */
#define MB3_G_OF(ADD, XOR, R16, R12, R8, R7, a, b, c, d, x, y) \
    do {                                                      \
        v[a] = ADD(ADD(v[a], v[b]), (x));                     \
        v[d] = R16(XOR(v[d], v[a]));                          \
        v[c] = ADD(v[c], v[d]);                               \
        v[b] = R12(XOR(v[b], v[c]));                          \
        v[a] = ADD(ADD(v[a], v[b]), (y));                     \
        v[d] = R8(XOR(v[d], v[a]));                           \
        v[c] = ADD(v[c], v[d]);                               \
        v[b] = R7(XOR(v[b], v[c]));                           \
    } while (0)

#define MB3_HALF(ADD, XOR, R16, R12, R8, R7, a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, x0, y0, \
                 x1, y1, x2, y2, x3, y3)                                                                            \
    do {                                                                                                            \
        MB3_G_OF(ADD, XOR, R16, R12, R8, R7, a0, b0, c0, d0, x0, y0);                                               \
        MB3_G_OF(ADD, XOR, R16, R12, R8, R7, a1, b1, c1, d1, x1, y1);                                               \
        MB3_G_OF(ADD, XOR, R16, R12, R8, R7, a2, b2, c2, d2, x2, y2);                                               \
        MB3_G_OF(ADD, XOR, R16, R12, R8, R7, a3, b3, c3, d3, x3, y3);                                               \
    } while (0)

/* The seven rounds with message schedule r: columns, then diagonals. */
#define MB3_ROUNDS_OF(HALF, ...) MB3_ROUNDS(HALF, __VA_ARGS__)
#define MB3_ROUNDS(HALF, ADD, XOR, R16, R12, R8, R7)                                                                   \
    _Pragma("GCC unroll 7") for (int r = 0; r < 7; r++) {                                                        \
        const uint8_t *s = mb3_schedule[r];                                                                      \
        HALF(ADD, XOR, R16, R12, R8, R7, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, m[s[0]],        \
                 m[s[1]], m[s[2]], m[s[3]], m[s[4]], m[s[5]], m[s[6]], m[s[7]]);                                  \
        HALF(ADD, XOR, R16, R12, R8, R7, 0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, m[s[8]],        \
                 m[s[9]], m[s[10]], m[s[11]], m[s[12]], m[s[13]], m[s[14]], m[s[15]]);                            \
    }

#define MB3_ADD8(a, b) _mm256_add_epi32((a), (b))
#define MB3_XOR8(a, b) _mm256_xor_si256((a), (b))
#define MB3_R16_8(x) _mm256_shuffle_epi8((x), rot16)
#define MB3_R8_8(x) _mm256_shuffle_epi8((x), rot8)
#define MB3_R12_8(x) _mm256_or_si256(_mm256_srli_epi32((x), 12), _mm256_slli_epi32((x), 20))
#define MB3_R7_8(x) _mm256_or_si256(_mm256_srli_epi32((x), 7), _mm256_slli_epi32((x), 25))
#define MB3_VG MB3_ADD8, MB3_XOR8, MB3_R16_8, MB3_R12_8, MB3_R8_8, MB3_R7_8

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
    __m256i m[16], v[16]; /* v[0..7] carry the chaining values from block to block */
    for (int i = 0; i < 8; i++) v[i] = _mm256_set1_epi32((int)mb3_iv[i]);
    for (int b = 0; b < MB3_CHUNK / MB3_BLOCK; b++) {
        for (int j = 0; j < 8; j++) {
            _mm_prefetch((const char *)(chunk[j] + b * MB3_BLOCK + MB3_AHEAD), _MM_HINT_T0);
            m[j] = _mm256_loadu_si256((const __m256i *)(chunk[j] + b * MB3_BLOCK));
            m[8 + j] = _mm256_loadu_si256((const __m256i *)(chunk[j] + b * MB3_BLOCK + 32));
        }
        mb3_transpose8(m);
        mb3_transpose8(m + 8);
        uint32_t flags = (b == 0 ? MB3_CHUNK_START : 0) | (b == MB3_CHUNK / MB3_BLOCK - 1 ? MB3_CHUNK_END : 0);
        for (int i = 0; i < 4; i++) v[8 + i] = _mm256_set1_epi32((int)mb3_iv[i]);
        v[12] = clo;
        v[13] = chi;
        v[14] = _mm256_set1_epi32(MB3_BLOCK);
        v[15] = _mm256_set1_epi32((int)flags);
        MB3_ROUNDS_OF(MB3_HALF, MB3_VG);
        for (int i = 0; i < 8; i++) v[i] = _mm256_xor_si256(v[i], v[i + 8]);
    }
    mb3_transpose8(v);
    for (int j = 0; j < 8; j++) _mm256_storeu_si256((__m256i *)out[j], v[j]);
}


#define MB3_ADD16(a, b) _mm512_add_epi32((a), (b))
#define MB3_XOR16(a, b) _mm512_xor_si512((a), (b))
#define MB3_R16_16(x) _mm512_ror_epi32((x), 16)
#define MB3_R12_16(x) _mm512_ror_epi32((x), 12)
#define MB3_R8_16(x) _mm512_ror_epi32((x), 8)
#define MB3_R7_16(x) _mm512_ror_epi32((x), 7)
#define MB3_VG16 MB3_ADD16, MB3_XOR16, MB3_R16_16, MB3_R12_16, MB3_R8_16, MB3_R7_16

/* The seven rounds of the compression function on 16 lanes. */
__attribute__((target("avx512f"), always_inline)) static inline void mb3_rounds16(__m512i v[16], const __m512i m[16]) {
    MB3_ROUNDS_OF(MB3_HALF, MB3_VG16);
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
    __m512i m[16], v[16]; /* v[0..7] carry the chaining values from block to block */
    for (int i = 0; i < 8; i++) v[i] = _mm512_set1_epi32((int)mb3_iv[i]);
    for (int b = 0; b < MB3_CHUNK / MB3_BLOCK; b++) {
        for (int j = 0; j < 16; j++) {
            _mm_prefetch((const char *)(chunk[j] + b * MB3_BLOCK + MB3_AHEAD), _MM_HINT_T0);
            m[j] = _mm512_loadu_si512((const void *)(chunk[j] + b * MB3_BLOCK));
        }
        mb3_transpose16(m);
        uint32_t flags = (b == 0 ? MB3_CHUNK_START : 0) | (b == MB3_CHUNK / MB3_BLOCK - 1 ? MB3_CHUNK_END : 0);
        for (int i = 0; i < 4; i++) v[8 + i] = _mm512_set1_epi32((int)mb3_iv[i]);
        v[12] = clo;
        v[13] = chi;
        v[14] = _mm512_set1_epi32(MB3_BLOCK);
        v[15] = _mm512_set1_epi32((int)flags);
        mb3_rounds16(v, m);
        for (int i = 0; i < 8; i++) v[i] = _mm512_xor_si512(v[i], v[i + 8]);
    }
    for (int i = 8; i < 16; i++) v[i] = _mm512_setzero_si512();
    mb3_transpose16(v);
    for (int j = 0; j < 16; j++) _mm256_storeu_si256((__m256i *)out[j], _mm512_castsi512_si256(v[j]));
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

/* 8 parent nodes at once (AVX2): blocks[j] = left || right (64 bytes,
 * consecutive), written as 8 chaining values to out (8 words each). */
__attribute__((target("avx2"))) static void mb3_parents8_avx2(const uint8_t *blocks, uint32_t *out) {
    const __m256i rot16 = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
                                           2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const __m256i rot8 = _mm256_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
                                          1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
    __m256i m[16], v[16];
    for (int j = 0; j < 8; j++) {
        m[j] = _mm256_loadu_si256((const __m256i *)(blocks + j * MB3_BLOCK));
        m[8 + j] = _mm256_loadu_si256((const __m256i *)(blocks + j * MB3_BLOCK + 32));
    }
    mb3_transpose8(m);
    mb3_transpose8(m + 8);
    for (int i = 0; i < 8; i++) v[i] = _mm256_set1_epi32((int)mb3_iv[i]);
    for (int i = 0; i < 4; i++) v[8 + i] = _mm256_set1_epi32((int)mb3_iv[i]);
    v[12] = _mm256_setzero_si256();
    v[13] = _mm256_setzero_si256();
    v[14] = _mm256_set1_epi32(MB3_BLOCK);
    v[15] = _mm256_set1_epi32((int)MB3_PARENT);
    MB3_ROUNDS_OF(MB3_HALF, MB3_VG);
    for (int i = 0; i < 8; i++) v[i] = _mm256_xor_si256(v[i], v[i + 8]);
    mb3_transpose8(v);
    for (int j = 0; j < 8; j++) _mm256_storeu_si256((__m256i *)(out + 8 * j), v[j]);
}
#define MB3_HAVE_X86_KERNELS 1
#else
#define MB3_HAVE_X86 0
#define MB3_HAVE_X86_KERNELS 0
#endif

/* ---- the tier: which kernels run, decided once from the CPU and the
 * MERKLE_NO_AVX512 / MERKLE_NO_AVX2 switches (which simulate lesser CPUs). */
#define MB3_TIER_PORTABLE 0
#define MB3_TIER_AVX2 1
#define MB3_TIER_AVX512 2

static int mb3_tier_value = -1;

/* A switch is on when set to anything but "" or "0" (as MERKLE_PURE). */
static int mb3_switch_on(const char *name) {
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static int mb3_tier(void) {
    if (mb3_tier_value < 0) {
        int tier = MB3_TIER_PORTABLE;
#if MB3_HAVE_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && !mb3_switch_on("MERKLE_NO_AVX2")) {
            tier = MB3_TIER_AVX2;
            if (__builtin_cpu_supports("avx512f") && !mb3_switch_on("MERKLE_NO_AVX512")) tier = MB3_TIER_AVX512;
        }
#endif
        mb3_tier_value = tier;
    }
    return mb3_tier_value;
}

static inline int mb3_use_avx2(void) { return mb3_tier() >= MB3_TIER_AVX2; }
static inline int mb3_use_avx512(void) { return mb3_tier() >= MB3_TIER_AVX512; }

/* ---- the driver: every chunk and every parent goes through the widest
 * kernel of the tier, in batches (a short batch fills its spare lanes by
 * repeating its first input; their results are dropped).  Only a partial
 * last chunk is hashed alone. */

/* The chaining values of n full chunks; ptrs[j] has chunk index counter + j. */
static void mb3_chunks(const uint8_t *const *ptrs, size_t n, uint64_t counter, uint32_t *cvs) {
    int tier = mb3_tier();
    size_t j = 0;
#if MB3_HAVE_X86_KERNELS
    if (tier == MB3_TIER_AVX512)
        for (; j + 16 <= n; j += 16) mb3_hash16_avx512(ptrs + j, counter + j, (uint32_t(*)[8])(cvs + 8 * j));
    if (tier >= MB3_TIER_AVX2) {
        for (; j + 8 <= n; j += 8) mb3_hash8_avx2(ptrs + j, counter + j, (uint32_t(*)[8])(cvs + 8 * j));
        if (n - j >= 2) { /* the rest in one padded batch */
            const uint8_t *pad[8];
            uint32_t out[8][8];
            for (size_t k = 0; k < 8; k++) pad[k] = ptrs[j + (j + k < n ? k : 0)];
            mb3_hash8_avx2(pad, counter + j, out);
            memcpy(cvs + 8 * j, out, (n - j) * sizeof out[0]);
            j = n;
        }
    }
#endif
    (void)tier;
    for (; j < n; j++) {
        uint32_t cv[8];
        memcpy(cv, mb3_iv, sizeof cv);
        for (int b = 0; b < MB3_CHUNK / MB3_BLOCK; b++) {
            uint32_t flags = (b == 0 ? MB3_CHUNK_START : 0) | (b == MB3_CHUNK / MB3_BLOCK - 1 ? MB3_CHUNK_END : 0);
            mb3_compress(cv, ptrs[j] + b * MB3_BLOCK, counter + j, MB3_BLOCK, flags, cv);
        }
        memcpy(cvs + 8 * j, cv, sizeof cv);
    }
}

static inline void mb3_parent_cv(const uint32_t *left_right, uint32_t out[8]) {
    mb3_compress(mb3_iv, (const uint8_t *)left_right, 0, MB3_BLOCK, MB3_PARENT, out);
}

/* One tree level: the n parents of cvs' 2n values into cvs[0..n) (in place:
 * a batch reads its inputs before it writes, and writes below what later
 * batches read).  The words are little-endian in memory, as BLAKE3 reads a
 * block (x86 and the usual ARM configurations). */
static void mb3_parents(uint32_t *cvs, size_t n) {
    int tier = mb3_tier();
    size_t k = 0;
#if MB3_HAVE_X86_KERNELS
    if (tier == MB3_TIER_AVX512)
        for (; k + 16 <= n; k += 16) mb3_parents16_avx512((const uint8_t *)(cvs + 16 * k), cvs + 8 * k);
    if (tier >= MB3_TIER_AVX2) {
        for (; k + 8 <= n; k += 8) mb3_parents8_avx2((const uint8_t *)(cvs + 16 * k), cvs + 8 * k);
        if (n - k >= 2) {
            uint32_t blocks[8 * 16], out[8 * 8];
            memcpy(blocks, cvs + 16 * k, (n - k) * 64);
            for (size_t r = n - k; r < 8; r++) memcpy(blocks + 16 * r, blocks, 64);
            mb3_parents8_avx2((const uint8_t *)blocks, out);
            memcpy(cvs + 8 * k, out, (n - k) * 32);
            k = n;
        }
    }
#endif
    (void)tier;
    for (; k < n; k++) {
        uint32_t cv[8];
        mb3_parent_cv(cvs + 16 * k, cv);
        memcpy(cvs + 8 * k, cv, sizeof cv);
    }
}

#if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#error "merkle's BLAKE3 driver reads chaining values as little-endian blocks"
#endif

/* Inputs are cut into windows of MB3_WINDOW chunks (a power of two): every
 * full window but the last is a complete subtree, merged on a stack; the
 * last is reduced level by level (pairs, an odd last value carried up: the
 * BLAKE3 shape, whose left subtree holds the largest power of two of chunks
 * smaller than the whole) and folded into the stack. */
#define MB3_WINDOW 512

typedef struct {
    int prefix;          /* a byte hashed before data, or -1 */
    const uint8_t *data;
    size_t total;        /* bytes, prefix included */
    uint64_t n;          /* chunks (>= 1) */
    uint8_t first[MB3_CHUNK]; /* chunk 0 when it straddles the prefix */
} mb3_input;

static inline const uint8_t *mb3_chunk_at(const mb3_input *in, uint64_t c) {
    if (c == 0 && in->prefix >= 0) return in->first;
    return in->data + (size_t)c * MB3_CHUNK - (in->prefix >= 0 ? 1 : 0);
}

/* The chaining values of chunks [c0, c0 + count) into cvs (n >= 2, so no
 * chunk here is the root); a partial last chunk of the input is hashed alone. */
static void mb3_window_cvs(const mb3_input *in, uint64_t c0, uint64_t count, uint32_t *cvs) {
    const uint8_t *ptrs[MB3_WINDOW];
    uint64_t full = count;
    int partial = c0 + count == in->n && in->total % MB3_CHUNK != 0;
    if (partial) full--;
    for (uint64_t j = 0; j < full; j++) ptrs[j] = mb3_chunk_at(in, c0 + j);
    mb3_chunks(ptrs, (size_t)full, c0, cvs);
    if (partial) {
        mb3_output o;
        size_t start = (size_t)(c0 + full) * MB3_CHUNK;
        mb3_chunk_output(mb3_chunk_at(in, c0 + full), in->total - start, c0 + full, &o);
        mb3_output_cv(&o, cvs + 8 * full);
    }
}

static void mb3_store_root(const mb3_output *o, uint8_t out[32]) {
    uint32_t words[8];
    mb3_compress(o->cv, o->block, o->counter, o->block_len, o->flags | MB3_ROOT, words);
    for (int i = 0; i < 8; i++) mb3_store32(out + 4 * i, words[i]);
}

/* BLAKE3 of (prefix byte, if prefix >= 0) || data, 32 bytes into out.
 * The prefix lets a leaf or node be hashed without copying its input. */
static void mb3_hash(int prefix, const uint8_t *data, size_t len, uint8_t out[32]) {
    size_t total = len + (prefix >= 0 ? 1 : 0);
    uint64_t n = total == 0 ? 1 : (total + MB3_CHUNK - 1) / MB3_CHUNK;
    mb3_output o;
    if (n == 1) { /* nodes and small leaves: one chunk, no batching */
        uint8_t chunk[MB3_CHUNK];
        const uint8_t *p = data;
        if (prefix >= 0) {
            chunk[0] = (uint8_t)prefix;
            if (len) memcpy(chunk + 1, data, len);
            p = chunk;
        }
        mb3_chunk_output(p, total, 0, &o);
        mb3_store_root(&o, out);
        return;
    }
    mb3_input in;
    in.prefix = prefix;
    in.data = data;
    in.total = total;
    in.n = n;
    if (prefix >= 0) {
        in.first[0] = (uint8_t)prefix;
        memcpy(in.first + 1, data, (total < MB3_CHUNK ? total : MB3_CHUNK) - 1);
    }
    uint32_t cvs[MB3_WINDOW * 8];
    uint32_t stack[64][8];
    int depth = 0;
    uint64_t windows = (n + MB3_WINDOW - 1) / MB3_WINDOW, c0 = 0;
    for (uint64_t w = 0; w + 1 < windows; w++, c0 += MB3_WINDOW) { /* complete subtrees */
        mb3_window_cvs(&in, c0, MB3_WINDOW, cvs);
        for (size_t count = MB3_WINDOW; count > 1; count /= 2) mb3_parents(cvs, count / 2);
        /* merge completed subtrees: one merge per trailing zero bit of the window count */
        for (uint64_t done = w + 1; (done & 1) == 0; done >>= 1) {
            uint32_t pair[16];
            memcpy(pair, stack[--depth], 32);
            memcpy(pair + 8, cvs, 32);
            mb3_parent_cv(pair, cvs);
        }
        memcpy(stack[depth++], cvs, 32);
    }
    size_t count = (size_t)(n - c0); /* the last window, 1..MB3_WINDOW chunks */
    mb3_window_cvs(&in, c0, count, cvs);
    size_t keep = depth == 0 ? 2 : 1; /* alone, it is the root: stop at its two children */
    while (count > keep) {
        size_t pairs = count / 2;
        mb3_parents(cvs, pairs);
        if (count & 1) memmove(cvs + 8 * pairs, cvs + 8 * (count - 1), 32);
        count = pairs + (count & 1);
    }
    if (depth == 0) { /* count == 2 here (n >= 2) */
        mb3_parent_output(cvs, cvs + 8, &o);
        mb3_store_root(&o, out);
        return;
    }
    uint32_t right[8];
    memcpy(right, cvs, 32);
    while (depth > 1) {
        uint32_t pair[16];
        memcpy(pair, stack[--depth], 32);
        memcpy(pair + 8, right, 32);
        mb3_parent_cv(pair, right);
    }
    mb3_parent_output(stack[0], right, &o);
    mb3_store_root(&o, out);
}

#endif
