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

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/opensslv.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#include "blake3.h"

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

PyDoc_STRVAR(chunk_leaves_doc,
             "chunk_leaves(alg, data, chunk_size) -> bytes: the leaf hash H(0x00 || chunk) of every chunk of data, "
             "concatenated, the GIL released; twin: merkle.tree.chunk_leaves.");

static PyObject *py_chunk_leaves(PyObject *self, PyObject *args) {
    int alg;
    unsigned long long chunk_size;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*K", &alg, &data, &chunk_size)) return NULL;
    if (!parse_alg(alg) || chunk_size < 1 || chunk_size > (1ULL << 30)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "chunk size must be from 1 to 1G");
        PyBuffer_Release(&data);
        return NULL;
    }
    size_t len = (size_t)data.len, n = (len + chunk_size - 1) / chunk_size;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * DIGEST));
    if (!out) {
        PyBuffer_Release(&data);
        return NULL;
    }
    uint8_t *leaves = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *buf = data.buf;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++) {
        size_t start = i * chunk_size, clen = len - start < chunk_size ? len - start : chunk_size;
        hash2(alg, 0, buf + start, clen, NULL, 0, leaves + i * DIGEST);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return out;
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

/* Each file's dataset leaf hash into out (32 bytes per file); 0 with an
 * exception set on a malformed entry. */
static int dataset_leaf_hashes(int alg, unsigned long long chunk_size, PyObject *seq, uint8_t *out) {
    static PyObject *s_path, *s_size, *s_root;
    if (!s_path && !(s_path = PyUnicode_InternFromString("path"))) return 0;
    if (!s_size && !(s_size = PyUnicode_InternFromString("size"))) return 0;
    if (!s_root && !(s_root = PyUnicode_InternFromString("root"))) return 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int ok = 1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *path = PyObject_GetAttr(f, s_path), *size = NULL, *root = NULL;
        size = path ? PyObject_GetAttr(f, s_size) : NULL;
        root = size ? PyObject_GetAttr(f, s_root) : NULL;
        Py_ssize_t plen = 0;
        const char *pb = root && PyUnicode_Check(path) ? PyUnicode_AsUTF8AndSize(path, &plen) : NULL;
        unsigned long long sz = pb && PyLong_Check(size) ? PyLong_AsUnsignedLongLong(size) : 0;
        ok = pb && PyLong_Check(size) && !PyErr_Occurred() && PyBytes_Check(root) && PyBytes_GET_SIZE(root) == DIGEST &&
             plen <= 0xFFFFFFFF;
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
                hash2(alg, 0, buf, need, NULL, 0, out + (size_t)i * DIGEST);
            }
        } else if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "files[%zd]: expected str path, int size and a 32-byte root", i);
        }
        Py_XDECREF(path);
        Py_XDECREF(size);
        Py_XDECREF(root);
    }
    PyMem_Free(buf);
    return ok;
}

PyDoc_STRVAR(dataset_leaves_doc,
             "dataset_leaves(alg, chunk_size, files) -> bytes: each file entry's dataset leaf hash (objects with str "
             "path, int size and 32-byte root), concatenated; twin: FileEntry.leaf_data hashed as a leaf.");

static PyObject *py_dataset_leaves(PyObject *self, PyObject *args) {
    int alg;
    unsigned long long chunk_size;
    PyObject *files;
    if (!PyArg_ParseTuple(args, "iKO", &alg, &chunk_size, &files)) return NULL;
    if (!parse_alg(alg)) return NULL;
    PyObject *seq = PySequence_Fast(files, "files must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * DIGEST);
    if (out && !dataset_leaf_hashes(alg, chunk_size, seq, (uint8_t *)PyBytes_AS_STRING(out))) Py_CLEAR(out);
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(dataset_doc,
             "dataset_root(alg, chunk_size, files) -> bytes: the dataset root over file entries, in the given "
             "order; twin: merkle.manifest.dataset_root_pure.");

static PyObject *py_dataset_root(PyObject *self, PyObject *args) {
    PyObject *leaves = py_dataset_leaves(self, args);
    if (!leaves) return NULL;
    int alg = (int)PyLong_AsLong(PyTuple_GET_ITEM(args, 0));
    root_builder rb = {.depth = 0, .count = 0};
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(leaves);
    Py_ssize_t n = PyBytes_GET_SIZE(leaves) / DIGEST;
    uint8_t out[DIGEST];
    for (Py_ssize_t i = 0; i < n; i++) rb_add(&rb, alg, p + i * DIGEST);
    rb_root(&rb, alg, out);
    Py_DECREF(leaves);
    return PyBytes_FromStringAndSize((const char *)out, DIGEST);
}

PyDoc_STRVAR(levels_doc,
             "levels(alg, leaves) -> list[bytes]: every level of the tree over concatenated 32-byte leaf hashes, "
             "leaves first, root last, each level concatenated; twin: merkle.tree.levels_pure.");

static PyObject *py_levels(PyObject *self, PyObject *args) {
    int alg;
    Py_buffer leaves;
    if (!PyArg_ParseTuple(args, "iy*", &alg, &leaves)) return NULL;
    if (!parse_alg(alg) || leaves.len % DIGEST) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "leaf hashes: %zd bytes is not a multiple of %d", leaves.len, DIGEST);
        PyBuffer_Release(&leaves);
        return NULL;
    }
    PyObject *out = PyList_New(0);
    Py_ssize_t n = leaves.len / DIGEST;
    PyObject *level = out ? PyBytes_FromStringAndSize(leaves.buf, leaves.len) : NULL;
    PyBuffer_Release(&leaves);
    while (level) {
        if (PyList_Append(out, level) < 0) {
            Py_DECREF(level);
            break;
        }
        Py_DECREF(level);
        if (n <= 1) return out;
        Py_ssize_t up = (n + 1) / 2;
        PyObject *next = PyBytes_FromStringAndSize(NULL, up * DIGEST);
        if (!next) break;
        const uint8_t *src = (const uint8_t *)PyBytes_AS_STRING(PyList_GET_ITEM(out, PyList_GET_SIZE(out) - 1));
        uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(next);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i + 1 < n; i += 2) node(alg, src + i * DIGEST, src + (i + 1) * DIGEST, dst + i / 2 * DIGEST);
        if (n % 2) memcpy(dst + (up - 1) * DIGEST, src + (n - 1) * DIGEST, DIGEST);
        Py_END_ALLOW_THREADS
        n = up;
        level = next;
    }
    Py_XDECREF(out);
    return NULL;
}

