export const GUIDE_PATH: string;
export const EXPLANATIONS_PATH: string;
export function renderGuide(explanations: unknown): string;
