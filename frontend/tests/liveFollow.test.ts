// The saved views following a running run (data/liveFollow.ts): following stops once the user has
// moved the viewer away from where following last put it (another capture, trial or step).
import { describe, expect, it } from "vitest";
import { stepsSoFar, userMoved } from "../src/data/liveFollow";

const placed = { path: "run:r3", trial: 1, step: 40 };

describe("userMoved", () => {
  it("is false before following has placed the viewer, and while it is where it was put", () => {
    expect(userMoved(null, { capturePath: "a.json", trialId: 0, step: 7 })).toBe(false);
    expect(userMoved(placed, { capturePath: "run:r3", trialId: 1, step: 40 })).toBe(false);
  });
  it("is true after a move of the step, the trial or the capture", () => {
    expect(userMoved(placed, { capturePath: "run:r3", trialId: 1, step: 39 })).toBe(true);
    expect(userMoved(placed, { capturePath: "run:r3", trialId: 0, step: 40 })).toBe(true);
    expect(userMoved(placed, { capturePath: "other.json", trialId: 1, step: 40 })).toBe(true);
    expect(userMoved(placed, { capturePath: null, trialId: 1, step: 40 })).toBe(true);
  });
});

describe("stepsSoFar", () => {
  it("counts the steps of every trial, holes included", () => {
    expect(stepsSoFar([])).toBe(0);
    expect(stepsSoFar([{ steps: [1, null, 3] }, { steps: [null] }])).toBe(4);
  });
});
