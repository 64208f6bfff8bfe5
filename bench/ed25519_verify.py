"""Benchmark: Ed25519 verification of one push payload, cryptography (OpenSSL) against PyNaCl
(libsodium), and the resident memory each costs an interpreter that imports it.

The sidecar verifies every push with one of them (PyNaCl since 2026-12-06; ``docs/performance.md``,
"CPU per push: Ed25519 by libsodium"); the operator signs with cryptography. Both libraries are
in the development environment (``scripts/bootstrap all,dev``).

    .venv/bin/python bench/ed25519_verify.py [--payload 1400] [--rounds 3000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import timeit
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.signing import VerifyKey

#: Run in a fresh interpreter: VmRSS before and after importing what verifies.
RSS = r"""
import asyncio, ssl, sys  # what the sidecar has loaded anyway
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
before = rss()
if sys.argv[1] == "cryptography":
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.exceptions import InvalidSignature
else:
    from nacl.signing import VerifyKey
    from nacl.exceptions import BadSignatureError
print(f"{rss() - before:.1f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payload", type=int, default=1400, help="bytes signed (1400)")
    parser.add_argument("--rounds", type=int, default=3000, help="verifications timed (3000)")
    args = parser.parse_args()
    payload = os.urandom(args.payload)
    key = Ed25519PrivateKey.generate()
    signature = key.sign(payload)
    public = key.public_key()
    nacl_key = VerifyKey(public.public_bytes(Encoding.Raw, PublicFormat.Raw))
    checks: dict[str, Callable[[], object]] = {
        "cryptography": lambda: public.verify(signature, payload),
        "pynacl": lambda: nacl_key.verify(payload, signature),
    }
    for name, check in checks.items():
        check()
        seconds = timeit.timeit(check, number=args.rounds)
        rss = subprocess.run(
            [sys.executable, "-c", RSS, name], capture_output=True, text=True, check=True
        ).stdout.strip()
        print(
            f"{name}: {seconds / args.rounds * 1e6:.1f} us per verification of "
            f"{args.payload} bytes; importing it: +{rss} MiB resident"
        )


if __name__ == "__main__":
    main()