/* ---- whole small files, a batch per call, the GIL released for the batch.
 * Twin: merkle.engine.hash_run through LocalReader (same checks, same
 * messages): identity on open and after reading, every byte counted, no
 * byte past the listed size.  A listed file is opened relative to its
 * directory, which the caller opened down from the root without following
 * any link (merkle.sources.local.Root.open_dir), and never through a link
 * itself (O_NOFOLLOW); only a file named by the user (dirfd -1) is opened
 * as named. */
typedef struct {
    int dirfd;
    const char *path;
    unsigned long long size, dev, ino;
    long long mtime_ns, ctime_ns;
    uint8_t *leaves; /* out: one digest per chunk */
    uint8_t *head;   /* out, when asked for: the first head_len bytes, as read for the first chunk */
    size_t head_len;
    char error[160];
} listed_file;

static long long ns_of(struct timespec t) { return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }

static int same_identity(const struct stat *st, const listed_file *f) {
    return (unsigned long long)st->st_dev == f->dev && (unsigned long long)st->st_ino == f->ino &&
           (unsigned long long)st->st_size == f->size && ns_of(st->st_mtim) == f->mtime_ns &&
           ns_of(st->st_ctim) == f->ctime_ns;
}

static const char *kind_of_mode(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISLNK(m)) return "a symbolic link";
    return "an unknown kind of file";
}

static void os_reason(listed_file *f, int err, const char *prefix) {
    if (err == ELOOP && !*prefix)
        snprintf(f->error, sizeof f->error, "is a symbolic link");
    else
        snprintf(f->error, sizeof f->error, "%s%s", prefix, strerror(err));
}

/* The listed file, opened (see above) and still the one listed; -1 with
 * f->error set otherwise. */
