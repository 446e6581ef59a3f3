/*
 * SHA-256 with the x86 SHA extensions, two independent messages at a time.
 *
 * Why this exists (docs/decisions/0012-two-lane-sha256.md): one SHA-256 stream is a chain of
 * SHA256RNDS2 instructions, each waiting for the one before, so a core runs it at the
 * instruction's *latency* (OpenSSL, hashlib: ~1.8 GB/s here). The unit can accept a new
 * instruction before the last one finished, so two messages whose rounds are interleaved run at
 * nearly twice that rate on the same core. A model is many files or shards, i.e. many messages:
 * the engine hands this module two of them at once.
 *
 * The digest is plain SHA-256 (FIPS 180-4), byte for byte hashlib's: the tests compare it with
 * hashlib on every length from 0 to 300 bytes, random splits and pairs of unequal lengths, and
 * the Python side runs a known-answer self-test before it uses the module at all. Anything this
 * module does not handle (no SHA extensions, another architecture, a failed self-test) falls back
 * to hashlib, never to a different digest.
 *
 * Only the compression of whole 64-byte blocks is vectorised; padding, buffering and the length
 * are the textbook algorithm. Nothing here is secret-dependent (model files are public data), so
 * constant time is not a goal.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MS_HAVE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Below this many bytes an update keeps the GIL (releasing it costs more than hashing). */
#define GIL_MINSIZE 2048

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

typedef struct {
    PyObject_HEAD
    uint32_t state[8];
    uint8_t buf[64];
    size_t buflen;   /* bytes waiting in buf: 0..63 */
    uint64_t length; /* bytes absorbed so far */
    int busy;        /* an update runs without the GIL: refuse concurrent use */
} Sha256Object;

static int cpu_ok = 0;

#ifdef MS_HAVE_X86
#define MS_TARGET __attribute__((target("sha,sse4.1,ssse3")))

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define KV(i) _mm_loadu_si128((const __m128i *)&K[4 * (i)])

/* Message words 16i..16i+3 of lane L, byte-swapped to the big-endian words SHA-256 reads. */
#define LOAD(L, d, i) \
    L##m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((d) + 16 * (i))), MASK)

/* Rounds 4i..4i+3 of lane L (state L##s0 = ABEF, L##s1 = CDGH), and the message schedule:
 * SHA256MSG1/MSG2 compute W[4(i+1)..] from the four words groups kept in L##m[0..3]. */
#define RND(L, i)                                                                          \
    do {                                                                                   \
        __m128i t_ = _mm_add_epi32(L##m[(i) & 3], KV(i));                                   \
        L##s1 = _mm_sha256rnds2_epu32(L##s1, L##s0, t_);                                    \
        if ((i) >= 3 && (i) <= 14) {                                                       \
            __m128i a_ = _mm_alignr_epi8(L##m[(i) & 3], L##m[((i) - 1) & 3], 4);           \
            L##m[((i) + 1) & 3] =                                                          \
                _mm_sha256msg2_epu32(_mm_add_epi32(L##m[((i) + 1) & 3], a_), L##m[(i) & 3]); \
        }                                                                                  \
        t_ = _mm_shuffle_epi32(t_, 0x0E);                                                   \
        L##s0 = _mm_sha256rnds2_epu32(L##s0, L##s1, t_);                                    \
        if ((i) >= 1 && (i) <= 12)                                                         \
            L##m[((i) - 1) & 3] = _mm_sha256msg1_epu32(L##m[((i) - 1) & 3], L##m[(i) & 3]); \
    } while (0)

MS_TARGET static inline void to_lanes(const uint32_t st[8], __m128i *s0, __m128i *s1)
{
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[0]), 0xB1); /* CDAB */
    __m128i u = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[4]), 0x1B); /* EFGH */
    *s0 = _mm_alignr_epi8(t, u, 8);    /* ABEF */
    *s1 = _mm_blend_epi16(u, t, 0xF0); /* CDGH */
}

