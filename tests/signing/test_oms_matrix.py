"""OpenSSF model-signing interop matrix: every cell is a real run of both
programs, the real `model_signing` CLI (model-signing 1.1.1) and the real
`merkle` program, on a tiny model.

Cell ids read `<direction>-<signer>-<case>`:
- direction `A`: merkle signs (`merkle build DIR --sign KEY --format oms -o B`),
  then both tools verify B; `B`: `model_signing sign` signs, then both verify.
  Cells about signing itself (`S-...`) run both signers on the same model.
- signer: `p256`, `p384`, `p521` (ECDSA keys), `self` (a self-signed P-384
  certificate), `chain` (root -> intermediate -> P-256 leaf), `chain521`
  (the same chain, P-521 leaf).
- case: the model's shape, the options on both sides, or what was done to the
  model or the bundle between signing and verifying.

Each cell asserts both tools' exit codes and that their verdicts agree, except
the cells of DELIBERATE, where merkle knowingly differs from model-signing 1.1.1:
there the actual behaviour of each tool is asserted.

Flags on each side (docs/signing.md O1-O14 says what each does in merkle):
sign-time ignores are merkle `--exclude` and model_signing `--ignore-paths`
(given as absolute paths: model_signing resolves them against its CWD);
verify-time ignores the same; unsigned extra files are accepted with merkle
`--allow-extra` and model_signing `--ignore_unsigned_files`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli, statuses

DELIBERATE: dict[str, str] = {
    "S-p256-empty-model": (
        "OMS 6.1 says an empty model MUST be rejected: merkle refuses to sign it (exit 2, nothing written); "
        "model-signing 1.1.1 signs it with `resources: []`"
    ),
    "B-p256-empty-model": (
        "model-signing 1.1.1's bundle of an empty model (`resources: []`) verifies with model_signing on the "
        "empty folder; merkle refuses an OMS statement of no file (OMS 5.2.1: at least one resource)"
    ),
    "B-p256-empty-bundle-allow-extra": (
        "the same empty bundle with the ignore-unsigned option on a folder of files: model_signing passes "
        "vacuously (it checks no file), merkle refuses a statement of no file with or without --allow-extra"
    ),
    "S-p256-only-ignored-files": (
        "a model holding only default-ignored files (.git, .gitignore) is empty after exclusions: merkle refuses "
        "to sign it, model-signing 1.1.1 signs `resources: []`"
    ),
    "A-chain-intermediate-as-root": (
        "trusting only the intermediate CA: merkle takes every --ca certificate as a trust anchor "
        "(cryptography's path builder), model-signing 1.1.1 builds the chain with OpenSSL's defaults and "
        "needs a self-signed root (`unable to get issuer certificate`)"
    ),
    "B-chain-intermediate-as-root": "as A-chain-intermediate-as-root, on model-signing's bundle",
    "A-expired-leaf-policy": (
        "an expired leaf: merkle checks the chain now (OMS 8.2: the leaf MUST be within its validity period); "
        "model-signing 1.1.1 checks it at the leaf's notBefore and accepts it"
    ),
    "B-expired-leaf-policy": "as A-expired-leaf-policy, on model-signing's bundle",
    "A-kuonly-leaf-policy": (
        "a leaf with key usage digitalSignature and no extended key usage: model-signing 1.1.1 accepts either; "
        "merkle requires extended key usage codeSigning (Sigstore's rule)"
    ),
    "B-kuonly-leaf-policy": "as A-kuonly-leaf-policy, on model-signing's bundle",
    "B-p256-only-ignored-files": (
        "model-signing 1.1.1's bundle of a model empty after exclusions: model_signing verifies it, merkle "
        "refuses an OMS statement of no file"
    ),
}

MODEL_SIGNING = Path(sys.executable).parent / "model_signing"
OMS_PREDICATE = "https://model_signing/signature/v1.0"
TOOLS = ("merkle", "model_signing")
GIT_DEFAULTS = {".git", ".gitignore", ".gitattributes", ".github"}


# -- keys and certificates, made by openssl once per module -----------------------------------------


def openssl(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, cwd=cwd, timeout=60)
    assert r.returncode == 0, (args, r.stderr.decode())
    return r.stdout


def ec_keypair(d: Path, name: str, curve: str) -> tuple[Path, Path]:
    raw = openssl("ecparam", "-name", curve, "-genkey", "-noout")
    key, pub = d / f"{name}.pem", d / f"{name}.pub.pem"
    key.write_bytes(openssl("pkcs8", "-topk8", "-nocrypt", stdin=raw))
    pub.write_bytes(openssl("ec", "-pubout", stdin=key.read_bytes()))
    return key, pub


LEAF_EXT = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""
CA_EXT = """basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


def self_signed(d: Path, name: str, key: Path, cn: str, *extra: str) -> Path:
    out = d / f"{name}.crt.pem"
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-days", "30", "-out", str(out),
        "-addext", "basicConstraints=critical,CA:TRUE", *extra,
    )  # fmt: skip
    return out


