/*
 * Spectra Vis native eval callback (plain C99, no dependencies but libm).
 *
 * Bindings stage: spectra_vis/_native.py builds this file with the system C compiler
 * into a cache directory and loads it with ctypes; spectra_vis/native_capture.py
 * drives it. It decides per graph node whether llama.cpp hands the node over, counts
 * evaluations, and computes the capture statistics in one pass, so Python runs only
 * for what must be Python: a new graph (a new Step), a node never seen at its place
 * in the graph (catalogue registration), and tensors it cannot read itself.
 *
 * Decisions are cached per *layout*: the sequence of node names of a graph. The
 * catalogue key of a node (name and occurrence, or anchor and offset, see
 * collector.py) is a function of the names before it in the same graph only, so a
 * node whose whole name prefix equals a recorded layout's has that layout's tensor
 * id and flags. Tensor pointers are never trusted: llama.cpp rebuilds graphs in the
 * same memory, and shapes are always read from the live tensor.
 *
 * Statistics (stats.py is the definition): l2, mean, std (population), min, max,
 * absmax, sparsity (|x| <= 1e-6f) over the finite values, accumulated in double;
 * nonfinite = count of NaN/Inf. Top-k: value descending, ties by lower index.
 *
 * Rules: the data phase always returns true; nothing here calls back into Python
 * except through the three hooks, which catch everything themselves.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SV_API __attribute__((visibility("default")))
#define SV_NAME 64
#define SV_LAYOUTS 8
#define SV_SLOTS 64
#define SV_MAX_LOGITS 64
#define SV_CHUNK 4096
#define SV_NEAR_ZERO 1e-6f

#define SV_WANT 1u     /* ask for the node's data */
#define SV_PYDATA 2u   /* the data phase is Python's (full attention matrices, custom hooks) */
#define SV_ATTN 4u     /* attention probabilities: top-k and entropy instead of statistics */
#define SV_VEC 32u     /* Python also keeps the rows (activation vectors) after C read the statistics */
#define SV_DONE_BIT (1 << 30) /* in the tid given to on_data: C already read the statistics */
#define SV_LOGITS 8u   /* logits: statistics plus the top tokens of the last row */
#define SV_ROWAX1 16u  /* token rows along ggml dim 1 (kq, kq_soft_max, kqv) */

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(SV_NO_CLONES)
#define SV_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define SV_KERNEL
#endif

/* struct ggml_tensor (ggml.h); Python compares sv_tensor_layout() with its checked ctypes layout. */
struct sv_tensor {
    int type;
    void *buffer;
    int64_t ne[4];
    size_t nb[4];
    int op;
    int32_t op_params[16];
    int32_t flags;
    void *src[10];
    void *view_src;
    size_t view_offs;
    void *data;
    char name[SV_NAME];
    void *extra;
    char padding[8];
};

typedef int32_t (*sv_graph_fn)(void *tensor);            /* new graph: 1 capture it, 0 ignore it */
typedef int64_t (*sv_node_fn)(void *tensor, int32_t pos);  /* unknown node: tid | flags << 32, or -1 */
typedef void (*sv_data_fn)(void *tensor, int32_t tid);     /* data phase done by Python */
typedef bool (*sv_is_host_fn)(void *buffer);              /* ggml_backend_buffer_is_host */
typedef void (*sv_f16_fn)(const void *x, float *y, int64_t n); /* ggml_fp16_to_fp32_row */

typedef struct { void *p; int64_t cap; } sv_buf; /* a growable array; cap in elements */

/* What one step produced; Python reads it (mirrored in _native.py) and clears it. */
typedef struct {
    int64_t calls;      /* callback calls while capturing (ask and data) */
    int64_t n_errors;
    char error[256];    /* the first error since the last clear */
    int64_t n_stats;    /* stat_tid[n] (int32), stat_val[n][8] (float) */
    sv_buf stat_tid, stat_val;
    int64_t n_rowsets;  /* rowset[n][3] (int32): tid, first row, row count */
    sv_buf rowset;
    int64_t n_rows;     /* row_val[n][8] (float) */
    sv_buf row_val;
    int64_t n_att;      /* att_meta[n][7] (int32): tid, heads, rows, k, n_kv, pos offset, entropy offset */
    sv_buf att_meta, att_lost;  /* att_lost[n] (float): largest probability mass beyond n_kv */
    int64_t n_att_k;    /* att_pos[n] (int32), att_p[n] (float) */
    sv_buf att_pos, att_p;
    int64_t n_att_e;    /* att_ent[n] (float) */
    sv_buf att_ent;
    int64_t logits_k;   /* -1 when the step has no logits */
    int32_t logit_ids[SV_MAX_LOGITS];
    float logit_vals[SV_MAX_LOGITS];
    int64_t n_vecs;     /* vec_meta[n][4] (int64): tid, first value, rows, width (SV_VEC nodes' rows) */
    sv_buf vec_meta;
    int64_t n_vec_vals; /* vec_val[n] (float, or float16 bits when the state's vec_f16 is set) */
    sv_buf vec_val;
    int64_t n_vec_rows; /* vec_scale[n] (float): each row's scale, stored = row / scale (float16 only) */
    sv_buf vec_scale;
} sv_out;

typedef struct { int32_t tid; uint32_t flags; } sv_entry;

typedef struct {
    int32_t n, cap;
    char (*names)[SV_NAME];
    sv_entry *e;
    uint64_t used;
} sv_layout;

typedef struct { double sum, sq; float mn, mx; int64_t n, nz, bad; } sv_acc;