MS_TARGET static inline void from_lanes(__m128i s0, __m128i s1, uint32_t st[8])
{
    __m128i t = _mm_shuffle_epi32(s0, 0x1B); /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);        /* DCHG */
    _mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(t, s1, 0xF0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(s1, t, 8));    /* HGFE */
}

/* Compress n whole blocks of one message. */
MS_TARGET static void compress1(uint32_t st[8], const uint8_t *d, size_t n)
{
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i as0, as1, am[4];
    to_lanes(st, &as0, &as1);
    for (; n; n--, d += 64) {
        __m128i sa0 = as0, sa1 = as1;
        LOAD(a, d, 0); LOAD(a, d, 1); LOAD(a, d, 2); LOAD(a, d, 3);
        RND(a, 0); RND(a, 1); RND(a, 2); RND(a, 3); RND(a, 4); RND(a, 5); RND(a, 6);
        RND(a, 7); RND(a, 8); RND(a, 9); RND(a, 10); RND(a, 11); RND(a, 12); RND(a, 13);
        RND(a, 14); RND(a, 15);
        as0 = _mm_add_epi32(as0, sa0);
        as1 = _mm_add_epi32(as1, sa1);
    }
    from_lanes(as0, as1, st);
}

/* Compress n whole blocks of each of two messages, their rounds interleaved. */
MS_TARGET static void compress2(uint32_t sta[8], const uint8_t *da, uint32_t stb[8],
                                const uint8_t *db, size_t n)
{
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i as0, as1, am[4], bs0, bs1, bm[4];
    to_lanes(sta, &as0, &as1);
    to_lanes(stb, &bs0, &bs1);
    for (; n; n--, da += 64, db += 64) {
        __m128i sa0 = as0, sa1 = as1, sb0 = bs0, sb1 = bs1;
        LOAD(a, da, 0); LOAD(a, da, 1); LOAD(a, da, 2); LOAD(a, da, 3);
        LOAD(b, db, 0); LOAD(b, db, 1); LOAD(b, db, 2); LOAD(b, db, 3);
#define R2(i) RND(a, i); RND(b, i)
        R2(0); R2(1); R2(2); R2(3); R2(4); R2(5); R2(6); R2(7);
        R2(8); R2(9); R2(10); R2(11); R2(12); R2(13); R2(14); R2(15);
#undef R2
        as0 = _mm_add_epi32(as0, sa0);
        as1 = _mm_add_epi32(as1, sa1);
        bs0 = _mm_add_epi32(bs0, sb0);
        bs1 = _mm_add_epi32(bs1, sb1);
    }
    from_lanes(as0, as1, sta);
    from_lanes(bs0, bs1, stb);
}

static int detect_cpu(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & bit_SSSE3) || !(c & bit_SSE4_1))
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 29)) != 0; /* CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29] */
}
#else
/* Never called: cpu_ok stays 0 and every entry point refuses before reaching them. */
static void compress1(uint32_t st[8], const uint8_t *d, size_t n)
{
    (void)st; (void)d; (void)n;
}
static void compress2(uint32_t sta[8], const uint8_t *da, uint32_t stb[8], const uint8_t *db,
                      size_t n)
{
    (void)sta; (void)da; (void)stb; (void)db; (void)n;
}
static int detect_cpu(void) { return 0; }
#endif

/* ------------------------------------------------------------------ buffering (no GIL) */

/* Complete a partly filled block from *p; afterwards either buflen == 0 or *n == 0. */
static void absorb_head(Sha256Object *h, const uint8_t **p, size_t *n)
{
    h->length += *n;
    if (h->buflen == 0 || *n == 0)
        return;
    size_t take = 64 - h->buflen;
    if (take > *n)
        take = *n;
    memcpy(h->buf + h->buflen, *p, take);
    h->buflen += take;
    *p += take;
    *n -= take;
    if (h->buflen == 64) {
        compress1(h->state, h->buf, 1);
        h->buflen = 0;
    }
}

