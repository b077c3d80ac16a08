"""Spectra Vis viewer backend: the REST API over captures (FastAPI), see docs/API.md.

``create_app()`` in ``backend.server`` builds the app; ``backend.store`` owns files and the
data-directory boundary; the payloads come from ``spectra_vis.analysis``.
"""
