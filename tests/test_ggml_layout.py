"""The start-up self-check of ggml's tensor struct: passes on the installed llama-cpp-python and
fails with a clear message naming its version when the layout differs."""

from __future__ import annotations

import ctypes

import llama_cpp
import pytest

from spectra_vis.capturing import _ggml


def test_installed_layout_passes() -> None:
    _ggml.self_check()


def test_shifted_layout_is_refused_with_the_version() -> None:
    class Shifted(ctypes.Structure):  # an older ggml with an extra pointer before the name
        _fields_ = [(n, t) for n, t in _ggml.GgmlTensor._fields_ if n not in ("name", "extra", "padding")] + [
            ("grad", ctypes.c_void_p),
            ("name", ctypes.c_char * 64),
            ("extra", ctypes.c_void_p),
        ]

    with pytest.raises(_ggml.LayoutError, match=f"llama-cpp-python {llama_cpp.__version__}") as info:
        _ggml.check_layout(Shifted)
    assert "name" in str(info.value) and "\n" not in str(info.value)


def test_read_array_honours_strides() -> None:
    so = _ggml.lib()
    ctx = so.ggml_init(_ggml.GgmlInitParams(1 << 16, None, False))
    try:
        t = so.ggml_new_tensor_2d(ctx, _ggml.GGML_TYPE_F32, 4, 3)
        s = _ggml.tensor(t)
        data = (ctypes.c_float * 12).from_address(s.data)
        for i in range(12):
            data[i] = float(i)
        arr = _ggml.read_array(t, s, copy=True)
        assert arr is not None and arr.shape == (3, 4) and arr[2, 1] == 9.0
        # a transposed view: swap ne and nb as ggml_transpose does
        s.ne[0], s.ne[1] = 3, 4
        s.nb[0], s.nb[1] = 16, 4
        view = _ggml.read_array(t, s, copy=True)
        assert view is not None and view.shape == (4, 3) and view[1, 2] == 9.0
    finally:
        so.ggml_free(ctx)
