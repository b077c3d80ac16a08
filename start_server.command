#!/usr/bin/env bash
# macOS: double-click to set up and open the Spectra Vis viewer (same as ./start_server.sh).
cd "$(dirname "$0")" && exec ./start_server.sh "$@"