/* Whole blocks of p, then keep the rest (< 64 bytes; buflen is 0 whenever n > 0 here). */
static void absorb_tail(Sha256Object *h, const uint8_t *p, size_t n)
{
    if (n >= 64) {
        compress1(h->state, p, n / 64);
        p += n - n % 64;
        n %= 64;
    }
    if (n) {
        memcpy(h->buf, p, n);
        h->buflen = n;
    }
}

static void absorb_one(Sha256Object *h, const uint8_t *p, size_t n)
{
    absorb_head(h, &p, &n);
    absorb_tail(h, p, n);
}

static void absorb_two(Sha256Object *a, const uint8_t *pa, size_t na, Sha256Object *b,
                       const uint8_t *pb, size_t nb)
{
    absorb_head(a, &pa, &na);
    absorb_head(b, &pb, &nb);
    size_t common = (na < nb ? na : nb) / 64;
    if (common) {
        compress2(a->state, pa, b->state, pb, common);
        pa += common * 64;
        na -= common * 64;
        pb += common * 64;
        nb -= common * 64;
    }
    absorb_tail(a, pa, na);
    absorb_tail(b, pb, nb);
}

static void finish(const Sha256Object *h, uint8_t out[32])
{
    uint32_t st[8];
    uint8_t blk[128];
    memcpy(st, h->state, sizeof st);
    memcpy(blk, h->buf, h->buflen);
    blk[h->buflen] = 0x80;
    size_t total = h->buflen + 1 + 8 <= 64 ? 64 : 128;
    memset(blk + h->buflen + 1, 0, total - h->buflen - 1);
    uint64_t bits = h->length * 8;
    for (int i = 0; i < 8; i++)
        blk[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress1(st, blk, total / 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(st[i] >> 24);
        out[4 * i + 1] = (uint8_t)(st[i] >> 16);
        out[4 * i + 2] = (uint8_t)(st[i] >> 8);
        out[4 * i + 3] = (uint8_t)st[i];
    }
}

/* ------------------------------------------------------------------ the Python type */
static PyTypeObject Sha256Type;

static int claim(Sha256Object *h)
{
    if (h->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this Sha256 object is being updated by another thread");
        return -1;
    }
    h->busy = 1;
    return 0;
}

static PyObject *Sha256_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (!cpu_ok) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no SHA extensions; use hashlib");
        return NULL;
    }
    if ((kwds != NULL && PyDict_GET_SIZE(kwds) != 0) || PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "Sha256() takes no arguments");
        return NULL;
    }
    Sha256Object *h = (Sha256Object *)type->tp_alloc(type, 0);
    if (h == NULL)
        return NULL;
    memcpy(h->state, H0, sizeof H0);
    h->buflen = 0;
    h->length = 0;
    h->busy = 0;
    return (PyObject *)h;
}

