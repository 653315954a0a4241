"""A SoftHSM2 token of a test module's own (issue 23): SoftHSM2 from
Debian's packages (scripts/test installs it), a token folder and config
under the test's temporary folder, the token initialised with softhsm2-util
and keys generated on it by a script of the module's, run in a child
process (python-pkcs11 loads a module once per process)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

MODULE = next(
    (p for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                 "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so") if os.path.exists(p)),
    None,
)  # fmt: skip
AVAILABLE = MODULE is not None and shutil.which("softhsm2-util") is not None


@contextlib.contextmanager
def token(home: Path, label: str, pin: str, keygen: str) -> Iterator[tuple[Path, str]]:
    """A token `label` with user PIN `pin` under `home`, SOFTHSM2_CONF set
    for this process and its children while it lasts; `keygen` runs as
    `python -c KEYGEN MODULE PIN`.  Yields (a 0600 file holding the PIN,
    what the script printed)."""
    assert MODULE is not None
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    saved = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin[::-1]],
            check=True,
            capture_output=True,
        )
        made = subprocess.run([sys.executable, "-c", keygen, MODULE, pin], capture_output=True, text=True)
        assert made.returncode == 0, made.stdout + made.stderr
        pin_file = home / "pin"
        pin_file.write_text(pin + "\n")
        pin_file.chmod(0o600)
        yield pin_file, made.stdout.strip()
    finally:
        if saved is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = saved