def issue(d: Path, name: str, key: Path, cn: str, ca: Path, ca_key: Path, ext: str) -> Path:
    csr, out, ext_file = d / f"{name}.csr", d / f"{name}.crt.pem", d / f"{name}.ext"
    ext_file.write_text(ext)
    openssl("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-set_serial",
        str(int.from_bytes(os.urandom(8), "big")), "-days", "30", "-extfile", str(ext_file), "-out", str(out),
    )  # fmt: skip
    return out


@dataclass(frozen=True)
class Signer:
    """One way of signing, and what a verifier is told to trust for it."""

    name: str
    key: Path
    pub: Path
    cert: Path | None = None  # the leaf, for certificate signing
    chain: tuple[Path, ...] = ()  # intermediates, leaf's issuer first
    root: Path | None = None  # the trust anchor a verifier is given

    def merkle_sign(self) -> list[str]:
        args = ["--sign", str(self.key)]
        if self.cert:
            args += ["--cert", str(self.cert)]
            for c in self.chain:
                args += ["--cert-chain", str(c)]
        return args

    def ms_sign(self, model: Path) -> list[str]:
        if not self.cert:
            return ["sign", "key", str(model), "--private_key", str(self.key)]
        # model-signing 1.1.1 needs --certificate_chain (without it: "Unable to load PEM file"); a
        # self-signed certificate is its own chain.
        chain = self.chain or (self.cert,)
        args = ["sign", "certificate", str(model), "--private_key", str(self.key)]
        args += ["--signing_certificate", str(self.cert)]
        for c in chain:
            args += ["--certificate_chain", str(c)]
        return args

    def merkle_trust(self) -> list[str]:
        return ["--ca", str(self.root)] if self.cert else ["--key", str(self.pub)]

    def ms_verify(self, model: Path) -> list[str]:
        if self.cert:
            return ["verify", "certificate", str(model), "--certificate_chain", str(self.root)]
        return ["verify", "key", str(model), "--public_key", str(self.pub)]


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> dict[str, Path | Signer]:
    d = tmp_path_factory.mktemp("pki")
    out: dict[str, Path | Signer] = {}
    keys = {}
    for name, curve in (("p256", "prime256v1"), ("p384", "secp384r1"), ("p521", "secp521r1")):
        keys[name] = ec_keypair(d, name, curve)
        out[name] = Signer(name, *keys[name])
        # Another key on the same curve, for the wrong-key cells.
        out[f"other-{name}"] = ec_keypair(d, f"other-{name}", curve)[1]
    root_key, _ = ec_keypair(d, "root", "prime256v1")
    int_key, _ = ec_keypair(d, "int", "prime256v1")
    root = self_signed(d, "root", root_key, "Matrix Root", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    inter = issue(d, "int", int_key, "Matrix Intermediate", root, root_key, CA_EXT)
    leaf = issue(d, "leaf", keys["p256"][0], "leaf@example.com", inter, int_key, LEAF_EXT)
    leaf521 = issue(d, "leaf521", keys["p521"][0], "leaf521@example.com", inter, int_key, LEAF_EXT)
    self_cert = self_signed(
        d, "self", keys["p384"][0], "Matrix Self Signed",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign", "-addext", "extendedKeyUsage=codeSigning",
    )  # fmt: skip
    out["self"] = Signer("self", *keys["p384"], cert=self_cert, root=self_cert)
    out["chain"] = Signer("chain", *keys["p256"], cert=leaf, chain=(inter,), root=root)
    out["chain521"] = Signer("chain521", *keys["p521"], cert=leaf521, chain=(inter,), root=root)
    other_root_key, _ = ec_keypair(d, "other-root", "prime256v1")
    out["other-root"] = self_signed(
        d, "other-root", other_root_key, "Matrix Root", "-addext", "keyUsage=critical,keyCertSign,cRLSign"
    )
    out["leaf"] = leaf
    for name, signer in dated_chain(d, keys["p256"]).items():
        out[name] = signer
    return out


def dated_chain(d: Path, key: tuple[Path, Path]) -> dict[str, Signer]:
    """Leaves whose validity or usage differ, under their own root and
    intermediate (valid from ten days ago): made with `cryptography`, as
    OpenSSL 3.0's `x509 -req` cannot set a start date in the past."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def usage(sign: bool = False, ca: bool = False, encipher: bool = False) -> x509.KeyUsage:
        return x509.KeyUsage(sign, False, encipher, False, False, ca, ca, False, False)

    def make(cn, public, issuer, issuer_key, days, ca, ku, eku=None) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(ku, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        )
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def write(name: str, cert: x509.Certificate) -> Path:
        (d / f"{name}.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return d / f"{name}.crt.pem"

    leaf_key = serialization.load_pem_private_key(key[0].read_bytes(), None)
    root_key, int_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = write(
        "dated-root", make("Dated Root", root_key.public_key(), "Dated Root", root_key, (-10, 10), True, usage(ca=True))
    )
    inter = write(
        "dated-int", make("Dated Int", int_key.public_key(), "Dated Root", root_key, (-10, 10), True, usage(ca=True))
    )
    code = [ExtendedKeyUsageOID.CODE_SIGNING]
    leaves = {
        "expired": ((-5, -1), usage(sign=True), code),  # expired yesterday, valid when issued
        "kuonly": ((-1, 5), usage(sign=True), None),  # key usage digitalSignature, no extended key usage
        "server": ((-1, 5), usage(encipher=True), [ExtendedKeyUsageOID.SERVER_AUTH]),  # a TLS server's
    }
    out = {}
    for name, (days, ku, eku) in leaves.items():
        leaf = write(
            name, make(f"{name}@example.com", leaf_key.public_key(), "Dated Int", int_key, days, False, ku, eku)
        )
        out[name] = Signer(name, *key, cert=leaf, chain=(inter,), root=root)
    return out


# -- running the two programs ---------------------------------------------------------------------


def ms(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert MODEL_SIGNING.exists(), MODEL_SIGNING
    return subprocess.run(
        [str(MODEL_SIGNING), *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=cwd
    )


def shown(r: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, r.args))}\n-> {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"


@dataclass
class Cell:
    """One cell: its id, the signer, the direction, and a scratch folder
    (model_signing runs there, so nothing it resolves against its CWD lies
    in a model)."""

    id: str
    direction: str  # "A": merkle signs; "B": model_signing signs; "S": both sign
    signer: Signer
    work: Path
    material: dict
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def model(self, files: dict[str, bytes | None], name: str = "model") -> Path:
        """A model folder: {relative path: content}; None content makes a folder."""
        root = self.work / name
        root.mkdir()
        for rel, data in files.items():
            p = root / rel
            if data is None:
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        return root

    def sign_merkle(self, model: Path, bundle: Path, ignore: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        args = ["build", str(model), *self.signer.merkle_sign(), "--format", "oms", "-o", str(bundle)]
        for p in ignore:
            args += ["--exclude", p]
        r = run_cli(*args, cwd=self.work)
        self.runs.append(r)
        return r

    def sign_ms(self, model: Path, bundle: Path, ignore: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        args = [*self.signer.ms_sign(model), "--signature", str(bundle)]
        for p in ignore:
            args += ["--ignore-paths", str(model / p)]
        r = ms(*args, cwd=self.work)
        self.runs.append(r)
        return r

    def sign(self, model: Path, bundle: Path | None = None, ignore: tuple[str, ...] = ()) -> Path:
        """Sign with this cell's direction; the signing must succeed."""
        bundle = bundle or self.work / "bundle.sig"
        assert self.direction in ("A", "B")
        r = (self.sign_merkle if self.direction == "A" else self.sign_ms)(model, bundle, ignore)
        assert r.returncode == 0, "signing failed:\n" + shown(r)
        assert statement(bundle)["predicateType"] == OMS_PREDICATE
        return bundle

    def verify(
        self,
        model: Path,
        bundle: Path,
        ignore: tuple[str, ...] = (),
        allow_extra: bool = False,
        merkle_trust: list[str] | None = None,
        ms_verify: list[str] | None = None,
    ) -> dict[str, subprocess.CompletedProcess[str]]:
        """Both verifiers on the same model and bundle, with the same options."""
        args = ["verify", str(model), str(bundle), *(merkle_trust or self.signer.merkle_trust())]
        for p in ignore:
            args += ["--exclude", p]
        if allow_extra:
            args.append("--allow-extra")
        m = run_cli(*args, cwd=self.work)
        margs = [*(ms_verify or self.signer.ms_verify(model)), "--signature", str(bundle)]
        for p in ignore:
            margs += ["--ignore-paths", str(model / p)]
        if allow_extra:
            margs.append("--ignore_unsigned_files")
        s = ms(*margs, cwd=self.work)
        self.runs += [m, s]
        return {"merkle": m, "model_signing": s}

    def judge(self, got: dict[str, subprocess.CompletedProcess[str]], want: dict[str, int] | int) -> None:
        """Both tools' exit codes are what `want` says, and their verdicts
        agree unless the cell is a DELIBERATE difference."""
        if isinstance(want, int):
            want = dict.fromkeys(TOOLS, want)
        codes = {t: got[t].returncode for t in TOOLS}
        detail = "\n".join(shown(r) for r in self.runs)
        assert codes == want, f"{self.id}: exit codes {codes}, expected {want}\n{detail}"
        verdicts = {t: codes[t] == 0 for t in TOOLS}
        if self.id in DELIBERATE:
            assert verdicts["merkle"] != verdicts["model_signing"], f"{self.id} is listed in DELIBERATE but agrees"
        else:
            assert verdicts["merkle"] == verdicts["model_signing"], f"{self.id}: the tools disagree\n{detail}"
        assert "Traceback" not in got["merkle"].stderr, got["merkle"].stderr


def statement(bundle: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(bundle.read_bytes())["dsseEnvelope"]["payload"]))