typedef struct sv_state {
    sv_graph_fn on_graph;
    sv_node_fn on_node;
    sv_data_fn on_data;
    int32_t slot, logits_k;
    int32_t in_graph, active, pos, sync, recording, cur;
    int32_t started; /* a start name (embd, inp_embd) was seen in this graph: the next one begins a new graph */
    uint64_t clock;
    sv_layout lay[SV_LAYOUTS];
    sv_buf ptrs;  /* this graph's node pointers by position */
    void *last_ptr;
    int32_t last_tid;
    uint32_t last_flags;
    int32_t step_pos, n_tokens, top_k;
    int32_t vec_f16; /* vectors are kept as float16 rows scaled by powers of two (else float32) */
    sv_buf counts; /* int64 per tensor id */
    int64_t n_counts;
    sv_buf tmp, half, acc;
    sv_out out;
} sv_state;

static sv_is_host_fn g_is_host;
static sv_f16_fn g_f16;
static sv_f16_fn g_f16_ggml;
static sv_state *g_slots[SV_SLOTS];

/* ----- small helpers ------------------------------------------------------------ */

static int sv_reserve(sv_buf *b, int64_t need, size_t elem) {
    if (need <= b->cap) return 1;
    int64_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    void *p = realloc(b->p, (size_t)cap * elem);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
    return 1;
}

static void sv_fail(sv_state *s, const char *msg) {
    if (s->out.n_errors++ == 0) {
        strncpy(s->out.error, msg, sizeof(s->out.error) - 1);
        s->out.error[sizeof(s->out.error) - 1] = '\0';
    }
}

static int sv_is_start(const char *n) {
    return (n[0] == 'e' && strcmp(n, "embd") == 0) || (n[0] == 'i' && strcmp(n, "inp_embd") == 0);
}

static int sv_ndim(const struct sv_tensor *t) {
    int d = 4;
    while (d > 1 && t->ne[d - 1] == 1) d--;
    return d;
}

/* ----- statistics kernel ---------------------------------------------------------- */

static void sv_acc_init(sv_acc *a) {
    a->sum = a->sq = 0.0;
    a->mn = INFINITY;
    a->mx = -INFINITY;
    a->n = a->nz = a->bad = 0;
}

static void sv_acc_merge(sv_acc *a, const sv_acc *b) {
    a->sum += b->sum;
    a->sq += b->sq;
    if (b->n) {
        a->mn = b->mn < a->mn ? b->mn : a->mn;
        a->mx = b->mx > a->mx ? b->mx : a->mx;
    }
    a->n += b->n;
    a->nz += b->nz;
    a->bad += b->bad;
}

static void sv_acc_slow(const float *x, int64_t n, sv_acc *a) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        if (!isfinite(v)) {
            a->bad++;
            continue;
        }
        double d = v;
        a->sum += d;
        a->sq += d * d;
        a->mn = v < a->mn ? v : a->mn;
        a->mx = v > a->mx ? v : a->mx;
        a->nz += fabsf(v) <= SV_NEAR_ZERO;
        a->n++;
    }
}

#if defined(__GNUC__)
typedef float sv_v4f __attribute__((vector_size(16)));
typedef float sv_v8f __attribute__((vector_size(32)));
typedef int32_t sv_v8i __attribute__((vector_size(32)));
typedef double sv_v4d __attribute__((vector_size(32)));

/* Eight float lanes, four-double accumulators: each lane keeps its own order, the sum is
   reassociated across lanes only (numpy's pairwise sums reassociate too). */
SV_KERNEL static int64_t sv_acc_vec(const float *x, int64_t n, sv_acc *b) {
    sv_v4d s0 = {0}, s1 = {0}, q0 = {0}, q1 = {0};
    sv_v8f mn, mx;
    sv_v8i z = {0}, bad = {0};
    const sv_v8i expo = {0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000,
                         0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000};
    const sv_v8i absm = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                         0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    const sv_v8f tiny = {SV_NEAR_ZERO, SV_NEAR_ZERO, SV_NEAR_ZERO, SV_NEAR_ZERO,
                         SV_NEAR_ZERO, SV_NEAR_ZERO, SV_NEAR_ZERO, SV_NEAR_ZERO};
    for (int j = 0; j < 8; j++) {
        mn[j] = INFINITY;
        mx[j] = -INFINITY;
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        sv_v8f v;
        sv_v4f lo, hi;
        memcpy(&v, x + i, 32);
        memcpy(&lo, x + i, 16);
        memcpy(&hi, x + i + 4, 16);
        sv_v8i u = (sv_v8i)v;
        bad |= (u & expo) == expo;
        sv_v4d dl = __builtin_convertvector(lo, sv_v4d), dh = __builtin_convertvector(hi, sv_v4d);
        s0 += dl;
        s1 += dh;
        q0 += dl * dl;
        q1 += dh * dh;
        sv_v8i lt = v < mn, gt = v > mx;
        mn = (sv_v8f)((lt & u) | (~lt & (sv_v8i)mn));
        mx = (sv_v8f)((gt & u) | (~gt & (sv_v8i)mx));
        z -= (sv_v8f)(u & absm) <= tiny;
    }
    int any_bad = 0;
    for (int j = 0; j < 8; j++) any_bad |= bad[j];
    if (any_bad) return -1;
    for (int j = 0; j < 4; j++) {
        b->sum += s0[j] + s1[j];
        b->sq += q0[j] + q1[j];
    }
    for (int j = 0; j < 8; j++) {
        b->mn = mn[j] < b->mn ? mn[j] : b->mn;
        b->mx = mx[j] > b->mx ? mx[j] : b->mx;
        b->nz += z[j];
    }
    b->n = i;
    return i;
}
#endif

static void sv_acc_f32(const float *x, int64_t n, sv_acc *a) {
    sv_acc b;
    sv_acc_init(&b);
    int64_t i = 0;
#if defined(__GNUC__)
    i = sv_acc_vec(x, n, &b);
    if (i < 0) { /* rare: NaN or Inf in the vector part; redo value by value */
        sv_acc_slow(x, n, a);
        return;
    }
#endif
    sv_acc_slow(x + i, n - i, &b); /* the tail, value by value (skips NaN and Inf itself) */
    sv_acc_merge(a, &b);
}

