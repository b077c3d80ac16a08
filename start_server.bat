@echo off
rem Windows: set up and open the Spectra Vis viewer (the same steps as start_server.sh).
cd /d "%~dp0"
if not exist .venv\Scripts\python.exe python -m venv .venv
.venv\Scripts\python.exe -m pip install --quiet -e ".[cli,server,demo]"
if not exist data mkdir data
dir /b data\*.json >nul 2>&1 || .venv\Scripts\python.exe capture_tensors.py --model demo --prompt "What is the capital of France?" --max-tokens 24
if exist frontend\package.json if not exist frontend\dist\index.html (cd frontend && npm ci && npm run build && cd ..)
echo Spectra Vis: http://127.0.0.1:8000
.venv\Scripts\python.exe backend\server.py --host 127.0.0.1 --port 8000 --data-dir data
pause