static PyObject *Sha256_update(Sha256Object *self, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (claim(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (view.len >= GIL_MINSIZE) {
        Py_BEGIN_ALLOW_THREADS
        absorb_one(self, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    } else {
        absorb_one(self, view.buf, (size_t)view.len);
    }
    self->busy = 0;
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *Sha256_digest(Sha256Object *self, PyObject *Py_UNUSED(ignored))
{
    uint8_t out[32];
    if (claim(self) < 0)
        return NULL;
    finish(self, out);
    self->busy = 0;
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *Sha256_hexdigest(Sha256Object *self, PyObject *Py_UNUSED(ignored))
{
    static const char hex[] = "0123456789abcdef";
    uint8_t out[32];
    char s[64];
    if (claim(self) < 0)
        return NULL;
    finish(self, out);
    self->busy = 0;
    for (int i = 0; i < 32; i++) {
        s[2 * i] = hex[out[i] >> 4];
        s[2 * i + 1] = hex[out[i] & 15];
    }
    return PyUnicode_FromStringAndSize(s, 64);
}

static PyObject *Sha256_copy(Sha256Object *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) { /* another thread is updating it without the GIL: no torn copies */
        PyErr_SetString(PyExc_RuntimeError,
                        "this Sha256 object is being updated by another thread");
        return NULL;
    }
    Sha256Object *c = (Sha256Object *)Sha256Type.tp_alloc(&Sha256Type, 0);
    if (c == NULL)
        return NULL;
    memcpy(c->state, self->state, sizeof c->state);
    memcpy(c->buf, self->buf, sizeof c->buf);
    c->buflen = self->buflen;
    c->length = self->length;
    c->busy = 0;
    return (PyObject *)c;
}

static PyObject *Sha256_get_name(PyObject *self, void *closure)
{
    (void)self; (void)closure;
    return PyUnicode_FromString("sha256");
}

static PyObject *Sha256_get_digest_size(PyObject *self, void *closure)
{
    (void)self; (void)closure;
    return PyLong_FromLong(32);
}

static PyObject *Sha256_get_block_size(PyObject *self, void *closure)
{
    (void)self; (void)closure;
    return PyLong_FromLong(64);
}

static PyMethodDef Sha256_methods[] = {
    {"update", (PyCFunction)Sha256_update, METH_O, "Absorb a bytes-like object."},
    {"digest", (PyCFunction)Sha256_digest, METH_NOARGS, "The 32-byte digest so far."},
    {"hexdigest", (PyCFunction)Sha256_hexdigest, METH_NOARGS, "The digest as 64 hex digits."},
    {"copy", (PyCFunction)Sha256_copy, METH_NOARGS, "An independent copy of the state."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Sha256_getset[] = {
    {"name", Sha256_get_name, NULL, NULL, NULL},
    {"digest_size", Sha256_get_digest_size, NULL, NULL, NULL},
    {"block_size", Sha256_get_block_size, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Sha256Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "modelsign.hashing._sha256mb.Sha256",
    .tp_basicsize = sizeof(Sha256Object),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SHA-256 (FIPS 180-4) on the x86 SHA extensions; hashlib.sha256's digest.",
    .tp_new = Sha256_new,
    .tp_methods = Sha256_methods,
    .tp_getset = Sha256_getset,
};

/* update2(a, data_a, b, data_b): a.update(data_a) and b.update(data_b), interleaved. */
static PyObject *update2(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "update2(a, data_a, b, data_b) takes 4 arguments");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &Sha256Type) || !PyObject_TypeCheck(args[2], &Sha256Type)) {
        PyErr_SetString(PyExc_TypeError, "update2: a and b must be Sha256 objects");
        return NULL;
    }
    Sha256Object *a = (Sha256Object *)args[0], *b = (Sha256Object *)args[2];
    if (a == b) {
        PyErr_SetString(PyExc_ValueError, "update2: a and b must be two different objects");
        return NULL;
    }
    Py_buffer va, vb;
    if (PyObject_GetBuffer(args[1], &va, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[3], &vb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&va);
        return NULL;
    }
    if (claim(a) < 0)
        goto fail;
    if (claim(b) < 0) {
        a->busy = 0;
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    absorb_two(a, va.buf, (size_t)va.len, b, vb.buf, (size_t)vb.len);
    Py_END_ALLOW_THREADS
    a->busy = 0;
    b->busy = 0;
    PyBuffer_Release(&va);
    PyBuffer_Release(&vb);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&va);
    PyBuffer_Release(&vb);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"update2", (PyCFunction)(void (*)(void))update2, METH_FASTCALL,
     "update2(a, data_a, b, data_b): update two Sha256 objects, their blocks interleaved."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_sha256mb",
    "Two-lane SHA-256 on the x86 SHA extensions (see docs/decisions/0012).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sha256mb(void)
{
    cpu_ok = detect_cpu();
    if (PyType_Ready(&Sha256Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    Py_INCREF(&Sha256Type);
    if (PyModule_AddObject(m, "Sha256", (PyObject *)&Sha256Type) < 0) {
        Py_DECREF(&Sha256Type);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "available", cpu_ok ? Py_True : Py_False) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