def resources(bundle: Path) -> set[str]:
    return {r["name"] for r in statement(bundle)["predicate"]["resources"]}


def ignore_paths(bundle: Path) -> set[str]:
    return set(statement(bundle)["predicate"]["serialization"].get("ignore_paths", []))


def content_failure(r: subprocess.CompletedProcess[str], expected: dict[str, str]) -> None:
    """merkle's verdict on a signed bundle whose content differs: exit 1, the
    differing paths on stdout with their symbol, and one line on stderr saying
    it failed (beside the line that says whose signature it checked)."""
    assert r.returncode == 1, shown(r)
    assert "Traceback" not in r.stderr
    got = statuses(r.stdout)
    for path, symbol in expected.items():
        assert got.get(path) == symbol, (path, symbol, shown(r))
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("merkle: signature ok: "), shown(r)  # the content was judged
    problems = [x for x in lines if not x.startswith("merkle: signature ok: ")]
    assert len(problems) == 1 and problems[0].startswith(("merkle: FAILED", "merkle: error: ")), shown(r)


def signature_failure(r: subprocess.CompletedProcess[str], bundle: Path) -> None:
    """merkle's verdict on a bundle it does not trust: exit 1, one line on
    stderr naming the bundle, nothing of the content read."""
    assert r.returncode == 1, shown(r)
    assert_one_line_error(r, str(bundle))
    assert r.stdout == "", shown(r)


