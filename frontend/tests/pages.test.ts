import { describe, expect, it } from "vitest";
import { allPages } from "../src/api/client";

type Page = { start: number; stop: number; next: number | null; items: number[] };

// A server of 10 steps that sends pages of 3 from any start (as /api/attention does without stop).
const served: number[] = [];
const get = async (start: number): Promise<Page> => {
  served.push(start);
  const stop = Math.min(start + 3, 10);
  return { start, stop, next: stop < 10 ? stop : null, items: Array.from({ length: stop - start }, (_, i) => start + i) };
};

describe("allPages", () => {
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
