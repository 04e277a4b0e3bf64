"""Content Credentials (issue 17): a signed C2PA manifest in every video Parla writes, validated by c2pa-python,
broken by a one-byte change, gone when the file is remuxed; `parla verify` reports it beside the watermark."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("c2pa")

from parla.media.credentials import AI_GENERATED, Claims, read_credentials, sign_file  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_path, speech_path):
    from parla.edge.avatar import animate

    out = tmp_path_factory.mktemp("cred") / "clip.mp4"
    animate(face_path, speech_path, out, backend="onnxruntime", show=False)
    return out


def test_animate_writes_a_valid_manifest_that_says_ai_generated(clip):
    r = read_credentials(clip)
    assert r.present and r.valid and r.state == "Valid"
    assert r.ai_generated and r.generator == "Parla"
    assert r.claims["model"].startswith("student") and len(r.claims["watermark"]) == 6
    assert not r.claims["live_recording"]
    assert "self-signed" in r.claims["signer"]
    assert r.failures == ["signingCredential.untrusted: signing certificate untrusted"]  # honest: a local key
    assert r.trust == "self-signed" and not r.damaged and "Parla signer" in r.signer


def test_one_changed_byte_invalidates_it(clip, tmp_path):
    data = bytearray(clip.read_bytes())
    data[len(data) * 3 // 4] ^= 0x01  # inside the media data
    bad = tmp_path / "tampered.mp4"
    bad.write_bytes(bytes(data))
    r = read_credentials(bad)
    assert r.present and not r.valid and r.state == "Invalid"
    assert any("mismatch" in f or "hash" in f for f in r.failures)
    assert r.damaged and r.trust == "self-signed"  # damaged, not merely untrusted; the signer still named


def test_remuxing_strips_it(clip, tmp_path):
    from parla.media.video import remux

    r = read_credentials(remux(clip, tmp_path / "remuxed.mp4"))
    assert not r.present and r.state == "absent"


def test_images_are_signed_too(tmp_path):
    import cv2

    for suffix in (".png", ".jpg"):
        p = tmp_path / f"frame{suffix}"
        cv2.imwrite(str(p), np.full((64, 64, 3), 90, np.uint8))
        sign_file(p, Claims("0.1.0", "student-x", "5ab123"))
        r = read_credentials(p)
        assert r.valid and r.ai_generated
        assert cv2.imread(str(p)).shape == (64, 64, 3)  # still an image any reader opens


def test_manifest_names_the_ai_source_type():
    m = Claims("0.1.0", "m", "off", live=True, time="2026-01-01T00:00:00Z").manifest("k")
    action = m["assertions"][0]["data"]["actions"][0]
    assert action["digitalSourceType"] == AI_GENERATED and action["action"] == "c2pa.created"
    assert m["assertions"][1]["data"]["live_recording"] is True


@pytest.mark.slow
def test_stream_recording_and_verify_report_both_signals(tmp_path, face_path, speech_path):
    rec = tmp_path / "live.mp4"
    p = subprocess.run([sys.executable, "-m", "parla", "stream", str(face_path), "--audio", str(speech_path),
                        "--backend", "onnxruntime", "--sink", f"file:{rec}", "--seconds", "3"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    r = read_credentials(rec)
    assert r.valid and r.ai_generated and r.claims["live_recording"]
    p = subprocess.run([sys.executable, "-m", "parla", "verify", str(rec), "--json", str(tmp_path / "v.json")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Content Credentials VALID" in p.stdout and "watermark FOUND" in p.stdout
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ai_generated"] and report["credentials"]["valid"] and report["watermark"]["found"]


@pytest.mark.slow
def test_no_credentials_is_logged_and_writes_none(tmp_path, face_path, speech_path):
    out = tmp_path / "bare.mp4"
    p = subprocess.run([sys.executable, "-m", "parla", "animate", str(face_path), str(speech_path), "-o", str(out),
                        "--backend", "onnxruntime", "--no-credentials", "-q"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Content Credentials are OFF" in p.stderr
    assert not read_credentials(out).present


def test_a_key_that_cannot_sign_fails_before_any_frame(tmp_path, face_path, speech_path):
    """Checked before the work: a certificate or key that is not PEM, or a device given as one, ends `parla animate`
    with one line and no output file, instead of failing after the last frame."""
    import os

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    for c, k, said in [(cert, key, "not usable PEM"), ("/dev/zero", "/dev/zero", "not a readable file")]:
        out = tmp_path / "clip.mp4"
        env = {**os.environ, "PARLA_C2PA_CERT": str(c), "PARLA_C2PA_KEY": str(k)}
        p = subprocess.run([sys.executable, "-m", "parla", "animate", str(face_path), str(speech_path), "-o",
                            str(out), "--backend", "onnxruntime", "-q"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)  # fmt: skip
        assert p.returncode == 2, p.stderr
        assert said in p.stderr and p.stderr.count("\n") == 1, p.stderr
        assert not out.exists() and not list(tmp_path.glob("clip*"))


def test_a_key_of_another_certificate_is_refused(tmp_path, monkeypatch):
    from parla.errors import ParlaError
    from parla.media.credentials import _make_local_key, check_signing

    _make_local_key(tmp_path / "a")
    _make_local_key(tmp_path / "b")
    monkeypatch.setenv("PARLA_C2PA_CERT", str(tmp_path / "a" / "chain.pem"))
    monkeypatch.setenv("PARLA_C2PA_KEY", str(tmp_path / "b" / "key.pem"))
    with pytest.raises(ParlaError, match="does not belong"):
        check_signing()
    monkeypatch.setenv("PARLA_C2PA_KEY", str(tmp_path / "a" / "key.pem"))
    assert check_signing() == "the user's key"
