"""Capture stage: what runs while llama.cpp evaluates a model.

The ctypes bindings (``_ggml``), the native callback library (``_native``, ``native/``), the
recorder that turns eval-callback calls into trials and steps (``recorder``), the engines that
drive it (``engines``: Python and native), the ``TensorCollector`` facade and ``create_callback``
(``collector``), ``Llama`` (``llama``), the build probe (``probe``), chat formatting (``chat``) and
``Session`` / ``capture()`` (``session``). Imports ``record`` and ``store``; never ``analysis``.
"""
