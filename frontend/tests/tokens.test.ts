// Token roles in the timeline: the API's `prompt` and `template` flags decide which tokens are greyed.
import { describe, expect, it } from "vitest";
import { roleLabel, tokenClasses, tokenRole } from "../src/data/tokens";

const tokens = [
  { text: "<s>", prompt: true, template: true },
  { text: "<|user|>", prompt: true, template: true },
  { text: "Hi", prompt: true, template: false },
  { text: "<|assistant|>", prompt: true, template: true },
  { text: "!", prompt: false, template: false },
  { text: "odd", prompt: false, template: true }, // a generated token is never the template's
];

describe("token roles", () => {
  it("template tokens are the marked prompt tokens; the rest are the user's or generated", () => {
    const roles = tokens.map(tokenRole);
    expect(roles).toEqual(tokens.map((t) => (!t.prompt ? "generated" : t.template ? "template" : "prompt")));
    expect(tokens.filter((_, i) => roles[i] === "prompt").map((t) => t.text).join("")).toBe("Hi");
  });
  it("greyed tokens keep the prompt class; labels name the role", () => {
    for (const t of tokens) {
      const cls = tokenClasses(t);
      expect(cls.includes("template")).toBe(tokenRole(t) === "template");
      expect(cls.includes("prompt")).toBe(t.prompt);
      expect(cls.includes("generated")).toBe(!t.prompt);
    }
    expect(roleLabel("template", true)).toBe("chat template");
    expect(roleLabel("template", false)).toBe("added by the tokenizer");
    expect(roleLabel("generated", true)).toBe("generated");
  });
});
