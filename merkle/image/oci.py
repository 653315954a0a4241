"""Opening a container image offline (docs/images.md, I1-I5).

Two containers of the same OCI content: a directory in the OCI image layout
(`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) and a `docker save` tar,
either with the same layout inside (Docker 25 and later) or in the older
form (`manifest.json`, the config as `<hex>.json`, layers as tar members,
each checked against the config's `rootfs.diff_ids`).  JSON documents are
read whole (at most 4 MiB each) and checked against their digest and size
before they are parsed; layers are streamed and checked as they are read
(merkle.image.layers, `check_blobs`).
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Final

from merkle.errors import FormatError, IntegrityError, SourceError, UnsupportedError, UsageError
from merkle.report import Outcome, Status

MAX_JSON: Final = 4 << 20
MAX_LAYERS: Final = 1000
DIGEST: Final = re.compile(r"(sha256):([0-9a-f]{64})|(sha512):([0-9a-f]{128})")
INDEX_TYPES: Final = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES: Final = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
LAYER_TYPES: Final = {
    "application/vnd.oci.image.layer.v1.tar": None,
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": None,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": None,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
REF_NAME: Final = "org.opencontainers.image.ref.name"


def parse_target(target: str) -> tuple[str, str, str | None] | None:
    """(kind, path, tag) for `oci:DIR[:TAG]` or `docker-archive:FILE`; None
    for anything else (a plain path)."""
    if target.startswith("oci:"):
        rest = target[4:]
        path, sep, tag = rest.rpartition(":")
        if not sep or "/" in tag or not path:
            return "oci", rest, None
        return "oci", path, tag
    if target.startswith("docker-archive:"):
        return "docker-archive", target[len("docker-archive:") :], None
    return None


@dataclass(frozen=True)
class Descriptor:
    """What names a blob: its media type, digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None

    @classmethod
    def from_doc(cls, doc: Any, where: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise FormatError(f"{where}: a descriptor is not an object")
        media, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
        if not isinstance(media, str) or not media:
            raise FormatError(f"{where}: mediaType is missing")
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise FormatError(f"{where}: digest {str(digest)[:80]!r} is not sha256:<64 hex> or sha512:<128 hex>")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"{where}: size {size!r} is not a byte count")
        notes = doc.get("annotations") or {}
        if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
            raise FormatError(f"{where}: annotations are not strings")
        plat = doc.get("platform")
        if plat is not None and not isinstance(plat, dict):
            raise FormatError(f"{where}: platform is not an object")
        return cls(media, digest, size, notes, plat)


@dataclass(frozen=True)
class Located:
    """A blob in place: bytes [start, start + length) of the open regular file `file` (the caller closes it)."""

    file: IO[bytes]
    start: int
    length: int


@dataclass(frozen=True)
class Layer:
    """One layer: `digest` and `size` of the blob as stored (None for the
    size of an older docker archive's layer, named by its uncompressed
    digest), its compression, and how to open it."""

    index: int
    digest: str
    size: int | None
    compression: str | None
    name: str
    open: Callable[[], IO[bytes]] = field(repr=False, compare=False)
    diff_id: str | None = None
    """The digest of the uncompressed tar the config's rootfs.diff_ids
    gives (I4); None where `digest` is that digest already."""
    locate: Callable[[], Located | None] = field(repr=False, compare=False, default=lambda: None)
    """The blob in place, to read at offsets: an open regular file and the
    blob's span in it; None where it is not one (then it is streamed)."""


@dataclass
class Image:
    """An image whose index, manifest and config matched their digests."""

    target: str
    kind: str
    digest: str
    """The subject other tools name the image by: the manifest's digest (the
    config's, the image id, for an older docker archive, which has none)."""
    tag: str | None
    layers: list[Layer]
    config: dict[str, Any]
    close: Callable[[], None] = field(repr=False, default=lambda: None)
    config_digest: str = ""
    platform: str | None = None
    """`os/arch` when the manifest was picked from an index of platforms."""

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hasher(digest: str) -> Any:
    return hashlib.new(digest.split(":", 1)[0])