static int open_listed(listed_file *f, int follow) {
    int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (follow && f->dirfd < 0 ? 0 : O_NOFOLLOW);
    int fd = f->dirfd < 0 ? open(f->path, flags) : openat(f->dirfd, f->path, flags);
    if (fd < 0) {
        os_reason(f, errno, "");
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        os_reason(f, errno, "");
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(f->error, sizeof f->error, "%s, not a regular file", kind_of_mode(st.st_mode));
    } else if (!same_identity(&st, f)) {
        snprintf(f->error, sizeof f->error, "changed between listing and hashing");
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

/* After reading: no byte past the listed size (when the read reached it),
 * and still the file listed.  Closes fd. */
static void close_listed(listed_file *f, int fd, int at_end) {
    struct stat st;
    uint8_t extra;
    ssize_t past = at_end ? pread(fd, &extra, 1, (off_t)f->size) : 0;
    if (past > 0) {
        snprintf(f->error, sizeof f->error, "has bytes past its listed size of %llu", f->size);
    } else if (past < 0) {
        os_reason(f, errno, "read error: ");
    } else if (fstat(fd, &st) != 0) {
        os_reason(f, errno, "read error: ");
    } else if (!same_identity(&st, f)) {
        snprintf(f->error, sizeof f->error, "changed while hashing");
    }
    close(fd);
}

static void hash_one(listed_file *f, int alg, size_t chunk_size, int follow, uint8_t *buf) {
    int fd = open_listed(f, follow);
    if (fd < 0) return;
    unsigned long long offset = 0;
    size_t index = 0;
    while (offset < f->size) {
        size_t want = f->size - offset < chunk_size ? (size_t)(f->size - offset) : chunk_size, have = 0;
        while (have < want) {
            ssize_t got = pread(fd, buf + have, want - have, (off_t)(offset + have));
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) {
                os_reason(f, errno, "read error: ");
                close(fd);
                return;
            }
            if (got == 0) {
                snprintf(f->error, sizeof f->error, "short read: end of data at byte %llu, expected %llu bytes",
                         offset + have, f->size);
                close(fd);
                return;
            }
            have += (size_t)got;
        }
        hash2(alg, 0, buf, want, NULL, 0, f->leaves + index * DIGEST);
        if (index == 0 && f->head) memcpy(f->head, buf, f->head_len); /* head_len <= the first chunk */
        offset += want;
        index++;
    }
    close_listed(f, fd, 1);
}

PyDoc_STRVAR(files_doc,
             "hash_files(alg, chunk_size, follow_symlinks, files, head=0) -> list: for each (dirfd, name: bytes, size, "
             "(dev, ino, size, mtime_ns, ctime_ns)), its chunk leaf hashes (bytes) or an error message (str); with "
             "head > 0, a (leaves or error, first bytes) pair: the first min(head, size, chunk_size) bytes as they "
             "were read and hashed.  name is opened relative to dirfd without following a link; with dirfd -1 it "
             "is a path opened as named (following a last link only with follow_symlinks).  Twin: "
             "merkle.engine.hash_run with LocalReader.");

static PyObject *py_hash_files(PyObject *self, PyObject *args) {
    int alg, follow;
    unsigned long long chunk_size;
    PyObject *files;
    Py_ssize_t head = 0;
    if (!PyArg_ParseTuple(args, "iKpO|n", &alg, &chunk_size, &follow, &files, &head)) return NULL;
    if (head < 0) head = 0;
    if (!parse_alg(alg)) return NULL;
    if (chunk_size < 1024 || chunk_size > (1ULL << 30) || (chunk_size & (chunk_size - 1))) {
        PyErr_SetString(PyExc_ValueError, "chunk size must be a power of two from 1K to 1G");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(files, "files must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    listed_file *fs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(listed_file));
    PyObject *out = NULL;
    uint8_t *buf = NULL;
    size_t largest = 0;
    if (!fs) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *path;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iSK(KKKLL)", &fs[i].dirfd, &path, &fs[i].size,
                              &fs[i].dev, &fs[i].ino, &fs[i].size, &fs[i].mtime_ns, &fs[i].ctime_ns))
            goto done;
        fs[i].path = PyBytes_AS_STRING(path); /* kept alive by seq */
        size_t chunks = (size_t)((fs[i].size + chunk_size - 1) / chunk_size);
        if (!(fs[i].leaves = PyMem_Malloc(chunks ? chunks * DIGEST : 1))) {
            PyErr_NoMemory();
            goto done;
        }
        size_t want = fs[i].size < chunk_size ? (size_t)fs[i].size : (size_t)chunk_size;
        if (want > largest) largest = want;
        if (head > 0) {
            fs[i].head_len = want < (size_t)head ? want : (size_t)head;
            if (!(fs[i].head = PyMem_Malloc(fs[i].head_len ? fs[i].head_len : 1))) {
                PyErr_NoMemory();
                goto done;
            }
        }
    }
    if (posix_memalign((void **)&buf, 4096, largest ? largest : 1) != 0) {
        buf = NULL;
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) hash_one(&fs[i], alg, (size_t)chunk_size, follow, buf);
    Py_END_ALLOW_THREADS
    if (!(out = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t chunks = (size_t)((fs[i].size + chunk_size - 1) / chunk_size);
        PyObject *item = fs[i].error[0] ? PyUnicode_DecodeUTF8(fs[i].error, (Py_ssize_t)strlen(fs[i].error), "replace")
                                        : PyBytes_FromStringAndSize((const char *)fs[i].leaves,
                                                                    (Py_ssize_t)(chunks * DIGEST));
        if (item && head > 0) {
            PyObject *first = fs[i].error[0] ? Py_NewRef(Py_None)
                                             : PyBytes_FromStringAndSize((const char *)fs[i].head,
                                                                         (Py_ssize_t)fs[i].head_len);
            PyObject *pair = first ? PyTuple_Pack(2, item, first) : NULL;
            Py_XDECREF(first);
            Py_DECREF(item);
            item = pair;
        }
        if (!item) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, item);
    }
done:
    free(buf);
    if (fs)
        for (Py_ssize_t i = 0; i < n; i++) {
            PyMem_Free(fs[i].leaves);
            PyMem_Free(fs[i].head);
        }
    PyMem_Free(fs);
    Py_DECREF(seq);
    return out;
}

/* ---- runs of chunks of large files, read through a mapping: the page
 * cache's pages are hashed where they are, with no copy into a buffer.
 * Each call maps one unit's byte range, hashes its leaves with the GIL
 * released and unmaps it, so what stays mapped is one unit per worker.
 *
 * A mapped file truncated under us makes the next touch of a page past its
 * new end raise SIGBUS.  The guard turns that into this file's "changed
 * while hashing": a thread inside a guarded range holds a slot with its
 * thread id, the range and a sigjmp_buf; the handler jumps back when the
 * fault is that thread's and lies in that range.  Anything else goes on to
 * the handler that was installed before ours (Python's faulthandler, say),
 * or ends the process as SIGBUS does by default: no fault is swallowed.
 * Slots, not thread-local storage: TLS of a dlopen()ed module may be
 * allocated on first use, which a signal handler must not do.  A jump out
 * of hash2 leaves nothing behind as long as it holds no lock or heap block
 * while it reads its input (mb3_hash and OpenSSL's SHA256_Update hold
 * none).  Linux only; elsewhere nothing is mapped (the caller reads). */
enum { MAPPED_OK, MAPPED_FAULT, NOT_MAPPED };
static unsigned long long faults_caught;

#if defined(__linux__) && defined(MAP_POPULATE) && defined(SYS_gettid)
#define GUARD_SLOTS 256