static void sv_acc_final(const sv_acc *a, float *out) {
    double n = a->n ? (double)a->n : 1.0;
    double mean = a->sum / n;
    double var = a->sq / n - mean * mean;
    float mn = a->n ? a->mn : 0.0f, mx = a->n ? a->mx : 0.0f;
    out[0] = (float)sqrt(a->sq);
    out[1] = (float)mean;
    out[2] = (float)sqrt(var > 0.0 ? var : 0.0);
    out[3] = mn;
    out[4] = mx;
    out[5] = fabsf(mn) > fabsf(mx) ? fabsf(mn) : fabsf(mx);
    out[6] = (float)((double)a->nz / n);
    out[7] = (float)a->bad;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(SV_NO_CLONES)
#include <immintrin.h>
#define SV_HAVE_F16C 1
__attribute__((target("avx,f16c"))) static void sv_f16_f16c(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) y[i] = _cvtsh_ss(h[i]);
}
#endif

/* float -> IEEE float16 bits, rounding to nearest even as numpy's astype(float16) does (F. Giesen's
   float_to_half_fast3_rtne): at or past 65520 infinity, NaN a quiet NaN, subnormals exact. */
static uint16_t sv_to_half(float value) {
    uint32_t u, sign;
    memcpy(&u, &value, 4);
    sign = u & 0x80000000u;
    u ^= sign;
    uint16_t o;
    if (u >= (uint32_t)(127 + 16) << 23) { /* 2^16 and up, Inf, NaN */
        o = u > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (u < (uint32_t)113 << 23) { /* below 2^-14: a float16 subnormal or zero, by float addition */
        const uint32_t magic_u = (uint32_t)((127 - 15) + (23 - 10) + 1) << 23;
        float f, magic;
        memcpy(&f, &u, 4);
        memcpy(&magic, &magic_u, 4);
        f += magic;
        memcpy(&u, &f, 4);
        o = (uint16_t)(u - magic_u);
    } else {
        uint32_t odd = (u >> 13) & 1u;
        u += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd;
        o = (uint16_t)(u >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

typedef void (*sv_h16_fn)(const float *x, float mul, uint16_t *y, int64_t n);

/* y = float16(x * mul); mul is a power of two (exact). */
static void sv_h16_plain(const float *x, float mul, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = sv_to_half(x[i] * mul);
}

#ifdef SV_HAVE_F16C
__attribute__((target("avx,f16c"))) static void sv_h16_f16c(const float *x, float mul, uint16_t *y, int64_t n) {
    const __m256 m = _mm256_set1_ps(mul);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(x + i), m), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = sv_to_half(x[i] * mul);
}
#endif

static sv_h16_fn g_h16 = sv_h16_plain;

#define SV_F16_LIMIT 32768.0f /* rows are scaled so that no stored value is above this (as recorder.F16_LIMIT) */

/* The power of two that brings a row inside float16's range: 1 unless its largest magnitude passes
   SV_F16_LIMIT, then 2^ceil(log2(max / limit)); 1 for a row holding NaN or Inf (recorder._f16_packed). */
SV_KERNEL static float sv_row_scale(const float *x, int64_t n) {
    float mx = 0.0f;
    int64_t i = 0;
#if defined(__GNUC__)
    sv_v8f vm = {0};
    const sv_v8i abs_mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                             0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    for (; i + 8 <= n; i += 8) {
        sv_v8f v;
        memcpy(&v, x + i, 32);
        v = (sv_v8f)((sv_v8i)v & abs_mask);
        sv_v8i gt = v > vm; /* NaN never wins */
        vm = (sv_v8f)((gt & (sv_v8i)v) | (~gt & (sv_v8i)vm));
    }
    for (int l = 0; l < 8; l++) mx = vm[l] > mx ? vm[l] : mx;
#endif
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        mx = a > mx ? a : mx;
    }
    if (!(mx > SV_F16_LIMIT) || mx == INFINITY) return 1.0f;
    for (int64_t i = 0; i < n; i++)
        if (x[i] != x[i]) return 1.0f; /* rare: a row past the limit that also holds NaN */
    int e;
    float f = frexpf(mx / SV_F16_LIMIT, &e); /* mx / limit = f * 2^e, f in [0.5, 1) */
    return ldexpf(1.0f, f == 0.5f ? e - 1 : e);
}

/* rows x width floats as float16 rows y and their scales (row = y * scale), in one pass per row. */
SV_API void sv_f16_rows(const float *x, int64_t rows, int64_t width, uint16_t *y, float *scale) {
    for (int64_t r = 0; r < rows; r++) {
        scale[r] = sv_row_scale(x + r * width, width);
        g_h16(x + r * width, 1.0f / scale[r], y + r * width, width);
    }
}

/* Up to n values of one ggml row (stride nb0) as contiguous floats: in place or via tmp. */
static const float *sv_row(const char *base, int64_t n, size_t nb0, int type, float *tmp, uint16_t *half) {
    if (type == 0 && nb0 == 4) return (const float *)base;
    if (type == 1 && nb0 == 2) {
        g_f16(base, tmp, n);
        return tmp;
    }
    if (type == 0) {
        for (int64_t i = 0; i < n; i++) memcpy(&tmp[i], base + (size_t)i * nb0, 4);
    } else {
        for (int64_t i = 0; i < n; i++) memcpy(&half[i], base + (size_t)i * nb0, 2);
        g_f16(half, tmp, n);
    }
    return tmp;
}

/* A tensor's loops: size-1 dims dropped and contiguous neighbours merged, never across the
   token-row dim, so views like ne = [1, 65536] are one run, not 65536 rows. */
typedef struct { int64_t ne[4]; size_t nb[4]; int rd; } sv_loops;

static void sv_merge(const struct sv_tensor *t, int row_dim, sv_loops *l) {
    int n = 0;
    l->rd = -1;
    for (int d = 0; d < 4; d++) {
        if (t->ne[d] == 1 && d != row_dim) continue;
        if (n > 0 && d != row_dim && l->rd != n - 1 && t->nb[d] == l->nb[n - 1] * (size_t)l->ne[n - 1]) {
            l->ne[n - 1] *= t->ne[d];
            continue;
        }
        l->ne[n] = t->ne[d];
        l->nb[n] = t->nb[d];
        if (d == row_dim) l->rd = n;
        n++;
    }
    if (n == 0) { /* a single value */
        l->ne[0] = 1;
        l->nb[0] = t->nb[0];
        n = 1;
    }
    for (; n < 4; n++) {
        l->ne[n] = 1;
        l->nb[n] = l->nb[n - 1] * (size_t)l->ne[n - 1];
    }
}

static int sv_readable(const struct sv_tensor *t) {
    if (!t->data || (t->type != 0 && t->type != 1)) return 0;
    if (t->type == 1 && !g_f16) return 0;
    return !t->buffer || (g_is_host && g_is_host(t->buffer));
}

/* Whole-tensor statistics, and per-token-row statistics when row_dim >= 0 (rows = ne[row_dim]). */
static int sv_tensor_stats(sv_state *s, const struct sv_tensor *t, int row_dim, float *whole, float *rows) {
    int64_t nrows = row_dim >= 0 ? t->ne[row_dim] : 0;
    if (!sv_reserve(&s->tmp, SV_CHUNK, sizeof(float)) || !sv_reserve(&s->half, SV_CHUNK, 2)) return 0;
    if (nrows && !sv_reserve(&s->acc, nrows, sizeof(sv_acc))) return 0;
    sv_loops l;
    sv_merge(t, row_dim, &l);
    sv_acc *acc = s->acc.p, all;
    sv_acc_init(&all);
    for (int64_t r = 0; r < nrows; r++) sv_acc_init(&acc[r]);
    float *tmp = s->tmp.p;
    const char *data = t->data;
    for (int64_t i3 = 0; i3 < l.ne[3]; i3++)
        for (int64_t i2 = 0; i2 < l.ne[2]; i2++)
            for (int64_t i1 = 0; i1 < l.ne[1]; i1++) {
                const char *base = data + i1 * l.nb[1] + i2 * l.nb[2] + i3 * l.nb[3];
                sv_acc *a = &all;
                if (nrows) a = &acc[l.rd == 0 ? 0 : l.rd == 1 ? i1 : l.rd == 2 ? i2 : i3];
                for (int64_t i0 = 0; i0 < l.ne[0]; i0 += SV_CHUNK) {
                    int64_t m = l.ne[0] - i0 < SV_CHUNK ? l.ne[0] - i0 : SV_CHUNK;
                    const float *x = sv_row(base + (size_t)i0 * l.nb[0], m, l.nb[0], t->type, tmp, s->half.p);
                    if (nrows && l.rd == 0) { /* rows along the innermost dim: one value per row */
                        for (int64_t j = 0; j < m; j++) sv_acc_slow(x + j, 1, &acc[i0 + j]);
                    } else {
                        sv_acc_f32(x, m, a);
                    }
                }
            }
    for (int64_t r = 0; r < nrows; r++) {
        sv_acc_merge(&all, &acc[r]);
        sv_acc_final(&acc[r], rows + r * 8);
    }
    sv_acc_final(&all, whole);
    return 1;
}

/* ----- top-k (value descending, ties by lower index) -------------------------------- */

/* Merge x[0..n) into a top-k list already holding m entries (value descending; index i of x is
   recorded as offset + i); returns how many entries the list holds. */
static int sv_topk_more(const float *x, int64_t n, int k, int32_t *idx, float *val, int m, int64_t offset) {
    for (int64_t i = 0; i < n; i++) {
        if (m == k && (i & 15) == 0 && i + 16 <= n) { /* skip a block that cannot enter (logits: most) */
            float bmax = -INFINITY;
            for (int j = 0; j < 16; j++) bmax = x[i + j] > bmax ? x[i + j] : bmax; /* NaN never wins */
            if (!(bmax > val[k - 1])) {
                i += 15;
                continue;
            }
        }
        float v = x[i];
        if (v != v) v = -INFINITY;
        int j;
        if (m < k) {
            j = m++;
        } else {
            if (!(v > val[k - 1])) continue;
            j = k - 1;
        }
        while (j > 0 && val[j - 1] < v) {
            val[j] = val[j - 1];
            idx[j] = idx[j - 1];
            j--;
        }
        val[j] = v;
        idx[j] = (int32_t)(offset + i);
    }
    return m;
}

static int sv_topk(const float *x, int64_t n, int k, int32_t *idx, float *val) {
    return sv_topk_more(x, n, k, idx, val, 0, 0);
}

/* e^x for x <= 0 (below -87: e^-87), branch-free so that loops over it vectorize: Cody-Waite
   reduction and Cephes' degree-6 polynomial, relative error below 3e-7. */
static inline float sv_exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln 2) */
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

#if defined(__GNUC__)
/* Eight lanes of sv_exp_neg. */
static inline __attribute__((always_inline)) sv_v8f sv_exp_neg8(sv_v8f x) {
    const sv_v8f lo = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
    sv_v8i below = x < lo;
    x = (sv_v8f)((below & (sv_v8i)lo) | (~below & (sv_v8i)x));
    sv_v8f n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    sv_v8f r = x - n * 0.693359375f + n * 2.12194440e-4f;
    sv_v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    sv_v8i bits = (__builtin_convertvector(n, sv_v8i) + 127) << 23;
    return p * (sv_v8f)bits;
}

/* The first m - m % 8 logits of a row: maximum and count above nl (NaN: never above, never max). */
SV_KERNEL static int64_t sv_lens_scan8(const float *x, int64_t m, float nl, float *bmax, int64_t *hi) {
    sv_v8f mx = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    sv_v8i cnt = {0};
    int64_t j = 0;
    for (; j + 8 <= m; j += 8) {
        sv_v8f v;
        memcpy(&v, x + j, 32);
        sv_v8i gt = v > mx;
        mx = (sv_v8f)((gt & (sv_v8i)v) | (~gt & (sv_v8i)mx));
        cnt -= v > nl;
    }
    for (int l = 0; l < 8; l++) {
        *bmax = mx[l] > *bmax ? mx[l] : *bmax;
        *hi += cnt[l];
    }
    return j;
}

/* The first m - m % 8 logits of a row: sum of e^(l - mf) and of e^(l - mf) * l. */
SV_KERNEL static int64_t sv_lens_exp8(const float *x, int64_t m, float mf, double *bs, double *bt) {
    sv_v8f se = {0}, te = {0};
    int64_t j = 0;
    for (; j + 8 <= m; j += 8) {
        sv_v8f v;
        memcpy(&v, x + j, 32);
        sv_v8f e = sv_exp_neg8(v - mf);
        se += e;
        te += e * v;
    }
    for (int l = 0; l < 8; l++) {
        *bs += se[l];
        *bt += te[l];
    }
    return j;
}
#endif

/* One block of logit-lens logits: lg holds n rows of m logits, vocabulary columns offset..offset+m.
   Per row r it updates the running state kept across the blocks of one pass over the vocabulary:
   the top-k list (idx/val + r*k, n_top[r] entries, value descending), the maximum mx[r], the sums
   s[r] = sum e^(l - mx) and t[r] = sum e^(l - mx) * l, and above[r], how many logits exceed
   next_logit[r] (the token want[r] itself never counts; want[r] < 0: no next token). */
SV_API void sv_lens_block(const float *lg, int64_t n, int64_t m, int64_t offset, int32_t k, const int64_t *want,
                          const float *next_logit, int32_t *idx, float *val, int32_t *n_top, double *mx, double *s,
                          double *t, int64_t *above) {
    for (int64_t r = 0; r < n; r++) {
        const float *x = lg + r * m;
        float bmax = -INFINITY, nl = next_logit[r];
        int64_t hi = 0, j = 0;
#if defined(__GNUC__)
        j = sv_lens_scan8(x, m, nl, &bmax, &hi);
#endif
        for (; j < m; j++) {
            bmax = x[j] > bmax ? x[j] : bmax;
            hi += x[j] > nl;
        }
        int64_t own = want[r] - offset;
        if (want[r] >= 0 && own >= 0 && own < m && x[own] > nl) hi--; /* never above itself */
        above[r] += want[r] >= 0 ? hi : 0;
        n_top[r] = sv_topk_more(x, m, k, idx + r * k, val + r * k, n_top[r], offset);
        double m_new = bmax > mx[r] ? bmax : mx[r];
        if (m_new == -INFINITY) continue;
        float mf = (float)m_new;
        double bs = 0.0, bt = 0.0;
        j = 0;
#if defined(__GNUC__)
        j = sv_lens_exp8(x, m, mf, &bs, &bt);
#endif
        for (; j < m; j++) {
            float e = sv_exp_neg(x[j] - mf);
            bs += e;
            bt += (double)e * x[j];
        }
        double shift = mx[r] == -INFINITY ? 0.0 : exp(mx[r] - m_new);
        s[r] = s[r] * shift + bs;
        t[r] = t[r] * shift + bt;
        mx[r] = m_new;
    }
}

/* ----- the data phase ---------------------------------------------------------------- */

/* Attention probabilities ne = [n_kv, rows, heads, streams]: top-k, entropy, mass lost by cropping. */
static int sv_attention(sv_state *s, const struct sv_tensor *t, int32_t tid) {
    if (sv_ndim(t) < 3) return 0; /* the Python path's array shapes differ there: let it answer */
    int64_t kv = t->ne[0], rows = t->ne[1], heads = t->ne[2] * t->ne[3];
    int64_t n_real = s->step_pos + s->n_tokens < kv ? s->step_pos + s->n_tokens : kv;
    if (n_real <= 0 || kv > (1 << 30)) return 0;
    int k = s->top_k < n_real ? s->top_k : (int)n_real;
    sv_out *o = &s->out;
    int64_t nk = heads * rows * k, ne = heads * rows;
    if (!sv_reserve(&o->att_meta, (o->n_att + 1) * 7, 4) || !sv_reserve(&o->att_lost, o->n_att + 1, 4) ||
        !sv_reserve(&o->att_pos, o->n_att_k + nk, 4) || !sv_reserve(&o->att_p, o->n_att_k + nk, 4) ||
        !sv_reserve(&o->att_ent, o->n_att_e + ne, 4) || !sv_reserve(&s->tmp, kv > SV_CHUNK ? kv : SV_CHUNK, 4) ||
        !sv_reserve(&s->half, kv > SV_CHUNK ? kv : SV_CHUNK, 2)) {
        sv_fail(s, "out of memory for attention summaries");
        return 1;
    }
    int32_t *pos = (int32_t *)o->att_pos.p + o->n_att_k;
    float *p = (float *)o->att_p.p + o->n_att_k, *ent = (float *)o->att_ent.p + o->n_att_e;
    double lost = 0.0;
    const char *data = t->data;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < rows; i1++) {
                const char *base = data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
                const float *x = sv_row(base, kv, t->nb[0], t->type, s->tmp.p, s->half.p);
                sv_topk(x, n_real, k, pos, p);
                double e = 0.0, beyond = 0.0;
                for (int64_t i = 0; i < n_real; i++) {
                    double v = x[i];
                    if (v > 0.0) e -= v * log(v);
                }
                for (int64_t i = n_real; i < kv; i++) beyond += x[i];
                lost = beyond > lost ? beyond : lost;
                *ent++ = (float)e;
                pos += k;
                p += k;
            }
    int32_t *meta = (int32_t *)o->att_meta.p + o->n_att * 7;
    meta[0] = tid;
    meta[1] = (int32_t)heads;
    meta[2] = (int32_t)rows;
    meta[3] = k;
    meta[4] = (int32_t)n_real;
    meta[5] = (int32_t)o->n_att_k;
    meta[6] = (int32_t)o->n_att_e;
    ((float *)o->att_lost.p)[o->n_att] = (float)lost;
    o->n_att++;
    o->n_att_k += nk;
    o->n_att_e += ne;
    return 1;
}