# -- the models -----------------------------------------------------------------------------------

BASIC = {
    "config.json": b'{"hidden_size": 8}\n',
    "weights.bin": bytes(range(256)) * 3,
    "sub/deep/tensor.bin": b"\x00\x01\x02tensor",
    "empty.txt": b"",
    "vocabulário.txt": b"a\nb\n",
}

SHAPES: dict[str, dict[str, bytes | None]] = {
    "nested": {
        "top.bin": b"top",
        "a/one.bin": b"1",
        "a/b/two.bin": b"2",
        "a/b/c/d/e/three.bin": b"3",
        "a-c": b"sorts between a/ and a.txt by code point",
        "a.txt": b"dot",
        "z/empty-folder": None,
    },
    "dotfiles": {
        ".hidden": b"h",
        ".config/settings.json": b"{}",
        "sub/.env": b"X=1",
        "sub/.gitkeep": b"",
        ".DS_Store": b"mac",
        "__pycache__/m.cpython-311.pyc": b"pyc",
        ".cache/pip/x": b"cache",
        "model.bin": b"m",
    },
    "special-names": {
        "with space.bin": b"s",
        "hash#1.bin": b"h",
        "percent%20.bin": b"p",
        "naïve/日本語.txt": b"ja",
        "Ünïcödé dir/ße & co.json": b"{}",
        "semi;colon,comma=eq+plus@at!.txt": b"x",
        "brackets[1](2){3}.txt": b"b",
        "quote'apostrophe.txt": b"q",
        "emoji-🙂.txt": b"e",
    },
    "empty-files": {
        "empty.bin": b"",
        "sub/empty.json": b"",
        "sub/deeper/also-empty": b"",
        "nonempty.bin": b"1",
    },
}


# -- the cells ------------------------------------------------------------------------------------

Case = Callable[[Cell], None]
CASES: dict[str, Case] = {}
# case -> (directions, signers)
PLAN: dict[str, tuple[str, tuple[str, ...]]] = {}


def case(directions: str = "AB", signers: tuple[str, ...] = ("p256",)) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        name = fn.__name__.removeprefix("case_").replace("_", "-")
        CASES[name] = fn
        PLAN[name] = (directions, signers)
        return fn

    return register


ALL_SIGNERS = ("p256", "p384", "p521", "self", "chain", "chain521")