typedef struct {
    volatile pid_t tid; /* 0: free */
    volatile sig_atomic_t active;
    const char *volatile lo, *volatile hi;
    sigjmp_buf env;
} guard_slot;

static guard_slot guards[GUARD_SLOTS];
static struct sigaction previous[2]; /* the handler ours replaced: previous[previous_at] */
static volatile sig_atomic_t previous_at;
static volatile sig_atomic_t passing; /* a SIGBUS not ours is being handed on */
static void *volatile refaulting;      /* where the last fault handed on was, if its handler returned */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_sigbus(int sig, siginfo_t *si, void *ctx);

static int is_ours(const struct sigaction *a) { return (a->sa_flags & SA_SIGINFO) && a->sa_sigaction == on_sigbus; }

static void die_of(int sig) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* delivered at once (SA_NODEFER) or on return: the default action ends the process */
}

/* Hand a SIGBUS that is not a guarded fault to the handler ours replaced.
 * No two handlers may loop: one that hands it back to us (faulthandler
 * restores the handler it replaced, which may be ours, and raises again)
 * finds `passing` set; a fault whose handler returned without curing it
 * (faulthandler's, once disabled, returns at once) comes back at the same
 * address.  Both then end the process by the default action. */
static void pass_on(int sig, siginfo_t *si, void *ctx) {
    const struct sigaction *prev = &previous[previous_at];
    int fault = si->si_code > 0;
    if (passing || is_ours(prev) || prev->sa_handler == SIG_DFL || (fault && refaulting == si->si_addr)) {
        die_of(sig);
        return;
    }
    if (prev->sa_handler == SIG_IGN) {
        if (fault) die_of(sig); /* a real fault cannot be ignored: it would only repeat */
        return;
    }
    passing = 1;
    if (prev->sa_flags & SA_SIGINFO)
        prev->sa_sigaction(sig, si, ctx);
    else
        prev->sa_handler(sig);
    passing = 0;
    if (fault) refaulting = si->si_addr; /* returned: the faulting access runs again */
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx) {
    int saved = errno;
    if (si->si_code > 0) { /* raised by the kernel for a fault, not sent by a process */
        pid_t me = (pid_t)syscall(SYS_gettid);
        const char *addr = (const char *)si->si_addr;
        for (int i = 0; i < GUARD_SLOTS; i++) {
            guard_slot *g = &guards[i];
            if (g->tid == me && g->active && addr >= g->lo && addr < g->hi) {
                g->active = 0;
                __atomic_add_fetch(&faults_caught, 1, __ATOMIC_RELAXED);
                errno = saved;
                siglongjmp(g->env, 1);
            }
        }
    }
    pass_on(sig, si, ctx);
    errno = saved;
}

/* Make ours the SIGBUS handler, remembering the one it replaces.  Checked
 * at every guarded call: Python's faulthandler (which pytest enables)
 * installs its own over ours.  0 if it could not be installed. */
static int install_guard(void) {
    struct sigaction now;
    if (sigaction(SIGBUS, NULL, &now) != 0) return 0;
    if (is_ours(&now)) return 1;
    pthread_mutex_lock(&install_lock);
    int ok = sigaction(SIGBUS, NULL, &now) == 0;
    if (ok && !is_ours(&now)) {
        struct sigaction ours, replaced;
        memset(&ours, 0, sizeof ours);
        ours.sa_sigaction = on_sigbus;
        ours.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
        sigemptyset(&ours.sa_mask);
        /* the handler may run as soon as ours is in: previous must be set first */
        previous[1 - previous_at] = now;
        previous_at = 1 - previous_at;
        ok = sigaction(SIGBUS, &ours, &replaced) == 0;
        if (ok && !is_ours(&replaced) &&
            (replaced.sa_sigaction != now.sa_sigaction || replaced.sa_flags != now.sa_flags)) {
            previous[1 - previous_at] = replaced; /* replaced between the two calls */
            previous_at = 1 - previous_at;
        }
    }
    pthread_mutex_unlock(&install_lock);
    return ok;
}

/* In a child forked while threads hashed, none of them exists: free their
 * slots and the install lock one of them may have held. */
static void guards_after_fork(void) {
    memset((void *)guards, 0, sizeof guards);
    pthread_mutex_init(&install_lock, NULL);
}
#define MERKLE_GUARDS 1

