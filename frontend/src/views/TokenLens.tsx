/** Token Lens (issue 6): wraps the token timeline. Placeholder until the lens is built. */
import type { ReactNode } from "react";
import type { TrialOut } from "../api/client";

interface TimelineExtra {
  zoneColor?: (pos: number) => string | undefined;
  onHoverToken?: (pos: number | null) => void;
  children?: ReactNode;
}

export function TokenLens({ timeline }: {
  captureId: string; trial: TrialOut; step: number; token: number | null; pinned: number | null;
  onPin: (pos: number | null) => void; timeline: (extra: TimelineExtra) => ReactNode;
}) {
  return <>{timeline({})}</>;
}