def _checked(data: bytes, d: Descriptor, what: str, shown: str) -> bytes:
    if len(data) != d.size:
        raise IntegrityError(f"{what} {d.digest}: {len(data)} bytes, its descriptor says {d.size}", shown)
    h = _hasher(d.digest)
    h.update(data)
    if f"{d.digest.split(':', 1)[0]}:{h.hexdigest()}" != d.digest:
        raise IntegrityError(f"{what} does not match its digest {d.digest}", shown)
    return data


def _json(data: bytes, what: str, shown: str) -> dict[str, Any]:
    from merkle.format import strictjson

    try:
        doc = strictjson.loads(data, what, MAX_JSON)
    except FormatError as e:
        raise FormatError(f"{what}: {e.message}", shown) from e
    if not isinstance(doc, dict):
        raise FormatError(f"{what} is not a JSON object", shown)
    return doc


class _Blobs:
    """Where the blobs are: files under an OCI layout directory, or members
    of a tar (read in place)."""

    def __init__(self, shown: str) -> None:
        self.shown = shown

    def read(self, name: str, limit: int = MAX_JSON) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise FormatError(f"{name} is larger than {limit >> 20} MiB", self.shown)
        return data

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def locate(self, name: str) -> Located | None:
        return None

    def blob(self, digest: str) -> str:
        alg, _, hexa = digest.partition(":")
        return f"blobs/{alg}/{hexa}"


class _Directory(_Blobs):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.root = root

    def open(self, name: str) -> IO[bytes]:
        from merkle.source.local import open_below

        try:
            fd, _ = open_below(self.root, name)
        except SourceError as e:  # not there, or a link or special file: never read through it (I5)
            there = os.path.lexists(os.path.join(self.root, name))
            why = "is not a regular file of the layout (blobs are never read through a link)" if there else "is missing"
            raise IntegrityError(f"{name} {why}", self.shown) from e
        return os.fdopen(fd, "rb")

    def locate(self, name: str) -> Located | None:
        f = self.open(name)
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            f.close()
            return None
        return Located(f, 0, st.st_size)

    def exists(self, name: str) -> bool:
        try:
            st = os.lstat(os.path.join(self.root, name))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode)


class _Archive(_Blobs):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        from merkle.image.tarheaders import NotOneTar, strict_tarinfo

        try:
            self.tar = tarfile.open(path, "r:", tarinfo=strict_tarinfo())  # noqa: SIM115 - closed by Image.close
        except NotOneTar as e:
            raise IntegrityError(f"an archive tar readers read differently: {e}", path) from e
        except (OSError, tarfile.TarError) as e:
            raise SourceError(f"not a readable tar archive: {e}", path) from e
        self.members: dict[str, tarfile.TarInfo] = {}
        seen: set[str] = set()
        doubled: set[str] = set()
        try:
            for count, m in enumerate(self.tar):
                if count > 1_000_000:
                    raise FormatError("more than 1,000,000 entries: not an image archive", path)
                self.tar.members.clear()  # type: ignore[attr-defined]  # what is kept: `members`, regular files
                parts = m.name.split("/")
                if ".." in parts or m.name.startswith("/"):  # readers clean such names differently (I9b)
                    raise IntegrityError(f"a member named {m.name[:200]!r}: tar readers read it differently", path)
                name = "/".join(part for part in parts if part not in ("", "."))
                if name in seen:  # of any kind: a link and a file of one name are read differently too
                    doubled.add(name)
                seen.add(name)
                if m.isfile():
                    self.members[name] = m
        except NotOneTar as e:
            self.tar.close()
            raise IntegrityError(f"an archive tar readers read differently: {e}", path) from e
        except (OSError, tarfile.TarError, EOFError) as e:
            self.tar.close()
            raise SourceError(f"not a readable tar archive: {e}", path) from e
        except BaseException:
            self.tar.close()
            raise
        self.doubled = doubled

    def open(self, name: str) -> IO[bytes]:
        if name in self.doubled:
            raise IntegrityError(f"{name} is in the archive twice: which one is meant is not known", self.shown)
        m = self.members.get(name)
        f = self.tar.extractfile(m) if m is not None else None
        if f is None:
            raise IntegrityError(f"{name} is missing from the archive", self.shown)
        return f

    def locate(self, name: str) -> Located | None:
        """A layer member in place: never a sparse member, whose bytes in the archive are not its content."""
        m = self.members.get(name)
        fileobj = getattr(self.tar, "fileobj", None)
        if name in self.doubled or m is None or not m.isreg() or m.issparse() or fileobj is None:
            return None
        try:
            fd = fileobj.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        return Located(os.fdopen(os.dup(fd), "rb"), m.offset_data, m.size)

    def exists(self, name: str) -> bool:
        return name in self.members


