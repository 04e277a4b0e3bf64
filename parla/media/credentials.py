"""Content Credentials (C2PA) on the files Parla generates: a signed manifest that says the media was
made by an AI system (IPTC digital source type ``trainedAlgorithmicMedia``, what the EU AI Act's Article 50 asks
generators to mark in a machine-readable way), by which generator and model, with the watermark's payload and,
for a live recording, the time. Through the maintained bindings, ``c2pa-python`` (``pip install 'parla[c2pa]'``).

Signing key: the user's own (``PARLA_C2PA_CERT``: a PEM chain, leaf first; ``PARLA_C2PA_KEY``: its PEM private
key; ES256), else a local key made on first use under the user's config folder: a self-signed CA and a signing
certificate that name this installation, stated as such in the manifest. A validator then reports the signature
as valid and the signer as not on any trust list, which is exactly what it is.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from parla.errors import ParlaError, require

log = logging.getLogger("parla")

AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MIME = {
    ".mp4": "video/mp4",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
CERT_ENV, KEY_ENV = "PARLA_C2PA_CERT", "PARLA_C2PA_KEY"
PARLA_LABEL = "org.parla.generation"  # our own assertion: model, watermark payload, live or not


@dataclass(frozen=True)
class Claims:
    """What the manifest says about the file."""

    generator_version: str
    model: str
    watermark: str  # the watermark payload (hex), or "off"
    live: bool = False  # a recording of a live stream (then ``time`` is when it started)
    time: str = ""

    @classmethod
    def from_metadata(cls, meta: dict[str, str], *, live: bool = False) -> Claims:
        """From the provenance tags Parla writes into its mp4s (``parla.edge.render.provenance``)."""
        return cls(
            meta.get("parla_version", "unknown"),
            meta.get("parla_model", "unknown"),
            meta.get("parla_watermark", "off"),
            live,
            meta.get("creation_time", _now()),
        )

    def manifest(self, signer_note: str) -> dict:
        agent = {"name": "Parla", "version": self.generator_version}
        return {
            "claim_generator_info": [agent],
            "title": "AI-generated talking face (Parla)",
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": AI_GENERATED,
                                "softwareAgent": agent,
                                "when": self.time or _now(),
                            }
                        ]
                    },
                },
                {
                    "label": PARLA_LABEL,
                    "data": {
                        "generator": "Parla",
                        "generator_version": self.generator_version,
                        "model": self.model,
                        "watermark": self.watermark,
                        "live_recording": self.live,
                        "time": self.time or _now(),
                        "signer": signer_note,
                    },
                },
            ],
        }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("c2pa") is not None


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "parla" / "c2pa"


MAX_PEM_BYTES = 64 * 1024  # a certificate chain or key larger than this is not one (a device, a wrong file)


def _read_pem(path: str, what: str) -> bytes:
    """A PEM file read in bounded memory: a regular file of at most MAX_PEM_BYTES."""
    p = Path(path)
    try:
        if not p.is_file():
            raise ParlaError(f"Content Credentials: the {what} {p} is not a readable file")
        with open(p, "rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except OSError as e:
        raise ParlaError(f"Content Credentials: cannot read the {what} {p} ({e.strerror or e})") from e
    if len(data) > MAX_PEM_BYTES:
        raise ParlaError(f"Content Credentials: the {what} {p} is over {MAX_PEM_BYTES // 1024} KB: not a PEM file")
    return data


def signing_material() -> tuple[bytes, bytes, str]:
    """(PEM certificate chain, PEM private key, a note on whose key it is)."""
    cert, key = os.environ.get(CERT_ENV), os.environ.get(KEY_ENV)
    if cert or key:
        if not (cert and key):
            raise ParlaError(f"Content Credentials: set both {CERT_ENV} and {KEY_ENV} (PEM files), or neither")
        return _read_pem(cert, "certificate chain"), _read_pem(key, "signing key"), "the user's key"
    folder = config_dir()
    chain, pkey = folder / "chain.pem", folder / "key.pem"
    if not (chain.is_file() and pkey.is_file()):
        _make_local_key(folder)
    return chain.read_bytes(), pkey.read_bytes(), "a self-signed key local to this installation (not on any trust list)"


def check_signing() -> str:
    """Before any work, everything signing needs at the end: the chain and key readable PEM, the key the leaf
    certificate's, the leaf in its validity period. Returns the note on whose key it is; one line otherwise."""
    require("cryptography", "c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain, key, note = signing_material()
    try:
        certs = x509.load_pem_x509_certificates(chain)
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as e:
        raise ParlaError(f"Content Credentials: the signing certificate or key is not usable PEM ({e})") from e
    pub = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*pub) != certs[0].public_key().public_bytes(*pub):
        raise ParlaError("Content Credentials: the signing key does not belong to the chain's first certificate")
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = certs[0].not_valid_before_utc, certs[0].not_valid_after_utc
    if not start <= now <= end:
        raise ParlaError(f"Content Credentials: the signing certificate is valid {start:%Y-%m-%d} to {end:%Y-%m-%d}")
    return note


