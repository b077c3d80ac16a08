/** The viewer's shared state: which capture and trial, the timeline cursor (step and token), the
 * selection, and the view settings (metric, value scale, depth). Nothing else lives here; views fetch their data. */
import { createContext, useContext, useReducer, type Dispatch, type ReactNode } from "react";
import type { LoadOut, Metric } from "../api/client";
import type { ScaleKind } from "../data/scale";

export interface ViewerState {
  capture: LoadOut | null;
  trialId: number;
  step: number;
  token: number | null; // position of the chosen token
  selected: number | null; // tensor id
  hoverType: string | null;
  metric: Metric;
  scale: ScaleKind; // heat maps and grid: linear, log or rank
  depth: number;
  heatType: string;
  flowLayer: number;
  pinnedToken: number | null; // Token Lens
}

export const initialState: ViewerState = {
  capture: null,
  trialId: 0,
  step: 0,
  token: null,
  selected: null,
  hoverType: null,
  metric: "l2",
  scale: "linear",
  depth: 1,
  heatType: "l_out",
  flowLayer: 0,
  pinnedToken: null,
};

export type Action =
  | { type: "loaded"; capture: LoadOut }
  | { type: "trial"; trialId: number }
  | { type: "step"; step: number }
  | { type: "token"; pos: number; step: number }
  | { type: "select"; id: number | null; layer?: number; tensorType?: string }
  | { type: "hoverType"; tensorType: string | null }
  | { type: "metric"; metric: Metric }
  | { type: "scale"; scale: ScaleKind }
  | { type: "depth"; depth: number }
  | { type: "heatType"; tensorType: string }
  | { type: "flowLayer"; layer: number }
  | { type: "pin"; pos: number | null };

export function reducer(s: ViewerState, a: Action): ViewerState {
  switch (a.type) {
    case "loaded": {
      const blocks = a.capture.layers.filter((l) => l >= 0 && l < 998);
      return { ...initialState, metric: s.metric, scale: s.scale, depth: s.depth, capture: a.capture, flowLayer: blocks[0] ?? 0 };
    }
    case "trial":
      return { ...s, trialId: a.trialId, step: 0, token: null, selected: s.selected, pinnedToken: null };
    case "step":
      return { ...s, step: a.step, token: null };
    case "token":
      return { ...s, step: a.step, token: a.pos };
    case "select": {
      const next = { ...s, selected: a.id };
      if (a.layer !== undefined && a.layer >= 0 && a.layer < 998) next.flowLayer = a.layer;
      if (a.tensorType) next.heatType = a.tensorType;
      return next;
    }
    case "hoverType":
      return { ...s, hoverType: a.tensorType };
    case "metric":
      return { ...s, metric: a.metric };
    case "scale":
      return { ...s, scale: a.scale };
    case "depth":
      return { ...s, depth: a.depth };
    case "heatType":
      return { ...s, heatType: a.tensorType };
    case "flowLayer":
      return { ...s, flowLayer: a.layer };
    case "pin":
      return { ...s, pinnedToken: a.pos };
  }
}

const Ctx = createContext<{ state: ViewerState; dispatch: Dispatch<Action> } | null>(null);

export function ViewerProvider({ children, init }: { children: ReactNode; init?: Partial<ViewerState> }) {
  const [state, dispatch] = useReducer(reducer, { ...initialState, ...init });
  return <Ctx.Provider value={{ state, dispatch }}>{children}</Ctx.Provider>;
}

export function useViewer() {
  const v = useContext(Ctx);
  if (!v) throw new Error("useViewer outside ViewerProvider");
  return v;
}
