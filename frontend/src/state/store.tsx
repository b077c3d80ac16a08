/** The viewer's shared state: what is selected (the capture file, trial, tensor, metric, value scale,
 * depth, the token heat map's type, the flow block, the pinned token) and the timeline cursor (step
 * and token). Nothing else lives here: views fetch their data through api/queries. The tensor type
 * under the pointer has its own context, so hovering re-renders only the views that show it. */
import { createContext, useContext, useMemo, useReducer, useState, type Dispatch, type ReactNode } from "react";
import type { Metric } from "../api/client";
import type { ScaleKind } from "../data/scale";

export interface ViewerState {
  capturePath: string | null; // the loaded capture's file, relative to the data directory
  trialId: number;
  step: number;
  token: number | null; // position of the chosen token
  selected: number | null; // tensor id
  metric: Metric;
  scale: ScaleKind; // heat maps and grid: linear, log or rank
  depth: number;
  heatType: string;
  flowLayer: number | null; // null: the capture's first block
  pinnedToken: number | null; // Token Lens
}

export const initialState: ViewerState = {
  capturePath: null,
  trialId: 0,
  step: 0,
  token: null,
  selected: null,
  metric: "l2",
  scale: "linear",
  depth: 1,
  heatType: "l_out",
  flowLayer: null,
  pinnedToken: null,
};

export type Action =
  | { type: "loaded"; path: string }
  | { type: "trial"; trialId: number }
  | { type: "step"; step: number }
  | { type: "token"; pos: number; step: number }
  | { type: "select"; id: number | null; tensorType?: string; flowLayer?: number }
  | { type: "metric"; metric: Metric }
  | { type: "scale"; scale: ScaleKind }
  | { type: "depth"; depth: number }
  | { type: "heatType"; tensorType: string }
  | { type: "flowLayer"; layer: number }
  | { type: "pin"; pos: number | null };

export function reducer(s: ViewerState, a: Action): ViewerState {
  switch (a.type) {
    case "loaded":
      return { ...initialState, metric: s.metric, scale: s.scale, depth: s.depth, capturePath: a.path };
    case "trial":
      return { ...s, trialId: a.trialId, step: 0, token: null, selected: s.selected, pinnedToken: null };
    case "step":
      return { ...s, step: a.step, token: null };
    case "token":
      return { ...s, step: a.step, token: a.pos };
    case "select": {
      const next = { ...s, selected: a.id };
      if (a.flowLayer !== undefined) next.flowLayer = a.flowLayer;
      if (a.tensorType) next.heatType = a.tensorType;
      return next;
    }
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
const HoverCtx = createContext<[string | null, (type: string | null) => void] | null>(null);

export function ViewerProvider({ children, init }: { children: ReactNode; init?: Partial<ViewerState> }) {
  const [state, dispatch] = useReducer(reducer, { ...initialState, ...init });
  const hover = useState<string | null>(null);
  const value = useMemo(() => ({ state, dispatch }), [state]);
  return (
    <Ctx.Provider value={value}>
      <HoverCtx.Provider value={hover}>{children}</HoverCtx.Provider>
    </Ctx.Provider>
  );
}

export function useViewer() {
  const v = useContext(Ctx);
  if (!v) throw new Error("useViewer outside ViewerProvider");
  return v;
}

/** The tensor type under the pointer in the 3D grid (shown by the info panel), and its setter. */
export function useHoverType() {
  const v = useContext(HoverCtx);
  if (!v) throw new Error("useHoverType outside ViewerProvider");
  return v;
}