@case(signers=ALL_SIGNERS)
def case_basic(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    assert resources(b) == set(BASIC)
    got = c.verify(model, b)
    c.judge(got, 0)
    assert statuses(got["merkle"].stdout) == dict.fromkeys(BASIC, "=")


@case()
def case_single_file(c: Cell) -> None:
    """The model path is a file. model-signing 1.1.1 names the resource "."
    and the subject the file's name; the spec says the basename."""
    folder = c.model({"weights.bin": b"single file weights"})
    model = folder / "weights.bin"
    b = c.sign(model)
    assert statement(b)["subject"][0]["name"] == "weights.bin"
    assert resources(b) == {"."}  # as model-signing 1.1.1 writes it (docs/signing.md O6)
    c.judge(c.verify(model, b), 0)


@case()
def case_single_file_allow_extra(c: Cell) -> None:
    """The ignore-unsigned option on a single-file model: model-signing 1.1.1
    then hashes `model / name`, which for "." is the file itself."""
    folder = c.model({"weights.bin": b"single file weights", "beside.bin": b"not in the model"})
    model = folder / "weights.bin"
    b = c.sign(model)
    c.judge(c.verify(model, b, allow_extra=True), 0)


@case()
def case_single_file_changed(c: Cell) -> None:
    folder = c.model({"weights.bin": b"single file weights"})
    model = folder / "weights.bin"
    b = c.sign(model)
    model.write_bytes(b"single file weightz")
    got = c.verify(model, b)
    c.judge(got, 1)
    content_failure(got["merkle"], {})


def _shape(name: str) -> Case:
    def run(c: Cell) -> None:
        files = SHAPES[name]
        model = c.model(files)
        b = c.sign(model)
        signed = {p for p, data in files.items() if data is not None}
        assert resources(b) == signed
        got = c.verify(model, b)
        c.judge(got, 0)
        assert statuses(got["merkle"].stdout) == dict.fromkeys(signed, "=")

    run.__name__ = "case_" + name.replace("-", "_")
    return run


for _name in SHAPES:
    case()(_shape(_name))


@case(directions="S")
def case_empty_model(c: Cell) -> None:
    """Both signers on an empty folder."""
    model = c.model({})
    m = c.sign_merkle(model, c.work / "m.sig")
    s = c.sign_ms(model, c.work / "s.sig")
    c.judge({"merkle": m, "model_signing": s}, {"merkle": 2, "model_signing": 0})
    assert_one_line_error(m, "no file to sign")
    assert not (c.work / "m.sig").exists()
    assert statement(c.work / "s.sig")["predicate"]["resources"] == []


@case(directions="B")
def case_empty_model_(c: Cell) -> None:
    """model_signing's bundle of an empty folder, verified on that folder."""
    model = c.model({})
    b = c.sign(model)
    assert resources(b) == set()
    got = c.verify(model, b)
    c.judge(got, {"merkle": 1, "model_signing": 0})
    assert_one_line_error(got["merkle"], str(b), "no file")


@case(directions="B")
def case_empty_bundle_allow_extra(c: Cell) -> None:
    empty = c.model({}, name="empty")
    b = c.sign(empty)
    model = c.model(BASIC)
    got = c.verify(model, b, allow_extra=True)
    c.judge(got, {"merkle": 1, "model_signing": 0})
    assert_one_line_error(got["merkle"], str(b))


@case(directions="S")
def case_only_ignored_files(c: Cell) -> None:
    model = c.model({".git/HEAD": b"ref: refs/heads/main\n", ".gitignore": b"*.tmp\n"})
    m = c.sign_merkle(model, c.work / "m.sig")
    s = c.sign_ms(model, c.work / "s.sig")
    c.judge({"merkle": m, "model_signing": s}, {"merkle": 2, "model_signing": 0})
    assert "Traceback" not in m.stderr and len(m.stderr.strip().splitlines()) == 1, shown(m)
    assert not (c.work / "m.sig").exists()


@case(directions="B")
def case_only_ignored_files_(c: Cell) -> None:
    model = c.model({".git/HEAD": b"ref: refs/heads/main\n", ".gitignore": b"*.tmp\n"})
    b = c.sign(model)
    got = c.verify(model, b)
    c.judge(got, {"merkle": 1, "model_signing": 0})
    assert_one_line_error(got["merkle"], str(b))


@case()
def case_sign_ignore(c: Cell) -> None:
    """Sign-time ignores (a folder, a top-level file, a nested file) are left
    out and recorded; what they cover may then change or appear freely."""
    model = c.model({**BASIC, "logs/run.txt": b"step 1", "scratch.tmp": b"x", "sub/deep/skip.bin": b"s"})
    ignored = ("logs", "scratch.tmp", "sub/deep/skip.bin")
    b = c.sign(model, ignore=ignored)
    assert resources(b) == set(BASIC)
    assert set(ignored) <= ignore_paths(b), ignore_paths(b)
    (model / "logs" / "run.txt").write_bytes(b"step 2")
    (model / "logs" / "new.txt").write_bytes(b"new")
    (model / "scratch.tmp").write_bytes(b"y")
    (model / "sub" / "deep" / "skip.bin").unlink()
    got = c.verify(model, b)
    c.judge(got, 0)
    assert statuses(got["merkle"].stdout) == dict.fromkeys(BASIC, "=")


@case()
def case_verify_ignore(c: Cell) -> None:
    """Unsigned files and a folder that appear after signing, hidden by
    verify-time ignores."""
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "notes.txt").write_bytes(b"unsigned")
    (model / "cache").mkdir()
    (model / "cache" / "x.bin").write_bytes(b"unsigned")
    (model / "sub" / "deep" / "later.bin").write_bytes(b"unsigned")
    got = c.verify(model, b, ignore=("notes.txt", "cache", "sub/deep/later.bin"))
    c.judge(got, 0)
    assert statuses(got["merkle"].stdout) == dict.fromkeys(BASIC, "=")


