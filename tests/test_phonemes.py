"""The phoneme encoder front-end (issue 14): verified loading, offline windows, streaming blocks, and the join
of its 50 Hz features with the 100 Hz log-mel inside the synthesizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hama")
pytest.importorskip("onnxruntime")

from parla.audio import phonemes as ph  # noqa: E402
from parla.errors import ParlaError  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return ph.PhonemeEncoder()


def _fake_package(tmp_path: Path, monkeypatch, mutate=None) -> None:
    """Point the loader at a copy of hama's asset folder (optionally modified)."""
    from types import SimpleNamespace

    src = ph.model_path()
    dst = tmp_path / ph.ASSET
    dst.parent.mkdir(parents=True)
    if mutate is not None:
        data = bytearray(src.read_bytes())
        mutate(data)
        dst.write_bytes(bytes(data))
    monkeypatch.setattr(
        ph.importlib.util, "find_spec", lambda pkg: SimpleNamespace(submodule_search_locations=[tmp_path])
    )


def test_tampered_model_is_refused(tmp_path, monkeypatch):
    def flip(data: bytearray) -> None:
        data[len(data) // 2] ^= 0x01

    _fake_package(tmp_path, monkeypatch, flip)
    with pytest.raises(ParlaError, match=r"sha256 .* is not the verified .*force-reinstall hama==1\.3\.13"):
        ph.PhonemeEncoder()


def test_missing_model_says_what_to_install(tmp_path, monkeypatch):
    _fake_package(tmp_path, monkeypatch)  # the folder exists, the file does not
    with pytest.raises(ParlaError, match=r"pip install --force-reinstall hama==1\.3\.13"):
        ph.model_bytes()


def test_encoder_frames_and_backends_agree(encoder, speech):
    x = speech[: 3 * ph.SAMPLE_RATE]
    h = encoder(x)
    assert h.shape == (ph.n_frames(len(x)), ph.DIM) and h.dtype == np.float32
    assert np.isfinite(h).all() and h.std() > 0.1
    pytest.importorskip("openvino")
    h_ov = ph.PhonemeEncoder("openvino")(x)
    assert np.abs(h_ov - h).max() < 0.05 * np.abs(h).max()  # float16 weights, f32 inference on both


def test_the_log_probabilities_follow_the_hidden_state(encoder, speech):
    """outputs="hidden+log_probs": the same hidden state, then a distribution over the 191 phoneme classes per
    frame, on both backends; a name that is not an output is refused before the model is read."""
    x = speech[: 2 * ph.SAMPLE_RATE]
    both = ph.PhonemeEncoder(outputs="hidden+log_probs")
    h = both(x)
    assert both.dim == ph.DIM + 191 and h.shape == (ph.n_frames(len(x)), both.dim)
    assert np.array_equal(h[:, : ph.DIM], encoder(x))
    assert np.allclose(np.exp(h[:, ph.DIM :]).sum(1), 1.0, atol=1e-3)
    assert ph.outputs_of_width(both.dim) == "hidden+log_probs" and ph.outputs_of_width(ph.DIM) == "hidden"
    assert ph.outputs_for(None) == "hidden" and ph.outputs_for({"outputs": "hidden+log_probs"}) == "hidden+log_probs"
    assert ph.StreamingPhonemes(both).push(x[:100]).shape == (0, both.dim)
    with pytest.raises(ParlaError, match="outputs are hidden and/or log_probs"):
        ph.PhonemeEncoder(outputs="hidden+logits")
    pytest.importorskip("openvino")
    p_ov = np.exp(ph.PhonemeEncoder("openvino", outputs="hidden+log_probs")(x)[:, ph.DIM :])
    assert np.abs(p_ov - np.exp(h[:, ph.DIM :])).max() < 0.05  # probabilities agree to float16 rounding


def test_offline_windows_cover_long_audio(encoder, speech):
    """Beyond one window the clip is encoded in overlapping windows of one length; every frame comes from a window
    that holds at least 2 s on both sides of it, so the first window's frames far from its end are exactly the
    single-window ones, and so are the last window's near the clip's end."""
    long = np.tile(speech, 6)[: 25 * ph.SAMPLE_RATE + 123]  # 25 s: three 10-s windows
    feats = ph.encode(encoder, long)
    total = ph.n_frames(len(long))
    assert feats.shape == (total, ph.DIM) and np.isfinite(feats).all()
    win = int(ph.WINDOW_S * ph.FRAMES_PER_SECOND) - 1
    first = encoder(long[: win * ph.HOP])
    np.testing.assert_array_equal(feats[: win - 100], first[: win - 100])
    last = encoder(long[(total - 1 - win) * ph.HOP : (total - 1) * ph.HOP])
    np.testing.assert_array_equal(feats[-200:], last[-200:])
    # against one 25-s window: every frame had 2 s each side, so the features agree closely (not exactly)
    whole = encoder(long)
    corr = np.mean([np.corrcoef(feats[:, j], whole[:, j])[0, 1] for j in range(ph.DIM) if whole[:, j].std() > 0])
    assert corr > 0.95, corr
    with pytest.raises(ParlaError, match="at most 30 s"):
        encoder(np.tile(speech, 12)[: 31 * ph.SAMPLE_RATE])


def test_streaming_does_not_depend_on_chunking_and_follows_offline(encoder, speech):
    outs = []
    for chunk in (640, 1000, 4000):
        st = ph.StreamingPhonemes(encoder, past_s=2.0, future_s=0.5)
        outs.append(np.concatenate([st.push(speech[i : i + chunk]) for i in range(0, len(speech), chunk)]))
    n = min(len(o) for o in outs)
    assert n >= ph.n_frames(len(speech)) - 30  # all but the last future_s (+ a block)
    for o in outs[1:]:
        np.testing.assert_array_equal(o[:n], outs[0][:n])
    # with 2 s of past and 0.5 s of future the features follow the whole-clip ones closely
    off = ph.encode(encoder, speech)[:n]
    corr = np.mean([np.corrcoef(outs[0][:n, j], off[:, j])[0, 1] for j in range(ph.DIM) if off[:, j].std() > 0])
    assert corr > 0.7, corr  # measured 0.78 on the fixture
    # where the contexts agree, each block's features are the encoder's on the block's window: past_s before the
    # block (silence before the stream's start, so that every window has one length) to future_s after it
    past, future = 50, 25  # frames: 1 s, 0.5 s
    st = ph.StreamingPhonemes(encoder, past_s=1.0, future_s=0.5, every=2)
    got = st.push(speech[: 3 * ph.SAMPLE_RATE])
    shapes = set()
    for b in (0, 10, 40, len(got) // 2 - 1):
        lo, hi = 2 * b - past, 2 * b + 2 + future
        win = np.concatenate([np.zeros(max(0, -lo) * ph.HOP, np.float32), speech[max(0, lo) * ph.HOP : hi * ph.HOP]])
        shapes.add(len(win))
        np.testing.assert_array_equal(got[2 * b : 2 * b + 2], encoder(win)[past : past + 2])
    assert shapes == {(past + 2 + future) * ph.HOP}


def test_stream_memory_is_bounded(encoder):
    st = ph.StreamingPhonemes(encoder, past_s=1.0, future_s=0.2)
    rng = np.random.default_rng(0)
    for _ in range(100):  # 10 s
        st.push(rng.standard_normal(1600).astype(np.float32) * 0.01)
    assert len(st.buf) <= (1.0 + 0.2 + 0.2) * ph.SAMPLE_RATE


def test_synth_join_equals_offline_interpolation(encoder, speech):
    """Known audio pushed through the synthesizer in chunks gives exactly the log-mel followed by ``to_mel_rate``
    of the offline features: what the motion model was trained on."""
    from dataclasses import replace

    from parla.audio.mel import log_mel
    from parla.edge.synth import MotionSettings, MotionSynth
    from parla.modelfolder import ModelFolder

    feats = ph.encode(encoder, speech)
    mel = log_mel(speech)
    want = np.concatenate([mel, ph.to_mel_rate(feats, len(mel))], 1)
    shipped = MotionSettings.from_folder(ModelFolder())
    settings = replace(
        shipped,
        mel_mean=np.zeros(want.shape[1], np.float32),
        mel_std=np.ones(want.shape[1], np.float32),
        phonemes={"past_s": 2.0, "future_s": 0.3},
    )
    synth = MotionSynth(settings, lambda w: np.zeros((1, 12, w.shape[-1]), np.float32),
                        phonemes=ph.KnownPhonemes(feats, encoder.silence))  # fmt: skip
    joined = []
    synth.push_mel = joined.append  # capture what the join hands to the net's window
    for chunk in np.array_split(speech, 37):
        synth.push(chunk)
    synth.push(np.zeros(4 * ph.HOP, np.float32))  # the tail: the last mel frames' phoneme frames
    out = np.concatenate(joined)[: len(want)]
    assert len(out) == len(want)
    np.testing.assert_array_equal(out[:, :80], want[:, :80])
    np.testing.assert_allclose(out[:, 80:], want[:, 80:], rtol=0, atol=1e-6)


def test_missing_hama_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(ph.importlib.util, "find_spec", lambda pkg: None)
    with pytest.raises(ParlaError, match=r"needs the hama package.*pip install hama==1\.3\.13"):
        ph.model_bytes()


def test_the_encoder_needs_neither_hama_nor_onnx_imported():
    """hama's own import loads onnxruntime and its tokenizers (26 MB): the verified file is read without it; the
    hidden state is exposed by editing the protobuf, without the onnx package."""
    import subprocess
    import sys

    code = (
        "import sys; from parla.audio import phonemes as ph; h = ph.PhonemeEncoder()(ph.np.zeros(8000, 'float32')); "
        "print(h.shape, 'hama' in sys.modules, 'onnx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == f"(26, {ph.DIM}) False False\n"


def test_the_output_edit_is_what_onnx_writes():
    onnx = pytest.importorskip("onnx")
    data = ph.model_bytes()
    model = onnx.load_from_string(data)
    model.graph.output.append(onnx.ValueInfoProto(name=ph.HIDDEN))
    assert ph.with_output(data, ph.HIDDEN) == model.SerializeToString()
    with pytest.raises(ParlaError, match="not an ONNX model"):
        ph.with_output(b"\x08\x07", ph.HIDDEN)  # a ModelProto with an ir_version and no graph


def test_a_source_ahead_of_playback_gets_the_offline_context(encoder, speech):
    """A long file decoded as it plays: every frame has 2 s of audio on both sides, as in the offline windows, so
    its features follow the offline ones closely (the microphone's 0.2 s do not); a frame comes out only once
    ``ahead_latency_s`` of audio after it has arrived."""
    long = np.tile(speech, 4)[: 12 * ph.SAMPLE_RATE]
    off = ph.encode(encoder, long)
    st = ph.ahead_stream(encoder)
    got, emitted_at = [], []
    for i in range(0, len(long), 640):
        new = st.push(long[i : i + 640])
        got.append(new)
        emitted_at += [i + 640] * len(new)
    a = np.concatenate(got)
    n = len(a)
    assert n >= len(off) - ph.ahead_latency_s() * ph.FRAMES_PER_SECOND - 1
    centre = np.arange(n) * ph.HOP
    assert np.all(np.asarray(emitted_at) - centre >= ph.AHEAD_FUTURE_S * ph.SAMPLE_RATE)
    assert np.all(np.asarray(emitted_at) - centre <= ph.ahead_latency_s() * ph.SAMPLE_RATE + 640)
    corr = np.mean([np.corrcoef(a[:, j], off[:n, j])[0, 1] for j in range(ph.DIM) if off[:n, j].std() > 0])
    assert corr > 0.85, corr  # measured 0.91 on a 20-s file; the microphone's window: 0.66


def test_known_utterances_get_their_offline_features_without_look_ahead(encoder, speech):
    """A TTS source: each reply is encoded whole as it starts, silence between replies is the encoder's silence,
    and each frame is handed out as soon as its audio is pushed, whatever the chunking."""
    a, b = speech[: 2 * ph.SAMPLE_RATE], speech[ph.SAMPLE_RATE : 4 * ph.SAMPLE_RATE]
    gap = np.zeros(ph.SAMPLE_RATE // 2, np.float32)
    stream = np.concatenate([a, gap, b, gap])
    starts = (0, len(a) + len(gap))
    outs = []
    for chunk in (640, 1600):
        seg = ph.SegmentPhonemes(encoder)
        got = []
        for i in range(0, len(stream), chunk):
            for s0, u in zip(starts, (a, b), strict=True):
                if i <= s0 < i + chunk:
                    seg.add(s0, u)
            new = seg.push(stream[i : i + chunk])
            assert sum(map(len, got)) + len(new) == (i + chunk - ph.HOP // 2) // ph.HOP + 1  # no look-ahead
            got.append(new)
        outs.append(np.concatenate(got))
    np.testing.assert_array_equal(outs[0], outs[1])
    out, k = outs[0], len(a) // ph.HOP
    np.testing.assert_array_equal(out[:k], ph.encode(encoder, a)[:k])
    np.testing.assert_array_equal(out[k + 1 : starts[1] // ph.HOP], np.tile(encoder.silence, (24, 1)))
    np.testing.assert_array_equal(out[starts[1] // ph.HOP :][: len(b) // ph.HOP], ph.encode(encoder, b)[:-1])
    assert seg.segments == []  # both replies have passed