/* The rows of a contiguous float32 node, copied for Python (activation vectors): the token rows along
   its highest dimension, as Python's _vector_rows takes them. 0: not here (Python reads them). */
static int sv_vectors(sv_state *s, const struct sv_tensor *t, int32_t tid) {
    if (t->type != 0 || t->nb[0] != 4) return 0;
    for (int i = 1; i < 4; i++)
        if (t->nb[i] != t->nb[i - 1] * (size_t)t->ne[i - 1]) return 0;
    int d = sv_ndim(t);
    int64_t rows = d == 1 ? 1 : t->ne[d - 1], width = (t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]) / rows;
    if (!(d == 1 || rows == s->n_tokens || (d == 2 && rows == 1))) return 1; /* no token rows: nothing to keep */
    sv_out *o = &s->out;
    if (!sv_reserve(&o->vec_meta, (o->n_vecs + 1) * 4, 8) || !sv_reserve(&o->vec_val, o->n_vec_vals + rows * width, 4) ||
        !sv_reserve(&o->vec_scale, o->n_vec_rows + rows, 4)) {
        sv_fail(s, "out of memory for vectors");
        return 1;
    }
    if (s->vec_f16) { /* each row scaled and converted as it is copied */
        sv_f16_rows(t->data, rows, width, (uint16_t *)o->vec_val.p + o->n_vec_vals, (float *)o->vec_scale.p + o->n_vec_rows);
        o->n_vec_rows += rows;
    } else {
        memcpy((float *)o->vec_val.p + o->n_vec_vals, t->data, (size_t)(rows * width) * sizeof(float));
    }
    int64_t *meta = (int64_t *)o->vec_meta.p + o->n_vecs * 4;
    meta[0] = tid;
    meta[1] = o->n_vec_vals;
    meta[2] = rows;
    meta[3] = width;
    o->n_vecs++;
    o->n_vec_vals += rows * width;
    return 1;
}

