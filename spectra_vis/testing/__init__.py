"""Helpers for tests and benchmarks: tiny random-weight GGUF models llama.cpp really runs."""
