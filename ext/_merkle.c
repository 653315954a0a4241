/* merkle._merkle: native twins of merkle's pure-Python hot paths.
 *
 * Every function here has a pure twin (named in its docstring); the test
 * suite runs both on the same inputs and vectors and requires identical
 * bytes.  Algorithms are passed as the sidecar's codes: 1 blake3, 2 sha256.
 * Hashing shapes (docs/format.md): leaf = H(0x00 || data), node = H(0x01 ||
 * left || right), the RFC 6962 tree shape, the empty tree H("").  Work on
 * large inputs runs with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <openssl/opensslv.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#include "blake3_portable.h"

#define DIGEST 32
#define ALG_BLAKE3 1
#define ALG_SHA256 2
#define NOGIL_LEAVES 4096 /* release the GIL above this many leaves */

/* H(prefix || a || b), prefix < 0 meaning none. */
static void hash2(int alg, int prefix, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                  uint8_t out[DIGEST]) {
    if (alg == ALG_BLAKE3) {
        if (blen == 0) {
            mb3_hash(prefix, a, alen, out);
        } else { /* only nodes have two parts: 64 bytes, copy them together */
            uint8_t buf[2 * DIGEST];
            memcpy(buf, a, alen);
            memcpy(buf + alen, b, blen);
            mb3_hash(prefix, buf, alen + blen, out);
        }
        return;
    }
    SHA256_CTX c;
    SHA256_Init(&c);
    if (prefix >= 0) {
        uint8_t p = (uint8_t)prefix;
        SHA256_Update(&c, &p, 1);
    }
    SHA256_Update(&c, a, alen);
    if (blen) SHA256_Update(&c, b, blen);
    SHA256_Final(out, &c);
}

static inline void node(int alg, const uint8_t *l, const uint8_t *r, uint8_t out[DIGEST]) {
    hash2(alg, 1, l, DIGEST, r, DIGEST, out);
}

/* An O(log n) stack of perfect subtrees, merged right to left at the end:
 * exactly the RFC 6962 shape (the left subtree holds the largest power of
 * two of leaves smaller than n).  Twin: merkle.tree.RootBuilder. */
typedef struct {
    uint8_t hash[64][DIGEST];
    int depth;
    uint64_t count;
} root_builder;

static void rb_add(root_builder *rb, int alg, const uint8_t leaf[DIGEST]) {
    uint8_t cur[DIGEST];
    memcpy(cur, leaf, DIGEST);
    uint64_t n = ++rb->count;
    while ((n & 1) == 0) {
        rb->depth--;
        node(alg, rb->hash[rb->depth], cur, cur);
        n >>= 1;
    }
    memcpy(rb->hash[rb->depth++], cur, DIGEST);
}

static void rb_root(root_builder *rb, int alg, uint8_t out[DIGEST]) {
    if (rb->count == 0) {
        hash2(alg, -1, (const uint8_t *)"", 0, NULL, 0, out);
        return;
    }
    uint8_t cur[DIGEST];
    int d = rb->depth - 1;
    memcpy(cur, rb->hash[d], DIGEST);
    while (d-- > 0) node(alg, rb->hash[d], cur, cur);
    memcpy(out, cur, DIGEST);
}

static int parse_alg(int alg) {
    if (alg != ALG_BLAKE3 && alg != ALG_SHA256) {
        PyErr_Format(PyExc_ValueError, "unknown algorithm code %d (1 blake3, 2 sha256)", alg);
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(hash_doc, "hash(alg, data, prefix=-1) -> bytes: H(prefix byte || data); twin: hashlib / blake3.");

static PyObject *py_hash(PyObject *self, PyObject *args) {
    int alg, prefix = -1;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*|i", &alg, &data, &prefix)) return NULL;
    if (!parse_alg(alg) || prefix < -1 || prefix > 255) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "prefix must be -1 (none) or a byte");
        PyBuffer_Release(&data);
        return NULL;
    }
    uint8_t out[DIGEST];
    Py_BEGIN_ALLOW_THREADS
    hash2(alg, prefix, data.buf, (size_t)data.len, NULL, 0, out);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, DIGEST);
}

PyDoc_STRVAR(root_doc,
             "root_of_leaves(alg, leaves) -> bytes: the RFC 6962 root over concatenated 32-byte leaf hashes; "
             "twin: merkle.tree.root_of_bytes.");

static PyObject *py_root_of_leaves(PyObject *self, PyObject *args) {
    int alg;
    Py_buffer leaves;
    if (!PyArg_ParseTuple(args, "iy*", &alg, &leaves)) return NULL;
    if (!parse_alg(alg)) {
        PyBuffer_Release(&leaves);
        return NULL;
    }
    if (leaves.len % DIGEST) {
        PyErr_Format(PyExc_ValueError, "leaf hashes: %zd bytes is not a multiple of %d", leaves.len, DIGEST);
        PyBuffer_Release(&leaves);
        return NULL;
    }
    root_builder rb = {.depth = 0, .count = 0};
    uint8_t out[DIGEST];
    Py_ssize_t n = leaves.len / DIGEST;
    const uint8_t *p = leaves.buf;
    if (n > NOGIL_LEAVES) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) rb_add(&rb, alg, p + i * DIGEST);
        rb_root(&rb, alg, out);
        Py_END_ALLOW_THREADS
    } else {
        for (Py_ssize_t i = 0; i < n; i++) rb_add(&rb, alg, p + i * DIGEST);
        rb_root(&rb, alg, out);
    }
    PyBuffer_Release(&leaves);
    return PyBytes_FromStringAndSize((const char *)out, DIGEST);
}

