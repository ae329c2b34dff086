"""MLLP framing: split and merged frames, noise, size limit."""

from __future__ import annotations

from lis_bridge.mllp import FrameDecoder, FrameTooLarge, frame

A, B, C = b"MSH|A\r", b"MSH|B\rPID|1\r", b"MSH|C\r"


def test_one_frame_per_read():
    d = FrameDecoder(1024)
    assert d.feed(frame(A)) == [A]
    assert d.feed(frame(B)) == [B]


def test_frame_split_across_every_byte():
    d = FrameDecoder(1024)
    out = []
    for byte in frame(B):
        out += d.feed(bytes([byte]))
    assert out == [B]


def test_several_frames_in_one_read_and_a_partial_tail():
    d = FrameDecoder(1024)
    data = frame(A) + frame(B) + frame(C)
    assert d.feed(data[:-3]) == [A, B]
    assert d.in_frame
    assert d.feed(data[-3:]) == [C]
    assert not d.in_frame


def test_noise_between_frames_is_skipped_and_missing_final_cr_tolerated():
    d = FrameDecoder(1024)
    assert d.feed(b"\r\n" + frame(A) + b"\n\n" + b"\x0b" + B + b"\x1c" + frame(C)) == [A, B, C]


def test_oversize_frame_is_reported_and_the_next_frame_still_decodes():
    d = FrameDecoder(16)
    big = b"MSH|" + b"x" * 100
    out = d.feed(frame(big) + frame(A))
    assert isinstance(out[0], FrameTooLarge) and out[0].head.startswith(b"MSH|")
    assert out[1:] == [A]


def test_oversize_detected_across_reads():
    d = FrameDecoder(16)
    first = d.feed(b"\x0bMSH|" + b"x" * 20)
    assert len(first) == 1 and isinstance(first[0], FrameTooLarge)
    assert d.feed(b"y" * 50) == []
    assert d.feed(b"\x1c\r" + frame(A)) == [A]


def test_partial_holds_the_unfinished_frame():
    d = FrameDecoder(1024)
    d.feed(b"\x0bMSH|half")
    assert d.partial() == b"MSH|half"
