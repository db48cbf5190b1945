"""VAPID keys for Web Push, generated once into instance/ when the environment gives none."""
from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.instance_secrets import read_or_create


def load_or_create_vapid(path: Path) -> tuple[str, str]:
    """Return (private key PEM, public key as base64url of the uncompressed point)."""
    pem = read_or_create(path, lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key = serialization.load_pem_private_key(pem, password=None)
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return pem.decode(), base64.urlsafe_b64encode(point).rstrip(b"=").decode()