static int sv_stats(sv_state *s, const struct sv_tensor *t, int32_t tid, uint32_t flags) {
    sv_out *o = &s->out;
    int d = sv_ndim(t);
    int row_dim = -1;
    if (s->n_tokens > 1 && d >= 2) {
        int rd = (flags & SV_ROWAX1) ? 1 : d - 1;
        if (t->ne[rd] == s->n_tokens) row_dim = rd;
    }
    int64_t nr = row_dim >= 0 ? s->n_tokens : 0;
    if (!sv_reserve(&o->stat_tid, o->n_stats + 1, 4) || !sv_reserve(&o->stat_val, (o->n_stats + 1) * 8, 4) ||
        !sv_reserve(&o->rowset, (o->n_rowsets + 1) * 3, 4) || !sv_reserve(&o->row_val, (o->n_rows + nr) * 8, 4)) {
        sv_fail(s, "out of memory for statistics");
        return 1;
    }
    float *whole = (float *)o->stat_val.p + o->n_stats * 8, *rows = (float *)o->row_val.p + o->n_rows * 8;
    if (!sv_tensor_stats(s, t, row_dim, whole, rows)) {
        sv_fail(s, "out of memory for statistics");
        return 1;
    }
    ((int32_t *)o->stat_tid.p)[o->n_stats++] = tid;
    if (nr) {
        int32_t *rs = (int32_t *)o->rowset.p + o->n_rowsets++ * 3;
        rs[0] = tid;
        rs[1] = (int32_t)o->n_rows;
        rs[2] = (int32_t)nr;
        o->n_rows += nr;
    }
    if (flags & SV_LOGITS) { /* the top tokens of the last row */
        int64_t n = t->ne[0];
        if (!sv_reserve(&s->tmp, n > SV_CHUNK ? n : SV_CHUNK, 4) || !sv_reserve(&s->half, n > SV_CHUNK ? n : SV_CHUNK, 2)) {
            sv_fail(s, "out of memory for logits");
            return 1;
        }
        const char *base = (const char *)t->data + (t->ne[1] - 1) * t->nb[1] + (t->ne[2] - 1) * t->nb[2] +
                           (t->ne[3] - 1) * t->nb[3];
        const float *x = sv_row(base, n, t->nb[0], t->type, s->tmp.p, s->half.p);
        int k = s->logits_k < n ? s->logits_k : (int)n;
        o->logits_k = sv_topk(x, n, k, o->logit_ids, o->logit_vals);
    }
    return 1;
}