def _make_local_key(folder: Path) -> None:
    """A local CA and an ES256 signing certificate (C2PA requires a chain whose leaf is not a CA)."""
    require("cryptography", "c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from parla.files import write_text_atomic

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Parla (local, self-signed)")])  # fmt: skip

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = {
        "not_valid_before": now - datetime.timedelta(days=1),
        "not_valid_after": now + datetime.timedelta(days=3650),
    }

    def usage(**on: bool) -> x509.KeyUsage:
        keys = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")  # fmt: skip
        return x509.KeyUsage(**{k: on.get(k, False) for k in keys})

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(subject_name=name("Parla local CA"), issuer_name=name("Parla local CA"), **valid)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder(subject_name=name("Parla signer"), issuer_name=ca.subject, **valid)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    write_text_atomic(folder / "chain.pem", (leaf.public_bytes(pem) + ca.public_bytes(pem)).decode())
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    write_text_atomic(folder / "key.pem", private)
    os.chmod(folder / "key.pem", 0o600)
    log.info("created a local Content Credentials key in %s (self-signed)", folder)


def sign_file(path: str | os.PathLike, claims: Claims, *, mime: str | None = None) -> None:
    """Embed a signed manifest into ``path`` (replaced in place, atomically)."""
    c2pa = require("c2pa", "c2pa")
    p = Path(path)
    mime = mime or MIME.get(p.suffix.lower())
    if mime is None:
        raise ParlaError(f"{p}: no Content Credentials for files of type {p.suffix!r}")
    chain, key, note = signing_material()
    tmp = p.with_name(p.name + ".c2pa")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=key,
                                                           ta_url=None))  # fmt: skip
        with open(p, "rb") as src, open(tmp, "w+b") as dst, c2pa.Builder(claims.manifest(note)) as builder:
            builder.sign(signer, mime, src, dst)
        os.replace(tmp, p)
    except c2pa.C2paError as e:
        raise ParlaError(f"{p}: cannot write Content Credentials ({e})") from e
    finally:
        tmp.unlink(missing_ok=True)


def warn_unavailable() -> None:
    log.warning(
        "Content Credentials (C2PA) not written: pip install 'parla[c2pa]'; the invisible watermark is in the video"
    )


@dataclass
class CredentialsReport:
    present: bool
    valid: bool | None  # None when absent
    state: str  # "absent", "Valid", "Trusted", "Invalid", or "unreadable"
    ai_generated: bool  # the manifest says trainedAlgorithmicMedia
    claims: dict | None  # our own assertion, when there
    generator: str | None
    failures: list[str]
    # who signed: "known" (on a trust list c2pa-python holds), "self-signed" (a key local to the installation that
    # wrote the file, as Parla makes one), "unknown" (on no trust list); None when absent
    trust: str | None = None
    signer: str | None = None  # the certificate's issuer and common name
    damaged: bool = False  # present, but the file or the manifest changed after signing (not merely untrusted)


def read_credentials(path: str | os.PathLike) -> CredentialsReport:
    """The manifest of ``path``: present, signature and hashes valid, and what it claims."""
    c2pa = require("c2pa", "c2pa")
    p = Path(path)
    mime = MIME.get(p.suffix.lower()) or "video/mp4"
    try:
        with open(p, "rb") as f:
            reader = c2pa.Reader(mime, f)
            state = reader.get_validation_state() or "unknown"
            manifest = reader.get_active_manifest() or {}
            results = reader.get_validation_results() or {}
    except c2pa.C2paError as e:
        if "ManifestNotFound" in type(e).__name__ or "not found" in str(e).lower() or "JumbfNotFound" in str(e):
            return CredentialsReport(False, None, "absent", False, None, None, [])
        return CredentialsReport(False, None, "unreadable", False, None, None, [str(e)[:200]])
    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get("actions", [])
    ai = any(a.get("digitalSourceType") == AI_GENERATED for a in actions)
    info = manifest.get("claim_generator_info") or [{}]
    failures = [f"{x.get('code')}: {x.get('explanation', '')}"[:160]
                for x in (results.get("activeManifest") or {}).get("failure", [])]  # fmt: skip
    sig = manifest.get("signature_info") or {}
    issuer, name = str(sig.get("issuer") or ""), str(sig.get("common_name") or "")
    trust = "known" if state == "Trusted" else "self-signed" if "self-signed" in issuer.lower() else "unknown"
    damaged = state not in ("Valid", "Trusted") and any(not f.startswith("signingCredential.") for f in failures)
    return CredentialsReport(
        True, state in ("Valid", "Trusted"), state, ai, assertions.get(PARLA_LABEL), info[0].get("name"), failures,
        trust, f"{name} ({issuer})" if issuer else name or None, damaged,
    )  # fmt: skip