static guard_slot *claim_slot(void) {
    pid_t me = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < GUARD_SLOTS; i++) {
        pid_t free_tid = 0;
        if (__atomic_compare_exchange_n(&guards[i].tid, &free_tid, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return &guards[i];
    }
    return NULL;
}

static void release_slot(guard_slot *g) {
    g->active = 0;
    __atomic_store_n(&g->tid, 0, __ATOMIC_RELEASE);
}

/* Leaves of bytes [start, end) (chunks of chunk_size from start) of fd,
 * read through a guarded mapping. */
static int hash_mapped(int fd, int alg, size_t chunk_size, unsigned long long start, unsigned long long end,
                       uint8_t *leaves) {
    static long page;
    if (!page) page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !install_guard()) return NOT_MAPPED;
    guard_slot *g = claim_slot();
    if (!g) return NOT_MAPPED;
    unsigned long long base = start - start % (unsigned long long)page;
    size_t length = (size_t)(end - base), skip = (size_t)(start - base);
    /* MAP_POPULATE: the page tables filled in one pass, not a fault per 16
     * pages (hot cache, 4 GiB: 0.25 s against 0.30 s; madvise SEQUENTIAL
     * or WILLNEED changed nothing measurable, hot or cold) */
    uint8_t *map = mmap(NULL, length, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, (off_t)base);
    if (map == MAP_FAILED) {
        release_slot(g);
        return NOT_MAPPED;
    }
    g->lo = (const char *)map;
    g->hi = (const char *)map + length;
    if (sigsetjmp(g->env, 1)) { /* the file shrank under the mapping */
        munmap(map, length);
        release_slot(g);
        return MAPPED_FAULT;
    }
    g->active = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* no read of the mapping moves above this */
    size_t n = (size_t)((end - start + chunk_size - 1) / chunk_size);
    for (size_t i = 0; i < n; i++) {
        size_t at = i * chunk_size, len = length - skip - at < chunk_size ? length - skip - at : chunk_size;
        hash2(alg, 0, map + skip + at, len, NULL, 0, leaves + i * DIGEST);
    }
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* nor below this */
    g->active = 0;
    munmap(map, length);
    release_slot(g);
    return MAPPED_OK;
}
#else
static int hash_mapped(int fd, int alg, size_t chunk_size, unsigned long long start, unsigned long long end,
                       uint8_t *leaves) {
    return NOT_MAPPED;
}
#endif

PyDoc_STRVAR(range_doc,
             "hash_range(alg, chunk_size, follow_symlinks, dirfd, name, size, identity, first, count) -> bytes | str "
             "| None: the leaf hashes of chunks [first, first + count) of one listed file (opened as hash_files "
             "opens it, with the same checks and messages), read through a mapping with the GIL released; a file "
             "truncated under the mapping is 'changed while hashing'.  None when the file cannot be mapped (read it "
             "instead).  Twin: merkle.engine.hash_run with LocalReader.");

static PyObject *py_hash_range(PyObject *self, PyObject *args) {
    int alg, follow;
    unsigned long long chunk_size, first, count;
    listed_file f;
    PyObject *name;
    memset(&f, 0, sizeof f);
    if (!PyArg_ParseTuple(args, "iKpiSK(KKKLL)KK", &alg, &chunk_size, &follow, &f.dirfd, &name, &f.size, &f.dev,
                          &f.ino, &f.size, &f.mtime_ns, &f.ctime_ns, &first, &count))
        return NULL;
    if (!parse_alg(alg)) return NULL;
    if (chunk_size < 1024 || chunk_size > (1ULL << 30) || (chunk_size & (chunk_size - 1))) {
        PyErr_SetString(PyExc_ValueError, "chunk size must be a power of two from 1K to 1G");
        return NULL;
    }
    unsigned long long chunks = (f.size + chunk_size - 1) / chunk_size;
    if (count < 1 || first >= chunks || count > chunks - first || count > ((size_t)PY_SSIZE_T_MAX) / DIGEST) {
        PyErr_Format(PyExc_ValueError, "chunks [%llu, +%llu) are not within the file's %llu chunks", first, count,
                     chunks);
        return NULL;
    }
    f.path = PyBytes_AS_STRING(name);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(count * DIGEST));
    if (!out) return NULL;
    unsigned long long start = first * chunk_size, end = start + count * chunk_size;
    if (end > f.size) end = f.size;
    int mapped = NOT_MAPPED;
    Py_BEGIN_ALLOW_THREADS
    int fd = open_listed(&f, follow);
    if (fd >= 0) {
        mapped = hash_mapped(fd, alg, (size_t)chunk_size, start, end, (uint8_t *)PyBytes_AS_STRING(out));
        if (mapped == MAPPED_FAULT) {
            /* a file that still is what was listed did not shrink: the
             * fault was the device's (an I/O error), as a read would say */
            struct stat st;
            if (fstat(fd, &st) == 0 && same_identity(&st, &f))
                os_reason(&f, EIO, "read error: ");
            else
                snprintf(f.error, sizeof f.error, "changed while hashing");
            close(fd);
        } else if (mapped == MAPPED_OK) {
            close_listed(&f, fd, end == f.size);
        } else {
            close(fd);
        }
    }
    Py_END_ALLOW_THREADS
    if (f.error[0]) {
        Py_DECREF(out);
        return PyUnicode_DecodeUTF8(f.error, (Py_ssize_t)strlen(f.error), "replace");
    }
    if (mapped == NOT_MAPPED) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

/* ---- canonical manifest entries ------------------------------------------
 * A run of file entries written exactly as merkle.format.manifest._entry_json
 * writes them without a hub: {"path":"P","size":N,"root":"H"}, P without a
 * quote, backslash or control character, N "0" or 1-19 digits without a
 * leading zero, H 64 lower-case hex digits: what _CANONICAL_ENTRY matches,
 * entry for entry (tests/format/test_fast_parse.py holds the two equal).
 * Texts of one byte per character only (ASCII and Latin-1; others: None). */

/* The attribute names of a manifest entry, interned once: path, size, root, hub. */
static PyObject **entry_names(void) {
    static PyObject *names[4];
    static const char *const spelled[4] = {"path", "size", "root", "hub"};
    for (int k = 0; k < 4; k++)
        if (!names[k] && !(names[k] = PyUnicode_InternFromString(spelled[k]))) return NULL;
    return names;
}

