// The TypeScript types of capture and API data are generated (scripts/gen-types.mjs) from the
// capture JSON Schema and the backend's OpenAPI schema; regenerating must give the committed files.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain ESM script without declarations
import { generate } from "../scripts/gen-types.mjs";

describe("generated types", () => {
  it("src/generated/*.ts match the schemas (run npm run gen:types)", async () => {
    const files: Record<string, string> = await generate();
    expect(Object.keys(files).sort()).toEqual(["api.ts", "capture.ts"]);
    for (const [name, text] of Object.entries(files)) {
      expect(readFileSync(resolve(__dirname, "../src/generated", name), "utf8"), name).toBe(text);
    }
  });

  it("the API types describe the payloads the viewer reads", () => {
    const api = readFileSync(resolve(__dirname, "../src/generated/api.ts"), "utf8");
    for (const name of ["GridOut", "GridCell", "HeatmapOut", "TrialOut", "StepOut", "AttentionOut", "InterpretationOut", "LoadOut"]) {
      expect(api).toContain(`${name}: {`);
    }
    const capture = readFileSync(resolve(__dirname, "../src/generated/capture.ts"), "utf8");
    expect(capture).toContain("export interface SpectraVisCapture");
  });
});