static void sv_data(sv_state *s, struct sv_tensor *t) {
    if (!s->active) return;
    s->out.calls++;
    if (t != s->last_ptr) return;
    s->last_ptr = NULL;
    uint32_t f = s->last_flags;
    int done = 0;
    if (!(f & SV_PYDATA) && sv_readable(t)) done = (f & SV_ATTN) ? sv_attention(s, t, s->last_tid) : sv_stats(s, t, s->last_tid, f);
    if (!done) s->on_data(t, s->last_tid);
    else if ((f & SV_VEC) && !sv_vectors(s, t, s->last_tid)) s->on_data(t, s->last_tid | SV_DONE_BIT);
}

/* ----- the ask phase: layouts ----------------------------------------------------------- */

static sv_layout *sv_cur(sv_state *s) { return &s->lay[s->cur]; }

static int sv_push(sv_layout *L, const char *name, sv_entry e) {
    if (L->n == L->cap) {
        int32_t cap = L->cap ? L->cap * 2 : 1024;
        void *names = realloc(L->names, (size_t)cap * SV_NAME), *ents;
        if (!names) return 0;
        L->names = names;
        ents = realloc(L->e, (size_t)cap * sizeof(sv_entry));
        if (!ents) return 0;
        L->e = ents;
        L->cap = cap;
    }
    memset(L->names[L->n], 0, SV_NAME);
    strncpy(L->names[L->n], name, SV_NAME - 1);
    L->e[L->n++] = e;
    return 1;
}