static const char ENTRY_HEAD[] = "{\"path\":\"";
static const char ENTRY_SIZE[] = "\",\"size\":";
static const char ENTRY_ROOT[] = ",\"root\":\"";

static int hexval(Py_UCS1 c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int has(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t p, const char *lit, Py_ssize_t len) {
    return p + len <= n && memcmp(s + p, lit, (size_t)len) == 0;
}

/* One canonical entry at s[p:]: its parts and the position after it, or -1. */
static Py_ssize_t canonical_entry(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t p, Py_ssize_t *path_at,
                                  Py_ssize_t *path_len, unsigned long long *size, uint8_t root[DIGEST]) {
    if (!has(s, n, p, ENTRY_HEAD, sizeof ENTRY_HEAD - 1)) return -1;
    p += sizeof ENTRY_HEAD - 1;
    Py_ssize_t start = p;
    while (p < n && s[p] != '"') {
        if (s[p] == '\\' || s[p] < 0x20) return -1;
        p++;
    }
    if (!has(s, n, p, ENTRY_SIZE, sizeof ENTRY_SIZE - 1)) return -1;
    *path_at = start;
    *path_len = p - start;
    p += sizeof ENTRY_SIZE - 1;
    Py_ssize_t digits = 0;
    unsigned long long v = 0;
    while (p + digits < n && s[p + digits] >= '0' && s[p + digits] <= '9' && digits < 20) {
        v = v * 10 + (unsigned long long)(s[p + digits] - '0');
        digits++;
    }
    if (digits == 0 || digits > 19 || (digits > 1 && s[p] == '0')) return -1;
    *size = v;
    p += digits;
    if (!has(s, n, p, ENTRY_ROOT, sizeof ENTRY_ROOT - 1)) return -1;
    p += sizeof ENTRY_ROOT - 1;
    if (p + 2 * DIGEST + 2 > n) return -1;
    for (int k = 0; k < DIGEST; k++) {
        int hi = hexval(s[p + 2 * k]), lo = hexval(s[p + 2 * k + 1]);
        if (hi < 0 || lo < 0) return -1;
        root[k] = (uint8_t)(hi << 4 | lo);
    }
    p += 2 * DIGEST;
    if (s[p] != '"' || s[p + 1] != '}') return -1;
    return p + 2;
}

/* entry_type(path, size, root) without running its __init__ (a frozen
 * dataclass's costs a microsecond): slots set as the class declares them. */
static PyObject *new_entry(PyTypeObject *type, PyObject *names[4], PyObject *path, PyObject *size, PyObject *root) {
    PyObject *obj = type->tp_alloc(type, 0);
    if (!obj) return NULL;
    PyObject *values[4] = {path, size, root, Py_None};
    for (int k = 0; k < 4; k++) {
        if (PyObject_GenericSetAttr(obj, names[k], values[k]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}

PyDoc_STRVAR(canonical_entries_doc,
             "canonical_entries(text, pos, entry_type) -> (list, pos) | None: the run of canonical manifest entries "
             "at text[pos:] (each but the last followed by ',' or ',\\n', which are consumed) as entry_type objects, "
             "and the position after the last; None for a text of more than one byte per character. "
             "Twin: the _CANONICAL_ENTRY loop of merkle.format.manifest.files_at.");

static PyObject *py_canonical_entries(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t pos;
    PyTypeObject *type;
    if (!PyArg_ParseTuple(args, "UnO!", &text, &pos, &PyType_Type, &type)) return NULL;
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) Py_RETURN_NONE;
    PyObject **names = entry_names();
    if (!names) return NULL;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (pos < 0 || pos > n) return PyErr_Format(PyExc_ValueError, "position %zd outside the text", pos);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    Py_ssize_t p = pos, end = pos;
    for (;;) {
        Py_ssize_t at, len;
        unsigned long long size;
        uint8_t root[DIGEST];
        Py_ssize_t next = canonical_entry(s, n, p, &at, &len, &size, root);
        if (next < 0) break;
        PyObject *path = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, s + at, len);
        PyObject *sz = path ? PyLong_FromUnsignedLongLong(size) : NULL;
        PyObject *rt = sz ? PyBytes_FromStringAndSize((const char *)root, DIGEST) : NULL;
        PyObject *entry = rt ? new_entry(type, names, path, sz, rt) : NULL;
        Py_XDECREF(path);
        Py_XDECREF(sz);
        Py_XDECREF(rt);
        if (!entry || PyList_Append(out, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(entry);
        end = next;
        /* a separator is taken only with a canonical entry after it */
        p = next;
        if (p < n && s[p] == ',') {
            p++;
            if (p < n && s[p] == '\n') p++;
            continue;
        }
        break;
    }
    return Py_BuildValue("(Nn)", out, end);
}

/* ---- plain entries ----------------------------------------------------------
 * The common case of merkle.format.manifest._check_entries, in one pass: every
 * entry has a plain path (format.paths._PLAIN_PATH: printable ASCII but
 * backslash, '/'-separated non-empty parts, none '.' or '..', at most
 * max_path bytes), in strictly increasing order, an int size in
 * [0, max_size], a root of DIGEST bytes and no hub.  Anything else (or
 * anything unusual) answers False, and the caller checks entry by entry,
 * which names the problem. */

static int plain_path(const Py_UCS1 *s, Py_ssize_t n) {
    if (n == 0) return 0;
    Py_ssize_t part = 0; /* length of the current part */
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (part == 0) return 0;
            if (part <= 2 && s[i - 1] == '.' && (part == 1 || s[i - 2] == '.')) return 0;
            part = 0;
            continue;
        }
        Py_UCS1 c = s[i];
        if (c < 0x20 || c > 0x7e || c == '\\') return 0;
        part++;
    }
    return 1;
}

PyDoc_STRVAR(plain_entries_doc,
             "plain_entries(files, max_path, max_size) -> int: 1 when every entry is plain, sorted, sized and "
             "rooted as merkle.format.manifest._check_entries requires, with no hub; 2 when also no path holds a "
             "capital letter (no two can differ only in case); 0: look entry by entry.");

static PyObject *py_plain_entries(PyObject *self, PyObject *args) {
    PyObject *files;
    Py_ssize_t max_path;
    unsigned long long max_size;
    if (!PyArg_ParseTuple(args, "OnK", &files, &max_path, &max_size)) return NULL;
    PyObject **names = entry_names();
    if (!names) return NULL;
    PyObject *seq = PySequence_Fast(files, "files must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const Py_UCS1 *prev = NULL;
    Py_ssize_t prev_len = 0;
    PyObject *prev_obj = NULL; /* keeps prev alive */
    int ok = 1, capital = 0;
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *v[4] = {NULL, NULL, NULL, NULL};
        for (int k = 0; k < 4 && ok; k++) {
            v[k] = PyObject_GetAttr(f, names[k]);
            if (!v[k]) ok = 0;
        }
        if (ok) {
            PyObject *path = v[0], *size = v[1], *root = v[2], *hub = v[3];
            ok = PyUnicode_CheckExact(path) && PyUnicode_IS_ASCII(path) && PyUnicode_GET_LENGTH(path) <= max_path &&
                 PyLong_CheckExact(size) && PyBytes_CheckExact(root) && PyBytes_GET_SIZE(root) == DIGEST &&
                 hub == Py_None;
            if (ok) {
                unsigned long long sz = PyLong_AsUnsignedLongLong(size);
                if (PyErr_Occurred()) { /* negative or too big */
                    PyErr_Clear();
                    ok = 0;
                } else {
                    ok = sz <= max_size;
                }
            }
            if (ok) {
                const Py_UCS1 *s = PyUnicode_1BYTE_DATA(path);
                Py_ssize_t len = PyUnicode_GET_LENGTH(path);
                ok = plain_path(s, len);
                for (Py_ssize_t j = 0; ok && !capital && j < len; j++) capital = s[j] >= 'A' && s[j] <= 'Z';
                if (ok && prev) { /* strictly increasing: byte order is code point order for ASCII */
                    Py_ssize_t m = len < prev_len ? len : prev_len;
                    int c = memcmp(prev, s, (size_t)m);
                    ok = c < 0 || (c == 0 && prev_len < len);
                }
                if (ok) {
                    Py_XDECREF(prev_obj);
                    prev_obj = path;
                    Py_INCREF(prev_obj);
                    prev = s;
                    prev_len = len;
                }
            }
        }
        for (int k = 0; k < 4; k++) Py_XDECREF(v[k]);
        if (!ok && PyErr_Occurred()) { /* an attribute missing: the entry-by-entry check names it */
            PyErr_Clear();
        }
    }
    Py_XDECREF(prev_obj);
    Py_DECREF(seq);
    return PyLong_FromLong(ok ? (capital ? 1 : 2) : 0);
}

PyDoc_STRVAR(entries_from_doc,
             "entries_from(entry_type, items) -> list: entry_type(item.path, item.size, item.root) for each item "
             "(hub None), made without the frozen dataclass's __init__; the values are taken as they are (the "
             "manifest checks them).");

static PyObject *py_entries_from(PyObject *self, PyObject *args) {
    PyTypeObject *type;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "O!O", &PyType_Type, &type, &items)) return NULL;
    PyObject **names = entry_names();
    if (!names) return NULL;
    PyObject *seq = PySequence_Fast(items, "items must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *path = PyObject_GetAttr(item, names[0]);
        PyObject *size = path ? PyObject_GetAttr(item, names[1]) : NULL;
        PyObject *root = size ? PyObject_GetAttr(item, names[2]) : NULL;
        PyObject *entry = root ? new_entry(type, names, path, size, root) : NULL;
        Py_XDECREF(path);
        Py_XDECREF(size);
        Py_XDECREF(root);
        if (!entry) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, entry);
    }
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(entries_json_doc,
             "entries_json(files, separator) -> str | None: the entries as merkle.format.manifest._entry_json "
             "writes them, joined by separator; None unless every path is ASCII without a quote, backslash or "
             "control character, every size an int, every root 32 bytes and every hub None (the caller then "
             "writes them itself).");