def open_image(target: str, tag: str | None = None, *, platform: str | None = None) -> Image:
    """The image `target` names (`oci:DIR[:TAG]`, `docker-archive:FILE`),
    its index, manifest and config checked against their digests and sizes.
    From an index of platforms: `platform`'s (`os/arch`, default this
    machine's), as a runtime on that machine picks it; never by what a
    bundle signs (the index is not signed).
    UsageError for a target of neither kind; FormatError, IntegrityError or
    SourceError naming the target for what does not hold."""
    parsed = parse_target(target)
    if parsed is None:
        raise UsageError(f"{target!r} is not an image (oci:DIR[:TAG] or docker-archive:FILE)")
    kind, path, named = parsed
    tag = tag or named
    if kind == "oci":
        if not os.path.isdir(path):
            raise SourceError("not a directory (an OCI image layout)", path)
        blobs: _Blobs = _Directory(path)
        image = _open_oci(target, blobs, tag, platform)
    else:
        archive = _Archive(path)
        try:
            if archive.exists("index.json") and archive.exists("oci-layout"):
                if archive.exists("repositories") and not archive.exists("manifest.json"):
                    raise IntegrityError(  # an older docker load reads the legacy image instead
                        "an OCI layout and a legacy `repositories` file without manifest.json: docker load "
                        "would read another image than the layout's",
                        archive.shown,
                    )
                image = _open_oci(target, archive, tag, platform)
                if archive.exists("manifest.json"):  # docker load reads this one: it must name the same image
                    _same_image(archive, image)
            else:
                image = _open_docker(target, archive)
        except BaseException:
            archive.tar.close()
            raise
        image.kind = "docker-archive"
        image.close = archive.tar.close
    return image


def _open_oci(target: str, blobs: _Blobs, tag: str | None, platform: str | None) -> Image:
    shown = blobs.shown
    layout = _json(blobs.read("oci-layout"), "oci-layout", shown)
    if layout.get("imageLayoutVersion") != "1.0.0":
        raise UnsupportedError(f"oci-layout: imageLayoutVersion {layout.get('imageLayoutVersion')!r}", shown)
    index = _json(blobs.read("index.json"), "index.json", shown)
    chosen = _choose(index, "index.json", tag, shown)
    picked = None
    while chosen.media_type in INDEX_TYPES:  # an index of platforms: this machine's
        nested = _json(_checked(blobs.read(blobs.blob(chosen.digest)), chosen, "image index", shown), "index", shown)
        chosen, picked = _by_platform(nested, chosen.digest, shown, platform)
    if chosen.media_type not in MANIFEST_TYPES:
        raise UnsupportedError(f"{chosen.digest}: media type {chosen.media_type!r} is not an image manifest", shown)
    manifest = _json(
        _checked(blobs.read(blobs.blob(chosen.digest)), chosen, "image manifest", shown), "manifest", shown
    )
    if manifest.get("schemaVersion") != 2:
        raise UnsupportedError("image manifest: schemaVersion is not 2", shown)
    if manifest.get("mediaType", chosen.media_type) != chosen.media_type:
        raise IntegrityError("image manifest: its mediaType is not the one its descriptor gives", shown)
    config_d = Descriptor.from_doc(manifest.get("config"), "manifest config")
    config = _json(_checked(blobs.read(blobs.blob(config_d.digest)), config_d, "image config", shown), "config", shown)
    docs = manifest.get("layers")
    if not isinstance(docs, list) or len(docs) > MAX_LAYERS:
        raise FormatError(f"image manifest: layers is not a list of at most {MAX_LAYERS}", shown)
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(docs):
        raise FormatError("image config: rootfs.diff_ids does not give one digest per layer of the manifest", shown)
    layers = []
    for i, (doc, diff) in enumerate(zip(docs, diff_ids, strict=True)):
        d = Descriptor.from_doc(doc, f"manifest layer {i}")
        if d.media_type not in LAYER_TYPES:
            raise UnsupportedError(f"layer {i} ({d.digest}): media type {d.media_type!r} is not a tar layer", shown)
        if not isinstance(diff, str) or not DIGEST.fullmatch(diff):
            raise FormatError(f"image config: diff_id {i} {str(diff)[:80]!r} is not a digest", shown)
        name = blobs.blob(d.digest)
        layers.append(Layer(i, d.digest, d.size, LAYER_TYPES[d.media_type], name, _opener(blobs, name),
                            diff_id=diff, locate=_locator(blobs, name)))  # fmt: skip
    return Image(target, "oci", chosen.digest, tag, layers, config, config_digest=config_d.digest, platform=picked)