@case()
def case_verify_ignore_names_signed_file(c: Cell) -> None:
    """A verify-time ignore naming a signed file must not hide a change to it."""
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "config.json").write_bytes(b'{"hidden_size": 9}\n')
    got = c.verify(model, b, ignore=("config.json",))
    c.judge(got, 1)
    content_failure(got["merkle"], {"config.json": "*"})


@case()
def case_verify_ignore_names_signed_folder(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "sub" / "deep" / "tensor.bin").write_bytes(b"changed")
    got = c.verify(model, b, ignore=("sub",))
    c.judge(got, 1)
    content_failure(got["merkle"], {"sub/deep/tensor.bin": "*"})


@case()
def case_extra_file(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "sub" / "extra.bin").write_bytes(b"x")
    got = c.verify(model, b)
    c.judge(got, 1)
    content_failure(got["merkle"], {"sub/extra.bin": "+"})


@case()
def case_extra_file_allowed(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "sub" / "extra.bin").write_bytes(b"x")
    (model / "extra-top.bin").write_bytes(b"y")
    got = c.verify(model, b, allow_extra=True)
    c.judge(got, 0)
    assert {p: s for p, s in statuses(got["merkle"].stdout).items() if p in BASIC} == dict.fromkeys(BASIC, "=")


@case()
def case_extra_allowed_but_signed_changed(c: Cell) -> None:
    """The ignore-unsigned option still checks every signed file (OMS 8.5)."""
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "extra.bin").write_bytes(b"x")
    (model / "weights.bin").write_bytes(b"changed")
    got = c.verify(model, b, allow_extra=True)
    c.judge(got, 1)
    content_failure(got["merkle"], {"weights.bin": "*"})


@case()
def case_extra_allowed_but_signed_missing(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "extra.bin").write_bytes(b"x")
    (model / "empty.txt").unlink()
    got = c.verify(model, b, allow_extra=True)
    c.judge(got, 1)
    content_failure(got["merkle"], {"empty.txt": "-"})


@case()
def case_missing_file(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "sub" / "deep" / "tensor.bin").unlink()
    got = c.verify(model, b)
    c.judge(got, 1)
    content_failure(got["merkle"], {"sub/deep/tensor.bin": "-"})


@case()
def case_changed_file(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "vocabulário.txt").write_bytes(b"a\nc\n")
    got = c.verify(model, b)
    c.judge(got, 1)
    content_failure(got["merkle"], {"vocabulário.txt": "*"})


@case()
def case_signature_inside(c: Cell) -> None:
    """The bundle written inside the model: left out and recorded by both signers."""
    model = c.model(BASIC)
    b = c.sign(model, bundle=model / "model.sig")
    assert "model.sig" not in resources(b)
    assert "model.sig" in ignore_paths(b)
    got = c.verify(model, b)
    c.judge(got, 0)
    assert "model.sig" not in statuses(got["merkle"].stdout)


@case()
def case_signature_inside_subfolder(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model, bundle=model / "sub" / "model.sig")
    assert "sub/model.sig" not in resources(b)
    assert "sub/model.sig" in ignore_paths(b)
    c.judge(c.verify(model, b), 0)


@case(directions="S")
def case_symlink(c: Cell) -> None:
    """A symbolic link in the model: both signers refuse by default."""
    model = c.model(BASIC)
    (model / "link.bin").symlink_to("weights.bin")
    m = c.sign_merkle(model, c.work / "m.sig")
    s = c.sign_ms(model, c.work / "s.sig")
    c.judge({"merkle": m, "model_signing": s}, {"merkle": 2, "model_signing": 1})
    assert_one_line_error(m, "link.bin", "symbolic link")
    assert not (c.work / "m.sig").exists()


@case(directions="S")
def case_symlink_to_folder(c: Cell) -> None:
    model = c.model(BASIC)
    (model / "linked").symlink_to("sub", target_is_directory=True)
    m = c.sign_merkle(model, c.work / "m.sig")
    s = c.sign_ms(model, c.work / "s.sig")
    c.judge({"merkle": m, "model_signing": s}, {"merkle": 2, "model_signing": 1})
    assert_one_line_error(m, "linked", "symbolic link")


@case()
def case_symlink_added(c: Cell) -> None:
    """A link that appears after signing: both verifiers refuse it."""
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "link.bin").symlink_to("weights.bin")
    got = c.verify(model, b)
    c.judge(got, 1)
    content_failure(got["merkle"], {"link.bin": "+"})


@case()
def case_symlink_replaces_signed_file(c: Cell) -> None:
    """A signed file replaced by a link to a copy of its content."""
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "copy").write_bytes((model / "weights.bin").read_bytes())
    (model / "weights.bin").unlink()
    (model / "weights.bin").symlink_to("copy")
    got = c.verify(model, b, ignore=("copy",))
    # merkle: a listed path a refused link stands in for is `!`, exit 2 (docs/cli.md, exit status).
    c.judge(got, {"merkle": 2, "model_signing": 1})
    assert statuses(got["merkle"].stdout)["weights.bin"] == "!", shown(got["merkle"])


