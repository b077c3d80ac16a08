/** Colour maps: pure functions, tested without WebGL. */

export function hexToRgb(hex: string): [number, number, number] {
  const h = hex.replace("#", "");
  const n = parseInt(h.length === 3 ? h.split("").map((c) => c + c).join("") : h, 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export function rgbToHex([r, g, b]: [number, number, number]): string {
  const c = (v: number) => Math.round(Math.max(0, Math.min(255, v))).toString(16).padStart(2, "0");
  return `#${c(r)}${c(g)}${c(b)}`;
}

/** Colour of `t` in 0..1 on a ramp of evenly spaced stops (the `scale` of /api/colors). */
export function rampColor(scale: string[], t: number): string {
  if (scale.length === 0) return "#808080";
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (scale.length - 1);
  const i = Math.min(Math.floor(x), scale.length - 2);
  if (scale.length === 1) return scale[0];
  const f = x - i;
  const a = hexToRgb(scale[i]);
  const b = hexToRgb(scale[i + 1]);
  return rgbToHex([a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]);
}

/** (v - lo) / (hi - lo) clamped to 0..1; 0.5 when the range is empty; null without a value. */
export function normalise(v: number | null | undefined, lo: number | null, hi: number | null): number | null {
  if (v === null || v === undefined || lo === null || hi === null) return null;
  if (hi === lo) return 0.5;
  return Math.max(0, Math.min(1, (v - lo) / (hi - lo)));
}

/** A category colour brightened by intensity: the grid's "glow". Linear RGB 0..1 triples. */
export function glowColor(hex: string, intensity: number | null): [number, number, number] {
  const [r, g, b] = hexToRgb(hex).map((c) => c / 255);
  if (intensity === null) return [0.18, 0.18, 0.2];
  const k = 0.3 + 0.7 * intensity;
  const w = 0.45 * intensity * intensity; // towards white at the top of the range
  return [(r * k) * (1 - w) + w, (g * k) * (1 - w) + w, (b * k) * (1 - w) + w];
}