PyDoc_STRVAR(dataset_doc,
             "dataset_root(alg, chunk_size, files) -> bytes: the dataset root over file entries (objects with "
             "str path, int size and 32-byte root), in the given order; twin: merkle.manifest.dataset_root.");

static PyObject *py_dataset_root(PyObject *self, PyObject *args) {
    int alg;
    unsigned long long chunk_size;
    PyObject *files;
    if (!PyArg_ParseTuple(args, "iKO", &alg, &chunk_size, &files)) return NULL;
    if (!parse_alg(alg)) return NULL;
    PyObject *seq = PySequence_Fast(files, "files must be a sequence");
    if (seq == NULL) return NULL;
    static PyObject *s_path, *s_size, *s_root;
    if (!s_path && !(s_path = PyUnicode_InternFromString("path"))) goto fail_seq;
    if (!s_size && !(s_size = PyUnicode_InternFromString("size"))) goto fail_seq;
    if (!s_root && !(s_root = PyUnicode_InternFromString("root"))) goto fail_seq;
    root_builder rb = {.depth = 0, .count = 0};
    uint8_t *buf = NULL;
    size_t cap = 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *path = PyObject_GetAttr(f, s_path), *size = NULL, *root = NULL;
        if (!path) goto fail;
        size = PyObject_GetAttr(f, s_size);
        root = size ? PyObject_GetAttr(f, s_root) : NULL;
        Py_ssize_t plen;
        const char *pb = root && PyUnicode_Check(path) ? PyUnicode_AsUTF8AndSize(path, &plen) : NULL;
        unsigned long long sz = pb && PyLong_Check(size) ? PyLong_AsUnsignedLongLong(size) : 0;
        int ok = pb && PyLong_Check(size) && !PyErr_Occurred() && PyBytes_Check(root) &&
                 PyBytes_GET_SIZE(root) == DIGEST && plen <= 0xFFFFFFFF;
        if (ok) {
            /* leaf data: u32 len(path) | path | u64 size | u64 chunk_size | root (docs/format.md D1) */
            size_t need = 4 + (size_t)plen + 8 + 8 + DIGEST;
            if (need > cap) {
                uint8_t *grown = PyMem_Realloc(buf, need * 2);
                if (!grown) {
                    PyErr_NoMemory();
                    ok = 0;
                } else {
                    buf = grown;
                    cap = need * 2;
                }
            }
            if (ok) {
                uint8_t *q = buf;
                for (int k = 3; k >= 0; k--) *q++ = (uint8_t)((uint64_t)plen >> (8 * k));
                memcpy(q, pb, (size_t)plen);
                q += plen;
                for (int k = 7; k >= 0; k--) *q++ = (uint8_t)(sz >> (8 * k));
                for (int k = 7; k >= 0; k--) *q++ = (uint8_t)(chunk_size >> (8 * k));
                memcpy(q, PyBytes_AS_STRING(root), DIGEST);
                uint8_t leaf[DIGEST];
                hash2(alg, 0, buf, need, NULL, 0, leaf);
                rb_add(&rb, alg, leaf);
            }
        } else if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "files[%zd]: expected str path, int size and a 32-byte root", i);
        }
        Py_XDECREF(path);
        Py_XDECREF(size);
        Py_XDECREF(root);
        if (!ok) goto fail;
    }
    PyMem_Free(buf);
    Py_DECREF(seq);
    uint8_t out[DIGEST];
    rb_root(&rb, alg, out);
    return PyBytes_FromStringAndSize((const char *)out, DIGEST);
fail:
    PyMem_Free(buf);
fail_seq:
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef methods[] = {
    {"hash", py_hash, METH_VARARGS, hash_doc},
    {"root_of_leaves", py_root_of_leaves, METH_VARARGS, root_doc},
    {"dataset_root", py_dataset_root, METH_VARARGS, dataset_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "merkle._merkle",
                                    "Native twins of merkle's hot paths (see ext/_merkle.c).", -1, methods};

PyMODINIT_FUNC PyInit__merkle(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    const char *b3 = mb3_use_avx2() ? "C from the BLAKE3 specification, AVX2 8-way over chunks"
                                    : "portable C from the BLAKE3 specification";
    if (PyModule_AddStringConstant(m, "BLAKE3", b3) < 0 ||
        PyModule_AddStringConstant(m, "SHA256", OPENSSL_VERSION_TEXT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