static PyObject *py_entries_json(PyObject *self, PyObject *args) {
    PyObject *files;
    const char *sep;
    Py_ssize_t sep_len;
    if (!PyArg_ParseTuple(args, "Os#", &files, &sep, &sep_len)) return NULL;
    PyObject **names = entry_names();
    if (!names) return NULL;
    PyObject *seq = PySequence_Fast(files, "files must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    size_t cap = (size_t)n * 128 + 64, len = 0;
    char *buf = PyMem_Malloc(cap);
    int ok = buf != NULL, declined = 0;
    if (!buf) PyErr_NoMemory();
    static const char hex[] = "0123456789abcdef";
    for (Py_ssize_t i = 0; ok && !declined && i < n; i++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *v[4] = {NULL, NULL, NULL, NULL};
        for (int k = 0; k < 4 && ok; k++)
            if (!(v[k] = PyObject_GetAttr(f, names[k]))) ok = 0;
        if (ok) {
            PyObject *path = v[0], *size = v[1], *root = v[2];
            declined = !(PyUnicode_CheckExact(path) && PyUnicode_IS_ASCII(path) && PyLong_CheckExact(size) &&
                         PyBytes_CheckExact(root) && PyBytes_GET_SIZE(root) == DIGEST && v[3] == Py_None);
            unsigned long long sz = 0;
            if (!declined) {
                sz = PyLong_AsUnsignedLongLong(size);
                if (PyErr_Occurred()) {
                    PyErr_Clear();
                    declined = 1;
                }
            }
            const Py_UCS1 *ps = declined ? NULL : PyUnicode_1BYTE_DATA(path);
            Py_ssize_t pl = declined ? 0 : PyUnicode_GET_LENGTH(path);
            for (Py_ssize_t k = 0; ps && k < pl; k++)
                if (ps[k] == '"' || ps[k] == '\\' || ps[k] < 0x20) declined = 1;
            if (!declined) {
                size_t need = (size_t)pl + (size_t)sep_len + 2 * DIGEST + 64;
                if (len + need > cap) {
                    size_t grown_cap = (len + need) * 2;
                    char *grown = PyMem_Realloc(buf, grown_cap);
                    if (!grown) {
                        PyErr_NoMemory();
                        ok = 0;
                    } else {
                        buf = grown;
                        cap = grown_cap;
                    }
                }
                if (ok) {
                    if (i > 0) {
                        memcpy(buf + len, sep, (size_t)sep_len);
                        len += (size_t)sep_len;
                    }
                    len += (size_t)sprintf(buf + len, "{\"path\":\"");
                    memcpy(buf + len, ps, (size_t)pl);
                    len += (size_t)pl;
                    len += (size_t)sprintf(buf + len, "\",\"size\":%llu,\"root\":\"", sz);
                    const uint8_t *r = (const uint8_t *)PyBytes_AS_STRING(root);
                    for (int k = 0; k < DIGEST; k++) {
                        buf[len++] = hex[r[k] >> 4];
                        buf[len++] = hex[r[k] & 15];
                    }
                    buf[len++] = '"';
                    buf[len++] = '}';
                }
            }
        }
        for (int k = 0; k < 4; k++) Py_XDECREF(v[k]);
    }
    Py_DECREF(seq);
    PyObject *out = NULL;
    if (ok && !declined) out = PyUnicode_DecodeASCII(buf, (Py_ssize_t)len, "strict");
    PyMem_Free(buf);
    if (!ok) return NULL;
    if (declined) Py_RETURN_NONE;
    return out;
}

PyDoc_STRVAR(faults_doc, "faults() -> int: how many SIGBUS faults of files truncated under hash_range were caught.");

static PyObject *py_faults(PyObject *self, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&faults_caught, __ATOMIC_RELAXED));
}

