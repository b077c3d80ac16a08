// The Run panel (views/RunPanel.tsx) over a stub of fetch, the HTTP seam: a form with a wrong field
// shows what is wrong next to it and sends nothing; a valid one sends the request its fields make;
// a refusal shows on one line; a server that does not allow runs disables Run and asks for a token.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { QueryClientProvider } from "@tanstack/react-query";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makeQueryClient } from "../src/api/queries";
import { LiveProvider } from "../src/state/live";
import { ViewerProvider } from "../src/state/store";
import { RunPanel } from "../src/views/RunPanel";

type Reply = { status: number; body: unknown };
let calls: { method: string; url: string; body: unknown; token: string | null }[];
let runsReply: Reply;
let startReply: Reply;

const files = { models_dir: "/data/models", files: [
  { name: "sea.gguf", size: 40_000, architecture: "controlvector", demo: false },
  { name: "tiny.gguf", size: 2_500_000, architecture: "llama", demo: false },
] };
const err = (status: number, error: string): Reply => ({ status, body: { ok: false, status, error } });

beforeEach(() => {
  calls = [];
  runsReply = { status: 200, body: { runs: [], allowed: true } };
  startReply = err(429, "8 runs are waiting already");
  vi.stubGlobal("fetch", vi.fn(async (url: string, init?: RequestInit) => {
    const method = init?.method ?? "GET";
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : null;
    calls.push({ method, url, body, token: new Headers(init?.headers).get("X-Spectra-Token") });
    const r: Reply = url === "/api/models/files" ? { status: 200, body: files }
      : url === "/api/runs" && method === "GET" ? runsReply
      : url === "/api/runs" && method === "POST" ? startReply
      : err(404, `unexpected ${method} ${url}`);
    const text = JSON.stringify(r.body);
    return { ok: r.status < 400, status: r.status, text: async () => text } as Response;
  }));
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

function panel() {
  render(
    <QueryClientProvider client={makeQueryClient()}>
      <ViewerProvider><LiveProvider><RunPanel /></LiveProvider></ViewerProvider>
    </QueryClientProvider>,
  );
}
const posts = () => calls.filter((c) => c.method === "POST");
const type = (testId: string, value: string) => fireEvent.change(screen.getByTestId(testId), { target: { value } });

describe("RunPanel", () => {
  it("shows each wrong field's reason and sends nothing", async () => {
    panel();
    await waitFor(() => expect(screen.getByTestId<HTMLSelectElement>("run-model").value).toBe("tiny.gguf"));
    type("run-max-tokens", "2000");
    type("run-temperature", "-0.5");
    fireEvent.click(screen.getByTestId("run-start"));
    const reasons = screen.getAllByRole("alert").map((a) => a.textContent);
    expect(reasons).toEqual(["type a prompt (one per line)", "max tokens is 2000: choose 1 to 1024", "temperature is -0.5: it cannot be negative"]);
    // Fixing a field clears its reason at once.
    type("run-prompts", "Hello");
    expect(screen.getAllByRole("alert").map((a) => a.textContent)).toEqual(["max tokens is 2000: choose 1 to 1024", "temperature is -0.5: it cannot be negative"]);
    expect(posts()).toEqual([]);
  });

  it("sends the request its fields make, and shows a refusal on one line", async () => {
    panel();
    await waitFor(() => expect(screen.getByTestId<HTMLSelectElement>("run-model").value).toBe("tiny.gguf"));
    type("run-prompts", "The capital of France is\nSay hi");
    type("run-preset", "full");
    type("run-chat", "raw");
    type("run-max-tokens", "64");
    type("run-seed", "7");
    fireEvent.click(screen.getByTestId("run-start"));
    const error = await screen.findByTestId("run-error");
    expect(error.textContent).toBe("The run queue is full (wait for a run to end): 8 runs are waiting already");
    expect(posts()).toEqual([{
      method: "POST", url: "/api/runs", token: null,
      body: { model: "tiny.gguf", prompts: ["The capital of France is", "Say hi"], preset: "full", chat: "raw", max_tokens: 64, temperature: 0, seed: 7 },
    }]);
  });

  it("a server that refuses runs: Run disabled, the reason shown, a token field whose token is sent", async () => {
    runsReply = err(403, "runs are allowed on a loopback address, or with --allow-runs and a token");
    panel();
    const refused = await screen.findByTestId("runs-refused");
    expect(refused.textContent).toBe("Runs are not allowed on this server: runs are allowed on a loopback address, or with --allow-runs and a token");
    expect(screen.getByTestId<HTMLButtonElement>("run-start").disabled).toBe(true);
    runsReply = { status: 200, body: { runs: [], allowed: true } };
    type("run-token", "s3cret");
    await waitFor(() => expect(screen.queryByTestId("runs-refused")).toBeNull());
    expect(calls.filter((c) => c.url === "/api/runs").at(-1)?.token).toBe("s3cret");
    expect(screen.getByTestId<HTMLButtonElement>("run-start").disabled).toBe(false);
  });

  it("offers control vectors in the Steer picker only, sends the chosen one, shows it in the run list", async () => {
    runsReply = { status: 200, body: { runs: [{
      id: "r1", model: "tiny.gguf", preset: "standard", prompts: ["x"], max_tokens: 4, temperature: 0, seed: 1, chat: "auto",
      control: { file: "sea.gguf", strength: -2, layers: "1-3" }, state: "done", trial: 0, n_trials: 1, step: 4, tokens: 4,
      tokens_per_s: 10, progress: 1, file: "runs/a.json", error: null, created: 1, finished: 2, events: 9, subscribers: 0,
    }], allowed: true } };
    panel();
    await waitFor(() => expect(screen.getByTestId<HTMLSelectElement>("run-model").value).toBe("tiny.gguf"));
    const options = (id: string) => [...screen.getByTestId<HTMLSelectElement>(id).options].map((o) => o.value);
    expect(options("run-model")).toEqual(["tiny.gguf"]);
    expect(options("run-control")).toEqual(["", "sea.gguf"]);
    expect(screen.getByTestId<HTMLSelectElement>("run-control").value).toBe(""); // none by default
    expect(screen.getByTestId<HTMLInputElement>("run-strength").disabled).toBe(true);
    expect((await screen.findByTestId("run-control-text")).textContent).toBe("steered: sea.gguf × -2 · layers 1-3");
    type("run-prompts", "Hello");
    type("run-control", "sea.gguf");
    type("run-strength", "1e400");
    type("run-layers", "3-1");
    fireEvent.click(screen.getByTestId("run-start"));
    expect(screen.getAllByRole("alert").map((a) => a.textContent)).toEqual([
      "strength must be a number (0: exactly the unsteered run)", "layers 3-1: the first layer must not be after the last"]);
    expect(posts()).toEqual([]);
    type("run-strength", "-2");
    type("run-layers", "1-3");
    fireEvent.click(screen.getByTestId("run-start"));
    await screen.findByTestId("run-error");
    expect(posts().map((c) => c.body)).toEqual([{
      model: "tiny.gguf", prompts: ["Hello"], preset: "standard", chat: "auto", max_tokens: 32, temperature: 0, seed: null,
      control: { file: "sea.gguf", strength: -2, layers: "1-3" },
    }]);
  });
});