@case()
def case_hf_local_dir_cache(c: Cell) -> None:
    """A Hugging Face local_dir's `.cache/huggingface` bookkeeping: merkle
    recognises the layout and records the folder in ignore_paths (docs/hf.md
    HF10), model-signing signs it as any folder; either bundle verifies with
    both tools."""
    model = c.model({**BASIC, ".cache/huggingface/download/weights.bin.metadata": b"etag\n"})
    b = c.sign(model)
    bookkeeping = ".cache/huggingface/download/weights.bin.metadata"
    if c.direction == "A":
        assert bookkeeping not in resources(b) and ".cache/huggingface" in ignore_paths(b)
    else:
        assert bookkeeping in resources(b)
    c.judge(c.verify(model, b), 0)


@case()
def case_hf_local_dir_cache_changed(c: Cell) -> None:
    """The bookkeeping changed after signing: left out of merkle's bundle
    (so both pass), signed in model-signing's (so both fail)."""
    model = c.model({**BASIC, ".cache/huggingface/download/weights.bin.metadata": b"etag\n"})
    b = c.sign(model)
    (model / ".cache" / "huggingface" / "download" / "weights.bin.metadata").write_bytes(b"etag2\n")
    got = c.verify(model, b)
    if c.direction == "A":
        c.judge(got, 0)
    else:
        c.judge(got, 1)
        content_failure(got["merkle"], {".cache/huggingface/download/weights.bin.metadata": "*"})


GIT_TREE = {
    ".git/HEAD": b"ref: refs/heads/main\n",
    ".git/objects/ab/cdef": b"blob",
    ".gitignore": b"*.tmp\n",
    ".gitattributes": b"*.bin filter=lfs\n",
    ".github/workflows/ci.yml": b"on: push\n",
    "sub/.git/x": b"nested git is signed",
    "sub/.gitignore": b"nested gitignore is signed",
    ".gitmodules": b"not a default ignore",
}


@case()
def case_git_defaults(c: Cell) -> None:
    """The four top-level defaults are left out (and recorded); a nested
    sub/.git and anything else is signed; the defaults may then change."""
    model = c.model({**BASIC, **GIT_TREE})
    b = c.sign(model)
    signed = set(BASIC) | {"sub/.git/x", "sub/.gitignore", ".gitmodules"}
    assert resources(b) == signed
    assert GIT_DEFAULTS <= ignore_paths(b), ignore_paths(b)
    (model / ".git" / "HEAD").write_bytes(b"ref: refs/heads/other\n")
    (model / ".github" / "new.yml").write_bytes(b"x")
    (model / ".gitignore").unlink()
    got = c.verify(model, b)
    c.judge(got, 0)
    assert statuses(got["merkle"].stdout) == dict.fromkeys(signed, "=")


@case()
def case_git_nested_changed(c: Cell) -> None:
    model = c.model({**BASIC, **GIT_TREE})
    b = c.sign(model)
    (model / "sub" / ".git" / "x").write_bytes(b"changed")
    got = c.verify(model, b)
    c.judge(got, 1)
    content_failure(got["merkle"], {"sub/.git/x": "*"})


@case()
def case_git_nested_added(c: Cell) -> None:
    """An unsigned file in a nested .git is an extra file for both."""
    model = c.model(BASIC)
    b = c.sign(model)
    (model / "sub" / ".git").mkdir()
    (model / "sub" / ".git" / "HEAD").write_bytes(b"ref")
    got = c.verify(model, b)
    c.judge(got, 1)
    content_failure(got["merkle"], {"sub/.git/HEAD": "+"})


# -- negative cells about the signature -----------------------------------------------------------


@case(signers=("p256", "self", "chain"))
def case_tampered_payload(c: Cell) -> None:
    """The bundle's base64 payload edited (a resource digest changed to the
    digest of other content), its signature left as it was; the model is
    changed to match the edit, so only the signature can catch it."""
    model = c.model(BASIC)
    b = c.sign(model)
    doc = json.loads(b.read_bytes())
    stmt = statement(b)
    forged = b'{"hidden_size": 1024}\n'
    for r in stmt["predicate"]["resources"]:
        if r["name"] == "config.json":
            r["digest"] = hashlib.sha256(forged).hexdigest()
    joined = b"".join(bytes.fromhex(r["digest"]) for r in stmt["predicate"]["resources"])
    stmt["subject"][0]["digest"]["sha256"] = hashlib.sha256(joined).hexdigest()
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt, indent=2).encode()).decode()
    b.write_text(json.dumps(doc))
    (model / "config.json").write_bytes(forged)
    got = c.verify(model, b)
    c.judge(got, 1)
    signature_failure(got["merkle"], b)