def _opener(blobs: _Blobs, name: str) -> Callable[[], IO[bytes]]:
    return lambda: blobs.open(name)


def _locator(blobs: _Blobs, name: str) -> Callable[[], Located | None]:
    return lambda: blobs.locate(name)


def _choose(index: dict[str, Any], where: str, tag: str | None, shown: str) -> Descriptor:
    if index.get("schemaVersion") != 2:
        raise UnsupportedError(f"{where}: schemaVersion is not 2", shown)
    docs = index.get("manifests")
    if not isinstance(docs, list):
        raise FormatError(f"{where}: manifests is not a list", shown)
    found = [Descriptor.from_doc(d, f"{where} manifest {i}") for i, d in enumerate(docs)]
    if tag is not None:
        found = [d for d in found if d.annotations.get(REF_NAME) == tag]
        if not found:
            raise UsageError(f"no image is tagged {tag!r} here", shown)
    if len(found) != 1:
        tags = sorted({d.annotations.get(REF_NAME, "(untagged)") for d in found})
        what = "no image" if not found else f"{len(found)} images ({', '.join(tags)[:200]})"
        raise UsageError(f"{where} names {what}: name one as oci:DIR:TAG", shown)
    return found[0]


def machine_platform() -> tuple[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), platform.machine())
    return "linux", arch


def _by_platform(index: dict[str, Any], digest: str, shown: str, platform: str | None) -> tuple[Descriptor, str]:
    """The manifest for `platform` (default this machine's) in a nested
    index, and the platform, as `os/arch`."""
    docs = index.get("manifests")
    if index.get("schemaVersion") != 2 or not isinstance(docs, list):
        raise FormatError(f"image index {digest}: not a schemaVersion 2 index with manifests", shown)
    listed = [Descriptor.from_doc(doc, f"index {digest} manifest {i}") for i, doc in enumerate(docs)]
    where = f"image index {digest}"
    want = machine_platform()
    if platform is not None:
        os_name, sep, arch = platform.partition("/")
        if not sep or not os_name or not arch or "/" in arch:
            raise UsageError(f"platform {platform!r} is not OS/ARCH (linux/arm64)")
        want = (os_name, arch)
    found = []
    for d in listed:
        p = d.platform or {}
        if (p.get("os"), p.get("architecture")) == want:
            found.append(d)
    if len(found) != 1:
        what = "no manifest" if not found else f"{len(found)} manifests"
        raise IntegrityError(f"{where} has {what} for {'/'.join(want)}", shown)
    return found[0], "/".join(want)


def _same_image(archive: _Archive, image: Image) -> None:
    """An archive with both forms (Docker 25 and later write both) must name
    the same config and layers in each: `docker load` reads manifest.json."""
    from merkle.format import strictjson

    doc = strictjson.loads(archive.read("manifest.json"), "manifest.json", MAX_JSON)
    names = [layer.name for layer in image.layers]
    ok = isinstance(doc, list) and len(doc) == 1 and isinstance(doc[0], dict)
    config = image.config_digest.replace(":", "/", 1) if ok else ""
    if not ok or doc[0].get("Layers") != names or doc[0].get("Config") != f"blobs/{config}":
        raise IntegrityError("manifest.json names another image than index.json: docker load would read that one",
                             archive.shown)  # fmt: skip