static int sv_same_prefix(const sv_layout *a, const sv_layout *b, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (strncmp(a->names[i], b->names[i], SV_NAME) != 0) return 0;
    return 1;
}

/* The node at pos does not follow the current layout: switch to a layout that has this graph's
   prefix and name, or record (extend the current layout, or a copy of its prefix). */
static void sv_resync(sv_state *s, const char *name, int32_t pos) {
    sv_layout *L = sv_cur(s);
    for (int i = 0; i < SV_LAYOUTS; i++) {
        sv_layout *M = &s->lay[i];
        if (i == s->cur || M->n <= pos || strncmp(M->names[pos], name, SV_NAME) != 0) continue;
        if (!sv_same_prefix(M, L, pos)) continue;
        s->cur = i;
        M->used = ++s->clock;
        return;
    }
    s->sync = 0;
    s->recording = 1;
    if (L->n == pos) return; /* extend in place: every prefix stays valid */
    int victim = -1;
    for (int i = 0; i < SV_LAYOUTS; i++)
        if (i != s->cur && (victim < 0 || s->lay[i].used < s->lay[victim].used)) victim = i;
    sv_layout *N = &s->lay[victim];
    N->n = 0;
    N->used = ++s->clock;
    for (int32_t i = 0; i < pos; i++)
        if (!sv_push(N, L->names[i], L->e[i])) {
            N->n = 0;
            s->recording = 0;
            break;
        }
    s->cur = victim;
}

static void sv_begin_graph(sv_state *s, void *t) {
    s->in_graph = 1;
    s->started = 0;
    s->pos = 0;
    s->last_ptr = NULL;
    s->sync = 1;
    s->recording = 0;
    int best = 0;
    for (int i = 1; i < SV_LAYOUTS; i++)
        if (s->lay[i].used > s->lay[best].used) best = i;
    s->cur = best;
    s->active = s->on_graph(t) ? 1 : 0;
}

static bool sv_ask(sv_state *s, struct sv_tensor *t) {
    /* Granite's graph begins with an unnamed GET_ROWS, then "embd": a start name begins a new graph
       only once this graph has had its own. */
    int start = sv_is_start(t->name);
    if (!s->in_graph || (start && s->started)) sv_begin_graph(s, t);
    if (start) s->started = 1;
    int32_t pos = s->pos++;
    if (!s->active) return false;
    s->out.calls++;
    if (!sv_reserve(&s->ptrs, pos + 1, sizeof(void *))) {
        sv_fail(s, "out of memory for the graph");
        s->active = 0;
        return false;
    }
    ((void **)s->ptrs.p)[pos] = t;
    sv_entry e;
    if (s->sync) {
        sv_layout *L = sv_cur(s);
        if (pos >= L->n || strncmp(L->names[pos], t->name, SV_NAME) != 0) sv_resync(s, t->name, pos);
    }
    if (s->sync) {
        e = sv_cur(s)->e[pos];
    } else {
        int64_t r = s->on_node(t, pos);
        if (r < 0) {
            s->recording = 0; /* this graph's layout stops here; Python keeps its own place */
            return false;
        }
        e.tid = (int32_t)(r & 0x7fffffff);
        e.flags = (uint32_t)(r >> 32);
        if (s->recording && !sv_push(sv_cur(s), t->name, e)) s->recording = 0;
    }
    if (e.tid >= s->n_counts) {
        if (!sv_reserve(&s->counts, e.tid + 1, sizeof(int64_t))) {
            sv_fail(s, "out of memory for counts");
            return false;
        }
        memset((int64_t *)s->counts.p + s->n_counts, 0, (size_t)(e.tid + 1 - s->n_counts) * sizeof(int64_t));
        s->n_counts = e.tid + 1;
    }
    ((int64_t *)s->counts.p)[e.tid]++;
    if (!(e.flags & SV_WANT)) return false;
    s->last_ptr = t;
    s->last_tid = e.tid;
    s->last_flags = e.flags;
    return true;
}

static bool sv_eval(sv_state *s, void *t, bool ask) {
    if (!s) return !ask;
    if (!ask) {
        sv_data(s, t);
        return true;
    }
    return sv_ask(s, t);
}

/* One trampoline per slot: cb_eval needs no user data (a patched llama-cpp-python passes none). */
#define SV_T(i, j) \
    static bool sv_slot_##i##_##j(void *t, bool ask, void *ud) { (void)ud; return sv_eval(g_slots[(i) * 8 + (j)], t, ask); }
#define SV_T8(i) SV_T(i, 0) SV_T(i, 1) SV_T(i, 2) SV_T(i, 3) SV_T(i, 4) SV_T(i, 5) SV_T(i, 6) SV_T(i, 7)
SV_T8(0) SV_T8(1) SV_T8(2) SV_T8(3) SV_T8(4) SV_T8(5) SV_T8(6) SV_T8(7)
#define SV_R8(i) sv_slot_##i##_0, sv_slot_##i##_1, sv_slot_##i##_2, sv_slot_##i##_3, \
                 sv_slot_##i##_4, sv_slot_##i##_5, sv_slot_##i##_6, sv_slot_##i##_7
typedef bool (*sv_eval_fn)(void *, bool, void *);
static const sv_eval_fn g_trampolines[SV_SLOTS] = {SV_R8(0), SV_R8(1), SV_R8(2), SV_R8(3),
                                                   SV_R8(4), SV_R8(5), SV_R8(6), SV_R8(7)};

/* ----- the API (mirrored in _native.py) ------------------------------------------------------- */

SV_API void sv_init(sv_is_host_fn is_host, sv_f16_fn f16) {
    g_is_host = is_host;
    g_f16 = g_f16_ggml = f16;
#ifdef SV_HAVE_F16C
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c")) {
        g_f16 = sv_f16_f16c;
        g_h16 = sv_h16_f16c;
    }