@case(signers=("p256", "p384", "p521"))
def case_wrong_key(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    other = c.material[f"other-{c.signer.name}"]
    got = c.verify(
        model,
        b,
        merkle_trust=["--key", str(other)],
        ms_verify=["verify", "key", str(model), "--public_key", str(other)],
    )
    c.judge(got, 1)
    signature_failure(got["merkle"], b)


@case(signers=("self", "chain"))
def case_wrong_root(c: Cell) -> None:
    model = c.model(BASIC)
    b = c.sign(model)
    other = c.material["other-root"]
    got = c.verify(
        model,
        b,
        merkle_trust=["--ca", str(other)],
        ms_verify=["verify", "certificate", str(model), "--certificate_chain", str(other)],
    )
    c.judge(got, 1)
    signature_failure(got["merkle"], b)


@case(signers=("chain",))
def case_intermediate_as_root(c: Cell) -> None:
    """Trusting only the intermediate (DELIBERATE)."""
    model = c.model(BASIC)
    b = c.sign(model)
    inter = c.signer.chain[0]
    got = c.verify(
        model,
        b,
        merkle_trust=["--ca", str(inter)],
        ms_verify=["verify", "certificate", str(model), "--certificate_chain", str(inter)],
    )
    c.judge(got, {"merkle": 0, "model_signing": 1})
    assert "unable to get issuer certificate" in got["model_signing"].stderr


@case(signers=("p256",))
def case_certificate_as_key(c: Cell) -> None:
    """A key-signed bundle verified with a certificate (of that very key)
    given as the public key."""
    model = c.model(BASIC)
    b = c.sign(model)
    leaf = c.material["leaf"]
    got = c.verify(
        model, b, merkle_trust=["--key", str(leaf)], ms_verify=["verify", "key", str(model), "--public_key", str(leaf)]
    )
    c.judge(got, 1)
    assert_one_line_error(got["merkle"], str(leaf))


@case(signers=("chain",))
def case_certificate_bundle_with_key(c: Cell) -> None:
    """A certificate bundle verified with the leaf's public key (`verify key`,
    `--key`): model-signing 1.1.1 fails (the bundle carries no publicKey);
    OMS 11.1 says the verification material must match the method."""
    model = c.model(BASIC)
    b = c.sign(model)
    pub = c.signer.pub
    got = c.verify(
        model, b, merkle_trust=["--key", str(pub)], ms_verify=["verify", "key", str(model), "--public_key", str(pub)]
    )
    c.judge(got, 1)
    signature_failure(got["merkle"], b)


@case(signers=("p256",))
def case_key_bundle_with_ca(c: Cell) -> None:
    """A key bundle verified with only a CA trusted."""
    model = c.model(BASIC)
    b = c.sign(model)
    root = c.material["chain"].root
    got = c.verify(
        model,
        b,
        merkle_trust=["--ca", str(root)],
        ms_verify=["verify", "certificate", str(model), "--certificate_chain", str(root)],
    )
    c.judge(got, 1)
    signature_failure(got["merkle"], b)


CERTIFICATE_POLICY = {
    "expired": {"merkle": 1, "model_signing": 0},
    "kuonly": {"merkle": 1, "model_signing": 0},
    "server": {"merkle": 1, "model_signing": 1},
}


@case(signers=tuple(CERTIFICATE_POLICY))
def case_leaf_policy(c: Cell) -> None:
    """Leaves a verifier may refuse: expired (model-signing 1.1.1 checks the
    chain at the leaf's notBefore; merkle now, OMS 8.2), key usage
    digitalSignature without extended key usage (1.1.1 accepts either;
    merkle requires codeSigning), and a TLS server certificate (neither)."""
    model = c.model(BASIC)
    b = c.sign(model)
    got = c.verify(model, b)
    c.judge(got, CERTIFICATE_POLICY[c.signer.name])
    signature_failure(got["merkle"], b)
    if c.signer.name == "server":
        assert "cannot be used for signing" in got["model_signing"].stderr


# -- the matrix -----------------------------------------------------------------------------------


def _cells() -> list:
    out = []
    for name, (directions, signers) in PLAN.items():
        for d in directions:
            for s in signers:
                out.append(pytest.param(d, s, name, id=f"{d}-{s}-{name.rstrip('-')}"))
    return out


CELLS = _cells()


def test_deliberate_differences_are_cells():
    ids = {p.id for p in CELLS}
    assert set(DELIBERATE) <= ids, set(DELIBERATE) - ids
    assert len(ids) == len(CELLS)


def test_the_cli_runs_this_trees_merkle():
    """run_cli runs `python -m merkle`: it must import the merkle beside
    these tests (a worktree sets PYTHONPATH to itself), not another checkout."""
    here = Path(__file__).resolve().parents[2] / "merkle" / "__init__.py"
    r = subprocess.run(
        [sys.executable, "-c", "import merkle; print(merkle.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).resolve() == here


@pytest.mark.parametrize(("direction", "signer", "name"), CELLS)
def test_cell(direction, signer, name, material, tmp_path, request):
    cell = Cell(request.node.callspec.id, direction, material[signer], tmp_path / "work", material)
    cell.work.mkdir()
    CASES[name](cell)
