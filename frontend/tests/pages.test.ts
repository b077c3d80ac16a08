import { describe, expect, it } from "vitest";
import { allPages } from "../src/api/client";

type Page = { start: number; stop: number; next: number | null; next_pos?: number | null; items: number[] };

// A server of 10 steps that sends pages of 3 from any start (as /api/attention does without stop).
const served: number[] = [];
const get = async (start: number): Promise<Page> => {
  served.push(start);
  const stop = Math.min(start + 3, 10);
  return { start, stop, next: stop < 10 ? stop : null, items: Array.from({ length: stop - start }, (_, i) => start + i) };
};

// Steps of 4 tokens each (positions 4j..4j+3), pages of 3 tokens: pages split steps (next_pos).
const asked: [number, number | undefined][] = [];
const getTokens = async (start: number, pos?: number): Promise<Page> => {
  asked.push([start, pos]);
  const p0 = pos ?? 4 * start, p1 = Math.min(p0 + 3, 12);
  const last = Math.floor((p1 - 1) / 4); // the step of the page's last token
  const inside = p1 < 12 && p1 % 4 !== 0;
  const stop = last + 1;
  return { start, stop, next: p1 >= 12 ? null : inside ? last : stop, next_pos: inside ? p1 : null, items: Array.from({ length: p1 - p0 }, (_, i) => p0 + i) };
};

describe("allPages", () => {
  it("follows next_pos into a step split between pages", async () => {
    asked.length = 0;
    const out = await allPages(getTokens, 0, (into, p) => void into.items.push(...p.items));
    expect(asked).toEqual([[0, undefined], [0, 3], [1, 6], [2, 9]]);
    expect(out.items).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect([out.stop, out.next, out.next_pos]).toEqual([3, null, null]);
  });
  it("asks from each page's next until null and joins the lists in order", async () => {
    served.length = 0;
    const out = await allPages(get, 0, (into, p) => void into.items.push(...p.items));
    expect(served).toEqual([0, 3, 6, 9]);
    expect(out.items).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([out.start, out.stop, out.next]).toEqual([0, 10, null]);
  });
  it("one request when the first page reaches the end", async () => {
    served.length = 0;
    const out = await allPages(get, 8, (into, p) => void into.items.push(...p.items));
    expect(served).toEqual([8]);
    expect(out.items).toEqual([8, 9]);
  });
});