static PyMethodDef methods[] = {
    {"hash_files", py_hash_files, METH_VARARGS, files_doc},
    {"hash_range", py_hash_range, METH_VARARGS, range_doc},
    {"faults", py_faults, METH_NOARGS, faults_doc},
    {"hash", py_hash, METH_VARARGS, hash_doc},
    {"chunk_leaves", py_chunk_leaves, METH_VARARGS, chunk_leaves_doc},
    {"root_of_leaves", py_root_of_leaves, METH_VARARGS, root_doc},
    {"dataset_root", py_dataset_root, METH_VARARGS, dataset_doc},
    {"dataset_leaves", py_dataset_leaves, METH_VARARGS, dataset_leaves_doc},
    {"levels", py_levels, METH_VARARGS, levels_doc},
    {"canonical_entries", py_canonical_entries, METH_VARARGS, canonical_entries_doc},
    {"plain_entries", py_plain_entries, METH_VARARGS, plain_entries_doc},
    {"entries_from", py_entries_from, METH_VARARGS, entries_from_doc},
    {"entries_json", py_entries_json, METH_VARARGS, entries_json_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "merkle._merkle",
                                    "Native twins of merkle's hot paths (see ext/_merkle.c).", -1, methods};

PyMODINIT_FUNC PyInit__merkle(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
#ifdef MERKLE_GUARDS
    static int at_fork;
    if (!at_fork && pthread_atfork(NULL, NULL, guards_after_fork) == 0) at_fork = 1;
#endif
    static const char *const tiers[] = {"portable", "avx2", "avx512"};
    static const char *const described[] = {
        "portable C from the BLAKE3 specification (no vector code for this CPU)",
        "C from the BLAKE3 specification, AVX2: 8 chunks or parents per step",
        "C from the BLAKE3 specification, AVX-512: 16 chunks or parents per step",
    };
    int tier = mb3_tier();
    if (PyModule_AddStringConstant(m, "BLAKE3", described[tier]) < 0 ||
        PyModule_AddStringConstant(m, "BLAKE3_TIER", tiers[tier]) < 0 ||
        PyModule_AddStringConstant(m, "SHA256", OPENSSL_VERSION_TEXT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