#endif
}

/* Which F16 converter runs: 1 this file's F16C one, 0 ggml's. */
SV_API int32_t sv_fast_f16(void) { return g_f16 != g_f16_ggml; }

SV_API void sv_tensor_layout(int64_t *out) {
    out[0] = (int64_t)sizeof(struct sv_tensor);
    out[1] = (int64_t)offsetof(struct sv_tensor, type);
    out[2] = (int64_t)offsetof(struct sv_tensor, buffer);
    out[3] = (int64_t)offsetof(struct sv_tensor, ne);
    out[4] = (int64_t)offsetof(struct sv_tensor, nb);
    out[5] = (int64_t)offsetof(struct sv_tensor, data);
    out[6] = (int64_t)offsetof(struct sv_tensor, name);
}

SV_API int64_t sv_sizeof_out(void) { return (int64_t)sizeof(sv_out); }

SV_API sv_state *sv_new(sv_graph_fn on_graph, sv_node_fn on_node, sv_data_fn on_data, int32_t logits_k) {
    int slot = -1;
    for (int i = 0; i < SV_SLOTS && slot < 0; i++)
        if (!g_slots[i]) slot = i;
    if (slot < 0) return NULL;
    sv_state *s = calloc(1, sizeof(sv_state));
    if (!s) return NULL;
    s->on_graph = on_graph;
    s->on_node = on_node;
    s->on_data = on_data;
    s->slot = slot;
    s->logits_k = logits_k < SV_MAX_LOGITS ? logits_k : SV_MAX_LOGITS;
    s->top_k = 8;
    s->out.logits_k = -1;
    g_slots[slot] = s;
    return s;
}

SV_API void *sv_callback(sv_state *s) { return (void *)g_trampolines[s->slot]; }

SV_API void sv_free(sv_state *s) {
    if (!s) return;
    g_slots[s->slot] = NULL;
    for (int i = 0; i < SV_LAYOUTS; i++) {
        free(s->lay[i].names);
        free(s->lay[i].e);
    }
    sv_buf *bufs[] = {&s->ptrs, &s->counts, &s->tmp, &s->half, &s->acc, &s->out.stat_tid,
                      &s->out.stat_val, &s->out.rowset, &s->out.row_val, &s->out.att_meta, &s->out.att_lost,
                      &s->out.att_pos, &s->out.att_p, &s->out.att_ent, &s->out.vec_meta, &s->out.vec_val,
                      &s->out.vec_scale};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) free(bufs[i]->p);
    free(s);
}

/* The next node starts a graph (called before each llama_decode and at trial boundaries). */
SV_API void sv_boundary(sv_state *s) {
    s->in_graph = 0;
    s->last_ptr = NULL;
}

SV_API void sv_set_step(sv_state *s, int32_t pos, int32_t n_tokens, int32_t top_k) {
    s->step_pos = pos;
    s->n_tokens = n_tokens;
    s->top_k = top_k > 0 ? top_k : 1;
}

SV_API sv_out *sv_output(sv_state *s) { return &s->out; }

/* Vectors from now on as float16 rows with their scales (1), or float32 (0). */
SV_API void sv_set_vec_f16(sv_state *s, int32_t on) { s->vec_f16 = on != 0; }

SV_API void sv_clear_output(sv_state *s) {
    sv_out *o = &s->out;
    o->calls = o->n_errors = o->n_stats = o->n_rowsets = o->n_rows = o->n_att = o->n_att_k = o->n_att_e = 0;
    o->n_vecs = o->n_vec_vals = o->n_vec_rows = 0;
    o->error[0] = '\0';
    o->logits_k = -1;
}

SV_API const int64_t *sv_counts(sv_state *s, int64_t *n) {
    *n = s->n_counts;
    return s->counts.p;
}

SV_API void sv_reset_counts(sv_state *s) {
    if (s->n_counts) memset(s->counts.p, 0, (size_t)s->n_counts * sizeof(int64_t));
}

/* Pointers and tensor ids of this graph's nodes at positions [from, to) (for Python's replay). */
SV_API int32_t sv_prefix(sv_state *s, int32_t from, int32_t to, void **ptrs, int32_t *tids) {
    sv_layout *L = sv_cur(s);
    int32_t n = 0;
    for (int32_t i = from; i < to && i < L->n && i < s->pos; i++, n++) {
        ptrs[n] = ((void **)s->ptrs.p)[i];
        tids[n] = L->e[i].tid;
    }
    return n;
}

/* Statistics of one tensor exactly as the data phase computes them (tests, and the benchmark). */
SV_API int32_t sv_stats_tensor(const void *tensor, int32_t n_tokens, uint32_t flags, float *whole, float *rows) {
    const struct sv_tensor *t = tensor;
    if (!sv_readable(t)) return -1;
    sv_state s;
    memset(&s, 0, sizeof(s));
    int d = sv_ndim(t), row_dim = -1;
    if (n_tokens > 1 && d >= 2) {
        int rd = (flags & SV_ROWAX1) ? 1 : d - 1;
        if (t->ne[rd] == n_tokens) row_dim = rd;
    }
    int ok = sv_tensor_stats(&s, t, row_dim, whole, rows);
    free(s.tmp.p);
    free(s.half.p);
    free(s.acc.p);
    return ok ? (row_dim >= 0 ? n_tokens : 0) : -2;
}

/* Top-k of n floats (value descending, ties by lower index); returns how many were written. */
SV_API int32_t sv_topk_f32(const float *x, int64_t n, int32_t k, int32_t *idx, float *val) {
    return sv_topk(x, n, k, idx, val);
}

/* The original tool's callback, for the benchmark: ask for every node, read nothing. */
SV_API bool sv_ask_all(void *t, bool ask, void *ud) {
    (void)t;
    (void)ask;
    (void)ud;
    return true;
}