def _open_docker(target: str, archive: _Archive) -> Image:
    shown = archive.shown
    from merkle.format import strictjson

    raw_manifest = archive.read("manifest.json") if archive.exists("manifest.json") else b"null"
    try:
        doc = strictjson.loads(raw_manifest, "manifest.json", MAX_JSON)
    except FormatError as e:
        raise FormatError(f"manifest.json: {e.message}", shown) from e
    if not isinstance(doc, list) or len(doc) != 1 or not isinstance(doc[0], dict):
        raise FormatError("manifest.json does not describe exactly one image", shown)
    entry = doc[0]
    config_name = entry.get("Config")
    m = re.fullmatch(r"(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json)?", str(config_name))
    if m is None:
        raise FormatError(f"manifest.json: Config {str(config_name)[:80]!r} is not named by its digest", shown)
    raw = archive.read(str(config_name))
    config_digest = "sha256:" + m.group(1)
    if "sha256:" + hashlib.sha256(raw).hexdigest() != config_digest:
        raise IntegrityError(f"image config {config_name} does not match its name", shown)
    config = _json(raw, "image config", shown)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    names = entry.get("Layers")
    if not isinstance(names, list) or not isinstance(diff_ids, list) or len(names) != len(diff_ids):
        raise FormatError("manifest.json's Layers and the config's rootfs.diff_ids do not pair up", shown)
    if len(names) > MAX_LAYERS:
        raise FormatError(f"more than {MAX_LAYERS} layers", shown)
    layers = []
    for i, (name, diff) in enumerate(zip(names, diff_ids, strict=True)):
        if not isinstance(name, str) or not isinstance(diff, str) or not DIGEST.fullmatch(diff):
            raise FormatError(f"layer {i}: a name and a sha256 diff_id are expected", shown)
        if not archive.exists(name):
            raise IntegrityError(f"layer {i} ({name}) is missing from the archive", shown)
        layers.append(Layer(i, diff, None, None, name, _opener(archive, name), locate=_locator(archive, name)))
    return Image(target, "docker-archive", config_digest, None, layers, config, config_digest=config_digest)


class HashingReader(io.RawIOBase):
    """Reads `inner`, hashing and counting what passes (a layer's digest is
    checked while the layer is read for something else)."""

    def __init__(self, inner: IO[bytes], digest: str) -> None:
        self.inner = inner
        self.hash = _hasher(digest)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self.inner.readinto(buffer)  # type: ignore[attr-defined]
        if got:
            self.hash.update(memoryview(buffer)[:got])
            self.count += got
        return got or 0

    def drain(self) -> None:
        while self.inner.read(1 << 20):
            pass

    def finish(self) -> None:
        """Read what is left, so the digest covers the whole blob."""
        buf = bytearray(1 << 20)
        while self.readinto(buf):
            pass


def layer_problem(layer: Layer, reader: HashingReader) -> str | None:
    """Why `layer`'s blob, fully read through `reader`, is not the one its
    descriptor names (size, then digest); None when it is."""
    if layer.size is not None and reader.count != layer.size:
        return f"{reader.count} bytes, its descriptor says {layer.size}"
    got = f"{layer.digest.split(':', 1)[0]}:{reader.hash.hexdigest()}"
    if got != layer.digest:
        return f"content {got}, not its digest {layer.digest}"
    return None


def check_blobs(image: Image) -> list[Outcome]:
    """Each layer read whole and checked against its digest and size: one
    outcome per layer, named `layer N (digest)`."""
    out = []
    for layer in image.layers:
        name = f"layer {layer.index} ({layer.digest})"
        try:
            with layer.open() as f:
                reader = HashingReader(f, layer.digest)
                reader.finish()
        except (IntegrityError, OSError) as e:
            out.append(Outcome(name, Status.ERROR, getattr(e, "message", None) or str(e)))
            continue
        problem = layer_problem(layer, reader)
        out.append(Outcome(name, Status.MISMATCH, problem) if problem else Outcome(name, Status.OK))
    return out


def blobs_of(image: Image) -> Iterator[str]:
    yield from (layer.digest for layer in image.layers)
